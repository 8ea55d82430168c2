"""The standard WIDER FACE evaluation (Easy / Medium / Hard AP), vectorised.

Same numbers as the eval-tools code, computed over the whole set at once instead of image by
image and threshold by threshold:

- scores are min-max normalised over every prediction given; like the standard code the range
  starts from [1, 0] (so it is the plain min and max for scores in [0, 1]);
- a detection matches the face it overlaps most (first one on ties) when that IoU is >= 0.5,
  IoU computed with the +1-pixel convention on ``x, y, x + w, y + h`` boxes;
- in each setting, faces outside its keep-list are ignored and detections matching them are not
  proposals; a face counts as recalled at a threshold if any detection scoring at least the
  threshold matches it (a second match adds a proposal but no recall);
- detections in images without faces, and for images not in the ground truth, count nowhere;
- precision and recall are summed over images at 1,000 thresholds, and AP is the area under the
  monotone precision envelope.

With every detection in a file processed best-first (files are sorted by score, as the official
MATLAB reader does), the standard per-image loop reduces to counting, per threshold, the
detections that are proposals and the faces whose best matching detection passes it.

No torch on this path: ``python -m facedet evaluate`` must stay well under a second.
"""

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from facedet.errors import DataError
from facedet.wider.ground_truth import SETTINGS, load_ground_truth
from facedet.wider.submission import PredictionTable, read_submission_table

IOU_THRESHOLD = 0.5
NUM_THRESHOLDS = 1000


@dataclass(frozen=True)
class WiderAP:
    easy: float
    medium: float
    hard: float
    # setting -> (precision, recall) over the 1,000 thresholds, highest threshold first.
    # Precision is NaN where no detection passes the threshold (as in the standard pr_info).
    curves: dict = field(repr=False, compare=False)

    def as_dict(self):
        return {"easy": self.easy, "medium": self.medium, "hard": self.hard}


def thresholds():
    """The standard's score thresholds, 0.999 down to 0, exactly as it computes them."""
    return 1 - np.arange(1, NUM_THRESHOLDS + 1) / NUM_THRESHOLDS


def evaluate(predictions, gt_dir, only_predicted=False):
    """Easy / Medium / Hard AP of ``predictions`` against the ground truth in ``gt_dir``.

    ``predictions``: a submission folder, or a dict ``"event/image_stem" -> (N, 5) x, y, w, h,
    score``. Images without predictions count as images without detections, unless
    ``only_predicted`` restricts the ground truth to the predicted images (quick partial checks).
    """
    if isinstance(predictions, (str, Path)):
        table = read_submission_table(predictions)
    else:
        table = PredictionTable.from_dict(predictions)
    gt = load_ground_truth(gt_dir)
    low, span = _score_range(table.rows[:, 4])

    index = {key: i for i, key in enumerate(gt.keys)}
    key_image = np.array([index.get(key, -1) for key in table.keys], dtype=np.int64)
    if table.keys and (key_image < 0).all():
        raise DataError(f"no prediction matches an image of the ground truth (e.g. {table.keys[0]!r}); wrong folder?")
    images = np.arange(len(gt.keys))
    if only_predicted:
        images = np.unique(key_image[key_image >= 0])

    # Detections count only in images of the ground truth that have faces (as in the standard).
    det_image = np.repeat(key_image, np.diff(table.offsets))
    faces_per_image = np.diff(gt.offsets)
    used = det_image >= 0
    used[used] = faces_per_image[det_image[used]] > 0
    dets, det_image = table.rows[used], det_image[used]
    scores = _normalise(dets[:, 4], low, span)
    matched = match_faces(dets[:, :4], det_image, gt.boxes, gt.offsets)

    face_in_set = np.zeros(len(gt.boxes), dtype=bool)
    face_in_set[_face_rows(gt.offsets, images)] = True
    thresh = thresholds()
    aps, curves = {}, {}
    for setting in SETTINGS:
        keep = gt.keep[setting] & face_in_set
        count_faces = _kept_count(gt, setting, images)
        hit = matched >= 0
        on_ignored = hit & ~gt.keep[setting][np.where(hit, matched, 0)]
        proposals = _count_at_least(scores[~on_ignored], thresh)
        recalled_faces = hit & keep[np.where(hit, matched, 0)]
        best = _best_score_per_face(matched[recalled_faces], scores[recalled_faces])
        recalled = _count_at_least(best, thresh)
        with np.errstate(divide="ignore", invalid="ignore"):
            precision = recalled / proposals
            recall = recalled / count_faces
        aps[setting] = float(voc_ap(recall, precision))
        curves[setting] = (precision, recall)
    return WiderAP(curves=curves, **aps)


