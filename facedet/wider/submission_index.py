"""A binary copy of big submission folders in the user cache, so evaluating them skips the text.

Parsing 2.3 million text lines (a detector that keeps 750 boxes per image) takes most of a
second; the binary rows load in milliseconds. ``predict`` indexes the folders it writes. An
index holds the rows exactly as parsed from the text, and is used only while every file of the
folder still has the size, modification and change times and inode it had when it was read
(Python trusts its .pyc files on less); any change, added or removed file sends the reader back
to the text.
Only folders of at least ``MIN_BYTES`` of text get one, and only the ``KEEP`` most recently
written indexes are kept. A cache that cannot be written (read-only, full disk) costs only speed.
"""

import hashlib
import os
import shutil
import uuid
import zipfile
from pathlib import Path

import numpy as np

from facedet.paths import cache_dir

VERSION = 1
MIN_BYTES = 8 << 20
KEEP = 4
META = "meta.npz"
ROW_BYTES = 5 * 8


def index_root():
    return cache_dir() / "submission-index"


def index_dir(pred_dir):
    digest = hashlib.sha256(str(Path(pred_dir).resolve()).encode()).hexdigest()[:24]
    return index_root() / digest


def load(pred_dir, listing):
    """(counts, rows) of the folder from its index if the index matches ``listing``, else None."""
    folder = index_dir(pred_dir)
    try:
        with np.load(folder / META, allow_pickle=False) as meta:
            if int(meta["version"]) != VERSION or str(meta["keys"]) != "\n".join(listing.keys):
                return None
            if not np.array_equal(meta["stats"], listing.stats):
                return None
            counts = meta["counts"]
            rows_file = folder / str(meta["rows_file"])
        total = int(counts.sum())
        if rows_file.stat().st_size != total * ROW_BYTES:
            return None
        rows = np.memmap(rows_file, dtype="<f8", mode="r", shape=(total, 5)) if total else np.zeros((0, 5))
        return counts, rows
    except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile):
        return None  # none yet, or unreadable: read the text


class IndexWriter:
    """Rows appended chunk by chunk while the text is parsed; ``commit`` makes them the index."""

    def __init__(self, pred_dir, listing):
        self.listing = listing
        self.folder = index_dir(pred_dir)
        self.rows_name = f"rows-{uuid.uuid4().hex[:12]}.f64"
        self.counts = []
        self.file = None
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            self.file = open(self.folder / (self.rows_name + ".part"), "wb")
        except OSError:
            self.file = None

    def add(self, chunk):
        if self.file is None:
            return
        self.counts.append(chunk.counts)
        try:
            self.file.write(np.ascontiguousarray(chunk.rows, dtype="<f8").data)
        except OSError:
            self.abort()

    def commit(self):
        """Make the rows written so far the folder's index; returns whether that worked."""
        if self.file is None:
            return False
        try:
            self.file.close()
            self.file = None
            os.replace(self.folder / (self.rows_name + ".part"), self.folder / self.rows_name)
            counts = np.concatenate(self.counts) if self.counts else np.zeros(0, dtype=np.int64)
            part = self.folder / f"meta.{self.rows_name}.part.npz"
            np.savez(part, version=VERSION, keys=np.array("\n".join(self.listing.keys)), stats=self.listing.stats,
                     counts=counts, rows_file=np.array(self.rows_name))
            os.replace(part, self.folder / META)
        except OSError:
            self._remove(self.rows_name, self.rows_name + ".part", f"meta.{self.rows_name}.part.npz")
            return False
        for stale in self.folder.glob("rows-*"):
            if stale.name != self.rows_name:
                self._remove(stale.name)
        _evict()
        return True

    def abort(self):
        """Drop an index that was not committed (nothing happens after a commit)."""
        if self.file is not None:
            try:
                self.file.close()
            except OSError:
                pass
            self.file = None
        self._remove(self.rows_name + ".part")
        try:
            self.folder.rmdir()  # only if nothing else is in it
        except OSError:
            pass

    def _remove(self, *names):
        for name in names:
            try:
                (self.folder / name).unlink()
            except OSError:
                pass


def _evict():
    """Keep the ``KEEP`` most recently written indexes."""
    try:
        indexes = [p for p in index_root().iterdir() if (p / META).is_file()]
        indexes.sort(key=lambda p: (p / META).stat().st_mtime_ns, reverse=True)
    except OSError:
        return
    for old in indexes[KEEP:]:
        shutil.rmtree(old, ignore_errors=True)
