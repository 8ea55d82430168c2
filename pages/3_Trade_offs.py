"""Trade-offs: WIDER FACE AP against model cost, as in the paper's Figures 2-3."""

import streamlit as st

from app_support import cached
from app_support.facts import latency_stats, measure_latency
from app_support.page import chart_font, kept, setup
from app_support.engine import user_runs
from facedet.errors import FacedetError
from facedet.viz.tradeoffs import (AGREEMENT, COSTS, SAMPLE_SET, SUBSETS, VIEWS, points_outside, tradeoff_figure,
                                  tradeoff_table)
from facedet.peers import peer_names
from facedet.weights import BFPGM, PRETRAINED

setup("Trade-offs", "Accuracy against model cost: the paper's Figures 2–3, with FLOPs and latency too")

controls = st.columns([3.2, 2.6, 2.4, 1.2], vertical_alignment="bottom")
# Kept when the user visits another page (Streamlit forgets the state of widgets it does not draw).
ACCURACY = SUBSETS + (AGREEMENT, SAMPLE_SET)  # each on its own axis: WIDER FACE numbers never share one with others
subset = kept(controls[0].segmented_control, "Accuracy (WIDER FACE subsets first)", ACCURACY, required=True, key="subset",
              default="easy", allowed=ACCURACY,
              format_func=lambda s: {AGREEMENT: "Agreement", SAMPLE_SET: "Sample set"}.get(s, s.capitalize()),
              help="WIDER FACE val AP on its Easy, Medium or Hard subset; your runs' agreement with the dense model "
                   "on held-out photos; or AP on the generated sample set. Each has an axis of its own.")
cost = kept(controls[1].segmented_control, "Model cost (log axis)", list(COSTS), required=True, key="cost",
            default="parameters", allowed=COSTS,
            format_func={"parameters": "Parameters", "gflops": "FLOPs at 640×480", "latency_ms": "Latency here"}.get)
view = kept(controls[2].segmented_control, "View", list(VIEWS), required=True, key="tradeoff_view", default="zoom",
            allowed=VIEWS, format_func=VIEWS.get,
            help="Around the paper's models, where its curves are readable (the chart's autoscale button also "
                 "shows every point), or every point at once.")
show_pareto = kept(controls[3].toggle, "Pareto front", key="show_pareto", default=True,
                   help="Highlight the models no other model beats (cheaper and at least as accurate).")

try:
    runs = user_runs()
except FacedetError as err:  # a damaged results store: the published models are still shown
    st.error(f"Your runs are not shown: {err}")
    runs = []
costs = {}
# Every model this machine has a file of: the paper's and B-FPGM's checkpoints, and the peers (YuNet).
MODELS = {**{name: cached.published_key(name) for name in (*PRETRAINED, *BFPGM)},
          **{name: cached.peer_key(name) for name in peer_names()}}
# Latency is timed for the models drawn on the AP axes: B-FPGM's have no AP here (no published one in our sources).
TIMED = {name: key for name, key in MODELS.items() if name not in BFPGM}
if cost == "gflops":
    bar = st.progress(0.0, text="Counting the FLOPs of the published checkpoints…")
    try:
        for i, (name, key) in enumerate(MODELS.items()):
            costs[name] = {"gflops": cached.flops(key)}
            bar.progress((i + 1) / len(MODELS), text=f"Counting FLOPs: {name}")
    except FacedetError as err:  # a file missing or damaged: what was counted is still shown
        st.error(f"Not every model's FLOPs could be counted: {err}")
    bar.empty()
    for run in runs:
        if run.get("checkpoint") and run.get("gflops") is None:
            try:
                run["gflops"] = cached.flops(cached.file_key(run["checkpoint"]))
            except FacedetError as err:  # its checkpoint was moved or deleted: the run has no FLOPs point
                st.caption(f"{run['label']} has no FLOPs point: {err}")
elif cost == "latency_ms":
    models = {key: name for name, key in TIMED.items()}
    models.update({cached.file_key(run["checkpoint"]): run["label"] for run in runs})
    # Each model is timed once on this machine and remembered (also across restarts, and what
    # `facedet bench` measured); the caption says when and how.
    with st.spinner("Looking up the latencies measured on this machine…"):
        known = {key: latency_stats(key) for key in models}
    missing = [key for key, stats in known.items() if stats is None]
    if missing:
        st.info("Latency is measured on this machine as `facedet bench` does: the median of 10 warm runs of the "
                f"whole detection of a 640×480 photo, once per model ({len(missing)} models to go, a few seconds "
                "each on a CPU, EXTD's longer).")
    buttons = st.columns([1, 1, 3])
    remeasure = buttons[1].button("Measure all again", disabled=not any(known.values()),
                                  help="replace the remembered figures (e.g. after the machine's load changed)")
    if (missing and buttons[0].button("Measure latency now", type="primary")) or remeasure:
        todo = list(models) if remeasure else missing
        bar = st.progress(0.0)
        try:
            for i, key in enumerate(todo):
                bar.progress(i / len(todo), text=f"Timing {models[key]} ({i + 1} of {len(todo)})…")
                measure_latency([key], refresh=remeasure)
                known[key] = latency_stats(key)
        except FacedetError as err:  # a file missing or damaged: what was timed is still shown
            st.error(f"Not every model could be timed: {err}")
        bar.empty()
    costs = {name: {"latency_ms": known[key]["ms"]} for key, name in models.items()
             if key.startswith(("published:", "peer:")) and known.get(key)}
    for run in runs:
        stats = known.get(cached.file_key(run["checkpoint"]))
        run["latency_ms"] = stats["ms"] if stats else None
    taken = sorted(stats["measured_at"] for stats in known.values() if stats and "measured_at" in stats)
    if taken:
        from facedet.latency_records import when_and_how

        first = next(stats for stats in known.values() if stats and stats.get("measured_at") == taken[0])
        st.caption(f"{len(taken)} of {len(models)} models timed; the oldest figure was {when_and_how(first)}.")

