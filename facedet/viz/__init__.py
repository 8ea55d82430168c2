"""What the app shows, computed without any UI: model costs, trade-off tables and charts,
comparison overlays. The Streamlit pages only lay these out."""
