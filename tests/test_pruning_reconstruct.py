"""Layer-wise reconstruction (pruning.reconstruct) on the published EResFD and the project's real photos."""

import copy

import cv2
import pytest
import torch

from facedet.samples import photos_dir
from facedet.weights import load_model
from pruning.augment import to_tensor
from pruning.criteria import select_filters
from pruning.masks import apply_masks, masks_from_removed, masks_of
from pruning.photos import find_photos, load_photos
from pruning.reconstruct import following_batchnorms, reconstruct, run_order
from pruning_helpers import one_thread  # noqa: F401  (autouse fixture)


@pytest.fixture(scope="module", autouse=True)
def env(weights_dir):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FACEDET_WEIGHTS_DIR", str(weights_dir))
        yield


@pytest.fixture(scope="module")
def crops():
    """The training photos, each resized to 192 x 192: real inputs for the fit."""
    images, _, _ = load_photos(find_photos(photos_dir("train")))
    return torch.stack([to_tensor(cv2.resize(image, (192, 192), interpolation=cv2.INTER_AREA)) for image in images])


def _face_probabilities(model, images):
    with torch.no_grad():
        return torch.softmax(model.eval()(images)[1], dim=-1)[..., 1]


def test_every_conv_runs_once_in_order_and_each_batchnorm_follows_its_conv(crops):
    model, _ = load_model("eresfd")
    order = run_order(model, crops)
    convs = [n for n, m in model.named_modules() if isinstance(m, torch.nn.Conv2d)]
    assert sorted(order) == sorted(convs)
    assert order[0] == convs[0]  # the stem first
    assert order.index("base.m0.fpn.laterals.0.conv.0") < order.index("loc.0")  # the pyramid before the heads
    batchnorms = following_batchnorms(model)
    assert batchnorms and all(bn.num_features == dict(model.named_modules())[name].out_channels
                              for name, bn in batchnorms.items())
    assert not any(name.startswith(("loc.", "conf.")) for name in batchnorms)  # the heads have biases


def test_an_unpruned_model_is_refitted_to_itself(crops):
    teacher, _ = load_model("eresfd")
    student = copy.deepcopy(teacher)
    reconstruct(student, teacher, crops, {}, samples=4000)
    difference = (_face_probabilities(student, crops) - _face_probabilities(teacher, crops)).abs().max()
    assert float(difference) < 1e-3


def test_a_pruned_model_comes_closer_to_the_teacher_and_its_masks_hold(crops):
    teacher, _ = load_model("eresfd")
    student = copy.deepcopy(teacher)
    masks = masks_from_removed(student, select_filters(student, "fpgm", 0.5))
    apply_masks(student, masks)
    target = _face_probabilities(teacher, crops)
    before = (_face_probabilities(student, crops) - target).abs().mean()
    refitted = reconstruct(student, teacher, crops[:4], masks, samples=4000)  # fitted on 4 photos,
    after = (_face_probabilities(refitted, crops) - target).abs().mean()  # judged on all 7
    assert float(after) < 0.5 * float(before), (float(before), float(after))
    assert all(torch.equal(masks_of(student)[name], keep) for name, keep in masks.items())


def test_cancel_stops_between_layers(crops):
    teacher, _ = load_model("eresfd")
    student = copy.deepcopy(teacher)
    masks = masks_from_removed(student, select_filters(student, "fpgm", 0.5))
    apply_masks(student, masks)
    start = copy.deepcopy(student.state_dict())
    done = []
    reconstruct(student, teacher, crops[:2], masks, samples=500, progress=lambda k, n: done.append(k),
                cancel=lambda: len(done) >= 3)
    assert done == [1, 2, 3]
    changed = [k for k, v in student.state_dict().items() if not torch.equal(v, start[k])]
    assert changed and all(not k.startswith(("loc.", "conf.")) for k in changed)


def test_training_refits_at_the_final_pruning_step_only(weights_dir, tmp_path, monkeypatch):
    """``reconstruct="final"``: of three pruning steps only the last refits (to the network just
    before it); the run finishes with the masks of that step, its pruned filters zero."""
    import pruning.reconstruct as reconstruct_module
    from pruning.train import TrainConfig, train

    calls = []
    real = reconstruct_module.reconstruct

    def recording(student, before, images, masks, **kwargs):
        calls.append((len(images), any(not keep.all() for keep in masks.values()),
                      torch.equal(before.state_dict()["conf.0.weight"], student.state_dict()["conf.0.weight"])))
        return real(student, before, images, masks, **{**kwargs, "samples": 2000})

    monkeypatch.setattr(reconstruct_module, "reconstruct", recording)
    config = TrainConfig.from_settings(
        detector="eresfd", criterion="fpgm", rate=0.5, weights=str(weights_dir / "eresfd.pth"), epochs=3,
        finetune_epochs=0, prune_every=1, batch_size=2, crop_size=160, sample_images=4, max_images=4,
        evaluate=False, threads=1, reconstruct="final", reconstruct_crops=3)
    events = []
    result = train(config, tmp_path / "run", progress=events.append)
    assert result.status == "finished"
    assert calls == [(3, True, True)]  # once, on 3 crops, the head unchanged by pruning until refitted
    refits = [e for e in events if e.kind == "refit"]
    convs = sum(isinstance(m, torch.nn.Conv2d) for m in result.model.modules())
    assert [e.message for e in refits] == [f"refitting layer {k} of {convs}" for k in range(1, convs + 1)]
    assert {e.epoch for e in refits} == {2}  # after the last SFP epoch
    zero = masks_of(result.model)  # at least the pruned half of every layer is zero (the dense model has dead filters too)
    assert all(int((~keep).sum()) >= int(keep.numel() * 0.5) for keep in zero.values())


def test_an_unknown_reconstruct_choice_is_one_line():
    from facedet.errors import FacedetError
    from pruning.train import TrainConfig

    with pytest.raises(FacedetError, match="reconstruct must be one of off, every, final"):
        TrainConfig(reconstruct="sometimes")
