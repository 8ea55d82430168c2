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


def removed_figure(table, criteria, height=560):
    """Filters removed per layer by each criterion (bars) and their agreement (line, %)."""
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    for i, c in enumerate(criteria):
        fig.add_trace(go.Bar(x=table["layer"], y=table[f"removed_{c}"], name=f"removed by {c.upper()}",
                             marker_color=colour(c, i),
                             hovertemplate="%{x}: %{y} of %{customdata} filters<extra>" + c.upper() + "</extra>",
                             customdata=table["filters"]), secondary_y=False)
    if "agreement" in table:
        fig.add_trace(go.Scatter(x=table["layer"], y=table["agreement"] * 100, name="same filters chosen (Jaccard %)",
                                 mode="lines+markers", line=dict(color="black", width=2),
                                 hovertemplate="%{x}: %{y:.0f} % overlap<extra></extra>"), secondary_y=True)
        fig.update_yaxes(title_text="agreement of the removed sets (%)", range=[0, 105], dtick=25,
                         showgrid=False, secondary_y=True)
    fig.update_yaxes(title_text="filters removed", secondary_y=False)
    fig.update_layout(barmode="group", height=height, font=dict(size=15), template="plotly_white",
                      legend=dict(orientation="h", y=1.12), margin=dict(l=60, r=60, t=60, b=140))
    fig.update_xaxes(tickangle=-60)
    return fig


def share_figure(table, criterion, height=520):
    """Each layer's share of the model's parameters before and after pruning with ``criterion``."""
    fig = go.Figure([
        go.Bar(x=table["layer"], y=table["share_before"] * 100, name="before (dense)", marker_color="#BBBBBB"),
        go.Bar(x=table["layer"], y=table[f"share_after_{criterion}"] * 100, name=f"after {criterion.upper()}",
               marker_color=colour(criterion)),
    ])
    top = 110 * max(table["share_before"].max(), table[f"share_after_{criterion}"].max())
    fig.update_layout(barmode="group", height=height, font=dict(size=15), template="plotly_white",
                      yaxis=dict(title="share of all parameters (%)", range=[0, top]), legend=dict(orientation="h", y=1.12),
                      margin=dict(l=60, r=30, t=60, b=140))
    fig.update_xaxes(tickangle=-60)
    return fig


def filter_map_figure(removed, layer, filters, height=260):
    """Which filter indices of ``layer`` each criterion removes: one row per criterion."""
    criteria = list(removed)
    grid = np.zeros((len(criteria), filters))
    for row, c in enumerate(criteria):
        grid[row, list(removed[c].get(layer) or [])] = 1
    fig = go.Figure(go.Heatmap(z=grid, x=list(range(filters)), y=[c.upper() for c in criteria], showscale=False,
                               colorscale=[[0, "#EEEEEE"], [1, "#333333"]], xgap=1, ygap=4,
                               hovertemplate="filter %{x}: %{z}<extra>%{y}</extra>"))
    fig.update_layout(height=height, font=dict(size=15), template="plotly_white", margin=dict(l=60, r=30, t=30, b=50),
                      xaxis_title=f"filter index in {layer} (dark = removed)")
    return fig
