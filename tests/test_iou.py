"""The two IoU conventions (facedet.iou): continuous boxes, and inclusive pixel extents."""

import numpy as np
import pytest
import torch

from facedet.iou import iou_matrix, pixel_iou


def test_iou_of_known_boxes():
    a = [[0, 0, 10, 10]]
    b = [[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30], [0, 0, 5, 10]]
    assert iou_matrix(a, b)[0] == pytest.approx([1.0, 50 / 150, 0.0, 0.5])
    assert iou_matrix(np.zeros((0, 5)), b).shape == (0, 4)
    assert iou_matrix([[3, 3, 3, 3]], [[3, 3, 3, 3]])[0, 0] == 0.0  # empty union: no overlap, not NaN


def test_tensors_keep_their_dtype_and_give_the_arrays_values():
    rng = np.random.default_rng(3)
    corners = rng.uniform(0, 100, (2, 40, 2))
    boxes = np.concatenate((corners[0], corners[0] + rng.uniform(1, 40, (40, 2))), axis=1)
    others = np.concatenate((corners[1], corners[1] + rng.uniform(1, 40, (40, 2)), rng.uniform(0, 1, (40, 1))), axis=1)
    expected = iou_matrix(boxes, others)  # the score column is ignored
    assert expected.shape == (40, 40) and 0 < (expected > 0).mean() < 1
    got = iou_matrix(torch.tensor(boxes, dtype=torch.float32), torch.tensor(others, dtype=torch.float32))
    assert got.dtype == torch.float32 and np.allclose(got.numpy(), expected, atol=1e-6)


def test_pixel_iou_counts_the_last_pixel():
    # [0, 9] covers 10 pixels: the same boxes as above in the inclusive convention.
    iou = pixel_iou(0, 0, 9, 9, np.array([0, 5, 20, 0]), np.array([0, 0, 20, 0]), np.array([9, 14, 29, 4]),
                    np.array([9, 9, 29, 9]))
    assert iou == pytest.approx([1.0, 50 / 150, 0.0, 0.5])
    assert pixel_iou(0, 0, 0, 0, 0, 0, 0, 0) == 1.0  # a one-pixel box is a box
