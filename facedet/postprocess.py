"""From network outputs to final detections: scores, candidate filtering, NMS."""

from dataclasses import dataclass

import numpy as np
import torch

from facedet.box_coding import VARIANCES, decode


@dataclass(frozen=True)
class PostprocessConfig:
    score_threshold: float = 0.05  # candidates must score above this to enter NMS
    nms_top_k: int = 5000  # at most this many candidates (highest scores) enter NMS
    nms_iou: float = 0.3
    keep_top_k: int = 750
    variances: tuple = VARIANCES


def top_order(scores, top_k=None):
    """``np.argsort(-scores, kind="stable")[:top_k]``, without sorting every score."""
    n = len(scores)
    if top_k is None or top_k >= n:
        return np.argsort(-scores, kind="stable")
    kth = np.partition(scores, n - top_k)[n - top_k]
    candidates = np.flatnonzero(scores >= kth)  # ties at the cut stay, in index order
    return candidates[np.argsort(-scores[candidates], kind="stable")][:top_k]


def nms(boxes, scores, iou_threshold, top_k=None, max_keep=None, block=256):
    """Greedy non-maximum suppression; returns kept indices, best first (at most ``max_keep``).

    A box is suppressed when its IoU with an already kept box exceeds ``iou_threshold`` (or is
    undefined, as for two empty boxes). Areas are ``(x2 - x1) * (y2 - y1)`` (continuous
    coordinates, no +1); ties in score keep the lower index first.

    Exactly the result of the one-box-at-a-time loop, computed a block of candidates at a time:
    a block is first checked against every box kept so far, and the survivors are resolved among
    themselves by iterating "kept unless a kept earlier box suppresses it" to its fixed point
    (the Cluster-NMS argument), which is the greedy answer.
    """
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    scores = np.asarray(scores, dtype=np.float32).reshape(-1)
    order = top_order(scores, top_k)
    x1, y1, x2, y2 = (np.ascontiguousarray(c) for c in boxes[order].T)
    area = (x2 - x1) * (y2 - y1)
    threshold = np.float32(iou_threshold)

    def suppresses(earlier, later):
        """[len(earlier), len(later)]: does each earlier box suppress each later one."""
        w = np.minimum(x2[earlier, None], x2[later]) - np.maximum(x1[earlier, None], x1[later])
        np.maximum(w, 0, out=w)
        h = np.minimum(y2[earlier, None], y2[later]) - np.maximum(y1[earlier, None], y1[later])
        np.maximum(h, 0, out=h)
        inter = w * h
        union = area[later] - inter
        union += area[earlier, None]
        return ~(inter / union <= threshold)

    kept = np.zeros(0, dtype=np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        for start in range(0, len(order), block):
            alive = np.arange(start, min(start + block, len(order)))
            if len(kept):
                alive = alive[~suppresses(kept, alive).any(axis=0)]
            if not len(alive):
                continue
            among = np.triu(suppresses(alive, alive), 1)
            keep = np.ones(len(alive), dtype=bool)
            while True:
                settled = ~among[keep].any(axis=0)
                if np.array_equal(settled, keep):
                    break
                keep = settled
            kept = np.concatenate((kept, alive[keep]))
            if max_keep is not None and len(kept) >= max_keep:
                break
    return order[kept[:max_keep]]


def postprocess(loc, conf_logits, priors, image_width, image_height, config=PostprocessConfig()):
    """Detections ``(N, 5)`` float32 [x1, y1, x2, y2, score] for ONE image, best first.

    ``loc`` [P, 4] and ``conf_logits`` [P, 2] are the network outputs for the image; boxes come
    back in the pixel coordinates of an image of ``image_width x image_height`` (the original
    image, whatever scale the network ran at).
    """
    scores = torch.softmax(conf_logits.float(), dim=-1)[:, 1]
    candidates = scores > config.score_threshold
    if not bool(candidates.any()):
        return np.zeros((0, 5), dtype=np.float32)
    boxes = decode(loc[candidates].float(), priors[candidates], config.variances).cpu().numpy()
    scores = scores[candidates].cpu().numpy()
    keep = nms(boxes, scores, config.nms_iou, config.nms_top_k, max_keep=config.keep_top_k)
    scale = np.array([image_width, image_height, image_width, image_height], dtype=np.float32)
    return np.concatenate((boxes[keep] * scale, scores[keep, None]), axis=1).astype(np.float32)
