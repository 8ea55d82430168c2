"""Issue #11, failures mid-way: a full disk, a prediction run stopped half-way, interrupted and
copied training runs, two processes on one run directory, a damaged results store. Each ends in
one ``error: ...`` line and exit code 2 (no traceback), leaves no partial file under its final
name, and keeps what was done before (the last epoch's state, the images already predicted).

A full disk is simulated in the command's own process (``cli_on_full_disk``): writes through
Python's files to chosen files fail with ENOSPC, and SQLite statements with SQLite's full-disk
errors, the way a disk that fills up makes them fail.
"""

import json
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from cli_helpers import assert_one_error_line, cli_env, cli as run_cli
from facedet.errors import DataError
from pruning_helpers import one_thread  # noqa: F401  (autouse fixture)

ROOT = Path(__file__).resolve().parents[1]
TINY_TRAINING = ("--detector", "eresfd", "--criterion", "l1", "--rate", "0.3", "--epochs", "2", "--prune-every", "1",
                 "--finetune-epochs", "0", "--sample-images", "2", "--crop-size", "128", "--batch-size", "2",
                 "--no-eval", "--threads", "1", "--json")  # --json: no progress bar on stderr


@pytest.fixture(scope="module")
def env(weights_dir, tmp_path_factory):
    folder = tmp_path_factory.mktemp("failures_env")
    return cli_env(weights_dir, folder)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    from facedet.wider.sample_set import write_sample_set

    folder = tmp_path_factory.mktemp("failures_files")
    cv2.imwrite(str(folder / "photo.png"), np.full((48, 64, 3), 128, np.uint8))
    write_sample_set(folder / "sample", images=20)
    return folder


def cli(env, module, *args, timeout=300):
    return run_cli(env, module, *args, timeout=timeout)


# Run ``python -m MODULE ARGS`` on a disk that fills up, as the JSON spec in $FULL_DISK says:
# {"folder", "name", "allowed"}: files under ``folder`` whose name contains ``name`` are written
#   whole ``allowed`` times; from then on a file takes its first bytes and then ENOSPC (Python
#   files only: torch's and OpenCV's own C++ writes go around it);
# {"sql", "from_epoch", "error", "free"}: SQLite statements starting with ``sql`` (for epochs >=
#   ``from_epoch``) fail with sqlite3.OperationalError(``error``); ``free``: the bytes
#   shutil.disk_usage reports free.
FULL_DISK = r'''
import builtins, errno, io, json, os, runpy, sys
spec = json.loads(os.environ["FULL_DISK"])
module, sys.argv = sys.argv[1], sys.argv[1:]
if "folder" in spec:
    folder, real_open, written = os.path.realpath(spec["folder"]), io.open, [0]

    class FillingFile:
        def __init__(self, file):
            self.file, self.room = file, 64
        def write(self, data):
            if len(data) > self.room:
                self.file.write(data[:self.room])
                self.room = 0
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            self.room -= len(data)
            return self.file.write(data)
        def writelines(self, lines):
            for line in lines:
                self.write(line)
        def __enter__(self):
            return self
        def __exit__(self, *exc):
            return self.file.__exit__(*exc)
        def __getattr__(self, name):
            return getattr(self.file, name)

    def path_of(file):
        if isinstance(file, int):
            return os.readlink(f"/proc/self/fd/{file}")
        return os.path.realpath(os.fsdecode(file))

    def filling_open(file, mode="r", *args, **kwargs):
        opened = real_open(file, mode, *args, **kwargs)
        path = path_of(file)
        if any(c in mode for c in "wax+") and path.startswith(folder + os.sep) and spec["name"] in os.path.basename(path):
            written[0] += 1
            if written[0] > spec["allowed"]:
                return FillingFile(opened)
        return opened

    io.open = builtins.open = filling_open
if "sql" in spec:
    import shutil, sqlite3

    class FullConnection(sqlite3.Connection):
        def execute(self, sql, params=()):
            if sql.startswith(spec["sql"]) and params[1] >= spec["from_epoch"]:
                raise sqlite3.OperationalError(spec["error"])
            return super().execute(sql, params)

    connect = sqlite3.connect
    sqlite3.connect = lambda *args, **kwargs: connect(*args, factory=FullConnection, **kwargs)
    if "free" in spec:
        shutil.disk_usage = lambda path: shutil._ntuple_diskusage(1 << 30, (1 << 30) - spec["free"], spec["free"])
runpy.run_module(module, run_name="__main__", alter_sys=True)
'''


