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

Detections are matched chunk by chunk as they are read, keeping only their scores and the few
matches: fresh memory is much of what large submissions cost (on the small VMs this runs on,
touching a megabyte for the first time costs as much as dozens of numpy passes over it).

No torch on this path: ``python -m facedet evaluate`` takes about a second on the full validation set.
"""

from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np

from facedet.errors import DataError
from facedet.iou import pixel_iou
from facedet.wider.ground_truth import SETTINGS, load_ground_truth
from facedet.wider.submission import dict_chunks
from facedet.wider import completion
from facedet.wider.submission_reader import list_submission, submission_chunks

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
    only_predicted: bool = field(default=False, compare=False)  # the predicted images only: not the standard AP

    def as_dict(self):
        return {"easy": self.easy, "medium": self.medium, "hard": self.hard}


def thresholds():
    """The standard's score thresholds, 0.999 down to 0, exactly as it computes them."""
    return 1 - np.arange(1, NUM_THRESHOLDS + 1) / NUM_THRESHOLDS


def evaluate(predictions, gt_dir, only_predicted=False, allow_incomplete=False):
    """Easy / Medium / Hard AP of ``predictions`` against the ground truth in ``gt_dir``.

    ``predictions``: a submission folder, or a dict ``"event/image_stem" -> (N, 5) x, y, w, h,
    score``. Images without predictions count as images without detections, unless
    ``only_predicted`` restricts the ground truth to the predicted images (quick partial checks).
    A folder that ``facedet predict`` did not finish is refused (DataError), or with
    ``allow_incomplete`` evaluated on its predicted images (a warning says so); one without its
    marker warns that its completeness cannot be checked (``facedet.wider.completion``).
    """
    gt = load_ground_truth(gt_dir)
    if isinstance(predictions, (str, Path)):
        listing = list_submission(predictions)
        if not only_predicted:
            only_predicted = completion.check_before_evaluating(predictions, len(listing.keys), allow_incomplete)
        chunks = submission_chunks(predictions, listing)
    else:
        chunks = dict_chunks(predictions)
    found = _match_chunks(chunks, gt)
    if found.keys and (found.key_image < 0).all():
        raise DataError(f"no prediction matches an image of the ground truth (e.g. {found.keys[0]!r}); wrong folder?")
    images = np.arange(len(gt.keys))
    if only_predicted:
        images = np.unique(found.key_image[found.key_image >= 0])

    # Each detection's first threshold index it passes (NUM_THRESHOLDS: none), from its score
    # normalised over the whole set; thresholds fall, so it counts at every later index too.
    low, span = _score_range(found.parts)
    proposal_bins = np.zeros(NUM_THRESHOLDS + 1, dtype=np.int64)
    hit_levels = []
    for part in found.parts:
        level = threshold_levels(_normalise(part.scores, low, span))
        # Detections in images of the ground truth that have faces are proposals (as in the standard).
        proposal_bins += np.bincount(level if part.usable is None else level[part.usable], minlength=NUM_THRESHOLDS + 1)
        hit_levels.append(level[part.hit])
    all_proposals = np.cumsum(proposal_bins[:NUM_THRESHOLDS]).astype(np.float64)
    hit_level = np.concatenate(hit_levels) if hit_levels else np.zeros(0, dtype=np.int16)
    hit_face = np.concatenate([part.hit_face for part in found.parts]) if found.parts else np.zeros(0, dtype=np.int64)
    # A face counts as recalled from the first threshold its best-scoring match passes.
    face_level = np.full(len(gt.boxes), NUM_THRESHOLDS, dtype=np.int16)
    np.minimum.at(face_level, hit_face, hit_level)

    face_in_set = np.zeros(len(gt.boxes), dtype=bool)
    face_in_set[_face_rows(gt.offsets, images)] = True
    aps, curves = {}, {}
    for setting in SETTINGS:
        count_faces = _kept_count(gt, setting, images)
        # ... except those matching a face this setting ignores.
        proposals = all_proposals - _levels_to_counts(hit_level[~gt.keep[setting][hit_face]])
        recalled = _levels_to_counts(face_level[gt.keep[setting] & face_in_set])
        with np.errstate(divide="ignore", invalid="ignore"):
            precision = recalled / proposals
            recall = recalled / count_faces
        aps[setting] = float(voc_ap(recall, precision))
        curves[setting] = (precision, recall)
    return WiderAP(curves=curves, only_predicted=bool(only_predicted), **aps)


