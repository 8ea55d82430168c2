"""Compaction: turn a masked model into a physically smaller one with the same outputs.

A masked filter leaves its channel constant, not zero: the conv gives 0, the BatchNorm after it
turns that into its shift, the activation into some value ``c``. Torch-Pruning's dependency graph
tells which layers are coupled through each channel (residual additions, concatenations,
depthwise convs); a channel of such a group is removed where that is exact:

- it is constant wherever a conv consumes it (found by probing the network twice: once with its
  activations replaced by identities, which makes it affine so that a channel that is constant
  over large random inputs cannot depend on the input at all, and once as is, for the values);
- a constant reaching a 1x1 conv is folded into that conv's bias, or into the running mean of
  the BatchNorm right after it;
- a constant reaching a padded k x k conv cannot be folded (the zero padding makes its effect
  vary at the borders), but all such channels of a group can share one: one constant channel is
  kept and the others' weights are added onto it, scaled by the ratio of their values.

Then ``pruning.narrow`` drops the zero filters that remain in coupled channels (their constants are
restored by a ``ScatterBatchNorm``). The result is checked against the masked model on fresh random
inputs.

``coupled="keep"`` leaves coupled channels alone instead: a group written by more than one conv
(a residual stream, a pyramid fusion) keeps every channel, computed as in the masked model, and
no ``ScatterBatchNorm`` is added. Fewer filters go, but the graph stays plain, with channel counts
as in the dense model where they are shared: for EResFD on ONNX Runtime, which computes output
channels in blocks of 16, the faster form (``facedet.backends`` measures which form is).
"""

import copy
from dataclasses import dataclass, field

import torch
import torch.nn as nn

from pruning.criteria import following_batchnorm
from pruning.graph import dependency_graph, head_convs
from pruning.narrow import narrow_zero_filters

ACTIVATIONS = (nn.ReLU, nn.PReLU, nn.ReLU6, nn.LeakyReLU, nn.SiLU, nn.Hardswish)
PROBE_SIZE = (96, 160)  # (height, width) of the probe images
PROBE_SCALES = (8.0, 64.0, 255.0)  # pixel-like inputs for the values
LINEAR_PROBE_SCALES = (64.0, 1e4)
CHECK_SIZES = ((160, 224), (97, 131))  # sizes the result is checked at (not the probe size)
ATOL = 1e-4


@dataclass
class CompactResult:
    model: nn.Module
    removed_channels: int
    kept_constant_channels: int  # constant channels kept (one per group that needs a carrier)
    groups: dict = field(default_factory=dict)  # root conv name -> channels removed
    max_abs_diff: float = 0.0  # largest output difference to the masked model on the check inputs
    narrowed_filters: int = 0  # pruned filters no longer computed inside coupled channels (pruning.narrow)


COUPLED = ("narrow", "keep")


def compact_model(model, check=True, atol=ATOL, coupled="narrow"):
    """A compacted copy of ``model`` (masked model in, physically smaller model out, on CPU, eval).

    ``coupled``: ``narrow`` (pruned filters inside coupled channels stop being computed, a
    ``ScatterBatchNorm`` restores their constants) or ``keep`` (groups written by several convs keep
    all their channels; see the module's docstring). Raises ``RuntimeError`` if the outputs differ
    from the masked model's by more than ``atol`` (which would be a bug: every removal is meant to
    be exact).
    """
    import warnings

    if coupled not in COUPLED:
        raise ValueError(f"coupled must be one of {', '.join(COUPLED)}, got {coupled!r}")
    source = copy.deepcopy(model).cpu().eval()
    work = copy.deepcopy(source)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        graph = dependency_graph(work)
        structure = _probe(work, linear=True)
        values = _probe(work, linear=False)
        plans = []
        heads = head_convs(work)
        for group in graph.get_all_groups(ignored_layers=heads, root_module_types=(nn.Conv2d,)):
            if coupled == "keep" and _writers(graph, group) > 1:
                continue
            plan = _plan(graph, group, structure, values)
            if plan is not None:
                plans.append(plan)
        with torch.no_grad():
            for plan in plans:
                _apply_folds(plan)
        names = {m: n for n, m in work.named_modules()}
        result = CompactResult(work, 0, 0)
        for plan in plans:
            if plan.remove:
                _prune(graph, plan.root, plan.remove)
                result.groups[names[plan.root]] = len(plan.remove)
            result.removed_channels += len(plan.remove)
            result.kept_constant_channels += int(plan.keeper is not None)
    if coupled == "narrow":
        result.narrowed_filters = narrow_zero_filters(work)
    if check:
        result.max_abs_diff = max_output_difference(source, work)
        if result.max_abs_diff > atol:
            raise RuntimeError(f"compaction changed the outputs by {result.max_abs_diff:.3g} (> {atol:g})")
    return result


@dataclass
class _Plan:
    root: nn.Conv2d
    remove: list
    keeper: int | None
    bias_folds: list  # (consumer conv, input channel, value)
    weight_folds: list  # (consumer conv, input channel, keeper input channel, ratio)


