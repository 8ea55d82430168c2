"""Distillation from the dense model, unlabelled photo folders, the quick preset and the agreement
measure: on the published checkpoints and the project's real photos."""

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from facedet.samples import annotated, photos_dir, sample_photos
from facedet.weights import load_model
from pruning.agreement import agreement, average_precision, face_counts
from pruning.distill import DistillWeights, HeadInputs, Teacher, distillation_loss, teacher_boxes, weight_distance
from pruning.photos import PhotoCrops, PhotoLoader, face_patches, find_photos, load_photos, teacher_faces
from pruning.presets import preset_config


@pytest.fixture(scope="module", autouse=True)
def env(weights_dir, tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FACEDET_WEIGHTS_DIR", str(weights_dir))
        mp.setenv("PRUNING_DATA_DIR", str(tmp_path_factory.mktemp("distill_data")))
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        yield
        torch.set_num_threads(threads)


def _crops(batch=2, size=160, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 3, size, size, generator=generator) * 60


# --- the loss -------------------------------------------------------------------------------
def test_distillation_loss_is_zero_when_the_student_is_the_teacher():
    model, _ = load_model("eresfd")
    teacher = Teacher(load_model("eresfd")[0])
    model.eval()
    tap = HeadInputs(model)
    images = _crops()
    with tap.capture():
        outputs = model(images)
    teacher_outputs, teacher_maps = teacher(images)
    terms = distillation_loss(outputs, teacher_outputs, DistillWeights(features=1.0), tap.take(), teacher_maps)
    assert len(teacher_maps) == 6
    assert all(abs(float(v.detach())) < 1e-5 for v in terms.values()), terms


def test_distillation_loss_on_known_values():
    # One image, two priors: the teacher is sure of a face on prior 0 and of background on prior 1.
    teacher = (torch.tensor([[[0.5, 0.5, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]]]),
               torch.tensor([[[0.0, 10.0], [10.0, 0.0]]]))
    student = (torch.tensor([[[0.0, 0.5, 0.0, 0.0], [3.0, 3.0, 3.0, 3.0]]], requires_grad=True),
               torch.tensor([[[0.0, 0.0], [10.0, 0.0]]], requires_grad=True))
    terms = distillation_loss(student, teacher)
    p = torch.softmax(torch.tensor([0.0, 10.0]), 0)
    expected_kl = float((p * (p.log() - torch.log(torch.tensor([0.5, 0.5])))).sum())
    # Divided by the one confident prior; loc only where the teacher is confident: smooth-L1(0.5) = 0.125.
    assert float(terms["conf"].detach()) == pytest.approx(expected_kl, rel=1e-4)
    assert float(terms["loc"].detach()) == pytest.approx(0.125, rel=1e-6)
    assert float(terms["features"].detach()) == 0.0
    sum(terms.values()).backward()
    assert student[1].grad[0, 0, 1] < 0  # pushes the face logit of prior 0 up
    assert torch.all(student[0].grad[0, 1] == 0)  # no box target where the teacher sees background


def test_weight_distance_is_zero_for_the_teacher_and_the_squared_change_of_a_moved_weight():
    student, teacher = load_model("eresfd")[0], load_model("eresfd")[0]
    assert float(weight_distance(student, teacher)) == 0.0
    name, parameter = next(iter(student.named_parameters()))
    with torch.no_grad():
        parameter.view(-1)[:3] += torch.tensor([1.0, -2.0, 0.5])
    distance = weight_distance(student, teacher)
    assert float(distance) == pytest.approx(1.0 + 4.0 + 0.25, rel=1e-5)
    distance.backward()  # the gradient pulls the moved weights back, and only those
    assert parameter.grad.view(-1)[:3].tolist() == pytest.approx([2.0, -4.0, 1.0], rel=1e-5)
    assert float(parameter.grad.view(-1)[3:].abs().sum()) == 0.0
    assert not any(p.grad is not None for p in teacher.parameters()), name


def test_focus_weights_each_prior_by_the_gap_between_the_two_probabilities():
    teacher = (torch.zeros(1, 2, 4), torch.tensor([[[0.0, 10.0], [10.0, 0.0]]]))
    student = (torch.zeros(1, 2, 4), torch.tensor([[[0.0, 0.0], [10.0, 0.0]]]))  # misses the face, right on prior 1
    plain = distillation_loss(student, teacher)["conf"]
    focused = distillation_loss(student, teacher, DistillWeights(focus=2.0))["conf"]
    gap = float(torch.softmax(torch.tensor([0.0, 10.0]), 0)[1]) - 0.5
    # Prior 1's KL is 0 either way; prior 0's is scaled by gap ** 2.
    assert float(focused) == pytest.approx(float(plain) * gap**2, rel=1e-4)
    assert float(distillation_loss(teacher, teacher, DistillWeights(focus=1.0))["conf"]) == pytest.approx(0.0, abs=1e-6)


def test_temperature_softens_and_scales_by_its_square():
    teacher = (torch.zeros(1, 1, 4), torch.tensor([[[0.0, 2.0]]]))
    student = (torch.zeros(1, 1, 4), torch.tensor([[[0.0, 0.0]]]))
    t1 = distillation_loss(student, teacher, DistillWeights(temperature=1.0))["conf"]
    t4 = distillation_loss(student, teacher, DistillWeights(temperature=4.0))["conf"]
    p = torch.softmax(torch.tensor([0.0, 0.5]), 0)
    assert float(t4) == pytest.approx(16 * float((p * (p.log() - np.log(0.5))).sum()), rel=1e-4)
    assert float(t4) < float(t1) * 16


def test_teacher_boxes_are_the_detections_detect_keeps(assets_dir):
    """The labels of the teacher-box term on a crop are what ``Detector.detect`` finds on it (>= 0.5)."""
    from facedet.detector import Detector
    from facedet.images import read_image
    from facedet.priors import make_priors

    model, _ = load_model("eresfd")
    detector = Detector(model, "eresfd", device="cpu")
    image = read_image(photos_dir("holdout") / "office-group-13.jpg")[100:420, 300:620]  # 320 x 320, several faces
    expected = detector.detect(image, scale=1.0, threshold=0.5)
    outputs = Teacher(model)(detector.preprocess(image, 1.0))[0]
    [boxes] = teacher_boxes(outputs, make_priors(320, 320), score=0.5)
    assert len(expected) >= 3 and boxes.shape == (len(expected), 4)
    assert np.allclose(boxes.numpy() * 320, expected[:, :4], atol=0.05)
    # Nothing above 0.5 in a flat grey crop: no label, so the loss only mines the hardest negatives.
    [none] = teacher_boxes(Teacher(model)(torch.zeros(1, 3, 160, 160))[0], make_priors(160, 160))
    assert none.shape == (0, 4)


def test_teacher_boxes_keep_one_box_per_face():
    priors = torch.tensor([[0.5, 0.5, 0.2, 0.2], [0.51, 0.5, 0.2, 0.2], [0.2, 0.2, 0.1, 0.1]])
    conf = torch.tensor([[[0.0, 3.0], [0.0, 2.0], [2.0, 0.0]]])  # two overlapping faces, then background
    [boxes] = teacher_boxes((torch.zeros(1, 3, 4), conf), priors)
    assert torch.allclose(boxes, torch.tensor([[0.4, 0.4, 0.6, 0.6]]))


# --- photo folders --------------------------------------------------------------------------
def test_a_photo_folder_with_bad_files_is_read_with_the_bad_ones_skipped(tmp_path, assets_dir):
    folder = tmp_path / "photos"
    (folder / "nested" / "deeper").mkdir(parents=True)
    shutil.copy(photos_dir("train") / "jockey-1.jpg", folder / "nested" / "deeper" / "jockey.jpg")
    shutil.copy(assets_dir / "astronaut.png", folder / "astronaut.png")
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "text.png").write_text("not an image")
    data = (photos_dir("train") / "bike-riders-2.jpg").read_bytes()
    (folder / "truncated.jpg").write_bytes(data[: len(data) // 3])
    (folder / "notes.txt").write_text("ignored: not an image name")
    (folder / ".hidden").mkdir()
    shutil.copy(assets_dir / "astronaut.png", folder / ".hidden" / "skipped.png")

    paths = find_photos(folder)
    assert [p.name for p in paths] == ["astronaut.png", "empty.jpg", "text.png", "truncated.jpg", "jockey.jpg"]
    images, names, skipped = load_photos(paths)
    assert [Path(n).name for n in names] == ["astronaut.png", "jockey.jpg"]
    assert sorted(Path(n).name for n, _ in skipped) == ["empty.jpg", "text.png", "truncated.jpg"]
    assert all(image.dtype == np.uint8 and image.shape[2] == 3 for image in images)


def test_training_on_a_folder_with_bad_files_skips_them_and_counts_them(tmp_path, capfd):
    from pruning.train import train

    folder = tmp_path / "photos"
    folder.mkdir()
    shutil.copy(photos_dir("train") / "jockey-1.jpg", folder / "a.jpg")
    (folder / "broken.jpg").write_bytes(b"\xff\xd8 broken")
    config = preset_config("quick", detector="eresfd", criterion="fpgm", rate=0.3, photos=str(folder), epochs=1,
                           finetune_epochs=0, ramp_epochs=0, crops_per_photo=2, batch_size=2, crop_size=128,
                           evaluate=False, threads=1)
    result = train(config, tmp_path / "run")
    assert result.status == "finished" and len(result.history) == 1
    assert "1 of 2 files" in capfd.readouterr().err

    (folder / "a.jpg").unlink()
    from facedet.errors import DataError

    with pytest.raises(DataError, match="no readable photos"):
        train(config, tmp_path / "run2")


def test_photo_crops_are_reproducible_and_centre_on_faces():
    image = np.full((400, 600, 3), 90, dtype=np.uint8)
    image[180:220, 280:320] = 250  # a bright "face" the crops must hold when centred on it
    anchors = np.array([[280.0, 180.0, 320.0, 220.0]])
    crops = PhotoCrops(96, lambda h, w: 1.0, zoom_range=(0.0, 0.0), face_crop_probability=1.0, photometric=False,
                       flip_probability=0.0)
    first = crops(image, anchors, np.random.default_rng(3))
    again = crops(image, anchors, np.random.default_rng(3))
    assert torch.equal(first, again) and first.shape == (3, 96, 96)
    for seed in range(10):
        crop = crops(image, anchors, np.random.default_rng(seed))
        # The whole face is inside every crop: all of its brightness (up to resampling at the edges).
        mass = float(((crop[0] + 123 - 90) / 160).clamp(0, 1).sum())
        assert mass == pytest.approx(40 * 40, rel=0.03)

    loader = PhotoLoader([image, image], [anchors, anchors], crops, crops_per_photo=3, batch_size=4)
    batches = list(loader.epoch(0))
    assert len(loader) == 2 and [b[0].shape[0] for b in batches] == [4, 2]
    assert all(len(t) == 0 for _, targets in batches for t in targets)
    assert torch.equal(torch.cat([b[0] for b in batches]), torch.cat([b[0] for b in loader.epoch(0)]))


def test_face_sizes_zoom_the_chosen_face_to_a_size_in_the_range():
    image = np.full((400, 600, 3), 90, dtype=np.uint8)
    image[180:220, 280:320] = 250  # a 40-px "face"
    anchors = np.array([[280.0, 180.0, 320.0, 220.0]])
    for low, high in ((20, 20), (60, 60), (16, 64)):
        crops = PhotoCrops(160, lambda h, w: 1.0, zoom_range=(0.0, 0.0), face_crop_probability=1.0, photometric=False,
                           flip_probability=0.0, face_sizes=(low, high))
        for seed in range(5):
            crop = crops(image, anchors, np.random.default_rng(seed))
            side = math.sqrt(float((crop[0] + 123 > 170).sum()))  # the face's side in the crop (outside: 123)
            assert low * 0.9 <= side <= high * 1.1
    # Off (the default), the zoom follows zoom_range: the face keeps its 40 px at zoom 1.
    crops = PhotoCrops(160, lambda h, w: 1.0, zoom_range=(0.0, 0.0), face_crop_probability=1.0, photometric=False,
                       flip_probability=0.0)
    crop = crops(image, anchors, np.random.default_rng(0))
    assert math.sqrt(float((crop[0] + 123 > 170).sum())) == pytest.approx(40, rel=0.05)


def test_pasted_faces_are_faces_the_teacher_finds_in_a_photo_without_any():
    from facedet.detector import Detector

    teacher = Detector(load_model("eresfd")[0], "eresfd", device="cpu")
    images, names, _ = load_photos(find_photos(photos_dir("train")))
    patches = face_patches(images, teacher_faces(teacher, images))
    assert len(patches) >= 10 and all(p.shape[0] == p.shape[1] >= 16 * 1.5 for p in patches)
    [pen] = [image for image, name in zip(images, names) if "no-face" in Path(name).name]
    crops = PhotoCrops(320, lambda h, w: 1.0, zoom_range=(0.0, 0.0), face_crop_probability=0.0, photometric=False,
                       flip_probability=0.0, paste_faces=1.0, face_patches=patches, paste_sizes=(24.0, 40.0))
    found = pasted = 0
    for seed in range(6):
        window = crops.window(pen, np.zeros((0, 4)), np.random.default_rng(seed), 320)
        assert len(teacher.detect(window, threshold=0.5, scale=1.0)) == 0  # the pen photo holds no face
        result = crops.paste(window, np.random.default_rng(seed))
        assert result.shape == window.shape and (result != window).any()
        # Every face the teacher finds now lies where pixels were pasted in.
        faces = teacher.detect(result, threshold=0.5, scale=1.0)[:, :4]
        pasted_mask = (result != window).any(axis=2)
        for x1, y1, x2, y2 in faces:
            assert pasted_mask[int((y1 + y2) / 2), int((x1 + x2) / 2)]
        found, pasted = found + len(faces), pasted + 1
    assert found >= pasted  # at least one face found per crop on average
    again = crops(pen, np.zeros((0, 4)), np.random.default_rng(4))
    assert torch.equal(again, crops(pen, np.zeros((0, 4)), np.random.default_rng(4)))


def test_mosaic_crops_tile_four_photos_and_are_reproducible():
    photos = [np.full((300, 300, 3), value, dtype=np.uint8) for value in (20, 80, 160, 240)]
    anchors = [np.zeros((0, 4))] * 4
    crops = PhotoCrops(96, lambda h, w: 1.0, zoom_range=(0.0, 0.0), photometric=False, flip_probability=0.0)
    loader = PhotoLoader(photos, anchors, crops, crops_per_photo=4, batch_size=16, mosaic=1.0)
    [(batch, _)] = list(loader.epoch(0))
    assert batch.shape == (16, 3, 96, 96)
    assert torch.equal(batch, next(iter(loader.epoch(0)))[0])
    quadrants = batch[:, 0, ::48, ::48] + 123  # the red channel of each 48-px tile's corner
    assert set(quadrants.flatten().round().int().tolist()) <= {20, 80, 160, 240}
    # Every crop holds the photo it was drawn for, beside three others (any of the four).
    order = loader._order(0)
    for (photo, _), tiles in zip(order, quadrants):
        assert photos[photo][0, 0, 0] in tiles.round().int().flatten().tolist()
    plain = PhotoLoader(photos, anchors, crops, crops_per_photo=4, batch_size=16)
    tiles = next(iter(plain.epoch(0)))[0][:, 0, ::48, ::48]
    assert all(len(set(t.flatten().tolist())) == 1 for t in tiles)  # without mosaic: one photo a crop


def test_background_patches_are_cut_from_the_crop_itself():
    window = np.full((96, 96, 3), 50, dtype=np.uint8)
    faces = [np.full((40, 40, 3), 200, dtype=np.uint8)]
    settings = dict(zoom_range=(0.0, 0.0), photometric=False, flip_probability=0.0, paste_faces=1.0,
                    face_patches=faces, paste_sizes=(12.0, 24.0))
    with_faces = PhotoCrops(96, lambda h, w: 1.0, **settings)
    background = PhotoCrops(96, lambda h, w: 1.0, paste_background=1.0, **settings)
    for seed in range(4):
        assert (with_faces.paste(window, np.random.default_rng(seed)) > 50).any()
        # A patch of a one-colour crop blended into it leaves it as it was.
        assert np.array_equal(background.paste(window, np.random.default_rng(seed)), window)


def test_mixup_crops_blend_two_photos_and_are_reproducible():
    photos = [np.full((200, 200, 3), value, dtype=np.uint8) for value in (20, 240)]
    anchors = [np.zeros((0, 4))] * 2
    crops = PhotoCrops(64, lambda h, w: 1.0, zoom_range=(0.0, 0.0), photometric=False, flip_probability=0.0)
    loader = PhotoLoader(photos, anchors, crops, crops_per_photo=8, batch_size=16, mixup=1.0)
    [(batch, _)] = list(loader.epoch(0))
    assert torch.equal(batch, next(iter(loader.epoch(0)))[0])
    values = (batch[:, 0] + 123).round()
    assert all(len(set(v.flatten().tolist())) == 1 for v in values)  # one blend per crop, everywhere alike
    blends = {v[0, 0].item() for v in values}
    assert all(20 <= v <= 240 for v in blends) and len(blends - {20.0, 240.0}) >= 4  # blends of both photos
    plain = PhotoLoader(photos, anchors, crops, crops_per_photo=8, batch_size=16)
    assert set((next(iter(plain.epoch(0)))[0][:, 0] + 123).round().flatten().tolist()) == {20.0, 240.0}


# --- resume -----------------------------------------------------------------------------------
def test_a_resumed_distillation_run_ends_with_the_same_weights(tmp_path):
    from pruning.train import Cancelled, train

    config = preset_config("quick", detector="eresfd", criterion="fpgm", rate=0.3, epochs=3, finetune_epochs=1,
                           ramp_epochs=2, crops_per_photo=1, batch_size=4, crop_size=128, distill_features=1.0,
                           distill_boxes=1.0, distill_focus=1.0, distill_anchor=0.1, mosaic=0.3, mixup=0.3,
                           paste_faces=0.5, paste_background=0.3, average_epochs=3, evaluate=False, threads=1)
    straight = train(config, tmp_path / "straight")

    stop_after = {"epochs": 0}

    def cancel_after_two_epochs(event):
        if event.kind == "epoch":
            stop_after["epochs"] += 1

    class Stop:
        def is_set(self):
            return stop_after["epochs"] >= 2

    first = train(config, tmp_path / "resumed", progress=cancel_after_two_epochs, cancel=Stop())
    assert first.status == "cancelled" and len(first.history) == 2
    resumed = train(None, tmp_path / "resumed", resume=True)
    assert resumed.status == "finished" and len(resumed.history) == 4
    for (name, a), (_, b) in zip(straight.model.state_dict().items(), resumed.model.state_dict().items()):
        assert torch.equal(a, b), name
    assert [h["loss"] for h in resumed.history] == pytest.approx([h["loss"] for h in straight.history], rel=1e-6)
    del Cancelled


# --- the preset -----------------------------------------------------------------------------
def test_the_quick_preset_trains_on_the_sample_photos_distilled():
    config = preset_config("quick", detector="eresfd", criterion="fpgm", rate=0.3)
    assert config.distill and config.freeze_batchnorm and config.schedule.ramp_epochs < config.schedule.epochs
    assert Path(config.photos) == photos_dir("train")
    assert preset_config("quick", detector="eresfd", criterion="fpgm", rate=0.3, wider="/data/wider").photos is None
    paper = preset_config("paper", detector="eresfd", criterion="fpgm", rate=0.3)
    assert (paper.schedule.epochs, paper.schedule.finetune_epochs, paper.distill, paper.photos) == (200, 10, False, None)


def test_held_out_photos_are_never_training_photos():
    train_names = {p.name for p in sample_photos() if p.role == "train"}
    held_out = {p.name for p in sample_photos() if p.role == "holdout"}
    assert held_out and train_names and not (held_out & train_names)
    assert {p.name for p in find_photos(photos_dir("train"))} == train_names
    assert sum(len(p.faces) for p in annotated("holdout")) >= 20


# --- agreement ------------------------------------------------------------------------------
def test_agreement_on_a_known_case():
    teacher = [np.array([[0, 0, 10, 10, 0.9], [20, 20, 30, 30, 0.8], [50, 50, 60, 60, 0.3]]),
               np.zeros((0, 5))]
    # Finds the first face (score 0.7), a box the teacher lacks (0.95, ranked first), misses the second.
    student = [np.array([[0, 0, 10, 11, 0.7], [70, 70, 80, 80, 0.95]]), np.array([[1, 1, 5, 5, 0.2]])]
    result = agreement(student, teacher)
    # Ranked: FP (0.95), TP (0.7), FP (0.2): precision after the TP is 1/2, recall 1/2.
    assert result.ap == pytest.approx(0.25)
    assert (result.recall, result.extra, result.teacher_faces, result.photos) == (0.5, 1, 2, 2)
    assert agreement(teacher, teacher).ap == pytest.approx(1.0)
    assert average_precision([np.zeros((0, 5))], [np.zeros((0, 4))]) is None
    assert face_counts(student[0], teacher[0][:2, :4]) == (1, 1, 1)


def test_the_dense_model_agrees_with_itself_and_one_shot_pruning_does_not(assets_dir):
    from facedet.detector import Detector
    from facedet.images import read_image
    from pruning.agreement import detector_agreement
    from pruning.criteria import one_shot_prune

    images = [read_image(p.path) for p in annotated("holdout")[:3]]
    dense = Detector(load_model("eresfd")[0], "eresfd", device="cpu")
    assert detector_agreement(dense, dense, images).ap == pytest.approx(1.0)
    pruned, _ = load_model("eresfd")
    one_shot_prune(pruned, "fpgm", 0.3)
    assert detector_agreement(Detector(pruned, "eresfd", device="cpu"), dense, images).ap < 0.3


def test_the_hand_annotations_match_the_dense_model_on_the_held_out_photos():
    """The annotations are ours; the dense model must find nearly all of them (a check on the boxes)."""
    from facedet.detector import load_detector
    from facedet.images import read_image

    detector = load_detector("eresfd", device="cpu")
    found = total = 0
    for photo in annotated("holdout"):
        f, m, _ = face_counts(detector.detect(read_image(photo.path)), photo.faces)
        found, total = found + f, total + f + m
    assert total >= 20 and found >= 0.9 * total
    json.dumps([p.name for p in annotated("holdout")])


def test_weight_averaging_ends_with_the_mean_of_the_last_epochs_weights(tmp_path, monkeypatch):
    from pruning import train as training

    snapshots = []
    accumulate = training._Trainer._accumulate_average

    def recording(self):
        snapshots.append({k: v.detach().clone() for k, v in self.net.state_dict().items() if v.is_floating_point()})
        accumulate(self)

    monkeypatch.setattr(training._Trainer, "_accumulate_average", recording)
    config = preset_config("quick", detector="eresfd", criterion="fpgm", rate=0.5, epochs=1, finetune_epochs=2,
                           ramp_epochs=0, crops_per_photo=1, batch_size=4, crop_size=128, average_epochs=1,
                           evaluate=False, threads=1)
    result = training.train(config, tmp_path / "run")
    assert len(snapshots) == 2  # 7 photos, batches of 4: the last epoch's two steps
    final = result.model.state_dict()
    for key, first in snapshots[0].items():
        assert torch.allclose(final[key], (first + snapshots[1][key]) / 2, atol=1e-6), key
    # Pruned filters stay zero in the averaged model.
    from pruning.masks import masks_of

    assert sum(int((~keep).sum()) for keep in masks_of(result.model).values()) > 0
