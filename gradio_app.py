"""A small Gradio front for sharing one comparison: the original detector against a pruned one (or a
peer detector, YuNet) on a photo.

Not a second workbench: every figure comes from ``facedet.compare.compare_detectors`` (what
``python -m facedet compare A B IMAGE --json`` prints) and the pictures from ``facedet.viz.overlay``
(the Streamlit Compare page's colours). The named endpoint ``compare`` serves the same over HTTP.

``python gradio_app.py`` serves it on localhost:7860; ``GRADIO_SERVER_NAME`` / ``GRADIO_SERVER_PORT``
choose another address (Gradio reads them itself).
"""

import copy
import threading
import time
from collections import OrderedDict
from pathlib import Path

import gradio as gr

from facedet.compare import compare_detectors
from facedet.errors import FacedetError
from facedet.images import read_image
from facedet.models import DETECTORS
from facedet.peers import peer_label, peer_names
from facedet.samples import PHOTOS_DIR, sample_photos
from facedet.viz.overlay import annotate_original, annotate_pruned, fit_for_display, legend_html
from facedet.weights import BFPGM, PRETRAINED, pretrained_name

SOURCES = {
    "published": "Published checkpoint (SFP + fine-tuned, the paper's)",
    "bfpgm": "B-FPGM checkpoint (one rate per layer group; Kaparinos & Mezaris, WACVW 2025)",
    "oneshot": "One-shot prune now (no fine-tuning)",
    "peer": "A peer detector: YuNet (libfacedetection, through OpenCV; not pruned)",
}
PEERS_SHOWN = {name: peer_label(name) for name in peer_names()}  # yunet-n -> YuNet-n
PUBLISHED_CRITERIA = ["fpgm", "l1"]
PUBLISHED_RATES = dict(minimum=0, maximum=50, step=10, value=10)
ONESHOT_RATES = dict(minimum=5, maximum=90, step=5, value=30)
BFPGM_RATES = dict(minimum=0, maximum=60, step=10, value=30)  # target sparsities B-FPGM released (EResFD; EXTD: 20)
# The endpoint takes any rate either source may name (compare() refuses the ones naming no model); each
# browser session narrows the slider to its source's range.
API_RATES = dict(minimum=0, maximum=90, step=5, value=10)
SAMPLES = {p.name: str(p.path) for p in sample_photos()}  # real photos: held-out ones, then training ones
DEFAULT_SAMPLE = "office-group-13.jpg"
CACHED_DETECTORS = 8  # a few models stay loaded; each is a few MB


class DetectorCache:
    """Loaded detectors by key, least recently used dropped first (handlers run in threads)."""

    def __init__(self, size=CACHED_DETECTORS):
        self.size, self.items, self.lock = size, OrderedDict(), threading.Lock()

    def get(self, key, load):
        with self.lock:
            if key in self.items:
                self.items.move_to_end(key)
                return self.items[key]
        detector = load()  # outside the lock: a download or a one-shot selection takes seconds
        with self.lock:
            self.items[key] = detector
            while len(self.items) > self.size:
                self.items.popitem(last=False)
        return detector


DETECTOR_CACHE = DetectorCache()


def dense_detector(arch):
    from facedet.detector import load_detector

    return DETECTOR_CACHE.get(("published", arch), lambda: load_detector(arch, backend="torch"))


def published_detector(arch, criterion, rate):
    from facedet.detector import load_detector

    name = pretrained_name(arch, criterion, rate / 100)
    if name not in PRETRAINED:
        raise FacedetError(f"no published checkpoint {name!r}: the authors publish FPGM and L1 at 10-50 %")
    return name, DETECTOR_CACHE.get(("published", name), lambda: load_detector(name, backend="torch"))


def bfpgm_detector(arch, rate):
    """B-FPGM's checkpoint of ``arch`` at target sparsity ``rate`` % (0: its retrained dense model)."""
    from facedet.detector import load_detector

    name = f"bfpgm-{arch}-{round(rate)}" if rate else f"bfpgm-{arch}"
    if name not in BFPGM:
        raise FacedetError(f"no B-FPGM checkpoint {name!r}: B-FPGM released {', '.join(BFPGM)}")
    return name, DETECTOR_CACHE.get(("published", name), lambda: load_detector(name, backend="torch"))


