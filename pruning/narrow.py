"""Second compaction pass: convs stop computing their pruned filters, even in coupled channels.

After the dependency-graph pass (``pruning.compact``), a channel that other layers still write to
keeps its full width, and the convs writing zero filters into it still store and compute them.
Here every conv followed by a BatchNorm drops its all-zero filters; the BatchNorm becomes a
``ScatterBatchNorm`` that restores those channels as the constants they always are, so the output
is exactly the masked model's. Depthwise convs are left alone (their filters are tied to their
input channels).
"""

import torch
import torch.nn as nn

from facedet.models.scatter import ScatterBatchNorm


def conv_batchnorm_pairs(model):
    """(sequential, conv index) for every Conv2d directly followed by a BatchNorm2d."""
    for module in model.modules():
        if isinstance(module, nn.Sequential):
            children = list(module)
            for i in range(len(children) - 1):
                if (isinstance(children[i], nn.Conv2d) and type(children[i + 1]) is nn.BatchNorm2d
                        and children[i].groups == 1):
                    yield module, i


def narrow_zero_filters(model):
    """Drop all-zero output filters of conv+BatchNorm pairs in place; returns filters removed."""
    removed = 0
    with torch.no_grad():
        for seq, i in list(conv_batchnorm_pairs(model)):
            conv, bn = seq[i], seq[i + 1]
            weight = conv.weight.flatten(1)
            bias = conv.bias if conv.bias is not None else torch.zeros(conv.out_channels)
            zero = (weight == 0).all(dim=1)
            keep = torch.nonzero(~zero).flatten().tolist()
            if not zero.any() or not keep:
                continue
            # The constant each absent channel has: BatchNorm applied to the conv's bias.
            scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
            constants = (bias - bn.running_mean) * scale + bn.bias
            absent = torch.nonzero(zero).flatten().tolist()
            narrow = nn.Conv2d(conv.in_channels, len(keep), conv.kernel_size, conv.stride, conv.padding,
                               conv.dilation, 1, conv.bias is not None).to(conv.weight.device)
            index = torch.tensor(keep)
            narrow.weight.copy_(conv.weight[index])
            if conv.bias is not None:
                narrow.bias.copy_(conv.bias[index])
            seq[i] = narrow
            seq[i + 1] = ScatterBatchNorm.from_batchnorm(bn, keep, {c: constants[c].item() for c in absent})
            removed += len(absent)
    return removed
