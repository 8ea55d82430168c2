"""Where facedet keeps files of its own (kept import-light: the evaluate path uses it)."""

import os
from pathlib import Path


def cache_dir():
    """The user cache: ``$FACEDET_CACHE_DIR``, else ``$XDG_CACHE_HOME/facedet``, else ``~/.cache/facedet``."""
    value = os.environ.get("FACEDET_CACHE_DIR")
    if value:
        return Path(value).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "facedet"
