"""Per-layer view of a pruning: how many filters each criterion removes, which ones, how far two
criteria agree, and each layer's share of the parameters before and after.

Inputs are plain: the dense model, and for each criterion the removed filter indices per layer
(``{criterion: {layer name: indices}}``), as the pruning engine reports them.
"""

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

CRITERION_COLOURS = {"fpgm": "#0072B2", "l1": "#D55E00"}
OTHER_COLOURS = ["#009E73", "#CC79A7", "#E69F00", "#56B4E9"]


def colour(criterion, index=0):
    return CRITERION_COLOURS.get(criterion, OTHER_COLOURS[index % len(OTHER_COLOURS)])


def zero_filters(model):
    """{conv name: indices of output filters whose weights are all zero} (the masked ones)."""
    return {name: torch.nonzero(m.weight.detach().flatten(1).abs().sum(1) == 0).flatten().tolist()
            for name, m in model.named_modules() if isinstance(m, torch.nn.Conv2d)}


def layer_table(dense_model, removed):
    """One row per layer that any criterion prunes: filters, removed counts, overlap, parameter shares.

    A removed filter takes its weights and bias with it, so a layer keeps
    ``params * kept / filters``; shares are of the whole model's learnable parameters, before and
    after (the detection head and BatchNorm layers stay, as in the paper's counting).
    """
    convs = {name: m for name, m in dense_model.named_modules() if isinstance(m, torch.nn.Conv2d)}
    total = sum(p.numel() for p in dense_model.parameters())
    layers = [name for name in convs if any(removed[c].get(name) is not None for c in removed)]
    criteria = list(removed)
    rows = []
    for name in layers:
        conv = convs[name]
        params = sum(p.numel() for p in conv.parameters())
        row = {"layer": name, "filters": conv.out_channels, "params": params, "share_before": params / total}
        sets = {}
        for c in criteria:
            sets[c] = set(int(i) for i in (removed[c].get(name) or []))
            row[f"removed_{c}"] = len(sets[c])
            row[f"params_after_{c}"] = params * (conv.out_channels - len(sets[c])) / conv.out_channels
        if len(criteria) == 2:
            a, b = (sets[c] for c in criteria)
            row["common"] = len(a & b)
            row["agreement"] = len(a & b) / len(a | b) if a | b else 1.0
        rows.append(row)
    table = pd.DataFrame(rows)
    for c in criteria:
        total_after = total - (table["params"] - table[f"params_after_{c}"]).sum()
        table[f"share_after_{c}"] = table[f"params_after_{c}"] / total_after
    return table


def layer_groups(arch, layers):
    """``[(label, [layer, ...])]``: ``layers`` (conv names, in model order) by the detector's layer
    groups (``DetectorSpec.layer_groups``, B-FPGM's six), labelled ``1: conv1–conv3``; layers in no
    group (none among the pruned ones) form a group of their own."""
    from facedet.models import detector_spec

    prefixes = detector_spec(arch).layer_groups
    found = {}
    for layer in layers:
        index = next((i for i, group in enumerate(prefixes)
                      if any(layer == p or layer.startswith(p + ".") for p in group)), None)
        found.setdefault(index, []).append(layer)
    groups = []
    for index, members in found.items():
        if index is None:
            groups.append(("other", members))
            continue
        names = [_short(p) for p in prefixes[index]]
        groups.append((f"{index + 1}: " + (", ".join(names) if len(names) <= 2 else f"{names[0]}–{names[-1]}"),
                       members))
    return groups


def _short(prefix):
    """``base.m0.FEM_0`` -> ``FEM_0``; ``base.0`` -> ``base.0`` (a bare number says nothing)."""
    parts = prefix.split(".")
    return ".".join(parts[-2:]) if parts[-1].isdigit() else parts[-1]


def _layer_axis(fig, table, groups, font_size, plot_width=1250):
    """Layers along the x axis by position, named by their groups (under the plot, with a line
    between groups) rather than by 70 small rotated names; each bar's hover names its layer."""
    layers = len(table)
    pixels_per_layer = plot_width / max(layers, 1)
    start, ends = 0, [float("-inf"), float("-inf")]  # where the last label of each line ends (pixels)
    for number, (label, members) in enumerate(groups):
        end = start + len(members)
        if number:
            fig.add_vline(x=start - 0.5, line=dict(color="#888", width=1, dash="dot"))
        centre = (start + end - 1) / 2
        half = 0.3 * font_size * len(label)  # half a label's width, estimated
        # A label that would run into the one before it goes on a second line.
        line = 0 if (centre + 0.5) * pixels_per_layer - half > ends[0] + 8 else 1
        ends[line] = (centre + 0.5) * pixels_per_layer + half
        fig.add_annotation(x=centre, y=0, yref="paper", yshift=-12 - 1.5 * font_size * (line + 1), text=label,
                           showarrow=False, xanchor="center", yanchor="bottom")
        start = end
    fig.update_xaxes(range=[-0.5, layers - 0.5], showticklabels=False, title_text="")
    fig.update_layout(margin=dict(l=60, r=60, t=60, b=90))
    return fig


