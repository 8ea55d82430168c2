"""The app (``streamlit run app.py``): Streamlit's own navigation over the pages in ``pages/``.

Each task is one page (``app_support.page.PAGES``: file, title, icon, purpose); the Home page is the
default. Titles are written properly ("Trade-offs"), and the addresses stay the file names'
(``/Compare``, ``/Trade_offs``) so that links and bookmarks keep working.
"""

from pathlib import Path

import streamlit as st

from app_support.page import PAGES

HERE = Path(__file__).resolve().parent


def _url_path(path):
    """``pages/3_Trade_offs.py`` -> ``Trade_offs``; the Home page is the root."""
    return Path(path).stem.split("_", 1)[1]


st.navigation([
    st.Page(str(HERE / path), title=title, icon=icon, default=index == 0,
            url_path=None if index == 0 else _url_path(path))
    for index, (path, title, icon, _) in enumerate(PAGES)
]).run()
