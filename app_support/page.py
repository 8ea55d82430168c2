"""Common page set-up: wide layout, large plain headings for a projector, and the navigation."""

import os

import pandas  # noqa: F401  (see below)
import streamlit as st

# pandas is imported here, up front, because Plotly imports it lazily on first use: doing that in a
# page while a background pruning session's thread is importing it too can find it half-initialised.

APP_NAME = "Pruning lightweight face detectors"
# (script, title, icon, what it is for): app.py registers them with st.navigation, the Home page
# lists them.
PAGES = [
    ("pages/0_Home.py", "Home", ":material/home:", "What this is, the models, the compute device, the results store."),
    ("pages/1_Compare.py", "Compare", ":material/compare:",
     "Original against pruned detections on a photo (the paper's Figures 4–5)."),
    ("pages/2_Prune.py", "Prune", ":material/content_cut:", "Run a quick prune-and-fine-tune session in the background."),
    ("pages/3_Trade_offs.py", "Trade-offs", ":material/scatter_plot:",
     "AP against parameters, FLOPs or latency (the paper's Figures 2–3)."),
    ("pages/4_Layers.py", "Layers", ":material/layers:", "Which filters FPGM and L1 remove, layer by layer."),
    ("pages/5_Results.py", "Results", ":material/table_chart:", "Your runs: table, CSV, precision-recall curves."),
]


def read_only():
    """``FACEDET_READ_ONLY=1``: for a server others reach over the network, nothing is started,
    cancelled, deleted or written (comparing, browsing and charts still work)."""
    return os.environ.get("FACEDET_READ_ONLY", "").strip().lower() in ("1", "true", "yes", "on")


READ_ONLY_NOTE = "Read-only mode (FACEDET_READ_ONLY): sessions cannot be started, cancelled or deleted here."


def upload_limit():
    """A line stating the server's upload limit (``server.maxUploadSize``, MB)."""
    return f"Up to {st.get_option('server.maxUploadSize')} MB per file."


def setup(title, subtitle):
    st.set_page_config(page_title=f"{title} · {APP_NAME}", page_icon=":material/face:", layout="wide")
    if read_only():
        with st.sidebar:
            st.info(READ_ONLY_NOTE, icon=":material/lock:")
    st.title(title)
    st.markdown(f"#### {subtitle}")


# Streamlit deletes a widget's state in any run that does not draw it (another source's controls,
# another page): each chosen value is also copied under this prefix, a key no widget owns.
KEPT = "kept:"


def restore(key, default, allowed=None):
    """Give widget ``key`` its last chosen value before it is drawn: its own state, else the kept
    copy, else ``default``. ``allowed``: the values it may take now (a stale one falls back)."""
    if key in st.session_state and (allowed is None or st.session_state[key] in allowed):
        return
    value = st.session_state.get(KEPT + key, default)
    st.session_state[key] = value if allowed is None or value in allowed else default


def kept(draw, *args, key, default, allowed=None, **kwargs):
    """Draw a widget (``draw``: ``st.radio``, ``column.selectbox`` ...) whose value survives the runs
    and pages that do not draw it; returns its value. Pass no value or index: ``default`` is it."""
    restore(key, default, allowed)
    value = draw(*args, key=key, **kwargs)
    st.session_state[KEPT + key] = value
    return value


def choose(key, value):
    """Set a kept widget's value from outside it (a deep link), for its next drawing."""
    st.session_state[key] = st.session_state[KEPT + key] = value


def legend(items):
    """A row of coloured swatches: ``items`` maps an RGB tuple to its meaning."""
    chips = " &nbsp;&nbsp; ".join(
        f"<span style='display:inline-block;width:1.6em;height:0.9em;border:3px solid rgb{tuple(rgb)};"
        f"vertical-align:middle'></span>&nbsp;{text}" for rgb, text in items.items())
    st.markdown(f"<div style='font-size:1.1rem'>{chips}</div>", unsafe_allow_html=True)



def group_rates_text(container, arch, key):
    """An expander holding a text field "Group rates" (``r1,...,r6``: one rate per layer group of
    ``arch``, replacing the uniform rate when filled); returns the text (``engine.group_rates``
    reads it)."""
    from app_support import engine

    with container.expander("Group rates (B-FPGM's layer groups), instead of one rate"):
        return kept(st.text_input, "Group rates", key=key, default="", placeholder="e.g. 0.2,0,0.08,0.2,0.2,0.17",
                    help=f"Comma-separated, one rate per layer group (each at least 0, below 1); empty: the "
                         f"rate above. Groups of this detector: {engine.group_rates_help(arch)}.")
