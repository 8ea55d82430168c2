"""Reading a submission folder back, fast enough for the biggest submissions.

A detector that keeps 750 boxes per image writes about 2.3 million lines (63 MB) for the
validation set. The files are read and parsed in chunks by worker threads while the caller
consumes the chunks already done, so memory stays small and both cores work. Big chunks are
parsed by Arrow's CSV reader (C++, releases the GIL, correctly rounded like ``strtod``) under
strict options; whatever it refuses goes to numpy's parser, which defines what is accepted, and
then line by line to name the bad file and line. Folders that ``predict`` writes also get a
binary index (``submission_index``), so that evaluating them skips the text.
"""

import os
import warnings
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple

import numpy as np

from facedet.errors import DataError
from facedet.wider import submission_index
from facedet.wider.submission import COLUMNS, PredictionChunk, chunks_of_table

FILES_PER_CHUNK = 128
ARROW_MIN_BYTES = 1 << 16  # below this numpy parses a chunk sooner
THREADED_MIN_BYTES = 4 << 20
WORKERS = max(1, min(2, os.cpu_count() or 1))
INT64_MAX = (1 << 63) - 1


class FolderListing(NamedTuple):
    """The prediction files of a folder in order, with what identifies each file's version."""

    keys: list
    paths: list
    stats: np.ndarray  # (N, 4) int64: size, modification and change times (ns), inode

    @property
    def total_bytes(self):
        return int(self.stats[:, 0].sum()) if len(self.stats) else 0


def list_submission(pred_dir):
    """The ``<event>/<image>.txt`` files of a submission folder, sorted; DataError if it is missing."""
    pred_dir = Path(pred_dir)
    if not pred_dir.is_dir():
        raise DataError(f"prediction folder not found: {pred_dir}")
    keys, paths, stats = [], [], []
    try:
        with os.scandir(pred_dir) as entries:
            events = sorted((e.name, e.path) for e in entries if e.is_dir() and not e.name.startswith("."))
        for event, event_dir in events:
            with os.scandir(event_dir) as entries:
                files = sorted((f.name, f) for f in entries if f.name.endswith(".txt") and f.is_file())
            for name, entry in files:
                st = entry.stat()
                keys.append(f"{event}/{name[:-4]}")
                paths.append(entry.path)
                stats.append((st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino & INT64_MAX))
    except OSError as err:
        raise DataError(f"cannot list {pred_dir} ({err.strerror})") from None
    return FolderListing(keys, paths, np.array(stats, dtype=np.int64).reshape(-1, 4))


def read_submission(pred_dir):
    """The in-memory form of a submission folder; DataError naming file and line if malformed."""
    predictions = {}
    for chunk in submission_chunks(pred_dir):
        ends = np.cumsum(chunk.counts)
        for key, start, stop in zip(chunk.keys, ends - chunk.counts, ends):
            predictions[key] = np.array(chunk.rows[start:stop])
    return predictions


def submission_chunks(pred_dir, listing=None):
    """A submission folder as PredictionChunks, from its binary index when it has a current one.
    ``listing``: the folder's ``list_submission``, when the caller has it already."""
    listing = list_submission(pred_dir) if listing is None else listing
    indexed = submission_index.load(pred_dir, listing)
    if indexed is not None:
        counts, rows = indexed
        return chunks_of_table(listing.keys, counts, rows)
    return _parsed_chunks(listing)


def index_submission(pred_dir):
    """Keep a binary index of a big submission folder, so evaluating it skips the text.

    ``predict`` does this once it has written a folder. Returns whether the folder has a current
    index afterwards; small folders get none (their text reads quickly), and a folder that cannot
    be read gets none (evaluating it will say why).
    """
    try:
        listing = list_submission(pred_dir)
        if listing.total_bytes < submission_index.MIN_BYTES:
            return False
        if submission_index.load(pred_dir, listing) is not None:
            return True
        writer = submission_index.IndexWriter(pred_dir, listing)
        try:
            for chunk in _parsed_chunks(listing):
                writer.add(chunk)
            return writer.commit()
        finally:
            writer.abort()
    except DataError:
        return False


