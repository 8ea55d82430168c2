"""Whether ``facedet predict`` finished a prediction folder: a marker file it keeps in the folder.

``predict`` writes ``.predict.json`` first with ``"complete": false`` (the settings and the number
of images it will write) and replaces it with ``"complete": true`` only after the last image's
file is written. A folder stopped half-way (Ctrl-C, a full disk, a crash) therefore says so, and
``evaluate`` refuses to score its missing images as images without faces. Folders written by
other tools (the authors' scripts, the upstream format) have no marker: they evaluate as before,
with a warning that their completeness could not be checked.
"""

import json
import warnings
from pathlib import Path
from typing import NamedTuple

from facedet.atomic import write_text
from facedet.errors import DataError, FacedetWarning

MARKER = ".predict.json"


class IncompletePredictions(FacedetWarning):
    """A prediction folder is evaluated although it is, or may be, incomplete."""


class Completion(NamedTuple):
    state: str  # complete, incomplete, unknown (no marker)
    images: int | None = None  # how many images the run writes
    settings: dict | None = None
    split_images: int | None = None  # how many the split has (more than ``images`` with predict --limit)


def read(folder):
    """The folder's Completion; ``unknown`` without a (readable) marker."""
    try:
        data = json.loads((Path(folder) / MARKER).read_text(encoding="utf-8"))
        complete = data["complete"]
        images = int(data["images"])
        split_images = int(data.get("split_images") or images)
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError):
        return Completion("unknown")
    return Completion("complete" if complete is True else "incomplete", images, data.get("settings"), split_images)


def mark_started(folder, settings, images, split_images):
    """Mark ``folder`` as being written: ``images`` files (of the split's ``split_images``) with these ``settings``."""
    _write(folder, False, settings, images, split_images)


def mark_complete(folder, settings, images, split_images):
    """Mark ``folder`` complete: call only after its last file is written."""
    _write(folder, True, settings, images, split_images)


def _write(folder, complete, settings, images, split_images):
    record = {"complete": complete, "images": int(images), "split_images": int(split_images), "settings": settings}
    write_text(Path(folder) / MARKER, json.dumps(record, indent=1) + "\n")


def check_before_evaluating(folder, files, allow_incomplete=False):
    """Whether ``folder`` (holding ``files`` prediction files) evaluates only its predicted images.

    Complete: False. Incomplete: DataError (one line), or with ``allow_incomplete`` a warning and
    True. Without a marker: a warning that completeness could not be checked, and False (as before).
    """
    found = read(folder)
    if found.state == "complete":
        if found.images < found.split_images:
            warnings.warn(f"{folder} holds the first {found.images} of the split's {found.split_images} images "
                          "(predict --limit): the others count as images where nothing was found; pass "
                          "--only-predicted to evaluate only these", IncompletePredictions, stacklevel=3)
        return False
    if found.state == "unknown":
        warnings.warn(f"{folder} has no {MARKER} of facedet predict: its completeness cannot be checked "
                      "(images without a file count as images where nothing was found)", IncompletePredictions,
                      stacklevel=3)
        return False
    if not allow_incomplete:
        raise DataError(f"{folder} is incomplete: facedet predict wrote {files} of its {found.images} images and "
                        "did not finish; run the same predict again to complete it, or pass --allow-incomplete "
                        "to evaluate only the images it has")
    warnings.warn(f"{folder} is incomplete ({files} of {found.images} images): evaluating only the images it has, "
                  "which is not the standard AP", IncompletePredictions, stacklevel=3)
    return True
