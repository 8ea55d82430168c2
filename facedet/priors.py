"""Anchor (prior) boxes: one square anchor per feature-map location, six levels."""

import math

import numpy as np
import torch

STRIDES = (4, 8, 16, 32, 64, 128)
ANCHOR_SIZES = (16, 32, 64, 128, 256, 512)


def feature_map_sizes(height, width, num_levels=len(STRIDES)):
    """(h, w) of each detection map for an input of ``height x width``.

    Both detectors reduce by 4 in their stem and then by 2 per level with padded convs, so each
    size is the ceiling of the previous one divided by the factor.
    """
    sizes = [(math.ceil(height / 4), math.ceil(width / 4))]
    while len(sizes) < num_levels:
        h, w = sizes[-1]
        sizes.append((math.ceil(h / 2), math.ceil(w / 2)))
    return sizes


def make_priors(height, width, strides=STRIDES, anchor_sizes=ANCHOR_SIZES, aspect_ratio=1.0):
    """Priors ``[P, 4]`` as (cx, cy, w, h), normalised by the input size, levels finest first,
    locations row-major (the order of the network's flattened outputs).

    ``aspect_ratio`` scales the anchor height (1.0: square anchors, as the released models use).
    """
    chunks = []
    for (fh, fw), stride, size in zip(feature_map_sizes(height, width, len(strides)), strides, anchor_sizes):
        cx = (np.arange(fw, dtype=np.float64) + 0.5) * stride / width
        cy = (np.arange(fh, dtype=np.float64) + 0.5) * stride / height
        grid_cx, grid_cy = np.meshgrid(cx, cy)
        level = np.empty((fh * fw, 4), dtype=np.float64)
        level[:, 0] = grid_cx.ravel()
        level[:, 1] = grid_cy.ravel()
        level[:, 2] = size / width
        level[:, 3] = size / height * aspect_ratio
        chunks.append(level)
    return torch.from_numpy(np.concatenate(chunks).astype(np.float32))
