"""Layers: which filters each criterion removes, layer by layer, and how far FPGM and L1 agree."""

import streamlit as st

from app_support import cached, facts
from app_support import engine
from app_support.page import chart_font, group_rates_text, kept, setup
from app_support.engine import DETECTORS, criterion_label, oneshot_criteria
from facedet.errors import FacedetError
from facedet.viz.layers import filter_map_figure, layer_groups, layer_table, removed_figure, share_figure
from facedet.weights import BFPGM, bfpgm_name, bfpgm_rates, pretrained_name

SOURCES = {
    "published": "The paper's published checkpoints (after SFP training)",
    "bfpgm": "B-FPGM's checkpoints (per-group rates by Bayesian optimisation, SFP + FPGM)",
    "oneshot": "One-shot selection on the dense model (what each criterion picks first)",
}
PUBLISHED_RATES = [10, 20, 30, 40, 50]
ONESHOT_RATES = list(range(5, 95, 5))

setup("Layers", "Which filters each criterion removes, layer by layer: redundant (FPGM) or small (L1)?")

# Each choice is kept while its widget is not drawn (the other source's controls, another page).
controls = st.columns([1, 2, 2])
arch = kept(controls[0].radio, "Detector", list(DETECTORS), format_func=DETECTORS.get, key="layers_arch",
            default=next(iter(DETECTORS)), allowed=DETECTORS)
source = kept(controls[1].radio, "Pruned filters from", list(SOURCES), format_func=SOURCES.get, key="layers_source",
              default="published", allowed=SOURCES)
rounding, groups = None, None
if source == "published":
    criteria = ["fpgm", "l1"]
    rate = kept(controls[2].select_slider, "Pruning rate", PUBLISHED_RATES, format_func=lambda r: f"{r} %",
                key="layers_rate", default=30, allowed=PUBLISHED_RATES)
elif source == "bfpgm":
    criteria = ["fpgm"]
    rates = [r for r in bfpgm_rates(arch) if r]  # the retrained dense model removes nothing
    rate = kept(controls[2].select_slider, "Target sparsity", rates, format_func=lambda r: f"{r} %",
                key="layers_bfpgm_rate", default=30 if 30 in rates else rates[0], allowed=rates)
else:
    available = oneshot_criteria()
    criteria = kept(controls[2].multiselect, "Criteria (two to compare)", available, max_selections=2,
                    format_func=criterion_label, key="layers_criteria",
                    default=[c for c in ("fpgm", "l1") if c in available])
    criteria = [c for c in criteria if c in available]
    # The first criterion's rounding: every criterion removes int(n * rate) of a layer's n filters.
    effects = cached.rate_effects(arch, criteria[0], tuple(ONESHOT_RATES)) if criteria else None
    rate = kept(controls[2].select_slider, "Pruning rate", ONESHOT_RATES, key="layers_oneshot_rate", default=30,
                allowed=ONESHOT_RATES,
                format_func=(lambda r: facts.rate_label(r, effects[r])) if effects else (lambda r: f"{r} %"))
    try:
        groups = engine.group_rates(arch, group_rates_text(controls[2], arch, "layers_group_rates"))
    except FacedetError as err:
        st.error(f"Group rates: {err}")
        st.stop()
    if not criteria:
        st.info("Pick at least one criterion.")
        st.stop()
    rounding = facts.rounding_note(arch, effects) if groups is None else (
        f"At the group rates {engine.describe_rates(arch, engine.layer_rates_of_groups(arch, groups))[len('groups '):]} "
        "(groups 1-6), not the rate slider; each layer loses int(n × its group's rate) of its n filters.")

try:
    removed = {c: cached.removed_filters(arch, c, rate / 100, source, groups) for c in criteria}
    dense = cached.detector(cached.published_key(arch)).model
except FacedetError as err:
    st.error(f"Cannot load the models: {err}")
    st.stop()
table = layer_table(dense, removed)
labels = {c: criterion_label(c) for c in criteria}  # "L1 norm", "Network slimming": the names the controls use
groups_of_layers = layer_groups(arch, list(table["layer"]))

totals = st.columns(len(criteria) + (1 if len(criteria) == 2 else 0))
for column, c in zip(totals, criteria):
    column.metric(f"Filters removed by {labels[c]}", f"{int(table[f'removed_{c}'].sum()):,} of {int(table['filters'].sum()):,}")
if len(criteria) == 2:
    both = int(table["common"].sum())
    union = int(sum(table[f"removed_{c}"].sum() for c in criteria)) - both
    totals[-1].metric("Chosen by both", f"{both:,} ({both / union:.0%} overlap)" if union else "—")
if source == "published":
    twins = facts.same_file_note([pretrained_name(arch, c, rate / 100) for c in criteria])
    if twins:  # the registry's own sha256s: an overlap of 100 % that is no agreement
        st.warning(twins, icon=":material/content_copy:")
if rounding:
    st.caption(rounding)
if source == "bfpgm":
    groups = BFPGM[bfpgm_name(arch, rate / 100)].group_rates
    st.caption(f"B-FPGM's {arch} checkpoint at target sparsity {rate} %: its per-group rates (groups 1–6, from the "
               f"upstream README) are {', '.join(f'{r:.1%}' for r in groups)}, so layers lose different shares.")

# One view at a time, each the height of a screen (they were 2,600 px one under the other).
removed_tab, share_tab, filters_tab, numbers_tab = st.tabs(
    ["Filters removed per layer", "Share of the parameters", "Which filters, in one layer", "The numbers"])
with removed_tab:
    st.plotly_chart(removed_figure(table, criteria, labels=labels, groups=groups_of_layers, font_size=chart_font()),
                    width="stretch", theme=None)
    st.caption(
        f"{len(table)} layers pruned (every convolution except the detection head), in the model's order, named by "
        "their layer group (B-FPGM's six; hover a bar for its layer). "
        + ("The line is the Jaccard overlap of the two criteria's removed sets in each layer: 100 % means they chose "
           "exactly the same filters. " if len(criteria) == 2 else "")
        + ("Published checkpoints: the filters whose weights are all zero after the authors' SFP training and "
           "fine-tuning." if source in ("published", "bfpgm") else
           "One-shot: the pruning engine's selection on the dense published weights, no training.")
    )
with share_tab:
    shown = kept(st.radio, "Criterion", criteria, format_func=labels.get, horizontal=True, key="layers_share",
                 default=criteria[0], allowed=criteria)
    st.plotly_chart(share_figure(table, shown, label=labels[shown], groups=groups_of_layers, font_size=chart_font()),
                    width="stretch", theme=None)
with filters_tab:
    layers = list(table["layer"])
    layer = kept(st.selectbox, "Layer", layers, key="layers_layer", default=layers[0], allowed=layers)
    filters = int(table.loc[table["layer"] == layer, "filters"].iloc[0])
    st.plotly_chart(filter_map_figure(removed, layer, filters, labels=labels, font_size=chart_font()),
                    width="stretch", theme=None)
    for c in criteria:
        st.caption(f"{labels[c]} removes filters {sorted(removed[c].get(layer) or []) or 'none'} of {filters}.")
with numbers_tab:
    st.dataframe(table, hide_index=True, width="stretch")
    st.download_button("Download as CSV", data=table.to_csv(index=False),
                       file_name=f"layers-{arch}-{source}-{rate if groups is None else 'groups'}.csv", mime="text/csv")
