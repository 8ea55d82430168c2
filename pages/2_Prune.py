"""Prune: quick prune-and-fine-tune sessions, run in the background by the pruning engine's queue."""

import json
import time
from pathlib import Path

import plotly.graph_objects as go
import streamlit as st

from app_support import engine
from app_support.engine import DETECTORS
from app_support.page import choose, group_rates_text, kept, read_only, setup, upload_limit
from facedet.errors import FacedetError
from pruning.paths import data_roots, wider_roots
from pruning.presets import preset_settings

IMAGE_TYPES = ("jpg", "jpeg", "png", "bmp", "webp", "tif", "tiff")

ACTIVE = ("queued", "running")
RATES = list(range(5, 95, 5))
CROPS = [160, 224, 320, 480, 640]

setup("Prune", "Prune a detector, fine-tune it and evaluate it, in the background")


def _device():
    import torch

    return f"CUDA ({torch.cuda.get_device_name(0)})" if torch.cuda.is_available() else "CPU (no CUDA GPU here: keep sessions short)"


DATA = {
    "photos": "Sample photos (real, unlabelled: the dense model teaches the pruned one)",
    "upload": "My photos (upload several; unlabelled, distilled)",
    "folder": "A photo folder on this server (from the allowed data roots)",
    "sample": "Generated sample set (labelled; NOT WIDER FACE, numbers not comparable)",
    "wider": "WIDER FACE (a root configured on the server: FACEDET_WIDER_ROOTS)",
}



def _use_search(search):
    """Fill the form with a search's detector, criterion and best group rates (before it is drawn)."""
    choose("prune_arch", search["detector"])
    choose("prune_criterion", search["criterion"])
    choose("prune_group_rates", search["text"])


