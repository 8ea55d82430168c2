"""Results: the runs in the results store — filter, sort, delete, export, precision-recall curves."""

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from app_support import engine
from app_support.page import chart_font, kept, read_only, setup
from facedet.errors import FacedetError

setup("Results", "Every pruning run in the results store")
st.caption(f"Results store: {engine.store_location()}")

try:
    runs = engine.runs()
except FacedetError as err:  # a damaged store, or another program's file: say which, not a traceback
    st.error(f"Cannot read the results store: {err}")
    st.stop()
if not runs:
    st.info("The results store is empty: start a session on the Prune page.")
    st.stop()


def _local_time(stamp):
    """``2026-12-04 19:30`` in this server's time zone, for the store's UTC ISO time (None stays)."""
    from datetime import datetime

    return datetime.fromisoformat(stamp).astimezone().strftime("%Y-%m-%d %H:%M") if stamp else None


def _row(run):
    config = run.get("config", {})
    return {
        "run": run["id"], "status": run["status"],
        "detector": engine.DETECTORS.get(run["detector"], run["detector"]),
        "criterion": engine.criterion_label(run["criterion"]) if run["criterion"] else None,
        "rate": run["rate"], "SFP epochs": config.get("epochs"), "fine-tune epochs": config.get("finetune_epochs"),
        "data": {"sample set": "sample set (NOT WIDER FACE)"}.get(engine.run_data(run), engine.run_data(run)),
        "AP easy": run.get("ap_easy"), "AP medium": run.get("ap_medium"), "AP hard": run.get("ap_hard"),
        "agreement AP": run.get("agreement_ap"),
        "nonzero parameters": run.get("nonzero_parameters"), "sparsity": run.get("sparsity"),
        "compact parameters": run.get("compact_parameters"), "GFLOPs (640×640)": (run.get("nonzero_flops") or 0) / 1e9 or None,
        # Older runs timed the network alone at 640x640: not comparable, so not shown.
        **({"latency ms": run.get("latency_ms"), "network ms": run.get("network_ms"),
            "compact latency ms": run.get("compact_latency_ms"), "compact network ms": run.get("compact_network_ms")}
           if run.get("latency_setup") else dict.fromkeys(("latency ms", "network ms", "compact latency ms",
                                                           "compact network ms"))),
        "latency measured": run.get("latency_setup"),
        "started": _local_time(run.get("created_at")), "finished": _local_time(run.get("finished_at")),
        "code": run.get("code_revision"),
        "message": run.get("message"), "checkpoint": run.get("checkpoint"),
    }


table = pd.DataFrame([_row(r) for r in runs])
filters = st.columns(4)
chosen = {}
for column, name in zip(filters, ("detector", "criterion", "status", "data")):
    options = sorted(table[name].dropna().astype(str).unique())
    chosen[name] = column.multiselect(name.capitalize(), options, default=options, key=f"results_{name}")
shown = table[pd.concat([table[n].astype(str).isin(v) for n, v in chosen.items()], axis=1).all(axis=1)]

# The columns a screen holds; the rest (schedule, compact model, timings, provenance) one click away.
MAIN_COLUMNS = ["run", "status", "detector", "criterion", "rate", "data", "AP easy", "AP medium", "AP hard",
                "agreement AP", "nonzero parameters", "sparsity", "latency ms", "started"]
every_column = kept(st.toggle, "Every column (schedule, compact model, timings, checkpoint …)", key="results_all_columns",
                    default=False)
percent = st.column_config.NumberColumn(format="percent", width="small")
ap = st.column_config.NumberColumn(format="%.4f")
count = st.column_config.NumberColumn(format="localized")
event = st.dataframe(shown, hide_index=True, width="stretch", on_select="rerun", selection_mode="multi-row",
                     key=engine.table_key("results_table", shown["run"].tolist()), placeholder="—",
                     column_order=None if every_column else MAIN_COLUMNS,
                     column_config={"run": st.column_config.NumberColumn(width="small"), "rate": percent,
                                    "sparsity": percent, "AP easy": ap, "AP medium": ap, "AP hard": ap,
                                    "agreement AP": st.column_config.NumberColumn(
                                        format="%.4f", help="AP of the run's detections against the dense "
                                                            "model's on held-out photos it never trained on"),
                                    "nonzero parameters": count, "compact parameters": count,
                                    "GFLOPs (640×640)": st.column_config.NumberColumn(format="%.3f"),
                                    "latency ms": st.column_config.NumberColumn(format="%.1f")})
# Positions in the table as given (sorting in the browser does not change them), turned into run ids.
selected = [int(shown["run"].iloc[i]) for i in event.selection.rows if 0 <= i < len(shown)]
st.caption(f"{len(shown)} of {len(table)} runs shown. Click a column title to sort; tick rows to delete them or "
           "to draw their precision-recall curves. Sample-set APs are not WIDER FACE numbers; the agreement AP "
           "measures how well a run still finds what the dense model finds on photos it never trained on. FLOPs count the "
           "nonzero weights; latency is `facedet bench`'s: the median of warm runs of the whole detection (and of the "
           "network alone) on a 640×480 photo, on the CPU, as stated in its column.")

actions = st.columns([1, 1, 2])
actions[0].download_button("Download these runs as CSV", data=shown.to_csv(index=False), file_name="runs.csv",
                           mime="text/csv")
label = f"Delete run{'s' if len(selected) > 1 else ''} {', '.join(f'#{i}' for i in selected)}" if selected else "Delete selected runs"
if actions[1].button(label, disabled=not selected or read_only(), key="results_delete"):
    try:
        engine.delete_runs(selected)
    except FacedetError as err:
        st.error(f"Cannot delete: {err}")
    else:
        st.rerun()

st.subheader("Precision-recall curves")
by_id = {r["id"]: r for r in runs}
evaluated = [r["id"] for r in runs if r.get("ap_easy") is not None]
picked = [i for i in selected if i in evaluated] or evaluated[:1]
if not evaluated:
    st.info("No run evaluated on WIDER FACE or the sample set yet (runs on photos are measured by their "
            "agreement with the dense model, in the table above).")
    st.stop()
st.caption("The curves each run's evaluation recorded (single scale, on the validation images of its data root), "
           f"for: {', '.join(engine.run_label(by_id[i]) for i in picked)}. Tick rows above to choose others.")
subset = st.segmented_control("Subset", ["easy", "medium", "hard"], default="hard", required=True,
                              format_func=str.capitalize, key="results_subset")
fig = go.Figure()
for run_id in picked:
    run = by_id[run_id]
    try:
        curves = engine.run_curves(run_id)
    except FacedetError as err:  # a damaged store or document: this run's curves only
        st.error(f"Run {run_id}: {err}")
        continue
    if curves is None:
        st.info(f"{engine.run_label(run)}: no stored curves. The run was recorded before runs kept the curves of "
                "their evaluation; its APs are in the table.")
        continue
    curve = curves[subset]
    fig.add_trace(go.Scatter(x=curve.recall, y=curve.precision, mode="lines", line=dict(width=3),
                             name=f"{engine.run_label(run)}: AP {curve.ap:.3f}"))
    st.caption(f"{engine.run_label(run)}: measured on {run.get('eval_root')} against the ground truth in "
               f"{run.get('eval_gt')}.")
if fig.data:
    fig.update_layout(height=560, template="plotly_white", font=dict(size=chart_font(16)), showlegend=True,
                      legend=dict(font=dict(size=chart_font(14))),
                      xaxis=dict(title="recall", range=[0, 1]), yaxis=dict(title="precision", range=[0, 1.02]))
    st.plotly_chart(fig, width="stretch", theme=None)
