"""WIDER FACE images with their face boxes, as a torch ``Dataset`` for training."""

from torch.utils.data import Dataset

from facedet.errors import DataError
from facedet.wider.annotations import read_annotations, valid_xyxy
from facedet.wider.layout import annotation_file, check_split, load_image


class WiderFaceDataset(Dataset):
    """Items ``(image, boxes)``: RGB uint8 HxWx3 and float32 (N, 4) ``x1, y1, x2, y2`` pixels.

    Boxes with zero or negative width or height are left out, and so are images left without a
    box (as in the authors' training lists) unless ``keep_empty``. ``transform(image, boxes)``,
    when given, is applied and its result returned instead.
    """

    def __init__(self, root, split="train", transform=None, keep_empty=False):
        if split not in ("train", "val"):
            raise DataError(f"split must be 'train' or 'val' (annotated), not {split!r}")
        self.images_dir = check_split(root, split)
        listing = annotation_file(root, split)
        if not listing.is_file():
            raise DataError(f"annotation file not found: {listing}")
        self.items = []
        for annotation in read_annotations(listing):
            boxes = valid_xyxy(annotation)
            if len(boxes) or keep_empty:
                self.items.append((annotation.path, boxes))
        self.transform = transform

    def __len__(self):
        return len(self.items)

    def __getitem__(self, index):
        name, boxes = self.items[index]
        image = load_image(self.images_dir / name)
        boxes = boxes.copy()
        if self.transform is not None:
            return self.transform(image, boxes)
        return image, boxes
