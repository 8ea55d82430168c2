"""The accuracy / cost trade-off (the paper's Figures 2-3): one table of points, its Pareto front,
and the Plotly chart.

Points come from four places: the paper's Tables 1-2 (``facedet/assets/paper_results.json``), the
published detectors the paper plots and the peers we run (YuNet; ``facedet/assets/published_detectors.json``),
B-FPGM's released checkpoints (``facedet.weights.BFPGM``: their counts, and APs only where our sources
give them), and the user's own runs from the results store. Every point keeps where its numbers come from, for the hover text.
"""

import json
import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from facedet.assets import asset_path
from facedet.models import DETECTORS

ASSETS = asset_path()
SUBSETS = ("easy", "medium", "hard")
# Not a WIDER FACE number: the runs' agreement with the dense model on held-out photos (own axis).
AGREEMENT = "agreement"
# Not a WIDER FACE number either: runs evaluated on the generated sample set (two pasted portraits), on their own axis.
SAMPLE_SET = "sample_set"
COSTS = {
    "parameters": "Parameters (nonzero, log scale)",
    "gflops": "GFLOPs at 640×480 (log scale)",
    "latency_ms": "Latency on this machine: ms per detection of a 640×480 photo, end to end (log scale)",
}
COST_NAMES = {"parameters": "parameters", "gflops": "FLOPs at 640×480", "latency_ms": "latency on this machine"}
ARCH_LABEL = {name: spec.display_name for name, spec in DETECTORS.items()}
# Okabe-Ito colours: distinguishable with colour-blindness and on a projector (each detector's
# own colour is in its DetectorSpec).
COLOURS = {**{name: spec.colour for name, spec in DETECTORS.items()}, "published": "#7F7F7F", "runs": "#009E73",
           "sample": "#CC79A7", "pareto": "#000000"}
COLUMNS = ["label", "short", "group", "detector", "kind", "criterion", "rate", "easy", "medium", "hard", "agreement",
           "parameters", "gflops", "latency_ms", "checkpoint", "wider", "source"]


def load_json(name):
    return json.loads((ASSETS / name).read_text())


def paper_points():
    """The rows of the paper's Tables 1-2, one point each; ``checkpoint`` names the published file."""
    rows = []
    for r in load_json("paper_results.json")["rows"]:
        arch, method = r["detector"], r["method"]
        name = ARCH_LABEL[arch]
        if method in ("fpgm", "l1"):
            label = f"{name} {method.upper()} {round(r['rate'] * 100)}%"
            group = f"Paper: {name} {method.upper()}"
            checkpoint = f"{arch}-{method}-{round(r['rate'] * 100)}"
        else:
            label = f"{name} ({method})"
            group = "Paper: baselines"
            checkpoint = arch
        source = f"{r['source']['table']} of the paper"
        if r.get("parameters_printed"):
            source += f" (parameters printed as {r['parameters_printed']:,}; corrected, see facedet/assets/paper_results.json)"
        rows.append(dict(label=label, group=group, detector=arch, kind=method,
                         criterion=method if method in ("fpgm", "l1") else None, rate=r["rate"],
                         easy=r["easy"], medium=r["medium"], hard=r["hard"], parameters=r["parameters"],
                         gflops=None, latency_ms=None, checkpoint=checkpoint, wider=True, source=source))
    return rows


def published_points():
    """The published detectors with at least one AP; FLOPs and parameters as published (or None).

    EXTD and EResFD as originally published are the paper's 'original' baseline rows already. A
    detector that runs here (YuNet: ``weights`` names its file) keeps that name as ``checkpoint``, so
    FLOPs and latency measured here fill in (``tradeoff_table``'s ``costs``).
    """
    rows = []
    for d in load_json("published_detectors.json")["detectors"]:
        if d["easy"] is None or d["family"] in ("EXTD", "EResFD"):
            continue
        cites = d["sources"]["ap"]
        rows.append(dict(label=d["name"], short=d["short"], group="Published detectors", detector=d["family"], kind="published",
                         criterion=None, rate=None, easy=d["easy"], medium=d["medium"], hard=d["hard"],
                         parameters=d["parameters"], gflops=d["gflops"], latency_ms=None,
                         checkpoint=d.get("weights"), wider=True,
                         source=f"{cites['title']}; {cites['where']}; {d['protocol']}"
                                + ("; FLOPs counted and latency measured here, from its published file" if d.get("weights") else "")))
    return rows


