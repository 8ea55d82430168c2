"""Prune: quick prune-and-fine-tune sessions, run in the background by the pruning engine's queue."""

from pathlib import Path

import plotly.graph_objects as go
import streamlit as st

from app_support import engine
from app_support.engine import DETECTORS
from app_support.page import setup
from facedet.errors import FacedetError

ACTIVE = ("queued", "running")

setup("Prune", "Prune a detector, fine-tune it and evaluate it, in the background")
if not engine.available("SessionQueue", "SessionConfig", "ResultsStore"):
    st.warning("The pruning engine's sessions (package `pruning`) are not available in this installation.")
    st.stop()


def _device():
    import torch

    return f"CUDA ({torch.cuda.get_device_name(0)})" if torch.cuda.is_available() else "CPU (no CUDA GPU here: keep sessions short)"


form, board = st.columns([2, 3], gap="large")
with form:
    st.subheader("New session")
    with st.form("new_session", border=True):
        arch = st.radio("Detector", list(DETECTORS), format_func=DETECTORS.get, horizontal=True, key="prune_arch")
        criterion = st.selectbox("Criterion", engine.oneshot_criteria(), format_func=engine.criterion_label,
                                 key="prune_criterion")
        rate = st.select_slider("Pruning rate (per layer)", list(range(5, 95, 5)), value=30,
                                format_func=lambda r: f"{r} %", key="prune_rate")
        sfp, finetune = st.columns(2)
        epochs = sfp.number_input("SFP epochs", 1, 200, 10, key="prune_epochs",
                                  help="Soft Filter Pruning: train, re-select and zero the filters every few epochs "
                                       "(paper: 200). On a 2-core CPU, 10 + 10 epochs take about half a minute for "
                                       "EResFD and about 11 minutes for EXTD.")
        finetune_epochs = finetune.number_input("Fine-tune epochs", 0, 20, 10, key="prune_finetune",
                                                help="With the masks frozen (paper: 10).")
        data = st.radio("Training and evaluation data", ["sample", "wider"], key="prune_data", format_func={
            "sample": "Sample set (generated here; NOT WIDER FACE, numbers not comparable)",
            "wider": "WIDER FACE (give its root folder)"}.get)
        wider_root = st.text_input("WIDER FACE root", key="prune_wider_root",
                                   placeholder="folder holding WIDER_train/, WIDER_val/, wider_face_split/")
        with st.expander("Quick-run settings"):
            sizes = st.columns(3)
            train_images = sizes[0].number_input("Training images (first N)", 1, 20000, 16, key="prune_train_images")
            eval_images = sizes[1].number_input("Evaluation images (first N, 0 = all)", 0, 5000, 0,
                                                key="prune_eval_images")
            crop = sizes[2].select_slider("Training crop (px)", [128, 160, 224, 320, 480, 640], value=320,
                                          key="prune_crop")
        st.caption(f"Runs on {_device()}.")
        start = st.form_submit_button("Start", type="primary")
    if start:
        if data == "wider" and not (wider_root and Path(wider_root).expanduser().is_dir()):
            st.error(f"WIDER FACE root not found: {wider_root or '(empty)'}")
        else:
            try:
                engine.start_session(arch, criterion, rate / 100, int(epochs), int(finetune_epochs),
                                     str(Path(wider_root).expanduser()) if data == "wider" else None,
                                     train_images=int(train_images), eval_images=int(eval_images) or None,
                                     crop_size=int(crop))
            except FacedetError as err:
                st.error(f"Cannot start: {err}")
            else:
                st.success("Session queued: follow it on the right.")


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
    epochs = status.config.epochs + status.config.finetune_epochs
    fig.update_layout(height=240, margin=dict(l=50, r=10, t=10, b=40), template="plotly_white", font=dict(size=13),
                      xaxis=dict(title="epoch", range=[0, epochs], dtick=1), yaxis_title="loss",
                      legend=dict(orientation="h", y=1.15), showlegend=True)
    return fig


def _progress(p):
    """(fraction done, text) of a pruning.train.Progress event (epochs count from 0, steps from 1)."""
    if p.kind == "stage":
        return 1.0, f"{p.message or p.phase}…"
    done = (p.epoch + (p.step / p.steps if p.steps else 0)) / max(1, p.epochs)
    loss = f" · loss {p.loss:.3f}" if p.loss is not None else ""
    return min(max(done, 0.0), 1.0), (f"epoch {p.epoch + 1}/{p.epochs} ({p.phase}) · step {p.step}/{p.steps}"
                                      f"{loss} · {_eta(p.eta_s)}")


def _eta(seconds):
    if seconds is None:
        return "ETA —"
    minutes, secs = divmod(int(seconds), 60)
    return f"ETA {minutes} min {secs:02d} s" if minutes else f"ETA {secs} s"


@st.fragment(run_every=1.0)
def session_board():
    sessions = engine.sessions()
    if not sessions:
        st.info("No sessions yet. Start one on the left; it keeps running if you reload or leave the page.")
        return
    for s in sessions:
        config = s.config
        with st.container(border=True):
            head, button = st.columns([4, 1])
            data = "WIDER FACE" if config.wider else "sample set, NOT WIDER FACE"
            head.markdown(f"**{DETECTORS[config.detector]} {engine.criterion_label(config.criterion)} "
                          f"{round(config.rate * 100)} %** · {config.epochs} SFP + {config.finetune_epochs} fine-tune "
                          f"epochs · {data} · **{s.state}**")
            if s.state in ACTIVE:
                button.button("Cancel", key=f"cancel-{s.id}", on_click=engine.cancel_session, args=(s.id,))
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
            if s.error:
                st.error(s.error)


with board:
    st.subheader("Sessions")
    session_board()
