"""Non-uniform rates on the published checkpoints: group rates (B-FPGM's six layer groups) and
per-layer rates, through the criteria, the command line, training and the results store; and the
released B-FPGM checkpoints' zero filters against their published group rates."""

import json

import pytest

from cli_helpers import assert_one_error_line, cli, cli_env
from facedet.weights import BFPGM, load_checkpoint, load_model
from pruning.criteria import CRITERIA, one_shot_prune, removal_counts, select_filters
from pruning.graph import prunable_convs
from pruning.masks import masks_of
from pruning.rates import describe_rates, group_layer_rates, layer_groups
from pruning_helpers import one_thread  # noqa: F401  (autouse fixture)

# B-FPGM's six groups as its code lists them (EResFD-main/main_bayesian_prune.py,
# EXTD_Pytorch-master/main_baysian_prune.py), written here in its own names: EResFD's
# base.m0.layer1..5 are b2_1..5, layer7..12 are FEM_0..5.
UPSTREAM_GROUPS = {
    "eresfd": [["base.conv1", "base.conv2", "base.conv3"], ["base.conv4", "base.m0.layer1"],
               ["base.m0.layer2", "base.m0.layer3"], ["base.m0.layer4", "base.m0.layer5"], ["base.m0.fpn"],
               ["base.m0.layer7", "base.m0.layer8", "base.m0.layer9", "base.m0.layer10", "base.m0.layer11",
                "base.m0.layer12"]],
    "extd": [["base.0", "base.1"], ["base.2", "base.3"], ["base.4"], ["base.5"], ["upfeat"], ["loc", "conf"]],
}
UPSTREAM_NAMES = {**{f"base.m0.layer{i}": f"base.m0.b2_{i}" for i in range(1, 6)},
                  **{f"base.m0.layer{7 + i}": f"base.m0.FEM_{i}" for i in range(6)}}
# The grouping the released EResFD files fit (README, "Non-uniform rates"): conv3, b2_1 and b2_3
# each one group later than in the code.
RELEASED_ERESFD_GROUPS = [["base.conv1", "base.conv2"], ["base.conv3", "base.conv4"], ["base.m0.b2_1", "base.m0.b2_2"],
                          ["base.m0.b2_3", "base.m0.b2_4", "base.m0.b2_5"], ["base.m0.fpn"],
                          [f"base.m0.FEM_{i}" for i in range(6)]]


def group_of(name, groups):
    found = [i for i, group in enumerate(groups)
             if any(name == p or name.startswith(p + ".") for p in (UPSTREAM_NAMES.get(p, p) for p in group))]
    assert len(found) <= 1, name
    return found[0] if found else None


def conv_sizes(name):
    """{conv module name: filters} of every conv of a checkpoint, read from its state dict."""
    return {key[:-len(".weight")]: w.shape[0] for key, w in load_checkpoint(name).state_dict.items()
            if key.endswith(".weight") and w.dim() == 4}


def zero_filter_counts(model):
    return {name: int((~keep).sum()) for name, keep in masks_of(model).items()}


def expected_counts(arch, rates, groups):
    """{prunable conv: int(n * its group's rate)} computed from the state dict and the groups."""
    return {name: int(n * rates[group_of(name, groups)]) for name, n in conv_sizes(arch).items()
            if not name.startswith(("loc.", "conf."))}


@pytest.mark.parametrize("arch", ["eresfd", "extd"])
def test_the_groups_of_the_spec_are_b_fpgms(weights_dir, arch):
    model, _ = load_model(arch)
    by_spec = layer_groups(arch)
    assert sorted(n for group in by_spec for n in group) == sorted(n for n, _ in prunable_convs(model))
    for index, names in enumerate(by_spec):
        assert all(group_of(name, UPSTREAM_GROUPS[arch]) == index for name in names)
    if arch == "extd":  # B-FPGM's sixth EXTD group is the head: no prunable conv in it here
        assert by_spec[5] == [] and all(len(g) for g in by_spec[:5])


@pytest.mark.parametrize("criterion", ["fpgm", "l1", "l2", "random", "slimming"])
def test_group_rates_remove_int_n_rate_filters_of_every_layer(weights_dir, criterion):
    rates = BFPGM["bfpgm-eresfd-40"].group_rates  # (0.008, 0.052, 0.472, 0.6, 0.244, 0.464)
    expected = expected_counts("eresfd", rates, UPSTREAM_GROUPS["eresfd"])
    model, _ = load_model("eresfd")
    per_layer = group_layer_rates("eresfd", rates)
    counts = removal_counts(model, criterion, per_layer)
    assert counts == {name: expected[name] for name in counts}
    one_shot_prune(model, criterion, per_layer)
    zeros = zero_filter_counts(model)
    assert {name: zeros[name] for name in counts} == counts
    assert sum(counts.values()) > 200 and len(set(counts.values())) >= 4  # really non-uniform


