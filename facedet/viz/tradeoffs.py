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
from facedet.iou import overlap_area
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
# What the chart shows: the region around the paper's models (where its curves are readable), or every point.
VIEWS = {"zoom": "Around the paper's models", "all": "Every point"}
# Where a point's label may go, best first (Plotly's textposition values).
LABEL_POSITIONS = ("top center", "bottom center", "middle right", "middle left", "top right", "bottom right",
                   "top left", "bottom left")
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


def region_of_interest(data, subset, cost):
    """``(x range as log10, y range)`` around the paper's models and the user's runs: costs from a
    little under the cheapest to five times the dearest of them (where the lightest published
    detectors are), and the APs of every point in that span. Without
    such points, None (the whole chart)."""
    core = data[data["group"].str.startswith(("Paper", "Your runs"))]
    if core.empty:
        return None
    low, high = np.log10(core[cost].min() / 1.3), np.log10(core[cost].max() * 5)
    inside = data[(np.log10(data[cost]) >= low) & (np.log10(data[cost]) <= high)]
    bottom, top = inside[subset].min(), inside[subset].max()
    pad = max(0.02, (top - bottom) * 0.06)
    return (low, high), (bottom - pad, top + pad)


def _full_ranges(data, subset, cost):
    x, y = np.log10(data[cost].astype(float)), data[subset].astype(float)
    x_pad, y_pad = max(0.1, (x.max() - x.min()) * 0.05), max(0.02, (y.max() - y.min()) * 0.06)
    return (x.min() - x_pad, x.max() + x_pad), (y.min() - y_pad, y.max() + y_pad)


def _label_box(position, cx, cy, width, height, gap):
    """A label's box (x0, y0, x1, y1; y upwards) in pixels at ``position`` around a point."""
    vertical, horizontal = position.split()
    x0 = {"center": cx - width / 2, "right": cx + gap, "left": cx - gap - width}[horizontal]
    y0 = {"middle": cy - height / 2, "top": cy + gap, "bottom": cy - gap - height}[vertical]
    if vertical != "middle" and horizontal != "center":  # diagonal: closer in
        x0 += -gap / 2 if horizontal == "right" else gap / 2
    return x0, y0, x0 + width, y0 + height


def _steps(x, y):
    """The corners of a front drawn with Plotly's ``shape="hv"`` (across, then up or down)."""
    corners = []
    for i, (px, py) in enumerate(zip(x, y)):
        if i:
            corners.append((px, y[i - 1]))
        corners.append((px, py))
    return corners


def label_positions(x, y, texts, x_range, y_range, obstacles=(), lines=(), plot_size=(1300, 520), font_size=14):
    """A Plotly ``textposition`` for each labelled point (``x`` on the log axis, data units), chosen
    so that labels cover each other, the other points (``obstacles``: (x, y) pairs), the lines drawn
    (``lines``: lists of (x, y) corners) and the plot's edges as little as possible, for a plot of
    ``plot_size`` pixels showing ``x_range`` (log10) and ``y_range``. Label sizes are estimated
    from the text (0.62 em a character)."""
    width, height = plot_size

    def pixels(px, py):
        return ((np.log10(px) - x_range[0]) / (x_range[1] - x_range[0]) * width,
                (py - y_range[0]) / (y_range[1] - y_range[0]) * height)

    points = [pixels(px, py) for px, py in zip(x, y)]
    # Every point's marker, as large as the Pareto front's rings around them; lines, every few pixels.
    marks = [(cx - 11, cy - 11, cx + 11, cy + 11) for cx, cy in points + [pixels(px, py) for px, py in obstacles]]
    for line in lines:
        corners = [pixels(px, py) for px, py in line]
        for (ax, ay), (bx, by) in zip(corners, corners[1:]):
            steps = max(1, int(np.hypot(bx - ax, by - ay) / 6))
            marks += [(ax + (bx - ax) * t - 2, ay + (by - ay) * t - 2, ax + (bx - ax) * t + 2, ay + (by - ay) * t + 2)
                      for t in np.linspace(0, 1, steps + 1)]
    sizes = [(0.62 * font_size * len(str(text)) + 4, 1.3 * font_size) for text in texts]
    gap = font_size * 0.5

    def box(i, position):
        return _label_box(position, *points[i], *sizes[i], gap=gap)

    def cost(i, position, boxes):
        own = box(i, position)
        outside = sizes[i][0] * sizes[i][1] - overlap_area(own, (0, 0, width, height))
        return (4 * sum(overlap_area(own, other) for j, other in enumerate(boxes) if j != i and other is not None)
                + sum(overlap_area(own, m) for m in marks) + 2 * outside)

    chosen, boxes = [None] * len(points), [None] * len(points)
    # Greedily from the cheapest point, then a few rounds of moving each label to its best place
    # given all the others (ties: the earlier position).
    for _ in range(4):
        for i in range(len(points)):
            chosen[i] = min(LABEL_POSITIONS, key=lambda position: cost(i, position, boxes))
            boxes[i] = box(i, chosen[i])
    return chosen


