"""One-shot pruning of the published dense checkpoints: the paper's parameter counts, and each
criterion's filter choices checked against an independent numpy computation."""

import copy

import numpy as np
import pytest
import torch

from facedet.errors import FacedetError
from facedet.params import count_parameters
from facedet.weights import load_model
from pruning import CRITERIA, layer_selection, masks_of, one_shot_prune, select_filters
from pruning.graph import prunable_convs
from pruning_helpers import one_thread  # noqa: F401  (autouse fixture)

RATES = (0.1, 0.2, 0.3, 0.4, 0.5)
# Tables 1-2 of the paper: nonzero parameters after one-shot masking (EResFD 40 %: the paper
# prints 57,055, but its own 35.95 % real sparsity of 92,208 parameters is 59,055).
PAPER_NONZERO = {
    "extd": (149_472, 136_296, 122_034, 108_858, 94_448),
    "eresfd": (87_368, 76_677, 69_746, 59_055, 47_284),
}



@pytest.fixture(scope="module")
def dense(weights_dir):
    return {arch: load_model(weights_dir / f"{arch}.pth")[0] for arch in PAPER_NONZERO}


@pytest.mark.parametrize("arch", sorted(PAPER_NONZERO))
@pytest.mark.parametrize("criterion", ["fpgm", "l1"])
@pytest.mark.parametrize("rate_index", range(len(RATES)))
def test_one_shot_reproduces_the_paper_parameter_counts(dense, arch, criterion, rate_index):
    model = copy.deepcopy(dense[arch])
    masks = one_shot_prune(model, criterion, RATES[rate_index])
    counts = count_parameters(model)
    assert counts.total == count_parameters(dense[arch]).total
    assert counts.nonzero == PAPER_NONZERO[arch][rate_index]
    # The masks are readable back from the weights, and every layer lost int(n * rate) filters.
    assert {k: v.tolist() for k, v in masks_of(model).items()} == {k: v.tolist() for k, v in masks.items()}
    for name, conv in prunable_convs(model):
        assert int((~masks[name]).sum()) == int(conv.out_channels * RATES[rate_index])


def test_masking_zeroes_conv_weights_and_biases_but_not_batchnorm(dense):
    model = copy.deepcopy(dense["extd"])
    masks = one_shot_prune(model, "fpgm", 0.3)
    modules = dict(model.named_modules())
    dw = modules["base.2.conv.3"]  # a depthwise conv with a bias
    dropped = ~masks["base.2.conv.3"]
    assert dw.bias is not None and dropped.any()
    assert torch.all(dw.weight[dropped] == 0) and torch.all(dw.bias[dropped] == 0)
    assert torch.all(dw.weight[~dropped].flatten(1).abs().sum(1) > 0)
    bn = modules["base.2.conv.4"]
    assert torch.equal(bn.weight, dict(dense["extd"].named_modules())["base.2.conv.4"].weight)


@pytest.mark.parametrize("arch", sorted(PAPER_NONZERO))
def test_fpgm_and_l1_choose_different_filters(dense, arch):
    fpgm = layer_selection(dense[arch], "fpgm", 0.3)
    l1 = layer_selection(dense[arch], "l1", 0.3)
    assert fpgm.keys() == l1.keys() == {name for name, _ in prunable_convs(dense[arch])}
    differing = [name for name in fpgm if set(fpgm[name]) != set(l1[name])]
    assert len(differing) >= len(fpgm) // 4, differing


def _numpy_fpgm_scores(weight):
    filters = weight.reshape(weight.shape[0], -1).astype(np.float64)
    distances = np.sqrt(((filters[:, None, :] - filters[None, :, :]) ** 2).sum(-1))
    return distances.sum(1)  # small: close to the geometric median, i.e. redundant


def _numpy_l1_scores(weight):
    return np.abs(weight.reshape(weight.shape[0], -1).astype(np.float64)).sum(1)


@pytest.mark.parametrize("arch,layer", [("extd", "base.3.conv.0"), ("extd", "base.4.conv.3"),
                                        ("eresfd", "base.m0.b2_2.1.res_layer.0"), ("eresfd", "base.m0.fpn.itm.2.conv.0")])