def cli_on_full_disk(env, spec, module, *args):
    return subprocess.run([sys.executable, "-c", FULL_DISK, module, *map(str, args)], cwd=ROOT,
                          env=dict(env, FULL_DISK=json.dumps(spec, default=str)), capture_output=True, text=True,
                          timeout=300)


def assert_ends_in_one_error_line(done, *expected):
    """For a command that shows progress on stderr (predict): it ends in the one error line."""
    lines = done.stderr.splitlines()
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert [line for line in lines if line.startswith("error: ")] == lines[-1:], done.stderr
    for text in expected:
        assert text in lines[-1], lines[-1]


def leftovers(folder):
    """Temporary files a write left behind."""
    return sorted(p.name for p in Path(folder).rglob("*") if p.name.endswith((".tmp", ".part")))


def store_runs(env):
    from pruning.store import ResultsStore

    return ResultsStore(env["PRUNING_RESULTS_DB"]).runs()


def the_run_of(env, run_dir):
    from pruning.store import ResultsStore

    store = ResultsStore(env["PRUNING_RESULTS_DB"])
    run = next(r for r in store.runs() if r["run_dir"] == str(Path(run_dir).resolve()))
    return store.get_run(run["id"])


def _tiny_config(weights_dir, **changes):
    from pruning.train import TrainConfig

    settings = dict(detector="eresfd", criterion="l1", rate=0.3, weights=str(weights_dir / "eresfd.pth"), epochs=2,
                    finetune_epochs=0, prune_every=1, batch_size=2, crop_size=128, sample_images=2, evaluate=False,
                    threads=1)
    return TrainConfig.from_settings(**{**settings, **changes})


def _stop_after_first_epoch():
    """(progress, cancel) for train(): the run stops in its second epoch, with one epoch saved."""
    epochs = []
    return (lambda event: epochs.append(event) if event.kind == "epoch" else None), (lambda: len(epochs) >= 1)


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("PRUNING_DATA_DIR", str(tmp_path / "data"))


# 11 ------------------------------------------------------------------------------------------
def test_a_full_disk_while_saving_the_training_state_is_one_line_and_keeps_the_last_epoch(env, tmp_path):
    run_dir = tmp_path / "run"
    done = cli_on_full_disk(env, {"folder": run_dir, "name": "state.pth", "allowed": 1},
                            "pruning", "train", "--run-dir", run_dir, *TINY_TRAINING)
    assert_one_error_line(done, "no space left on device", "state.pth")
    assert torch.load(run_dir / "state.pth", weights_only=True)["epoch"] == 1  # the first epoch's, whole
    assert not leftovers(run_dir)
    run = the_run_of(env, run_dir)
    assert run["status"] == "failed" and "no space left on device" in run["message"]
    assert [e["epoch"] for e in run["epochs"]] == [0, 1]  # the second is redone when resumed

    resumed = cli(env, "pruning", "train", "--run-dir", run_dir, "--resume", "--json")
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["status"] == "finished"
    run = the_run_of(env, run_dir)
    assert run["status"] == "finished" and run["message"] is None and [e["epoch"] for e in run["epochs"]] == [0, 1]


@pytest.mark.parametrize("error", ["database or disk is full", "disk I/O error"])
def test_a_full_disk_under_the_results_store_mid_run_is_one_line(env, tmp_path, error):
    run_dir = tmp_path / "run"
    spec = {"sql": "INSERT OR REPLACE INTO epochs", "from_epoch": 1, "error": error, "free": 0}
    done = cli_on_full_disk(env, spec, "pruning", "train", "--run-dir", run_dir, *TINY_TRAINING)
    assert_one_error_line(done, "no space left on device for the results store", env["PRUNING_RESULTS_DB"])
    assert torch.load(run_dir / "state.pth", weights_only=True)["epoch"] == 1  # store and state agree
    run = the_run_of(env, run_dir)  # the run's row could still be written: it says what happened
    assert run["status"] == "failed" and "no space left on device" in run["message"]
    assert [e["epoch"] for e in run["epochs"]] == [0]


