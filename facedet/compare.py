"""Comparing two detectors' outputs on one image: which faces both find, which only one finds.

The app's Compare page draws the pruned model's detections against the original model's; this
module does the matching (greedy, best score first, one-to-one, by IoU), no drawing.
"""

from typing import NamedTuple

import numpy as np

from facedet.iou import iou_matrix


class Comparison(NamedTuple):
    """Indices into the reference (original) and candidate (pruned) detection arrays."""

    matched: np.ndarray  # (K, 2) pairs [reference index, candidate index]
    only_candidate: np.ndarray  # candidate detections with no reference partner
    missed: np.ndarray  # reference detections the candidate does not find
    ious: np.ndarray  # (K,) IoU of each matched pair


def _as_rows(detections):
    """(N, C) float array of detections; an empty input becomes (0, 5)."""
    arr = np.asarray(detections, dtype=np.float64)
    return arr.reshape(0, 5) if arr.size == 0 else arr.reshape(-1, arr.shape[-1])


def match_detections(reference, candidate, iou_threshold=0.5):
    """Pair the candidate's detections with the reference's, one-to-one.

    Candidates are taken best score first (column 4 when present, else in order); each takes the
    still-unpaired reference box it overlaps most, if that IoU reaches ``iou_threshold``.
    """
    reference, candidate = _as_rows(reference), _as_rows(candidate)
    ious = iou_matrix(reference, candidate)
    order = np.argsort(-candidate[:, 4], kind="stable") if candidate.shape[1] > 4 else np.arange(len(candidate))
    free = np.ones(len(reference), dtype=bool)
    pairs, pair_ious, unmatched = [], [], []
    for j in order:
        column = np.where(free, ious[:, j], -1.0)
        i = int(np.argmax(column)) if column.size else -1
        if i >= 0 and column[i] >= iou_threshold:
            free[i] = False
            pairs.append((i, int(j)))
            pair_ious.append(float(column[i]))
        else:
            unmatched.append(int(j))
    return Comparison(
        matched=np.asarray(pairs, dtype=np.int64).reshape(-1, 2),
        only_candidate=np.asarray(sorted(unmatched), dtype=np.int64),
        missed=np.flatnonzero(free).astype(np.int64),
        ious=np.asarray(pair_ious, dtype=np.float64),
    )


def compare_detectors(reference, candidate, image, threshold=0.5, scale=None, iou_threshold=0.5):
    """Run two ``Detector`` objects on one RGB image and pair their faces (scores >= ``threshold``).

    Returns ``(reference detections, candidate detections, Comparison, summary)``; ``summary`` is
    what ``facedet compare --json`` prints: faces per side, matched, only-reference ("only the
    original finds") and only-candidate counts, the scale each ran at, parameters.
    """
    sides = []
    for detector in (reference, candidate):
        used = detector.scale_for(*image.shape[:2], scale)
        sides.append((detector.detect(image, scale=used, threshold=threshold), used))
    (ref_dets, ref_scale), (cand_dets, cand_scale) = sides
    comparison = match_detections(ref_dets, cand_dets, iou_threshold)

    def describe(detector, dets, used):
        counts = detector.parameter_count()  # a peer's (YuNet): its ONNX file's
        return {"detector": detector.arch, "faces": int(len(dets)), "scale": round(float(used), 4),
                "parameters": counts.total, "nonzero_parameters": counts.nonzero}

    summary = {
        "reference": describe(reference, ref_dets, ref_scale),
        "candidate": describe(candidate, cand_dets, cand_scale),
        "threshold": threshold, "iou_threshold": iou_threshold,
        "matched": int(len(comparison.matched)),
        "only_reference": int(len(comparison.missed)),
        "only_candidate": int(len(comparison.only_candidate)),
    }
    return ref_dets, cand_dets, comparison, summary
