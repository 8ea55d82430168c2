"""The WIDER FACE annotation files ``wider_face_split/wider_face_{train,val}_bbx_gt.txt``.

Per image: the image path (``event/name.jpg``), the face count, then one line per face
``x y w h blur expression illumination invalid occlusion pose``. An image without faces has the
count 0 followed by one line of zeros.
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facedet.errors import DataError
from facedet.wider.layout import IMAGE_SUFFIXES

ATTRIBUTES = ("blur", "expression", "illumination", "invalid", "occlusion", "pose")


@dataclass(frozen=True)
class ImageAnnotation:
    path: str  # "event/name.jpg", relative to WIDER_<split>/images
    boxes: np.ndarray  # (N, 4) float32 x, y, w, h as annotated
    attributes: np.ndarray  # (N, 6) int32, columns as in ATTRIBUTES

    @property
    def key(self):
        """``"event/name"``: how the evaluation and submissions name the image."""
        return self.path.rsplit(".", 1)[0]


def read_annotations(path):
    """All images of one ``*_bbx_gt.txt`` file, in file order; DataError naming a bad line."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as err:
        raise DataError(f"cannot read {path} ({err.strerror})") from None
    except UnicodeDecodeError:
        raise DataError(f"{path} is not a text file") from None
    images, i = [], 0
    while i < len(lines):
        name = lines[i].strip()
        if not name:
            i += 1
            continue
        if not name.lower().endswith(IMAGE_SUFFIXES):
            raise DataError(f"{path}: line {i + 1}: expected an image path, got {name[:60]!r}")
        count = _count(path, lines, i + 1)
        rows = max(count, 1)  # an image without faces still has one line (of zeros)
        table = [_face(path, lines, j) for j in range(i + 2, i + 2 + rows)]
        table = np.array(table, dtype=np.float64).reshape(-1, 10)[:count]
        images.append(ImageAnnotation(name, table[:, :4].astype(np.float32), table[:, 4:].astype(np.int32)))
        i += 2 + rows
    return images


def valid_xyxy(annotation):
    """The face boxes with positive width and height as (N, 4) float32 ``x1, y1, x2, y2``.

    ``x2 = x + w`` as in the authors' training data lists.
    """
    boxes = annotation.boxes
    boxes = boxes[(boxes[:, 2] > 0) & (boxes[:, 3] > 0)]
    return np.concatenate([boxes[:, :2], boxes[:, :2] + boxes[:, 2:]], axis=1).astype(np.float32)


def _count(path, lines, i):
    try:
        count = int(lines[i])
    except IndexError:
        raise DataError(f"{path}: line {i + 1}: the face count is missing") from None
    except ValueError:
        raise DataError(f"{path}: line {i + 1}: expected a face count, got {lines[i].strip()[:60]!r}") from None
    if count < 0:
        raise DataError(f"{path}: line {i + 1}: negative face count")
    return count


def _face(path, lines, j):
    try:
        fields = lines[j].split()
    except IndexError:
        raise DataError(f"{path}: line {j + 1}: a face line is missing (file ends early)") from None
    try:
        values = [float(v) for v in fields]
    except ValueError:
        values = []
    if len(values) != 10:
        raise DataError(f"{path}: line {j + 1}: expected 'x y w h blur expression illumination invalid occlusion pose', "
                        f"got {lines[j].strip()[:60]!r}")
    return values
