"""Prune: quick prune-and-fine-tune sessions, run in the background by the pruning engine's queue."""

from pathlib import Path

import plotly.graph_objects as go
import streamlit as st

from app_support import engine
from app_support.page import setup

DETECTORS = {"eresfd": "EResFD", "extd": "EXTD"}
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
        epochs = sfp.number_input("SFP epochs", 1, 200, 2, key="prune_epochs",
                                  help="Soft Filter Pruning: train, re-select and zero the filters every few epochs (paper: 200).")
        finetune_epochs = finetune.number_input("Fine-tune epochs", 0, 20, 1, key="prune_finetune",
                                                help="With the masks frozen (paper: 10).")
        data = st.radio("Training and evaluation data", ["sample", "wider"], key="prune_data", format_func={
            "sample": "Sample set (generated here; NOT WIDER FACE, numbers not comparable)",
            "wider": "WIDER FACE (give its root folder)"}.get)
        wider_root = st.text_input("WIDER FACE root", key="prune_wider_root",
                                   placeholder="folder holding WIDER_train/, WIDER_val/, wider_face_split/")
        st.caption(f"Runs on {_device()}.")
        start = st.form_submit_button("Start", type="primary")
    if start:
        if data == "wider" and not (wider_root and Path(wider_root).expanduser().is_dir()):
            st.error(f"WIDER FACE root not found: {wider_root or '(empty)'}")
        else:
            session_id = engine.start_session(arch, criterion, rate / 100, int(epochs), int(finetune_epochs),
                                              str(Path(wider_root).expanduser()) if data == "wider" else None)
            st.success(f"Session {session_id} queued.")


def _loss_chart(session):
    steps, losses = zip(*session["losses"]) if session.get("losses") else ((), ())
    fig = go.Figure(go.Scatter(x=steps, y=losses, mode="lines", line=dict(color="#0072B2", width=2)))
    fig.update_layout(height=220, margin=dict(l=50, r=10, t=10, b=40), template="plotly_white",
                      xaxis_title="step", yaxis_title="loss", font=dict(size=13))
    return fig


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
        with st.container(border=True):
            head, button = st.columns([4, 1])
            data = "WIDER FACE" if s.get("wider_root") else "sample set, NOT WIDER FACE"
            head.markdown(f"**Session {s['id']}** · {DETECTORS.get(s['detector'], s['detector'])} "
                          f"{str(s['criterion']).upper()} {round(s['rate'] * 100)} % · {data} · **{s['state']}**")
            if s["state"] in ACTIVE and button.button("Cancel", key=f"cancel-{s['id']}"):
                engine.cancel_session(s["id"])
            if s["state"] == "running":
                st.progress(min(max(s.get("progress") or 0.0, 0.0), 1.0),
                            text=f"epoch {s.get('epoch', 0)}/{s.get('epochs', '?')} · {s.get('phase', '')} · {_eta(s.get('eta_s'))}")
            if s.get("losses"):
                st.plotly_chart(_loss_chart(s), width="stretch", theme=None, key=f"loss-{s['id']}-{len(s['losses'])}")
            if s["state"] == "finished" and s.get("ap_easy") is not None:
                st.success(f"AP easy / medium / hard: {s['ap_easy']:.3f} / {s['ap_medium']:.3f} / {s['ap_hard']:.3f}"
                           + ("" if s.get("wider_root") else " (sample set, not WIDER FACE)")
                           + " — now in Compare, Trade-offs and Results.")
            if s.get("error"):
                st.error(s["error"])


with board:
    st.subheader("Sessions")
    session_board()
