"""Home page of the app: what this is, the models and where things are (``app.py`` is the frame)."""

import pandas as pd
import streamlit as st

from app_support.page import PAGES, setup
from app_support.engine import store_location
from facedet.models import DETECTORS
from facedet.weights import PRETRAINED, cache_dir, local_copy, weights_dir


def compute_device():
    """("CUDA" or "CPU", a line of detail): where models run and sessions train."""
    import torch

    if torch.cuda.is_available():
        return "CUDA", f"GPU: {torch.cuda.get_device_name(0)}"
    return "CPU", f"{torch.get_num_threads()} threads; no CUDA GPU found"


def home():
    setup("Pruning lightweight face detectors",
          "EXTD and EResFD, filter-pruned with FPGM or L1 (Gkrispanis, Gkalelis, Mezaris, WACVW 2024)")

    st.markdown(
        "This app reproduces the paper's experiments: it runs the two tiny face detectors and their pruned "
        "versions on your photos, and prunes them again with the paper's criteria (geometric median and L1 "
        "norm), then fine-tunes and evaluates them.  \n"
        "It shows what pruning costs in accuracy and what it saves in parameters, FLOPs and time, next to "
        "the paper's tables and to other published face detectors."
    )

    left, middle, right = st.columns(3)
    device, detail = compute_device()
    left.metric("Compute device", device)
    left.caption(detail)
    middle.metric("Published checkpoints on this machine", f"{sum(local_copy(n) is not None for n in PRETRAINED)} / {len(PRETRAINED)}")
    middle.caption(f"Looked in $FACEDET_WEIGHTS_DIR ({weights_dir() or 'not set'}) and the cache ({cache_dir()}); "
                   "missing ones are downloaded from the authors' repository on first use.")
    location = store_location()
    right.metric("Results store", location.name)
    right.caption(f"SQLite file: {location}")

    with st.expander("Where things are kept on this machine"):
        from pruning.paths import locations

        st.markdown("\n".join(f"- **{part}**: `{path}`" for part, path in locations().items())
                    + f"\n- **downloaded weights**: `{cache_dir()}`")
        st.caption("All under PRUNING_DATA_DIR unless moved one by one (PRUNING_RESULTS_DB, PRUNING_SESSIONS_DIR, "
                   "PRUNING_UPLOADS_DIR); weights under FACEDET_CACHE_DIR. See the README's set-up section.")

    st.subheader("Pages")
    for path, title, icon, text in PAGES[1:]:
        st.page_link(path, label=f"**{title}** — {text}", icon=icon)

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
        rows.append({"name": name, "detector": DETECTORS[entry.arch].display_name,
                     "criterion": entry.criterion.upper() if entry.criterion else "— (dense)",
                     "pruning rate": f"{round(entry.rate * 100)} %", "status": status, "file": str(found or entry.url)})
    # All 22 rows at once (no box that scrolls with a half-visible row).
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch", height="content")
    st.caption("Weights: released by the paper's authors for academic, non-commercial use only.")


home()
