"""A tiny pruning session through the app (streamlit AppTest): Prune starts it in the background,
sessions queue, a reload finds them, and the result appears in Results, Compare and Trade-offs."""

import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest
from pruning_helpers import stop_sessions

APP = str(Path(__file__).resolve().parents[1] / "app.py")
TINY = {"prune_epochs": 1, "prune_finetune": 1, "prune_crop": 160, "prune_rate": 50}


@pytest.fixture(scope="module")
def engine_dirs(tmp_path_factory, weights_dir):
    """The pruning engine's data folder and results store in a temporary place, for this module."""
    folder = tmp_path_factory.mktemp("pruning")
    patch = pytest.MonkeyPatch()
    patch.setenv("PRUNING_DATA_DIR", str(folder))
    patch.setenv("PRUNING_RESULTS_DB", str(folder / "results.sqlite3"))
    yield folder
    stop_sessions()
    patch.undo()


def open_page(page):
    return AppTest.from_file(APP, default_timeout=300).switch_page(page)


def start(at, **settings):
    for key, value in dict(TINY, **settings).items():
        at.session_state[key] = value
    at.run()
    at.button[0].click().run()  # the form's Start button
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert "Session queued" in at.success[0].value


def headlines(at):
    """The session cards' titles: the live ones (markdown) first, then the ended ones (folded)."""
    return ([m.value for m in at.markdown if m.value.startswith("**")] +
            [e.label for e in at.expander if e.label.startswith("**")])


