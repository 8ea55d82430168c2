"""Box coding and NMS, checked against direct computations."""

import numpy as np
import torch

from facedet.box_coding import decode, encode
from facedet.nms import nms
from facedet.postprocess import PostprocessConfig, postprocess
from facedet.priors import make_priors


def test_encode_then_decode_returns_the_boxes():
    priors = make_priors(320, 320)[:500]
    rng = np.random.default_rng(1)
    xy = torch.from_numpy(rng.uniform(0, 0.8, (500, 2)).astype(np.float32))
    wh = torch.from_numpy(rng.uniform(0.01, 0.2, (500, 2)).astype(np.float32))
    boxes = torch.cat((xy, xy + wh), dim=1)
    assert torch.allclose(decode(encode(boxes, priors), priors), boxes, atol=1e-5)


def test_zero_offsets_decode_to_the_prior():
    priors = torch.tensor([[0.5, 0.25, 0.2, 0.1]])
    assert torch.allclose(decode(torch.zeros(1, 4), priors), torch.tensor([[0.4, 0.2, 0.6, 0.3]]))


def _iou(a, b):
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def test_nms_matches_a_plain_greedy_loop():
    rng = np.random.default_rng(7)
    xy = rng.uniform(0, 100, (300, 2))
    boxes = np.concatenate((xy, xy + rng.uniform(5, 30, (300, 2))), axis=1).astype(np.float32)
    scores = rng.uniform(0, 1, 300).astype(np.float32)
    expected, remaining = [], list(np.argsort(-scores, kind="stable"))
    while remaining:
        best = remaining.pop(0)
        expected.append(best)
        remaining = [i for i in remaining if _iou(boxes[best], boxes[i]) <= 0.3]
    assert nms(boxes, scores, 0.3).tolist() == expected


def test_postprocess_keeps_confident_boxes_in_image_pixels():
    priors = torch.tensor([[0.5, 0.5, 0.2, 0.2], [0.51, 0.5, 0.2, 0.2], [0.1, 0.1, 0.05, 0.05]])
    loc = torch.zeros(3, 4)
    # Scores (softmax of face logit): ~0.95, ~0.9 (overlaps the first: suppressed), ~0.01 (dropped).
    conf = torch.tensor([[0.0, 3.0], [0.0, 2.2], [0.0, -4.6]])
    dets = postprocess(loc, conf, priors, image_width=200, image_height=100, config=PostprocessConfig())
    assert dets.shape == (1, 5)
    np.testing.assert_allclose(dets[0, :4], [80, 40, 120, 60], atol=1e-4)
    assert abs(dets[0, 4] - torch.softmax(torch.tensor([0.0, 3.0]), 0)[1].item()) < 1e-6
