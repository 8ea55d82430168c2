"""The Results page (streamlit AppTest) draws the precision-recall curves a run's evaluation stored,
without predicting again, and says plainly when an older run has none."""

import base64
import json
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from facedet.wider.curves import curves_document
from facedet.wider.evaluation import evaluate
from facedet.wider.ground_truth import load_ground_truth
from facedet.wider.synthetic import synthetic_predictions

APP = str(Path(__file__).resolve().parents[1] / "app.py")
PAGE = "pages/5_Results.py"


def _decode(value):
    """Plotly ships numeric arrays as {"dtype", "bdata" (base64)}; everything else as is."""
    if isinstance(value, dict) and "bdata" in value:
        return np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"])
    return np.array(value, dtype=np.float64)


def traces(at):
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    return [(t["name"], _decode(t["x"]), _decode(t["y"])) for t in spec["data"]]


@pytest.fixture
def store_with_runs(tmp_path, monkeypatch, wider_gt_dir):
    """An older evaluated run without stored curves, then a run whose evaluation (a real one: the
    evaluation tests' synthetic detector on the real ground truth) stored its curves."""
    monkeypatch.setenv("PRUNING_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("PRUNING_RESULTS_DB", str(tmp_path / "results.sqlite3"))
    from pruning.store import ResultsStore

    store = ResultsStore()
    older = store.start_run("train", {"wider": "/data/wider"}, detector="eresfd", criterion="l1", rate=0.3)
    store.finish_run(older, ap_easy=0.8, ap_medium=0.7, ap_hard=0.4)
    result = evaluate(synthetic_predictions(load_ground_truth(wider_gt_dir), 0), wider_gt_dir)
    run_id = store.start_run("train", {"wider": "/data/wider"}, detector="eresfd", criterion="fpgm", rate=0.5)
    store.record_curves(run_id, curves_document(result, "synthetic predictions", wider_gt_dir))
    store.finish_run(run_id, ap_easy=result.easy, ap_medium=result.medium, ap_hard=result.hard,
                     eval_root="/data/wider", eval_gt=str(wider_gt_dir))
    return older, run_id, result


def test_results_draws_the_stored_curves_and_names_runs_without_them(store_with_runs, wider_gt_dir):
    older, run_id, result = store_with_runs
    at = AppTest.from_file(APP, default_timeout=120).switch_page(PAGE).run()
    assert not at.exception and not at.error
    # The newest evaluated run is drawn at once, from the store: its curve and AP.
    ((name, recall, precision),) = traces(at)
    assert name == f"#{run_id} EResFD FPGM 50 % (WIDER FACE): AP {result.hard:.3f}"
    np.testing.assert_array_equal(recall, result.curves["hard"][1])
    np.testing.assert_array_equal(precision, result.curves["hard"][0])
    assert any(f"against the ground truth in {wider_gt_dir}" in c.value for c in at.caption)

    # The table names detectors and criteria as the pages do, shows "—" for what a run lacks, and
    # holds the columns a screen can show until every column is asked for.
    table = at.dataframe[0]
    assert list(table.value["detector"]) == ["EResFD", "EResFD"]
    assert list(table.value["criterion"]) == ["FPGM", "L1 norm"]
    assert table.proto.placeholder == "—"
    shown = list(table.proto.column_order)
    assert "agreement AP" in shown and "checkpoint" not in shown and len(shown) <= 15
    at.toggle(key="results_all_columns").set_value(True).run()
    assert not at.dataframe[0].proto.column_order  # every column

    at.segmented_control(key="results_subset").set_value("easy").run()
    ((name, recall, _),) = traces(at)
    assert name.endswith(f"AP {result.easy:.3f}")
    np.testing.assert_array_equal(recall, result.curves["easy"][1])

    # Both runs ticked: the older one is named as having no stored curves; the other is still drawn.
    from app_support.engine import table_key

    at.session_state[table_key("results_table", [run_id, older])] = {"selection": {"rows": [0, 1], "columns": [], "cells": []}}
    at.run()
    assert not at.exception
    assert [i.value for i in at.info] == [f"#{older} EResFD L1 norm 30 % (WIDER FACE): no stored curves. The run was "
                                          "recorded before runs kept the curves of their evaluation; its APs are in the table."]
    assert len(traces(at)) == 1