class _Part(NamedTuple):
    """What AP needs of one chunk's detections."""

    scores: np.ndarray  # raw scores, all detections
    usable: np.ndarray  # in a ground-truth image that has faces (None: all are)
    hit: np.ndarray  # positions of the detections that match a face
    hit_face: np.ndarray  # the faces they match


class _Matched(NamedTuple):
    keys: list
    key_image: np.ndarray  # per prediction key: its ground-truth image, or -1
    parts: list  # _Part per chunk


def _match_chunks(chunks, gt):
    """Match every detection, chunk by chunk (small temporaries), keeping only what AP needs."""
    index = {key: i for i, key in enumerate(gt.keys)}
    has_faces = np.diff(gt.offsets) > 0
    matcher = FaceMatcher(gt.boxes, gt.offsets)
    keys, key_images, parts = [], [], []
    for chunk in chunks:
        key_image = np.array([index.get(key, -1) for key in chunk.keys], dtype=np.int64)
        det_image = np.repeat(key_image, chunk.counts)
        usable = det_image >= 0
        usable[usable] = has_faces[det_image[usable]]
        if usable.all():
            usable = None
            matched = matcher(chunk.rows, det_image)
        else:
            matched = np.full(len(usable), -1, dtype=np.int64)
            matched[usable] = matcher(chunk.rows[usable], det_image[usable])
        hit = np.flatnonzero(matched >= 0)
        keys += chunk.keys
        key_images.append(key_image)
        parts.append(_Part(np.array(chunk.rows[:, 4]), usable, hit, matched[hit]))
    key_image = np.concatenate(key_images) if key_images else np.zeros(0, dtype=np.int64)
    return _Matched(keys, key_image, parts)


def threshold_levels(scores):
    """Per normalised score in [0, 1], how many thresholds are above it: the index of the first it passes.

    Arithmetic gives it to within a few places, then comparing with the exact thresholds around
    that place settles it (as exact as bisection, and several times faster on millions).
    """
    padded = _PADDED_THRESHOLDS
    guess = np.clip(np.floor((1 - scores) * NUM_THRESHOLDS) - 2, 0, NUM_THRESHOLDS).astype(np.int16)
    level = guess.copy()
    for step in range(4):
        level += padded[guess + step] > scores
    return level


_PADDED_THRESHOLDS = np.concatenate([thresholds(), np.full(4, -np.inf)])


def _levels_to_counts(levels):
    """For each threshold index, how many of ``levels`` are at or below it."""
    return np.cumsum(np.bincount(levels, minlength=NUM_THRESHOLDS + 1)[:NUM_THRESHOLDS]).astype(np.float64)


