"""Detection latency of every detector on the same photo, threads and size: ours against YuNet.

One run, one photo resized to 640x480 (default a real group photo), the same thread count for
every runtime. For each published checkpoint, on each backend asked for (``torch``: eager with
BatchNorm folded; ``onnx``: ONNX Runtime, a pruned model in the fastest of its exact forms,
``facedet.backends.onnx_network``, named in the row): the model as published and, for pruned ones,
the compacted model on torch (channels removed, ``pruning.compact``; ``--forms``: a row for each
ONNX form too); for dense ones also the network as it ran before the backends (the loaded model,
unfolded, subnormal weights kept). Columns: end-to-end median, pre-processing, network and NMS
medians (``facedet.latency``), and the ratio to YuNet-s. YuNet-n/-s (``facedet.peers``, registry
names ``yunet-n``/``yunet-s``) run through OpenCV's ``FaceDetectorYN``, timed the same way; their
"network" is OpenCV's whole detect (its own decoding and NMS). A model's rows and a YuNet-s are
timed interleaved (``facedet.latency.measure_latencies``), and the ratio is to that YuNet-s, so a
change of load on a shared machine moves a row and its reference alike. Last, NMS alone on 5,000
random candidates, and the whole post-processing of a real output at 0.05 and 0.5.

    python benchmarks/bench_latency.py [--threads 1] [--runs 15] [--family paper|bfpgm|all]
                                       [--models eresfd bfpgm-eresfd-30 ...] [--forms]
                                       [--backends torch onnx] [--no-compact] [--json FILE]

``--family`` picks the default rows: the paper's 22 checkpoints (default), B-FPGM's 9, or both.
Timings move with whatever else runs on the machine: compare rows of the same run, or ratios.
"""

import argparse
import json
import statistics
import sys
import time
from pathlib import Path


import cv2
import numpy as np
import torch

from facedet.backends import COMPACT_FORMS, OnnxNetwork, compacted_form
from facedet.detector import Detector
from facedet.errors import FacedetError
from facedet.images import read_image
from facedet.latency import DEFAULT_PHOTO, LATENCY_SIZE, LATENCY_THRESHOLD, measure_latencies
from facedet.nms import nms
from facedet.peers import load_peer, peer_label
from facedet.postprocess import PostprocessConfig, postprocess
from facedet.weights import FAMILIES, load_model, published
from pruning.compact import compact_model


class UnfoldedNetwork:
    """The network as it ran before the backends: the loaded model as is (BatchNorm unfolded,
    channels first, subnormal weights kept). For the dense rows' "before" figure."""

    name = "before"

    def __init__(self, model):
        self.model = model

    def __call__(self, x):
        return self.model(x)


def random_nms_ms(candidates=5000, runs=15):
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 1, (candidates, 2))
    boxes = np.concatenate((xy, xy + rng.uniform(0.005, 0.1, (candidates, 2))), axis=1).astype(np.float32)
    scores = rng.uniform(0.05, 1, candidates).astype(np.float32)
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        kept = nms(boxes, scores, 0.3, candidates, max_keep=750)
        samples.append((time.perf_counter() - start) * 1e3)
    return statistics.median(samples), len(kept)


def real_postprocess_ms(image, runs=25):
    """The whole post-processing (scores, candidate filter, top-k, decoding, NMS) of the dense EResFD's
    output for the photo, at WIDER FACE's candidate threshold 0.05 and at detect's 0.5: ``{threshold:
    (median ms, candidates, kept)}``, the two interleaved."""
    import dataclasses

    model, _ = load_model("eresfd")
    detector = Detector(model, "eresfd", device="cpu", backend="torch")
    height, width = image.shape[:2]
    with torch.inference_mode():
        loc, conf = detector.network(detector.preprocess(image, 1.0))
    priors = detector.priors(height, width)
    configs = {t: dataclasses.replace(PostprocessConfig(), score_threshold=t) for t in (0.05, 0.5)}
    samples = {t: [] for t in configs}
    for _ in range(runs):
        for t, config in configs.items():
            start = time.perf_counter()
            kept = postprocess(loc[0], conf[0], priors, width, height, config)
            samples[t].append((time.perf_counter() - start) * 1e3)
    candidates = {t: int((torch.softmax(conf[0], dim=-1)[:, 1] > t).sum()) for t in configs}
    return {t: (statistics.median(samples[t]), candidates[t], len(postprocess(loc[0], conf[0], priors, width, height, c)))
            for t, c in configs.items()}


