"""Our detectors and the peers side by side: the same photos, the same machine, one run.

Rows: our dense models, the paper's published pruned checkpoints, B-FPGM's, compacted models
(channels removed, ``pruning.compact``) and YuNet-n/-s (``facedet.peers``, through OpenCV). Columns:
parameters (nonzero; YuNet: its ONNX file's, BatchNorm folded, with the published count beside it),
GFLOPs of the nonzero convolution weights at 640x480 (``facedet.viz.cost``; YuNet counted the same
way from its ONNX graph), end-to-end latency at 640x480 (``facedet.latency``: a real photo, median of
warm runs, the thread count stated) and recall / precision at score >= 0.5 against our hand
annotations of the held-out photos (``assets/photos/holdout``, one-to-one at IoU >= 0.4,
``pruning.agreement.face_counts``), each model at its own automatic scale.

    python benchmarks/bench_peers.py [--threads 1] [--runs 7] [--models eresfd extd yunet-n ...]
                                     [--compact eresfd-fpgm-50 ...] [--json FILE]

Timings move with whatever else runs on the machine: compare rows of the same run.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import cv2
import torch

from facedet.detector import Detector, load_detector
from facedet.images import read_image
from facedet.latency import DEFAULT_PHOTO, measure_latency
from facedet.peers import is_peer, peer_label
from facedet.samples import annotated
from facedet.weights import PEERS, load_model
from pruning.agreement import face_counts

# EResFD's, the size YuNet competes with; EXTD (20 GFLOPs, seconds a photo here) only when asked:
# --models extd extd-fpgm-50 (benchmarks/bench_latency.py times all of them).
MODELS = ("eresfd", "eresfd-fpgm-30", "eresfd-fpgm-50", "bfpgm-eresfd", "bfpgm-eresfd-30", "bfpgm-eresfd-60",
          "yunet-n", "yunet-s")
COMPACT = ("eresfd-fpgm-50", "bfpgm-eresfd-60", "extd-fpgm-50")
SCORE = 0.5


def detectors(models, compact):
    """(row label, detector, published parameter count or None) for each model, compacted ones after
    the one they come from."""
    for name in models:
        if is_peer(name):
            yield peer_label(name), load_detector(name), PEERS[name].nonzero_parameters
            continue
        model, ckpt = load_model(name)
        yield name, Detector(model, ckpt.arch, device="cpu", backend="auto"), None
        if name in compact:
            from pruning.compact import compact_model

            yield f"{name} compact", Detector(compact_model(model).model.eval(), ckpt.arch, device="cpu",
                                              backend="auto"), None


def accuracy(detector, photos):
    """(recall, precision, found, faces, false boxes) against the hand annotations."""
    found = missed = false = 0
    for image, faces in photos:
        f, m, e = face_counts(detector.detect(image, threshold=SCORE), faces, SCORE)
        found, missed, false = found + f, missed + m, false + e
    boxes = found + false
    return found / (found + missed), found / boxes if boxes else float("nan"), found, found + missed, false


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="threads for every runtime (default 1)")
    parser.add_argument("--runs", type=int, default=7, help="timed runs per model (EXTD: 3)")
    parser.add_argument("--models", nargs="+", default=list(MODELS), help="registry names (ours, B-FPGM's, peers)")
    parser.add_argument("--compact", nargs="*", default=list(COMPACT), help="of those, the ones also timed compacted")
    parser.add_argument("--json", help="also write the rows to this file")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)

    photos = [(read_image(p.path), p.faces) for p in annotated("holdout")]
    faces = sum(len(f) for _, f in photos)
    print(f"{len(photos)} held-out photos, {faces} hand-annotated faces; CPU, {args.threads} thread(s) for "
          f"torch, ONNX Runtime and OpenCV; scores >= {SCORE:g}", flush=True)
    header = (f"{'model':24} {'backend':8} {'parameters':>18} {'GFLOPs':>7} {'latency ms':>10} "
              f"{'recall':>7} {'precision':>9} {'false':>5}")
    print(header)
    print("-" * len(header), flush=True)
    rows = []
    started = time.perf_counter()
    for label, detector, published in detectors(args.models, args.compact):
        runs = args.runs if detector.arch != "extd" else min(args.runs, 3)
        stats = measure_latency(detector, runs=runs, warmup=1)
        flops = detector.conv_flops()
        count = detector.parameter_count()
        recall, precision, found, total, false = accuracy(detector, photos)
        row = dict(model=label, backend=detector.backend, parameters=count.nonzero, published_parameters=published,
                   gflops=None if flops is None else round(flops / 1e9, 3), latency_ms=round(stats["ms"], 1),
                   runs=runs, recall=round(recall, 3), precision=round(precision, 3), found=found, faces=total,
                   false_boxes=false)
        rows.append(row)
        shown = f"{count.nonzero:,}" + (f" ({published:,} publ.)" if published else "")
        gflops = "–" if flops is None else f"{flops / 1e9:.3f}"
        print(f"{label:24} {detector.backend:8} {shown:>18} {gflops:>7} {stats['ms']:10.1f} {recall:7.3f} "
              f"{precision:9.3f} {false:5d}", flush=True)
    setup = (f"median of {args.runs} warm runs (EXTD: 3), end to end at 640x480 on {Path(DEFAULT_PHOTO).name}, "
             f"scores >= {SCORE:g}, CPU, {args.threads} thread(s); backend: per row (auto: the faster here)")
    print(f"\nlatency: {setup}; {time.perf_counter() - started:.0f} s in all", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"threads": args.threads, "setup": setup, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
