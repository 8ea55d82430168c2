"""ScatterBatchNorm: a layer computing only its kept filters gives the masked layer's output."""

import torch
import torch.nn as nn

from facedet.models.scatter import ScatterBatchNorm
from pruning.narrow import narrow_zero_filters


def test_narrowed_layer_equals_the_masked_layer():
    torch.manual_seed(0)
    layer = nn.Sequential(nn.Conv2d(5, 6, 3, padding=1, bias=True), nn.BatchNorm2d(6), nn.ReLU())
    with torch.no_grad():
        layer[1].running_mean.uniform_(-1, 1)
        layer[1].running_var.uniform_(0.5, 2)
        layer[1].weight.uniform_(0.5, 1.5)
        layer[1].bias.uniform_(-1, 1)
        layer[0].weight[[1, 4]] = 0  # two pruned filters (weights and bias)
        layer[0].bias[[1, 4]] = 0
    layer.eval()
    x = torch.randn(2, 5, 7, 9)
    expected = layer(x)
    assert narrow_zero_filters(layer) == 2
    assert layer[0].out_channels == 4 and isinstance(layer[1], ScatterBatchNorm)
    assert sum(p.numel() for p in layer.parameters()) == 4 * 5 * 9 + 4 + 4 + 4
    assert torch.allclose(layer(x), expected, atol=1e-6)
    # The absent channels are constants: BatchNorm of a zero conv output.
    assert torch.allclose(layer(x)[:, 1], expected[:, 1]) and expected[:, 1].std() == 0
