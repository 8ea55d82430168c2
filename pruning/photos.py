"""Unlabelled photo folders as training data for distillation.

The teacher (the unpruned model) supplies the targets, so any readable photos will do. Crops are
taken at the scales the detector sees at inference: each photo is first brought to the
detector's automatic scale (the authors' demo area), then zoomed by a random factor around it, so
the faces the student learns on have the sizes it will meet in ``detect``. Half the crops (by
default) are centred near a face the teacher finds in the photo, like data-anchor sampling
without labels; the rest fall anywhere, and teach the student where the teacher sees no face.
A share of the crops (``paste_faces``) can also get a few of the photos' faces pasted in at small
sizes (copy-paste), where the teacher then finds them: many more small faces than the photos hold.
Optionally, a share of the crops is blended with a second crop, of any photo (``mixup``), or of the
pasted patches cut from the crop's own background (``paste_background``).

Epochs are reproducible, as with ``pruning.data.EpochLoader``: the crops of epoch ``e`` depend
only on the seed, ``e`` and the photo.
"""

import functools
import os
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from facedet.errors import DataError, ImageError
from facedet.images import read_image
from pruning.augment import INTERPOLATIONS, crop_resize, distort, to_tensor

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif")
MAX_PHOTOS = 500  # a folder with more is read only up to this many (sorted order); all are kept in memory
ZOOM_RANGE = (-1.0, 0.5)  # log2 of the zoom around the automatic scale (TrainConfig.photo_zoom)
FACE_CROP_PROBABILITY = 0.5
ANCHOR_SCORE = 0.5  # teacher detections that count as faces for face-centred crops
PATCH_CONTEXT = 1.6  # a pasted face patch's side over its face's side (some hair, chin and background)


