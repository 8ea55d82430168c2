"""Pruning criteria: which filters of every prunable conv to remove at given rates.

- ``fpgm`` and ``l1``: NNI 3.0's ``FPGMPruner`` and ``L1NormPruner``, configured as in the paper
  (every conv outside the detection head, ``sparse_ratio`` = the rate in each layer).
- ``l2``, ``taylor``, ``random``: Torch-Pruning's importance estimators, evaluated on each conv's
  group of coupled layers (so filters tied by residual additions are scored together).
- ``slimming`` (PruneFaceDet): the smallest |gamma| of the BatchNorm that follows each conv; the
  L1 penalty that drives those gammas down is its ``regularize``, which training adds to the loss.

Every criterion removes ``int(n * rate)`` of a layer's ``n`` filters (NNI's rule), at one rate for
every layer or at a rate per layer (``pruning.rates``: group rates resolve to those). Each is one
``Criterion`` object in ``CRITERIA``; adding one is a subclass and a ``register_criterion`` call
(README, "Extending").
"""

import copy
import warnings
import weakref
from dataclasses import dataclass

import torch
import torch.nn as nn

from facedet.errors import FacedetError
from facedet.models import detector_spec
from pruning.graph import dependency_graph, out_channel_group, prunable_convs
from pruning.masks import apply_masks, masks_from_removed
from pruning.rates import check_rate, check_rates, filters_to_remove, layer_rates, removes_nothing  # noqa: F401


class Criterion:
    """Which filters of every prunable conv to remove at given rates: one subclass per criterion.

    ``select(model, rates, batch, seed) -> {conv name: removed indices}`` (the model untouched;
    ``rates`` a float or ``{conv name: rate}``, checked by ``select_filters``; ``int(n * rate)`` of
    each layer's ``n`` filters, ``layer_rates(model, rates)`` gives every layer's rate); ``regularize(model, loss, strength) -> loss``
    adds the training penalty a criterion relies on (none by default); ``needs_data``: ``select``
    uses a batch. Register an instance with ``register_criterion``.
    """

    name = label = description = ""
    needs_data = False

    def select(self, model, rates, batch=None, seed=0):
        raise NotImplementedError

    def regularize(self, model, loss, strength):
        return loss

    def layers(self, model):
        """``[(name, conv)]`` this criterion prunes (default: every prunable conv)."""
        return prunable_convs(model)


class NNICriterion(Criterion):
    """The paper's criteria: NNI 3.0's pruners, one config entry per prunable conv with its rate as
    ``sparse_ratio`` (the paper's uniform rate: the same in every entry)."""

    def __init__(self, name, label, pruner, description):
        self.name, self.label, self.pruner, self.description = name, label, pruner, description

    def select(self, model, rates, batch=None, seed=0):
        import nni.compression.pruning as nni_pruning

        work = copy.deepcopy(model).cpu()
        convs = dict(prunable_convs(work))
        per_layer = layer_rates(work, rates)
        # Layers that lose no filter are left out: NNI would only wrap them.
        names = [name for name, rate in per_layer.items() if filters_to_remove(convs[name].out_channels, rate)]
        if not names:
            return {}
        config = [{"op_types": ["Conv2d"], "op_names": [name], "sparse_ratio": per_layer[name]} for name in names]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pruner = getattr(nni_pruning, self.pruner)(work, config)
            _, masks = pruner.compress()
            pruner.unwrap_model()
        removed = {}
        for name in names:
            keep = masks[name]["weight"].flatten(1).ne(0).any(dim=1)
            removed[name] = torch.nonzero(~keep).flatten().tolist()
        return removed


