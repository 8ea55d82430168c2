"""``python -m facedet detect IMAGE``: faces in one image."""

import json
import sys

from facedet import cli_types

from facedet.commands import add_backend_option, add_style_option


def register(subparsers, name, help_text):
    p = subparsers.add_parser(name, help=help_text, description=help_text)
    p.add_argument("image", help="image file (JPEG, PNG, BMP, WebP, TIFF ...)")
    p.add_argument("--weights", default="eresfd", help="registry name (eresfd, extd, extd-fpgm-10 ..., or a peer: yunet-n, yunet-s) "
                                         "or checkpoint path (default: eresfd)")
    from facedet.models import DETECTORS

    p.add_argument("--detector", choices=tuple(DETECTORS), help="expected architecture (checked against the file)")
    p.add_argument("--scale", type=cli_types.scale,
                   help=f"resize factor before inference, up to {cli_types.MAX_SCALE:g} (default: automatic); "
                        "the network input stays within 4096 px a side")
    p.add_argument("--threshold", type=cli_types.probability, default=0.5, help="minimum score, 0-1 (default 0.5)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    add_backend_option(p, auto="torch: for one photo, exporting to ONNX Runtime costs more than it saves")
    p.add_argument("--json", action="store_true", help="print only a JSON array of {box, score}")
    p.add_argument("--out", help="write the image with boxes and scores drawn to this file (the app's drawing)")
    add_style_option(p)
    p.set_defaults(run=run)


def run(args):
    from facedet.images import read_image, write_image

    image = read_image(args.image)  # before importing torch: bad input is refused at once
    from facedet.commands import one_photo_backend
    from facedet.detector import load_detector

    detector = load_detector(args.weights, detector=args.detector, device=args.device,
                             backend=one_photo_backend(args.backend, args.weights))
    dets = detector.detect(image, scale=args.scale, threshold=args.threshold)
    if args.out:
        from facedet.viz.overlay import STYLES, annotate_detections

        write_image(args.out, annotate_detections(image, dets, style=STYLES[args.style]))
    if args.json:
        payload = [{"box": [round(float(v), 2) for v in d[:4]], "score": round(float(d[4]), 5)} for d in dets]
        json.dump(payload, sys.stdout)
        print()
        return 0
    height, width = image.shape[:2]
    print(f"{args.image}: {width}x{height}, {detector.arch} ({args.weights}), {len(dets)} face(s) with score >= {args.threshold}")
    for x1, y1, x2, y2, score in dets:
        print(f"  {score:.3f}  [{x1:.1f}, {y1:.1f}, {x2:.1f}, {y2:.1f}]")
    if args.out:
        print(f"wrote {args.out}")
    return 0
