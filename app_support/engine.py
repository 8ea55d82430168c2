"""The pruning engine (package ``pruning``) as the pages use it: criteria, one-shot pruning, filter
selections, the results store and the session queue: the one place that knows the engine's API
(``pruning`` ships with the project, so there is no "not installed" case)."""

import copy
from pathlib import Path

from facedet.models import DETECTORS as _SPECS


def oneshot_criteria():
    """The pruning criteria the engine offers."""
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


def group_rates(arch, text):
    """The group rates typed as ``r1,...,r6`` for ``arch`` (a tuple), None for an empty field; a
    one-line FacedetError for a wrong count, a rate out of [0, 1) or text that is no numbers."""
    from pruning.rates import group_layer_rates, parse_group_rates

    if not text or not text.strip():
        return None
    rates = tuple(parse_group_rates(text))
    group_layer_rates(arch, rates)  # checks the count and every rate against the detector's groups
    return rates


def layer_rates_of_groups(arch, rates):
    """``{conv name: rate}`` of ``arch``'s prunable convs for group rates (what the criteria take)."""
    from pruning.rates import group_layer_rates

    return group_layer_rates(arch, rates)


def group_rates_help(arch):
    """What each of ``arch``'s layer groups holds, for a field's help text."""
    from facedet.models import detector_spec

    groups = detector_spec(arch).layer_groups
    return "; ".join(f"{i}: {', '.join(groups[i - 1])}" for i in range(1, len(groups) + 1))


def describe_rates(arch, rates):
    """``30 %``, ``groups 0.2/0/…`` or ``per layer (…)``: how the pages name rates."""
    from pruning.rates import describe_rates as describe

    return describe(arch, rates)


def rate_effects(model, criterion, rates):
    """``{rate: RateEffect}``: the filters each one-shot rate really removes, and the rates that make the same model."""
    from pruning import rate_effects as effects

    return effects(model, criterion, rates)


# ---- results store -----------------------------------------------------------------------------

def open_store():
    """The engine's ResultsStore at its configured location."""
    from pruning import ResultsStore

    return ResultsStore()


def store_location():
    """Where the results store is (without opening, let alone creating, it)."""
    from pruning.paths import results_db_path

    return Path(results_db_path())


def runs():
    """All runs of the results store as dicts (newest first)."""
    return open_store().runs()


def table_key(prefix, run_ids):
    """Widget key of a table of runs. Streamlit remembers ticked rows by position, so a table
    listing other runs (after a filter change or a deletion) gets a fresh widget: a tick can never
    move onto another run."""
    import hashlib

    return f"{prefix}_{hashlib.sha1(','.join(map(str, run_ids)).encode()).hexdigest()[:12]}"


def delete_runs(run_ids):
    _refuse_when_read_only()
    store = open_store()
    for run_id in run_ids:
        store.delete_run(int(run_id))


def is_wider(run):
    """True when the run trained and was evaluated on WIDER FACE (not on the generated sample set)."""
    return bool(run.get("config", {}).get("wider"))


def run_data(run):
    """What a run trained on, as the pages name it: WIDER FACE, photos (distilled) or the sample set."""
    config = run.get("config", {})
    if config.get("wider"):
        return "WIDER FACE"
    if config.get("photos"):
        return "photos, distilled"
    return "sample set"


def agreement_text(run):
    """``agreement with the dense model: AP 0.86 on 6 held-out photos`` or None."""
    import json

    if run.get("agreement_ap") is None:
        return None
    photos = len(json.loads(run.get("agreement_photos") or "[]"))
    return f"agreement with the dense model: AP {run['agreement_ap']:.3f} on {photos} held-out photos"


# The detectors as the pages offer them: EResFD, the smaller and quicker, first.
DETECTORS = {name: spec.display_name for name, spec in _SPECS.items()}  # the registry's order: EResFD first


def run_label(run, data=True):
    """``#12 EResFD FPGM 30 % (sample set)`` (or ``… groups 0.2/0/… …`` for group rates): how the pages name a run."""
    rates = f"{round(run['rate'] * 100)} %"
    if run.get("layer_rates"):
        from pruning.rates import run_rates

        rates = run_rates(run)
    label = f"#{run['id']} {DETECTORS.get(run['detector'], run['detector'])} {criterion_label(run['criterion'])} {rates}"
    return f"{label} ({run_data(run)})" if data else label


def run_curves(run_id):
    """``{setting: facedet.wider.curves.Curve}`` the run's evaluation stored, or None (not
    evaluated, or recorded before runs kept their curves)."""
    from facedet.wider.curves import read_curves

    document = open_store().run_curves(run_id)
    return None if document is None else read_curves(document)