def wait_until(at, condition, seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        at.run()
        assert not at.exception
        if condition(at):
            return
        time.sleep(1)
    pytest.fail(f"timed out; the board shows {headlines(at)} {[p.proto.text for p in at.get('progress')]}")


def test_tiny_session_end_to_end(engine_dirs):
    at = open_page("pages/2_Prune.py").run()
    assert "No sessions yet" in at.info[0].value

    start(at)  # the session to keep
    start(at, prune_rate=10)  # started at once: it must wait for the first, not collide with it
    board = headlines(at)
    assert len(board) == 2 and board[0].endswith("**queued**") and "50 %" in board[1]

    at.button(key=[b.key for b in at.button if b.key and b.key.startswith("cancel-")][0]).click().run()
    board = headlines(at)  # the live card first, then the ended one, folded
    assert board[0].endswith("**running**") or board[0].endswith("**queued**")
    assert board[1].endswith("**cancelled**")  # the queued one is dropped, the first goes on

    seen_progress = []
    wait_until(at, lambda a: seen_progress.extend(p.proto.text for p in a.get("progress")) or
               any("Agreement with the dense model" in s.value for s in a.success), 600)
    # A progress bar was up while it ran ("epoch 1/2 (sfp) · step 1/1 · loss … · ETA …", then the
    # finishing stages); how many of them a 1 s poll catches depends on the machine's speed.
    assert seen_progress and all(("ETA" in t) or t.endswith("…") for t in seen_progress)
    assert at.get("plotly_chart")  # the loss chart
    finished = next(s.value for s in at.success if "Agreement with the dense model" in s.value)
    assert "6 held-out photos" in finished

    reloaded = open_page("pages/2_Prune.py").run()  # a new browser session: the queue is still there
    assert [h.rsplit("**", 2)[-2] for h in headlines(reloaded)] == ["cancelled", "finished"]
    assert " · run #" in headlines(reloaded)[1] and " · started " in headlines(reloaded)[1]
    reloaded.button(key="clear_ended").click().run()  # from this board only; the runs stay
    assert not headlines(reloaded) and "cleared from this board" in reloaded.info[0].value
    assert len(headlines(open_page("pages/2_Prune.py").run())) == 2

    # Results: the run, its PR curves, CSV, delete.
    results = open_page("pages/5_Results.py").run()
    assert not results.exception
    table = results.dataframe[0].value
    assert list(table["status"]) == ["finished"] and table["data"].iloc[0] == "photos, distilled"
    assert 0 <= table["agreement AP"].iloc[0] <= 1
    run_id = int(table["run"].iloc[0])
    assert "No run evaluated on WIDER FACE or the sample set yet" in results.info[0].value  # no PR curves


    # Compare: the session's model on the right.
    compare = open_page("pages/1_Compare.py")
    compare.session_state["sample"] = "grace_hopper.jpg"
    compare.session_state["source"] = "session"
    compare.run()
    assert not compare.exception and not compare.error
    assert compare.subheader[-1].value == f"Pruned: #{run_id} EResFD FPGM 50 %"
    assert compare.query_params["source"] == "session" and compare.query_params["run"] == str(run_id)  # its link
    assert "trained on photos, distilled; agreement with the dense model: AP" in compare.caption[1].value
    assert f"{int(table['nonzero parameters'].iloc[0]):,}" == [m.value for m in compare.metric
                                                                   if m.label == "Parameters (nonzero)"][-1]

    # Trade-offs: not on the WIDER FACE axes; on the agreement axis.
    tradeoffs = open_page("pages/3_Trade_offs.py").run()
    assert not tradeoffs.exception
    assert "Your runs" not in tradeoffs.get("plotly_chart")[0].proto.spec
    tradeoffs.session_state["subset"] = "agreement"
    tradeoffs.run()
    assert not tradeoffs.exception
    spec = tradeoffs.get("plotly_chart")[0].proto.spec
    assert "Your runs (photos, distilled)" in spec and "NOT WIDER FACE" in spec

    # Delete: tick the run's row, press Delete.
    from app_support.engine import table_key

    results.session_state[table_key("results_table", [run_id])] = {"selection": {"rows": [0], "columns": [], "cells": []}}
    results.run()
    results.button(key="results_delete").click().run()
    assert not results.exception
    assert results.info[0].value.startswith("The results store is empty")


def test_a_cancelled_session_resumes_from_the_page_and_finishes(engine_dirs):
    """Cancel a running session after its first epoch; Resume on its card goes on from there, in the
    same run of the store, to the end."""
    from pruning.session import shared_queue
    from pruning.store import ResultsStore

    queue = shared_queue()
    at = open_page("pages/2_Prune.py").run()
    start(at, prune_epochs=3)  # 3 SFP + 1 fine-tune epochs: room to cancel between them
    first = queue.sessions()[0]
    deadline = time.monotonic() + 600
    while not queue.status(first.id).losses and time.monotonic() < deadline:  # its first epoch is saved
        time.sleep(0.2)
    at.button(key=f"cancel-{first.id}").click().run()
    assert queue.wait(first.id, timeout=300).state == "cancelled"
    at.run()
    assert headlines(at)[0].endswith("**cancelled**")
    assert any("Resume goes on from the last one" in c.value for c in at.caption)

    at.button(key=f"resume-{first.id}").click().run()
    assert not at.exception and not at.error
    resumed = queue.sessions()[0]
    assert resumed.id != first.id and resumed.resumed and resumed.run_dir == queue.status(first.id).run_dir
    assert not [b for b in at.button if b.key == f"resume-{first.id}"]  # a run is continued once
    wait_until(at, lambda a: queue.status(resumed.id).state not in ("queued", "running"), 900)
    final, cancelled = queue.status(resumed.id), queue.status(first.id)
    assert final.state == "finished", final.error
    assert headlines(at)[0].endswith("· resumed · **finished**")
    # It went on where the first stopped: together they trained each epoch once.
    assert len(cancelled.losses) + len(final.losses) == 4 and len(final.losses) < 4
    runs = [r for r in ResultsStore().runs() if r.get("run_dir") == str(Path(final.run_dir).resolve())]
    assert [r["status"] for r in runs] == ["finished"] and runs[0]["id"] == final.run_id  # one record, continued
    assert not runs[0]["message"]  # no longer "stopped by the user; resume to continue"


def test_runs_interrupted_under_an_earlier_server_can_be_resumed(engine_dirs, monkeypatch):
    """After a restart the queue is empty: the store's interrupted runs get a Resume button."""
    import json

    import pruning.session
    from pruning.presets import preset_config
    from pruning.session import SessionQueue
    from pruning.store import ResultsStore

    store = ResultsStore()
    run_dir = engine_dirs / "sessions" / "earlier-server-run"
    run_dir.mkdir(parents=True)
    config = preset_config("quick", detector="eresfd", criterion="fpgm", rate=0.5, epochs=2, finetune_epochs=1,
                           crop_size=160)
    (run_dir / "config.json").write_text(json.dumps(config.to_dict()))
    run_id = store.start_run("train", config.to_dict(), "eresfd", "fpgm", 0.5, run_dir=str(run_dir.resolve()))
    (run_dir / "run.json").write_text(json.dumps({"run_id": run_id, "store": str(store.path)}))
    store.finish_run(run_id, "crashed", "its process ended without finishing the run")  # the server died

    restarted = SessionQueue(store)
    monkeypatch.setitem(pruning.session._SHARED, "queue", restarted)
    try:
        at = open_page("pages/2_Prune.py").run()
        assert not at.exception and "No sessions yet" in at.info[0].value
        card = next(m.value for m in at.markdown if m.value.startswith(f"Run #{run_id} "))
        assert card.endswith("**crashed**  \nits process ended without finishing the run")
        at.button(key=f"resume-run-{run_id}").click().run()
        assert not at.exception and not at.error
        (session,) = restarted.sessions()
        assert session.resumed and session.run_dir == str(run_dir.resolve())
        assert not [m for m in at.markdown if m.value.startswith(f"Run #{run_id} ")]  # now a session card
        restarted.cancel(session.id)
        assert restarted.wait(session.id, timeout=300).state == "cancelled"
        assert [r["id"] for r in store.runs() if r.get("run_dir") == str(run_dir.resolve())] == [run_id]
    finally:
        restarted.shutdown(timeout=120)


@pytest.mark.parametrize("arch", ["eresfd", "extd"])
def test_the_page_defaults_are_the_quick_preset(engine_dirs, arch):
    """Start pressed with nothing changed queues exactly ``--preset quick``'s session (EXTD: its shorter one)."""
    from dataclasses import asdict

    from pruning.presets import preset_config
    from pruning.session import shared_queue

    at = open_page("pages/2_Prune.py")
    at.session_state["prune_arch"] = arch
    at.run()
    assert not at.exception
    at.button[0].click().run()
    assert "Session queued" in at.success[0].value
    status = shared_queue().sessions()[0]
    shared_queue().cancel(status.id)
    shared_queue().wait(status.id, timeout=120)
    expected = preset_config("quick", detector=arch, criterion="fpgm", rate=0.3)
    assert asdict(status.config) == asdict(expected)
    if arch == "extd":
        assert expected.schedule.total_epochs == 8


def test_results_ticks_follow_run_ids_through_filters_and_deletions(engine_dirs):
    """Tick a run in a filtered table, delete: that run goes, and only it."""
    from app_support.engine import table_key
    from pruning.store import ResultsStore

    store = ResultsStore()
    for run in store.runs():
        store.delete_run(run["id"])
    ids = {}
    for criterion in ("fpgm", "l1", "fpgm"):
        run_id = store.start_run("train", {"detector": "eresfd"}, detector="eresfd", criterion=criterion, rate=0.3)
        store.finish_run(run_id)
        ids.setdefault(criterion, []).append(run_id)
    at = open_page("pages/5_Results.py").run()
    assert not at.exception
    at.multiselect(key="results_criterion").set_value(["L1 norm"]).run()  # one row left: the l1 run
    # A tick left at position 2 of the unfiltered table must not reach this one-row table.
    at.session_state[table_key("results_table", ids["l1"])] = {"selection": {"rows": [2], "columns": [], "cells": []}}
    at.run()
    assert not at.exception and at.button(key="results_delete").disabled
    at.session_state[table_key("results_table", ids["l1"])] = {"selection": {"rows": [0], "columns": [], "cells": []}}
    at.run()
    assert at.button(key="results_delete").label == f"Delete run #{ids['l1'][0]}"
    at.button(key="results_delete").click().run()
    assert not at.exception
    assert sorted(r["id"] for r in store.runs()) == sorted(ids["fpgm"])


def test_the_form_keeps_its_choices_when_visiting_another_page(engine_dirs):
    """Choices in the form (as the browser sends them when the form is submitted) survive a visit elsewhere."""
    at = open_page("pages/2_Prune.py").run()
    at.session_state["prune_rate"] = 60
    at.session_state["prune_arch"] = "extd"
    at.run()
    at.switch_page("pages/4_Layers.py").run()
    at.switch_page("pages/2_Prune.py").run()
    assert not at.exception
    assert at.select_slider(key="prune_rate").value == 60 and at.radio(key="prune_arch").value == "extd"