form, board = st.columns([1, 1], gap="large")
with form:
    st.subheader("New session")
    # What Start did is said here, above the form, where it is seen without scrolling.
    message = st.container()
    try:
        searches = engine.searched_rates()
    except FacedetError as err:
        searches = []
        st.error(f"Searched rates unavailable: {err}")
    if searches:
        pick, use = st.columns([5, 1], vertical_alignment="bottom")
        by_id = {search["run_id"]: search for search in searches}
        found = pick.selectbox("Group rates found by a search (python -m pruning search)", list(by_id),
                               format_func=lambda run_id: by_id[run_id]["label"], key="prune_search_pick")
        use.button("Use", key="prune_use_search", on_click=_use_search, args=(by_id[found],),
                   help="Fill in the detector, criterion and group rates of this search's best trial")
    with st.form("new_session", border=True):
        # Two columns (the model; the data and the schedule), so that Start fits a 1080-px screen.
        # Each choice is kept when the user visits another page (Streamlit forgets undrawn widgets).
        model_column, data_column = st.columns(2, gap="medium")
        with model_column:
            arch = kept(st.radio, "Detector", list(DETECTORS), format_func=DETECTORS.get, horizontal=True,
                        key="prune_arch", default=next(iter(DETECTORS)), allowed=DETECTORS)
            criteria = engine.oneshot_criteria()
            criterion = kept(st.selectbox, "Criterion", criteria, format_func=engine.criterion_label,
                             key="prune_criterion", default="fpgm" if "fpgm" in criteria else criteria[0],
                             allowed=criteria)
            rate = kept(st.select_slider, "Pruning rate (per layer)", RATES, format_func=lambda r: f"{r} %",
                        key="prune_rate", default=30, allowed=RATES)
            groups_text = group_rates_text(st, arch, "prune_group_rates")
            with st.expander("Schedule (the quick preset's; paper: 200 + 10 epochs)"):
                # Empty: the preset's for the chosen detector (EXTD's session is shorter).
                presets = {name: preset_settings("quick", key) for key, name in DETECTORS.items()}
                epochs = kept(st.number_input, "SFP epochs", 1, 200, key="prune_epochs", default=None,
                              placeholder="preset: " + ", ".join(f"{n} {p['epochs']}" for n, p in presets.items()),
                              help="Soft Filter Pruning: the rate ramps up over the first two thirds; "
                                   "filters are re-selected and zeroed after every epoch. Empty: the quick preset's.")
                finetune_epochs = kept(st.number_input, "Fine-tune epochs", 0, 50, key="prune_finetune", default=None,
                                       placeholder="preset: " + ", ".join(f"{n} {p['finetune_epochs']}"
                                                                          for n, p in presets.items()),
                                       help="With the masks frozen. Empty: the quick preset's.")
                # "preset": the chosen detector's (EXTD trains on smaller crops, more of them).
                crop_size = kept(st.select_slider, "Training crop (px)", ("preset", *CROPS), key="prune_crop",
                                 default="preset", allowed=("preset", *CROPS),
                                 format_func=lambda c: "preset: " + ", ".join(
                                     f"{n} {p['crop_size']}" for n, p in presets.items()) if c == "preset" else str(c),
                                 help="The side of the square training crops. Preset: the quick preset's for the "
                                      "detector. Any size keeps the preset's crops per photo (" + ", ".join(
                                          f"{n} {p['crops_per_photo']}" for n, p in presets.items())
                                      + "), so larger crops make longer sessions.")
        with data_column:
            data = kept(st.radio, "Training data", list(DATA), format_func=DATA.get, key="prune_data",
                        default=next(iter(DATA)), allowed=DATA)
            uploads = st.file_uploader("Photos to train on (for 'My photos')", type=list(IMAGE_TYPES),
                                       accept_multiple_files=True, key="prune_uploads", help=upload_limit())
            roots = data_roots()
            folder = st.selectbox("Photo folder (for 'A photo folder'; set FACEDET_DATA_ROOTS to offer others)",
                                  roots, format_func=str, key="prune_folder") if roots else None
            # Chosen from the server's allow-list, never typed: a visitor cannot probe the server's folders.
            wider_choices = wider_roots()
            wider_root = st.selectbox("WIDER FACE root (for 'WIDER FACE'; set FACEDET_WIDER_ROOTS to offer one)",
                                      wider_choices, format_func=str, key="prune_wider_root") if wider_choices else None
        st.caption(f"Runs on {_device()}. The default session takes about 2 minutes for EResFD on a 2-core CPU, "
                   "about 5 for EXTD (fewer epochs). On our held-out photos (README) it brings back 19–20 of 20 faces "
                   "at 30 %; at 50 % about 17–18 for EResFD and 18–19 for EXTD, with more false boxes.")
        start = st.form_submit_button("Start", type="primary", disabled=read_only())
    if start:
        options = {}
        if epochs is not None:
            options.update(epochs=int(epochs), ramp_epochs=max(1, round(int(epochs) * 2 / 3)))
        if finetune_epochs is not None:
            options["finetune_epochs"] = int(finetune_epochs)
        if crop_size != "preset":
            options["crop_size"] = int(crop_size)
        source, photos, wider = ("photos", None, None)
        error = None
        try:
            groups = engine.group_rates(arch, groups_text)
        except FacedetError as err:
            error = f"Group rates: {err}"
        else:
            if groups is not None:
                options["layer_rates"] = engine.layer_rates_of_groups(arch, groups)
        if error:
            pass
        elif data == "upload":
            if not uploads:
                error = "Upload a few photos first (or choose another training data)."
            else:
                try:
                    photos = str(engine.save_uploads([(f.name, f.getvalue()) for f in uploads]))
                except FacedetError as err:  # a full disk, read-only mode
                    error = f"Cannot keep the uploaded photos: {err}"
        elif data == "folder":
            if folder is None:
                error = "No data roots are configured (FACEDET_DATA_ROOTS)."
            else:
                photos = str(folder)
        elif data == "sample":
            source = "sample"
        elif data == "wider":
            source = "wider"
            if wider_root is None:
                error = "No WIDER FACE root is configured on this server (FACEDET_WIDER_ROOTS)."
            else:
                wider = str(wider_root)
        if error:
            message.error(error)
        else:
            try:
                engine.start_session(arch, criterion, rate / 100, source, photos=photos, wider_root=wider, **options)
            except FacedetError as err:
                message.error(f"Cannot start: {err}")
            else:
                message.success("Session queued: follow it on the right.")


@st.cache_resource
def _step_losses():
    """{session id: [(epoch + step / steps, loss), ...]}: the running sessions' step losses, sampled at
    each poll of the board; kept for the whole server process so that a page reload keeps them."""
    return {}


def _record(status):
    p = status.progress
    if p is not None and p.kind == "step" and p.loss is not None and p.steps:
        points = _step_losses().setdefault(status.id, [])
        x = p.epoch + p.step / p.steps
        if not points or points[-1][0] != x:
            points.append((x, p.loss))
    return _step_losses().get(status.id, [])


