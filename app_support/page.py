"""Common page set-up: wide layout and large, plain headings for a projector."""

import streamlit as st

APP_NAME = "Pruning lightweight face detectors"


def setup(title, subtitle):
    st.set_page_config(page_title=f"{title} · {APP_NAME}", page_icon=":material/face:", layout="wide")
    st.title(title)
    st.markdown(f"#### {subtitle}")


def legend(items):
    """A row of coloured swatches: ``items`` maps an RGB tuple to its meaning."""
    chips = " &nbsp;&nbsp; ".join(
        f"<span style='display:inline-block;width:1.6em;height:0.9em;border:3px solid rgb{tuple(rgb)};"
        f"vertical-align:middle'></span>&nbsp;{text}" for rgb, text in items.items())
    st.markdown(f"<div style='font-size:1.1rem'>{chips}</div>", unsafe_allow_html=True)
