"""Home page of the app (``streamlit run app.py``): what this is, the models and where things are."""

import pandas as pd
import streamlit as st

from app_support.page import setup
from app_support.store import store_location
from facedet.weights import PRETRAINED, cache_dir, local_copy, weights_dir

setup("Pruning lightweight face detectors",
      "EXTD and EResFD, filter-pruned with FPGM or L1 (Gkrispanis, Gkalelis, Mezaris, WACVW 2024)")

st.markdown(
    "This app reproduces the paper's experiments: it runs the two tiny face detectors and their pruned "
    "versions on your photos, and prunes them again with the paper's criteria (geometric median and L1 "
    "norm), then fine-tunes and evaluates them.  \n"
    "It shows what pruning costs in accuracy and what it saves in parameters, FLOPs and time, next to "
    "the paper's tables and to other published face detectors."
)


def _device():
    import torch

    if torch.cuda.is_available():
        return f"CUDA GPU: {torch.cuda.get_device_name(0)}"
    return f"CPU ({torch.get_num_threads()} threads); no CUDA GPU found"


left, middle, right = st.columns(3)
left.metric("Compute device", "CUDA" if _device().startswith("CUDA") else "CPU")
left.caption(_device())
middle.metric("Published checkpoints on this machine", f"{sum(local_copy(n) is not None for n in PRETRAINED)} / {len(PRETRAINED)}")
middle.caption(f"Looked in $FACEDET_WEIGHTS_DIR ({weights_dir() or 'not set'}) and the cache ({cache_dir()}); "
               "missing ones are downloaded from the authors' repository on first use.")
location = store_location()
right.metric("Results store", location.name if location else "not available")
right.caption(f"SQLite file: {location}" if location else "The pruning engine (package `pruning`) is not installed.")

st.subheader("Pages")
pages = [
    ("pages/1_Compare.py", "Compare", "Original against pruned detections on a photo (the paper's Figures 4–5)."),
    ("pages/2_Prune.py", "Prune", "Run a quick prune-and-fine-tune session in the background."),
    ("pages/3_Trade_offs.py", "Trade-offs", "AP against parameters, FLOPs or latency (the paper's Figures 2–3)."),
    ("pages/4_Layers.py", "Layers", "Which filters FPGM and L1 remove, layer by layer."),
    ("pages/5_Results.py", "Results", "Your runs: table, CSV, precision-recall curves."),
]
for path, label, text in pages:
    st.page_link(path, label=f"**{label}** — {text}")

st.subheader("Detectors and checkpoints")
rows = []
for name, entry in PRETRAINED.items():
    found = local_copy(name)
    if found is None:
        status = "downloadable"
    elif weights_dir() is not None and found.parent == weights_dir():
        status = "present ($FACEDET_WEIGHTS_DIR)"
    else:
        status = "present (cache)"
    rows.append({"name": name, "detector": entry.arch.upper() if entry.arch == "extd" else "EResFD",
                 "criterion": entry.criterion.upper() if entry.criterion else "— (dense)",
                 "pruning rate": f"{round(entry.rate * 100)} %", "status": status, "file": str(found or entry.url)})
st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
st.caption("Weights: released by the paper's authors for academic, non-commercial use only.")
