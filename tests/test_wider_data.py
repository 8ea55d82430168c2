"""WIDER FACE data: the annotation reader, the dataset, the ground-truth reader, the sample set."""

import struct
import numpy as np
import pytest
import scipy.io

from facedet.errors import DataError, ImageError
from facedet.images import read_image
from facedet.wider.annotations import read_annotations, valid_xyxy
from facedet.wider.dataset import WiderFaceDataset
from facedet.wider.ground_truth import SETTINGS, load_ground_truth
from facedet.wider.layout import MARKER, is_sample_set, split_images
from facedet.wider.sample_set import write_sample_set


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    return write_sample_set(tmp_path_factory.mktemp("sample"), images=6, seed=3)


def test_real_ground_truth_has_the_known_size(wider_gt_dir):
    gt = load_ground_truth(wider_gt_dir)
    assert len(gt.keys) == 3226 and len(gt.boxes) == 39708
    assert gt.keys[0] == "0--Parade/0_Parade_marchingband_1_465"
    assert gt.keep_counts == {"easy": 7211, "medium": 13319, "hard": 31958}
    # Settings are nested: every Easy face is a Medium face, every Medium face a Hard face.
    assert not (gt.keep["easy"] & ~gt.keep["medium"]).any() and not (gt.keep["medium"] & ~gt.keep["hard"]).any()


def test_sample_set_has_the_standard_layout(sample):
    assert (sample / MARKER).is_file() and is_sample_set(sample) and is_sample_set(sample / "eval_tools" / "ground_truth")
    for split in ("train", "val"):
        annotations = read_annotations(sample / "wider_face_split" / f"wider_face_{split}_bbx_gt.txt")
        assert len(annotations) == 6
        assert sum(len(a.boxes) for a in annotations) > 12
        for annotation in annotations:
            image = read_image(sample / f"WIDER_{split}" / "images" / annotation.path)
            x, y, w, h = annotation.boxes.T
            assert (x >= 0).all() and (y >= 0).all() and (w > 0).all() and (h > 0).all()
            assert (x + w <= image.shape[1]).all() and (y + h <= image.shape[0]).all()
    # Portraits, groups and crowds: faces from tiny to large.
    heights = np.concatenate([a.boxes[:, 3] for a in annotations])
    assert heights.min() < 10 and heights.max() > 80


def test_sample_ground_truth_matches_its_annotations(sample):
    gt = load_ground_truth(sample / "eval_tools" / "ground_truth")
    annotations = read_annotations(sample / "wider_face_split" / "wider_face_val_bbx_gt.txt")
    by_key = {a.key: a for a in annotations}
    assert sorted(gt.keys) == sorted(by_key)
    for key in gt.keys:
        np.testing.assert_array_equal(gt.faces(key), by_key[key].boxes)
    heights = gt.boxes[:, 3]
    for setting, minimum in zip(SETTINGS, (50, 25, 10)):
        np.testing.assert_array_equal(gt.keep[setting], heights >= minimum)
        assert gt.keep[setting].any()
    # The standard tools read it too: same structure as the real files.
    mat = scipy.io.loadmat(str(sample / "eval_tools" / "ground_truth" / "wider_easy_val.mat"))
    assert {"event_list", "file_list", "face_bbx_list", "gt_list"} <= set(mat)
    assert mat["face_bbx_list"].shape == (3, 1) and mat["face_bbx_list"][0, 0][0, 0].dtype == np.int32


def test_sample_set_is_deterministic(sample, tmp_path):
    again = write_sample_set(tmp_path, images=6, seed=3)
    for relative in ("wider_face_split/wider_face_val_bbx_gt.txt", "wider_face_split/wider_face_train_bbx_gt.txt"):
        assert (again / relative).read_bytes() == (sample / relative).read_bytes()
    first = sorted((sample / "WIDER_val").rglob("*.jpg"))
    assert [p.read_bytes() for p in first] == [(again / p.relative_to(sample)).read_bytes() for p in first]
    other = write_sample_set(tmp_path / "other", images=6, seed=4)
    assert (other / "wider_face_split/wider_face_val_bbx_gt.txt").read_bytes() != (
        sample / "wider_face_split/wider_face_val_bbx_gt.txt").read_bytes()


def test_dataset_items_are_images_with_corner_boxes(sample):
    dataset = WiderFaceDataset(sample, split="train")
    annotations = read_annotations(sample / "wider_face_split" / "wider_face_train_bbx_gt.txt")
    assert len(dataset) == sum(1 for a in annotations if len(valid_xyxy(a)))
    image, boxes = dataset[0]
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
    assert boxes.dtype == np.float32 and boxes.shape[1] == 4
    x, y, w, h = annotations[0].boxes[0]
    np.testing.assert_array_equal(boxes[0], [x, y, x + w, y + h])
    seen = []
    transformed = WiderFaceDataset(sample, split="val", transform=lambda im, b: seen.append((im.shape, len(b))) or "done")
    assert transformed[1] == "done" and seen and seen[0][1] > 0


