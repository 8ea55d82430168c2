"""Pruning rates: one for every layer, one per layer group (B-FPGM), or one per layer.

A criterion's ``rates`` is a number (that share of every prunable layer's filters) or
``{conv name: rate}`` (a layer left out keeps every filter). Each layer removes ``int(n * rate)``
of its ``n`` filters. Group rates (B-FPGM's six per detector) become per-layer rates through the
groups of the detector's ``DetectorSpec.layer_groups``: ``group_layer_rates`` is the one place
that does it. A conv belongs to the group that names it or a module above it.
"""

import functools
import json
import math
from pathlib import Path

import torch.nn as nn

from facedet.errors import DataError, FacedetError
from facedet.models import create_model, detector_spec
from pruning.graph import head_prefixes, prunable_convs


def check_rate(rate, what="the pruning rate"):
    """``rate`` as a float in [0, 1); a one-line FacedetError naming ``what`` otherwise."""
    if isinstance(rate, bool):
        raise FacedetError(f"{what} must be a number, got {rate!r}")
    try:
        rate = float(rate)
    except (TypeError, ValueError):
        raise FacedetError(f"{what} must be a number, got {rate!r}") from None
    if not 0.0 <= rate < 1.0:  # NaN fails this too
        raise FacedetError(f"{what} must be at least 0 and below 1, got {rate:g}")
    return rate


def filters_to_remove(n, rate):
    return int(n * rate)


def check_rates(model, rates):
    """``rates`` checked for ``model``: a float, or ``{conv name: float}`` naming only its prunable convs."""
    if isinstance(rates, dict):
        return check_layer_rates(rates, [name for name, _ in prunable_convs(model)], model.arch)
    return check_rate(rates)


def check_layer_rates(rates, names, arch):
    """``{conv name: rate}`` with every name one of ``names`` (the prunable convs of ``arch``)."""
    if not isinstance(rates, dict):
        raise FacedetError(f"layer rates must be a JSON object {{conv name: rate}}, got {type(rates).__name__}")
    known = set(names)
    spec = detector_spec(arch)
    for name in rates:
        if name not in known:
            why = (f"in {spec.display_name}'s detection head, which is never pruned" if str(name).startswith(spec.head_prefixes)
                   else f"not a prunable conv of {spec.display_name}")
            raise FacedetError(f"layer {name!r} in the layer rates is {why} "
                               "(python -m pruning prune --weights W --criterion C --rate 0 --layers lists them)")
    return {name: check_rate(rate, f"the rate of layer {name}") for name, rate in rates.items()}


def layer_rates(model, rates):
    """``{conv name: rate}`` for every prunable conv of ``model`` (0 for a layer ``rates`` leaves out)."""
    rates = check_rates(model, rates)
    if isinstance(rates, dict):
        return {name: rates.get(name, 0.0) for name, _ in prunable_convs(model)}
    return {name: rates for name, _ in prunable_convs(model)}


def removes_nothing(rates):
    return rates == 0 if not isinstance(rates, dict) else not any(rates.values())


@functools.cache
def _group_layers(arch):
    """``[(conv name, filters, group index, is head)]`` of every conv of a fresh ``arch`` model."""
    spec = detector_spec(arch)
    model = create_model(arch)
    head = head_prefixes(model)
    rows = []
    for name, conv in model.named_modules():
        if not isinstance(conv, nn.Conv2d):
            continue
        found = [i for i, group in enumerate(spec.layer_groups)
                 if any(name == prefix or name.startswith(prefix + ".") for prefix in group)]
        if len(found) > 1:
            raise ValueError(f"conv {name} of {arch} is in layer groups {found}")
        is_head = name.startswith(head)
        if not found and not is_head:
            raise ValueError(f"prunable conv {name} of {arch} is in no layer group")
        rows.append((name, conv.out_channels, found[0] if found else None, is_head))
    return tuple(rows)


def layer_groups(arch):
    """``[[conv name, ...] per group]``: the prunable convs of each of ``arch``'s layer groups."""
    groups = [[] for _ in detector_spec(arch).layer_groups]
    for name, _, group, is_head in _group_layers(arch):
        if not is_head:
            groups[group].append(name)
    return groups


