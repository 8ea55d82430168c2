"""Results: Your runs from the results store."""

import streamlit as st

from app_support.page import setup
from app_support.engine import open_store

setup("Results", "Your runs from the results store")
if open_store() is None:
    st.warning("The pruning engine (package `pruning`) is not available in this installation.")
    st.stop()