def test_a_uniform_rate_as_layer_rates_picks_the_same_filters(weights_dir):
    model, _ = load_model("extd")
    uniform = select_filters(model, "fpgm", 0.3)
    as_layers = select_filters(model, "fpgm", {name: 0.3 for name, _ in prunable_convs(model)})
    assert uniform == as_layers and sum(map(len, uniform.values())) > 0


def test_the_released_extd_checkpoint_fits_its_group_rates_exactly(weights_dir):
    rates = BFPGM["bfpgm-extd-20"].group_rates
    model, _ = load_model("bfpgm-extd-20")
    zeros = zero_filter_counts(model)
    assert zeros == expected_counts("extd", rates, UPSTREAM_GROUPS["extd"])
    # The sixth group (the head) at 0.098 removes no filter of its 4- and 2-filter convs, upstream too.
    assert all(int(n * rates[5]) == 0 for name, n in conv_sizes("extd").items() if name.startswith(("loc", "conf")))
    # Our one-shot FPGM at those group rates removes as many filters from every layer.
    dense, _ = load_model("bfpgm-extd")
    assert removal_counts(dense, "fpgm", group_layer_rates("extd", rates)) == zeros


def _mismatches(name, groups):
    rates = BFPGM[name].group_rates
    model, _ = load_model(name)
    expected = expected_counts("eresfd", rates, groups)
    return {layer: (count, expected[layer]) for layer, count in zero_filter_counts(model).items()
            if count != expected[layer]}


ERESFD_RELEASES = [f"bfpgm-eresfd-{r}" for r in (10, 20, 30, 40, 50, 60)]
FPN = [f"base.m0.fpn.laterals.{i}.conv.0" for i in range(5)] + [f"base.m0.fpn.itm.{i}.conv.0" for i in range(4)]


@pytest.mark.parametrize("name", ERESFD_RELEASES)
def test_the_released_eresfd_checkpoints_fit_a_shifted_grouping(weights_dir, name):
    """What the README says: with the code's groups many layers miss; with conv3, b2_1 and b2_3 one
    group later, every layer fits except the ones listed."""
    assert len(_mismatches(name, UPSTREAM_GROUPS["eresfd"])) >= 8
    missed = _mismatches(name, RELEASED_ERESFD_GROUPS)
    # The coarse path's refine conv always has 2-5 more zero filters than the other convs of its group.
    zeros = zero_filter_counts(load_model(name)[0])
    assert 2 <= zeros["base.m0.fpn.itm.3.conv.0"] - zeros["base.m0.fpn.laterals.0.conv.0"] <= 5
    missed.pop("base.m0.fpn.itm.3.conv.0")
    if name == "bfpgm-eresfd-10":  # rates 0.2 (group 1) and 0.079 (group 3) would remove 1 filter; none is
        assert set(missed) == {n for n in conv_sizes("eresfd") if n.startswith(("base.conv1", "base.conv2",
                                                                                 "base.m0.b2_1", "base.m0.b2_2"))}
        assert {found for found, _ in missed.values()} == {0}
    elif name == "bfpgm-eresfd-50":  # group 5 at 0.561 gives 8 of 16; the file has 9 (0.5625 and up)
        assert missed == {layer: (9, 8) for layer in FPN if layer != "base.m0.fpn.itm.3.conv.0"}
    else:
        assert missed == {}


def test_describe_names_group_rates_back(weights_dir):
    rates = BFPGM["bfpgm-eresfd-30"].group_rates
    assert describe_rates("eresfd", group_layer_rates("eresfd", rates)) == "groups 0.213/0.045/0.305/0.471/0.321/0.448"
    assert describe_rates("extd", group_layer_rates("extd", BFPGM["bfpgm-extd-20"].group_rates)) == \
        "groups 0.311/0.157/0.324/0.216/0.311/-"
    assert describe_rates("eresfd", {"base.conv1.0": 0.5}) == "per layer (1 layer, 0.5-0.5)"
    assert describe_rates("eresfd", 0.3) == "30 %"


# ---- the command line -------------------------------------------------------------------------

@pytest.fixture()
def env(weights_dir, tmp_path):
    return cli_env(weights_dir, tmp_path)


