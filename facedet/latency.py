"""One definition of a detector's latency, used by ``facedet bench``, the results store and the app.

End to end: ``Detector.detect`` on a real photo resized to 640x480, at scale 1 (pre-processing,
network and NMS), keeping faces scoring at least 0.5 (``facedet detect``'s and the app's default;
WIDER FACE evaluation keeps everything above 0.05 and spends more in NMS), warm-up runs excluded, the median of repeated runs, with the thread count and the
backend stated. The network's own median is the second figure (for a peer run by OpenCV, YuNet,
it is OpenCV's whole ``FaceDetectorYN.detect``, which decodes and runs NMS itself). A real photo, because on noise the
candidate boxes (and so NMS) are nothing like a photo's.
"""

import statistics

from facedet.assets import asset_path

LATENCY_SIZE = (640, 480)  # width, height
# A real group photo (13 faces; facedet/assets/README.md).
DEFAULT_PHOTO = asset_path("photos", "holdout", "office-group-13.jpg")


LATENCY_THRESHOLD = 0.5


def measure_latency(detector, width=LATENCY_SIZE[0], height=LATENCY_SIZE[1], runs=20, warmup=3, image=None,
                    progress=False, threshold=LATENCY_THRESHOLD):
    """Milliseconds of ``detector`` on ``image`` (RGB; default a real group photo) resized to
    ``width`` x ``height``: ``ms`` (end to end) and ``network_ms`` medians, the pre- and
    post-processing medians, min and max, and what was measured (device, backend, threads, size)."""
    return measure_latencies({None: detector}, width, height, runs, warmup, image, progress, threshold)[None]


def measure_latencies(detectors, width=LATENCY_SIZE[0], height=LATENCY_SIZE[1], runs=20, warmup=3, image=None,
                      progress=False, threshold=LATENCY_THRESHOLD):
    """``measure_latency`` of each of ``detectors`` (``{key: detector}``), their timed runs
    interleaved (A, B, C, A, B, C ...) so that a change of load on a shared machine falls on all of
    them alike; ``runs`` is one count or ``{key: count}``. Returns ``{key: stats}``."""
    import cv2
    import numpy as np
    import torch
    from tqdm import tqdm

    if image is None and DEFAULT_PHOTO.is_file():
        from facedet.images import read_image

        image = read_image(DEFAULT_PHOTO)
    if image is None:
        image = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    image = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
    counts = runs if isinstance(runs, dict) else {key: runs for key in detectors}
    samples = {key: [] for key in detectors}
    # A peer running through OpenCV (YuNet) gets the same thread count as torch and ONNX Runtime.
    opencv_threads = cv2.getNumThreads()
    cv2.setNumThreads(torch.get_num_threads())
    try:
        for detector in detectors.values():
            for _ in range(warmup):
                detector.detect(image, scale=1.0, threshold=threshold)
        for round_ in tqdm(range(max(counts.values(), default=0)), desc="timing", disable=not progress, leave=False):
            for key, detector in detectors.items():
                if round_ < counts[key]:
                    timing = {}
                    detector.detect(image, scale=1.0, threshold=threshold, timings=timing)
                    samples[key].append(timing)
    finally:
        cv2.setNumThreads(opencv_threads)
    return {key: _stats(detector, samples[key], width, height, threshold) for key, detector in detectors.items()}


def _stats(detector, samples, width, height, threshold):
    import torch

    totals = [s["pre_ms"] + s["net_ms"] + s["post_ms"] for s in samples]
    return {
        "ms": statistics.median(totals),
        "network_ms": statistics.median(s["net_ms"] for s in samples),
        "pre_ms": statistics.median(s["pre_ms"] for s in samples),
        "post_ms": statistics.median(s["post_ms"] for s in samples),
        "ms_min": min(totals),
        "ms_max": max(totals),
        "device": str(detector.device),
        "backend": detector.backend,
        "form": getattr(getattr(detector, "network", None), "form", "as loaded"),  # a compaction ONNX Runtime runs
        "threads": torch.get_num_threads(),
        "size": f"{width}x{height}",
        "threshold": threshold,
        "runs": len(samples),
    }


def describe(stats):
    """A one-line statement of how a latency was measured."""
    form = f" (model {stats['form']})" if stats.get("form", "as loaded") != "as loaded" else ""
    return (f"median of {stats['runs']} warm runs, end to end at {stats['size']}, scores >= {stats['threshold']:g}, {stats['device']}, "
            f"{stats['backend']} backend{form}, {stats['threads']} thread{'s' if stats['threads'] != 1 else ''}")