def _plan(graph, group, structure, values):
    root = group[0].dep.target.module
    n = root.out_channels
    consumers = []  # (conv, {root index: input channel})
    for item in group:
        module = item.dep.target.module
        if not (isinstance(module, nn.Conv2d) and graph.is_in_channel_pruning_fn(item.dep.handler)):
            continue
        if _is_depthwise(module):
            continue  # coupled in and out: its output channel is followed further
        if module.groups != 1:
            return None  # grouped convs: not handled, leave the group alone
        consumers.append((module, dict(zip(item.root_idxs, item.idxs))))
    if not consumers:
        return None

    constant = {}
    for r in range(n):
        per_consumer = {}
        for conv, channel_of in consumers:
            i = channel_of.get(r)
            if i is None:
                continue
            if not (_is_constant(structure[conv], i) and _is_constant(values[conv], i)):
                break
            per_consumer[conv] = (i, _value(values[conv], i))
        else:
            constant[r] = per_consumer
    if not constant:
        return None

    # Consumers where a nonzero constant cannot go into a bias need a carrier channel.
    unfoldable = {conv for r in constant for conv, (_, c) in constant[r].items() if c != 0 and not _foldable(graph, conv)}
    keeper = None
    if unfoldable:
        keeper = next((r for r in constant if all(constant[r].get(conv, (0, 0.0))[1] != 0 for conv in unfoldable)), None)
        if keeper is None:  # no channel can carry the others: keep those that need one
            for r in [r for r in constant if any(c != 0 and conv in unfoldable for conv, (_, c) in constant[r].items())]:
                del constant[r]
    remove = [r for r in constant if r != keeper]
    if len(remove) == n:
        keeper = remove.pop(0)  # a layer keeps at least one channel; this one stays as it is
        unfoldable = set()
    bias_folds, weight_folds = [], []
    for r in remove:
        for conv, (i, c) in constant[r].items():
            if c == 0:
                continue
            if conv in unfoldable:
                k_channel, k_value = constant[keeper][conv]
                weight_folds.append((conv, i, k_channel, c / k_value))
            else:
                bias_folds.append((conv, i, c, following_batchnorm(graph, conv)))
    return _Plan(root, sorted(remove), keeper, bias_folds, weight_folds)


def _writers(graph, group):
    """How many convs write the group's channels (a depthwise conv passes its input's on: not counted)."""
    return sum(1 for item in group if isinstance(item.dep.target.module, nn.Conv2d)
               and not _is_depthwise(item.dep.target.module) and graph.is_out_channel_pruning_fn(item.dep.handler))


def _apply_folds(plan):
    for conv, i, c, bn in plan.bias_folds:
        shift = conv.weight[:, i].sum(dim=(1, 2)) * c  # 1x1 kernel: the sum is the single tap
        if conv.bias is not None:
            conv.bias += shift
        else:
            bn.running_mean -= shift  # BN(y + s) with mean m equals BN(y) with mean m - s
    for conv, i, k, ratio in plan.weight_folds:
        conv.weight[:, k] += conv.weight[:, i] * ratio


def _prune(graph, root, idxs):
    from pruning.graph import out_channel_group

    out_channel_group(graph, root, idxs).prune()


def _foldable(graph, conv):
    one_by_one = conv.kernel_size == (1, 1) and conv.padding in ((0, 0), 0)
    return one_by_one and (conv.bias is not None or following_batchnorm(graph, conv) is not None)


def _is_depthwise(conv):
    return conv.groups > 1 and conv.groups == conv.in_channels == conv.out_channels


def _is_constant(stats, i):
    low, high = float(stats[0][i]), float(stats[1][i])
    return high - low <= 1e-5 * max(1.0, abs(low), abs(high))


def _value(stats, i):
    value = (float(stats[0][i]) + float(stats[1][i])) / 2
    return 0.0 if abs(value) < 1e-12 else value


@torch.no_grad()
def _probe(model, linear):
    """Per conv: (min, max) of each input channel over every call, position and probe image."""
    stats = {}

    def record(conv, inputs, _output):
        x = inputs[0].detach()
        low, high = x.amin(dim=(0, 2, 3)), x.amax(dim=(0, 2, 3))
        if conv in stats:
            low, high = torch.minimum(stats[conv][0], low), torch.maximum(stats[conv][1], high)
        stats[conv] = (low, high)

    hooks = [m.register_forward_hook(record) for m in model.modules() if isinstance(m, nn.Conv2d)]
    if linear:
        hooks += [m.register_forward_hook(lambda _m, inputs, _o: inputs[0]) for m in model.modules()
                  if isinstance(m, ACTIVATIONS)]
    # In the affine network (every activation module made the identity, on this model only: other
    # threads may be running detectors) large inputs outweigh any shift, so a live channel cannot
    # hide behind a ReLU that happens to cut it on every probe.
    try:
        generator = torch.Generator().manual_seed(0)
        for scale in (LINEAR_PROBE_SCALES if linear else PROBE_SCALES):
            x = torch.randn(2, 3, *PROBE_SIZE, generator=generator) * scale
            model(x)
            model(-x)
    finally:
        for hook in hooks:
            hook.remove()
    return stats


@torch.no_grad()
def max_output_difference(a, b, sizes=CHECK_SIZES, seed=1):
    """Largest absolute difference between two models' outputs on random inputs."""
    generator = torch.Generator().manual_seed(seed)
    worst = 0.0
    for height, width in sizes:
        x = torch.randn(1, 3, height, width, generator=generator) * 64
        for u, v in zip(a(x), b(x)):
            worst = max(worst, float((u - v).abs().max()))
    return worst