# 12 ------------------------------------------------------------------------------------------
OUTPUTS = {
    "detect --out": ("out.png", lambda f, t: ("facedet", "detect", f / "photo.png", "--out", t / "out.png")),
    "compact --onnx": ("compact.onnx", lambda f, t: ("pruning", "compact", "eresfd-fpgm-50", "--out", t / "compact.pth",
                                                     "--onnx", t / "compact.onnx", "--runs", "1", "--json")),
    "runs --csv": ("runs.csv", lambda f, t: ("pruning", "runs", "--csv", t / "runs.csv")),
    "config.json of a new run": ("config.json", lambda f, t: ("pruning", "train", "--run-dir", t / "run", *TINY_TRAINING)),
    "sample-set": (".jpg", lambda f, t: ("facedet", "sample-set", "--out", t / "sample", "--images", "2")),
    "evaluate --curves": ("curves.json", lambda f, t: ("facedet", "evaluate", "--pred", _ground_truth_as_predictions(f, t),
                                                       "--gt", f / "sample" / "eval_tools" / "ground_truth",
                                                       "--only-predicted", "--json", "--curves", t / "curves.json")),
}


def _ground_truth_as_predictions(files, folder):
    """A submission folder of the sample set's own validation faces (written here, not by the command)."""
    from facedet.wider.ground_truth import load_ground_truth
    from facedet.wider.submission import write_submission

    gt = load_ground_truth(files / "sample" / "eval_tools" / "ground_truth")
    faces = {key: np.column_stack([gt.faces(key), np.ones(len(gt.faces(key)))]) for key in gt.keys}
    return write_submission(faces, folder / "pred")


@pytest.mark.parametrize("case", list(OUTPUTS))
def test_an_output_on_a_full_disk_is_one_line_and_never_left_truncated(env, files, tmp_path, case):
    name, command = OUTPUTS[case]
    allowed = 1 if case == "sample-set" else 0
    done = cli_on_full_disk(env, {"folder": tmp_path, "name": name, "allowed": allowed}, *command(files, tmp_path))
    assert_one_error_line(done, "no space left on device")
    assert not leftovers(tmp_path)
    if case == "sample-set":  # one image is whole, the next absent, the set not marked as one
        assert len(list(tmp_path.rglob("*.jpg"))) == 1 and not (tmp_path / "sample" / "SAMPLE_SET.txt").exists()
    else:
        assert not list(tmp_path.rglob(name)), sorted(tmp_path.rglob("*"))
    if case == "config.json of a new run":  # nothing left that --resume would choke on
        assert not (tmp_path / "run").exists()


# 13 ------------------------------------------------------------------------------------------
def test_a_prediction_folder_stopped_half_way_is_refused_then_completed(env, files, tmp_path):
    pred, gt = tmp_path / "pred", files / "sample" / "eval_tools" / "ground_truth"
    predict = ("facedet", "predict", "--wider", files / "sample", "--out", pred)
    stopped = cli_on_full_disk(env, {"folder": pred, "name": "_sample_", "allowed": 6}, *predict)
    assert_ends_in_one_error_line(stopped, "no space left on device")
    first = {p: p.stat().st_mtime_ns for p in pred.rglob("*_sample_*.txt")}
    assert len(first) == 6 and not leftovers(pred)

    assert_one_error_line(cli(env, "facedet", "evaluate", "--pred", pred, "--gt", gt), "incomplete", "6 of its 20")
    partial = cli(env, "facedet", "evaluate", "--pred", pred, "--gt", gt, "--allow-incomplete")
    assert partial.returncode == 0 and "predicted images only" in partial.stdout
    assert len(partial.stderr.splitlines()) == 1 and "6 of 20 images" in partial.stderr
    only_predicted = cli(env, "facedet", "evaluate", "--pred", pred, "--gt", gt, "--only-predicted")
    assert partial.stdout == only_predicted.stdout

    resumed = cli(env, *predict)  # continues: the six files stay as they were
    assert resumed.returncode == 0, resumed.stderr
    assert all(path.stat().st_mtime_ns == mtime for path, mtime in first.items())
    assert len(list(pred.rglob("*_sample_*.txt"))) == 20
    complete = cli(env, "facedet", "evaluate", "--pred", pred, "--gt", gt)
    assert complete.returncode == 0 and complete.stderr == "" and "all ground-truth images" in complete.stdout

    # A folder of another tool (no marker): evaluated as before, with one warning line.
    (pred / ".predict.json").unlink()
    foreign = cli(env, "facedet", "evaluate", "--pred", pred, "--gt", gt)
    assert foreign.returncode == 0 and foreign.stdout == complete.stdout
    assert len(foreign.stderr.splitlines()) == 1 and "cannot be checked" in foreign.stderr


