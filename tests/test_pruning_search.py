"""The group-rate search (B-FPGM's Bayesian optimisation, through Optuna) on the published EResFD:
its penalty, the sparsity it predicts from rates, a search of a few trials on a tiny budget, its
resumption after an interruption, the command line and the results store."""

import json

import pytest

from cli_helpers import assert_one_error_line, cli, cli_env
from facedet.params import count_parameters
from facedet.weights import load_model
from pruning.criteria import one_shot_prune
from pruning.rates import group_layer_rates
from pruning.search import BEST_FILE, GroupRateSpace, SearchConfig, penalty, search, stored_searches
from pruning.store import ResultsStore
from pruning_helpers import one_thread  # noqa: F401  (autouse fixture)

TINY = dict(detector="eresfd", criterion="fpgm", target_sparsity=0.4, recovery_steps=2, validation_crops=8,
            threads=1, device="cpu")


@pytest.fixture(autouse=True)
def env(weights_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("FACEDET_WEIGHTS_DIR", str(weights_dir))
    monkeypatch.setenv("PRUNING_DATA_DIR", str(tmp_path / "data"))


def test_penalty_has_b_fpgms_shape():
    assert penalty(0.5, 0.5) == 0.0
    assert penalty(0.5, 0.539) == 0.0  # up to the tolerance above the target: no penalty
    assert penalty(0.5, 0.47) == pytest.approx(0.03)  # just below: the shortfall
    assert penalty(0.5, 0.40) == pytest.approx(100.1)  # beyond the tolerance: 100 and the miss
    assert penalty(0.5, 0.58) == pytest.approx(100.08)
    assert penalty(0.5, 0.45, tolerance=0.1) == pytest.approx(0.05)


@pytest.mark.parametrize("group_rates", [[0.5] * 6, [0.2, 0.0, 0.6, 0.7, 0.3, 0.5], [0.0, 0.0, 0.0, 0.0, 0.0, 0.4]])
def test_the_sparsity_a_trial_is_scored_by_is_what_pruning_reaches(group_rates):
    space = GroupRateSpace("eresfd", upper=0.7)
    layer_rates = group_layer_rates("eresfd", group_rates)
    model, _ = load_model("eresfd")
    one_shot_prune(model, "fpgm", layer_rates)
    # Counted without pruning: a removed filter zeroes its conv weights and bias; the dense model's own
    # zero weights make the small difference.
    assert space.expected_sparsity(layer_rates) == pytest.approx(count_parameters(model).sparsity, abs=2e-3)


def test_extd_searches_five_groups_and_keeps_its_head():
    space = GroupRateSpace("extd", upper=0.7)
    assert sorted(space.distributions()) == ["group1", "group2", "group3", "group4", "group5"]
    assert space.group_rates({"group1": 0.3, "group5": 0.1}) == [0.3, 0.0, 0.0, 0.0, 0.1, 0.0]


def test_settings_out_of_range_are_one_line_errors():
    from facedet.errors import FacedetError

    for bad in (dict(target_sparsity=1.2), dict(trials=0), dict(sampler="random"), dict(minutes=-1),
                dict(recovery_steps=1.5), dict(photos="a", wider="b")):
        with pytest.raises(FacedetError):
            SearchConfig(**{**TINY, **bad})


def test_a_tiny_search_finds_rates_near_the_target_records_them_and_resumes_after_an_interruption(tmp_path):
    store = ResultsStore(tmp_path / "results.sqlite3")
    out = tmp_path / "search"
    checks = []

    def cancel_in_third_trial():  # checked every recovery step: trials 1 and 2 finish, the third is cut off
        checks.append(1)
        return len(checks) > 2 * TINY["recovery_steps"]

    config = SearchConfig(**TINY, trials=4, prune_trials=False)
    first = search(config, out, progress=None, cancel=cancel_in_third_trial, store=store)
    assert first.status == "cancelled"
    row = store.get_run(first.run_id)
    assert row["kind"] == "search" and row["status"] == "cancelled" and row["epochs_done"] == 2
    *_, cut_off, queued = _trials(out)
    assert cut_off["state"] == "FAIL" and queued["state"] == "WAITING" and queued["params"] == cut_off["params"]

    events = []
    resumed = search(SearchConfig(**{**TINY, "trials": 4, "prune_trials": False}), out, resume=True,
                     progress=events.append, store=store)
    assert resumed.status == "finished" and resumed.run_id == first.run_id
    trials = _trials(out)
    trained = [t for t in trials if t["trained"] and t["state"] == "COMPLETE"]
    assert len(trained) == 4 and events[-1].trials_done == 4
    # The cut-off trial's rates were run again, first, after the resumption.
    after = [t for t in trials if t["number"] > cut_off["number"]]
    assert after[0]["params"] == cut_off["params"] and after[0]["trained"]
    # The first trial probes every group at the target + 0.04 (B-FPGM's probe).
    assert trials[0]["params"] == {f"group{i}": pytest.approx(0.44) for i in range(1, 7)}
    # Trained trials are within the tolerance of the target; the best is written and stored.
    assert all(abs(t["sparsity"] - 0.4) < 0.04 for t in trained)
    best = json.loads((out / BEST_FILE).read_text())
    assert best == resumed.best and best["trials"] == 4
    assert best["value"] == min(t["value"] for t in trained)
    row = store.get_run(first.run_id)
    assert row["status"] == "finished" and json.loads(row["layer_rates"]) == pytest.approx(
        group_layer_rates("eresfd", best["group_rates"]))
    assert row["sparsity"] == pytest.approx(best["sparsity"])
    [found] = stored_searches(store, "eresfd")
    assert found["group_rates"] == pytest.approx(best["group_rates"]) and found["target_sparsity"] == 0.4
    assert stored_searches(store, "extd") == []

    # More trials later: the same study goes on.
    more = search(SearchConfig(**{**TINY, "trials": 5, "prune_trials": False}), out, resume=True, store=store)
    assert more.best["trials"] == 5
    with pytest.raises(Exception, match="different settings"):
        search(SearchConfig(**{**TINY, "target_sparsity": 0.3}), out, resume=True, store=store)


def _trials(out):
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    study = optuna.load_study(study_name="group-rates", storage=JournalStorage(JournalFileBackend(str(out / "study.journal"))))
    # A queued (WAITING) trial holds its rates as Optuna's fixed params until it runs.
    return [dict(number=t.number, state=t.state.name, params=t.params or t.system_attrs.get("fixed_params"), value=t.value,
                 trained=bool(t.user_attrs.get("trained")), sparsity=t.user_attrs.get("sparsity")) for t in study.trials]


def test_the_command_line_searches_resumes_and_refuses_bad_input(weights_dir, tmp_path):
    env = cli_env(weights_dir, tmp_path)
    out = tmp_path / "s"
    assert_one_error_line(cli(env, "pruning", "search", "--out", out, "--detector", "eresfd", "--criterion", "fpgm"),
                          "a new search needs --target-sparsity")
    assert_one_error_line(cli(env, "pruning", "search", "--out", tmp_path / "none", "--resume"), "nothing to resume")
    assert_one_error_line(cli(env, "pruning", "search", "--out", out, "--detector", "eresfd", "--criterion", "fpgm",
                              "--target-sparsity", "0.97"))
    assert_one_error_line(cli(env, "pruning", "search", "--out", out, "--detector", "eresfd", "--criterion", "fpgm",
                              "--target-sparsity", "0.95"), "out of reach")
    assert not out.exists()  # nothing written for a search refused at once
    args = ("--detector", "eresfd", "--criterion", "l1", "--target-sparsity", "0.3", "--trials", "2",
            "--recovery-steps", "2", "--validation-crops", "8", "--threads", "1", "--json")
    done = cli(env, "pruning", "search", "--out", out, *args, timeout=300)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["status"] == "finished" and summary["best"]["trials"] == 2
    assert_one_error_line(cli(env, "pruning", "search", "--out", out, *args), "already holds a search")
    done = cli(env, "pruning", "search", "--out", out, "--resume", "--trials", "3", "--json", timeout=300)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["best"]["trials"] == 3
    # The best rates train as they are printed.
    rates = summary["best"]["group_rates_text"]
    done = cli(env, "pruning", "prune", "--weights", "eresfd", "--criterion", "l1", "--group-rates", rates, "--json")
    assert done.returncode == 0, done.stderr
    listed = cli(env, "pruning", "runs")
    assert listed.returncode == 0 and "search" in listed.stdout and "groups " in listed.stdout