def user_runs():
    """The evaluated runs as trade-off points (see facedet.viz.tradeoffs.run_points)."""
    return [dict(label=run_label(run), detector=run["detector"], criterion=run["criterion"], rate=run["rate"],
                 easy=run["ap_easy"], medium=run["ap_medium"], hard=run["ap_hard"],
                 agreement=run.get("agreement_ap"), parameters=run.get("nonzero_parameters"), gflops=None,
                 latency_ms=None, checkpoint=run.get("checkpoint"), wider=is_wider(run))
            for run in runs() if (run.get("ap_easy") is not None or run.get("agreement_ap") is not None)
            and run.get("checkpoint")]


def session_checkpoints(arch):
    """{label: finished run} of the sessions for detector ``arch`` that left a checkpoint, newest first."""
    return {run_label(run): run for run in runs()
            if run.get("detector") == arch and run.get("status") == "finished" and run.get("checkpoint")}


def searched_rates(detector=None):
    """The best group rates of the store's searches (``python -m pruning search``), newest first,
    each with a ``label`` and ``text`` (the group-rates field's form)."""
    from pruning.search import group_rates_text, stored_searches

    found = []
    for search in stored_searches(open_store(), detector):
        target = search["target_sparsity"]
        reached = search["sparsity"]
        label = (f"search #{search['run_id']}: {DETECTORS.get(search['detector'], search['detector'])} "
                 f"{criterion_label(search['criterion'])}, target sparsity "
                 f"{'?' if target is None else f'{target * 100:g} %'}, reached "
                 f"{'?' if reached is None else f'{reached * 100:.1f} %'} ({search['trials']} trials, {search['status']})")
        found.append(dict(search, label=label, text=group_rates_text(search["group_rates"])))
    return found


# ---- background sessions -----------------------------------------------------------------------

def session_queue():
    """The one queue of this server process: sessions run one at a time in the background and
    outlive page reloads (every browser tab sees the same queue)."""
    from pruning.session import shared_queue

    return shared_queue()


def start_session(detector, criterion, rate, data="photos", photos=None, wider_root=None, **options):
    """Queue a prune-and-fine-tune session of the quick preset; returns its id. ``data``: photos
    (``photos`` folder, default the project's sample photos), sample (the generated set) or wider.
    ``options``: TrainConfig settings that differ from the preset."""
    _refuse_when_read_only()
    from pruning import SessionConfig

    config = SessionConfig(detector=detector, criterion=criterion, rate=rate, data=data, photos=photos,
                           wider=wider_root, options=options)
    return session_queue().submit(config)


def save_uploads(files):
    """Write uploaded photos (``(name, bytes)`` pairs) into a fresh folder; returns it."""
    _refuse_when_read_only()
    import re
    import tempfile

    from pruning.paths import uploads_dir

    from facedet.atomic import write_bytes

    uploads_dir().mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(dir=uploads_dir(), prefix="upload-"))
    for i, (name, data) in enumerate(files):
        safe = re.sub(r"[^A-Za-z0-9._-]", "_", Path(name).name)[-80:] or "photo"
        write_bytes(folder / f"{i:03d}-{safe}", data)  # a full disk leaves no half photo behind
    return folder


def sessions():
    """``pruning.session.SessionStatus`` of every session this server has run or queued, newest first."""
    return session_queue().sessions()


def cancel_session(session_id):
    _refuse_when_read_only()
    session_queue().cancel(session_id)


def can_resume(session_id):
    """True when a cancelled or failed session left a run that Resume can continue."""
    return session_queue().resumable(session_id)


def resume_session(session_id):
    """Queue the continuation of an interrupted session from its last complete epoch; returns the new id."""
    _refuse_when_read_only()
    queue = session_queue()
    return queue.resume_run_dir(queue.status(session_id).run_dir)


def interrupted_runs():
    """Runs of the store that stopped early (cancelled, failed, crashed with an earlier server) and that
    no session of this server holds: Resume can continue them."""
    return session_queue().interrupted_runs()


def resume_run(run_id):
    """Queue the continuation of an interrupted run of the store; returns the new session's id."""
    _refuse_when_read_only()
    return session_queue().resume(run_id)


def _refuse_when_read_only():
    from app_support.page import READ_ONLY_NOTE, read_only
    from facedet.errors import FacedetError

    if read_only():
        raise FacedetError(READ_ONLY_NOTE)
