"""Compare: the original detector and a pruned one on the same photo (the paper's Figures 4-5)."""

from pathlib import Path

import streamlit as st

from app_support import cached
from app_support.page import legend, setup, upload_limit
from app_support import engine
from app_support.engine import DETECTORS, criterion_label, oneshot_criteria, session_checkpoints
from facedet.compare import match_detections
from facedet.errors import FacedetError, ImageError
from facedet.images import read_image
from facedet.samples import faces_for, sample_photos
from facedet.weights import pretrained_name
from facedet.viz.overlay import COLOURS, LEGEND, annotate_original, annotate_pruned, fit_for_display, png_bytes

ASSETS = Path(__file__).resolve().parent.parent / "assets"
# Real photographs first (held-out ones, then the quick preset's training photos), then the portraits
# and the composite of the generated sample set.
SAMPLES = {p.name: p.path for p in sample_photos()}
SAMPLES.update({p.name: p for p in sorted(ASSETS.iterdir()) if p.suffix.lower() in (".jpg", ".jpeg", ".png")})
DEFAULT_SAMPLE = "office-group-13.jpg"
SOURCES = {
    "published": "Published checkpoint (SFP + fine-tuned, the paper's)",
    "oneshot": "One-shot prune now (NO fine-tuning)",
    "session": "From my sessions",
}

setup("Compare", "The original detector against a pruned one, on the same photo (the paper's Figures 4–5)")

# ---- choices -------------------------------------------------------------------------------
with st.sidebar:
    st.header("Photo")
    upload = st.file_uploader("Upload a photo", key="upload", help=upload_limit())
    sample = st.selectbox("…or pick a sample", list(SAMPLES), index=list(SAMPLES).index(DEFAULT_SAMPLE),
                          key="sample", disabled=upload is not None)
    st.header("Models")
    arch = st.radio("Detector", list(DETECTORS), format_func=DETECTORS.get, horizontal=True, key="arch")
    source = st.radio("Pruned model", list(SOURCES), format_func=SOURCES.get, key="source")
    pruned_key, pruned_label = None, None
    if source == "published":
        criterion = st.radio("Criterion", ["fpgm", "l1"], format_func=str.upper, horizontal=True, key="criterion")
        rate = st.select_slider("Pruning rate", options=[0, 10, 20, 30, 40, 50], value=10,
                                format_func=lambda r: f"{r} %" + (" (dense)" if r == 0 else ""), key="rate")
        name = pretrained_name(arch, criterion, rate / 100)
        pruned_key = cached.published_key(name)
        pruned_label = (f"{DETECTORS[arch]} {criterion.upper()} {rate} %", "published: SFP-pruned and fine-tuned by the authors") if rate \
            else (f"{DETECTORS[arch]} dense", "the same dense model as on the left")
    elif source == "oneshot":
        criteria = oneshot_criteria()
        if not criteria:
            st.warning("The pruning engine is not available, so live pruning is off.")
        else:
            criterion = st.selectbox("Criterion", criteria, format_func=criterion_label, key="oneshot_criterion")
            rate = st.select_slider("Pruning rate", options=list(range(5, 95, 5)), value=30,
                                    format_func=lambda r: f"{r} %", key="oneshot_rate")
            pruned_key = cached.oneshot_key(arch, criterion, rate / 100)
            pruned_label = (f"{DETECTORS[arch]} {criterion_label(criterion)} {rate} %", "one-shot pruned just now, NO fine-tuning")
    else:
        sessions, problem = {}, None
        try:
            sessions = session_checkpoints(arch)
        except FacedetError as err:  # a damaged results store: the other sources still work
            problem = f"Your sessions are not available: {err}"
        if problem:
            st.error(problem)
        elif not sessions:
            st.info("No finished sessions for this detector yet: start one on the Prune page.")
        else:
            run = sessions[st.selectbox("Session", list(sessions), key="session")]
            data = {"sample set": "the sample set, NOT WIDER FACE"}.get(engine.run_data(run), engine.run_data(run))
            agreement = engine.agreement_text(run)
            pruned_key = cached.file_key(run["checkpoint"])
            pruned_label = (engine.run_label(run, data=False), f"from your pruning session, trained on {data}"
                            + (f"; {agreement}" if agreement else ""))
    st.header("Display")
    threshold = st.slider("Score threshold (both sides)", 0.05, 0.95, 0.5, 0.05, key="threshold")

