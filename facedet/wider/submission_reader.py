"""Reading a submission folder back, in chunks of files.

A detector that keeps 750 boxes per image writes about 2.3 million lines (63 MB) for the
validation set. The files are read a few dozen at a time and each chunk's detection lines are
parsed in one pass by numpy's C parser, so memory stays small and the evaluation can match one
chunk while the next is read. A chunk that does not parse is read again file by file and line by
line, only to name the bad file and line.
"""

import os
import warnings
from pathlib import Path
from typing import NamedTuple

import numpy as np

from facedet.errors import DataError
from facedet.wider.submission import COLUMNS, PredictionChunk

FILES_PER_CHUNK = 128


class FolderListing(NamedTuple):
    """The prediction files of a folder in order, with their sizes when listed."""

    keys: list
    paths: list
    sizes: list


def list_submission(pred_dir):
    """The ``<event>/<image>.txt`` files of a submission folder, sorted; DataError if it is missing."""
    pred_dir = Path(pred_dir)
    if not pred_dir.is_dir():
        raise DataError(f"prediction folder not found: {pred_dir}")
    keys, paths, sizes = [], [], []
    try:
        with os.scandir(pred_dir) as entries:
            events = sorted((e.name, e.path) for e in entries if e.is_dir() and not e.name.startswith("."))
        for event, event_dir in events:
            with os.scandir(event_dir) as entries:
                files = sorted((f.name, f) for f in entries if f.name.endswith(".txt") and f.is_file())
            for name, entry in files:
                keys.append(f"{event}/{name[:-4]}")
                paths.append(entry.path)
                sizes.append(entry.stat().st_size)
    except OSError as err:
        raise DataError(f"cannot list {pred_dir} ({err.strerror})") from None
    return FolderListing(keys, paths, sizes)


def read_submission(pred_dir):
    """The in-memory form of a submission folder; DataError naming file and line if malformed."""
    predictions = {}
    for chunk in submission_chunks(pred_dir):
        ends = np.cumsum(chunk.counts)
        for key, start, stop in zip(chunk.keys, ends - chunk.counts, ends):
            predictions[key] = np.array(chunk.rows[start:stop])
    return predictions


def submission_chunks(pred_dir, listing=None):
    """A submission folder as PredictionChunks of ``FILES_PER_CHUNK`` files each.
    ``listing``: the folder's ``list_submission``, when the caller has it already."""
    listing = list_submission(pred_dir) if listing is None else listing
    for first in range(0, len(listing.paths), FILES_PER_CHUNK):
        last = first + FILES_PER_CHUNK
        counts, rows = _read_files(listing.paths[first:last], listing.sizes[first:last])
        yield PredictionChunk(listing.keys[first:last], counts, rows)


def _read_files(paths, sizes):
    """(counts, rows) of some prediction files (of these listed ``sizes``), parsed together."""
    bodies, counts = [], []
    for path, size in zip(paths, sizes):
        body, count = _split_file(path, size)
        if count:
            bodies.append(body)
        counts.append(count)
    counts = np.array(counts, dtype=np.int64)
    rows = parse_rows(b"\n".join(bodies)) if bodies else np.zeros((0, COLUMNS))
    if rows is None or len(rows) != counts.sum():
        for path in paths:  # find the culprit and name it
            read_prediction_file(path)
        raise DataError(f"cannot parse the prediction files {paths[0]} to {paths[-1]}")
    return counts, rows


def read_prediction_file(path):
    """The (N, 5) rows of one prediction file."""
    body, count = _split_file(path)
    if not count:
        return np.zeros((0, COLUMNS))
    rows = parse_rows(body)
    if rows is None or len(rows) != count:
        _raise_bad_line(path, body)
    return rows


def _read_bytes(path, size=None):
    """A file's bytes; ``size`` (from the listing) lets one read of just that size do it.

    Several times faster here than reading into a large buffer, which costs a fresh mapping of
    memory per file.
    """
    fd = os.open(path, os.O_RDONLY)
    try:
        if size is None:
            size = os.fstat(fd).st_size
        data = os.read(fd, size + 1)
        if len(data) > size:  # it grew since it was listed
            data += b"".join(iter(lambda: os.read(fd, 1 << 16), b""))
        return data
    finally:
        os.close(fd)


def _split_file(path, size=None):
    """(detection lines, their number) of a file, checked against its count line.

    The lines come as a view into the file's bytes: big submissions are mostly these lines, and
    copying them again costs more than parsing the header.
    """
    try:
        data = _read_bytes(path, size)
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
    end = len(data)
    while end > second + 1 and data[end - 1] in b" \t\r\n\x0b\x0c":
        end -= 1
    start = min(second + 1, end)
    lines = data.count(b"\n", start, end) + 1 if end > start else 0
    if lines != count:
        raise DataError(f"{path}: says {count} detections but has {lines} detection lines")
    return memoryview(data)[start:end], count


def parse_rows(body):
    """(N, 5) float64 rows of 'x y w h score' lines, or None if some line is not five finite numbers.

    One C-level pass over all lines (numpy's text parser, correctly rounded). A NaN is appended
    to every line; values must be finite, so the NaNs must land exactly in a sixth column, which
    checks that every line has five numbers.
    """
    text = bytes(body).replace(b"\n", b" nan\n") + b" nan"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", DeprecationWarning)  # numpy's word for "stopped at a non-number"
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
    for number, line in enumerate(bytes(body).split(b"\n"), start=3):
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
