"""The compiled NMS against the one-box-at-a-time loop it replaced, box for box."""

import cv2
import numpy as np
import pytest
import torch

from facedet.box_coding import decode
from facedet.nms import nms, top_order


def loop_nms(boxes, scores, iou_threshold, top_k=None):
    """The previous implementation: keep the best box, drop what it suppresses, repeat."""
    boxes = np.asarray(boxes, dtype=np.float32)
    order = np.argsort(-np.asarray(scores, dtype=np.float32), kind="stable")
    if top_k is not None:
        order = order[:top_k]
    x1, y1, x2, y2 = boxes.T
    keep = []
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        areas = (x2 - x1) * (y2 - y1)
        while order.size:
            best, rest = order[0], order[1:]
            keep.append(best)
            w = np.clip(np.minimum(x2[best], x2[rest]) - np.maximum(x1[best], x1[rest]), 0, None)
            h = np.clip(np.minimum(y2[best], y2[rest]) - np.maximum(y1[best], y1[rest]), 0, None)
            inter = w * h
            order = rest[inter / (areas[rest] - inter + areas[best]) <= iou_threshold]
    return np.asarray(keep, dtype=np.int64)


def _random_case(rng, case):
    n = int(rng.integers(1, 1500))
    xy = rng.uniform(0, 1, (n, 2))
    wh = rng.uniform(0, 0.25, (n, 2))
    scores = rng.uniform(0.05, 1, n)
    if case % 3 == 0:  # a coarse grid: exact ties of IoU at the threshold, empty and repeated boxes
        xy, wh = np.round(xy * 10) / 10, np.round(wh * 10) / 10
    if case % 4 == 0:  # many tied scores
        scores = np.round(scores, 1)
    if case % 5 == 4:  # tiny boxes in a few far-apart clusters: a fine grid with few cells in use
        centres = rng.uniform(0, 1, (5, 2))
        xy = centres[rng.integers(0, 5, n)] + rng.normal(0, 0.002, (n, 2))
        wh = rng.uniform(0, 0.003, (n, 2))
    boxes = np.concatenate((xy, xy + wh), axis=1).astype(np.float32)
    return boxes, scores.astype(np.float32)


@pytest.mark.parametrize("iou_threshold", [0.0, 0.3, 0.5, 0.9])
def test_nms_keeps_exactly_the_loops_boxes_on_random_inputs(iou_threshold):
    rng = np.random.default_rng(int(iou_threshold * 10))
    for case in range(60):
        boxes, scores = _random_case(rng, case)
        top_k = int(rng.integers(1, 2000))
        expected = loop_nms(boxes, scores, iou_threshold, top_k)
        assert nms(boxes, scores, iou_threshold, top_k).tolist() == expected.tolist()
        max_keep = int(rng.integers(1, 50))
        assert nms(boxes, scores, iou_threshold, top_k, max_keep=max_keep).tolist() == expected[:max_keep].tolist()


def test_nms_keeps_exactly_the_loops_boxes_where_the_grid_does_not_apply():
    # Boxes of negative size, a missing coordinate, one box too large for any grid, a negative
    # threshold: every pair is compared.
    rng = np.random.default_rng(7)
    for case in range(40):
        boxes, scores = _random_case(rng, case)
        if case % 4 == 2:
            boxes[-1, 2:] = (3e38, 3e38)
        else:
            boxes[::5, 2] = boxes[::5, 0] - 0.05  # x2 < x1
        if case % 4 == 1:
            boxes[0] = (np.nan, 0, 1, 1)
        for iou_threshold in (-0.1, 0.3):
            expected = loop_nms(boxes, scores, iou_threshold)
            assert nms(boxes, scores, iou_threshold).tolist() == expected.tolist()


def test_top_order_equals_a_full_stable_sort_with_ties():
    rng = np.random.default_rng(3)
    scores = np.round(rng.uniform(0, 1, 3000), 2).astype(np.float32)
    for top_k in (1, 10, 999, 2999, 3000, 5000):
        assert top_order(scores, top_k).tolist() == np.argsort(-scores, kind="stable")[:top_k].tolist()


def test_nms_keeps_exactly_the_loops_boxes_on_a_real_detector_output(weights_dir, assets_dir):
    from facedet.detector import load_detector

    detector = load_detector("eresfd")
    image = cv2.cvtColor(cv2.imread(str(assets_dir / "photos" / "holdout" / "office-group-13.jpg")), cv2.COLOR_BGR2RGB)
    x = detector.preprocess(cv2.resize(image, (640, 480)), 1.0)
    with torch.inference_mode():
        loc, conf = detector.model(x)
    scores = torch.softmax(conf[0], dim=-1)[:, 1].numpy()
    boxes = decode(loc[0], detector.priors(480, 640)).numpy()
    expected = loop_nms(boxes, scores, 0.3, 5000)
    assert len(expected) > 100  # a crowded case: hundreds kept out of 5,000 candidates
    assert nms(boxes, scores, 0.3, 5000).tolist() == expected.tolist()
    assert nms(boxes, scores, 0.3, 5000, max_keep=750).tolist() == expected[:750].tolist()


