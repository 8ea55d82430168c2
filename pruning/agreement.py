"""What pruning kept, without labels: agreement of a pruned detector with its teacher.

The teacher's detections (score >= 0.5) on photos serve as pseudo ground truth; the student's
detections are ranked by score over all photos and matched greedily (IoU >= 0.5, one-to-one, as
in WIDER FACE's Easy setting without its size filters), and the average precision is the area
under the interpolated precision-recall curve. 1.0 means the student finds what the teacher
finds, with no extra boxes ranked above them. The photos must not be ones it trained on.

``face_counts`` compares detections with hand-annotated faces instead: found / missed / false
boxes at a score threshold.
"""

from dataclasses import dataclass

import numpy as np

from facedet.iou import iou_matrix

PSEUDO_SCORE = 0.5
IOU = 0.5


@dataclass(frozen=True)
class Agreement:
    ap: float | None  # None when the teacher finds no face on any photo
    recall: float | None  # share of the teacher's faces the student finds at score >= PSEUDO_SCORE
    extra: int  # student boxes at score >= PSEUDO_SCORE with no teacher face
    teacher_faces: int
    photos: int


def average_precision(detections, truths, iou=IOU):
    """Interpolated AP of per-image ``detections`` ([N_i, 5]) against per-image ``truths`` ([M_i, >=4])."""
    scores, hits = [], []
    total = sum(len(t) for t in truths)
    for dets, faces in zip(detections, truths):
        dets = np.asarray(dets, dtype=np.float64).reshape(-1, 5)
        order = np.argsort(-dets[:, 4], kind="stable")
        dets = dets[order]
        overlaps = iou_matrix(dets, faces)
        free = np.ones(len(faces), dtype=bool)
        for i in range(len(dets)):
            column = np.where(free, overlaps[i], -1.0) if len(faces) else np.zeros(0)
            j = int(np.argmax(column)) if column.size else -1
            hit = j >= 0 and column[j] >= iou
            if hit:
                free[j] = False
            scores.append(dets[i, 4])
            hits.append(hit)
    if total == 0:
        return None
    if not scores:
        return 0.0
    order = np.argsort(-np.asarray(scores), kind="stable")
    hits = np.asarray(hits, dtype=np.float64)[order]
    tp = np.cumsum(hits)
    precision = tp / np.arange(1, len(hits) + 1)
    recall = tp / total
    # Precision made monotone from the right, integrated over the recall steps.
    precision = np.maximum.accumulate(precision[::-1])[::-1]
    steps = np.diff(np.concatenate(([0.0], recall)))
    return float(np.sum(steps * precision))


def face_counts(detections, faces, threshold=PSEUDO_SCORE, iou=0.4):
    """``(found, missed, false)``: one-to-one matches (best score first) of the detections scoring
    at least ``threshold`` with ``faces`` [M, 4] at IoU >= ``iou``."""
    from facedet.compare import match_detections

    dets = np.asarray(detections, dtype=np.float64).reshape(-1, 5)
    dets = dets[dets[:, 4] >= threshold]
    faces = np.asarray(faces, dtype=np.float64).reshape(-1, 4)
    result = match_detections(faces, dets, iou)
    return len(result.matched), len(result.missed), len(result.only_candidate)


def agreement(student_detections, teacher_detections, score=PSEUDO_SCORE, iou=IOU):
    """``Agreement`` of per-photo student detections with the teacher's (both [N, 5] arrays)."""
    truths = [np.asarray(t, dtype=np.float64).reshape(-1, 5) for t in teacher_detections]
    truths = [t[t[:, 4] >= score, :4] for t in truths]
    ap = average_precision(student_detections, truths, iou)
    found = extra = 0
    for dets, faces in zip(student_detections, truths):
        f, _, e = face_counts(dets, faces, score, iou)
        found, extra = found + f, extra + e
    total = sum(len(t) for t in truths)
    return Agreement(ap, found / total if total else None, extra, total, len(truths))


def detector_agreement(student, teacher, images, cancel=None):
    """``Agreement`` of two ``facedet.Detector`` objects on RGB ``images`` (automatic scale each)."""
    from facedet.cancel import is_cancelled

    student_dets, teacher_dets = [], []
    for image in images:
        if is_cancelled(cancel):
            break
        teacher_dets.append(teacher.detect(image))
        student_dets.append(student.detect(image))
    return agreement(student_dets, teacher_dets)
