"""Results: the runs in the results store — filter, sort, delete, export, precision-recall curves."""

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from app_support import engine
from app_support.page import setup

COLUMNS = {  # store field -> column title
    "id": "run", "status": "status", "detector": "detector", "criterion": "criterion", "rate": "rate",
    "epochs": "SFP epochs", "finetune_epochs": "fine-tune epochs", "data": "data", "ap_easy": "AP easy",
    "ap_medium": "AP medium", "ap_hard": "AP hard", "nonzero_parameters": "parameters (nonzero)",
    "sparsity": "sparsity", "flops": "FLOPs", "latency_ms": "latency (ms)", "started": "started",
    "finished": "finished", "revision": "code revision", "checkpoint": "checkpoint",
}

setup("Results", "Every pruning run in the results store")
if not engine.available("ResultsStore"):
    st.warning("The pruning engine's results store (package `pruning`) is not available in this installation.")
    st.stop()
st.caption(f"Results store: {engine.store_location()}")

runs = engine.runs()
if not runs:
    st.info("The results store is empty: start a session on the Prune page.")
    st.stop()
for run in runs:
    run["data"] = "WIDER FACE" if engine.is_wider(run) else "sample set (NOT WIDER FACE)"
table = pd.DataFrame(runs)
table = table[[c for c in COLUMNS if c in table]].rename(columns=COLUMNS)

filters = st.columns(4)
chosen = {}
for column, name in zip(filters, ("detector", "criterion", "status", "data")):
    options = sorted(table[name].dropna().astype(str).unique())
    chosen[name] = column.multiselect(name.capitalize(), options, default=options, key=f"results_{name}")
shown = table[pd.concat([table[n].astype(str).isin(v) for n, v in chosen.items()], axis=1).all(axis=1)]

event = st.dataframe(shown, hide_index=True, width="stretch", on_select="rerun", selection_mode="multi-row",
                     key="results_table", column_config={
                         "rate": st.column_config.NumberColumn(format="percent"),
                         "sparsity": st.column_config.NumberColumn(format="percent"),
                         "AP easy": st.column_config.NumberColumn(format="%.4f"),
                         "AP medium": st.column_config.NumberColumn(format="%.4f"),
                         "AP hard": st.column_config.NumberColumn(format="%.4f")})
selected = shown.iloc[event.selection.rows]["run"].tolist() if event and event.selection.rows else []
st.caption(f"{len(shown)} of {len(table)} runs shown. Click a column title to sort; tick rows to delete them "
           "or to draw their precision-recall curves. Sample-set APs are not WIDER FACE numbers.")

actions = st.columns([1, 1, 2])
actions[0].download_button("Download these runs as CSV", data=shown.to_csv(index=False), file_name="runs.csv",
                           mime="text/csv")
if actions[1].button(f"Delete {len(selected)} selected", disabled=not selected, key="results_delete"):
    engine.delete_runs(selected)
    st.rerun()

st.subheader("Precision-recall curves")
subset = st.segmented_control("Subset", ["easy", "medium", "hard"], default="hard", required=True,
                              format_func=str.capitalize, key="results_subset")
curves = {run_id: engine.pr_curves(run_id) for run_id in (selected or shown["run"].tolist())}
curves = {run_id: c for run_id, c in curves.items() if c}
if not curves:
    st.info("No evaluated run among these.")
else:
    fig = go.Figure()
    by_id = {r["id"]: r for r in runs}
    for run_id, c in curves.items():
        recall, precision = c[subset]
        r = by_id[run_id]
        fig.add_trace(go.Scatter(x=recall, y=precision, mode="lines", line=dict(width=3),
                                 name=f"#{run_id} {r['detector']} {str(r['criterion']).upper()} {round(r['rate'] * 100)} % "
                                      f"({r['data']})"))
    fig.update_layout(height=560, template="plotly_white", font=dict(size=16), xaxis=dict(title="recall", range=[0, 1]),
                      yaxis=dict(title="precision", range=[0, 1.02]), legend=dict(font=dict(size=14)))
    st.plotly_chart(fig, width="stretch", theme=None)
