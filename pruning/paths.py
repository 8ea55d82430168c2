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


def results_db_path():
    value = os.environ.get("PRUNING_RESULTS_DB")
    return Path(value).expanduser() if value else data_dir() / "results.sqlite3"


def sample_set_dir(images):
    return data_dir() / f"sample-set-{images}"
