"""``python -m facedet bench WEIGHTS``: inference latency, split into its stages."""

import json

from facedet import cli_types
from facedet.commands import add_backend_option


def register(subparsers, name, help_text):
    p = subparsers.add_parser(name, help=help_text, description=help_text)
    p.add_argument("weights", help="registry name or checkpoint path")
    p.add_argument("--size", default="640x480", type=_size, help="input WxH (default 640x480)")
    p.add_argument("--runs", type=cli_types.positive_int, default=20, help="timed runs after warm-up (default 20)")
    p.add_argument("--warmup", type=cli_types.non_negative_int, default=3, help="untimed runs first (default 3)")
    p.add_argument("--image", help="photo to time on, resized to --size (default: a real group photo from facedet/assets/photos;"
                                   " on random noise NMS would dominate)")
    p.add_argument("--threads", type=cli_types.positive_int, help="CPU threads (default: torch's default here)")
    p.add_argument("--threshold", type=cli_types.probability, default=0.5,
                   help="score kept, as in detect (default 0.5; 0.05 is what WIDER FACE evaluation keeps)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    add_backend_option(p)
    p.add_argument("--json", action="store_true", help="print only JSON")
    p.add_argument("--no-record", dest="record", action="store_false",
                   help="do not remember the figure (by default it is kept per model, machine and setup, and the "
                        "app shows it instead of measuring again)")
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


def run(args):
    from facedet.detector import load_detector

    if args.threads is not None:
        import torch

        torch.set_num_threads(args.threads)  # before loading: ONNX Runtime sessions take it at creation
    image = None
    if args.image:
        from facedet.images import read_image

        image = read_image(args.image)
    detector = load_detector(args.weights, device=args.device, backend=args.backend)
    from facedet.latency import describe, measure_latency
    from facedet.latency_records import remembered_latency

    measure = dict(width=args.size[0], height=args.size[1], runs=args.runs, warmup=args.warmup, image=image,
                   progress=not args.json, threshold=args.threshold)
    if args.record:  # always measured now; remembered for the app
        stats = remembered_latency(detector, refresh=True, **measure)
        stats.pop("remembered")
    else:
        stats = measure_latency(detector, **measure)
    if args.json:
        print(json.dumps({k: (round(v, 3) if isinstance(v, float) else v) for k, v in stats.items()}))
        return 0
    print(f"{args.weights} ({detector.arch}): {describe(stats)}")
    print(f"  end to end {stats['ms']:.1f} ms  (min {stats['ms_min']:.1f}, max {stats['ms_max']:.1f})")
    print(f"  pre-processing {stats['pre_ms']:.1f} ms | network {stats['network_ms']:.1f} ms | post-processing {stats['post_ms']:.1f} ms")
    return 0
