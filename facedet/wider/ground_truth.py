"""The WIDER FACE validation ground truth of the standard eval tools.

Four files in one folder: ``wider_face_val.mat`` (events, image names, face boxes) and
``wider_{easy,medium,hard}_val.mat`` (per image, the 1-based indices of the faces each setting
keeps; the other faces are ignored in that setting).
"""

import hashlib
import os
import zipfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from facedet.errors import DataError
from facedet.paths import cache_dir
from facedet.wider.matfile import read_mat

SETTINGS = ("easy", "medium", "hard")
FACE_FILE = "wider_face_val.mat"
SETTING_FILES = {setting: f"wider_{setting}_val.mat" for setting in SETTINGS}


@dataclass(frozen=True)
class GroundTruth:
    """All faces of the set in flat arrays; image ``i`` owns rows ``offsets[i]:offsets[i+1]``."""

    keys: tuple  # "event/image_stem", in the order of the .mat files
    boxes: np.ndarray  # (F, 4) float64 x, y, w, h
    offsets: np.ndarray  # (I + 1,) int64
    keep: dict  # setting -> (F,) bool: the face counts in that setting
    keep_counts: dict  # setting -> number of kept indices (faces the setting's recall divides by)

    @property
    def image_of_face(self):
        return np.repeat(np.arange(len(self.keys)), np.diff(self.offsets))

    def faces(self, key):
        i = self.keys.index(key)
        return self.boxes[self.offsets[i] : self.offsets[i + 1]]


def load_ground_truth(gt_dir):
    """Read (and remember, per file version) the ground truth in ``gt_dir``."""
    gt_dir = Path(gt_dir)
    if not gt_dir.is_dir():
        raise DataError(f"ground-truth folder not found: {gt_dir}")
    paths = [gt_dir / FACE_FILE] + [gt_dir / name for name in SETTING_FILES.values()]
    for path in paths:
        if not path.is_file():
            raise DataError(f"{path.name} is missing from {gt_dir} (expected the WIDER FACE eval-tools ground truth)")
    stamp = tuple((str(p.resolve()), p.stat().st_mtime_ns, p.stat().st_size) for p in paths)
    return _load_cached(stamp)


CACHE_VERSION = 1
MIN_CACHED_IMAGES = 500


@lru_cache(maxsize=4)
def _load_cached(stamp):
    """Parsed once per file version, then kept in memory and in the user cache as .npz.

    Reading the full validation set's .mat files costs about as much as the evaluation itself;
    the .npz loads in milliseconds. The cache file is named after the files' paths, sizes and
    times. Small sets (the generated sample set) are not worth a file.
    """
    digest = hashlib.sha256(repr((CACHE_VERSION, stamp)).encode()).hexdigest()[:24]
    cache = cache_dir() / f"wider-gt-{digest}.npz"
    try:
        with np.load(cache, allow_pickle=False) as data:
            text = str(data["keys"])
            return GroundTruth(
                tuple(text.split("\n")) if text else (), data["boxes"], data["offsets"],
                {s: data[f"keep_{s}"] for s in SETTINGS},
                {s: int(data["keep_counts"][i]) for i, s in enumerate(SETTINGS)},
            )
    except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile):
        pass  # no cache yet, or an unreadable one: parse the .mat files
    gt = _parse(*(Path(entry[0]) for entry in stamp))
    if len(gt.keys) >= MIN_CACHED_IMAGES:
        _save(cache, gt)
    return gt



def _save(cache, gt):
    tmp = cache.with_name(f"{cache.stem}.{os.getpid()}.part.npz")
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(tmp, keys=np.array("\n".join(gt.keys)), boxes=gt.boxes, offsets=gt.offsets,
                 keep_counts=np.array([gt.keep_counts[s] for s in SETTINGS]),
                 **{f"keep_{s}": gt.keep[s] for s in SETTINGS})
        os.replace(tmp, cache)
    except OSError:
        tmp.unlink(missing_ok=True)  # a read-only or full cache only costs speed


def _parse(face_path, *setting_paths):
    faces = read_mat(face_path, ["event_list", "file_list", "face_bbx_list"])
    events = [_text(e) for e in _cells(faces["event_list"])]
    file_lists = [[_text(f) for f in _cells(files)] for files in _cells(faces["file_list"])]
    box_lists = [[_boxes(b, face_path) for b in _cells(boxes)] for boxes in _cells(faces["face_bbx_list"])]
    if not (len(events) == len(file_lists) == len(box_lists)) or any(
        len(f) != len(b) for f, b in zip(file_lists, box_lists)
    ):
        raise DataError(f"{face_path} is inconsistent: events, file names and boxes differ in number")
    keys = tuple(f"{event}/{name}" for event, names in zip(events, file_lists) for name in names)
    per_image = [b for boxes in box_lists for b in boxes]
    counts = np.array([len(b) for b in per_image], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(counts)])
    boxes = np.concatenate(per_image) if per_image else np.zeros((0, 4))

    keep, keep_counts = {}, {}
    for setting, path in zip(SETTINGS, setting_paths):
        lists = [k for image_lists in _cells(read_mat(path, ["gt_list"])["gt_list"]) for k in _cells(image_lists)]
        if len(lists) != len(keys):
            raise DataError(f"{path} lists {len(lists)} images but {face_path.name} has {len(keys)}")
        sizes = np.array([np.size(k) for k in lists], dtype=np.int64)
        indices = np.concatenate([np.ravel(k) for k in lists]).astype(np.int64) if lists else np.zeros(0, np.int64)
        image = np.repeat(np.arange(len(lists)), sizes)
        bad = np.flatnonzero((indices < 1) | (indices > counts[image]))
        if bad.size:
            i = image[bad[0]]
            raise DataError(f"{path} keeps face {indices[bad[0]]} of {keys[i]}, which has {counts[i]} faces")
        mask = np.zeros(len(boxes), dtype=bool)
        mask[offsets[image] + indices - 1] = True
        keep[setting], keep_counts[setting] = mask, int(indices.size)
    return GroundTruth(keys, boxes, offsets, keep, keep_counts)


def _cells(value):
    """Elements of a cell array (either reader), in MATLAB's column-major order."""
    if isinstance(value, np.ndarray) and value.dtype == object:
        return list(value.ravel(order="F"))
    raise DataError("unexpected content in a ground-truth file: a cell array was expected")


def _text(value):
    if isinstance(value, str):
        return value
    array = np.asarray(value).ravel()  # SciPy gives array(['name'])
    return str(array[0]) if array.size else ""


def _boxes(value, path):
    array = np.asarray(value, dtype=np.float64)
    if array.size == 0:
        return np.zeros((0, 4))
    if array.ndim != 2 or array.shape[1] != 4:
        raise DataError(f"{path} holds a face-box array of shape {array.shape}; (N, 4) was expected")
    return array
