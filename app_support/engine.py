"""The pruning engine (package ``pruning``) as the pages use it: criteria, one-shot pruning, filter
selections, the results store and the session queue. The one place that knows the engine's API."""

from pathlib import Path


def open_store():
    """The pruning engine's ResultsStore at its configured location, or None without the engine."""
    try:
        from pruning import ResultsStore
    except ImportError:
        return None
    return ResultsStore()


def store_location():
    store = open_store()
    return Path(store.path) if store is not None else None


def user_runs():
    """The finished, evaluated runs as trade-off points (see facedet.viz.tradeoffs.run_points)."""
    store = open_store()
    if store is None:
        return []
    return []


def session_checkpoints(arch):
    """{label: checkpoint path} of the finished sessions for detector ``arch``."""
    return {}


def oneshot_criteria():
    """The pruning criteria the engine offers for one-shot pruning ([] without the engine)."""
    try:
        from pruning import CRITERIA
    except ImportError:
        return []
    return list(CRITERIA)


def layer_selection(model, arch, criterion, rate):
    """{layer: removed filter indices} that ``criterion`` picks at ``rate`` on ``model`` (one shot)."""
    from pruning import layer_selection as select

    return select(model, arch, criterion, rate)