# 15 ------------------------------------------------------------------------------------------
def test_resuming_a_crashed_run_clears_its_message_and_a_finished_run_cannot_be_resumed(env, weights_dir, tmp_path,
                                                                                       data_dir):
    from pruning.store import ResultsStore
    from pruning.train import train

    store = ResultsStore(tmp_path / "results.sqlite3")
    config, run_dir = _tiny_config(weights_dir), tmp_path / "run"
    progress, cancel = _stop_after_first_epoch()
    stopped = train(config, run_dir, store=store, progress=progress, cancel=cancel)
    with sqlite3.connect(store.path) as conn:  # as if its process had been killed
        conn.execute("UPDATE runs SET status='running', message=NULL, owner=? WHERE id=?",
                     (f"{socket.gethostname()}:999999999:1", stopped.run_id))
    assert store.mark_crashed() == [stopped.run_id]
    assert store.get_run(stopped.run_id)["message"] == "its process ended without finishing the run"

    resumed = train(config, run_dir, resume=True, store=store)
    run = store.get_run(resumed.run_id)
    assert resumed.run_id == stopped.run_id and run["status"] == "finished" and run["message"] is None

    with pytest.raises(DataError, match="has finished; nothing to resume"):
        train(config, run_dir, resume=True, store=store)
    record = json.loads((run_dir / "run.json").read_text())
    (run_dir / "run.json").write_text(json.dumps({**record, "finished": False}))  # a run dir of an older version
    with pytest.raises(DataError, match="has finished; nothing to resume"):
        train(config, run_dir, resume=True, store=store)  # the store's row says so
    assert store.get_run(resumed.run_id)["status"] == "finished"


def test_resuming_a_finished_run_from_the_command_line_is_one_line(env, tmp_path):
    run_dir = tmp_path / "run"
    assert cli(env, "pruning", "train", "--run-dir", run_dir, *TINY_TRAINING).returncode == 0
    assert_one_error_line(cli(env, "pruning", "train", "--run-dir", run_dir, "--resume"), "has finished")


def test_ctrl_c_while_finishing_a_run_marks_it_cancelled(weights_dir, tmp_path, data_dir):
    from pruning.store import ResultsStore
    from pruning.train import train

    store = ResultsStore(tmp_path / "results.sqlite3")

    def ctrl_c_at_the_first_stage(event):
        if event.kind == "stage":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(_tiny_config(weights_dir), tmp_path / "run", store=store, progress=ctrl_c_at_the_first_stage)
    (run,) = store.runs()
    assert run["status"] == "cancelled" and "resume" in run["message"]


def test_a_copied_run_directory_gets_its_own_row(weights_dir, tmp_path, data_dir):
    from pruning.store import ResultsStore
    from pruning.train import train

    store = ResultsStore(tmp_path / "results.sqlite3")
    config, original, copy = _tiny_config(weights_dir), tmp_path / "original", tmp_path / "copy"
    progress, cancel = _stop_after_first_epoch()
    stopped = train(config, original, store=store, progress=progress, cancel=cancel)
    shutil.copytree(original, copy)
    resumed = train(config, copy, resume=True, store=store)
    assert resumed.status == "finished" and resumed.run_id != stopped.run_id
    assert store.get_run(stopped.run_id)["status"] == "cancelled"
    assert store.get_run(stopped.run_id)["run_dir"] == str(original.resolve())
    assert store.get_run(resumed.run_id)["run_dir"] == str(copy.resolve())