table = tradeoff_table(runs, costs)
figure = tradeoff_figure(table, subset=subset, cost=cost, show_pareto=show_pareto, view=view, font_size=chart_font(16))
st.plotly_chart(figure, width="stretch", theme=None, config={
    "displaylogo": False,
    "toImageButtonOptions": {"format": "png", "scale": 2, "filename": f"tradeoff-{subset}-{cost}"}})
outside = points_outside(figure) if view == "zoom" else {}
if outside:
    st.caption(f"Zoomed to the paper's models: {sum(outside.values())} points lie outside this view ("
               + ", ".join(f"{name}: {n}" for name, n in outside.items())
               + "); View: Every point, or the chart's autoscale button, shows them.")

if subset == SAMPLE_SET:
    shown = table[(table["kind"] == "run") & ~table["wider"].astype(bool) & table[cost].notna()]
    st.caption(f"{len(shown)} runs evaluated on the generated sample set: two portraits pasted onto synthetic "
               "backgrounds, the faces the sample-set sessions train on. Its AP says how well a run learned those "
               "two faces, not whether it detects faces, so it is never drawn on the WIDER FACE axes.")
elif subset == AGREEMENT:
    shown = table[table[cost].notna() & table[subset].notna()]
    st.caption(f"{len(shown)} points: your runs' agreement with the dense model they were pruned from (AP of "
               "their detections against the dense model's on held-out photos they never trained on). It is "
               "not a WIDER FACE AP and is never drawn on the WIDER FACE axes.")
else:
    shown = table[table[cost].notna() & table[subset].notna() & table["wider"].astype(bool)]
    st.caption(
        f"{len(shown)} points. Lines: the paper's SFP-pruned models at 10–50 % (solid FPGM, dotted L1), each "
        "starting at the authors' reproduced dense model; white diamonds: the original and reproduced "
        "baselines (Tables 1–2); grey squares: published detectors as their papers report them (protocols "
        "differ; hover for the source); stars: your runs on WIDER FACE. Runs on the generated sample "
        "set are not drawn here (choose 'Sample set'), nor runs on photos, which have no WIDER FACE AP (choose "
        "'Agreement'). Click a legend entry to hide or show it. YuNet-n and YuNet-s are published "
        "detectors too (APs from the libfacedetection.train README, single scale at the original size); they also "
        f"run here. B-FPGM's {len(BFPGM)} checkpoints are in the points' CSV with their released nonzero "
        "parameters, but not on the chart: none of our sources gives their WIDER FACE AP, and none is made up."
    )
if cost == "parameters":
    st.caption("Parameters: the paper's counts for its models (nonzero after pruning), the published counts "
               "for the others. Parameters alone mislead: EXTD has 162 k parameters but needs about 20 "
               "GFLOPs at 640×480, EResFD 92 k and about 0.6 GFLOPs — switch the cost to FLOPs.")
elif cost == "gflops":
    st.caption("FLOPs of our models are counted here (2 × multiply-adds of the nonzero convolution weights "
               "at 640×480), YuNet's the same way from its ONNX graph; the other published detectors' FLOPs are "
               "the ones their papers report at VGA resolution, where available.")
else:
    st.caption("Latency is measured on this machine for the models it has, YuNet-n and -s included (through "
               "OpenCV's FaceDetectorYN, the same photo and threads); masked checkpoints run the full dense "
               "convolutions, so pruning only saves time once a model is compacted. The other published "
               "detectors are not run here, so they are absent from this view.")

downloads = st.columns(3)
downloads[0].download_button("Download the chart as HTML", data=lambda: figure.to_html(include_plotlyjs=True),
                             file_name=f"tradeoff-{subset}-{cost}.html", mime="text/html")
downloads[1].download_button("Download the points as CSV", data=table.to_csv(index=False),
                             file_name="tradeoff-points.csv", mime="text/csv")
if downloads[2].button("Make a PNG of the chart"):
    try:
        png = figure.to_image(format="png", width=1600, height=900)
    except Exception as err:  # kaleido missing, or no Chrome for it to drive
        st.error(f"PNG export is not available here ({str(err).splitlines()[0][:120]}); use the camera "
                 "icon in the chart's toolbar instead.")
    else:
        downloads[2].download_button("Download the PNG", data=png, file_name=f"tradeoff-{subset}-{cost}.png",
                                     mime="image/png", type="primary")
