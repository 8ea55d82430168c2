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


def nms(boxes, scores, iou_threshold, top_k=None):
    """Greedy non-maximum suppression; returns kept indices, best first.

    A box is suppressed when its IoU with an already kept box exceeds ``iou_threshold``.
    Areas are ``(x2 - x1) * (y2 - y1)`` (continuous coordinates, no +1).
    """
    boxes = np.asarray(boxes, dtype=np.float32)
    scores = np.asarray(scores, dtype=np.float32)
    order = np.argsort(-scores, kind="stable")
    if top_k is not None:
        order = order[:top_k]
    x1, y1, x2, y2 = boxes.T
    areas = (x2 - x1) * (y2 - y1)
    keep = []
    while order.size:
        best = order[0]
        keep.append(best)
        rest = order[1:]
        w = np.clip(np.minimum(x2[best], x2[rest]) - np.maximum(x1[best], x1[rest]), 0, None)
        h = np.clip(np.minimum(y2[best], y2[rest]) - np.maximum(y1[best], y1[rest]), 0, None)
        inter = w * h
        iou = inter / (areas[rest] - inter + areas[best])
        order = rest[iou <= iou_threshold]
    return np.asarray(keep, dtype=np.int64)


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
    keep = nms(boxes, scores, config.nms_iou, config.nms_top_k)[: config.keep_top_k]
    scale = np.array([image_width, image_height, image_width, image_height], dtype=np.float32)
    return np.concatenate((boxes[keep] * scale, scores[keep, None]), axis=1).astype(np.float32)
