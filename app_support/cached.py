"""Cached library calls shared by the pages (one cache per process, whichever page asks first).

Models are identified by a short key string so that the caches can hash them cheaply:
``published:<registry name>``, ``file:<checkpoint path>`` or ``oneshot:<arch>:<criterion>:<rate>``.
"""

import hashlib

import streamlit as st


def published_key(name):
    return f"published:{name}"


def file_key(path):
    return f"file:{path}"


def oneshot_key(arch, criterion, rate):
    return f"oneshot:{arch}:{criterion}:{rate:.2f}"


# The pages detect on photos of every size and switch models often: PyTorch (BatchNorm folded) is
# ready at once, while ONNX Runtime costs an export per model (0.5-1 s) and a slow first run at
# each new input size, more than its faster steady state saves on one photo (measured with
# benchmarks/bench_compare_page.py). Latency figures use the faster steady state (``timed``).
INTERACTIVE_BACKEND = "torch"


@st.cache_resource(max_entries=24, show_spinner="Loading the model…")
def detector(model_key, backend=INTERACTIVE_BACKEND):
    """The facedet Detector for a model key (raises facedet errors for unusable checkpoints)."""
    from facedet.detector import Detector, load_detector

    kind, _, rest = model_key.partition(":")
    if kind in ("published", "file"):
        return load_detector(rest, device="auto", backend=backend)
    if kind == "oneshot":
        from app_support.engine import one_shot

        arch, criterion, rate = rest.split(":")
        base = detector(published_key(arch))
        return Detector(one_shot(base.model, criterion, float(rate)), arch, base.config, device="auto",
                        backend=backend)
    raise ValueError(f"unknown model key {model_key!r}")


@st.cache_data(max_entries=64, show_spinner="Detecting faces…")
def detections(model_key, image_key, _image, scale=None):
    """All detections scoring 0.05 or more (the slider filters them later), the milliseconds this
    first detection took (cached with it: a first run, not the model's latency) and the scale the
    image was run at: ``scale``, or the detector's automatic one for None. ``image_key`` identifies
    ``_image``, which is not hashed."""
    det = detector(model_key)
    used = det.scale_for(*_image.shape[:2], scale)
    timings = {}
    dets = det.detect(_image, scale=used, threshold=0.05, timings=timings)
    return dets, sum(timings.values()), used


@st.cache_data(max_entries=64, show_spinner="Finding the removed filters…")
def removed_filters(arch, criterion, rate, source):
    """{layer: removed filter indices} of ``arch`` pruned by ``criterion`` at ``rate``: from the
    published checkpoint (its all-zero filters) or from the engine's one-shot selection."""
    if source == "published":
        from facedet.viz.layers import zero_filters
        from facedet.weights import pretrained_name

        zeros = zero_filters(detector(published_key(pretrained_name(arch, criterion, rate))).model)
        return {layer: indices for layer, indices in zeros.items() if indices}
    from app_support.engine import layer_selection

    return layer_selection(detector(published_key(arch)).model, criterion, rate)


@st.cache_data(max_entries=32, show_spinner=False)
def rate_effects(arch, criterion, rates):
    """``{rate: pruning.criteria.RateEffect}`` of one-shot ``criterion`` on ``arch``'s dense model, for
    ``rates`` in percent (and ``same_as`` in percent)."""
    import dataclasses

    from app_support.engine import rate_effects as effects

    found = effects(detector(published_key(arch)).model, criterion, [r / 100 for r in rates])
    return {round(rate * 100): dataclasses.replace(effect, same_as=tuple(round(r * 100) for r in effect.same_as))
            for rate, effect in found.items()}


@st.cache_data(max_entries=64, show_spinner=False)
def parameter_count(model_key):
    from facedet.params import count_parameters

    return tuple(count_parameters(detector(model_key).model))


@st.cache_data(show_spinner=False)
def flops(model_key):
    """GFLOPs of the model's nonzero convolution weights at 640x480."""
    from facedet.viz.cost import nonzero_conv_flops

    return nonzero_conv_flops(detector(model_key).model) / 1e9


def latency(model_key, refresh=False):
    """End-to-end latency stats at 640x480 on this machine, as ``facedet bench`` measures them:
    measured once per model and machine and remembered (``facedet.latency_records``), so a page
    reload, another page or a restarted server reuses the figure and says when it was taken."""
    from facedet.latency_records import remembered_latency

    return remembered_latency(detector(model_key, backend="auto"), refresh=refresh, runs=10, warmup=2)


def stored_latency(model_key):
    """The remembered latency stats of a model on this machine, or None (loads the model)."""
    from facedet.latency_records import stored_latency as lookup

    return lookup(detector(model_key, backend="auto"))


@st.cache_data(max_entries=32, show_spinner="Running the model over the evaluation images…")
def pr_curves(checkpoint, root, gt_dir, limit=None):
    """APs and precision-recall curves of a checkpoint on a split's validation images (single
    scale, as the sessions evaluate): ({easy, medium, hard}, {setting: (recall, precision)})."""
    from facedet.wider.evaluation import evaluate
    from facedet.wider.protocols import predict_split

    predictions = predict_split(detector(file_key(checkpoint)), root, "val", limit=limit)
    ap = evaluate(predictions, gt_dir, only_predicted=limit is not None)
    return ap.as_dict(), {setting: (recall, precision) for setting, (precision, recall) in ap.curves.items()}


def digest(data):
    return hashlib.sha1(data).hexdigest()
