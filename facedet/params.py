"""Parameter accounting: what the paper's '# of Parameters' column counts."""

from typing import NamedTuple

import torch


class ParamCount(NamedTuple):
    total: int
    nonzero: int

    @property
    def sparsity(self):
        return 1.0 - self.nonzero / self.total if self.total else 0.0


def count_parameters(model_or_state_dict):
    """Total and nonzero learnable parameters (conv, BatchNorm and PReLU weights and biases,
    fusion weights); BatchNorm running statistics are buffers and are not counted.

    Accepts a module, or a state dict (then only floating tensors whose names are learnable
    parameters are counted: ``running_*`` and ``num_batches_tracked`` are skipped).
    """
    if isinstance(model_or_state_dict, torch.nn.Module):
        tensors = [p.detach() for p in model_or_state_dict.parameters()]
    else:
        tensors = [
            t for name, t in model_or_state_dict.items()
            if t.is_floating_point() and not name.rsplit(".", 1)[-1].startswith(("running_", "num_batches"))
        ]
    total = sum(t.numel() for t in tensors)
    nonzero = sum(int(torch.count_nonzero(t)) for t in tensors)
    return ParamCount(total, nonzero)