def removed_figure(table, criteria, height=520, labels=None, groups=None, font_size=15):
    """Filters removed per layer by each criterion (bars) and their agreement (line, %); ``labels``
    names the criteria (``{criterion: label}``), ``groups`` (``layer_groups``) names the layers."""
    labels = labels or {}
    x = list(range(len(table)))
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    for i, c in enumerate(criteria):
        name = labels.get(c, c)
        fig.add_trace(go.Bar(x=x, y=table[f"removed_{c}"], name=f"removed by {name}", marker_color=colour(c, i),
                             hovertemplate="%{customdata[0]}: %{y} of %{customdata[1]} filters<extra>" + name + "</extra>",
                             customdata=np.stack([table["layer"], table["filters"]], axis=1)), secondary_y=False)
    if "agreement" in table:
        fig.add_trace(go.Scatter(x=x, y=table["agreement"] * 100, name="same filters chosen (Jaccard %)",
                                 mode="lines+markers", line=dict(color="black", width=2), customdata=table["layer"],
                                 hovertemplate="%{customdata}: %{y:.0f} % overlap<extra></extra>"), secondary_y=True)
        fig.update_yaxes(title_text="agreement of the removed sets (%)", range=[0, 105], dtick=25,
                         showgrid=False, secondary_y=True)
    fig.update_yaxes(title_text="filters removed", secondary_y=False, rangemode="tozero")
    fig.update_layout(barmode="group", height=height, font=dict(size=font_size), template="plotly_white",
                      legend=dict(orientation="h", y=1.1))
    return _layer_axis(fig, table, groups or [("layers", list(table["layer"]))], font_size)


def share_figure(table, criterion, height=520, label=None, groups=None, font_size=15):
    """Each layer's share of the model's parameters before and after pruning with ``criterion``."""
    x = list(range(len(table)))
    fig = go.Figure([
        go.Bar(x=x, y=table["share_before"] * 100, name="before (dense)", marker_color="#BBBBBB",
               customdata=table["layer"], hovertemplate="%{customdata}: %{y:.2f} %<extra>before</extra>"),
        go.Bar(x=x, y=table[f"share_after_{criterion}"] * 100, name=f"after {label or criterion}",
               marker_color=colour(criterion), customdata=table["layer"],
               hovertemplate="%{customdata}: %{y:.2f} %<extra>after</extra>"),
    ])
    top = 110 * max(table["share_before"].max(), table[f"share_after_{criterion}"].max())
    fig.update_layout(barmode="group", height=height, font=dict(size=font_size), template="plotly_white",
                      yaxis=dict(title="share of all parameters (%)", range=[0, top]), legend=dict(orientation="h", y=1.1))
    return _layer_axis(fig, table, groups or [("layers", list(table["layer"]))], font_size)


def filter_map_figure(removed, layer, filters, height=260, labels=None, font_size=15):
    """Which filter indices of ``layer`` each criterion removes: one row per criterion (named by
    ``labels``), one column per filter, ticks on whole filter numbers."""
    labels = labels or {}
    criteria = list(removed)
    grid = np.zeros((len(criteria), filters))
    for row, c in enumerate(criteria):
        grid[row, list(removed[c].get(layer) or [])] = 1
    fig = go.Figure(go.Heatmap(z=grid, x=list(range(filters)), y=[labels.get(c, c) for c in criteria], showscale=False,
                               colorscale=[[0, "#EEEEEE"], [1, "#333333"]], xgap=1, ygap=4,
                               hovertemplate="filter %{x}: %{z}<extra>%{y}</extra>"))
    # Whole filter numbers only: 1 apart on small layers, a round step on large ones.
    step = next(s for s in (1, 2, 4, 8, 16, 32, 64) if filters / s <= 32)
    fig.update_layout(height=height, font=dict(size=font_size), template="plotly_white",
                      margin=dict(l=60, r=30, t=30, b=50), xaxis_title=f"filter index in {layer} (dark = removed)",
                      xaxis=dict(tickmode="linear", tick0=0, dtick=step, tickformat="d"))
    return fig