def points_outside(fig):
    """``{trace name: points}`` that the figure's axis ranges leave out of view (the Pareto front,
    which repeats other points, is not counted)."""
    x_range, y_range = fig.layout.xaxis.range, fig.layout.yaxis.range
    if x_range is None or y_range is None:
        return {}
    outside = {}
    for trace in fig.data:
        if trace.name.startswith("Pareto"):
            continue
        x, y = np.log10(np.asarray(trace.x, dtype=float)), np.asarray(trace.y, dtype=float)
        hidden = int(((x < x_range[0]) | (x > x_range[1]) | (y < y_range[0]) | (y > y_range[1])).sum())
        if hidden:
            outside[trace.name] = outside.get(trace.name, 0) + hidden
    return outside


def tradeoff_figure(table, subset="easy", cost="parameters", show_pareto=True, height=680, view="zoom",
                    font_size=16):
    """AP on ``subset`` against ``cost`` (log axis); the Pareto front of the WIDER FACE points drawn on top.

    ``view`` ``zoom`` shows the region around the paper's models (``region_of_interest``; Plotly's
    autoscale button shows every point), ``all`` every point. Published detectors' labels are placed
    for the view shown so that they do not overlap."""
    if view not in VIEWS:
        raise ValueError(f"view must be one of {tuple(VIEWS)}")
    if subset not in SUBSETS + (AGREEMENT, SAMPLE_SET) or cost not in COSTS:
        raise ValueError(f"subset must be one of {SUBSETS + (AGREEMENT, SAMPLE_SET)} and cost one of {tuple(COSTS)}")
    if subset == SAMPLE_SET:
        return _sample_set_figure(table, cost, height)
    data = table[table[cost].notna() & table[subset].notna()].copy()
    if subset in SUBSETS:  # WIDER FACE axes carry WIDER FACE numbers only
        data = data[data["wider"].astype(bool)]
    data = data.sort_values(["group", "detector", "rate"], na_position="first")
    ranges = None if data.empty else (
        (region_of_interest(data, subset, cost) if view == "zoom" else None) or _full_ranges(data, subset, cost))
    label_font = round(font_size * 0.8)
    front = data.iloc[:0]
    if show_pareto and subset != AGREEMENT:
        comparable = data[data["wider"].astype(bool)]
        front = comparable[pareto_mask(comparable[cost].tolist(), comparable[subset].tolist())].sort_values(cost)
    # The lines drawn (the front's steps, the paper's curves), which labels should not cover either.
    lines = [_steps(front[cost].tolist(), front[subset].tolist())] if len(front) else []
    fig = go.Figure()
    for group, part in data.groupby("group", sort=False):
        if group.startswith("Paper: ") and group != "Paper: baselines":
            # Each pruning curve starts at its reproduced dense baseline, as in the paper's figures.
            arch = part["detector"].iloc[0]
            base = table[(table["detector"] == arch) & (table["kind"] == "reproduced")
                         & table[cost].notna()]
            part = pd.concat([base, part.sort_values("rate")])
            lines.append(list(zip(part[cost], part[subset])))
        style = _group_style(group)
        if group == "Published detectors" and ranges is not None:
            part = part.sort_values(cost)
            others = data[data["group"] != group]
            style["text"] = part["short"]
            style["textfont"] = dict(size=label_font, color="#333")
            style["textposition"] = label_positions(
                part[cost], part[subset], part["short"], *ranges, obstacles=list(zip(others[cost], others[subset])),
                lines=lines, plot_size=(1300, height - 190), font_size=label_font)
        fig.add_trace(go.Scatter(x=part[cost], y=part[subset], name=group,
                                 hovertext=_hover(part, subset, cost), hoverinfo="text", **style))
    if len(front):
        fig.add_trace(go.Scatter(x=front[cost], y=front[subset], name="Pareto front (WIDER FACE points)",
                                 mode="lines+markers", line=dict(color=COLOURS["pareto"], dash="dash", width=2, shape="hv"),
                                 marker=dict(size=22, symbol="circle-open", color=COLOURS["pareto"], line=dict(width=2)),
                                 hovertext=_hover(front, subset, cost), hoverinfo="text"))
    fig.update_xaxes(type="log", title=COSTS[cost], showgrid=True, range=list(ranges[0]) if ranges else None)
    if subset == AGREEMENT:
        y_title, title = ("Agreement with the dense model: AP on held-out photos (NOT WIDER FACE)",
                          f"Agreement with the dense model against {COST_NAMES[cost]}")
    else:
        y_title, title = (f"WIDER FACE val AP, {subset.capitalize()} subset",
                          f"AP ({subset.capitalize()}) against {COST_NAMES[cost]}")
    fig.update_yaxes(title=y_title, tickformat=".2f", showgrid=True, range=list(ranges[1]) if ranges else None)
    # The legend under the plot, so that the plot has the page's whole width.
    fig.update_layout(height=height, font=dict(size=font_size), template="plotly_white", title=title,
                      legend=dict(font=dict(size=round(font_size * 0.9)), orientation="h", yanchor="top", y=-0.14,
                                  x=0),
                      margin=dict(l=70, r=30, t=60, b=130))
    return fig
