"""Compare: the original detector and a pruned one on the same photo (the paper's Figures 4-5);
either side can be a peer detector (YuNet) instead."""

from pathlib import Path

import streamlit as st

from app_support import cached, detections, facts, link
from app_support.page import (KEPT, DetectionProgress, choose, group_rates_text, kept, presentation, setup,
                              upload_limit)
from app_support import engine
from app_support.engine import DETECTORS, criterion_label, oneshot_criteria, session_checkpoints
from facedet.assets import asset_path
from facedet.compare import match_detections
from facedet.errors import FacedetError, ImageError
from facedet.peers import peer_label, peer_names
from facedet.samples import faces_for, sample_photos
from facedet.weights import BFPGM, PEERS, bfpgm_name, bfpgm_rates, pretrained_name
from facedet.viz.overlay import STYLES, annotate_original, annotate_pruned, fit_for_display, legend_html, png_bytes

ASSETS = asset_path()
# Real photographs first (held-out ones, then the quick preset's training photos), then the portraits
# and the composite of the generated sample set.
SAMPLES = {p.name: p.path for p in sample_photos()}
SAMPLES.update({p.name: p for p in sorted(ASSETS.iterdir()) if p.suffix.lower() in (".jpg", ".jpeg", ".png")})
DEFAULT_SAMPLE = "office-group-13.jpg"
SOURCES = {
    "published": "Published (the paper's)",
    "bfpgm": "B-FPGM (per-group rates)",
    "oneshot": "One-shot now (NO fine-tuning)",
    "session": "From my sessions",
    "peer": "Peer: YuNet (not pruned)",
}
SOURCES_HELP = ("The pruned model: a published checkpoint (SFP + fine-tuned, the paper's), a B-FPGM checkpoint "
                "(one rate per layer group; Kaparinos & Mezaris, WACVW 2025), a one-shot prune made now with NO "
                "fine-tuning, a model from your sessions, or a peer detector instead (YuNet, libfacedetection, "
                "through OpenCV; not pruned).")
PEERS_SHOWN = {name: peer_label(name) for name in peer_names()}
# The left side: the chosen detector's dense published model, or a peer as the reference instead.
LEFT = {"dense": "The detector's dense published model", **{n: f"{label} (peer)" for n, label in PEERS_SHOWN.items()}}
DEFAULT_SOURCE = "published"
PUBLISHED_CRITERIA = ["fpgm", "l1"]
PUBLISHED_RATES = [0, 10, 20, 30, 40, 50]
ONESHOT_RATES = list(range(5, 95, 5))
LINK_KEY = "compare_link"  # the query parameters this page last wrote
CANCELLED = "compare_cancelled"  # the detection request whose Cancel was clicked
# The pictures on a 1920 x 1080 screen: each of two columns is about 720 px wide, and a picture is at
# most half the screen's height tall, so that a portrait photo fits under the controls and the legend
# (and two-line titles) too.
PICTURE_WIDTH, PICTURE_HEIGHT = 720, 540
PICTURE_CSS = "<style>[data-testid='stImage'] img {max-height: 50vh; width: auto !important; max-width: 100%}</style>"

setup("Compare", "The original detector against a pruned one, on the same photo (the paper's Figures 4–5)")


def follow_link():
    """Take the choices of a link that was opened (query parameters this page did not write)."""
    params = st.query_params.to_dict()
    if params and params != st.session_state.get(LINK_KEY):
        for key, value in link.choices_from(params, st.session_state.get(KEPT + "source", DEFAULT_SOURCE)).items():
            choose(key, value)


def keep_link_updated():
    """The address bar names the comparison shown, so that copying it reopens this comparison."""
    params = link.params_for({key: st.session_state.get(KEPT + key) for key in link.CHOICE_KEYS})
    if st.query_params.to_dict() != params:
        st.query_params.from_dict(params)
    st.session_state[LINK_KEY] = params


def cancel_detection(request):
    st.session_state[CANCELLED] = request


