"""``python -m pruning``: prune, compact, train (killed and resumed) and runs, as a user runs them."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def env(weights_dir, tmp_path_factory):
    folder = tmp_path_factory.mktemp("pruning_cli")
    return dict(os.environ, FACEDET_WEIGHTS_DIR=str(weights_dir), PRUNING_DATA_DIR=str(folder / "data"),
                PRUNING_RESULTS_DB=str(folder / "results.sqlite3"), OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))


def _run(env, *args, module="pruning", check=True):
    done = subprocess.run([sys.executable, "-m", module, *args], env=env, cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    if check:
        assert done.returncode == 0, done.stderr
    return done


def test_prune_prints_the_paper_count_and_saves_a_checkpoint_facedet_loads(env, tmp_path):
    out = tmp_path / "extd-l1-30.pth"
    done = _run(env, "prune", "--weights", "extd", "--criterion", "l1", "--rate", "0.3", "--out", str(out), "--json")
    assert json.loads(done.stdout) == {"parameters": 162_352, "nonzero_parameters": 122_034, "sparsity": 0.248337}
    info = json.loads(_run(env, "info", str(out), "--json", module="facedet").stdout)
    assert info["detector"] == "extd" and info["nonzero_parameters"] == 122_034


def test_compact_writes_a_smaller_checkpoint_and_an_onnx_model(env, tmp_path):
    out, onnx = tmp_path / "compact.pth", tmp_path / "compact.onnx"
    done = _run(env, "compact", "eresfd-fpgm-50", "--out", str(out), "--onnx", str(onnx), "--runs", "1", "--json")
    report = json.loads(done.stdout)
    assert report["max_abs_diff"] < 1e-4 and report["onnx_max_abs_diff"] < 1e-4
    assert report["compact"]["parameters"] < report["dense"]["parameters"]
    assert report["compact"]["flops"] < report["dense"]["flops"]
    assert all(report[row]["torch_ms"] > 0 and report[row]["onnx_ms"] > 0 for row in ("dense", "masked", "compact"))
    assert onnx.stat().st_size > 10_000
    info = json.loads(_run(env, "info", str(out), "--json", module="facedet").stdout)
    assert info["parameters"] == report["compact"]["parameters"]


def test_bad_input_is_one_line_and_exit_code_2(env, tmp_path):
    cases = [
        ("prune", "--weights", "eresfd", "--criterion", "median", "--rate", "0.3"),
        ("prune", "--weights", "eresfd", "--criterion", "fpgm", "--rate", "1.5"),
        ("prune", "--weights", str(tmp_path / "missing.pth"), "--criterion", "fpgm", "--rate", "0.3"),
        ("train", "--run-dir", str(tmp_path / "run"), "--detector", "eresfd"),
        ("runs", "--delete", "999"),
    ]
    for args in cases:
        done = _run(env, *args, check=False)
        assert done.returncode == 2, (args, done.stderr)
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), (args, done.stderr)


def test_a_killed_training_run_is_marked_crashed_and_resumes(env, tmp_path):
    run_dir = tmp_path / "run"
    args = ["train", "--detector", "eresfd", "--criterion", "l1", "--rate", "0.3", "--epochs", "2",
            "--finetune-epochs", "1", "--prune-every", "1", "--max-images", "8", "--sample-images", "8",
            "--crop-size", "320", "--batch-size", "2", "--no-eval", "--threads", "1", "--run-dir", str(run_dir)]
    process = subprocess.Popen([sys.executable, "-m", "pruning", *args], env=env, cwd=ROOT,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 240
        while not (run_dir / "state.pth").exists():  # the first epoch is saved
            assert process.poll() is None and time.monotonic() < deadline
            time.sleep(0.2)
        process.send_signal(signal.SIGKILL)  # a crash: no chance to clean up
        process.wait(30)
    finally:
        if process.poll() is None:
            process.kill()
    runs = json.loads(_run(env, "runs", "--json").stdout)
    crashed = next(r for r in runs if r["run_dir"] == str(run_dir.resolve()))
    assert crashed["status"] == "crashed" and crashed["epochs_done"] >= 1

    summary = json.loads(_run(env, "train", "--run-dir", str(run_dir), "--resume", "--json").stdout)
    assert summary["status"] == "finished" and summary["run_id"] == crashed["id"] and len(summary["losses"]) == 3
    run = json.loads(_run(env, "runs", "--show", str(crashed["id"]), "--json").stdout)
    assert run["status"] == "finished" and [e["epoch"] for e in run["epochs"]] == [0, 1, 2]
    assert Path(run["checkpoint"]).is_file() and Path(run["compact_checkpoint"]).is_file()

    csv_text = _run(env, "runs", "--csv", "-").stdout
    assert csv_text.splitlines()[0].startswith("id,kind,status") and len(csv_text.splitlines()) == len(runs) + 1


def test_prune_layers_reports_every_prunable_layer_as_the_selection_does(weights_dir, monkeypatch, capsys):
    import json

    from facedet.weights import load_model
    from pruning.cli import main
    from pruning.criteria import layer_selection

    monkeypatch.setenv("FACEDET_WEIGHTS_DIR", str(weights_dir))
    assert main(["prune", "--weights", "eresfd", "--criterion", "l1", "--rate", "0.3", "--layers", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    model, _ = load_model("eresfd")
    selection = layer_selection(model, "l1", 0.3)
    assert [row["layer"] for row in report["layers"]] == list(selection)
    assert all(row["removed"] == selection[row["layer"]] and len(row["removed"]) == int(row["filters"] * 0.3)
               for row in report["layers"])
