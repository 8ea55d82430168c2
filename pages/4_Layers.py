"""Layers: Which filters each criterion removes, layer by layer."""

import streamlit as st

from app_support.page import setup
from app_support.store import open_store

setup("Layers", "Which filters each criterion removes, layer by layer")
if open_store() is None:
    st.warning("The pruning engine (package `pruning`) is not available in this installation.")
    st.stop()
