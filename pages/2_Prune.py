"""Prune: Prune and fine-tune a detector in the background (quick sessions)."""

import streamlit as st

from app_support.page import setup
from app_support.engine import open_store

setup("Prune", "Prune and fine-tune a detector in the background (quick sessions)")
if open_store() is None:
    st.warning("The pruning engine (package `pruning`) is not available in this installation.")
    st.stop()
