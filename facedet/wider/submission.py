"""Predictions in the standard WIDER FACE submission layout, on disk and in memory.

On disk: one folder per event, one ``<image>.txt`` per image holding the image path, the number
of detections, then one ``x y w h score`` line per detection. In memory: a dict
``"event/image_stem" -> float64 array (N, 5)`` of the same ``x, y, w, h, score`` rows.
"""

import os
import warnings
from pathlib import Path

import numpy as np

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
        folder.mkdir(parents=True, exist_ok=True)
        lines = [f"{event}/{stem}.jpg", str(len(rows))]
        lines += [" ".join(map(repr, row)) for row in rows.tolist()]
        path = folder / f"{stem}.txt"
        tmp = path.with_name(path.name + ".part")
        tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
        os.replace(tmp, path)  # never leave a half-written file that would read as fewer detections
    return out_dir


class PredictionTable:
    """Predictions as flat arrays: image ``keys[i]`` owns ``rows[offsets[i]:offsets[i + 1]]``."""

    def __init__(self, keys, rows, counts):
        self.keys = list(keys)
        self.rows = rows
        self.offsets = np.concatenate([[0], np.cumsum(counts, dtype=np.int64)])

    @classmethod
    def from_dict(cls, predictions):
        arrays = [as_rows(key, rows, check_values=False) for key, rows in predictions.items()]
        rows = np.concatenate(arrays) if arrays else np.zeros((0, COLUMNS))
        table = cls(predictions.keys(), rows, [len(a) for a in arrays])
        if not np.isfinite(rows).all():
            bad = np.flatnonzero(~np.isfinite(rows).all(axis=1))[0]
            key = table.keys[np.searchsorted(table.offsets, bad, side="right") - 1]
            raise DataError(f"predictions for {key} contain NaN or infinite values")
        return table

    def to_dict(self):
        return {key: self.rows[a:b] for key, a, b in zip(self.keys, self.offsets[:-1], self.offsets[1:])}


def read_submission(pred_dir):
    """The in-memory form of a submission folder; DataError naming file and line if malformed."""
    return read_submission_table(pred_dir).to_dict()


def read_submission_table(pred_dir):
    """A submission folder as a PredictionTable (one bulk parse of every file)."""
    pred_dir = Path(pred_dir)
    if not pred_dir.is_dir():
        raise DataError(f"prediction folder not found: {pred_dir}")
    keys, paths = [], []
    with os.scandir(pred_dir) as events:
        event_dirs = sorted(e.path for e in events if e.is_dir() and not e.name.startswith("."))
    for event_dir in event_dirs:
        event = os.path.basename(event_dir)
        with os.scandir(event_dir) as files:
            names = sorted(f.name for f in files if f.name.endswith(".txt") and f.is_file())
        keys += [f"{event}/{name[:-4]}" for name in names]
        paths += [os.path.join(event_dir, name) for name in names]

    bodies, counts = [], []
    for path in paths:
        body, count = _split_file(path)
        if count:
            bodies.append(body)
        counts.append(count)
    rows = _parse_rows(b"\n".join(bodies)) if bodies else np.zeros((0, COLUMNS))
    if rows is None or len(rows) != sum(counts):
        for path in paths:  # find the culprit and name it
            read_prediction_file(path)
        raise DataError(f"{pred_dir}: cannot parse the prediction files")
    return PredictionTable(keys, rows, counts)


def read_prediction_file(path):
    """The (N, 5) rows of one prediction file."""
    body, count = _split_file(path)
    if not count:
        return np.zeros((0, COLUMNS))
    rows = _parse_rows(body)
    if rows is None:
        _raise_bad_line(path, body)
    return rows


def _split_file(path):
    """(detection lines, their number) of a file, checked against its count line."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as err:
        raise DataError(f"cannot read {path} ({err.strerror})") from None
    first = data.find(b"\n")
    second = data.find(b"\n", first + 1) if first >= 0 else -1
    if first < 0 or second < 0:
        if not data.strip():
            return b"", 0  # an empty file: no detections
        second = len(data)
        if first < 0:
            raise DataError(f"{path}: line 2: the number of detections is missing")
    try:
        count = int(data[first + 1 : second])
    except ValueError:
        raise DataError(f"{path}: line 2: expected the number of detections, got {_show(data[first + 1 : second])}") from None
    if count < 0:
        raise DataError(f"{path}: line 2: negative number of detections ({count})")
    body = data[second + 1 :].rstrip()
    lines = body.count(b"\n") + 1 if body else 0
    if lines != count:
        raise DataError(f"{path}: says {count} detections but has {lines} detection lines")
    return body, count


def _parse_rows(body):
    """(N, 5) float64 rows, or None if some line is not five finite numbers.

    One C-level parse of all lines, with a NaN appended to every line: values must be finite,
    so the NaNs must land exactly in a sixth column, which checks every line has five numbers.
    """
    text = body.replace(b"\n", b" nan\n") + b" nan"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", DeprecationWarning)
            values = np.fromstring(text, sep=" ")
    except (ValueError, DeprecationWarning):
        return None
    if values.size % (COLUMNS + 1):
        return None
    table = values.reshape(-1, COLUMNS + 1)
    if not np.isnan(table[:, COLUMNS]).all() or not np.isfinite(table[:, :COLUMNS]).all():
        return None
    return np.ascontiguousarray(table[:, :COLUMNS])


def _raise_bad_line(path, body):
    for number, line in enumerate(body.split(b"\n"), start=3):
        fields = line.split()
        try:
            values = [float(v) for v in fields]
        except ValueError:
            values = None
        if values is None or len(values) != COLUMNS or not np.isfinite(values).all():
            raise DataError(f"{path}: line {number}: expected 'x y w h score' (five finite numbers), got {_show(line)}")
    raise DataError(f"{path}: cannot be parsed")


def _show(raw):
    text = raw.decode("utf-8", "replace").strip()
    return repr(text if len(text) <= 60 else text[:57] + "...")
