"""Glue between the Streamlit pages and the library: page set-up and cached library calls.

No computation lives here; the pages call ``facedet`` and ``pruning`` through these caches so that
moving a slider re-uses loaded models and earlier detections.
"""
