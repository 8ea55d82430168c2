"""The project's real sample photographs (``facedet/assets/photos``), their roles and hand annotations.

``train/`` holds the unlabelled photos the quick pruning preset trains on; ``holdout/`` the
photos it never sees, on which agreement with the teacher and the quick-session benchmark are
measured. ``photos.json`` gives each file's source, license and, where we annotated them by
hand, its faces (x1, y1, x2, y2 pixels).
"""

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from facedet.assets import asset_path

PHOTOS_DIR = asset_path("photos")
ROLES = ("holdout", "train")


@dataclass(frozen=True)
class SamplePhoto:
    name: str  # file name without folder
    path: Path
    role: str  # holdout or train
    source: str
    license: str
    description: str
    faces: np.ndarray | None  # [N, 4] hand-annotated boxes, None when not annotated

    @property
    def title(self):
        return self.path.stem.replace("-", " ")


@lru_cache(maxsize=1)
def sample_photos():
    """Every sample photo, held-out ones first (as listed in ``photos.json``)."""
    doc = json.loads((PHOTOS_DIR / "photos.json").read_text())
    photos = []
    for entry in doc["photos"]:
        faces = entry.get("faces")
        photos.append(SamplePhoto(
            name=Path(entry["file"]).name, path=PHOTOS_DIR / entry["file"], role=entry["role"],
            source=entry["source"], license=entry["license"], description=entry["description"],
            faces=None if faces is None else np.asarray(faces, dtype=np.float64).reshape(-1, 4)))
    return tuple(photos)


def photos_dir(role):
    """The folder of the ``train`` or ``holdout`` photos."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}, not {role!r}")
    return PHOTOS_DIR / role


def annotated(role="holdout"):
    """The sample photos of ``role`` that have hand annotations."""
    return [p for p in sample_photos() if p.role == role and p.faces is not None]


def faces_for(path):
    """Hand-annotated faces of a sample photo given by path or name, or None."""
    name = Path(path).name
    return next((p.faces for p in sample_photos() if p.name == name), None)
