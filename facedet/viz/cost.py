"""Cost of a model: FLOPs of its nonzero convolution weights at a given input size.

(Latency is measured by ``facedet.commands.bench.measure``.)
"""

import copy

import torch

COST_INPUT = (480, 640)  # (height, width): the VGA input the trade-off chart uses


def nonzero_conv_flops(model, height=COST_INPUT[0], width=COST_INPUT[1]):
    """FLOPs (2 x multiply-adds) of every convolution's nonzero weights at a ``height`` x ``width`` input.

    For a dense model this is the usual convolution FLOP count; for a masked (pruned but not
    compacted) model it counts only the filters that survive, which is what compaction can save.
    """
    shadow = copy.deepcopy(model)  # moved to the meta device below; the caller's model is untouched
    convs = [m for m in shadow.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))]
    nonzero = {id(m): int(torch.count_nonzero(m.weight)) for m in convs}
    # Output sizes come from a forward pass on the meta device: shapes only, no arithmetic.
    calls = []  # one entry per call: EXTD runs its shared backbone several times
    hooks = [m.register_forward_hook(lambda mod, _i, out: calls.append((id(mod), out.shape[-2:]))) for m in convs]
    try:
        with torch.inference_mode():
            shadow.to("meta")(torch.zeros(1, 3, height, width, device="meta"))
    finally:
        for hook in hooks:
            hook.remove()
    return sum(2 * nonzero[key] * h * w for key, (h, w) in calls)