def oneshot_detector(arch, criterion, rate):
    """``arch``'s dense model, one-shot pruned by ``criterion`` at ``rate`` % on a copy (no training)."""
    from facedet.detector import Detector
    from pruning.criteria import check_criterion, one_shot_prune

    check_criterion(criterion)

    def load():
        base = dense_detector(arch)
        model = copy.deepcopy(base.model)  # the cached dense model stays dense
        one_shot_prune(model, criterion, rate / 100)
        return Detector(model, arch, base.config, device=base.device, backend="torch")

    label = f"{arch} one-shot {criterion} {rate:g} % (no fine-tuning)"
    return label, DETECTOR_CACHE.get(("oneshot", arch, criterion, float(rate)), load)


def peer_detector(name):
    """A peer detector (YuNet-n or -s) by registry name, run by OpenCV."""
    from facedet.detector import load_detector

    if name not in PEERS_SHOWN:
        raise FacedetError(f"unknown peer detector {name!r}; choose one of {', '.join(PEERS_SHOWN)}")
    return name, DETECTOR_CACHE.get(("peer", name), lambda: load_detector(name))


def pruned_detector(arch, source, criterion, rate):
    """(label, Detector) of the pruned side (for source ``peer``, ``criterion`` names the peer and
    ``rate`` is unused); FacedetError for a choice that names no model."""
    if arch not in DETECTORS:
        raise FacedetError(f"unknown detector {arch!r}; choose one of {', '.join(DETECTORS)}")
    if source == "published":
        if criterion not in PUBLISHED_CRITERIA:
            raise FacedetError(f"published checkpoints are pruned by {' or '.join(PUBLISHED_CRITERIA)}, not {criterion!r}")
        return published_detector(arch, criterion, rate)
    if source == "bfpgm":
        if criterion != "fpgm":
            raise FacedetError(f"B-FPGM checkpoints are pruned by FPGM, not {criterion!r}")
        return bfpgm_detector(arch, rate)
    if source == "oneshot":
        return oneshot_detector(arch, criterion, rate)
    if source == "peer":
        return peer_detector(criterion)
    raise FacedetError(f"unknown source {source!r}; choose one of {', '.join(SOURCES)}")


def compare(image, arch, source, criterion, rate, threshold):
    """The endpoint: (original annotated, pruned annotated, summary). Errors reach the browser as one line."""
    try:
        if not image:
            raise FacedetError("upload a photo or pick a sample")
        photo = read_image(image, name=Path(image).name)  # the upload's name, not the server's temp path
        pruned_label, pruned = pruned_detector(arch, source, criterion, rate)
        original = dense_detector(arch)
        started = time.perf_counter()
        original_dets, pruned_dets, comparison, summary = compare_detectors(original, pruned, photo, threshold)
        elapsed_ms = (time.perf_counter() - started) * 1e3
    except FacedetError as err:
        raise gr.Error(str(err)) from None
    summary["reference"]["weights"], summary["candidate"]["weights"] = arch, pruned_label
    # One photo's wall time (both models, pre-processing to NMS, first runs included): not a model's speed.
    summary["milliseconds_this_photo"] = round(elapsed_ms, 1)
    shown, factor = fit_for_display(photo)
    return (annotate_original(shown, original_dets, factor),
            annotate_pruned(shown, pruned_dets, original_dets, comparison, factor), summary)