def with_network(model, arch, network):
    """A Detector (pre- and post-processing as every row's) running ``network``."""
    detector = Detector(model, arch, device="cpu", backend="torch")
    detector.network = network
    return detector


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="threads for every runtime (default 1)")
    parser.add_argument("--runs", type=int, default=15, help="timed runs per row (EXTD rows: a third of it)")
    parser.add_argument("--family", default="paper", choices=(*FAMILIES, "all"),
                        help="whose published checkpoints (default the paper's 22; bfpgm: B-FPGM's 9)")
    parser.add_argument("--models", nargs="+", help="published names (default: every one of --family)")
    parser.add_argument("--backends", nargs="+", default=["torch", "onnx"], choices=("torch", "onnx"))
    parser.add_argument("--no-compact", action="store_true", help="skip the compacted rows")
    parser.add_argument("--forms", action="store_true",
                        help="pruned models: a row for each form ONNX Runtime can run (as loaded and both compactions)")
    parser.add_argument("--image", default=str(DEFAULT_PHOTO))
    parser.add_argument("--threshold", type=float, default=LATENCY_THRESHOLD,
                        help="faces kept (default 0.5, as detect; 0.05 is WIDER FACE evaluation's, NMS then dominates)")
    parser.add_argument("--json", help="also write the rows to this file")
    args = parser.parse_args()
    registry = published(None if args.family == "all" else args.family)
    args.models = args.models or sorted(registry)
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    width, height = LATENCY_SIZE
    image = cv2.resize(read_image(args.image), (width, height), interpolation=cv2.INTER_AREA)
    measure = dict(width=width, height=height, warmup=2, image=image, threshold=args.threshold)

    peers = {}
    for name in ("yunet-s", "yunet-n"):
        try:
            peers[name] = load_peer(name)
        except FacedetError as err:  # not on this machine and no network: the other rows still run
            print(f"({name}: {err}; row skipped)", file=sys.stderr)

    print(f"CPU, {args.threads} thread(s), {width}x{height} photo {Path(args.image).name}, "
          f"scores >= {args.threshold:g}, median of {args.runs} warm runs ({max(3, args.runs // 3)} for EXTD), "
          "each model's rows interleaved with a YuNet-s run (its ratio is to that YuNet-s)", flush=True)
    header = f"{'model':56} {'backend':8} {'end to end':>10} {'pre':>6} {'network':>8} {'NMS':>6} {'/ YuNet-s':>9}"
    print(header)
    print("-" * len(header))
    rows = []

    def show(label, backend, stats, reference):
        row = {"model": label, "backend": backend, **{k: stats[k] for k in ("ms", "pre_ms", "network_ms", "post_ms")},
               "yunet_s_ms": reference}
        ratio = f"{row['ms'] / reference:.2f}x" if reference else "–"
        print(f"{label:56} {backend:8} {row['ms']:10.1f} {row['pre_ms']:6.1f} {row['network_ms']:8.1f} {row['post_ms']:6.1f} "
              f"{ratio:>9}", flush=True)
        rows.append(row)

    if peers:
        stats = measure_latencies(peers, runs=args.runs, **measure)
        for name in peers:
            show(f"{peer_label(name)} (OpenCV)", "opencv", stats[name], stats.get("yunet-s", {}).get("ms"))
    for name in args.models:
        model, ckpt = load_model(name)
        pruned = bool(published()[name].rate)
        group = {}  # (label, backend shown) -> detector
        if not pruned:
            group[name + " (network as before)", "eager"] = with_network(model, ckpt.arch, UnfoldedNetwork(model))
        for backend in args.backends:
            detector = Detector(model, ckpt.arch, device="cpu", backend=backend)
            form = getattr(detector.network, "form", "as loaded")
            group[name + ("" if form == "as loaded" else f" (runs {form})"), backend] = detector
        if pruned and args.forms and "onnx" in args.backends:
            for form in ("as loaded", *COMPACT_FORMS):
                m = model if form == "as loaded" else compacted_form(model, form)
                group[f"{name}, {form}", "onnx"] = with_network(model, ckpt.arch, OnnxNetwork(m, form=form))
        if pruned and not args.no_compact and "torch" in args.backends:
            compact = compact_model(model).model.eval()
            group[name + " compact", "torch"] = Detector(compact, ckpt.arch, device="cpu", backend="torch")
        detectors = dict(group)
        if "yunet-s" in peers:
            detectors["yunet-s"] = peers["yunet-s"]
        stats = measure_latencies(detectors, runs=args.runs if ckpt.arch == "eresfd" else max(3, args.runs // 3), **measure)
        reference = stats["yunet-s"]["ms"] if "yunet-s" in stats else None
        for label, backend in group:
            show(label, backend, stats[label, backend], reference)
    ms, kept = random_nms_ms()
    print(f"\nNMS alone, 5,000 random candidates ({kept} kept, the 750 cap): {ms:.1f} ms")
    post = real_postprocess_ms(image)
    for threshold, (post_ms, candidates, kept) in post.items():
        print(f"Post-processing (scores, candidates, top-k, decoding, NMS) of dense EResFD's output for the photo at "
              f"{threshold:g}: {post_ms:.1f} ms ({candidates:,} candidates, {min(candidates, 5000):,} into NMS, {kept} kept)")
    if args.json:
        Path(args.json).write_text(json.dumps({"threads": args.threads, "size": f"{width}x{height}", "rows": rows,
                                               "random_nms_ms": ms, "postprocess_ms": {str(t): v[0] for t, v in post.items()}},
                                              indent=1))


if __name__ == "__main__":
    main()
