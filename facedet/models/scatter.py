"""A BatchNorm over only the computed channels of a layer whose other filters were pruned.

A pruned filter's channel is not zero downstream: its BatchNorm turns the conv's zero into a
constant. Where the channel cannot be removed (a residual stream or fusion that other layers
still write to), compaction lets the conv compute only its kept filters and this module put the
constant channels back, so the layer's output is exactly that of the masked model while the
pruned filters (and their BatchNorm parameters) no longer exist.
"""

import torch
import torch.nn as nn


class ScatterBatchNorm(nn.BatchNorm2d):
    """BatchNorm2d over ``kept`` channels, widened to ``total`` channels with constant ones.

    Buffers: ``fill`` (total - kept) holds the constants of the absent channels, ``order`` (total)
    says where each output channel comes from in ``cat(kept channels, constant channels)``.
    """

    def __init__(self, kept, total, **kwargs):
        super().__init__(kept, **kwargs)
        self.register_buffer("fill", torch.zeros(total - kept))
        self.register_buffer("order", torch.arange(total))

    @classmethod
    def from_batchnorm(cls, bn, keep, constants):
        """Replace ``bn`` (of ``len(keep) + len(constants)`` channels) keeping channels ``keep``;
        ``constants`` maps every other channel to the value it always has."""
        total = bn.num_features
        keep = sorted(keep)
        kept = set(keep)
        absent = [c for c in range(total) if c not in kept]
        new = cls(len(keep), total, eps=bn.eps, momentum=bn.momentum, affine=bn.affine,
                  track_running_stats=bn.track_running_stats)
        index = torch.tensor(keep, dtype=torch.long)
        with torch.no_grad():
            if bn.affine:
                new.weight.copy_(bn.weight[index])
                new.bias.copy_(bn.bias[index])
            if bn.track_running_stats:
                new.running_mean.copy_(bn.running_mean[index])
                new.running_var.copy_(bn.running_var[index])
                new.num_batches_tracked.copy_(bn.num_batches_tracked)
            new.fill.copy_(torch.tensor([float(constants[c]) for c in absent]))
            position = {c: i for i, c in enumerate(keep + absent)}
            new.order.copy_(torch.tensor([position[c] for c in range(total)], dtype=torch.long))
        return new.train(bn.training).to(bn.weight.device if bn.affine else "cpu")

    def forward(self, x):
        kept = super().forward(x)
        n, _, h, w = kept.shape
        constant = self.fill.to(kept.dtype).view(1, -1, 1, 1).expand(n, -1, h, w)
        return torch.cat((kept, constant), dim=1).index_select(1, self.order)
