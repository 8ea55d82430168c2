"""Cached library calls shared by the pages (one cache per process, whichever page asks first).

Models are identified by a short key string so that the caches can hash them cheaply:
``published:<registry name>`` (the paper's and B-FPGM's), ``file:<checkpoint path>``,
``oneshot:<arch>:<criterion>:<rate>``, ``oneshot:<arch>:<criterion>:groups=<r1,...,r6>`` (group rates) or
``peer:<registry name>`` (YuNet, run by OpenCV).
"""

import hashlib
import threading
from collections import OrderedDict

import streamlit as st


def published_key(name):
    return f"published:{name}"


def file_key(path):
    return f"file:{path}"


def oneshot_key(arch, criterion, rate, groups=None):
    if groups is not None:
        return f"oneshot:{arch}:{criterion}:groups={','.join(f'{r:g}' for r in groups)}"
    return f"oneshot:{arch}:{criterion}:{rate:.2f}"


def peer_key(name):
    return f"peer:{name}"


def _oneshot_rates(arch, rate):
    """The rates of a one-shot key's last part: a float, or group rates as ``{conv name: rate}``."""
    from app_support.engine import layer_rates_of_groups

    if rate.startswith("groups="):
        return layer_rates_of_groups(arch, [float(r) for r in rate[len("groups="):].split(",")])
    return float(rate)


# The pages detect on photos of every size and switch models often: PyTorch (BatchNorm folded) is
# ready at once, while ONNX Runtime costs an export per model (0.5-1 s) and a slow first run at
# each new input size, more than its faster steady state saves on one photo (measured with
# benchmarks/bench_compare_page.py). Latency figures use the faster steady state (``timed``).
INTERACTIVE_BACKEND = "torch"


MODELS_KEPT = 24
# Loaded models, shared by every page and browser session and by the Compare page's background
# warm-up thread (which Streamlit's caches do not serve: they expect a page's thread).
_MODELS, _MODELS_LOCK = OrderedDict(), threading.Lock()


def detector(model_key, backend=INTERACTIVE_BACKEND):
    """The facedet Detector for a model key (raises facedet errors for unusable checkpoints), loaded
    once per process; the ``MODELS_KEPT`` most recently used are kept."""
    key = (model_key, backend)
    with _MODELS_LOCK:
        if key in _MODELS:
            _MODELS.move_to_end(key)
            return _MODELS[key]
    loaded = _load(model_key, backend)
    with _MODELS_LOCK:
        _MODELS.setdefault(key, loaded)
        _MODELS.move_to_end(key)
        while len(_MODELS) > MODELS_KEPT:
            _MODELS.popitem(last=False)
        return _MODELS[key]


def _load(model_key, backend):
    from facedet.detector import Detector, load_detector

    kind, _, rest = model_key.partition(":")
    if kind == "peer":  # its own runtime (OpenCV): no backend to choose
        return load_detector(rest, device="auto")
    if kind in ("published", "file"):
        return load_detector(rest, device="auto", backend=backend)
    if kind == "oneshot":
        from app_support.engine import one_shot

        arch, criterion, rate = rest.split(":")
        base = detector(published_key(arch))
        return Detector(one_shot(base.model, criterion, _oneshot_rates(arch, rate)), arch, base.config, device="auto",
                        backend=backend)
    raise ValueError(f"unknown model key {model_key!r}")


@st.cache_data(max_entries=64, show_spinner="Finding the removed filters…")
def removed_filters(arch, criterion, rate, source, groups=None):
    """{layer: removed filter indices} of ``arch`` pruned by ``criterion`` at ``rate``: from the
    published checkpoint (its all-zero filters; ``source`` published or bfpgm, B-FPGM's at target
    sparsity ``rate``) or from the engine's one-shot selection (at the group rates ``groups``
    instead of ``rate`` when given)."""
    if source in ("published", "bfpgm"):
        from facedet.viz.layers import zero_filters
        from facedet.weights import bfpgm_name, pretrained_name

        name = pretrained_name(arch, criterion, rate) if source == "published" else bfpgm_name(arch, rate)
        zeros = zero_filters(detector(published_key(name)).model)
        return {layer: indices for layer, indices in zeros.items() if indices}
    from app_support.engine import layer_selection

    if groups is not None:
        from app_support.engine import layer_rates_of_groups

        rate = layer_rates_of_groups(arch, groups)
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
    """(total, nonzero) parameters; a peer's are its ONNX file's (``facedet.peers``)."""
    return tuple(detector(model_key).parameter_count())


@st.cache_data(show_spinner=False)
def flops(model_key):
    """GFLOPs of the model's nonzero convolution weights at 640x480 (None when they cannot be counted)."""
    counted = detector(model_key).conv_flops()
    return None if counted is None else counted / 1e9


def latency(model_key, refresh=False):
    """End-to-end latency stats at 640x480 on this machine, as ``facedet bench`` measures them:
    measured once per model and machine and remembered (``facedet.latency_records``), so a page
    reload, another page or a restarted server reuses the figure and says when it was taken."""
    from facedet.latency_records import remembered_latency

    return remembered_latency(detector(model_key, backend="auto"), refresh=refresh, runs=10, warmup=2)


def stored_latency(model_key):
    """The remembered latency stats of a model on this machine, or None (loads the model, as the
    page shows it: looking a figure up builds no second backend)."""
    from facedet.latency_records import stored_auto_latency

    return stored_auto_latency(detector(model_key))


def digest(data):
    return hashlib.sha1(data).hexdigest()


@st.cache_resource(max_entries=8, show_spinner=False)
def photo(image_key, _source, name=None):
    """The decoded RGB photo ``image_key`` names (a sample's path or an upload's bytes as
    ``_source``), decoded once and shared read-only: every rerun of a page (each slider step)
    would otherwise decode it again. Raises ``facedet.errors.ImageError`` for unusable input."""
    from facedet.images import read_image

    image = read_image(_source, name=name)
    image.setflags(write=False)
    return image


@st.cache_data(max_entries=32, show_spinner=False)
def picture(key, _draw):
    """``_draw()`` (an RGB array) as the JPEG bytes ``st.image`` would make of it (Pillow, quality
    100: the same file, so the browser is sent the same picture), drawn and encoded once per
    ``key``, which must name everything the drawing depends on (the photo, the display factor,
    the detections drawn). Moving a slider back to a value already shown then draws nothing."""
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(_draw()).save(buffer, format="JPEG", quality=100)
    return buffer.getvalue()