def test_prune_with_group_rates_reports_each_layers_rate_and_count(env, tmp_path):
    rates = BFPGM["bfpgm-eresfd-30"].group_rates
    out = tmp_path / "grouped.pth"
    done = cli(env, "pruning", "prune", "--weights", "eresfd", "--criterion", "fpgm", "--group-rates",
               ",".join(map(str, rates)), "--layers", "--out", out, "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    expected = expected_counts("eresfd", rates, UPSTREAM_GROUPS["eresfd"])
    assert {row["layer"]: len(row["removed"]) for row in report["layers"]} == expected
    assert all(row["rate"] == rates[group_of(row["layer"], UPSTREAM_GROUPS["eresfd"])] for row in report["layers"])
    saved, ckpt = load_model(out)
    assert zero_filter_counts(saved) == expected
    assert ckpt.meta["provenance"]["layer_rates"] == group_layer_rates("eresfd", rates)


def test_prune_with_a_layer_rates_file(env, tmp_path):
    rates = {"base.conv1.0": 0.5, "base.m0.b2_4.0.res_layer.0": 0.25, "base.m0.FEM_2.res_branch1.0": 0.9}
    path = tmp_path / "rates.json"
    path.write_text(json.dumps(rates))
    done = cli(env, "pruning", "prune", "--weights", "eresfd", "--criterion", "l1", "--layer-rates", path,
               "--layers", "--json")
    assert done.returncode == 0, done.stderr
    removed = {row["layer"]: len(row["removed"]) for row in json.loads(done.stdout)["layers"]}
    sizes = conv_sizes("eresfd")
    assert {k: v for k, v in removed.items() if v} == {name: int(sizes[name] * r) for name, r in rates.items()}
    assert (removed["base.conv1.0"], removed["base.m0.FEM_2.res_branch1.0"]) == (4, 7)


@pytest.mark.parametrize("args, expected", [
    (("--group-rates", "0.1,0.2"), "EResFD has 6 layer groups: give 6 group rates, got 2"),
    (("--group-rates", "0.1,0,0,0,0,0,0.3"), "give 6 group rates, got 7"),
    (("--group-rates", "0.1,0.2,1,0,0,0"), "the rate of group 3 must be at least 0 and below 1, got 1"),
    (("--group-rates", "0.1,-0.2,0,0,0,0"), "the rate of group 2 must be at least 0"),
    (("--group-rates", "0.1,a,0,0,0,0"), "group rates must be numbers separated by commas"),
    (("--group-rates", "0.1,nan,0,0,0,0"), "group rates must be finite numbers"),
    (("--rate", "0.3", "--group-rates", "0,0,0,0,0,0"), "not allowed with argument --rate"),
    (("--layer-rates", "{missing}"), "cannot read the layer rates"),
    (("--layer-rates", "{not_json}"), "are not JSON"),
    (("--layer-rates", "{a_list}"), "must be a JSON object"),
    (("--layer-rates", "{unknown}"), "layer 'base.conv9.0' in the layer rates is not a prunable conv of EResFD"),
    (("--layer-rates", "{head}"), "layer 'loc.0' in the layer rates is in EResFD's detection head"),
    (("--layer-rates", "{too_high}"), "the rate of layer base.conv1.0 must be at least 0 and below 1, got 1.5"),
])
def test_bad_rates_are_one_line(env, tmp_path, args, expected):
    files = {"missing": tmp_path / "none.json", "not_json": "{", "a_list": "[0.1]", "unknown": '{"base.conv9.0": 0.1}',
             "head": '{"loc.0": 0.5}', "too_high": '{"base.conv1.0": 1.5}'}
    for key, text in files.items():
        if isinstance(text, str):
            (tmp_path / f"{key}.json").write_text(text)
            files[key] = tmp_path / f"{key}.json"
    args = [str(a).format(**files) for a in args]
    done = cli(env, "pruning", "prune", "--weights", "eresfd", "--criterion", "fpgm", *args)
    assert_one_error_line(done, expected)


def test_the_extd_head_group_takes_only_rates_that_remove_nothing(env):
    assert group_layer_rates("extd", [0.3] * 5 + [0.24]) == group_layer_rates("extd", [0.3] * 5 + [0])
    done = cli(env, "pruning", "prune", "--weights", "extd", "--criterion", "l1", "--group-rates", "0,0,0,0,0,0.25")
    assert_one_error_line(done, "group 6 of EXTD is its detection head, never pruned: its rate must stay below 0.25")
    done = cli(env, "pruning", "train", "--detector", "extd", "--criterion", "l1", "--group-rates", "0,0,0,0,0,0.5",
               "--run-dir", env["PRUNING_DATA_DIR"] + "/run")
    assert_one_error_line(done, "group 6 of EXTD")
    done = cli(env, "pruning", "train", "--detector", "eresfd", "--criterion", "l1", "--run-dir",
               env["PRUNING_DATA_DIR"] + "/run")
    assert_one_error_line(done, "a new run needs --rate (or --group-rates, --layer-rates)")


# ---- training and the store -------------------------------------------------------------------

def test_training_uses_the_layer_rates_ramps_each_and_the_store_records_them(weights_dir, tmp_path, monkeypatch):
    import torch

    from facedet.params import count_parameters
    from pruning.masks import masks_from_lists
    from pruning.rates import run_rates
    from pruning.schedule import Schedule
    from pruning.store import ResultsStore
    from pruning.train import TrainConfig, train

    monkeypatch.setenv("PRUNING_DATA_DIR", str(tmp_path))
    rates = BFPGM["bfpgm-eresfd-50"].group_rates  # (0, 0, 0.383, 0.7, 0.561, 0.7)
    per_layer = group_layer_rates("eresfd", rates)
    # Two SFP epochs ramping over both: the masks after the first are at 1 - (1/2)^3 of every
    # layer's rate, the last ones at the full rates.
    config = TrainConfig.from_settings(detector="eresfd", criterion="fpgm", layer_rates=per_layer,
                                       weights=str(weights_dir / "eresfd.pth"), epochs=2, finetune_epochs=0,
                                       prune_every=1, ramp_epochs=2, batch_size=2, crop_size=128, sample_images=4,
                                       max_images=4, evaluate=False, threads=1)
    store = ResultsStore(tmp_path / "results.sqlite3")
    result = train(config, tmp_path / "run", store=store)
    assert result.status == "finished"
    sizes = conv_sizes("eresfd")
    # The run's own masks (a filter zeroed earlier may also stay zero behind a dead ReLU: masks_of would count it).
    masks = masks_from_lists(torch.load(tmp_path / "run" / "state.pth", weights_only=True)["masks"])
    assert {n: int((~keep).sum()) for n, keep in masks.items()} == {n: int(sizes[n] * r) for n, r in per_layer.items()}
    factor = Schedule(epochs=2, ramp_epochs=2).rate_after(0, 1.0)
    assert factor == 0.875
    ramped, _ = load_model("eresfd")
    one_shot_prune(ramped, "l1", {n: r * factor for n, r in per_layer.items()})  # only the counts matter here
    first_epoch = store.get_run(result.run_id)["epochs"][0]
    assert first_epoch["sparsity"] == pytest.approx(count_parameters(ramped).sparsity, abs=1e-9)
    assert first_epoch["sparsity"] < store.get_run(result.run_id)["epochs"][1]["sparsity"]
    run = store.get_run(result.run_id)
    assert json.loads(run["layer_rates"]) == per_layer
    assert run_rates(run) == "groups 0/0/0.383/0.7/0.561/0.7"
    share = sum(int(sizes[n] * r) for n, r in per_layer.items()) / sum(sizes[n] for n in per_layer)
    assert run["rate"] == pytest.approx(share)  # the store's rate: the share of filters the rates remove
    listing = cli(cli_env(weights_dir, tmp_path), "pruning", "runs", "--results-db", tmp_path / "results.sqlite3")
    assert listing.returncode == 0 and "groups 0/0/0.383/0.7/0.561/0.7" in listing.stdout


def test_an_older_store_gains_the_layer_rates_column(tmp_path):
    import sqlite3

    from pruning.store import ResultsStore

    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as conn:  # the runs table as stores had it before this column
        conn.execute("CREATE TABLE runs (id INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, status TEXT NOT NULL, "
                     "detector TEXT, criterion TEXT, rate REAL, config TEXT NOT NULL, code_revision TEXT, owner TEXT, "
                     "created_at TEXT NOT NULL, updated_at TEXT NOT NULL, finished_at TEXT)")
        conn.execute("INSERT INTO runs (kind, status, detector, criterion, rate, config, created_at, updated_at) "
                     "VALUES ('train', 'finished', 'eresfd', 'fpgm', 0.3, '{}', 'then', 'then')")
    store = ResultsStore(path)
    (old,) = store.runs()
    assert old["layer_rates"] is None and old["rate"] == 0.3
    new = store.start_run("train", {}, "eresfd", "fpgm", 0.1, layer_rates=json.dumps({"base.conv1.0": 0.5}))
    assert json.loads(store.get_run(new)["layer_rates"]) == {"base.conv1.0": 0.5}
