"""From network outputs to final detections: scores, candidate filtering, NMS."""

import math
from dataclasses import dataclass

import numpy as np
import torch

from facedet.box_coding import VARIANCES, decode
from facedet.nms import nms, top_order


@dataclass(frozen=True)
class PostprocessConfig:
    score_threshold: float = 0.05  # candidates must score above this to enter NMS
    nms_top_k: int = 5000  # at most this many candidates (highest scores) enter NMS
    nms_iou: float = 0.3
    keep_top_k: int = 750
    variances: tuple = VARIANCES


def _take_rows(tensor, index):
    """``tensor[index]`` for a 1-D index: NumPy's ``take`` on the CPU (an order of magnitude faster
    than torch's advanced indexing for a few thousand rows), ``index_select`` elsewhere."""
    if tensor.device.type == "cpu" and index.device.type == "cpu" and tensor.dtype != torch.bfloat16:
        return torch.from_numpy(np.take(tensor.detach().numpy(), index.numpy(), axis=0))
    return tensor.index_select(0, index.to(tensor.device))


def _scored_rows(conf, threshold, top_k):
    """``(rows, scores)``: the face scores (softmax of the logits ``conf``) of a set of rows that
    holds every row that can pass ``threshold`` and be among the ``top_k`` best.

    Both shortcuts follow the logit gap ``l1 - l0``, which the score grows with:
    ``softmax(l)[1] > t`` means ``l1 - l0 > logit(t)``, so rows well below that gap cannot pass;
    and with many more rows than ``top_k``, the best scores lie among the rows whose gap is at
    least the ``top_k``-th largest less a small margin. The float32 softmax rounds (a few units
    in the last place, more for large gaps), so the second shortcut is taken only when the
    ``top_k``-th best score kept beats, by more than that rounding, the score of the left-out row
    with the largest gap; otherwise every row that can pass is scored.
    """
    conf = conf.detach().float().cpu()
    logits = conf.numpy()
    gap = logits[:, 1] - logits[:, 0]  # float32, as torch computes it: NumPy keeps the bookkeeping cheap
    possible = None
    count = len(gap)
    if 0 < threshold < 1:  # a generous margin for rounding; the exact test on the softmax follows
        logit = math.log(threshold / (1 - threshold))
        possible = gap > logit - 0.05 - 1e-3 / (threshold * (1 - threshold))
        count = int(np.count_nonzero(possible))
    if top_k is not None and count > 2 * top_k:
        # the top_k largest gaps are all possible rows, there being more of those than top_k
        cut = float(np.partition(gap, len(gap) - top_k)[len(gap) - top_k])
        inside = gap >= cut - 4e-6 * (1 + abs(cut))
        if possible is not None:
            inside &= possible
        picked = np.flatnonzero(inside)
        if len(picked) < len(gap):
            scores = torch.softmax(torch.from_numpy(np.take(logits, picked, axis=0)), dim=-1)[:, 1]
            outside = int(np.argmax(np.where(inside, -np.inf, gap)))
            # relative error of one computed score, and of the float32 gap's order (about as much)
            rounding = 1.5e-7 + 1.2e-7 * abs(float(gap[outside]))
            bound = float(torch.softmax(conf[outside], dim=-1)[1]) * (1 + 4 * rounding)
            values = scores.numpy()
            if len(picked) >= top_k and float(np.partition(values, len(values) - top_k)[len(values) - top_k]) > bound:
                return torch.from_numpy(picked), scores
    rows = np.arange(len(gap)) if possible is None else np.flatnonzero(possible)
    return torch.from_numpy(rows), torch.softmax(torch.from_numpy(np.take(logits, rows, axis=0)), dim=-1)[:, 1]


def postprocess(loc, conf_logits, priors, image_width, image_height, config=PostprocessConfig()):
    """Detections ``(N, 5)`` float32 [x1, y1, x2, y2, score] for ONE image, best first.

    ``loc`` [P, 4] and ``conf_logits`` [P, 2] are the network outputs for the image; boxes come
    back in the pixel coordinates of an image of ``image_width x image_height`` (the original
    image, whatever scale the network ran at).

    Only what can matter is computed: scores of the rows that can pass the threshold and be
    among the ``nms_top_k`` best, boxes only for the ``nms_top_k`` best candidates.
    """
    threshold = config.score_threshold
    rows, scores = _scored_rows(conf_logits, threshold, config.nms_top_k)
    scores = scores.numpy()
    candidates = np.flatnonzero(scores > np.float32(threshold))  # a float32 comparison, as torch's
    if not len(candidates):
        return np.zeros((0, 5), dtype=np.float32)
    order = top_order(scores[candidates], config.nms_top_k)
    rows = torch.from_numpy(rows.numpy()[candidates[order]])
    scores = scores[candidates[order]]
    boxes = decode(_take_rows(loc, rows).float(), _take_rows(priors, rows), config.variances).cpu().numpy()
    keep = nms(boxes, scores, config.nms_iou, max_keep=config.keep_top_k)  # already best first
    scale = np.array([image_width, image_height, image_width, image_height], dtype=np.float32)
    return np.concatenate((boxes[keep] * scale, scores[keep, None]), axis=1).astype(np.float32)
