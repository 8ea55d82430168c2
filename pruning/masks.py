"""Filter masks: which output filters of each prunable conv are kept.

A mask set is ``{conv name: BoolTensor[out_channels]}`` (True = kept). Masking a filter zeroes
its conv weights and bias, as NNI's pruners do; the BatchNorm and PReLU parameters of the
channel are left as they are (the paper's parameter counts include them).
"""

import torch

from pruning.graph import prunable_convs


def masks_from_removed(model, removed):
    """Masks from ``{conv name: removed filter indices}``; convs not named keep every filter."""
    masks = {}
    for name, conv in prunable_convs(model):
        keep = torch.ones(conv.out_channels, dtype=torch.bool)
        idx = removed.get(name)
        if idx is not None and len(idx):
            keep[torch.as_tensor(idx, dtype=torch.long)] = False
        masks[name] = keep
    return masks


def masks_of(model):
    """The masks a model carries: filters whose conv weights and bias are all zero."""
    masks = {}
    for name, conv in prunable_convs(model):
        alive = conv.weight.detach().flatten(1).ne(0).any(dim=1)
        if conv.bias is not None:
            alive |= conv.bias.detach().ne(0)
        masks[name] = alive.cpu()
    return masks


@torch.no_grad()
def apply_masks(model, masks):
    """Zero the weights and bias of every masked filter (in place)."""
    for param, drop in _masked_parameters(model, masks):
        param[drop] = 0
    return model


def _masked_parameters(model, masks):
    """``(parameter, rows to drop)`` for the weight and bias of every masked conv."""
    modules = dict(model.named_modules())
    for name, keep in masks.items():
        conv = modules[name]
        drop = ~keep.to(conv.weight.device)
        for param in (conv.weight, conv.bias):
            if param is not None:
                yield param, drop


@torch.no_grad()
def zero_gradients(model, masks):
    """Zero the gradients of masked filters, so that an optimiser step leaves them at zero."""
    for param, drop in _masked_parameters(model, masks):
        if param.grad is not None:
            param.grad[drop] = 0


@torch.no_grad()
def zero_optimizer_state(optimizer, model, masks):
    """Zero the optimiser's per-parameter state (momentum, Adam moments) of masked filters."""
    for param, drop in _masked_parameters(model, masks):
        for value in optimizer.state.get(param, {}).values():
            if torch.is_tensor(value) and value.dim() == param.dim() and value.shape[:1] == param.shape[:1]:
                value[drop] = 0


def masked_filter_count(masks):
    return sum(int((~keep).sum()) for keep in masks.values())


def masks_to_lists(masks):
    """JSON-friendly form (for checkpoints' provenance and the results store)."""
    return {name: keep.int().tolist() for name, keep in masks.items()}


def masks_from_lists(data):
    return {name: torch.tensor(values, dtype=torch.bool) for name, values in data.items()}
