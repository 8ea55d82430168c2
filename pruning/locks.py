"""One training process per run directory: an exclusive lock held for the whole run.

Two processes on one directory would overwrite each other's state and share one row of the
results store. ``RunDirLock`` takes a non-blocking ``fcntl.flock`` on ``<run dir>/.lock`` (the
kernel drops it when its process dies, so a crash never leaves the directory locked) and writes
the holder's process id into the file, so that a second process can say who has it.
"""

import fcntl
import os
import socket
from pathlib import Path

from facedet.errors import DataError

LOCK_FILE = ".lock"


class RunDirLock:
    """``with RunDirLock(run_dir):`` the run directory is this process's for the block (made if
    needed); DataError, one line, when another process holds it. A directory the lock made and
    the block left empty is removed again: a run refused at once leaves nothing behind."""

    def __init__(self, run_dir):
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_FILE
        self.fd = None
        self.made_dir = False

    def __enter__(self):
        if self.run_dir.exists() and not self.run_dir.is_dir():
            raise DataError(f"the run directory {self.run_dir} is a file")
        try:
            self.made_dir = not self.run_dir.exists()
            self.run_dir.mkdir(parents=True, exist_ok=True)
            self.fd = self._lock()
            os.ftruncate(self.fd, 0)
            os.write(self.fd, f"{os.getpid()} {socket.gethostname()}\n".encode())
        except OSError as err:
            self._release()
            raise DataError(f"cannot lock the run directory {self.run_dir}: {err.strerror or err}") from None
        return self

    def __exit__(self, *exc):
        self._release()
        return False

    def _lock(self):
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _holder(fd)
                os.close(fd)
                raise DataError(f"the run directory {self.run_dir} is in use by {holder}; wait for it to end "
                                "or choose another run directory") from None
            if _is_current(fd, self.path):
                return fd
            os.close(fd)  # the holder removed the file as it left: lock the one there now

    def _release(self):
        if self.fd is not None:
            # Removed while still held: a process waiting on this file sees it is gone and retries.
            self.path.unlink(missing_ok=True)
            os.close(self.fd)
            self.fd = None
        if self.made_dir:
            try:
                self.run_dir.rmdir()  # only when empty
            except OSError:
                pass


def _holder(fd):
    """``process 1234`` (``on host``, when another machine's) from the lock file's text."""
    try:
        text = os.pread(fd, 200, 0).decode(errors="replace").split()
    except OSError:
        text = []
    if not text:
        return "another process"
    pid, host = text[0], (text[1] if len(text) > 1 else "")
    return f"process {pid}" + (f" on {host}" if host and host != socket.gethostname() else "")


def _is_current(fd, path):
    """Whether the open file ``fd`` is still the one at ``path`` (not removed or replaced)."""
    try:
        here, there = os.fstat(fd), os.stat(path)
    except OSError:
        return False
    return (here.st_dev, here.st_ino) == (there.st_dev, there.st_ino)
