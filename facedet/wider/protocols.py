"""Running a detector over a WIDER FACE split: the ``single`` and the ``paper`` test protocols.

``single``: one pass per image at the detector's automatic scale (or a fixed ``scale``).

``paper``: the authors' WIDER FACE test (their ``wider_test.py``), which produced the paper's
Tables 1-2. With ``m = sqrt(1700 * 1200 / (H * W))``:
  A. the image at ``min(m, 1)``;  B. the same, mirrored;
  C. at 0.5 (``0.5 m`` if ``m < 0.75``), keeping boxes whose larger side is over 30 px;
  D. enlarged (``min(2, m)``, or ``(C + m) / 2`` when ``m <= 1``; for ``m > 2`` also every
     doubling below ``m`` and ``m`` itself), keeping boxes whose smaller side is under 100 px
     (or, when no enlargement happened, whose larger side is over 30 px);
then box voting over all of them. Each pass keeps scores >= 0.05 and maps boxes back by the
size the network actually saw divided by the scale, as the authors' script does.
"""

import json
import math
from pathlib import Path

import numpy as np

from facedet.atomic import write_failure
from facedet.errors import DataError
from facedet.iou import pixel_iou
from facedet.wider import completion
from facedet.wider.layout import load_image, split_images
from facedet.wider.submission import write_submission, xyxy_to_xywh
from facedet.wider.submission_reader import read_prediction_file
from facedet.cancel import is_cancelled

PROTOCOLS = ("single", "paper")
SCORE_THRESHOLD = 0.05
PAPER_AREA = 1700 * 1200  # the image area the authors' test script scales to (both detectors)
VOTE_IOU = 0.3
MAX_DETECTIONS = 750


def predict_split(detector, root, split="val", protocol="single", out_dir=None, limit=None,
                  progress=None, cancel=None, scale=None, settings=None):
    """Detections for every image of a split: ``{"event/name": (N, 5) x, y, w, h, score}``.

    ``out_dir``: also write them as a submission folder, image by image (so an interrupted run
    keeps what it did), marked complete only once the last one is written
    (``facedet.wider.completion``). ``settings``: a JSON-able dict of what decides the
    predictions (weights, protocol ...); a run with the same settings into a folder left
    incomplete continues it, keeping the files already written; one with other settings is
    refused. ``limit``: only the first N images. ``progress``: ``True`` for a tqdm bar or a
    callable ``(done, total)``. ``cancel``: a callable or an event (``is_set``); when it turns
    true the run stops and returns the images done so far. ``scale``: fixed scale for the
    ``single`` protocol (default: the detector's automatic scale).
    """
    if protocol not in PROTOCOLS:
        raise DataError(f"unknown protocol {protocol!r}; choose one of {', '.join(PROTOCOLS)}")
    images = split_images(root, split)
    in_split = len(images)
    if limit is not None:
        images = images[: max(0, int(limit))]
    resuming = _start_folder(out_dir, settings, [key for key, _ in images], in_split) if out_dir is not None else False
    report, close = _progress(progress, len(images))
    predictions = {}
    try:
        for done, (key, path) in enumerate(images, start=1):
            if is_cancelled(cancel):
                break
            written = Path(out_dir, f"{key}.txt") if resuming else None
            if written is not None and written.is_file():  # written whole (atomically) by the run it continues
                predictions[key] = read_prediction_file(written)
                report(done)
                continue
            image = load_image(path)
            if protocol == "paper":
                dets = paper_detect(detector, image)
            else:
                dets = detector.detect(image, scale=scale, threshold=SCORE_THRESHOLD)
            predictions[key] = rows = _submission_rows(dets)
            if out_dir is not None:
                write_submission({key: rows}, out_dir)
            report(done)
    finally:
        close()
    if out_dir is not None and len(predictions) == len(images):  # not cancelled: every file is written
        completion.mark_complete(out_dir, settings, len(images), in_split)
    return predictions


