"""What the pages state about models and measurements, computed from them (never hard-coded):
measured latency, what a one-shot rate really removes, published files that are one file, the
scale a photo is detected at."""

import streamlit as st

from facedet.errors import FacedetError
from facedet.models import DETECTORS
from facedet.weights import PRETRAINED

# ---- latency -------------------------------------------------------------------------------
# {model key: latency stats or None} this browser session has looked up or measured (the
# Trade-offs page and Compare share it); the figures themselves are remembered per model and
# machine across sessions and restarts (facedet.latency_records).
LATENCY_KEY = "latency_stats"
LATENCY_DEFINITION = ("the median of warm runs of the whole detection of a 640×480 photo, as `facedet bench` "
                      "measures it")


def latency_stats(model_key):
    """The remembered latency stats of a model on this machine, or None when never measured here."""
    known = st.session_state.setdefault(LATENCY_KEY, {})
    if model_key not in known:  # looked up once per browser session; measuring updates it
        from app_support import cached

        try:
            known[model_key] = cached.stored_latency(model_key)
        except FacedetError:  # its file is gone or damaged: nothing to look up (measuring it says why)
            return None
    return known[model_key]


def measured_latency(model_key, run=None):
    """``(ms, when and how it was measured)`` of a model's latency (``facedet bench``'s definition),
    from the remembered figures or from the store's record of the end of its session ``run``;
    None when neither has one."""
    from facedet.latency_records import when_and_how

    stats = latency_stats(model_key)
    if stats is not None:
        return stats["ms"], when_and_how(stats)
    if run and run.get("latency_setup") and run.get("latency_ms") is not None:
        return run["latency_ms"], f"measured when its session ended ({run['latency_setup']})"
    return None


def measure_latency(model_keys, refresh=False):
    """Measure (or, unless ``refresh``, read back) the latency of ``model_keys``."""
    from app_support import cached

    known = st.session_state.setdefault(LATENCY_KEY, {})
    for key in model_keys:
        known[key] = cached.latency(key, refresh=refresh)


# ---- one-shot rates --------------------------------------------------------------------------

def rate_label(rate, effect):
    """A slider's label for a one-shot rate (percent): ``25 % (= 30 %)``, ``5 % (removes nothing)``."""
    if effect.removed == 0:
        return f"{rate} % (removes nothing)"
    return f"{rate} %" + "".join(f" (= {other} %)" for other in effect.same_as)


def oneshot_text(rate, removed, effect, sparsity):
    """What a one-shot rate did, next to what was asked: ``requested 25 % → 212 of 1,234 filters
    removed (17.2 %), 23.0 % of the parameters zero; the same model as 30 %``."""
    if removed == 0:
        return f"requested {rate} % → 0 filters removed, model unchanged (the dense one)"
    same = "".join(f"; the same model as {other} %" for other in effect.same_as)
    return (f"requested {rate} % → {removed:,} of {effect.filters:,} filters removed "
            f"({removed / effect.filters:.1%}), {sparsity:.1%} of the parameters zero{same}")


def rounding_note(arch, effects):
    """A line saying which rates make the same model (or none), or None when every rate differs."""
    nothing = [f"{r} %" for r, e in effects.items() if e.removed == 0]
    alike = sorted({tuple(sorted((r,) + e.same_as)) for r, e in effects.items() if e.same_as and e.removed})
    parts = ([f"{' and '.join(nothing)} remove{'s' if len(nothing) == 1 else ''} nothing"] if nothing else []) \
        + [" = ".join(f"{r} %" for r in group) for group in alike]
    if not parts:
        return None
    return (f"Each layer loses int(n × rate) of its n filters, and {DETECTORS[arch].display_name}'s layers are small, so some "
            f"rates round alike: {'; '.join(parts)} (the rate's label says so).")


# ---- published checkpoints ---------------------------------------------------------------------

def published_label(name):
    """``EXTD L1 40 %`` (``EXTD dense``) for a registry name."""
    entry = PRETRAINED[name]
    if not entry.criterion:
        return f"{DETECTORS[entry.arch].display_name} dense"
    return f"{DETECTORS[entry.arch].display_name} {entry.criterion.upper()} {round(entry.rate * 100)} %"


def same_file_as(name):
    """The other registry names whose published file is ``name``'s (the same sha256)."""
    sha = PRETRAINED[name].sha256
    return [other for other, entry in PRETRAINED.items() if other != name and entry.sha256 == sha]


def same_file_note(names):
    """A sentence when two of ``names`` are one published file (the authors uploaded it twice), else None."""
    for i, name in enumerate(names):
        twins = [other for other in names[i + 1:] if other in same_file_as(name)]
        if twins:
            return (f"The authors' {published_label(name)} and {published_label(twins[0])} checkpoints are the same "
                    f"file (sha256 {PRETRAINED[name].sha256[:12]}…): the two criteria's results here are one model "
                    "shown twice, not two criteria agreeing.")
    return None


# ---- the detection scale -------------------------------------------------------------------------
SCALES = {
    "auto": "Automatic (the authors' demo size)",
    "1": "1× (the photo's own pixels)",
    "fit640": "Fit to 640 px (long side)",
    "custom": "Custom",
}
CUSTOM_SCALE_RANGE = (0.1, 4.0)


def detection_scale(mode, custom, height, width):
    """The scale to detect a ``height`` × ``width`` photo at for a ``SCALES`` choice (None: automatic)."""
    if mode == "auto":
        return None
    if mode == "1":
        return 1.0
    if mode == "fit640":
        return 640 / max(height, width)
    return float(custom)


def scale_text(mode, used, requested=None):
    """``scale 2.24 (automatic: the authors' demo size)``: the scale used, and how it was chosen."""
    from facedet.detector import MAX_SIDE

    how = {"auto": "automatic: the authors' demo size", "1": "1×: the photo's own pixels",
           "fit640": "fitted to 640 px on the long side", "custom": "custom"}[mode]
    if requested is not None and abs(used - requested) > 1e-6:
        how += f", reduced from {requested:.2f} by the {MAX_SIDE} px cap on the network input"
    return f"scale {used:.2f} ({how})"
