"""Training augmentation: boxes stay on the faces through crops, zooms, padding and flips."""

import numpy as np
import pytest
import torch

from facedet.images import read_image
from facedet.wider.dataset import WiderFaceDataset
from facedet.wider.sample_set import SOURCES, write_sample_set
from pruning.augment import TrainTransform, collate, project_boxes

SIZE = 320
MEAN = torch.tensor([123.0, 117.0, 104.0])[:, None, None]


@pytest.fixture(scope="module")
def samples(tmp_path_factory):
    """The sample set's training images (real portraits pasted at many sizes) with their boxes."""
    root = write_sample_set(tmp_path_factory.mktemp("augment_sample"), images=6, seed=0)
    dataset = WiderFaceDataset(root, "train")
    return [dataset[i] for i in range(len(dataset))]


@pytest.fixture(scope="module")
def portrait(assets_dir):
    return read_image(assets_dir / "grace_hopper.jpg"), np.array([SOURCES["grace_hopper.jpg"]], dtype=np.float32)


def _face_mask(image, boxes):
    """White faces on black, the same size as ``image``: where the boxes are."""
    mask = np.zeros_like(image)
    for x1, y1, x2, y2 in np.round(boxes).astype(int):
        mask[y1:y2, x1:x2] = 255
    return mask


def _pixels(tensor):
    return (tensor + MEAN).permute(1, 2, 0).numpy()


@pytest.mark.parametrize("anchor_probability", [1.0, 0.0], ids=["data-anchor", "random-crop"])
def test_boxes_cover_the_same_pixels_as_the_faces(samples, anchor_probability):
    # The draws depend only on image size and boxes, so a mask of the faces transformed with the
    # same seed shows where the faces went: each output box must sit on white, with black around.
    checked = 0
    for seed in range(12):
        for image, boxes in samples:
            options = dict(photometric=False, data_anchor_probability=anchor_probability)
            _, out_boxes = TrainTransform(SIZE, rng=seed, **options)(image, boxes)
            mask, mask_boxes = TrainTransform(SIZE, rng=seed, **options)(_face_mask(image, boxes), boxes)
            assert torch.equal(out_boxes, mask_boxes)
            white = _pixels(mask).min(axis=2) > 200
            for x1, y1, x2, y2 in (out_boxes.numpy() * SIZE):
                assert 0 <= x1 < x2 <= SIZE and 0 <= y1 < y2 <= SIZE
                inner = white[int(np.ceil(y1)) + 1 : int(y2) - 1, int(np.ceil(x1)) + 1 : int(x2) - 1]
                if inner.size:
                    assert inner.mean() > 0.97
                # Just outside each edge (inside the crop), the face has ended.
                ring = []
                if x1 >= 2:
                    ring.append(white[int(y1 + 1) : int(y2 - 1), int(x1) - 2])
                if x2 <= SIZE - 2:
                    ring.append(white[int(y1 + 1) : int(y2 - 1), int(np.ceil(x2)) + 1])
                if y1 >= 2:
                    ring.append(white[int(y1) - 2, int(x1 + 1) : int(x2 - 1)])
                if y2 <= SIZE - 2:
                    ring.append(white[int(np.ceil(y2)) + 1, int(x1 + 1) : int(x2 - 1)])
                ring = np.concatenate(ring) if ring else np.zeros(0, bool)
                if ring.size and (x2 - x1) * (y2 - y1) > 64:  # tiny faces may touch a neighbour
                    assert ring.mean() < 0.34, (seed, x1, y1, x2, y2)
                checked += 1
    assert checked > 100


def test_crops_keep_the_faces_whose_centre_they_hold_clipped_to_the_crop(samples):
    image, boxes = max(samples, key=lambda item: len(item[1]))
    boxes = boxes.astype(np.float64)
    side = min(image.shape[:2]) / 2
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2
    cx, cy = centres[0]
    # Square windows whose left / top / right / bottom edge passes 1 px beyond the first face's centre.
    windows = [(cx + 1, cy - side / 2, cx + 1 + side, cy + side / 2), (cx - side / 2, cy + 1, cx + side / 2, cy + 1 + side),
               (cx - 1 - side, cy - side / 2, cx - 1, cy + side / 2), (cx - side / 2, cy - 1 - side, cx + side / 2, cy - 1)]
    for window in windows:
        out = project_boxes(boxes, window, SIZE, min_face=0)
        held = ((centres[:, 0] > window[0]) & (centres[:, 0] < window[2])
                & (centres[:, 1] > window[1]) & (centres[:, 1] < window[3]))
        assert not held[0] and len(out) == held.sum()
        expected = np.clip((boxes[held] - np.array(window[:2] * 2)) * SIZE / side, 0, SIZE)
        assert np.allclose(out, expected)


