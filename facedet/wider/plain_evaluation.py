"""The WIDER FACE protocol written the plain way: image by image, threshold by threshold.

An executable specification, slow on purpose (about as slow as the standard eval tools): the
tests check the vectorised ``evaluation.evaluate`` against it, and ``benchmarks/bench_evaluate.py``
times both. Not used by the commands.
"""

import numpy as np

from facedet.iou import pixel_iou
from facedet.wider.evaluation import IOU_THRESHOLD, WiderAP, thresholds, voc_ap
from facedet.wider.ground_truth import SETTINGS, load_ground_truth
from facedet.wider.submission import checked_predictions


def plain_evaluate(predictions, gt_dir, only_predicted=False):
    gt = load_ground_truth(gt_dir)
    predictions = checked_predictions(predictions)
    scores = [rows[:, 4] for rows in predictions.values() if len(rows)]
    low = min([1.0] + [s.min() for s in scores])
    high = max([0.0] + [s.max() for s in scores])
    thresh = thresholds()
    aps, curves = {}, {}
    for setting in SETTINGS:
        counts = np.zeros((len(thresh), 2))  # proposals, recalled faces
        num_faces = 0
        for i, key in enumerate(gt.keys):
            if only_predicted and key not in predictions:
                continue
            faces = gt.boxes[gt.offsets[i] : gt.offsets[i + 1]]
            keep = gt.keep[setting][gt.offsets[i] : gt.offsets[i + 1]]
            num_faces += int(keep.sum())
            dets = predictions.get(key, np.zeros((0, 5)))
            if len(faces) == 0 or len(dets) == 0:
                continue
            dets = dets[np.argsort(-dets[:, 4], kind="stable")]
            score = (dets[:, 4] - low) / (high - low) if high > low else np.ones(len(dets))
            proposal, recalled = _image_tables(dets[:, :4], faces, keep)
            for t, threshold in enumerate(thresh):
                passing = np.flatnonzero(score >= threshold)
                if len(passing):
                    last = passing[-1]
                    counts[t] += (proposal[: last + 1].sum(), recalled[last])
        with np.errstate(divide="ignore", invalid="ignore"):
            precision, recall = counts[:, 1] / counts[:, 0], counts[:, 1] / num_faces
        aps[setting] = float(voc_ap(recall, precision))
        curves[setting] = (precision, recall)
    return WiderAP(curves=curves, **aps)


def _image_tables(dets, faces, keep):
    """Per detection (best first): is it a proposal, and how many kept faces are recalled so far."""
    d = np.column_stack([dets[:, :2], dets[:, :2] + dets[:, 2:4]])
    f = np.column_stack([faces[:, :2], faces[:, :2] + faces[:, 2:4]])
    proposal = np.ones(len(d), dtype=bool)
    recalled_so_far = np.zeros(len(d), dtype=np.int64)
    state = np.zeros(len(f), dtype=np.int64)  # 0 not found, 1 recalled, -1 ignored and hit
    for n in range(len(d)):
        iou = pixel_iou(*d[n], *f.T)
        best = int(np.argmax(iou))
        if iou[best] >= IOU_THRESHOLD:
            if not keep[best]:
                state[best] = -1
                proposal[n] = False
            elif state[best] == 0:
                state[best] = 1
        recalled_so_far[n] = int((state == 1).sum())
    return proposal, recalled_so_far

