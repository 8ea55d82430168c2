"""The WIDER FACE validation ground truth of the standard eval tools.

Four files in one folder: ``wider_face_val.mat`` (events, image names, face boxes) and
``wider_{easy,medium,hard}_val.mat`` (per image, the 1-based indices of the faces each setting
keeps; the other faces are ignored in that setting).
"""

import io
import struct
import warnings
import zlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from facedet.errors import DataError

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
    """Read (and remember in this process, per file version) the ground truth in ``gt_dir``."""
    gt_dir = Path(gt_dir)
    if not gt_dir.is_dir():
        raise DataError(f"ground-truth folder not found: {gt_dir}")
    paths = [gt_dir / FACE_FILE] + [gt_dir / name for name in SETTING_FILES.values()]
    for path in paths:
        if not path.is_file():
            raise DataError(f"{path.name} is missing from {gt_dir} (expected the WIDER FACE eval-tools ground truth)")
    stamp = tuple((str(p.resolve()), p.stat().st_mtime_ns, p.stat().st_size) for p in paths)
    return _load(stamp)


@lru_cache(maxsize=4)
def _load(stamp):
    """Parsed once per file version (path, time, size): the app and sessions evaluate often."""
    return _parse(*(Path(entry[0]) for entry in stamp))


def read_mat(path, names):
    """Variables ``names`` of the MAT file at ``path`` (SciPy's reader); a one-line DataError
    for a file that is empty, not a MAT file, or lacks one of them."""
    import scipy.io  # on use: importing it takes about 0.3 s, which modules naming these files need not pay

    try:
        raw = path.read_bytes()
    except OSError as err:
        raise DataError(f"cannot read {path} ({err.strerror})") from None
    if not raw:
        raise DataError(f"{path} is empty; is it a WIDER FACE ground-truth file?")
    _check_compressed_elements(path, raw)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # SciPy's warnings about odd files: the error says it
            data = scipy.io.loadmat(io.BytesIO(raw), variable_names=list(names))
    except Exception as err:  # a damaged file fails SciPy's parser in many ways (zlib, struct, even a division)
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise DataError(f"{path} cannot be read as a MAT file ({reason[:100]})") from None
    missing = [name for name in names if name not in data]
    if missing:
        raise DataError(f"{path} has no variable {missing[0]!r}; is it a WIDER FACE ground-truth file?")
    return data


_MAT5_HEADER_BYTES, _MI_COMPRESSED = 128, 15


def _check_compressed_elements(path, raw):
    """SciPy inflates a compressed variable without checking it first and can crash (a segfault,
    not an error) on a damaged one; zlib checks every compressed element's checksum (milliseconds)."""
    if not raw.startswith(b"MATLAB 5.0") or len(raw) < _MAT5_HEADER_BYTES:
        return  # another version or not a MAT file at all: SciPy says which
    tag = struct.Struct(">II" if raw[126:128] == b"MI" else "<II")
    pos = _MAT5_HEADER_BYTES
    while pos + tag.size <= len(raw):
        kind, size = tag.unpack_from(raw, pos)
        pos += tag.size
        if kind == _MI_COMPRESSED:
            try:
                zlib.decompress(raw[pos : pos + size])
            except zlib.error as err:
                raise DataError(f"{path} is damaged ({err})") from None
        pos += size + (0 if kind == _MI_COMPRESSED else -size % 8)  # uncompressed elements are 8-byte aligned


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
    """Elements of a cell array, in MATLAB's column-major order."""
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