class FaceMatcher:
    """For detections, the index of the face each matches (IoU >= 0.5, best, first on ties) or -1.

    Only faces that can reach IoU 0.5 are compared. IoU >= 0.5 needs the overlap along x to be
    at least a third of the two widths together, which puts the face's centre inside the
    detection's own x extent. Faces are sorted by centre within each image, and a table over
    cells of a few pixels gives the faces of any stretch of x: two lookups per detection give
    its candidates (a few more than needed, all then checked exactly). Lookups, not bisection:
    with millions of detections binary search alone took longer than everything else.
    """

    MAX_CELLS = 1 << 22

    def __init__(self, face_xywh, offsets):
        self.fx1, self.fy1 = face_xywh[:, 0], face_xywh[:, 1]
        self.fx2, self.fy2 = face_xywh[:, 2] + self.fx1, face_xywh[:, 3] + self.fy1
        self.empty = len(face_xywh) == 0
        if self.empty:
            return
        images = len(offsets) - 1
        face_image = np.repeat(np.arange(images), np.diff(offsets))
        face_cx = (self.fx1 + self.fx2 + 1) / 2
        self.base = face_cx.min()
        width = face_cx.max() - self.base
        cell = max(4.0, width * images / self.MAX_CELLS)
        self.last_cell = int(width // cell) + 1
        self.cells = self.last_cell + 1  # per image
        self.scale = 1 / cell
        self.order = np.lexsort((face_cx, face_image))
        face_cell = face_image[self.order] * self.cells + ((face_cx[self.order] - self.base) * self.scale).astype(np.int64)
        per_cell = np.bincount(face_cell, minlength=images * self.cells)
        self.cell_start = np.concatenate([[0], np.cumsum(per_cell)])  # first face in cell c or later
        self.cell_end = self.cell_start[1:]  # first face after cell c

    def __call__(self, det_rows, det_image):
        """``det_rows``: (N, >=4) x, y, w, h; ``det_image``: each detection's image (all valid)."""
        matched = np.full(len(det_rows), -1, dtype=np.int64)
        if len(det_rows) == 0 or self.empty:
            return matched
        x, w = det_rows[:, 0], det_rows[:, 2]
        # The x extent [x, x + w + 1], widened by far more than any rounding can move a centre.
        slack = 1.0 + 1e-6 * (float(np.abs(x).max()) + float(np.abs(w).max()))
        row = det_image * self.cells
        lo = np.clip((x - (self.base + slack)) * self.scale, 0, self.last_cell).astype(np.int64)
        hi = np.clip((x + w + (1 + slack - self.base)) * self.scale, 0, self.last_cell).astype(np.int64)
        first = self.cell_start[lo + row]
        counts = np.maximum(self.cell_end[hi + row] - first, 0)

        pair_det = np.repeat(np.arange(len(det_rows)), counts)
        starts = np.cumsum(counts) - counts
        pair_face = self.order[np.arange(len(pair_det)) - np.repeat(starts - first, counts)]
        px1, py1 = x[pair_det], det_rows[pair_det, 1]
        iou = pixel_iou(px1, py1, px1 + w[pair_det], py1 + det_rows[pair_det, 3],
                        self.fx1[pair_face], self.fy1[pair_face], self.fx2[pair_face], self.fy2[pair_face])
        good = iou >= IOU_THRESHOLD
        pair_det, pair_face, iou = pair_det[good], pair_face[good], iou[good]
        # Per detection: highest IoU, then lowest face index (numpy's argmax picks the first maximum).
        pick = np.lexsort((pair_face, -iou, pair_det))
        pair_det, pair_face = pair_det[pick], pair_face[pick]
        firsts = np.ones(len(pair_det), dtype=bool)
        firsts[1:] = pair_det[1:] != pair_det[:-1]
        matched[pair_det[firsts]] = pair_face[firsts]
        return matched


def voc_ap(recall, precision):
    """Area under the monotone precision envelope, with the standard's sentinels and sums."""
    mrec = np.concatenate(([0.0], recall, [1.0]))
    mpre = np.concatenate(([0.0], precision, [0.0]))
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    i = np.where(mrec[1:] != mrec[:-1])[0]
    return np.sum((mrec[i + 1] - mrec[i]) * mpre[i + 1])


def _score_range(parts):
    """(min, max - min) of all scores, starting from the standard's initial range [1, 0]."""
    scores = [part.scores for part in parts if len(part.scores)]
    if not scores:
        return 1.0, -1.0
    low = min(1.0, min(s.min() for s in scores))
    high = max(0.0, max(s.max() for s in scores))
    return low, high - low


def _normalise(scores, low, span):
    if span == 0:
        # All scores equal: the standard divides 0 by 0 and loses every detection; we keep them
        # all at the top of the range instead (a single-point PR curve).
        return np.ones_like(scores)
    return (scores - low) / span


def _face_rows(offsets, images):
    counts = offsets[images + 1] - offsets[images]
    starts = np.repeat(offsets[images] - np.cumsum(counts) + counts, counts)
    return np.arange(counts.sum()) + starts


def _kept_count(gt, setting, images):
    if len(images) == len(gt.keys):
        return gt.keep_counts[setting]
    return int(gt.keep[setting][_face_rows(gt.offsets, images)].sum())
