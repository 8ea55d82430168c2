"""Where the pruning engine keeps its files: the results store and the generated sample set.

``PRUNING_DATA_DIR`` (default ``$XDG_DATA_HOME/facedet-pruning``, i.e. ``~/.local/share/...``)
holds both; ``PRUNING_RESULTS_DB`` points the results store elsewhere.
"""

import os
from pathlib import Path


def data_dir():
    value = os.environ.get("PRUNING_DATA_DIR")
    if value:
        return Path(value).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "facedet-pruning"


def data_roots():
    """Folders a server user may pick training photos from: ``$FACEDET_DATA_ROOTS``
    (separated by ``os.pathsep``) if set, else the project's sample photos. Each root and its
    immediate sub-folders are offered; nothing else on the server is."""
    from facedet.samples import PHOTOS_DIR

    value = os.environ.get("FACEDET_DATA_ROOTS")
    roots = [Path(v).expanduser() for v in value.split(os.pathsep) if v] if value else [PHOTOS_DIR]
    folders = []
    for root in roots:
        if root.is_dir():
            folders.append(root)
            folders.extend(sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")))
    return folders


def uploads_dir():
    """Where the app keeps photos uploaded for a session (one sub-folder per upload)."""
    return data_dir() / "uploads"


def results_db_path():
    value = os.environ.get("PRUNING_RESULTS_DB")
    return Path(value).expanduser() if value else data_dir() / "results.sqlite3"


def sample_set_dir(images):
    return data_dir() / f"sample-set-{images}"