def test_output_is_the_detectors_input_with_normalised_boxes(samples):
    transform = TrainTransform(SIZE, rng=3)
    for image, boxes in samples:
        tensor, out = transform(image, boxes)
        assert tensor.shape == (3, SIZE, SIZE) and tensor.dtype == torch.float32
        pixels = _pixels(tensor)
        assert pixels.min() >= -1e-4 and pixels.max() <= 255 + 1e-4
        assert out.dtype == torch.float32 and out.shape[1] == 4
        assert ((out >= 0) & (out <= 1)).all() and (out[:, 2:] > out[:, :2]).all()
        # No face smaller than the minimum (6 px) is kept.
        assert (((out[:, 2] - out[:, 0]) * (out[:, 3] - out[:, 1])) * SIZE**2 >= 36 - 1e-3).all()


def test_flip_mirrors_image_and_boxes(portrait):
    image, boxes = portrait
    plain_image, plain_boxes = TrainTransform(SIZE, rng=5, flip_probability=0.0)(image, boxes)
    flipped_image, flipped_boxes = TrainTransform(SIZE, rng=5, flip_probability=1.0)(image, boxes)
    assert len(plain_boxes) == 1
    assert torch.equal(flipped_image, plain_image.flip(-1))
    expected = torch.stack((1 - plain_boxes[:, 2], plain_boxes[:, 1], 1 - plain_boxes[:, 0], plain_boxes[:, 3]), dim=1)
    assert torch.allclose(flipped_boxes, expected, atol=1e-6)


def test_same_seed_same_crops_other_seed_other_crops(samples):
    image, boxes = samples[2]
    first = [TrainTransform(SIZE, rng=np.random.default_rng(7))(image, boxes) for _ in range(2)]
    assert torch.equal(first[0][0], first[1][0]) and torch.equal(first[0][1], first[1][1])
    other = TrainTransform(SIZE, rng=8)(image, boxes)
    assert not torch.equal(first[0][0], other[0])


def test_data_anchor_sampling_brings_a_large_face_to_anchor_sizes(portrait):
    # Grace Hopper's face is ~200 px: zooms aim it at an anchor (16..512 px) up to one step
    # above its nearest (256), times 2^[-1, 1]; crops keep the face while it fits.
    image, boxes = portrait
    transform = TrainTransform(640, rng=11, photometric=False, data_anchor_probability=1.0)
    sides = []
    for _ in range(30):
        _, out = transform(image, boxes)
        sides += (torch.sqrt((out[:, 2] - out[:, 0]) * (out[:, 3] - out[:, 1])) * 640).tolist()
    assert len(sides) >= 25
    assert min(sides) < 32 and max(sides) > 128 and min(sides) >= 8


def test_photometric_distortion_changes_colours_not_geometry(portrait):
    image, boxes = portrait
    changed = 0
    for seed in range(6):
        distorted, distorted_boxes = TrainTransform(SIZE, rng=seed)(image, boxes)
        plain, plain_boxes = TrainTransform(SIZE, rng=seed, photometric=False)(image, boxes)
        assert torch.equal(distorted_boxes, plain_boxes)
        # Same crop: the mean-colour padding (zero after normalisation) is in the same place, up
        # to a few pixels along its edge where the image blends in.
        padding, plain_padding = distorted.abs().sum(0) == 0, plain.abs().sum(0) == 0
        assert (padding != plain_padding).sum() <= 4 * SIZE
        changed += not torch.equal(distorted, plain)
    assert changed >= 4


def test_images_without_faces_and_bad_input(portrait):
    image, _ = portrait
    tensor, boxes = TrainTransform(SIZE, rng=0)(image, np.zeros((0, 4), np.float32))
    assert tensor.shape == (3, SIZE, SIZE) and boxes.shape == (0, 4)
    with pytest.raises(ValueError):
        TrainTransform(SIZE, rng=0)(image.astype(np.float32), np.zeros((0, 4)))
    with pytest.raises(ValueError):
        TrainTransform(SIZE, rng=0)(image[..., 0], np.zeros((0, 4)))


def test_collate_stacks_images_and_keeps_box_lists(samples):
    transform = TrainTransform(SIZE, rng=0)
    items = [transform(image, boxes) for image, boxes in samples[:3]]
    images, targets = collate(items)
    assert images.shape == (3, 3, SIZE, SIZE)
    assert [len(t) for t in targets] == [len(boxes) for _, boxes in items]
    assert all(torch.equal(a, b) for a, b in zip(targets, (boxes for _, boxes in items)))