def _postprocess_everything(loc, conf_logits, priors, width, height, config):
    """Post-processing as first written: every score, every candidate decoded, then NMS."""
    scores = torch.softmax(conf_logits.float(), dim=-1)[:, 1]
    candidates = scores > config.score_threshold
    boxes = decode(loc[candidates], priors[candidates], config.variances).numpy()
    scores = scores[candidates].numpy()
    keep = nms(boxes, scores, config.nms_iou, config.nms_top_k, max_keep=config.keep_top_k)
    scale = np.array([width, height, width, height], dtype=np.float32)
    return np.concatenate((boxes[keep] * scale, scores[keep, None]), axis=1).astype(np.float32)


def test_postprocessing_only_what_can_matter_changes_nothing(weights_dir, assets_dir):
    # Scores only where the logits can pass the threshold, boxes only for the best nms_top_k: the same
    # detections, bit for bit, as computing everything.
    import dataclasses

    from facedet.detector import load_detector
    from facedet.postprocess import PostprocessConfig, postprocess

    detector = load_detector("eresfd", backend="torch")
    for photo in ("holdout/office-group-13.jpg", "holdout/no-face-plane.jpg"):
        image = cv2.resize(cv2.cvtColor(cv2.imread(str(assets_dir / "photos" / photo)), cv2.COLOR_BGR2RGB), (640, 480))
        with torch.inference_mode():
            loc, conf = detector.network(detector.preprocess(image, 1.0))
        for threshold, top_k in ((0.05, 5000), (0.05, 300), (0.3, 5000), (0.5, 5000), (0.9, 5000), (0.0, 5000)):
            config = dataclasses.replace(PostprocessConfig(), score_threshold=threshold, nms_top_k=top_k)
            expected = _postprocess_everything(loc[0], conf[0], detector.priors(480, 640), 640, 480, config)
            assert len(expected) or "no-face" in photo
            assert np.array_equal(postprocess(loc[0], conf[0], detector.priors(480, 640), 640, 480, config), expected)


@pytest.mark.parametrize("name", ["eresfd", "eresfd-fpgm-50"])
def test_a_detection_threshold_applied_before_nms_changes_nothing(name, weights_dir, assets_dir):
    from facedet.detector import load_detector
    from facedet.postprocess import postprocess

    detector = load_detector(name, backend="torch")
    for photo in ("holdout/office-group-13.jpg", "holdout/soccer-3.jpg", "holdout/no-face-plane.jpg"):
        image = cv2.cvtColor(cv2.imread(str(assets_dir / "photos" / photo)), cv2.COLOR_BGR2RGB)
        image = cv2.resize(image, (480, 360))
        x = detector.preprocess(image, 1.0)
        with torch.inference_mode():
            loc, conf = detector.network(x)
        everything = postprocess(loc[0], conf[0], detector.priors(360, 480), 480, 360, detector.config.post)
        for threshold in (0.05, 0.1, 0.3, 0.5, 0.9, float(np.float32(everything[3, 4]))):
            expected = everything[everything[:, 4] >= threshold]
            got = detector.detect(image, scale=1.0, threshold=threshold)
            assert np.array_equal(got, expected), (photo, threshold)


def test_scoring_only_the_rows_that_can_be_among_the_best_changes_nothing():
    # Logits made to defeat the shortcut: a plateau of near-equal gaps at the top_k cut (as a real
    # background has), saturated scores tied at 1.0, huge logits, NaN: bit for bit the detections
    # of scoring every row, with and without the shortcut taken.
    import dataclasses

    from facedet.postprocess import PostprocessConfig, _scored_rows, postprocess

    rng = np.random.default_rng(11)
    n = 4000
    priors = torch.from_numpy(np.concatenate((rng.uniform(0.1, 0.9, (n, 2)), rng.uniform(0.02, 0.3, (n, 2))), 1).astype(np.float32))
    loc = torch.from_numpy(rng.normal(0, 0.5, (n, 4)).astype(np.float32))
    shortcuts = 0
    for case in range(24):
        conf = rng.normal(0, 2, (n, 2))
        if case % 4 == 1:  # a plateau of gaps around -2.13, differing in the last bits
            conf[: 3 * n // 4] = (0.0, -2.1314) + rng.normal(0, 1e-6, (3 * n // 4, 2))
        if case % 4 == 2:  # many saturated scores, and logits far from zero
            conf[::3, 1] += 40
            conf[1::5] += 1e4
        if case % 4 == 3:
            conf[::97] = np.nan
        conf = torch.from_numpy(conf.astype(np.float32))
        for threshold, top_k in ((0.05, 300), (0.0, 500), (0.5, 200), (0.9, 100), (0.05, 1500), (0.05, None)):
            config = dataclasses.replace(PostprocessConfig(), score_threshold=threshold, nms_top_k=top_k)
            expected = _postprocess_everything(loc, conf, priors, 640, 480, config)
            got = postprocess(loc, conf, priors, 640, 480, config)
            assert np.array_equal(got, expected, equal_nan=True), (case, threshold, top_k)
            shortcuts += top_k is not None and len(_scored_rows(conf, threshold, top_k)[0]) < 2 * top_k
    assert shortcuts >= 20  # the shortcut was taken, and refused where it could have been wrong
