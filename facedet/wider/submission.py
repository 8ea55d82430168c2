"""Predictions in the standard WIDER FACE submission layout, on disk and in memory.

On disk: one folder per event, one ``<image>.txt`` per image holding the image path, the number
of detections, then one ``x y w h score`` line per detection. In memory: a dict
``"event/image_stem" -> float64 array (N, 5)`` of the same ``x, y, w, h, score`` rows. Reading a
folder back is ``submission_reader``'s job.
"""

from pathlib import Path
from typing import NamedTuple

import numpy as np

from facedet.atomic import write_failure, write_text
from facedet.errors import DataError

COLUMNS = 5  # x, y, w, h, score


def xyxy_to_xywh(detections):
    """Detector output rows ``x1, y1, x2, y2, score`` as submission rows ``x, y, w, h, score``.

    Width and height count both end pixels (``x2 - x1 + 1``), as the authors' test script writes
    them and as the standard evaluation's +1 overlap convention expects.
    """
    dets = np.asarray(detections, dtype=np.float64).reshape(-1, COLUMNS)
    out = dets.copy()
    out[:, 2] = dets[:, 2] - dets[:, 0] + 1
    out[:, 3] = dets[:, 3] - dets[:, 1] + 1
    return out


def check_key(key):
    """``"event/image_stem"`` split in two; DataError for anything that is not that."""
    parts = str(key).split("/")
    if len(parts) != 2 or not all(parts) or any(p in (".", "..") or "\\" in p for p in parts):
        raise DataError(f"prediction key {key!r} is not of the form 'event/image_name'")
    return parts


def as_rows(key, rows, check_values=True):
    """``rows`` as a float64 (N, 5) array; DataError naming ``key`` if it is not one."""
    array = np.asarray(rows, dtype=np.float64)
    if array.size == 0:
        return np.zeros((0, COLUMNS))
    if array.ndim != 2 or array.shape[1] != COLUMNS:
        raise DataError(f"predictions for {key} have shape {array.shape}; (N, 5) x, y, w, h, score rows were expected")
    if check_values and not np.isfinite(array).all():
        raise DataError(f"predictions for {key} contain NaN or infinite values")
    return array


def write_submission(predictions, out_dir):
    """Write ``predictions`` (the in-memory form) as a submission folder; returns its path.

    Numbers are written in the shortest form that reads back to the same float64, so a folder
    evaluates exactly like the dict it came from.
    """
    out_dir = Path(out_dir)
    for key, rows in predictions.items():
        event, stem = check_key(key)
        rows = as_rows(key, rows)
        folder = out_dir / event
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise DataError(write_failure(folder, err)) from None
        lines = [f"{event}/{stem}.jpg", str(len(rows))]
        lines += [" ".join(map(repr, row)) for row in rows.tolist()]
        # Atomic: never a half-written file that would read as fewer detections.
        write_text(folder / f"{stem}.txt", "\n".join(lines) + "\n")
    return out_dir


class PredictionChunk(NamedTuple):
    """Predictions of some images: image ``keys[i]`` owns ``counts[i]`` consecutive rows of ``rows``."""

    keys: list
    counts: np.ndarray
    rows: np.ndarray


ROWS_PER_CHUNK = 1 << 16  # big enough to amortise numpy's per-call cost, small enough to stay in cache


def checked_predictions(predictions):
    """The in-memory form with every value checked: ``{key: float64 (N, 5)}``; DataError naming the key."""
    return {key: as_rows(key, rows) for key, rows in predictions.items()}


def dict_chunks(predictions, rows_per_chunk=ROWS_PER_CHUNK):
    """The in-memory form as PredictionChunks of about ``rows_per_chunk`` rows each, values checked."""
    keys, arrays = [], []
    size = 0
    for key, rows in predictions.items():
        keys.append(key)
        arrays.append(as_rows(key, rows))
        size += len(arrays[-1])
        if size >= rows_per_chunk:
            yield _chunk(keys, arrays)
            keys, arrays, size = [], [], 0
    if keys:
        yield _chunk(keys, arrays)


def _chunk(keys, arrays):
    counts = np.array([len(a) for a in arrays], dtype=np.int64)
    rows = np.concatenate(arrays) if counts.sum() else np.zeros((0, COLUMNS))
    return PredictionChunk(keys, counts, rows)

