"""SSD box coding: offsets of a box relative to its prior, scaled by the variances."""

import torch

VARIANCES = (0.1, 0.2)


def encode(matched, priors, variances=VARIANCES):
    """Regression targets for ``matched`` boxes (x1, y1, x2, y2) against ``priors`` (cx, cy, w, h)."""
    center = (matched[:, :2] + matched[:, 2:]) / 2 - priors[:, :2]
    center = center / (variances[0] * priors[:, 2:])
    size = torch.log((matched[:, 2:] - matched[:, :2]) / priors[:, 2:]) / variances[1]
    return torch.cat((center, size), dim=1)


def decode(loc, priors, variances=VARIANCES):
    """Boxes (x1, y1, x2, y2), normalised like the priors, from predicted offsets ``loc``."""
    center = priors[..., :2] + loc[..., :2] * variances[0] * priors[..., 2:]
    size = priors[..., 2:] * torch.exp(loc[..., 2:] * variances[1])
    top_left = center - size / 2
    # x2 = x1 + w (rather than cx + w/2): the same rounding as the reference implementation.
    return torch.cat((top_left, top_left + size), dim=-1)