def detection_wanted(request):
    """False (with a line saying so) while ``request``'s detection stays cancelled; another choice
    ends the cancellation."""
    if st.session_state.get(CANCELLED) != request:
        st.session_state.pop(CANCELLED, None)
        return True
    info, again = st.columns([5, 1], vertical_alignment="center")
    info.info("Detection cancelled. Choose another model or photo, or detect this one after all.")
    again.button("Detect", key="detect_anyway", on_click=st.session_state.pop, args=(CANCELLED, None))
    return False


def detect_both(request, image, titles):
    """The two sides' ``(detections, ms, scale)``. Those not remembered yet run under a progress bar
    with a Cancel button (clicking it, or any other choice, stops the detection at once)."""
    original_key, pruned_key, image_key, scale = request
    keys = (original_key, pruned_key)
    pending = [key for key in dict.fromkeys(keys) if detections.known(key, image_key, scale) is None]
    if not pending:
        return [detections.known(key, image_key, scale) for key in keys]
    status = st.empty()
    with status.container():
        bar_column, button = st.columns([6, 1], vertical_alignment="bottom")
        button.button("Cancel", key="cancel_detection", on_click=cancel_detection, args=(request,),
                      width="stretch")
        progress = DetectionProgress(bar_column.progress(0.0), [titles[key] for key in pending])
    for index, key in enumerate(pending):
        detections.detections(key, image_key, image, scale, progress=progress.model(index))
    status.empty()
    return [detections.known(key, image_key, scale) for key in keys]


def likely_next():
    """Model keys the presenter is likely to choose next, most likely first: the slider's
    neighbours, the other criterion, the other detector."""
    other_arch = next(a for a in DETECTORS if a != arch)
    keys = []
    if source == "published":
        at = PUBLISHED_RATES.index(rate)
        keys += [cached.published_key(pretrained_name(arch, criterion, r / 100))
                 for r in PUBLISHED_RATES[at + 1:at + 2] + PUBLISHED_RATES[max(at - 1, 0):at]]
        keys += [cached.published_key(pretrained_name(arch, c, rate / 100)) for c in PUBLISHED_CRITERIA if c != criterion]
        keys.append(cached.published_key(pretrained_name(other_arch, criterion, rate / 100)))
    elif source == "bfpgm":
        at = rates.index(rate)
        keys += [cached.published_key(bfpgm_name(arch, r / 100)) for r in rates[at + 1:at + 2] + rates[max(at - 1, 0):at]]
    elif source == "oneshot" and groups is None:
        at = ONESHOT_RATES.index(rate)
        keys += [cached.oneshot_key(arch, criterion, r / 100)
                 for r in ONESHOT_RATES[at + 1:at + 2] + ONESHOT_RATES[max(at - 1, 0):at]]
    elif source == "peer":
        keys += [cached.peer_key(p) for p in PEERS_SHOWN if p != peer]
    keys.append(cached.published_key(other_arch))
    return [key for key in dict.fromkeys(keys) if key not in (original_key, pruned_key)]


follow_link()
st.html(PICTURE_CSS)

# ---- choices: one row above the pictures, so that they are seen together on a projector; the
# rarer ones (an upload, the left side, the scale) behind "More". Each is kept when its widget is not
# drawn (another source, another page).
row = st.columns([2.1, 1.3, 2.2, 1.5, 2.3, 2.1, 1.1], gap="small")
with row[6].popover("More", icon=":material/tune:", width="stretch"):
    upload = st.file_uploader("Upload a photo", key="upload", help=upload_limit())
    left = kept(st.selectbox, "Left side", list(LEFT), format_func=LEFT.get, key="left", default="dense",
                allowed=LEFT, help="The model the right side is compared with: the dense original, or a peer detector.")
    scale_mode = kept(st.radio, "Scale (both models)", list(facts.SCALES), format_func=facts.SCALES.get, key="scale",
                      default="auto", allowed=facts.SCALES,
                      help="The photo is resized by this factor before the network. Automatic brings it to the "
                           "authors' demo size, which enlarges small photos a lot.")
    custom_scale = kept(st.number_input, "Custom scale", *facts.CUSTOM_SCALE_RANGE, step=0.1, key="scale_custom",
                        default=1.0) if scale_mode == "custom" else None
