"""Intersection over union of x1, y1, x2, y2 boxes, in the two conventions the project needs.

- ``iou_matrix``: continuous coordinates, a box's area is ``(x2 - x1) * (y2 - y1)``, as the
  detectors' outputs and the training targets are. Comparing detections, matching priors to
  faces in training, the agreement with a teacher.
- ``pixel_iou``: inclusive pixel extents, ``(x2 - x1 + 1) * (y2 - y1 + 1)``, as the WIDER FACE
  evaluation (its ``bbox_overlaps``) and the authors' box voting compute it.

(Non-maximum suppression computes its own, fused into its blocks, in ``facedet.postprocess``.)
``overlap_area`` is the plain area two boxes share (the pictures' and charts' label placement).
Torch is imported only by ``iou_matrix``: the evaluation, which uses ``pixel_iou``, stays torch-free.
"""

import numpy as np


def overlap_area(a, b):
    """The area two x1, y1, x2, y2 boxes share (continuous coordinates; 0 when apart)."""
    return max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))


def iou_matrix(a, b):
    """IoU ``[N, M]`` of every box in ``a`` with every box in ``b`` (rows of at least 4 numbers;
    columns after the fourth, such as a score, are ignored); 0 where the union is empty.

    Torch tensors stay on their device and dtype (training calls it on every batch); anything else
    is read as float64 and gives a NumPy array.
    """
    import torch

    if isinstance(a, torch.Tensor):
        return _iou_matrix(a[:, :4], b[:, :4])
    return _iou_matrix(torch.from_numpy(_rows(a)), torch.from_numpy(_rows(b))).numpy()


def _rows(boxes):
    """(N, 4) float64 array of the first four columns; an empty input becomes (0, 4)."""
    boxes = np.asarray(boxes, dtype=np.float64)
    return boxes.reshape(0, 4) if boxes.size == 0 else boxes.reshape(-1, boxes.shape[-1])[:, :4]


def _iou_matrix(a, b):
    # One coordinate at a time, in place: the memory stays at N * M (faces x priors in training).
    width = (a[:, None, 2].minimum(b[None, :, 2]) - a[:, None, 0].maximum(b[None, :, 0])).clamp_(min=0)
    height = (a[:, None, 3].minimum(b[None, :, 3]) - a[:, None, 1].maximum(b[None, :, 1])).clamp_(min=0)
    inter = width.mul_(height)
    union = ((a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1]))[:, None] + (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]) - inter
    positive = union > 0
    return (inter / union.where(positive, 1)).where(positive, 0)


def pixel_iou(ax1, ay1, ax2, ay2, bx1, by1, bx2, by2):
    """IoU of box pairs given as coordinate arrays (broadcast against each other), +1-pixel
    convention, operation for operation as the WIDER FACE standard's ``bbox_overlaps``."""
    iw = np.minimum(ax2, bx2) - np.maximum(ax1, bx1) + 1
    ih = np.minimum(ay2, by2) - np.maximum(ay1, by1) + 1
    b_area = (bx2 - bx1 + 1) * (by2 - by1 + 1)
    union = (ax2 - ax1 + 1) * (ay2 - ay1 + 1) + b_area - iw * ih
    inside = (iw > 0) & (ih > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(inside, iw * ih / np.where(inside, union, 1), 0.0)
