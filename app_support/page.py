"""Common page set-up: wide layout, large plain headings for a projector, presentation mode, and the
navigation."""

import os
import time

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


PRESENTATION_KEY = "presentation"
# Every page fits a 1920 x 1080 projector: less empty space above the title than Streamlit leaves
# (its top bar, which only holds the menu, is see-through so that the title can sit under it).
LAYOUT_CSS = """<style>
[data-testid='stHeader'] {background: transparent}
[data-testid='stMainBlockContainer'] {padding-top: 1.6rem; padding-bottom: 3rem}
[data-testid='stMainBlockContainer'] h1 {padding-top: 0; padding-bottom: 0.2rem}
</style>"""
# Presentation mode: text readable from the back of a room (captions, metric labels, widget labels
# and table cells grow from ~14 px to ~18 px; charts take their own larger fonts).
PRESENTATION_CSS = """<style>
[data-testid='stCaptionContainer'], [data-testid='stCaptionContainer'] p {font-size: 1.06rem}
[data-testid='stMetricLabel'] p, [data-testid='stWidgetLabel'] p {font-size: 1.06rem}
[data-testid='stMetricValue'] {font-size: 2rem}
[data-testid='stProgress'] p {font-size: 1.15rem}
[data-testid='stRadio'] label p, [data-testid='stTab'] p {font-size: 1rem}
</style>"""


def presentation():
    """Whether presentation mode is on (the default): larger text, thicker boxes, photo colours."""
    return st.session_state.get(KEPT + PRESENTATION_KEY, True)


def chart_font(size=15):
    """A chart's base font size: larger in presentation mode."""
    return round(size * 1.2) if presentation() else size


def setup(title, subtitle):
    st.set_page_config(page_title=f"{title} · {APP_NAME}", page_icon=":material/face:", layout="wide")
    with st.sidebar:
        # A toggle of each page's own (Streamlit gives a widget on another page its default, not the
        # state of the same key), all showing and setting the one choice.
        key = f"{PRESENTATION_KEY}_{title.replace(' ', '_')}"
        if key not in st.session_state:
            st.session_state[key] = presentation()
        st.session_state[KEPT + PRESENTATION_KEY] = st.toggle(
            "Presentation mode", key=key, help="For a projector: larger text, thicker boxes edged in black and "
                                               "colours that stand out on photos. Off: the compact screen style.")
        if read_only():
            st.info(READ_ONLY_NOTE, icon=":material/lock:")
    st.html(LAYOUT_CSS + (PRESENTATION_CSS if presentation() else ""))
    st.title(title)
    st.markdown(f"#### {subtitle}")


class DetectionProgress:
    """One progress bar (an ``st.progress``) over the detections a page waits for, one model after
    the other: the share of all of them done and, once it can tell, the seconds left. Updating the
    page is also what lets Streamlit stop a detection when the user cancels or chooses something else."""

    def __init__(self, bar, names):
        self.bar, self.names = bar, list(names)
        self.started, self.shown = time.perf_counter(), 0.0

    def model(self, index):
        """The ``progress(fraction)`` callback of the ``index``-th model (``app_support.detections``)."""
        self._show(index, 0.0, "Loading")

        def update(fraction):
            if time.perf_counter() - self.shown >= 0.25 or fraction >= 1:
                self._show(index, min(max(fraction, 0.0), 1.0), "Detecting faces with")
        return update

    def _show(self, index, fraction, doing):
        self.shown = now = time.perf_counter()
        done, elapsed = (index + fraction) / len(self.names), now - self.started
        left = f" · about {elapsed * (1 - done) / done:.0f} s left" if done >= 0.05 and elapsed >= 1 else ""
        step = f" (model {index + 1} of {len(self.names)})" if len(self.names) > 1 else ""
        self.bar.progress(done, text=f"{doing} {self.names[index]}{step} · {done:.0%}{left}")


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


def group_rates_text(container, arch, key):
    """An expander holding a text field "Group rates" (``r1,...,r6``: one rate per layer group of
    ``arch``, replacing the uniform rate when filled); returns the text (``engine.group_rates``
    reads it)."""
    from app_support import engine

    with container.expander("Group rates (B-FPGM's layer groups), instead of one rate"):
        return kept(st.text_input, "Group rates", key=key, default="", placeholder="e.g. 0.2,0,0.08,0.2,0.2,0.17",
                    help=f"Comma-separated, one rate per layer group (each at least 0, below 1); empty: the "
                         f"rate above. Groups of this detector: {engine.group_rates_help(arch)}.")