def _loss_chart(status, steps):
    fig = go.Figure()
    if steps:
        fig.add_trace(go.Scatter(x=[x for x, _ in steps], y=[y for _, y in steps], mode="lines+markers",
                                 name="step loss (sampled)", line=dict(color="#0072B2", width=2), marker=dict(size=5)))
    if status.losses:
        fig.add_trace(go.Scatter(x=list(range(1, len(status.losses) + 1)), y=status.losses, mode="lines+markers",
                                 name="epoch mean", line=dict(color="#D55E00", width=3), marker=dict(size=9)))
    epochs = status.config.schedule.total_epochs
    fig.update_layout(height=240, margin=dict(l=50, r=10, t=10, b=40), template="plotly_white", font=dict(size=13),
                      xaxis=dict(title="epoch", range=[0, epochs], dtick=1), yaxis_title="loss",
                      legend=dict(orientation="h", y=1.15), showlegend=True)
    return fig


def _progress(p):
    """(fraction done, text) of a pruning.train.Progress event (epochs count from 0, steps from 1)."""
    if p.kind == "stage":
        return 1.0, f"{p.message or p.phase}…"
    if p.kind == "refit":  # pruning.reconstruct after a pruning step, between epochs
        return min(p.epoch / max(1, p.epochs), 1.0), f"{p.message}…"
    done = (p.epoch + (p.step / p.steps if p.steps else 0)) / max(1, p.epochs)
    loss = f" · loss {p.loss:.3f}" if p.loss is not None else ""
    return min(max(done, 0.0), 1.0), (f"epoch {p.epoch + 1}/{p.epochs} ({p.phase}) · step {p.step}/{p.steps}"
                                      f"{loss} · {_eta(p.eta_s)}")


def _eta(seconds):
    if seconds is None:
        return "ETA —"
    minutes, secs = divmod(int(seconds), 60)
    return f"ETA {minutes} min {secs:02d} s" if minutes else f"ETA {secs} s"


def _resume_errors():
    """{Resume button key: why it failed} for this browser session (a callback cannot draw)."""
    return st.session_state.setdefault("prune_resume_errors", {})


def _resume(resume, target, key):
    """A Resume button's action: ``resume(target)`` (a session id or a run id), any refusal kept to be shown."""
    try:
        resume(target)
    except FacedetError as err:
        _resume_errors()[key] = str(err)


def _resume_button(column, key, resume, target, help):
    column.button("Resume", key=key, on_click=_resume, args=(resume, target, key), type="primary",
                  disabled=read_only(), help=help)


def _interrupted_runs():
    """The store's interrupted runs that no session here holds (a server that stopped left them)."""
    runs = engine.interrupted_runs()
    if runs:
        st.caption("Interrupted runs of the results store (cancelled, failed, or crashed when their server "
                   "stopped): Resume goes on from their last complete epoch.")
    for run in runs:
        with st.container(border=True):
            head, button = st.columns([4, 1])
            head.markdown(f"Run {engine.run_label(run)} · {run.get('epochs_done') or 0} epochs done · "
                          f"**{run['status']}**" + (f"  \n{run['message']}" if run.get("message") else ""))
            key = f"resume-run-{run['id']}"
            _resume_button(button, key, engine.resume_run, run["id"], "Go on from its last complete epoch, in the same run.")
            if key in _resume_errors():
                st.error(f"Cannot resume: {_resume_errors()[key]}")


def session_board():
    """Ended sessions are drawn once per page run (folded, and can be cleared from this board);
    only the queued and running ones refresh every second, in a fragment, so idle cards cost nothing."""
    sessions = [s for s in engine.sessions() if s.id not in _cleared()]
    if not sessions:
        st.info("The ended sessions are cleared from this board; their runs are in Results." if _cleared() else
                "No sessions yet. Start one on the left; it keeps running if you reload or leave the page.")
    active = [s.id for s in sessions if s.state in ACTIVE]
    if active:
        _live_cards(tuple(active))
    else:
        _watch_for_new(tuple(s.id for s in sessions))
    ended = [s for s in sessions if s.state not in ACTIVE]
    if ended:
        if st.button(f"Clear the {len(ended)} ended session{'s' if len(ended) > 1 else ''} from this board",
                     key="clear_ended", help="Their runs stay in the results store (Results, Compare, Trade-offs)."):
            _cleared().update(s.id for s in ended)
            st.rerun()
        for position, s in enumerate(ended):
            with st.expander(_card_title(s), expanded=position == 0):  # the latest one open
                _session_card(s)
    _interrupted_runs()


