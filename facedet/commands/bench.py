"""``python -m facedet bench WEIGHTS``: inference latency, split into its stages."""

import json
import statistics
from pathlib import Path

from facedet import cli_types


def register(subparsers, name, help_text):
    p = subparsers.add_parser(name, help=help_text, description=help_text)
    p.add_argument("weights", help="registry name or checkpoint path")
    p.add_argument("--size", default="640x480", type=_size, help="input WxH (default 640x480)")
    p.add_argument("--runs", type=cli_types.positive_int, default=20, help="timed runs after warm-up (default 20)")
    p.add_argument("--warmup", type=cli_types.non_negative_int, default=3, help="untimed runs first (default 3)")
    p.add_argument("--image", help="photo to time on, resized to --size (default: assets/group.jpg, a real photo:"
                                   " random noise would make NMS dominate)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--json", action="store_true", help="print only JSON")
    p.set_defaults(run=run)


def _size(text):
    import argparse

    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WxH, e.g. 640x480, got {text!r}") from None
    if not (16 <= w <= 8192 and 16 <= h <= 8192):
        raise argparse.ArgumentTypeError("each side must be between 16 and 8192")
    return w, h


DEFAULT_PHOTO = Path(__file__).resolve().parents[2] / "assets" / "group.jpg"


def measure(detector, width, height, runs=20, warmup=3, progress=True, image=None):
    """Latency statistics (ms) of ``detector`` on ``image`` (RGB; default: the sample group photo)
    resized to ``width`` x ``height``, run at scale 1."""
    import cv2
    import numpy as np
    from tqdm import tqdm

    if image is None and DEFAULT_PHOTO.is_file():
        from facedet.images import read_image

        image = read_image(DEFAULT_PHOTO)
    if image is None:
        image = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    image = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
    for _ in range(warmup):
        detector.detect(image, scale=1.0)
    samples = []
    for _ in tqdm(range(runs), desc="bench", disable=not progress, leave=False):
        t = {}
        detector.detect(image, scale=1.0, timings=t)
        samples.append(t)
    totals = [s["pre_ms"] + s["net_ms"] + s["post_ms"] for s in samples]
    return {
        "ms_median": statistics.median(totals),
        "ms_min": min(totals),
        "ms_max": max(totals),
        "pre_ms_median": statistics.median(s["pre_ms"] for s in samples),
        "net_ms_median": statistics.median(s["net_ms"] for s in samples),
        "post_ms_median": statistics.median(s["post_ms"] for s in samples),
        "device": str(detector.device),
        "size": f"{width}x{height}",
        "runs": runs,
    }


def run(args):
    from facedet.detector import load_detector

    image = None
    if args.image:
        from facedet.images import read_image

        image = read_image(args.image)
    detector = load_detector(args.weights, device=args.device)
    stats = measure(detector, *args.size, runs=args.runs, warmup=args.warmup, progress=not args.json, image=image)
    if args.json:
        print(json.dumps({k: (round(v, 3) if isinstance(v, float) else v) for k, v in stats.items()}))
        return 0
    print(f"{args.weights} ({detector.arch}) on {stats['device']}, {stats['size']}, {args.runs} runs")
    print(f"  total  median {stats['ms_median']:.1f} ms  (min {stats['ms_min']:.1f}, max {stats['ms_max']:.1f})")
    print(f"  pre-processing {stats['pre_ms_median']:.1f} ms | network {stats['net_ms_median']:.1f} ms | post-processing {stats['post_ms_median']:.1f} ms")
    return 0
