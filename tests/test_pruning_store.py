"""The results store keeps the precision-recall curves of a run's evaluation, and a store written
before runs kept them (no curves table, no data-root and ground-truth columns) is brought up to date
without losing a run."""

import json
import sqlite3

import pytest

from facedet.wider.curves import curve_ap, curves_document, read_curves
from facedet.wider.evaluation import evaluate
from facedet.wider.ground_truth import load_ground_truth
from facedet.wider.synthetic import synthetic_predictions
from pruning.store import ResultsStore

# The runs table as the store wrote it before evaluations recorded their inputs and curves.
OLDER_SCHEMA = """
CREATE TABLE runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, status TEXT NOT NULL,
    detector TEXT, criterion TEXT, rate REAL, config TEXT NOT NULL, code_revision TEXT, owner TEXT,
    created_at TEXT NOT NULL, updated_at TEXT NOT NULL, finished_at TEXT,
    run_dir TEXT, checkpoint TEXT, parameters INTEGER, ap_easy REAL, ap_medium REAL, ap_hard REAL, message TEXT
);
CREATE TABLE epochs (
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE, epoch INTEGER NOT NULL,
    phase TEXT, loss REAL, loss_loc REAL, loss_conf REAL, lr REAL, sparsity REAL, seconds REAL,
    PRIMARY KEY (run_id, epoch)
);
INSERT INTO runs (kind, status, detector, criterion, rate, config, created_at, updated_at, finished_at,
                  checkpoint, parameters, ap_easy, ap_medium, ap_hard)
VALUES ('train', 'finished', 'eresfd', 'fpgm', 0.3, '{"epochs": 2}', '2026-01-01T00:00:00+00:00',
        '2026-01-01T01:00:00+00:00', '2026-01-01T01:00:00+00:00', '/runs/1/model.pth', 92208, 0.8, 0.7, 0.4);
INSERT INTO epochs VALUES (1, 0, 'sfp', 1.5, 0.5, 1.0, 0.001, 0.3, 12.0);
"""


@pytest.fixture(scope="module")
def evaluated(wider_gt_dir):
    """A real evaluation: the evaluation tests' synthetic detector on the real ground truth."""
    return evaluate(synthetic_predictions(load_ground_truth(wider_gt_dir), 0), wider_gt_dir)


def test_an_older_store_gains_the_curves_table_and_columns_and_keeps_its_runs(tmp_path, evaluated, wider_gt_dir):
    path = tmp_path / "results.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.executescript(OLDER_SCHEMA)
    store = ResultsStore(path)
    with sqlite3.connect(path) as conn:
        columns = {row[1] for row in conn.execute("PRAGMA table_info(runs)")}
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"eval_root", "eval_gt", "latency_ms", "agreement_ap"} <= columns and "pr_curves" in tables
    (old,) = store.runs()
    assert (old["ap_easy"], old["ap_hard"], old["parameters"], old["config"]) == (0.8, 0.4, 92208, {"epochs": 2})
    assert old["eval_root"] is None and old["eval_gt"] is None
    assert [e["loss"] for e in store.get_run(old["id"])["epochs"]] == [1.5]
    assert store.run_curves(old["id"]) is None

    # The migrated store records a new run's evaluation like a fresh one.
    run_id = store.start_run("train", {"epochs": 1}, detector="eresfd", criterion="l1", rate=0.5)
    store.record_curves(run_id, curves_document(evaluated, "synthetic", wider_gt_dir))
    store.finish_run(run_id, ap_easy=evaluated.easy, ap_medium=evaluated.medium, ap_hard=evaluated.hard,
                     eval_root="/data/wider", eval_gt=str(wider_gt_dir))
    assert store.run_curves(run_id)["hard"]["ap"] == evaluated.hard and store.run_curves(old["id"]) is None
    assert store.get_run(run_id)["eval_gt"] == str(wider_gt_dir)
    ResultsStore(path)  # opening it again changes nothing
    assert len(store.runs()) == 2 and store.run_curves(run_id) is not None


def test_stored_curves_read_back_to_the_evaluation_they_came_from(tmp_path, evaluated, wider_gt_dir):
    store = ResultsStore(tmp_path / "results.sqlite3")
    run_id = store.start_run("train", {}, detector="eresfd", criterion="fpgm", rate=0.3)
    store.record_curves(run_id, curves_document(evaluated, "synthetic", wider_gt_dir))
    curves = read_curves(store.run_curves(run_id))
    for setting in ("easy", "medium", "hard"):
        assert curve_ap(curves[setting]) == curves[setting].ap == getattr(evaluated, setting)
        precision, recall = evaluated.curves[setting]
        assert curves[setting].precision.tobytes() == precision.tobytes()  # NaNs included
        assert curves[setting].recall.tobytes() == recall.tobytes()
    store.delete_run(run_id)  # the curves go with their run
    with sqlite3.connect(store.path) as conn:
        assert conn.execute("SELECT COUNT(*) FROM pr_curves").fetchone()[0] == 0
    assert json.loads(json.dumps(curves_document(evaluated)))["hard"]["ap"] == evaluated.hard


def test_runs_show_writes_a_runs_stored_curves_or_says_it_has_none(tmp_path, evaluated, wider_gt_dir, weights_dir):
    from cli_helpers import assert_one_error_line, cli, cli_env

    env = cli_env(weights_dir, tmp_path)
    store = ResultsStore(env["PRUNING_RESULTS_DB"])
    older = store.start_run("train", {}, detector="eresfd", criterion="l1", rate=0.3)
    run_id = store.start_run("train", {}, detector="eresfd", criterion="fpgm", rate=0.3)
    document = curves_document(evaluated, "synthetic", wider_gt_dir)
    store.record_curves(run_id, document)
    done = cli(env, "pruning", "runs", "--show", run_id, "--curves", tmp_path / "curves.json", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["id"] == run_id
    written = read_curves((tmp_path / "curves.json").read_text())
    assert all(curve_ap(written[s]) == getattr(evaluated, s) for s in ("easy", "medium", "hard"))
    assert_one_error_line(cli(env, "pruning", "runs", "--show", older, "--curves", tmp_path / "older.json"),
                          f"run {older} has no stored precision-recall curves")
    assert_one_error_line(cli(env, "pruning", "runs", "--curves", tmp_path / "c.json"), "needs --show ID")
    assert_one_error_line(cli(env, "pruning", "runs", "--show", run_id, "--curves", tmp_path / "no" / "c.json"),
                          "does not exist")
    assert not (tmp_path / "older.json").exists() and not (tmp_path / "c.json").exists()