# ---- the photo -----------------------------------------------------------------------------
try:
    if upload is not None:
        data = upload.getvalue()
        image = read_image(data, name=upload.name)
        image_key, image_name = cached.digest(data), Path(upload.name).stem
    else:
        image = read_image(SAMPLES[sample])
        image_key, image_name = f"sample:{sample}", Path(sample).stem
except FacedetError as err:
    st.error(f"Cannot use this photo: {err}")
    st.stop()

if pruned_key is None:
    st.stop()

# ---- detection (cached: moving the threshold re-uses it) -----------------------------------
original_key = cached.published_key(arch)
try:
    original, original_ms, scale = cached.detections(original_key, image_key, image)
    pruned, pruned_ms, _ = cached.detections(pruned_key, image_key, image)
except ImageError as err:  # a photo the detector cannot take (too thin for its input limits)
    st.error(f"Cannot use this photo: {err}")
    st.stop()
except FacedetError as err:
    st.error(f"Cannot load the model: {err}")
    st.stop()
original = original[original[:, 4] >= threshold]
pruned = pruned[pruned[:, 4] >= threshold]
comparison = match_detections(original, pruned)

shown, factor = fit_for_display(image)
sides = (
    ((f"Original: {DETECTORS[arch]}", "the dense published model"), original_key, original, original_ms,
     lambda img, f: annotate_original(img, original, f)),
    ((f"Pruned: {pruned_label[0]}", pruned_label[1]), pruned_key, pruned, pruned_ms,
     lambda img, f: annotate_pruned(img, pruned, original, comparison, f)),
)
# Row by row (titles, pictures, figures), so that the two pictures line up whatever the titles' length.
for column, ((title, subtitle), *_) in zip(st.columns(2, gap="medium"), sides):
    column.subheader(title)
    column.caption(subtitle)
for column, (_, _, _, _, draw) in zip(st.columns(2, gap="medium"), sides):
    column.image(draw(shown, factor), width="stretch", output_format="JPEG")  # JPEG: encoded and sent faster
for side, (column, (_, key, dets, ms, draw)) in enumerate(zip(st.columns(2, gap="medium"), sides)):
    with column:
        total, nonzero = cached.parameter_count(key)
        metrics = st.columns(3)
        metrics[0].metric("Faces", len(dets))
        metrics[1].metric("Parameters (nonzero)", f"{nonzero:,}")
        metrics[2].metric("Detection time", f"{ms:,.0f} ms")
        st.caption(f"{total:,} parameters in total, {1 - nonzero / total:.1%} zero.")
        st.download_button(f"Download this image ({image.shape[1]}×{image.shape[0]})",
                           data=lambda draw=draw: png_bytes(draw(image, 1.0)),
                           file_name=f"{image_name}-{key.split(':', 1)[1].replace('/', '_').replace(':', '-')[-60:]}.png",
                           mime="image/png", key=f"download-{side}")

legend({COLOURS[k]: text for k, text in LEGEND.items()})
st.caption(
    f"Both models ran on the full {image.shape[1]}×{image.shape[0]} photo at scale {scale:.2f} (the detector's "
    f"automatic scale); the display is {'shrunk' if factor < 1 else 'shown'} at {factor:.0%}. Matched: "
    f"{len(comparison.matched)}, only pruned: {len(comparison.only_candidate)}, missed: {len(comparison.missed)} "
    f"(one-to-one, IoU ≥ 0.5). Detection time: pre-processing, network and NMS for this photo on "
    f"this machine's {cached.detector(original_key).device.type.upper()}, measured when it was first detected "
    f"(the Trade-offs page times every model on the same 640×480 input)."
)
annotations = faces_for(sample) if upload is None else None
if annotations is not None and len(annotations):
    from pruning.agreement import face_counts

    counts = [face_counts(dets, annotations, threshold) for dets in (original, pruned)]
    st.caption(f"This photo has {len(annotations)} hand-annotated faces (ours). Original: {counts[0][0]} found, "
               f"{counts[0][2]} boxes on no face; pruned: {counts[1][0]} found, {counts[1][2]} boxes on no face "
               f"(IoU ≥ 0.4, score ≥ {threshold:.2f}).")