def find_photos(root, limit=MAX_PHOTOS):
    """Image files under ``root`` (recursive, sorted; hidden folders skipped), by suffix."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DataError(f"photo folder not found: {root}")
    found = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if name.lower().endswith(IMAGE_SUFFIXES) and not name.startswith("."):
                found.append(Path(folder) / name)
                if len(found) >= limit:
                    return found
    return found


def load_photos(paths, max_side=2048):
    """``(images, names, skipped)``: the readable photos as RGB uint8 (long side at most
    ``max_side``), and ``[(name, reason), ...]`` for the files that could not be used."""
    images, names, skipped = [], [], []
    for path in paths:
        try:
            image = read_image(path)
        except ImageError as err:
            skipped.append((str(path), str(err)))
            continue
        if min(image.shape[:2]) < 16:
            skipped.append((str(path), "smaller than 16 px"))
            continue
        longest = max(image.shape[:2])
        if longest > max_side:
            scale = max_side / longest
            image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        images.append(image)
        names.append(str(path))
    return images, names, skipped


class PhotoCrops:
    """``crops(image, anchors, rng) -> tensor [3, size, size]``: one random training crop.

    ``base_scale(h, w)`` is the detector's automatic scale; the crop covers ``size / zoom``
    pixels of the photo, ``zoom = base * 2**U(zoom_range)``. ``anchors`` are face boxes
    (x1, y1, x2, y2) that face-centred crops pick from.
    """

    def __init__(self, size, base_scale, zoom_range=ZOOM_RANGE, face_crop_probability=FACE_CROP_PROBABILITY,
                 photometric=True, flip_probability=0.5, face_sizes=(), paste_faces=0.0, face_patches=(),
                 paste_sizes=(12.0, 40.0), paste_background=0.0):
        self.size = int(size)
        # Copy-paste: with probability ``paste_faces`` a crop gets 1-4 of ``face_patches`` (faces cut
        # from the photos with some context) pasted at sides drawn log-uniformly from ``paste_sizes``.
        self.paste_faces = float(paste_faces)
        self.face_patches = list(face_patches)
        self.paste_sizes = tuple(paste_sizes)
        # A share of the pasted patches are windows of the crop itself, blended the same way: a soft
        # blended disc is then no sign of a face, only a face is.
        self.paste_background = float(paste_background)
        # (low, high) px: a face-centred crop zooms its face to a side drawn log-uniformly from this
        # range (data-anchor sampling), instead of zooming around the automatic scale. Empty: off.
        self.face_sizes = tuple(face_sizes)
        self.base_scale = base_scale
        self.zoom_range = tuple(zoom_range)
        self.face_crop_probability = float(face_crop_probability)
        self.photometric = photometric
        self.flip_probability = flip_probability

    def __call__(self, image, anchors, rng):
        return self.finish(self.raw(image, anchors, rng), rng)

    def raw(self, image, anchors, rng):
        """The crop before photometric distortion and flip: a window, with faces pasted in or not."""
        crop = self.window(image, anchors, rng, self.size)
        if self.face_patches and rng.random() < self.paste_faces:
            crop = self.paste(crop, rng)
        return crop

    def blend(self, first, second, rng):
        """Two photos' crops ``(image, anchors)`` mixed pixel by pixel, the first weighted U(0, 1)."""
        share = rng.uniform()
        mixed = share * self.raw(*first, rng).astype(np.float32) + (1 - share) * self.raw(*second, rng)
        return self.finish(mixed.round().astype(np.uint8), rng)

    def paste(self, crop, rng):
        """``crop`` with 1-4 face patches blended in (soft elliptical edges) at random places."""
        crop = crop.copy()
        for _ in range(int(rng.integers(1, 5))):
            patch = self.face_patches[int(rng.integers(len(self.face_patches)))]
            side = int(round(2.0 ** rng.uniform(*np.log2(self.paste_sizes)) * PATCH_CONTEXT))
            side = min(max(side, 4), self.size)
            if self.paste_background and rng.random() < self.paste_background:
                source = int(rng.integers(side, self.size + 1))  # a window of the crop, of side >= the patch's
                y, x = (int(rng.integers(0, self.size - source + 1)) for _ in range(2))
                patch = crop[y:y + source, x:x + source]
            patch = cv2.resize(patch, (side, side), interpolation=cv2.INTER_AREA)
            y, x = (int(rng.integers(0, self.size - side + 1)) for _ in range(2))
            alpha = _soft_ellipse(side)[..., None]
            region = crop[y:y + side, x:x + side].astype(np.float32)
            crop[y:y + side, x:x + side] = (alpha * patch + (1 - alpha) * region).round().astype(np.uint8)
        return crop

    def window(self, image, anchors, rng, size):
        """A ``size`` x ``size`` uint8 crop of ``image`` at a random zoom (see the class)."""
        height, width = image.shape[:2]
        zoom = self.base_scale(height, width) * 2.0 ** rng.uniform(*self.zoom_range)
        face = None
        if len(anchors) and rng.random() < self.face_crop_probability:
            face = anchors[int(rng.integers(len(anchors)))]
            if self.face_sizes:
                x1, y1, x2, y2 = face
                zoom = 2.0 ** rng.uniform(*np.log2(self.face_sizes)) / np.sqrt(max(x2 - x1, 1.0) * max(y2 - y1, 1.0))
        side = size / zoom  # the window's side in photo pixels
        if face is not None:
            x1, y1, x2, y2 = face
            # A window holding the whole face (or lying within it when the face is larger).
            left = rng.uniform(min(x2 - side, x1), max(x2 - side, x1))
            top = rng.uniform(min(y2 - side, y1), max(y2 - side, y1))
        else:
            left = rng.uniform(min(0.0, width - side), max(0.0, width - side))
            top = rng.uniform(min(0.0, height - side), max(0.0, height - side))
        interpolation = INTERPOLATIONS[int(rng.integers(len(INTERPOLATIONS)))]
        return crop_resize(image, (left, top, left + side, top + side), size, interpolation)

    def mosaic(self, photos, rng):
        """Four half-size windows, one of each ``(image, anchors)`` of ``photos``, in a 2 x 2 grid:
        faces keep the sizes of a whole crop, in scenes no single photo shows (as YOLOv4's mosaic)."""
        half = self.size // 2
        tiles = [self.window(image, anchors, rng, half) for image, anchors in photos]
        grid = np.concatenate((np.concatenate(tiles[:2], axis=1), np.concatenate(tiles[2:], axis=1)), axis=0)
        return self.finish(grid, rng)

    def finish(self, crop, rng):
        """Photometric distortion and flip of a finished crop, as a network input tensor."""
        colour_rng = np.random.default_rng(rng.integers(2**63))
        if self.photometric:
            crop = distort(crop, colour_rng)
        if rng.random() < self.flip_probability:
            crop = np.ascontiguousarray(crop[:, ::-1])
        return to_tensor(crop)


