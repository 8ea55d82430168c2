"""Background sessions for the app: queued, run one at a time, polled, cancelled, resumed."""

import time
from pathlib import Path

import pytest
import torch

from pruning import ResultsStore, SessionConfig, SessionQueue

QUICK = dict(detector="eresfd", criterion="l1", rate=0.3, data="sample")
TINY = dict(epochs=1, finetune_epochs=1, max_images=4, batch_size=2, crop_size=256)


@pytest.fixture(scope="module", autouse=True)
def data_dir(tmp_path_factory, weights_dir):
    with pytest.MonkeyPatch.context() as mp:
        folder = tmp_path_factory.mktemp("session_data")
        mp.setenv("PRUNING_DATA_DIR", str(folder))
        mp.setenv("FACEDET_WEIGHTS_DIR", str(weights_dir))
        yield folder


@pytest.fixture
def queue(tmp_path):
    threads = torch.get_num_threads()
    q = SessionQueue(store=ResultsStore(tmp_path / "results.sqlite3"))
    yield q
    q.shutdown(timeout=60)
    torch.set_num_threads(threads)


def _config(**changes):
    options = {"sample_images": 8, "evaluate": False, "threads": 1, **TINY, **changes.pop("options", {})}
    for name in list(changes):
        if name in TINY:
            options[name] = changes.pop(name)
    if "wider" in changes:
        changes["data"] = "wider"
    return SessionConfig(**{**QUICK, **changes}, options=options)


def _wait_for(predicate, timeout=120):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_a_session_runs_in_the_background_and_reports_progress(queue):
    session_id = queue.submit(_config())
    status = queue.wait(session_id, timeout=180)
    assert status.state == "finished", status.error
    assert len(status.losses) == 2 and all(loss > 0 for loss in status.losses)
    assert status.progress.kind == "stage" and status.figures["compact_parameters"] < status.figures["parameters"]
    run = queue.store.get_run(status.run_id)
    assert run["status"] == "finished" and run["run_dir"] == str(Path(status.run_dir).resolve())
    assert run["criterion"] == "l1" and len(run["epochs"]) == 2 and run["checkpoint"]


def test_sessions_can_be_cancelled_running_or_queued_and_resumed(queue):
    running = queue.submit(_config(epochs=3, finetune_epochs=2))
    waiting = queue.submit(_config())
    _wait_for(lambda: (s := queue.status(running)).progress is not None and s.progress.kind == "step")
    assert queue.status(waiting).state == "queued"
    assert queue.cancel(waiting) and queue.status(waiting).state == "cancelled"
    assert queue.cancel(running)
    status = queue.wait(running, timeout=120)
    assert status.state == "cancelled"
    assert queue.store.get_run(status.run_id)["status"] == "cancelled"
    assert not queue.cancel(running)  # already over

    resumed = queue.resume(status.run_id)
    final = queue.wait(resumed, timeout=300)
    assert final.state == "finished", final.error
    run = queue.store.get_run(status.run_id)
    assert run["status"] == "finished" and [e["epoch"] for e in run["epochs"]] == [0, 1, 2, 3, 4]
    assert [s.id for s in queue.sessions()] == [resumed, waiting, running]


def test_a_failing_session_does_not_stop_the_queue(queue, tmp_path):
    bad = queue.submit(_config(wider=str(tmp_path / "no-such-wider")))
    good = queue.submit(_config())
    assert queue.wait(bad, timeout=60).state == "failed"
    assert "not found" in queue.status(bad).error
    assert queue.wait(good, timeout=180).state == "finished"


def test_the_default_quick_session_recovers_what_one_shot_pruning_destroys(tmp_path):
    """The app's default session (the quick preset: the project's photos, distilled from the dense
    model) against one-shot pruning, on held-out real photos and our hand annotations."""
    from facedet.detector import Detector
    from facedet.images import read_image
    from facedet.samples import annotated
    from facedet.weights import load_model
    from pruning.agreement import detector_agreement, face_counts
    from pruning.criteria import one_shot_prune
    from pruning.session import run_session

    config = SessionConfig()  # what the app starts with: EResFD, FPGM, 30 %, the quick preset on photos
    assert (config.detector, config.criterion, config.rate, config.data) == ("eresfd", "fpgm", 0.3, "photos")
    photos = annotated("holdout")
    images = [read_image(p.path) for p in photos]
    dense = Detector(load_model("eresfd")[0], "eresfd", device="cpu")
    model, _ = load_model("eresfd")
    one_shot_prune(model, "fpgm", 0.3)
    before = detector_agreement(Detector(model, "eresfd", device="cpu"), dense, images)
    result = run_session(config, run_dir=tmp_path / "run", store=ResultsStore(tmp_path / "results.sqlite3"))
    assert result.status == "finished"
    # Pruned at once it finds almost none of the dense model's faces at 0.5; the session brings them back.
    assert before.recall < 0.1 and before.ap < 0.3
    assert result.figures["agreement_ap"] > 0.6 and result.figures["agreement_recall"] > 0.6
    trained = Detector(result.model, "eresfd", device="cpu")
    found = total = false = 0
    for photo, image in zip(photos, images):
        f, m, e = face_counts(trained.detect(image), photo.faces)
        found, total, false = found + f, total + f + m, false + e
    assert found >= 0.8 * total and false <= 10
