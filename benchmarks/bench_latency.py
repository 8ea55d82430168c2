"""Detection latency of every detector on the same photo, threads and size: ours against YuNet.

One run, one photo resized to 640x480 (default a real group photo), the same thread count for
every runtime. For each published checkpoint: the masked model (the file as published) and, for
pruned ones, the compacted model (channels removed, ``pruning.compact``), on each backend asked
for (``torch``: eager with BatchNorm folded; ``onnx``: ONNX Runtime). Columns: end-to-end median,
pre-processing, network and NMS medians (``facedet.latency``), and the ratio to YuNet-s. YuNet-n/-s
(``facedet.peers``, registry names ``yunet-n``/``yunet-s``) run through OpenCV's ``FaceDetectorYN``,
timed by the same ``measure_latency``; their "network" is OpenCV's whole detect (its own decoding and NMS). Last, NMS alone on 5,000 random candidates.

    python benchmarks/bench_latency.py [--threads 1] [--runs 15] [--family paper|bfpgm|all]
                                       [--models eresfd bfpgm-eresfd-30 ...]
                                       [--backends torch onnx] [--no-compact] [--json FILE]

``--family`` picks the default rows: the paper's 22 checkpoints (default), B-FPGM's 9, or both.
Timings move with whatever else runs on the machine: compare rows of the same run.
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

from facedet.detector import Detector
from facedet.errors import FacedetError
from facedet.images import read_image
from facedet.latency import DEFAULT_PHOTO, LATENCY_SIZE, LATENCY_THRESHOLD, measure_latency
from facedet.peers import load_peer, peer_label
from facedet.postprocess import nms
from facedet.weights import FAMILIES, load_model, published


class UnfoldedNetwork:
    """The network as it ran before the backends: the loaded model as is (BatchNorm unfolded,
    channels first, subnormal weights kept). For the dense rows' "before" figure."""

    name = "before"

    def __init__(self, model):
        self.model = model

    def __call__(self, x):
        return self.model(x)


def random_nms_ms(candidates=5000, runs=5):
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


def real_nms_ms(image, runs=10):
    """Median post-processing ms of the dense EResFD at threshold 0.05: every prior is a candidate."""
    model, _ = load_model("eresfd")
    detector = Detector(model, "eresfd", device="cpu", backend="torch")
    return measure_latency(detector, image.shape[1], image.shape[0], runs=runs, warmup=1, image=image,
                           threshold=0.05)["post_ms"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="threads for every runtime (default 1)")
    parser.add_argument("--runs", type=int, default=15, help="timed runs per row (EXTD rows: a third of it)")
    parser.add_argument("--family", default="paper", choices=(*FAMILIES, "all"),
                        help="whose published checkpoints (default the paper's 22; bfpgm: B-FPGM's 9)")
    parser.add_argument("--models", nargs="+", help="published names (default: every one of --family)")
    parser.add_argument("--backends", nargs="+", default=["torch", "onnx"], choices=("torch", "onnx"))
    parser.add_argument("--no-compact", action="store_true", help="skip the compacted rows")
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

    rows = []
    for name in ("yunet-s", "yunet-n"):
        try:
            peer = load_peer(name)
        except FacedetError as err:  # not on this machine and no network: the other rows still run
            print(f"({name}: {err}; row skipped)", file=sys.stderr)
            continue
        stats = measure_latency(peer, width, height, runs=args.runs, warmup=3, image=image, threshold=args.threshold)
        rows.append({"model": f"{peer_label(name)} (OpenCV)", "backend": "opencv",
                     **{k: stats[k] for k in ("ms", "pre_ms", "network_ms", "post_ms")}})
    reference = next((r["ms"] for r in rows if r["model"].startswith("YuNet-s")), None)

    print(f"CPU, {args.threads} thread(s), {width}x{height} photo {Path(args.image).name}, "
          f"scores >= {args.threshold:g}, median of {args.runs} warm runs ({max(3, args.runs // 3)} for EXTD)", flush=True)
    header = f"{'model':34} {'backend':8} {'end to end':>10} {'pre':>6} {'network':>8} {'NMS':>6} {'/ YuNet-s':>9}"
    print(header)
    print("-" * len(header))

    def show(row):
        ratio = f"{row['ms'] / reference:.2f}x" if reference else "–"
        parts = [f"{row[k]:6.1f}" if k in row else f"{'–':>6}" for k in ("pre_ms", "network_ms", "post_ms")]
        print(f"{row['model']:34} {row['backend']:8} {row['ms']:10.1f} {parts[0]} {parts[1]:>8} {parts[2]} {ratio:>9}",
              flush=True)
        rows.append(row) if row not in rows else None

    for row in list(rows):
        show(row)
    for name in args.models:
        model, ckpt = load_model(name)
        forms = [("", model)]
        if published()[name].rate and not args.no_compact:
            from pruning.compact import compact_model

            forms.append((" compact", compact_model(model).model.eval()))
        runs = args.runs if ckpt.arch == "eresfd" else max(3, args.runs // 3)
        if not published()[name].rate:
            detector = Detector(model, ckpt.arch, device="cpu", backend="torch")
            detector.network = UnfoldedNetwork(model)
            stats = measure_latency(detector, width, height, runs=runs, warmup=2, image=image, threshold=args.threshold)
            show({"model": name + " (network as before)", "backend": "eager", **{k: stats[k] for k in ("ms", "pre_ms", "network_ms", "post_ms")}})
        for suffix, m in forms:
            for backend in args.backends:
                stats = measure_latency(Detector(m, ckpt.arch, device="cpu", backend=backend), width, height,
                                        runs=runs, warmup=2, image=image, threshold=args.threshold)
                show({"model": name + suffix, "backend": backend, **{k: stats[k] for k in ("ms", "pre_ms", "network_ms", "post_ms")}})
    ms, kept = random_nms_ms()
    print(f"\nNMS alone, 5,000 random candidates ({kept} kept, the 750 cap): {ms:.1f} ms")
    post = real_nms_ms(image)
    print(f"Post-processing of dense EResFD on the photo at WIDER FACE's 0.05 (5,000 candidates enter NMS): {post:.1f} ms")
    if args.json:
        Path(args.json).write_text(json.dumps({"threads": args.threads, "size": f"{width}x{height}", "rows": rows,
                                               "random_nms_ms": ms}, indent=1))


if __name__ == "__main__":
    main()
