"""Where the pruning engine keeps its files, and which server folders the app may train on.

One data folder, ``PRUNING_DATA_DIR`` (default ``$XDG_DATA_HOME/facedet-pruning``, i.e.
``~/.local/share/facedet-pruning``), holds every part; each part can be moved on its own:

- ``results.sqlite3``: the results store (``PRUNING_RESULTS_DB``);
- ``sessions/``: the app's session run folders and checkpoints (``PRUNING_SESSIONS_DIR``);
- ``uploads/``: photos uploaded for sessions (``PRUNING_UPLOADS_DIR``);
- ``sample-set-N/``: generated sample sets.

Downloaded weights live in facedet's cache (``FACEDET_CACHE_DIR``, ``facedet.paths``).
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


def _part(variable, name):
    value = os.environ.get(variable)
    return Path(value).expanduser() if value else data_dir() / name


def uploads_dir():
    """Where the app keeps photos uploaded for a session (one sub-folder per upload)."""
    return _part("PRUNING_UPLOADS_DIR", "uploads")


def sessions_dir():
    """Where the app's sessions keep their run folders (configuration, state, checkpoints)."""
    return _part("PRUNING_SESSIONS_DIR", "sessions")


def wider_roots():
    """WIDER FACE roots a server user may pick: ``$FACEDET_WIDER_ROOTS`` (separated by
    ``os.pathsep``); only existing folders. None configured: none offered (never a typed path)."""
    value = os.environ.get("FACEDET_WIDER_ROOTS", "")
    return [p for p in (Path(v).expanduser() for v in value.split(os.pathsep) if v) if p.is_dir()]


def locations():
    """``{part: path}`` of everything the engine writes, for the app's Home page and the README."""
    return {"results store": results_db_path(), "session runs": sessions_dir(), "uploads": uploads_dir(),
            "sample sets": data_dir()}


def results_db_path():
    return _part("PRUNING_RESULTS_DB", "results.sqlite3")


def sample_set_dir(images):
    return data_dir() / f"sample-set-{images}"