class PhotoLoader:
    """Training batches from unlabelled photos: ``epoch(e)`` yields ``(images, [empty boxes])``.

    ``crops_per_photo`` crops of every photo make an epoch. The targets are empty: the teacher's
    outputs on the same crops are the targets (``pruning.distill``).
    """

    has_labels = False

    def __init__(self, images, anchors, crops, crops_per_photo=4, batch_size=8, workers=0, seed=0,
                 rank=0, world_size=1, mosaic=0.0, mixup=0.0):
        if not images:
            raise DataError("no usable photos to train on")
        self.images, self.anchors, self.crops = images, anchors, crops
        self.crops_per_photo = int(crops_per_photo)
        self.batch_size, self.workers, self.seed = int(batch_size), int(workers), int(seed)
        self.rank, self.world_size = rank, world_size
        self.mosaic = float(mosaic)  # share of crops made as a 2 x 2 mosaic of four photos
        self.mixup = float(mixup)  # share of crops blended with a second crop (of any photo, itself included)

    def _order(self, epoch):
        """``(photo, k)`` pairs: the k-th crop of each photo, in this epoch's order."""
        from pruning.data import epoch_order

        count = len(self.images) * self.crops_per_photo
        return [divmod(i, self.crops_per_photo) for i in epoch_order(count, self.seed, epoch, self.rank,
                                                                       self.world_size)]

    def __len__(self):
        per_rank = -(-len(self.images) * self.crops_per_photo // self.world_size)
        return -(-per_rank // self.batch_size)

    def epoch(self, epoch):
        dataset = _PhotoEpoch(self, self._order(epoch), epoch)
        return DataLoader(dataset, batch_size=self.batch_size, shuffle=False, num_workers=self.workers,
                          collate_fn=_collate_unlabelled, pin_memory=torch.cuda.is_available())


class _PhotoEpoch(Dataset):
    def __init__(self, loader, order, epoch):
        self.loader, self.order, self.epoch = loader, order, epoch

    def __len__(self):
        return len(self.order)

    def __getitem__(self, position):
        photo, k = self.order[position]
        loader = self.loader
        rng = np.random.default_rng([loader.seed, self.epoch, photo, k])
        if loader.mosaic and rng.random() < loader.mosaic:
            others = rng.integers(len(loader.images), size=3)
            chosen = [photo, *(int(i) for i in others)]
            rng.shuffle(chosen)
            return loader.crops.mosaic([(loader.images[i], loader.anchors[i]) for i in chosen], rng)
        if loader.mixup and rng.random() < loader.mixup:
            other = int(rng.integers(len(loader.images)))
            return loader.crops.blend((loader.images[photo], loader.anchors[photo]),
                                      (loader.images[other], loader.anchors[other]), rng)
        return loader.crops(loader.images[photo], loader.anchors[photo], rng)


def face_patches(images, anchors, min_side=16):
    """Square patches around every teacher face of at least ``min_side`` px, with context."""
    patches = []
    for image, boxes in zip(images, anchors):
        for x1, y1, x2, y2 in boxes:
            side = max(x2 - x1, y2 - y1)
            if side < min_side:
                continue
            half = side * PATCH_CONTEXT / 2
            cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
            window = (cx - half, cy - half, cx + half, cy + half)
            patches.append(crop_resize(image, window, int(round(2 * half))))
    return patches


@functools.lru_cache(maxsize=256)
def _soft_ellipse(side):
    """A ``side`` x ``side`` blending weight: 1 in the middle, fading to 0 over the outer quarter of the
    inscribed circle, so a pasted patch shows no square edge."""
    grid = (np.arange(side, dtype=np.float32) + 0.5) / side * 2 - 1
    radius = np.sqrt(grid[None, :] ** 2 + grid[:, None] ** 2)
    weight = np.clip((1.0 - radius) / 0.25, 0.0, 1.0)
    weight.flags.writeable = False  # shared by every paste of this size (cached)
    return weight


def _collate_unlabelled(batch):
    return torch.stack(batch), [torch.zeros((0, 4)) for _ in batch]


def teacher_faces(detector, images, score=ANCHOR_SCORE):
    """Per photo, the teacher's face boxes (score >= ``score``) at its automatic scale."""
    return [detector.detect(image, threshold=score)[:, :4].astype(np.float64) for image in images]
