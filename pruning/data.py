"""Training data: WIDER FACE when a root is given, else the generated sample set.

Epochs are reproducible: the image order of epoch ``e`` and the augmentation of each image in it
depend only on the seed, ``e`` and the image, not on loader workers or processes, so a run resumed
at an epoch boundary sees exactly the data an uninterrupted run would have seen.
"""

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Subset

from facedet.errors import DataError
from facedet.priors import ANCHOR_SIZES
from facedet.wider.dataset import WiderFaceDataset
from facedet.wider.layout import MARKER, check_split
from facedet.wider.sample_set import write_sample_set
from pruning.augment import TrainTransform, collate
from pruning.paths import sample_set_dir

SAMPLE_IMAGES = 20


def sample_set(images=SAMPLE_IMAGES):
    """The generated sample set (written once into the pruning data folder, atomically)."""
    target = sample_set_dir(images)
    if (target / MARKER).is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
    try:
        write_sample_set(tmp, images=images, seed=0)
        try:
            os.replace(tmp, target)
        except OSError:  # another process finished first: use theirs
            if not (target / MARKER).is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def training_root(wider=None, sample_images=SAMPLE_IMAGES):
    """``(root, description)``: the WIDER FACE root if given (checked), else the sample set."""
    if wider:
        root = Path(wider).expanduser()
        check_split(root, "train")
        return root, f"WIDER FACE at {root}"
    return sample_set(sample_images), f"generated sample set ({sample_images} images; not WIDER FACE)"


class EpochLoader:
    """A training ``DataLoader`` whose epoch ``e`` is a pure function of ``(seed, e)``."""

    has_labels = True

    def __init__(self, root, crop_size=640, batch_size=16, workers=0, seed=0, max_images=None,
                 rank=0, world_size=1, anchor_sizes=ANCHOR_SIZES):
        dataset = WiderFaceDataset(root, "train")
        if max_images is not None:
            dataset = Subset(dataset, range(min(int(max_images), len(dataset))))
        if len(dataset) == 0:
            raise DataError(f"no training images with faces under {root}")
        self.dataset = dataset
        self.crop_size = int(crop_size)
        self.batch_size = int(batch_size)
        self.workers = int(workers)
        self.seed = int(seed)
        self.rank, self.world_size = rank, world_size
        self.anchor_sizes = tuple(anchor_sizes)  # the detector's (data-anchor sampling aims at them)

    def __len__(self):
        per_rank = -(-len(self.dataset) // self.world_size)
        return -(-per_rank // self.batch_size)

    def epoch(self, epoch):
        """The batches of ``epoch``: ``(images [B,3,S,S], [boxes [N,4] normalised, ...])``."""
        order = epoch_order(len(self.dataset), self.seed, epoch, self.rank, self.world_size)
        items = _Augmented(self.dataset, order, self.crop_size, self.seed, epoch, self.anchor_sizes)
        return DataLoader(items, batch_size=self.batch_size, shuffle=False, num_workers=self.workers,
                          collate_fn=collate, pin_memory=torch.cuda.is_available())


def epoch_order(count, seed, epoch, rank=0, world_size=1):
    """Indices ``0..count-1`` in the order of ``epoch`` (a function of seed and epoch only); under
    several processes, this rank's disjoint share (padded to equal length)."""
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    order = torch.randperm(count, generator=generator).tolist()
    if world_size > 1:
        order += order[: (-len(order)) % world_size]
        order = order[rank::world_size]
    return order


class _Augmented(Dataset):
    """``order``'s images, each augmented with draws seeded by (seed, epoch, image index)."""

    def __init__(self, dataset, order, crop_size, seed, epoch, anchor_sizes=ANCHOR_SIZES):
        self.dataset, self.order, self.seed, self.epoch = dataset, order, seed, epoch
        self.transform = TrainTransform(crop_size, anchor_sizes=anchor_sizes)

    def __len__(self):
        return len(self.order)

    def __getitem__(self, position):
        index = self.order[position]
        image, boxes = self.dataset[index]
        self.transform.rng = np.random.default_rng([self.seed, self.epoch, index])
        return self.transform(image, boxes)


def calibration_batch(size=320, images=4, seed=0, anchor_sizes=ANCHOR_SIZES):
    """A few augmented sample-set crops ``(images, boxes)``: data for the ``taylor`` criterion."""
    root = sample_set()
    transform = TrainTransform(size, rng=seed, anchor_sizes=anchor_sizes)
    dataset = WiderFaceDataset(root, "train", transform=transform)
    return collate([dataset[i] for i in range(min(images, len(dataset)))])
