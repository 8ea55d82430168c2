"""``python -m facedet compare A B IMAGE``: two detectors on one photo, their faces paired."""

import json
import sys

from facedet import cli_types
from facedet.commands import add_backend_option, add_style_option


def register(subparsers, name, help_text):
    p = subparsers.add_parser(name, help=help_text, description=help_text)
    p.add_argument("reference", help="the original model: registry name or checkpoint path (e.g. eresfd)")
    p.add_argument("candidate", help="the model to compare with it (e.g. eresfd-fpgm-50, or a session's model.pth)")
    p.add_argument("image", help="image file")
    p.add_argument("--threshold", type=cli_types.probability, default=0.5, help="minimum score (default 0.5)")
    p.add_argument("--scale", type=cli_types.scale, help="resize factor before inference (default: automatic)")
    p.add_argument("--iou", type=cli_types.probability, default=0.5, help="IoU that pairs two faces (default 0.5)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    add_backend_option(p, auto="torch: for one photo, exporting to ONNX Runtime costs more than it saves")
    p.add_argument("--json", action="store_true", help="print only the summary as JSON")
    p.add_argument("--out", help="write both annotated images side by side to this file (the app's drawing)")
    add_style_option(p)
    p.set_defaults(run=run)


def run(args):
    from facedet.images import read_image, write_image

    image = read_image(args.image)
    from facedet.commands import one_photo_backend
    from facedet.compare import compare_detectors
    from facedet.detector import load_detector

    reference = load_detector(args.reference, device=args.device, backend=one_photo_backend(args.backend, args.reference))
    candidate = load_detector(args.candidate, device=args.device, backend=one_photo_backend(args.backend, args.candidate))
    ref_dets, cand_dets, comparison, summary = compare_detectors(
        reference, candidate, image, threshold=args.threshold, scale=args.scale, iou_threshold=args.iou)
    summary["reference"]["weights"], summary["candidate"]["weights"] = args.reference, args.candidate
    if args.out:
        write_image(args.out, side_by_side(image, ref_dets, cand_dets, comparison, style=args.style))
    if args.json:
        json.dump(summary, sys.stdout)
        print()
        return 0
    ref, cand = summary["reference"], summary["candidate"]
    print(f"{args.image}: scores >= {args.threshold:g}, faces paired at IoU >= {args.iou:g}")
    for label, side in (("reference", ref), ("candidate", cand)):
        print(f"  {label:9} {side['weights']}: {side['faces']} face(s) at scale {side['scale']:g}, "
              f"{side['nonzero_parameters']:,} of {side['parameters']:,} parameters nonzero")
    print(f"  found by both: {summary['matched']} | only the reference finds: {summary['only_reference']} | "
          f"only the candidate finds: {summary['only_candidate']}")
    if args.out:
        print(f"wrote {args.out}")
    return 0


def side_by_side(image, reference, candidate, comparison, gap=16, style="presentation"):
    """The two annotated images (reference left, candidate right) in one picture."""
    import numpy as np

    from facedet.viz.overlay import STYLES, annotate_original, annotate_pruned

    left = annotate_original(image, reference, style=STYLES[style])
    right = annotate_pruned(image, candidate, reference, comparison, style=STYLES[style])
    spacer = np.full((image.shape[0], gap, 3), 255, dtype=np.uint8)
    return np.concatenate((left, spacer, right), axis=1)
