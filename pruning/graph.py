"""The model's channel-dependency graph (Torch-Pruning), shared by the criteria and compaction.

Which convs are prunable is decided here too: every ``Conv2d`` outside the detection head (the
``head_prefixes`` of the detector's ``DetectorSpec``: ``loc.*`` and ``conf.*``), as in the paper.
"""

import torch
import torch.nn as nn

# A small probe input: the graph depends on the wiring only, not on the input size.
GRAPH_INPUT = (1, 3, 128, 128)


def head_prefixes(model):
    from facedet.models import detector_spec

    return detector_spec(model.arch).head_prefixes


def prunable_convs(model):
    """``[(name, conv)]`` of every convolution the criteria may prune, in module order."""
    head = head_prefixes(model)
    return [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Conv2d) and not n.startswith(head)]


def head_convs(model):
    head = head_prefixes(model)
    return [m for n, m in model.named_modules() if isinstance(m, nn.Conv2d) and n.startswith(head)]


def dependency_graph(model):
    """Torch-Pruning's ``DependencyGraph`` of ``model`` (traced on a small random input).

    Free parameters that are not channel-wise (EResFD's pyramid fusion weights ``w1``) are left
    out of the graph and traced as constants: Torch-Pruning would otherwise treat every product
    with a fusion weight as an element-wise op on a shared input, coupling all pyramid levels.
    """
    import torch_pruning as tp

    free = _free_parameters(model)
    device = next(model.parameters()).device
    example = torch.randn(*GRAPH_INPUT, device=device)
    was_training = model.training
    flags = [p.requires_grad for p in free]
    model.eval()
    try:
        for p in free:
            p.requires_grad_(False)
        graph = tp.DependencyGraph().build_dependency(
            model, example_inputs=example, forward_fn=_flat_outputs, ignored_params=free, verbose=False
        )
    finally:
        for p, flag in zip(free, flags):
            p.requires_grad_(flag)
        model.train(was_training)
    return graph


LAYER_TYPES = (nn.Conv2d, nn.BatchNorm2d, nn.PReLU, nn.Linear)


def _free_parameters(model):
    """Parameters that belong to no conv, BatchNorm, PReLU or linear layer."""
    owned = {id(p) for m in model.modules() if isinstance(m, LAYER_TYPES) for p in m.parameters(recurse=False)}
    return [p for p in model.parameters() if id(p) not in owned]


def _flat_outputs(model, x):
    return torch.cat([o.flatten(1) for o in model(x)], dim=1)


def out_channel_group(graph, conv, idxs=None):
    """The group of layers coupled to ``conv``'s output channels (``idxs``: all by default)."""
    import torch_pruning as tp

    depthwise = conv.groups == conv.out_channels and conv.out_channels > 1
    fn = tp.prune_depthwise_conv_out_channels if depthwise else tp.prune_conv_out_channels
    return graph.get_pruning_group(conv, fn, list(range(conv.out_channels)) if idxs is None else list(idxs))