@pytest.mark.parametrize("criterion,scores", [("fpgm", _numpy_fpgm_scores), ("l1", _numpy_l1_scores)])
def test_selection_agrees_with_the_criterion_computed_in_numpy(dense, arch, layer, criterion, scores):
    rate = 0.4
    weight = dict(dense[arch].named_modules())[layer].weight.detach().numpy()
    k = int(weight.shape[0] * rate)
    expected = set(np.argsort(scores(weight), kind="stable")[:k].tolist())
    assert set(select_filters(dense[arch], criterion, rate)[layer]) == expected


def test_slimming_removes_the_smallest_batchnorm_scales(dense):
    removed = select_filters(dense["eresfd"], "slimming", 0.5)
    gamma = dict(dense["eresfd"].named_modules())["base.m0.b2_3.0.res_layer.1"].weight.detach().abs().numpy()
    assert set(removed["base.m0.b2_3.0.res_layer.0"]) == set(np.argsort(gamma, kind="stable")[:8].tolist())


@pytest.mark.parametrize("criterion", ["l2", "random", "slimming"])
def test_other_criteria_prune_every_layer_at_the_rate(dense, criterion):
    model = copy.deepcopy(dense["eresfd"])
    one_shot_prune(model, criterion, 0.5)
    assert count_parameters(model).nonzero == PAPER_NONZERO["eresfd"][-1]


def test_random_is_seeded(dense):
    a = select_filters(dense["eresfd"], "random", 0.3, seed=1)
    assert a == select_filters(dense["eresfd"], "random", 0.3, seed=1)
    assert a != select_filters(dense["eresfd"], "random", 0.3, seed=2)


def test_selection_leaves_the_model_untouched(dense):
    before = {k: v.clone() for k, v in dense["extd"].state_dict().items()}
    for criterion in ("fpgm", "l2"):
        select_filters(dense["extd"], criterion, 0.5)
    assert all(torch.equal(before[k], v) for k, v in dense["extd"].state_dict().items())


def test_criteria_registry_and_bad_input(dense):
    assert {"fpgm", "l1", "l2", "taylor", "random", "slimming"} <= set(CRITERIA)
    with pytest.raises(FacedetError, match="unknown criterion"):
        select_filters(dense["eresfd"], "median", 0.3)
    for rate in (1.0, -0.1, "half"):
        with pytest.raises(FacedetError, match="pruning rate"):
            select_filters(dense["eresfd"], "fpgm", rate)
    assert select_filters(dense["eresfd"], "fpgm", 0.0) == {}


def test_taylor_scores_filters_with_gradients_of_the_detection_loss(dense, tmp_path, monkeypatch):
    monkeypatch.setenv("PRUNING_DATA_DIR", str(tmp_path))  # its calibration crops: the sample set
    model = copy.deepcopy(dense["eresfd"])
    one_shot_prune(model, "taylor", 0.5)
    assert count_parameters(model).nonzero == PAPER_NONZERO["eresfd"][-1]
    taylor = select_filters(dense["eresfd"], "taylor", 0.3)
    assert taylor == select_filters(dense["eresfd"], "taylor", 0.3)  # deterministic calibration data
    assert taylor != select_filters(dense["eresfd"], "l2", 0.3)
    assert all(p.grad is None for p in dense["eresfd"].parameters())  # gradients only on a copy


def test_rate_effects_count_what_each_rate_really_removes(dense):
    from pruning import rate_effects

    rates = (0.05, 0.25, 0.3, 0.35)
    effects = rate_effects(dense["eresfd"], "fpgm", rates)
    # EResFD's layers are small: int(n * 5 %) is 0 everywhere, and 25 % rounds like 30 %.
    assert effects[0.05].removed == 0 and effects[0.05].same_as == ()
    assert effects[0.25].same_as == (0.3,) and effects[0.3].same_as == (0.25,) and effects[0.35].same_as == ()
    assert select_filters(dense["eresfd"], "fpgm", 0.25) == select_filters(dense["eresfd"], "fpgm", 0.3)
    for rate in rates:  # the counts are the selections' own
        assert effects[rate].removed == sum(map(len, select_filters(dense["eresfd"], "fpgm", rate).values()))
    sizes = [conv.out_channels for _, conv in prunable_convs(dense["eresfd"])]
    assert {e.filters for e in effects.values()} == {sum(sizes)}
    assert all(e.same_as == () for e in rate_effects(dense["extd"], "l1", rates).values())
