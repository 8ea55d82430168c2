"""Detections for the Compare page: remembered per model, photo and scale for the whole server
process; a slow first one reports its progress (and stops when the page is left or cancelled);
the models likely to be chosen next are detected in the background while nobody waits.

A first EXTD detection at the authors' demo size takes seconds per model on a CPU: warming the
neighbours of the chosen model (the next rate on the slider, the other criterion) makes moving the
slider during a talk immediate. The background work runs one model at a time, on one thread at a low
CPU priority, and stops at the next convolution whenever a page needs a detection of another
model (``facedet.detector.Detector.detect``'s ``cancel``), so it never slows down what is asked for.
"""

import atexit
import logging
import os
import threading
import time
from collections import OrderedDict

from facedet.errors import DetectionCancelled, FacedetError

REMEMBERED = 64  # detections kept (each at most 750 boxes: a few kB)
_LOG = logging.getLogger(__name__)


class _Work:
    """The process-wide state: what is done, what pages wait for, the warm-up plan."""

    def __init__(self):
        self.lock = threading.Condition()
        self.done = OrderedDict()  # (model key, image key, scale) -> (detections, ms, scale used)
        self.wanted = {}  # key -> how many page runs wait for it now
        self.plan = []  # [(key, image)] to warm, most likely first
        self.running = None  # the key the background thread detects now
        self.running_progress = 0.0
        self.thread = None
        self.closing = False  # the interpreter exits: the thread ends


_WORK = _Work()


def _key(model_key, image_key, scale):
    return model_key, image_key, None if scale is None else round(float(scale), 6)


def known(model_key, image_key, scale=None):
    """The remembered detections of a model on a photo at a scale, or None."""
    with _WORK.lock:
        return _WORK.done.get(_key(model_key, image_key, scale))


def _remember(key, result):
    with _WORK.lock:
        _WORK.done[key] = result
        _WORK.done.move_to_end(key)
        while len(_WORK.done) > REMEMBERED:
            _WORK.done.popitem(last=False)
        _WORK.lock.notify_all()


def _detect(model_key, image, scale, progress=None, cancel=None):
    """All detections scoring 0.05 or more (the page's threshold filters them), the milliseconds
    this detection took (a first run: never the model's latency) and the scale the image ran at."""
    from app_support.cached import detector

    det = detector(model_key)
    used = det.scale_for(*image.shape[:2], scale)
    timings = {}
    dets = det.detect(image, scale=used, threshold=0.05, timings=timings, progress=progress, cancel=cancel)
    return dets, sum(timings.values()), used


def detections(model_key, image_key, image, scale=None, progress=None):
    """``(detections, ms, scale used)`` of ``model_key`` on ``image`` (``image_key`` names it),
    remembered. ``progress(fraction)`` is called while it runs (a Streamlit element updated from it
    lets the page be left or cancelled mid-detection). Raises facedet errors for unusable models."""
    key = _key(model_key, image_key, scale)
    with _WORK.lock:
        if key in _WORK.done:
            _WORK.done.move_to_end(key)
            return _WORK.done[key]
        _WORK.wanted[key] = _WORK.wanted.get(key, 0) + 1
    try:
        adopted = _wait_for_the_background(key, progress)
        if adopted is not None:
            return adopted
        result = _detect(model_key, image, scale, progress=progress)
        _remember(key, result)
        return result
    finally:
        with _WORK.lock:
            _WORK.wanted[key] -= 1
            if not _WORK.wanted[key]:
                del _WORK.wanted[key]
            _WORK.lock.notify_all()


def _wait_for_the_background(key, progress):
    """When the background thread is detecting ``key`` already, wait for it (showing its progress)
    rather than start again; None when it is not, or when it gave up."""
    while True:
        with _WORK.lock:
            if key in _WORK.done:
                return _WORK.done[key]
            if _WORK.running != key:
                return None
            fraction = _WORK.running_progress
            _WORK.lock.wait(timeout=0.25)
        if progress is not None:
            progress(fraction)


def warm(model_keys, image_key, image, scale=None):
    """Detect ``model_keys`` (most likely next first) on this photo in the background, replacing
    the previous plan; those done already are skipped."""
    with _WORK.lock:
        _WORK.plan = [(_key(m, image_key, scale), image) for m in model_keys]
        if _WORK.thread is None or not _WORK.thread.is_alive():
            _WORK.thread = threading.Thread(target=_warm_up, name="facedet-warm-up", daemon=True)
            _WORK.thread.start()
        _WORK.lock.notify_all()


def _yield_to_pages(key):
    """The background detection of ``key`` stops when a page waits for another one, or when the
    plan no longer holds it (the page moved on)."""
    with _WORK.lock:
        return _WORK.closing or any(k != key for k in _WORK.wanted) or key not in {k for k, _ in _WORK.plan}


def _next_in_plan():
    """The first planned detection not done yet, once no page waits (under the lock); None when the
    interpreter exits."""
    while not _WORK.closing:
        if not _WORK.wanted:
            while _WORK.plan and _WORK.plan[0][0] in _WORK.done:
                _WORK.plan.pop(0)
            if _WORK.plan:
                return _WORK.plan[0]
        _WORK.lock.wait(timeout=5.0)
    return None


# Linux niceness of the warm-up thread: a page drawing (or another program) gets ~90 % of a core it
# shares with it. Not 19: on a machine busy with other work, the warm-up would then never get done.
NICENESS = 10


def _low_priority():
    """This thread, and the worker threads PyTorch starts from it, yield the CPU to everything else."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), NICENESS)
    except (AttributeError, OSError):  # not Linux: yielding to the pages' detections still holds
        pass


def _warm_up():
    _low_priority()
    while True:
        with _WORK.lock:
            planned = _next_in_plan()
            if planned is None:
                return
            key, image = planned
            _WORK.running, _WORK.running_progress = key, 0.0

        def progress(fraction):
            _WORK.running_progress = fraction

        result = None
        try:
            result = _detect(key[0], image, key[2], progress=progress, cancel=lambda: _yield_to_pages(key))
        except DetectionCancelled:
            pass  # a page needs the CPU, or moved on: the plan says whether to come back to it
        except FacedetError:
            _drop(key)  # an unusable model: the page says why if it is chosen
        except Exception:  # a bug must not end the thread; the server log keeps it
            _LOG.exception("background detection of %s failed", key[0])
            _drop(key)
        finally:
            with _WORK.lock:
                _WORK.running = None
                _WORK.lock.notify_all()
        if result is not None:
            _remember(key, result)


def _drop(key):
    with _WORK.lock:
        _WORK.plan = [(k, image) for k, image in _WORK.plan if k != key]


def stop_warming():
    """Forget the warm-up plan; a background detection under way stops at its next convolution."""
    with _WORK.lock:
        _WORK.plan = []
        _WORK.lock.notify_all()


@atexit.register
def _stop_before_exit():
    """A thread killed inside PyTorch at exit aborts the process: end it first."""
    with _WORK.lock:
        _WORK.closing = True
        _WORK.lock.notify_all()
    thread = _WORK.thread
    if thread is not None and thread.is_alive():
        thread.join(timeout=30)


def wait_until_warm(model_keys, image_key, scale=None, seconds=600):
    """Block until ``model_keys`` are done on this photo (for tests and benchmarks); True if so."""
    deadline = time.monotonic() + seconds
    keys = [_key(m, image_key, scale) for m in model_keys]
    with _WORK.lock:
        while not all(k in _WORK.done for k in keys):
            if time.monotonic() > deadline:
                return False
            _WORK.lock.wait(timeout=0.5)
    return True
