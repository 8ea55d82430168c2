"""The pruning engine (package ``pruning``) as the pages use it: criteria, one-shot pruning, filter
selections, the results store and the session queue. The one place that knows the engine's API;
every function degrades to "not available" when the engine is not installed."""

import copy
from pathlib import Path

import streamlit as st


def available(*names):
    """True when the engine provides every one of ``names`` (default: its criteria)."""
    import importlib

    try:
        engine = importlib.import_module("pruning")
        for name in names or ("CRITERIA",):
            getattr(engine, name)
    except (ImportError, AttributeError):
        return False
    return True


def oneshot_criteria():
    """The pruning criteria the engine offers ([] without the engine)."""
    if not available():
        return []
    from pruning import CRITERIA

    return list(CRITERIA)


def criterion_label(criterion):
    """A criterion's display name ("FPGM", "L1 norm", "Network slimming" ...)."""
    from pruning import CRITERIA

    return CRITERIA[criterion].label if criterion in CRITERIA else criterion.upper()


def one_shot(model, criterion, rate):
    """A masked copy of ``model``: ``criterion``'s one-shot filter selection at ``rate``, no training."""
    from pruning import one_shot_prune

    pruned = copy.deepcopy(model)
    one_shot_prune(pruned, criterion, rate)
    return pruned


def layer_selection(model, criterion, rate):
    """{layer: removed filter indices} that ``criterion`` picks at ``rate`` on ``model`` (one shot)."""
    from pruning import layer_selection as select

    return {layer: [int(i) for i in indices] for layer, indices in select(model, criterion, rate).items()}


# ---- results store -----------------------------------------------------------------------------

def open_store():
    """The engine's ResultsStore at its configured location, or None without the engine."""
    if not available("ResultsStore"):
        return None
    from pruning import ResultsStore

    return ResultsStore()


def store_location():
    store = open_store()
    return Path(store.path) if store is not None else None


def runs():
    """All runs of the results store as dicts (newest first); [] without the engine."""
    store = open_store()
    return [] if store is None else [dict(r) for r in store.runs()]


def delete_runs(run_ids):
    store = open_store()
    for run_id in run_ids:
        store.delete(run_id)


def pr_curves(run_id):
    """{subset: (recall, precision)} of an evaluated run, or None."""
    return open_store().pr_curves(run_id)


def is_wider(run):
    """True when the run was evaluated on WIDER FACE (not on the generated sample set)."""
    return bool(run.get("wider_root"))


def user_runs():
    """The evaluated runs as trade-off points (see facedet.viz.tradeoffs.run_points)."""
    points = []
    for run in runs():
        if run.get("ap_easy") is None:
            continue
        label = f"#{run['id']} {run['detector']} {str(run['criterion']).upper()} {round(run['rate'] * 100)}%"
        points.append(dict(label=label, detector=run["detector"], criterion=run["criterion"], rate=run["rate"],
                           easy=run["ap_easy"], medium=run["ap_medium"], hard=run["ap_hard"],
                           parameters=run.get("nonzero_parameters"), gflops=None, latency_ms=run.get("latency_ms"),
                           checkpoint=run.get("checkpoint"), wider=is_wider(run)))
    return points


def session_checkpoints(arch):
    """{label: checkpoint path} of the finished sessions for detector ``arch``, newest first."""
    found = {}
    for run in runs():
        if run.get("detector") == arch and run.get("status") == "finished" and run.get("checkpoint"):
            data = "WIDER FACE" if is_wider(run) else "sample set"
            label = f"#{run['id']} {str(run['criterion']).upper()} {round(run['rate'] * 100)} % ({data})"
            found[label] = run["checkpoint"]
    return found


# ---- background sessions -----------------------------------------------------------------------

@st.cache_resource
def session_queue():
    """The one queue of this server process: sessions run one at a time in the background and
    outlive page reloads (every browser tab sees the same queue)."""
    from pruning import SessionQueue

    return SessionQueue(store=open_store())


def start_session(detector, criterion, rate, epochs, finetune_epochs, wider_root=None):
    """Queue a prune-and-fine-tune session; returns its id."""
    from pruning import SessionConfig

    config = SessionConfig(detector=detector, criterion=criterion, rate=rate, epochs=epochs,
                           finetune_epochs=finetune_epochs, wider_root=wider_root, device="auto")
    return session_queue().submit(config)


def sessions():
    """Status of every session this server has run or queued, newest first."""
    return list(reversed(session_queue().sessions()))


def cancel_session(session_id):
    session_queue().cancel(session_id)
