"""What is known about each detector and criterion lives in one registered object."""

import pytest
import torch

from facedet.errors import FacedetError
from facedet.models import DETECTORS, create_model, detector_spec
from pruning import criteria
from pruning.criteria import CRITERIA, Criterion, register_criterion, select_filters
from pruning.graph import head_convs, prunable_convs


def test_every_detector_describes_itself_once():
    assert list(DETECTORS) == ["eresfd", "extd"]
    for name, spec in DETECTORS.items():
        model = create_model(name)
        assert type(model) is spec.build and model.arch == name
        heads = head_convs(model)
        assert heads and all(c.out_channels <= 6 for c in heads)  # boxes (4) and scores (2, or 4 with max-out)
        assert len(prunable_convs(model)) + len(heads) == sum(isinstance(m, torch.nn.Conv2d) for m in model.modules())
        assert len(spec.strides) == len(spec.anchor_sizes) == 6
    with pytest.raises(FacedetError, match="unknown detector 'yolo'; choose one of eresfd, extd"):
        detector_spec("yolo")


def test_the_automatic_scale_and_optimizer_come_from_the_description():
    from facedet.detector import Detector
    from pruning.train import TrainConfig, _optimizer

    for name, spec in DETECTORS.items():
        detector = Detector(create_model(name), name, device="cpu")
        assert detector.auto_scale(1000, 1000) == pytest.approx((spec.auto_area / 1e6) ** 0.5)
        optimizer = _optimizer(TrainConfig(detector=name, criterion="l1", rate=0.1), detector.model)
        assert type(optimizer).__name__.lower() == spec.optimizer


class LargestL1(Criterion):
    """The opposite of L1: remove the filters with the LARGEST norm (a deliberately bad baseline)."""

    name, label, description = "largest-l1", "Largest L1", "filters with the largest L1 norm"

    def select(self, model, rates, batch=None, seed=0):
        per_layer = criteria.layer_rates(model, rates)  # a uniform rate, or one per layer
        removed = {}
        for name, conv in prunable_convs(model):
            k = criteria.filters_to_remove(conv.out_channels, per_layer[name])
            norms = conv.weight.detach().abs().flatten(1).sum(dim=1)
            removed[name] = torch.argsort(norms, descending=True)[:k].tolist()
        return removed


@pytest.fixture
def largest_l1():
    yield register_criterion(LargestL1())
    CRITERIA.pop("largest-l1")


def test_a_criterion_is_one_class(largest_l1, weights_dir, monkeypatch):
    from facedet.weights import load_model
    from pruning.commands.train import registry_options

    monkeypatch.setenv("FACEDET_WEIGHTS_DIR", str(weights_dir))
    model, _ = load_model("eresfd")
    mine = select_filters(model, "largest-l1", 0.5)
    l1 = select_filters(model, "l1", 0.5)
    assert mine and all(set(mine[layer]).isdisjoint(l1[layer]) for layer in mine if layer in l1)
    # Per-layer rates (what group rates become) reach a registered criterion as they reach the built-in ones.
    only = select_filters(model, "largest-l1", {"base.conv1.0": 0.5, "base.m0.fpn.itm.0.conv.0": 0.25})
    assert {layer: len(idx) for layer, idx in only.items()} == {"base.conv1.0": 4, "base.m0.fpn.itm.0.conv.0": 4}
    choices, helps = registry_options()
    assert "largest-l1" in choices["criterion"] and "Largest L1" in helps["criterion"]
    with pytest.raises(ValueError, match="registered twice"):
        register_criterion(LargestL1())


def test_slimmings_penalty_is_its_own_regularize():
    model = create_model("eresfd")
    slimming = CRITERIA["slimming"]
    loss = torch.tensor(1.0)
    assert slimming.regularize(model, loss, 0.0) is loss
    penalised = slimming.regularize(model, loss, 1e-4).detach()
    gammas = sum(bn.weight.detach().abs().sum() for bn in criteria.slimming_batchnorms(model))
    assert penalised.item() == pytest.approx(1.0 + 1e-4 * gammas.item())
    assert CRITERIA["fpgm"].regularize(model, loss, 1e-4) is loss  # no penalty for the others
