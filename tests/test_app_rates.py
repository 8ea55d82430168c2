"""Group rates in the app (streamlit AppTest): the Compare, Layers and Prune pages take B-FPGM's six
per-group rates in a "Group rates" field, call the library with them, and say so; a bad entry is
one st.error line."""

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest
from pruning_helpers import stop_sessions

from facedet.params import count_parameters
from facedet.weights import BFPGM, load_model
from pruning.criteria import one_shot_prune, removal_counts
from pruning.rates import group_layer_rates

APP = str(Path(__file__).resolve().parents[1] / "app.py")
RATES = BFPGM["bfpgm-eresfd-30"].group_rates  # (0.213, 0.045, 0.305, 0.471, 0.321, 0.448)
TEXT = ",".join(map(str, RATES))


def open_page(page, **state):
    at = AppTest.from_file(APP, default_timeout=600).switch_page(page)
    for key, value in state.items():
        at.session_state[key] = value
    return at.run()


def test_compare_prunes_one_shot_at_group_rates(weights_dir):
    at = open_page("pages/1_Compare.py", sample="grace_hopper.jpg", source="oneshot", oneshot_criterion="fpgm",
                   oneshot_group_rates=TEXT)
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert at.subheader[-1].value == "Pruned: EResFD FPGM groups 0.213/0.045/0.305/0.471/0.321/0.448"
    model, _ = load_model("eresfd")
    per_layer = group_layer_rates("eresfd", RATES)
    removed = sum(removal_counts(model, "fpgm", per_layer).values())
    one_shot_prune(model, "fpgm", per_layer)
    nonzero = [m.value for m in at.metric if m.label == "Parameters (nonzero)"][-1]
    assert nonzero == f"{count_parameters(model).nonzero:,}"
    assert any(f"NO fine-tuning · {removed} filters removed" in c.value for c in at.caption)
    assert at.query_params["groups"] == TEXT  # the page's link names the group rates ...
    linked = AppTest.from_file(APP, default_timeout=600).switch_page("pages/1_Compare.py")
    linked.query_params.update(source="oneshot", criterion="fpgm", groups=TEXT, sample="grace_hopper.jpg")
    linked.run()  # ... and opening it prunes at them
    assert not linked.exception and linked.subheader[-1].value == at.subheader[-1].value

    at.text_input(key="oneshot_group_rates").set_value("0.1,0.2").run()
    assert not at.exception
    assert [e.value for e in at.error] == ["Group rates: EResFD has 6 layer groups: give 6 group rates, got 2"]


def test_layers_shows_the_selection_at_group_rates(weights_dir):
    at = open_page("pages/4_Layers.py", layers_source="oneshot", layers_group_rates=TEXT)
    assert not at.exception and not at.error, [e.value for e in at.error]
    model, _ = load_model("eresfd")
    counts = removal_counts(model, "fpgm", group_layer_rates("eresfd", RATES))
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Filters removed by FPGM"].startswith(f"{sum(counts.values()):,} of ")
    assert metrics["Filters removed by L1 norm"].startswith(f"{sum(counts.values()):,} of ")
    assert any("At the group rates 0.213/0.045/0.305/0.471/0.321/0.448" in c.value for c in at.caption)

    at.text_input(key="layers_group_rates").set_value("0.1,0.2,0.3,0.4,0.5,1.2").run()
    assert not at.exception
    assert [e.value for e in at.error] == ["Group rates: the rate of group 6 must be at least 0 and below 1, got 1.2"]


@pytest.fixture()
def engine_dirs(tmp_path, monkeypatch):
    monkeypatch.setenv("PRUNING_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("PRUNING_RESULTS_DB", str(tmp_path / "results.sqlite3"))
    yield tmp_path
    stop_sessions()


def test_prune_starts_a_session_at_group_rates_and_refuses_bad_ones(engine_dirs):
    at = open_page("pages/2_Prune.py", prune_epochs=1, prune_finetune=1, prune_crop=160, prune_group_rates="0.1,0.2")
    at.button[0].click().run()  # the form's Start button
    # (Sessions of earlier tests in this process may show their own success lines on the board.)
    assert not at.exception and not any("Session queued" in s.value for s in at.success)
    assert [e.value for e in at.error] == ["Group rates: EResFD has 6 layer groups: give 6 group rates, got 2"]

    at.text_input(key="prune_group_rates").set_value(TEXT)
    at.button[0].click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert any("Session queued" in s.value for s in at.success)
    # Its card's title names the group rates (the board may also hold earlier tests' sessions).
    assert any(m.value.startswith("**EResFD FPGM groups 0.213/0.045/0.305/0.471/0.321/0.448** · ")
               for m in at.markdown)
    assert any(m.value.startswith("1 SFP + 1 fine-tune epochs") for m in at.markdown)
    from pruning.session import shared_queue

    status = shared_queue().sessions()[0]  # the newest
    assert status.config.layer_rates == group_layer_rates("eresfd", RATES)


def test_prune_takes_a_searchs_best_rates_in_one_click(engine_dirs, weights_dir, monkeypatch):
    import json

    from pruning.search import SearchConfig, search
    from pruning.store import ResultsStore

    monkeypatch.setenv("FACEDET_WEIGHTS_DIR", str(weights_dir))
    result = search(SearchConfig(detector="eresfd", criterion="l1", target_sparsity=0.3, trials=1, recovery_steps=1,
                                 validation_crops=8, threads=1, device="cpu"),
                    engine_dirs / "search", store=ResultsStore())
    best = result.best
    at = open_page("pages/2_Prune.py", prune_arch="eresfd", prune_criterion="fpgm")
    assert not at.exception
    picker = at.selectbox(key="prune_search_pick")
    assert picker.value == result.run_id
    assert picker.format_func(result.run_id).startswith(f"search #{result.run_id}: EResFD L1")
    at.button(key="prune_use_search").click().run()
    assert not at.exception
    assert at.text_input(key="prune_group_rates").value == best["group_rates_text"]
    assert at.session_state["prune_criterion"] == "l1"
    at.session_state["prune_epochs"], at.session_state["prune_finetune"], at.session_state["prune_crop"] = 1, 1, 160
    at.run()
    next(b for b in at.button if b.label == "Start").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    from pruning.session import shared_queue

    status = shared_queue().sessions()[0]
    assert status.config.layer_rates == group_layer_rates("eresfd", best["group_rates"])
    assert json.loads(ResultsStore().get_run(result.run_id)["layer_rates"]) == status.config.layer_rates