def match_faces(det_xywh, det_image, face_xywh, offsets):
    """For every detection, the index of the face it matches (IoU >= 0.5, best, first on ties) or -1.

    Only faces that can reach IoU 0.5 are compared: an IoU of 0.5 needs the 1-D IoU along x to
    be at least 0.5 too, which puts the face's centre within half the detection's width of the
    detection's centre. Faces are sorted by centre within each image and found by bisection.
    """
    matched = np.full(len(det_xywh), -1, dtype=np.int64)
    if len(det_xywh) == 0 or len(face_xywh) == 0:
        return matched
    dx1, dy1 = det_xywh[:, 0], det_xywh[:, 1]
    dx2, dy2 = det_xywh[:, 2] + dx1, det_xywh[:, 3] + dy1
    fx1, fy1 = face_xywh[:, 0], face_xywh[:, 1]
    fx2, fy2 = face_xywh[:, 2] + fx1, face_xywh[:, 3] + fy1
    det_width, det_height = dx2 - dx1 + 1, dy2 - dy1 + 1

    face_image = np.repeat(np.arange(len(offsets) - 1), np.diff(offsets))
    face_cx = (fx1 + fx2 + 1) / 2
    det_cx = (dx1 + dx2 + 1) / 2
    # One sorted axis for all images: image i owns the band [i * band, (i + 1) * band).
    base = face_cx.min() - 1
    band = face_cx.max() - base + 2
    order = np.lexsort((face_cx, face_image))
    face_key = face_image[order] * band + (face_cx[order] - base)
    half = det_width / 2 * (1 + 1e-9) + 1e-9 * np.abs(det_cx) + 0.5  # generous: misses nothing
    lo = np.clip(det_cx - half - base, 0, band - 1) + det_image * band
    hi = np.clip(det_cx + half - base, 0, band - 1) + det_image * band
    first = np.searchsorted(face_key, lo, side="left")
    counts = np.searchsorted(face_key, hi, side="right") - first
    counts[(det_width <= 0) | (det_height <= 0) | (counts < 0)] = 0  # such boxes overlap nothing

    pair_det = np.repeat(np.arange(len(det_xywh)), counts)
    starts = np.cumsum(counts) - counts
    pair_face = order[np.arange(counts.sum()) - np.repeat(starts - first, counts)]
    iou = _overlaps(dx1[pair_det], dy1[pair_det], dx2[pair_det], dy2[pair_det],
                    fx1[pair_face], fy1[pair_face], fx2[pair_face], fy2[pair_face])
    good = iou >= IOU_THRESHOLD
    pair_det, pair_face, iou = pair_det[good], pair_face[good], iou[good]
    # Per detection: highest IoU, then lowest face index (numpy's argmax picks the first maximum).
    pick = np.lexsort((pair_face, -iou, pair_det))
    pair_det, pair_face = pair_det[pick], pair_face[pick]
    firsts = np.ones(len(pair_det), dtype=bool)
    firsts[1:] = pair_det[1:] != pair_det[:-1]
    matched[pair_det[firsts]] = pair_face[firsts]
    return matched


def _overlaps(ax1, ay1, ax2, ay2, bx1, by1, bx2, by2):
    """IoU of box pairs, operation for operation as the standard's ``bbox_overlaps``."""
    iw = np.minimum(ax2, bx2) - np.maximum(ax1, bx1) + 1
    ih = np.minimum(ay2, by2) - np.maximum(ay1, by1) + 1
    b_area = (bx2 - bx1 + 1) * (by2 - by1 + 1)
    union = (ax2 - ax1 + 1) * (ay2 - ay1 + 1) + b_area - iw * ih
    inside = (iw > 0) & (ih > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(inside, iw * ih / np.where(inside, union, 1), 0.0)


def voc_ap(recall, precision):
    """Area under the monotone precision envelope, with the standard's sentinels and sums."""
    mrec = np.concatenate(([0.0], recall, [1.0]))
    mpre = np.concatenate(([0.0], precision, [0.0]))
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    i = np.where(mrec[1:] != mrec[:-1])[0]
    return np.sum((mrec[i + 1] - mrec[i]) * mpre[i + 1])


def _score_range(scores):
    """(min, max - min) of all scores, starting from the standard's initial range [1, 0]."""
    if len(scores) == 0:
        return 1.0, -1.0
    low, high = min(1.0, scores.min()), max(0.0, scores.max())
    return low, high - low


def _normalise(scores, low, span):
    if span == 0:
        # All scores equal: the standard divides 0 by 0 and loses every detection; we keep them
        # all at the top of the range instead (a single-point PR curve).
        return np.ones_like(scores)
    return (scores - low) / span


def _count_at_least(values, thresh):
    """For each threshold, how many values are >= it."""
    ordered = np.sort(values)
    return (len(ordered) - np.searchsorted(ordered, thresh, side="left")).astype(np.float64)


def _best_score_per_face(faces, scores):
    if len(faces) == 0:
        return scores[:0]
    order = np.lexsort((-scores, faces))
    faces, scores = faces[order], scores[order]
    first = np.ones(len(faces), dtype=bool)
    first[1:] = faces[1:] != faces[:-1]
    return scores[first]


def _face_rows(offsets, images):
    counts = offsets[images + 1] - offsets[images]
    starts = np.repeat(offsets[images] - np.cumsum(counts) + counts, counts)
    return np.arange(counts.sum()) + starts


def _kept_count(gt, setting, images):
    if len(images) == len(gt.keys):
        return gt.keep_counts[setting]
    return int(gt.keep[setting][_face_rows(gt.offsets, images)].sum())
