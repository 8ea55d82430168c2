"""Where things are in the WIDER FACE layout as users download it, and which images a split has.

    ROOT/WIDER_{train,val,test}/images/<event>/<name>.jpg
    ROOT/wider_face_split/wider_face_{train,val}_bbx_gt.txt   (annotations)
    ROOT/wider_face_split/wider_face_test_filelist.txt         (test: names only)
"""

from pathlib import Path

from facedet.errors import DataError, ImageError

SPLITS = ("train", "val", "test")
# A generated sample set (facedet.wider.sample_set) has this file at its root; commands that see
# it print NOTICE next to their numbers.
MARKER = "SAMPLE_SET.txt"
NOTICE = "NOTE: this is the generated sample set, not WIDER FACE; its APs are not WIDER FACE numbers."
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


def annotation_file(root, split):
    return Path(root) / "wider_face_split" / f"wider_face_{split}_bbx_gt.txt"


def file_list(root, split):
    return Path(root) / "wider_face_split" / f"wider_face_{split}_filelist.txt"


def image_dir(root, split):
    return Path(root) / f"WIDER_{split}" / "images"


def check_split(root, split):
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    folder = image_dir(root, split)
    if not folder.is_dir():
        raise DataError(f"{folder} not found; is {root} a WIDER FACE folder (WIDER_{split}/images/...)?")
    return folder


def split_images(root, split):
    """``[(key "event/name", image path)]`` of a split, in the order of its annotation file.

    Taken from the annotation file, else the test file list, else the image folder itself.
    """
    folder = check_split(root, split)
    listing = annotation_file(root, split)
    if listing.is_file():
        from facedet.wider.annotations import read_annotations

        names = [a.path for a in read_annotations(listing)]
    elif file_list(root, split).is_file():
        text = file_list(root, split).read_text(encoding="utf-8")
        names = [line.strip() for line in text.splitlines() if line.strip()]
    else:
        names = sorted(
            f"{p.parent.name}/{p.name}" for p in folder.glob("*/*") if p.suffix.lower() in IMAGE_SUFFIXES
        )
    if not names:
        raise DataError(f"no images listed for the {split} split under {root}")
    return [(name.rsplit(".", 1)[0], folder / name) for name in names]


def is_sample_set(path):
    """True if ``path`` is a generated sample set or inside one (up to three folders down)."""
    path = Path(path).resolve()
    return any((folder / MARKER).is_file() for folder in [path, *list(path.parents)[:3]])


def load_image(path):
    """A data-set image as RGB uint8, pixels as stored.

    Unlike ``facedet.images.read_image`` (for user photos) no EXIF rotation is applied: the
    annotations, like the authors' scripts (Pillow, then RGB), use the stored pixel order.
    """
    import numpy as np
    from PIL import Image

    try:
        with Image.open(path) as img:
            return np.array(img.convert("RGB"))
    except (OSError, SyntaxError, ValueError) as err:
        raise ImageError(f"cannot read data-set image {path} ({err})") from None