def bfpgm_points():
    """B-FPGM's released checkpoints: nonzero parameters as its release states them, no AP (none of
    our sources gives one for these files, and none is made up), so they are in the table (and its
    CSV) but on no AP axis until an evaluation adds one."""
    from facedet.weights import BFPGM, FAMILIES

    rows = []
    for name, entry in BFPGM.items():
        rate = round(entry.rate * 100)
        label = f"B-FPGM {ARCH_LABEL[entry.arch]} {rate}%" if rate else f"B-FPGM {ARCH_LABEL[entry.arch]} dense"
        rows.append(dict(label=label, short=label, group="B-FPGM checkpoints", detector=entry.arch, kind="bfpgm",
                         criterion=entry.criterion, rate=entry.rate, easy=None, medium=None, hard=None,
                         parameters=entry.nonzero_parameters, gflops=None, latency_ms=None, checkpoint=name,
                         wider=True, source=f"{FAMILIES['bfpgm']['title']}; {FAMILIES['bfpgm']['source']}; "
                                            "nonzero parameters as released; no published AP in our sources"))
    return rows


def run_points(runs):
    """The user's runs: dicts with label, detector, criterion, rate, easy/medium/hard, parameters,
    gflops, latency_ms, checkpoint and ``wider`` (False for the sample set, which is NOT WIDER FACE)."""
    rows = []
    for run in runs:
        if run.get("easy") is None and run.get(AGREEMENT) is None:
            continue
        wider = bool(run.get("wider"))
        group = ("Your runs (WIDER FACE val)" if wider else "Your runs (sample set, NOT WIDER FACE)"
                 if run.get("easy") is not None else "Your runs (photos, distilled)")
        rows.append(dict({c: run.get(c) for c in COLUMNS}, group=group, kind="run", wider=wider,
                         source="results store" + ("" if wider else ": sample-set AP, not comparable with WIDER FACE")))
    return rows


def tradeoff_table(runs=(), costs=None):
    """All points as a DataFrame; ``costs`` maps a checkpoint name to {"gflops": .., "latency_ms": ..}
    measured here, filled into the paper's rows (whose parameters come from the paper)."""
    table = pd.DataFrame(paper_points() + published_points() + bfpgm_points() + run_points(runs), columns=COLUMNS)
    for name, cost in (costs or {}).items():
        for key in ("gflops", "latency_ms"):
            if cost.get(key) is not None:
                table.loc[(table["checkpoint"] == name) & (table["kind"] != "run"), key] = cost[key]
    return table


def pareto_mask(cost, ap):
    """True for the points no other point beats (cheaper or equal and at least as accurate, one of
    them strictly); points with a missing value are never on the front."""
    cost, ap = np.asarray(cost, dtype=float), np.asarray(ap, dtype=float)
    no_worse = (cost[None, :] <= cost[:, None]) & (ap[None, :] >= ap[:, None])
    better = (cost[None, :] < cost[:, None]) | (ap[None, :] > ap[:, None])
    return ~(no_worse & better).any(axis=1) & ~np.isnan(cost) & ~np.isnan(ap)


def _group_style(group):
    if group.startswith("Paper: ") and group != "Paper: baselines":
        arch = "extd" if "EXTD" in group else "eresfd"
        dash = "solid" if "FPGM" in group else "dot"
        symbol = "circle" if "FPGM" in group else "triangle-up"
        return dict(mode="lines+markers", line=dict(color=COLOURS[arch], dash=dash, width=3),
                    marker=dict(color=COLOURS[arch], symbol=symbol, size=11))
    if group == "Paper: baselines":
        return dict(mode="markers", marker=dict(color="white", size=13, symbol="diamond",
                                                line=dict(color="black", width=2)))
    if group == "Published detectors":
        return dict(mode="markers+text", textfont=dict(size=12, color="#444"),
                    marker=dict(color=COLOURS["published"], size=10, symbol="square"))
    if group.startswith("Your runs (WIDER"):
        return dict(mode="markers", marker=dict(color=COLOURS["runs"], size=15, symbol="star"))
    if group.startswith("Your runs (photos"):
        return dict(mode="markers", marker=dict(color=COLOURS["runs"], size=14, symbol="circle-open", line=dict(width=3)))
    return dict(mode="markers", marker=dict(color=COLOURS["sample"], size=13, symbol="x-open", line=dict(width=2)))


def _hover(table, subset, cost):
    def fmt(value, spec):
        return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, spec)

    return [
        f"<b>{r.label}</b><br>AP easy / medium / hard: {fmt(r.easy, '.4f')} / {fmt(r.medium, '.4f')} / "
        f"{fmt(r.hard, '.4f')}<br>parameters: {fmt(r.parameters, ',.0f')} · GFLOPs@640×480: {fmt(r.gflops, '.3g')}"
        f" · latency: {fmt(r.latency_ms, '.1f')} ms<br><i>{_wrap(r.source)}</i>"
        for r in table.itertuples()
    ]