class TorchPruningCriterion(Criterion):
    """A Torch-Pruning importance, scored over each conv's group of coupled layers (filters tied
    by residual additions are judged together)."""

    def __init__(self, name, label, importance, description, needs_data=False):
        self.name, self.label, self.importance, self.description = name, label, importance, description
        self.needs_data = needs_data

    def select(self, model, rates, batch=None, seed=0):
        work = copy.deepcopy(model)
        per_layer = layer_rates(work, rates)
        if self.needs_data:
            _accumulate_gradients(work, batch)
        importance = self.importance()
        graph = _quiet(dependency_graph, work)
        removed = {}
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            for name, conv in prunable_convs(work):
                k = filters_to_remove(conv.out_channels, per_layer[name])
                if k:
                    scores = importance(out_channel_group(graph, conv)).detach().cpu()
                    removed[name] = torch.argsort(scores, stable=True)[:k].tolist()
        return removed


class SlimmingCriterion(Criterion):
    """Network slimming (PruneFaceDet): the smallest |gamma| of the BatchNorm after each conv; the
    L1 penalty on those gammas (``regularize``) drives them down during training."""

    name, label = "slimming", "Network slimming"
    description = "smallest |gamma| of the following BatchNorm"

    def __init__(self):
        self._batchnorms = weakref.WeakKeyDictionary()  # model -> its penalised BatchNorms

    def select(self, model, rates, batch=None, seed=0):
        graph = _quiet(dependency_graph, model)
        per_layer = layer_rates(model, rates)
        removed = {}
        for name, conv in prunable_convs(model):
            bn = following_batchnorm(graph, conv)
            k = filters_to_remove(conv.out_channels, per_layer[name])
            if bn is not None and k:  # without a scaling factor to judge it by, a conv keeps its filters
                removed[name] = torch.argsort(bn.weight.detach().abs().cpu(), stable=True)[:k].tolist()
        return removed

    def layers(self, model):
        graph = _quiet(dependency_graph, model)
        return [(name, conv) for name, conv in prunable_convs(model) if following_batchnorm(graph, conv) is not None]

    def regularize(self, model, loss, strength):
        if not strength:
            return loss
        if model not in self._batchnorms:
            self._batchnorms[model] = slimming_batchnorms(model)
        return loss + strength * sum(bn.weight.abs().sum() for bn in self._batchnorms[model])


def _importance(kind, **settings):
    import torch_pruning as tp

    return getattr(tp.importance, kind)(**settings)


CRITERIA = {}


def register_criterion(criterion):
    """Add a ``Criterion`` instance: the command lines, the app and training find it by name."""
    if criterion.name in CRITERIA:
        raise ValueError(f"criterion {criterion.name!r} is registered twice")
    CRITERIA[criterion.name] = criterion
    return criterion


for _criterion in (
    NNICriterion("fpgm", "FPGM", "FPGMPruner", "filters closest to the layer's geometric median (most redundant)"),
    NNICriterion("l1", "L1 norm", "L1NormPruner", "filters with the smallest L1 norm (least important)"),
    TorchPruningCriterion("l2", "L2 norm", lambda: _importance("MagnitudeImportance", p=2),
                          "smallest L2 norm over the coupled layers"),
    TorchPruningCriterion("taylor", "Taylor", lambda: _importance("TaylorImportance"),
                          "smallest first-order Taylor estimate |w * dL/dw|", needs_data=True),
    TorchPruningCriterion("random", "Random", lambda: _importance("RandomImportance"),
                          "filters picked at random (a baseline)"),
    SlimmingCriterion(),
):
    register_criterion(_criterion)
PAPER_CRITERIA = ("fpgm", "l1")


def check_criterion(criterion):
    if criterion not in CRITERIA:
        raise FacedetError(f"unknown criterion {criterion!r}; choose one of {', '.join(CRITERIA)}")
    return CRITERIA[criterion]


def select_filters(model, criterion, rates, batch=None, seed=0):
    """``{conv name: removed filter indices (sorted)}`` that ``criterion`` picks at ``rates``: one
    rate for every prunable layer, or ``{conv name: rate}`` (``pruning.rates.group_layer_rates``
    turns group rates into these; a layer left out keeps its filters).

    ``model`` is not modified. ``batch`` ``(images, targets)`` is needed by ``taylor`` (default:
    a few crops of the generated sample set); ``seed`` fixes ``random``.
    """
    chosen = check_criterion(criterion)
    rates = check_rates(model, rates)
    if removes_nothing(rates):
        return {}
    removed = chosen.select(model, rates, batch=batch, seed=seed)
    return {name: sorted(int(i) for i in idx) for name, idx in removed.items() if len(idx)}