def group_layer_rates(arch, group_rates):
    """``{conv name: rate}`` for every prunable conv of ``arch``: its group's rate.

    A group of head convs (EXTD's sixth, as B-FPGM groups it) is accepted only at a rate that
    removes none of their filters: this project never prunes the head.
    """
    spec = detector_spec(arch)
    if not spec.layer_groups:
        raise FacedetError(f"{spec.display_name} has no layer groups")
    group_rates = list(group_rates)
    if len(group_rates) != len(spec.layer_groups):
        raise FacedetError(f"{spec.display_name} has {len(spec.layer_groups)} layer groups: give "
                           f"{len(spec.layer_groups)} group rates, got {len(group_rates)}")
    group_rates = [check_rate(rate, f"the rate of group {i}") for i, rate in enumerate(group_rates, start=1)]
    rates = {}
    for name, filters, group, is_head in _group_layers(arch):
        if group is None:
            continue
        rate = group_rates[group]
        if is_head:
            if filters_to_remove(filters, rate):
                limit = min(1 / n for _, n, g, h in _group_layers(arch) if g == group)
                raise FacedetError(f"group {group + 1} of {spec.display_name} is its detection head, never pruned: "
                                   f"its rate must stay below {limit:g} (it removes no head filter), got {rate:g}")
            continue
        rates[name] = rate
    return rates


def parse_group_rates(text):
    """``"r1,...,r6"`` -> floats (checked against a detector by ``group_layer_rates``)."""
    parts = [part.strip() for part in str(text).split(",")]
    try:
        values = [float(part) for part in parts]
    except ValueError:
        raise FacedetError(f"group rates must be numbers separated by commas, got {text!r}") from None
    if not all(math.isfinite(v) for v in values):
        raise FacedetError(f"group rates must be finite numbers, got {text!r}")
    return values


def read_layer_rates(path):
    """The ``{conv name: rate}`` JSON object in the file ``path`` (names are checked against a model later)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"cannot read the layer rates {path}: {getattr(err, 'strerror', None) or err}") from None
    try:
        rates = json.loads(text)
    except json.JSONDecodeError as err:
        raise DataError(f"the layer rates {path} are not JSON ({err.msg}, line {err.lineno})") from None
    if not isinstance(rates, dict):
        raise DataError(f"the layer rates {path} must be a JSON object {{conv name: rate}}")
    return rates


def removed_share(arch, rates):
    """The share of ``arch``'s prunable filters that ``rates`` (a float or per-layer) removes."""
    layers = [(name, n) for name, n, _, is_head in _group_layers(arch) if not is_head]
    per_layer = rates if isinstance(rates, dict) else dict.fromkeys((name for name, _ in layers), rates)
    removed = sum(filters_to_remove(n, per_layer.get(name, 0.0)) for name, n in layers)
    return removed / sum(n for _, n in layers)


def describe_rates(arch, rates):
    """How the pages and ``pruning runs`` name rates: ``30 %``, ``groups 0.2/0/0.079/0.2/0.2/0.172``
    (per-layer rates that are one rate per group) or ``per layer (12 layers, 0-0.5)``."""
    if rates is None:
        return ""
    if not isinstance(rates, dict):
        return f"{rates * 100:g} %"
    try:
        groups = layer_groups(arch)
    except FacedetError:  # an unknown detector: no groups to name
        groups = []
    per_group = [{rates.get(name, 0.0) for name in names} for names in groups]
    if groups and all(len(values) <= 1 for values in per_group):
        # A group without prunable convs (EXTD's head) has no rate of its own here: "-".
        return "groups " + "/".join(f"{next(iter(values)):g}" if values else "-" for values in per_group)
    values = list(rates.values()) or [0.0]
    return f"per layer ({len(rates)} layer{'' if len(rates) == 1 else 's'}, {min(values):g}-{max(values):g})"


def run_rates(run):
    """A results-store run's rates as ``describe_rates`` names them (its ``layer_rates`` column, else its rate)."""
    if run.get("layer_rates"):
        return describe_rates(run.get("detector"), json.loads(run["layer_rates"]))
    return describe_rates(run.get("detector"), run.get("rate"))
