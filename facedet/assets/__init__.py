"""The project's data files, installed with the package: the real sample photos (``photos/``, with
``photos.json``), the portraits of the generated sample set, the paper's tables and the published
detectors' numbers (``README.md`` here gives every file's source and license).

``asset_path(*parts)`` locates them through ``importlib.resources`` (wherever the package is
installed, or the checkout when it is imported from there), never relative to another module.
"""

from importlib import resources
from pathlib import Path


def asset_path(*parts):
    """The path of a data file or folder: ``asset_path("photos", "photos.json")``; no parts: the folder."""
    return Path(resources.files(__name__), *parts)