def one_shot_prune(model, criterion, rates, batch=None, seed=0):
    """Mask the filters ``criterion`` selects at ``rates`` (as ``select_filters``; in place); returns the masks."""
    masks = masks_from_removed(model, select_filters(model, criterion, rates, batch=batch, seed=seed))
    apply_masks(model, masks)
    return masks


@dataclass(frozen=True)
class RateEffect:
    """What a one-shot rate does to a model, counted without scoring any filter."""

    removed: int  # filters removed, over all the layers the criterion prunes
    filters: int  # filters of those layers
    same_as: tuple  # the other rates asked about that remove exactly the same filters


def removal_counts(model, criterion, rates):
    """``{layer name: filters removed}`` by ``criterion`` at ``rates`` (as ``select_filters``), for
    every layer it prunes."""
    convs = check_criterion(criterion).layers(model)
    per_layer = layer_rates(model, rates)
    return {name: filters_to_remove(conv.out_channels, per_layer[name]) for name, conv in convs}


def rate_effects(model, criterion, rates):
    """``{rate: RateEffect}`` for each of ``rates``. Every criterion ranks a layer's filters without
    regard to the rate and removes the first ``int(n * rate)``, so two rates that remove as many
    filters from every layer remove the same filters: they make the same model (small layers round
    nearby rates to the same count, and a low rate to none)."""
    counts = {rate: removal_counts(model, criterion, rate) for rate in rates}
    convs = dict(prunable_convs(model))
    pruned_layers = next(iter(counts.values()), {})  # the same layers at every rate
    filters = sum(convs[name].out_channels for name in pruned_layers)
    return {rate: RateEffect(sum(count.values()), filters,
                             tuple(other for other in rates if other != rate and counts[other] == count))
            for rate, count in counts.items()}


def layer_selection(model, criterion, rates, batch=None, seed=0):
    """``{layer name: removed filter indices}`` for every prunable layer (empty lists included) at
    ``rates`` (as ``select_filters``); the model is not modified. For comparing criteria layer by layer."""
    removed = select_filters(model, criterion, rates, batch=batch, seed=seed)
    return {name: removed.get(name, []) for name, _ in prunable_convs(model)}


def following_batchnorm(graph, conv):
    """The BatchNorm that directly and only consumes ``conv``'s output, or None."""
    # A layer called several times (EXTD's shared backbone) lists its consumer once per call.
    consumers = {id(node.module): node.module for node in graph.module2node[conv].outputs}
    if len(consumers) == 1:
        (module,) = consumers.values()
        if isinstance(module, nn.BatchNorm2d):
            return module
    return None


def slimming_batchnorms(model):
    """The BatchNorms whose gammas network slimming penalises (those after prunable convs)."""
    graph = _quiet(dependency_graph, model)
    found = [following_batchnorm(graph, conv) for _, conv in prunable_convs(model)]
    return [bn for bn in found if bn is not None]


def _accumulate_gradients(model, batch):
    from pruning.loss import MultiBoxLoss

    if batch is None:
        from pruning.data import calibration_batch

        batch = calibration_batch(anchor_sizes=detector_spec(model.arch).anchor_sizes)
    from facedet.priors import make_priors

    images, targets = batch
    device = next(model.parameters()).device
    model.train()
    model.zero_grad()
    loc, conf = model(images.to(device))
    spec = detector_spec(model.arch)
    priors = make_priors(*images.shape[2:], spec.strides, spec.anchor_sizes).to(device)
    loss_l, loss_c = MultiBoxLoss()(loc, conf, priors, [t.to(device) for t in targets])
    (loss_l + loss_c).backward()
    model.eval()


def _quiet(fn, *args):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args)
