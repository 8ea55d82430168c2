"""Writing output files so that a crash or a full disk never leaves half a file under its name.

Every file goes to a temporary name in the same folder (hidden, ending ``.tmp``), is flushed to
the disk (``fsync``) and only then renamed over the final name (``os.replace``, atomic). On any
error the temporary file is removed and the final name keeps what it had before (or stays absent).
"""

import contextlib
import errno
import os
import tempfile
from pathlib import Path

from facedet.errors import DataError

# errno values that mean the disk (or the user's quota on it) is full.
NO_SPACE_ERRNOS = (errno.ENOSPC, errno.EDQUOT)


@contextlib.contextmanager
def atomic_file(path, mode="wb", encoding=None, newline=None):
    """A file (binary by default; ``mode="w"`` for text) that replaces ``path`` only when the
    block completes."""
    path = Path(path)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    tmp = Path(name)
    try:
        with os.fdopen(fd, mode, encoding=encoding, newline=newline) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())  # the data is on the disk before the name points at it
        os.chmod(tmp, 0o644)  # mkstemp makes it owner-only; outputs and a shared cache should not be
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def is_no_space(err):
    return isinstance(err, OSError) and err.errno in NO_SPACE_ERRNOS


def write_failure(path, err):
    """The one-line reason an OSError stopped writing ``path``; a full disk says so plainly."""
    if is_no_space(err):
        return f"no space left on device for {path}"
    if isinstance(err, FileNotFoundError) and not Path(path).parent.is_dir():
        return f"cannot write {path}: the folder {Path(path).parent} does not exist"
    if isinstance(err, IsADirectoryError) or Path(path).is_dir():
        return f"cannot write {path}: it is a directory"
    return f"cannot write {path}: {err.strerror or err}"


def write_bytes(path, data, error=DataError):
    """Write ``data`` to ``path`` atomically; ``error`` (a FacedetError class) with one line if that fails."""
    try:
        with atomic_file(path) as f:
            f.write(data)
    except OSError as err:
        raise error(write_failure(path, err)) from None
    return Path(path)


def write_text(path, text, error=DataError):
    """Write ``text`` (UTF-8) to ``path`` atomically; ``error`` with one line if that fails."""
    return write_bytes(path, text.encode("utf-8"), error)