def _parsed_chunks(listing):
    """PredictionChunks of the folder's text; big folders are parsed by worker threads a few chunks ahead."""
    groups = [range(i, min(i + FILES_PER_CHUNK, len(listing.paths))) for i in range(0, len(listing.paths), FILES_PER_CHUNK)]
    if listing.total_bytes < THREADED_MIN_BYTES or WORKERS < 2:
        # Small folders: threads would only fight over the GIL for the per-file Python work.
        for group in groups:
            counts, rows = _read_files(*_files(listing, group))
            yield PredictionChunk(listing.keys[group.start : group.stop], counts, rows)
        return
    _arrow()  # import once here, not racing in the workers
    pool = ThreadPoolExecutor(max_workers=WORKERS)
    try:
        pending = deque()
        todo = iter(groups)
        for group in todo:
            pending.append((group, pool.submit(_read_files, *_files(listing, group))))
            if len(pending) > WORKERS:
                break
        while pending:
            group, future = pending.popleft()
            counts, rows = future.result()
            following = next(todo, None)
            if following is not None:
                pending.append((following, pool.submit(_read_files, *_files(listing, following))))
            yield PredictionChunk(listing.keys[group.start : group.stop], counts, rows)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _files(listing, group):
    return listing.paths[group.start : group.stop], listing.stats[group.start : group.stop, 0].tolist()


def _read_files(paths, sizes=None):
    """(counts, rows) of some prediction files (of these ``sizes`` when listed), parsed together."""
    bodies, counts = [], []
    for path, size in zip(paths, sizes if sizes is not None else [None] * len(paths)):
        body, count = _split_file(path, size)
        if count:
            bodies.append(body)
        counts.append(count)
    counts = np.array(counts, dtype=np.int64)
    rows = _parse_rows(b"\n".join(bodies)) if bodies else np.zeros((0, COLUMNS))
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
    rows = _parse_rows(body)
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


def _parse_rows(body):
    """(N, 5) float64 rows of 'x y w h score' lines, or None if some line is not five finite numbers."""
    if len(body) >= ARROW_MIN_BYTES:
        rows = _parse_rows_arrow(body)
        if rows is not None:
            return rows
    return _parse_rows_numpy(body)


def _parse_rows_numpy(body):
    """numpy's parser (the reference for what is accepted): one C-level pass over all lines.

    A NaN is appended to every line; values must be finite, so the NaNs must land exactly in a
    sixth column, which checks that every line has five numbers.
    """
    text = bytes(body).replace(b"\n", b" nan\n") + b" nan"
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


def _parse_rows_arrow(body):
    """Arrow's CSV reader on single-space separated lines; None for anything it does not take as is.

    Strict on purpose (no quoting, no null markers, exactly five fields): a line it accepts is a
    line numpy's parser reads to the same five numbers, so the two can never disagree.
    """
    pa, csv = _arrow()
    names = ["x", "y", "w", "h", "score"]
    try:
        table = csv.read_csv(
            pa.BufferReader(body),
            read_options=csv.ReadOptions(column_names=names, block_size=len(body) + 1, use_threads=False),
            parse_options=csv.ParseOptions(delimiter=" ", quote_char=False, double_quote=False,
                                           escape_char=False, newlines_in_values=False, ignore_empty_lines=False),
            convert_options=csv.ConvertOptions(column_types={n: pa.float64() for n in names}, null_values=[],
                                               strings_can_be_null=False, quoted_strings_can_be_null=False,
                                               check_utf8=False),
        )
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError):
        return None
    if table.num_rows != bytes(body).count(b"\n") + 1:
        return None  # e.g. a lone carriage return read as a line break
    # Column by column, straight from Arrow's buffers (its to_numpy() first imports pandas: 0.4 s).
    rows = np.empty((COLUMNS, table.num_rows))
    for i, name in enumerate(names):
        column = table.column(name).combine_chunks()
        if column.null_count:
            return None
        rows[i] = np.frombuffer(column.buffers()[1], dtype=np.float64, count=len(column), offset=column.offset * 8)
    if not np.isfinite(rows).all():
        return None
    return rows.T  # (N, 5), each column contiguous


def _arrow():
    import pyarrow
    import pyarrow.csv

    return pyarrow, pyarrow.csv


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