sample = kept(row[0].selectbox, "Photo" + (" (an upload is shown: see More)" if upload is not None else ""),
              list(SAMPLES), key="sample", default=DEFAULT_SAMPLE, allowed=SAMPLES, disabled=upload is not None)
arch = kept(row[1].radio, "Detector", list(DETECTORS), format_func=DETECTORS.get, horizontal=True, key="arch",
            default=next(iter(DETECTORS)), allowed=DETECTORS)
source = kept(row[2].selectbox, "Right side", list(SOURCES), format_func=SOURCES.get, key="source",
              default=DEFAULT_SOURCE, allowed=SOURCES, help=SOURCES_HELP)
threshold = kept(row[5].slider, "Score threshold (both sides)", 0.05, 0.95, step=0.05, key="threshold", default=0.5)
pruned_key, pruned_label, pruned_run = None, None, None
if source == "published":
    criterion = kept(row[3].radio, "Criterion", PUBLISHED_CRITERIA, format_func=str.upper, horizontal=True,
                     key="criterion", default="fpgm", allowed=PUBLISHED_CRITERIA)
    rate = kept(row[4].select_slider, "Pruning rate", options=PUBLISHED_RATES, key="rate", default=10,
                allowed=PUBLISHED_RATES, format_func=lambda r: f"{r} %" + (" (dense)" if r == 0 else ""))
    name = pretrained_name(arch, criterion, rate / 100)
    pruned_key = cached.published_key(name)
    twins = "".join(f"; the same file as {facts.published_label(t)}" for t in facts.same_file_as(name))
    pruned_label = (f"{DETECTORS[arch]} {criterion.upper()} {rate} %",
                    f"published: SFP-pruned and fine-tuned by the authors{twins}") if rate \
        else (f"{DETECTORS[arch]} dense", "the same dense model as on the left" if left == "dense"
              else "the dense published model")
elif source == "bfpgm":
    rates = bfpgm_rates(arch)
    rate = kept(row[4].select_slider, "Target sparsity", options=rates, key="bfpgm_rate", default=30 if 30 in rates
                else rates[-1], allowed=rates, format_func=lambda r: f"{r} %" + (" (B-FPGM's dense)" if r == 0 else ""))
    name = bfpgm_name(arch, rate / 100)
    pruned_key = cached.published_key(name)
    groups = BFPGM[name].group_rates
    pruned_label = (f"{DETECTORS[arch]} B-FPGM {rate} %" if rate else f"{DETECTORS[arch]} B-FPGM dense",
                    "published by B-FPGM's authors: " + (
                        "SFP + FPGM at per-group rates " + ", ".join(f"{r:.0%}" for r in groups)
                        + " (groups 1–6), fine-tuned" if groups else "their re-trained dense model"))
elif source == "peer":
    peer = kept(row[3].radio, "Peer detector", list(PEERS_SHOWN), format_func=PEERS_SHOWN.get, horizontal=True,
                key="peer", default=next(iter(PEERS_SHOWN)), allowed=PEERS_SHOWN)
    pruned_key = cached.peer_key(peer)
    pruned_label = (PEERS_SHOWN[peer], f"a peer detector, not pruned: {PEERS[peer].license.split(' (')[0]}, "
                                       "run by OpenCV's FaceDetectorYN")