def _rates(config):
    """``30 %``, or the group (or per-layer) rates of a session."""
    if config.layer_rates is not None:
        return engine.describe_rates(config.detector, config.layer_rates)
    return f"{round(config.rate * 100)} %"


def _cleared():
    """Ids of ended sessions this browser session cleared from the board."""
    return st.session_state.setdefault("prune_cleared", set())


@st.fragment(run_every=1.0)
def _live_cards(active_ids):
    sessions = {s.id: s for s in engine.sessions()}
    if any(sessions[i].state not in ACTIVE for i in active_ids if i in sessions) or \
            any(s.state in ACTIVE and i not in active_ids for i, s in sessions.items()):
        st.rerun()  # a session ended or a new one came: redraw the whole board once
    for session_id in active_ids:
        with st.container(border=True):
            st.markdown(_card_title(sessions[session_id]))
            _session_card(sessions[session_id])


@st.fragment(run_every=5.0)
def _watch_for_new(known_ids):
    """Nothing is running: look for sessions started elsewhere (another browser tab) now and then."""
    if any(s.id not in known_ids and s.id not in _cleared() for s in engine.sessions()):
        st.rerun()


def _card_title(s):
    """``**EResFD FPGM 30 %** · run #12 · started 10:31:02 · **running**``."""
    config = s.config
    run = f"run #{s.run_id}" if s.run_id is not None else "no run yet"
    when = time.strftime("%H:%M:%S", time.localtime(s.started_at or s.submitted_at))
    return (f"**{DETECTORS[config.detector]} {engine.criterion_label(config.criterion)} {_rates(config)}**"
            f" · {run} · {'started' if s.started_at else 'queued'} {when}{' · resumed' if s.resumed else ''}"
            f" · **{s.state}**")


def _session_card(s):
    config = s.config
    head, button = st.columns([4, 1])
    data = ("WIDER FACE" if config.wider else "photos, distilled" if config.photos
            else "sample set, NOT WIDER FACE")
    head.markdown(f"{config.schedule.epochs} SFP + {config.schedule.finetune_epochs} fine-tune epochs · {data}")
    resumable = engine.can_resume(s.id)
    if s.state in ACTIVE:
        button.button("Cancel", key=f"cancel-{s.id}", on_click=engine.cancel_session, args=(s.id,),
                      disabled=read_only())
    elif resumable:
        _resume_button(button, f"resume-{s.id}", engine.resume_session, s.id,
                       "Go on from its last complete epoch, in the same run.")
    if s.state == "cancelled" and resumable:
        st.caption("Stopped by the user; every complete epoch is saved: Resume goes on from the last one.")
    if f"resume-{s.id}" in _resume_errors():
        st.error(f"Cannot resume: {_resume_errors()[f'resume-{s.id}']}")
    steps = _record(s)
    if s.state == "running" and s.progress is not None:
        st.progress(*_progress(s.progress))
    elif s.state == "queued":
        st.caption("Waiting for the session before it to finish (one session runs at a time).")
    if steps or s.losses:
        st.plotly_chart(_loss_chart(s, steps), width="stretch", theme=None,
                        key=f"loss-{s.id}-{len(steps)}-{len(s.losses)}")
    figures = s.figures or {}
    if s.state == "finished" and figures.get("ap_easy") is not None:
        st.success(f"AP easy / medium / hard: {figures['ap_easy']:.3f} / {figures['ap_medium']:.3f} / "
                   f"{figures['ap_hard']:.3f}" + ("" if config.wider else " (sample set, not WIDER FACE)")
                   + f" · {figures.get('nonzero_parameters', 0):,} nonzero parameters · run #{s.run_id} "
                   "is now in Compare, Trade-offs and Results.")
    if s.state == "finished" and figures.get("agreement_ap") is not None:
        st.success(f"Agreement with the dense model on {len(json.loads(figures['agreement_photos']))} held-out "
                   f"photos: AP {figures['agreement_ap']:.3f}, finds {figures['agreement_recall'] * 100:.0f} % "
                   f"of its faces · {figures.get('nonzero_parameters', 0):,} nonzero parameters · "
                   f"run #{s.run_id} is now in Compare, Trade-offs and Results.")
    if s.error:
        st.error(s.error)


with board:
    st.subheader("Sessions")
    session_board()