def test_invalid_boxes_and_empty_images(tmp_path, sample):
    root = tmp_path / "wider"
    (root / "WIDER_train" / "images" / "0--A").mkdir(parents=True)
    (root / "wider_face_split").mkdir()
    for name in ("a", "b"):
        (root / "WIDER_train" / "images" / "0--A" / f"{name}.jpg").write_bytes(
            next((sample / "WIDER_train" / "images").rglob("*.jpg")).read_bytes())
    (root / "wider_face_split" / "wider_face_train_bbx_gt.txt").write_text(
        "0--A/a.jpg\n3\n10 10 20 20 0 0 0 0 0 0 \n5 5 0 9 0 0 0 1 0 0 \n7 7 8 -1 0 0 0 1 0 0 \n"
        "0--A/b.jpg\n0\n0 0 0 0 0 0 0 0 0 0 \n")
    annotations = read_annotations(root / "wider_face_split" / "wider_face_train_bbx_gt.txt")
    assert [len(a.boxes) for a in annotations] == [3, 0]
    assert annotations[0].attributes[1, 3] == 1  # the "invalid" column
    dataset = WiderFaceDataset(root, "train")
    assert len(dataset) == 1 and dataset[0][1].tolist() == [[10, 10, 30, 30]]
    assert len(WiderFaceDataset(root, "train", keep_empty=True)) == 2
    assert [key for key, _ in split_images(root, "train")] == ["0--A/a", "0--A/b"]


@pytest.mark.parametrize("text, message", [
    ("0--A/a.jpg\n2\n1 2 3 4 0 0 0 0 0 0\n", "line 4: a face line is missing"),
    ("0--A/a.jpg\nmany\n", "line 2: expected a face count"),
    ("0--A/a.jpg\n1\n1 2 3\n", "line 3: expected 'x y w h blur"),
    ("not an image\n1\n", "line 1: expected an image path"),
])
def test_malformed_annotations_name_the_line(tmp_path, text, message):
    path = tmp_path / "wider_face_train_bbx_gt.txt"
    path.write_text(text)
    with pytest.raises(DataError, match=message):
        read_annotations(path)


def test_split_listing_without_annotations_and_bad_roots(tmp_path, sample):
    root = tmp_path / "test_only"
    folder = root / "WIDER_test" / "images" / "1--B"
    folder.mkdir(parents=True)
    for name in ("z", "y"):
        (folder / f"{name}.jpg").write_bytes(b"")
    assert [key for key, _ in split_images(root, "test")] == ["1--B/y", "1--B/z"]
    with pytest.raises(DataError, match="WIDER_val/images"):
        split_images(tmp_path, "val")
    with pytest.raises(DataError, match="unknown split"):
        split_images(sample, "dev")
    with pytest.raises(DataError, match="split must be"):
        WiderFaceDataset(root, "test")


def test_dataset_images_keep_their_stored_pixel_order(tmp_path):
    # A JPEG tagged "rotate 90": user photos are turned upright, data-set images must not be,
    # because their annotations refer to the stored pixels (as in the authors' scripts).
    from PIL import Image

    from facedet.wider.layout import load_image

    pixels = np.zeros((40, 100, 3), dtype=np.uint8)
    pixels[:, :50] = 255
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "tagged.jpg"
    Image.fromarray(pixels).save(path, exif=exif)
    assert load_image(path).shape == (40, 100, 3)
    assert read_image(path).shape == (100, 40, 3)
    with pytest.raises(ImageError, match="cannot read data-set image"):
        load_image(tmp_path / "missing.jpg")


def _ground_truth_with(wider_gt_dir, folder, name, content):
    """A copy of the real ground truth in ``folder`` whose file ``name`` holds ``content`` instead."""
    folder.mkdir()
    for path in wider_gt_dir.glob("*.mat"):
        (folder / path.name).write_bytes(path.read_bytes())
    (folder / name).write_bytes(content)
    return folder


def _damaged_compressed_element():
    header = b"MATLAB 5.0 MAT-file".ljust(124, b" ") + b"\x00\x01IM"
    junk = b"not zlib at all!" * 4
    return header + struct.pack("<II", 15, len(junk)) + junk  # 15: a compressed element


def _flipped(path):
    """The real file with one byte of its compressed data changed."""
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x5A
    return bytes(data)


def _other_variables(tmp_path):
    path = tmp_path / "other.mat"
    scipy.io.savemat(str(path), {"other": np.eye(2)}, do_compression=True)
    return path.read_bytes()


@pytest.mark.parametrize("case, message", [
    ("garbage", "wider_hard_val.mat cannot be read as a MAT file"),
    ("damaged", "wider_hard_val.mat is damaged"),
    ("other", "wider_hard_val.mat has no variable 'gt_list'"),
    ("empty", "wider_hard_val.mat is empty"),
    ("flipped", "wider_hard_val.mat is damaged"),  # SciPy alone can crash on such a file
])
def test_unreadable_ground_truth_files_are_one_line_errors(wider_gt_dir, tmp_path, case, message):
    content = {"garbage": lambda: b"MATLAB 5.0 MAT-file" + bytes(range(256)) * 3,
               "damaged": _damaged_compressed_element, "other": lambda: _other_variables(tmp_path),
               "empty": lambda: b"", "flipped": lambda: _flipped(wider_gt_dir / "wider_hard_val.mat")}[case]()
    folder = _ground_truth_with(wider_gt_dir, tmp_path / "gt", "wider_hard_val.mat", content)
    with pytest.raises(DataError, match=message) as err:
        load_ground_truth(folder)
    assert "\n" not in str(err.value)

