"""Synthetic prediction sets made from a real ground truth, to check and time the evaluation.

A seeded generator of what a detector's submission looks like, with the cases that trip up
evaluation code: faces found with jittered boxes (more often when large), duplicates (jittered
and exact), hits on ignored faces, false positives, tied scores, unsorted lines, images with an
empty file or no file at all, and files for images the ground truth does not have.

Only uniform draws and plain arithmetic are used, so a seed gives the same numbers on every
platform with the pinned numpy.
"""

import numpy as np

DEFAULTS = dict(
    detect_rate=0.85,  # chance to find a large face; small faces are found less often
    jitter=0.15,  # box corners move by up to this fraction of the face size
    duplicates=0.2,  # share of found faces detected a second time (jittered, lower score)
    exact_duplicates=0.02,  # share of found faces whose detection appears twice, identical
    false_positives=3.0,  # mean false detections per image
    score_range=(0.0, 1.0),  # raw scores are drawn in this range (the evaluation normalises)
    score_decimals=None,  # round scores (creates ties), e.g. 3 like the authors' files
    box_decimals=None,  # round coordinates, e.g. 1 like the authors' files
    degenerate=0.0,  # share of false positives with zero or negative width/height
    empty=0.02,  # share of images whose file lists no detection
    missing=0.02,  # share of images without a file
    extra_images=0,  # files for images not in the ground truth
    shuffle=True,  # lines in random order (else best first)
    max_per_image=None,  # keep only the best N of an image, like a detector's top-k
)


def synthetic_predictions(gt, seed, **params):
    """Predictions dict ``"event/image_stem" -> (N, 5) x, y, w, h, score`` for ``gt``."""
    unknown = set(params) - set(DEFAULTS)
    if unknown:
        raise TypeError(f"unknown parameters: {sorted(unknown)}")
    p = {**DEFAULTS, **params}
    rng = np.random.default_rng(seed)
    num_images = len(gt.keys)
    face_image = gt.image_of_face
    boxes = gt.boxes

    # Found faces: likelier for larger faces, never certain.
    size = np.sqrt(np.maximum(boxes[:, 2], 1) * np.maximum(boxes[:, 3], 1))
    chance = p["detect_rate"] * np.clip((size - 3) / 30, 0.05, 1.0)
    found = rng.random(len(boxes)) < chance
    tp_boxes, tp_image = _jitter(rng, boxes[found], p["jitter"]), face_image[found]
    tp_scores = 0.35 + 0.65 * rng.random(len(tp_boxes))

    again = rng.random(len(tp_boxes)) < p["duplicates"]
    dup_boxes, dup_image = _jitter(rng, tp_boxes[again], p["jitter"]), tp_image[again]
    dup_scores = tp_scores[again] * (0.4 + 0.6 * rng.random(len(dup_boxes)))
    same = rng.random(len(tp_boxes)) < p["exact_duplicates"]

    fp_boxes, fp_image = _false_positives(rng, gt, p["false_positives"], p["degenerate"])
    fp_scores = 0.7 * rng.random(len(fp_boxes))

    dets = np.concatenate([
        np.column_stack([tp_boxes, tp_scores]),
        np.column_stack([dup_boxes, dup_scores]),
        np.column_stack([tp_boxes[same], tp_scores[same]]),
        np.column_stack([fp_boxes, fp_scores]),
    ])
    det_image = np.concatenate([tp_image, dup_image, tp_image[same], fp_image])
    low, high = p["score_range"]
    dets[:, 4] = low + (high - low) * dets[:, 4]
    if p["score_decimals"] is not None:
        dets[:, 4] = np.round(dets[:, 4], p["score_decimals"])
    if p["box_decimals"] is not None:
        dets[:, :4] = np.round(dets[:, :4], p["box_decimals"])

    # Group by image, best first, then cut to top-k and shuffle within images if asked.
    order = np.lexsort((-dets[:, 4], det_image))
    dets, det_image = dets[order], det_image[order]
    rank = np.arange(len(dets)) - np.searchsorted(det_image, det_image, side="left")
    if p["max_per_image"] is not None:
        dets, det_image, rank = dets[rank < p["max_per_image"]], det_image[rank < p["max_per_image"]], rank[rank < p["max_per_image"]]
    if p["shuffle"]:
        order = np.lexsort((rng.random(len(dets)), det_image))
        dets, det_image = dets[order], det_image[order]
    bounds = np.searchsorted(det_image, np.arange(num_images + 1), side="left")

    fate = rng.random(num_images)
    predictions = {}
    for i, key in enumerate(gt.keys):
        if fate[i] < p["missing"]:
            continue
        rows = dets[bounds[i] : bounds[i + 1]]
        predictions[key] = rows[:0] if fate[i] < p["missing"] + p["empty"] else rows
    for n in range(p["extra_images"]):
        event = gt.keys[n % num_images].split("/")[0]
        predictions[f"{event}/not_in_ground_truth_{n}"] = np.column_stack(
            [_random_boxes(rng, 5, 0, 500), low + (high - low) * rng.random(5)])
    return predictions


def _jitter(rng, boxes, amount):
    """Move each side by up to ``amount`` of the box size; width and height stay >= 1."""
    x, y, w, h = boxes.T
    move = amount * (2 * rng.random((len(boxes), 4)) - 1)
    x1, y1 = x + move[:, 0] * w, y + move[:, 1] * h
    x2, y2 = x + w + move[:, 2] * w, y + h + move[:, 3] * h
    return np.column_stack([x1, y1, np.maximum(x2 - x1, 1), np.maximum(y2 - y1, 1)])


def _false_positives(rng, gt, mean_count, degenerate):
    num_images = len(gt.keys)
    # A Poisson-like count from uniforms: the sum of 4 * mean Bernoulli(1/4) draws.
    counts = (rng.random((num_images, max(1, int(4 * mean_count)))) < mean_count / max(1, int(4 * mean_count))).sum(1)
    image = np.repeat(np.arange(num_images), counts)
    # Spread them over the part of the image the faces span, with some margin.
    starts, ends = gt.offsets[:-1], gt.offsets[1:]
    far = np.zeros(num_images)
    has_faces = ends > starts
    right = gt.boxes[:, 0] + gt.boxes[:, 2] if len(gt.boxes) else np.zeros(0)
    far[has_faces] = np.maximum.reduceat(right, starts[has_faces]) if len(gt.boxes) else 0
    extent = np.maximum(far, 200)[image] * 1.2
    boxes = _random_boxes(rng, len(image), 0, extent)
    odd = rng.random(len(boxes)) < degenerate
    boxes[odd, 2:4] = -2 * rng.random((int(odd.sum()), 2)) + 0.5  # widths in (-1.5, 0.5]
    return boxes, image


def _random_boxes(rng, n, low, high):
    x = low + (high - low) * rng.random(n)
    y = low + (high - low) * rng.random(n)
    side = 4 + 120 * rng.random(n) ** 3  # mostly small, some large
    aspect = 0.7 + 0.6 * rng.random(n)
    return np.column_stack([x, y, side, side * aspect])