elif source == "oneshot":
    criteria = oneshot_criteria()
    criterion = kept(row[3].selectbox, "Criterion", criteria, format_func=criterion_label, key="oneshot_criterion",
                     default="fpgm" if "fpgm" in criteria else criteria[0], allowed=criteria)
    try:
        effects = cached.rate_effects(arch, criterion, tuple(ONESHOT_RATES))
    except FacedetError:  # the dense model does not load: said below, where detection needs it
        effects = None
    rate = kept(row[4].select_slider, "Pruning rate", options=ONESHOT_RATES, key="oneshot_rate", default=30,
                allowed=ONESHOT_RATES,
                format_func=(lambda r: facts.rate_label(r, effects[r])) if effects else (lambda r: f"{r} %"),
                help="Each layer loses int(n × rate) of its n filters: on small layers nearby rates "
                     "round to the same model, and a low rate can remove nothing (the label says so).")
    try:
        groups = engine.group_rates(arch, group_rates_text(row[4], arch, "oneshot_group_rates"))
    except FacedetError as err:
        st.error(f"Group rates: {err}")
        st.stop()
    pruned_key = cached.oneshot_key(arch, criterion, rate / 100, groups)
    shown_rates = f"{rate} %" if groups is None else engine.describe_rates(arch, engine.layer_rates_of_groups(arch, groups))
    pruned_label = (f"{DETECTORS[arch]} {criterion_label(criterion)} {shown_rates}",
                    "one-shot pruned just now, NO fine-tuning")
else:
    sessions, problem = {}, None
    try:
        sessions = {run["id"]: (label, run) for label, run in session_checkpoints(arch).items()}
    except FacedetError as err:  # a damaged results store: the other sources still work
        problem = f"Your sessions are not available: {err}"
    if problem:
        st.error(problem)
    elif not sessions:
        st.info("No finished sessions for this detector yet: start one on the Prune page.")
    else:
        run_id = kept(row[4].selectbox, "Session", list(sessions), format_func=lambda i: sessions[i][0], key="session",
                      default=next(iter(sessions)), allowed=sessions)
        pruned_run = sessions[run_id][1]
        data = {"sample set": "the sample set, NOT WIDER FACE"}.get(engine.run_data(pruned_run), engine.run_data(pruned_run))
        agreement = engine.agreement_text(pruned_run)
        pruned_key = cached.file_key(pruned_run["checkpoint"])
        pruned_label = (engine.run_label(pruned_run, data=False), f"from your pruning session, trained on {data}"
                        + (f"; {agreement}" if agreement else ""))
keep_link_updated()

# ---- the photo -----------------------------------------------------------------------------
try:
    if upload is not None:
        data = upload.getvalue()
        image_key, image_name = cached.digest(data), Path(upload.name).stem
        image = cached.photo(image_key, data, name=upload.name)
    else:
        image_key, image_name = f"sample:{sample}", Path(sample).stem
        image = cached.photo(image_key, SAMPLES[sample])
except FacedetError as err:
    st.error(f"Cannot use this photo: {err}")
    st.stop()

if pruned_key is None:
    st.stop()

# ---- detection (remembered: moving the threshold re-uses it) ------------------------------------
original_key = cached.published_key(arch) if left == "dense" else cached.peer_key(left)
requested_scale = facts.detection_scale(scale_mode, custom_scale, *image.shape[:2])
request = (original_key, pruned_key, image_key, requested_scale)
if not detection_wanted(request):
    st.stop()
try:
    (original, original_ms, scale), (pruned, pruned_ms, pruned_scale) = detect_both(
        request, image, {original_key: DETECTORS[arch] if left == "dense" else PEERS_SHOWN[left],
                         pruned_key: pruned_label[0]})
except ImageError as err:  # a photo (or a scale) the detector cannot take: too thin for its input limits
    st.error(f"Cannot use this photo{'' if requested_scale is None else ' at this scale'}: {err}")
    st.stop()
except FacedetError as err:
    st.error(f"Cannot load the model: {err}")
    st.stop()
original = original[original[:, 4] >= threshold]
pruned = pruned[pruned[:, 4] >= threshold]
if source == "oneshot" and groups is not None:  # what the group rates really removed from this model
    removed = sum(map(len, cached.removed_filters(arch, criterion, None, "oneshot", groups).values()))
    total, nonzero = cached.parameter_count(pruned_key)
    pruned_label = (pruned_label[0], f"{pruned_label[1]} · {removed} filters removed, sparsity {1 - nonzero / total:.1%}")