# 16 ------------------------------------------------------------------------------------------
def test_a_second_process_on_a_run_directory_in_use_is_one_line(env, weights_dir, tmp_path, data_dir):
    from pruning.train import train

    run_dir = tmp_path / "run"
    first = subprocess.Popen([sys.executable, "-m", "pruning", "train", "--run-dir", str(run_dir), *TINY_TRAINING],
                             cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 240
        while not (run_dir / "state.pth").exists():  # its first epoch is done: it holds the directory
            assert first.poll() is None and time.monotonic() < deadline
            time.sleep(0.1)
        first.send_signal(signal.SIGSTOP)  # holds it for as long as the checks take
        second = cli(env, "pruning", "train", "--run-dir", run_dir, *TINY_TRAINING)
        assert_one_error_line(second, "in use by process", str(first.pid))
        with pytest.raises(DataError, match=f"in use by process {first.pid}"):  # the app's sessions too
            train(_tiny_config(weights_dir), run_dir, resume=True)
        first.send_signal(signal.SIGCONT)
        assert first.wait(240) == 0
    finally:
        if first.poll() is None:
            first.send_signal(signal.SIGCONT)
            first.kill()
    assert [r["status"] for r in store_runs(env) if r["run_dir"] == str(run_dir.resolve())] == ["finished"]
    assert not (run_dir / ".lock").exists()


# 17 ------------------------------------------------------------------------------------------
@pytest.fixture
def damaged_store(tmp_path):
    """A store whose runs can be listed, but whose epochs table has a page of garbage."""
    from pruning.store import ResultsStore

    store = ResultsStore(tmp_path / "damaged.sqlite3")
    run_id = store.start_run("train", {}, "eresfd", "l1", 0.3)
    with sqlite3.connect(store.path) as conn:
        conn.executemany("INSERT INTO epochs (run_id, epoch, loss) VALUES (?, ?, 1.0)", [(run_id, e) for e in range(300)])
    with sqlite3.connect(store.path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        page = conn.execute("SELECT min(pageno) FROM dbstat WHERE name='epochs'").fetchone()[0]
    with open(store.path, "r+b") as f:
        f.seek((page - 1) * page_size)
        f.write(bytes(range(256)) * (page_size // 256))
    return store.path, run_id


@pytest.mark.parametrize("action", ["--show", "--delete"])
def test_a_damaged_results_store_is_one_line(env, damaged_store, action):
    path, run_id = damaged_store
    assert cli(env, "pruning", "runs", "--results-db", path).returncode == 0  # its list still reads
    assert_one_error_line(cli(env, "pruning", "runs", "--results-db", path, action, run_id), str(path), "damaged")


def test_another_programs_sqlite_file_is_one_line_and_left_as_it_was(env, tmp_path):
    path = tmp_path / "other.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE runs (id INTEGER PRIMARY KEY, name TEXT)")
    assert_one_error_line(cli(env, "pruning", "runs", "--results-db", path), str(path), "another program's tables")
    with sqlite3.connect(path) as conn:  # no table added, no column
        assert conn.execute("SELECT name FROM sqlite_master").fetchall() == [("runs",)]
        assert [row[1] for row in conn.execute("PRAGMA table_info(runs)")] == ["id", "name"]


@pytest.mark.parametrize("target", ["a directory", "a missing folder"])
def test_runs_csv_to_a_directory_or_a_missing_folder_is_one_line(env, tmp_path, target):
    csv = tmp_path if target == "a directory" else tmp_path / "missing" / "runs.csv"
    assert_one_error_line(cli(env, "pruning", "runs", "--csv", csv), str(csv))
    assert not (tmp_path / "missing").exists()


@pytest.mark.parametrize("page", ["pages/5_Results.py", "pages/3_Trade_offs.py", "pages/1_Compare.py"])
def test_the_app_says_which_results_store_is_damaged_and_carries_on(weights_dir, tmp_path, monkeypatch, page):
    from streamlit.testing.v1 import AppTest

    store = tmp_path / "garbage.sqlite3"
    store.write_bytes(b"not a database, " * 512)
    monkeypatch.setenv("PRUNING_RESULTS_DB", str(store))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=600).switch_page(page)
    if page == "pages/1_Compare.py":
        at.session_state["sample"] = "grace_hopper.jpg"
        at.session_state["source"] = "session"
    at.run()
    assert not at.exception
    assert any(str(store) in error.value for error in at.error), [e.value for e in at.error]
    if page == "pages/3_Trade_offs.py":  # the published models are still drawn
        assert at.get("plotly_chart")