def summary_text(summary):
    """The figures under the pictures, from the endpoint's summary."""
    if not summary:
        return ""
    ref, cand = summary["reference"], summary["candidate"]
    return "\n".join([
        f"**Original** ({ref['weights']}): {ref['faces']} faces, {ref['nonzero_parameters']:,} of "
        f"{ref['parameters']:,} parameters nonzero",
        f"**{'Peer' if cand['detector'] == 'yunet' else 'Pruned'}** ({cand['weights']}): {cand['faces']} faces, {cand['nonzero_parameters']:,} of "
        f"{cand['parameters']:,} parameters nonzero",
        f"Found by both: {summary['matched']}, only the original finds: {summary['only_reference']}, only the "
        f"pruned model finds: {summary['only_candidate']} (one-to-one, IoU ≥ {summary['iou_threshold']:g}).",
        f"Time on this photo: {summary['milliseconds_this_photo']:,.0f} ms for both models together on this "
        "machine, first runs included; it is not the model's speed (masked models run the dense convolutions).",
    ])


def source_changed(source):
    """Criterion and rate choices of a source: the authors' two criteria and rates, or every engine criterion."""
    if source == "oneshot":
        from pruning.criteria import CRITERIA

        return (gr.update(choices=[(c.label, name) for name, c in CRITERIA.items()], value="fpgm", label="Criterion"),
                gr.update(label="Pruning rate (%)", **ONESHOT_RATES))
    if source == "peer":
        return (gr.update(choices=[(label, name) for name, label in PEERS_SHOWN.items()], value=next(iter(PEERS_SHOWN)),
                          label="Peer detector"),
                gr.update(label="Pruning rate (not used: a peer is not pruned)"))
    if source == "bfpgm":
        return (gr.update(choices=[("FPGM", "fpgm")], value="fpgm", label="Criterion"),
                gr.update(label="Target sparsity (%, 0 = B-FPGM's dense model; EXTD: 0 or 20)", **BFPGM_RATES))
    return (gr.update(choices=[(c.upper(), c) for c in PUBLISHED_CRITERIA], value="fpgm", label="Criterion"),
            gr.update(label="Pruning rate (%, 0 = dense)", **PUBLISHED_RATES))


def build_demo():
    with gr.Blocks(title="Pruned face detectors: compare") as demo:
        gr.Markdown("## The original detector against a pruned one, on the same photo")
        with gr.Row():
            with gr.Column(scale=1):
                image = gr.File(label="Photo (upload one, or pick a sample below)", type="filepath",
                                value=SAMPLES.get(DEFAULT_SAMPLE))
                sample = gr.Dropdown(list(SAMPLES), value=DEFAULT_SAMPLE, label="Sample photo")
                arch = gr.Radio([(spec.display_name, name) for name, spec in DETECTORS.items()],
                                value=next(iter(DETECTORS)), label="Detector")
                source = gr.Radio([(text, key) for key, text in SOURCES.items()], value="published",
                                  label="Pruned model")
                # Custom values: an API call may name any engine criterion for one-shot; compare() checks it.
                criterion = gr.Dropdown([(c.upper(), c) for c in PUBLISHED_CRITERIA], value="fpgm", label="Criterion",
                                        allow_custom_value=True)
                rate = gr.Slider(label="Pruning rate (%)", **API_RATES)
                threshold = gr.Slider(0.05, 0.95, value=0.5, step=0.05, label="Score threshold (both sides)")
                run = gr.Button("Compare", variant="primary")
            with gr.Column(scale=3):
                with gr.Row():
                    original_image = gr.Image(label="Original (dense, published)", type="numpy")
                    pruned_image = gr.Image(label="Pruned", type="numpy")
                gr.HTML(legend_html())
                figures = gr.Markdown()
                summary = gr.JSON(label="Summary (the endpoint's JSON)")
        sample.change(lambda name: SAMPLES[name], sample, image, api_name=False)
        demo.load(source_changed, source, [criterion, rate], api_name=False)
        source.change(source_changed, source, [criterion, rate], api_name=False)
        run.click(compare, [image, arch, source, criterion, rate, threshold],
                  [original_image, pruned_image, summary], api_name="compare")
        summary.change(summary_text, summary, figures, api_name=False)
    return demo


demo = build_demo()

if __name__ == "__main__":
    demo.launch(allowed_paths=[str(PHOTOS_DIR)])  # the sample photos are served from the project