elif source == "oneshot" and effects:  # the rate asked for, and what it really removed from this model
    removed = sum(map(len, cached.removed_filters(arch, criterion, rate / 100, "oneshot").values()))
    total, nonzero = cached.parameter_count(pruned_key)
    done = facts.oneshot_text(rate, removed, effects[rate], 1 - nonzero / total)
    pruned_label = (pruned_label[0], f"{pruned_label[1]} · {done}")
comparison = match_detections(original, pruned)
annotations = faces_for(sample) if upload is None else None
if annotations is not None and not len(annotations):
    annotations = None
if annotations is not None:
    from pruning.agreement import face_counts

    # (found, missed, boxes on no face) of each side against our hand annotations
    counts = [face_counts(dets, annotations, threshold) for dets in (original, pruned)]

left_title = ((f"Original: {DETECTORS[arch]}", "the dense published model") if left == "dense" else
              (f"Reference: {PEERS_SHOWN[left]}", "a peer detector (YuNet, through OpenCV), in the original's place"))
right_title = (f"Peer: {pruned_label[0]}" if source == "peer" else f"Pruned: {pruned_label[0]}", pruned_label[1])
style = STYLES["presentation" if presentation() else "screen"]
shown, factor = fit_for_display(image)
# Lines and labels are drawn for the width the picture is shown at (one of two columns of a
# 1920 px screen, narrower when the picture's height is what limits it).
shown_width = min(PICTURE_WIDTH, PICTURE_HEIGHT * image.shape[1] / image.shape[0])
# How the legend and captions name the two sides: the original and the pruned model, unless a peer stands there.
left_name = "the original" if left == "dense" else PEERS_SHOWN[left]
right_name = pruned_label[0] if source == "peer" else "the pruned model"
sides = (
    (left_title, original_key, original, original_ms, None,
     lambda img, f, width: annotate_original(img, original, f, style=style, shown_width=width)),
    (right_title, pruned_key, pruned, pruned_ms, pruned_run,
     lambda img, f, width: annotate_pruned(img, pruned, original, comparison, f, style=style, shown_width=width)),
)
# The legend, with how many boxes of each kind the pictures hold, just above them.
st.markdown(
    "<div style='font-size:1.15rem'>" + legend_html(
        {"matched": len(comparison.matched), "only_pruned": len(comparison.only_candidate),
         "only_original": len(comparison.missed)}, style,
        names={"only_pruned": f"only {right_name} finds", "only_original": f"only {left_name} finds (dashed)"})
    + " &emsp; <span style='opacity:0.75'>(paired one-to-one at IoU ≥ 0.5)</span></div>", unsafe_allow_html=True)
# Row by row (titles, pictures, figures), so that the two pictures line up whatever the titles' length.
for column, ((title, subtitle), *_) in zip(st.columns(2, gap="medium"), sides):
    column.subheader(title)
    column.caption(subtitle)
for side, (column, (_, _, dets, *_, draw)) in enumerate(zip(st.columns(2, gap="medium"), sides)):
    # What the picture shows (photo, size, style, both sides' boxes): drawn and encoded once.
    drawn = (side, image_key, factor, shown_width, style, dets.tobytes(), original.tobytes())
    column.image(cached.picture(drawn, lambda draw=draw: draw(shown, factor, shown_width)), width="stretch",
                 output_format="JPEG")  # JPEG: sent faster