def _wrap(text, width=90):
    words, lines, line = str(text).split(), [], ""
    for word in words:
        if len(line) + len(word) > width:
            lines.append(line)
            line = ""
        line = f"{line} {word}".strip()
    return "<br>".join(lines + [line])


def _sample_set_figure(table, cost, height):
    """Runs evaluated on the generated sample set: their Easy / Medium / Hard APs on an axis of their own."""
    runs = table[(table["kind"] == "run") & ~table["wider"].astype(bool) & table[cost].notna()]
    fig = go.Figure()
    for setting, symbol in zip(SUBSETS, ("circle-open", "diamond-open", "x-open")):
        part = runs[runs[setting].notna()]
        if len(part):
            fig.add_trace(go.Scatter(x=part[cost], y=part[setting], name=f"Your runs, sample set {setting.capitalize()}",
                                     mode="markers", marker=dict(color=COLOURS["sample"], size=13, symbol=symbol,
                                                                 line=dict(width=2)),
                                     hovertext=_hover(part, setting, cost), hoverinfo="text"))
    fig.update_xaxes(type="log", title=COSTS[cost], showgrid=True)
    fig.update_yaxes(title="Generated sample set AP (two pasted portraits; NOT WIDER FACE)", tickformat=".2f",
                     showgrid=True)
    fig.update_layout(height=height, font=dict(size=16), legend=dict(font=dict(size=14)),
                      margin=dict(l=70, r=30, t=60, b=70), template="plotly_white",
                      title=f"Sample-set AP against {COST_NAMES[cost]} (it measures two faces, not face detection)")
    return fig


def tradeoff_figure(table, subset="easy", cost="parameters", show_pareto=True, height=680):
    """AP on ``subset`` against ``cost`` (log axis); the Pareto front of the WIDER FACE points drawn on top."""
    if subset not in SUBSETS + (AGREEMENT, SAMPLE_SET) or cost not in COSTS:
        raise ValueError(f"subset must be one of {SUBSETS + (AGREEMENT, SAMPLE_SET)} and cost one of {tuple(COSTS)}")
    if subset == SAMPLE_SET:
        return _sample_set_figure(table, cost, height)
    data = table[table[cost].notna() & table[subset].notna()].copy()
    if subset in SUBSETS:  # WIDER FACE axes carry WIDER FACE numbers only
        data = data[data["wider"].astype(bool)]
    data = data.sort_values(["group", "detector", "rate"], na_position="first")
    fig = go.Figure()
    for group, part in data.groupby("group", sort=False):
        if group.startswith("Paper: ") and group != "Paper: baselines":
            # Each pruning curve starts at its reproduced dense baseline, as in the paper's figures.
            arch = part["detector"].iloc[0]
            base = table[(table["detector"] == arch) & (table["kind"] == "reproduced")
                         & table[cost].notna()]
            part = pd.concat([base, part.sort_values("rate")])
        style = _group_style(group)
        if group == "Published detectors":
            # Alternate label positions along the cost axis so that neighbours do not overlap.
            part = part.sort_values(cost)
            style["text"] = part["short"]
            style["textposition"] = ["top center" if i % 2 else "bottom center" for i in range(len(part))]
        fig.add_trace(go.Scatter(x=part[cost], y=part[subset], name=group,
                                 hovertext=_hover(part, subset, cost), hoverinfo="text", **style))
    if show_pareto and subset != AGREEMENT:
        comparable = data[data["wider"].astype(bool)]
        front = comparable[pareto_mask(comparable[cost].tolist(), comparable[subset].tolist())].sort_values(cost)
        if len(front):
            fig.add_trace(go.Scatter(x=front[cost], y=front[subset], name="Pareto front (WIDER FACE points)",
                                     mode="lines+markers", line=dict(color=COLOURS["pareto"], dash="dash", width=2, shape="hv"),
                                     marker=dict(size=22, symbol="circle-open", color=COLOURS["pareto"], line=dict(width=2)),
                                     hovertext=_hover(front, subset, cost), hoverinfo="text"))
    fig.update_xaxes(type="log", title=COSTS[cost], showgrid=True)
    if subset == AGREEMENT:
        y_title, title = ("Agreement with the dense model: AP on held-out photos (NOT WIDER FACE)",
                          f"Agreement with the dense model against {COST_NAMES[cost]}")
    else:
        y_title, title = (f"WIDER FACE val AP, {subset.capitalize()} subset",
                          f"AP ({subset.capitalize()}) against {COST_NAMES[cost]}")
    fig.update_yaxes(title=y_title, tickformat=".2f", showgrid=True)
    fig.update_layout(height=height, font=dict(size=16), legend=dict(font=dict(size=14)),
                      margin=dict(l=70, r=30, t=60, b=70), template="plotly_white", title=title)
    return fig
