"""Cost of a model: FLOPs of its nonzero convolution weights at a given input size.

(Latency is measured by ``facedet.commands.bench.measure``.)
"""

import copy

import torch

COST_INPUT = (480, 640)  # (height, width): the VGA input the trade-off chart uses
_CONV_TYPES = (torch.nn.Conv2d, torch.nn.ConvTranspose2d)
_output_sizes = {}  # (architecture class, height, width) -> [(conv name, out_h, out_w), ...]


def conv_output_sizes(model, height, width):
    """Every convolution call of a forward pass, in order, with its output size.

    The sizes depend only on the architecture and the input size (not on channel widths), so they
    are computed once per architecture, on the meta device: shapes only, no arithmetic.
    """
    key = (type(model), height, width)
    if key not in _output_sizes:
        shadow = copy.deepcopy(model).to("meta")  # the caller's model is untouched
        calls = []  # one entry per call: EXTD runs its shared backbone several times
        hooks = [m.register_forward_hook(lambda _m, _i, out, name=name: calls.append((name, *out.shape[-2:])))
                 for name, m in shadow.named_modules() if isinstance(m, _CONV_TYPES)]
        with torch.inference_mode():
            shadow(torch.zeros(1, 3, height, width, device="meta"))
        for hook in hooks:
            hook.remove()
        _output_sizes[key] = calls
    return _output_sizes[key]


def nonzero_conv_flops(model, height=COST_INPUT[0], width=COST_INPUT[1]):
    """FLOPs (2 x multiply-adds) of every convolution's nonzero weights at a ``height`` x ``width`` input.

    For a dense model this is the usual convolution FLOP count; for a masked (pruned but not
    compacted) model it counts only the weights that survive, which is what compaction can save.
    """
    modules = dict(model.named_modules())
    nonzero = {}
    total = 0
    for name, out_h, out_w in conv_output_sizes(model, height, width):
        if name not in nonzero:
            nonzero[name] = int(torch.count_nonzero(modules[name].weight))
        total += 2 * nonzero[name] * out_h * out_w
    return total