for side, (column, (_, key, dets, ms, run, draw)) in enumerate(zip(st.columns(2, gap="medium"), sides)):
    with column:
        total, nonzero = cached.parameter_count(key)
        faces = st.columns(3 if annotations is not None else 2)
        faces[0].metric("Faces", len(dets))
        if annotations is not None:
            faces[1].metric("Annotated faces found", f"{counts[side][0]} of {len(annotations)}",
                            help=f"Our hand annotations of this photo; {counts[side][2]} of the boxes are on no "
                                 "annotated face.")
        faces[-1].metric("Parameters (nonzero)", f"{nonzero:,}")
        times = st.columns(2)
        # Cached with the detections: the first detection of this photo, warm-up and all; never the model's speed.
        times[0].metric("Time on this photo (first run)", f"{ms:,.0f} ms",
                        help="Pre-processing, network and NMS the first time this photo was detected at this scale.")
        latency = facts.measured_latency(key, run)
        times[1].metric("Latency (640×480, warm)", f"{latency[0]:,.1f} ms" if latency else "not measured",
                        help=f"{facts.LATENCY_DEFINITION}; " + (latency[1] if latency else
                             "measure it with the button below or on the Trade-offs page (Latency here)."))
        if key.startswith("peer:"):  # an ONNX file: what it holds, beside the trained model's published count
            st.caption(f"{total:,} parameters in its ONNX file (BatchNorm folded into the convolutions); "
                       f"{PEERS[key.split(':', 1)[1]].nonzero_parameters:,} as published (the trained model).")
        else:
            st.caption(f"{total:,} parameters in total, {1 - nonzero / total:.1%} zero.")
        st.download_button(f"Download this image ({image.shape[1]}×{image.shape[0]})",
                           data=lambda draw=draw: png_bytes(draw(image, 1.0, None)),
                           file_name=f"{image_name}-{key.split(':', 1)[1].replace('/', '_').replace(':', '-')[-60:]}.png",
                           mime="image/png", key=f"download-{side}")

unmeasured = [key for key, run in ((original_key, None), (pruned_key, pruned_run))
              if not facts.measured_latency(key, run)]
if unmeasured:
    st.button("Measure the latency (640×480, a few seconds a model)", key="measure_latency",
              on_click=facts.measure_latency, args=(unmeasured,))

# A peer's automatic scale is the photo's own size, ours the authors' demo size: say so when they differ.
ran_at = facts.scale_text(scale_mode, scale, requested_scale) if abs(pruned_scale - scale) < 1e-6 else (
    f"{facts.scale_text(scale_mode, scale, requested_scale)} (left) and "
    f"{facts.scale_text(scale_mode, pruned_scale, requested_scale)} (right; a peer's automatic scale is 1, "
    "capped like ours)")
st.caption(
    f"Both models ran on the full {image.shape[1]}×{image.shape[0]} photo at "
    f"{ran_at}; the display is {'shrunk' if factor < 1 else 'shown'} "
    f"at {factor:.0%}. {left_name[0].upper() + left_name[1:]} is not ground truth: a box only it finds may be a "
    "false box of its own (on a photo without faces, every one is)."
)
st.caption(
    f"Time on this photo (first run): pre-processing, network and NMS on this machine's "
    f"{cached.detector(original_key).device.type.upper()} the first time each model detected this photo at this "
    f"scale, warm-up included; it is not the model's speed. Latency: {facts.LATENCY_DEFINITION}, measured here "
    "(the button above, or the Trade-offs page). Masked models (published, one-shot, sessions) still run the dense "
    "convolutions, so their latency is the dense model's."
    + (" YuNet runs through OpenCV's FaceDetectorYN (its own pre-processing, decoding and NMS), on the CPU."
       if left != "dense" or source == "peer" else "")
)
if annotations is not None:
    st.caption(f"This photo has {len(annotations)} hand-annotated faces (ours). {left_title[0].split(': ')[0]}: "
               f"{counts[0][0]} found, {counts[0][2]} boxes on no face; {right_title[0].split(': ')[0].lower()}: "
               f"{counts[1][0]} found, {counts[1][2]} boxes on no face "
               f"(IoU ≥ 0.4, score ≥ {threshold:.2f}).")
if source == "oneshot" and effects:
    note = facts.rounding_note(arch, effects)
    if note:
        st.caption(note)


# While the presenter talks, the models likely to be chosen next are detected on this photo.
detections.warm(likely_next(), image_key, image, requested_scale)