def _start_folder(out_dir, settings, keys, in_split):
    """Mark ``out_dir`` as being written for the images ``keys``; returns whether this run
    continues an unfinished one with the same settings (whose files it keeps). A fresh run
    removes the files of its images first: an earlier run's, left there, would be taken for its
    own if it were stopped and continued."""
    settings = json.loads(json.dumps(settings)) if settings is not None else None  # as the marker holds them
    found = completion.read(out_dir)
    resuming = found.state == "incomplete" and settings is not None and found.settings is not None
    if resuming and found.settings != settings:
        different = sorted(k for k in {**settings, **found.settings} if settings.get(k) != found.settings.get(k))
        raise DataError(f"{out_dir} holds an unfinished prediction run with other settings ({', '.join(different)}); "
                        "run it again as it was to complete it, or write to another folder")
    try:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        completion.mark_started(out_dir, settings, len(keys), in_split)
        if not resuming:
            for key in keys:
                Path(out_dir, f"{key}.txt").unlink(missing_ok=True)
    except OSError as err:
        raise DataError(write_failure(out_dir, err)) from None
    return resuming


def _submission_rows(dets):
    """x, y, w, h, score rows rounded to 0.01 px and 1e-6: short exact text, same numbers in memory."""
    rows = xyxy_to_xywh(dets)
    rows[:, :4] = np.round(rows[:, :4], 2)
    rows[:, 4] = np.round(rows[:, 4], 6)
    return rows


def paper_detect(detector, image):
    """The authors' multi-scale + flip test with box voting; (N, 5) x1, y1, x2, y2, score."""
    height, width = image.shape[:2]
    m = math.sqrt(PAPER_AREA / (height * width))
    base = min(m, 1.0)
    single = detect_at(detector, image, base)
    flipped = detect_at(detector, np.ascontiguousarray(image[:, ::-1]), base)
    flipped[:, [0, 2]] = width - flipped[:, [2, 0]]

    shrink = 0.5 if m >= 0.75 else 0.5 * m
    big = detect_at(detector, image, shrink)
    big = big[np.maximum(_side(big, 0), _side(big, 1)) > 30]

    enlarge = min(2.0, m) if m > 1 else (shrink + m) / 2
    small = [detect_at(detector, image, enlarge)]
    if m > 2:
        enlarge *= 2
        while enlarge < m:
            small.append(detect_at(detector, image, enlarge))
            enlarge *= 2
        small.append(detect_at(detector, image, m))
    small = np.concatenate(small)
    if enlarge > 1:
        small = small[np.minimum(_side(small, 0), _side(small, 1)) < 100]
    else:
        small = small[np.maximum(_side(small, 0), _side(small, 1)) > 30]
    return box_vote(np.concatenate([single, flipped, big, small]))


def detect_at(detector, image, scale):
    """One pass at ``scale``, boxes mapped back by (network input size / scale) like the authors.

    A pass whose network input would be thinner than the detector's minimum finds nothing (a
    small image's shrunk pass): the other passes still see the image.
    """
    from facedet.detector import MIN_SIDE, input_size

    if min(input_size(*image.shape[:2], scale)) < MIN_SIDE:
        return np.zeros((0, 5))
    return detector.detect(image, scale, SCORE_THRESHOLD, map_by_input=True).astype(np.float64)


def box_vote(dets, iou=VOTE_IOU, max_out=MAX_DETECTIONS):
    """Score-weighted merging of overlapping boxes (+1-pixel IoU >= ``iou``), best first.

    A box that overlaps nothing else is dropped, as in the authors' code; each group becomes its
    score-weighted mean box with the group's best score.
    """
    dets = dets[np.argsort(dets[:, 4], kind="stable")[::-1]]
    merged = []
    while len(dets):
        group = pixel_iou(*dets[0, :4], *dets[:, :4].T) >= iou
        members, dets = dets[group], dets[~group]
        if len(members) <= 1:
            continue
        weights = members[:, 4:5]
        box = (members[:, :4] * weights).sum(axis=0) / weights.sum()
        merged.append(np.append(box, members[:, 4].max()))
    if not merged:
        return np.zeros((0, 5))
    return np.array(merged[:max_out])


def _side(dets, axis):
    """Box width (axis 0) or height (axis 1) with the +1 convention."""
    return dets[:, 2 + axis] - dets[:, axis] + 1


def _progress(progress, total):
    if progress is True:
        from tqdm import tqdm

        bar = tqdm(total=total, unit="image", desc="predict")
        return (lambda done: bar.update(1)), bar.close
    if callable(progress):
        return (lambda done: progress(done, total)), (lambda: None)
    return (lambda done: None), (lambda: None)
