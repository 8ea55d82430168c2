"""``python -m facedet predict``: run a detector over a WIDER FACE split, write a submission folder."""

import shutil
import sys

from facedet.weights import DISPLAY_NAMES

from facedet.commands import add_backend_option


def register(subparsers, name, help_text):
    p = subparsers.add_parser(name, help=help_text, description=help_text)
    p.add_argument("--wider", required=True, help="WIDER FACE root (WIDER_val/images, wider_face_split ...)")
    p.add_argument("--split", default="val", choices=("train", "val", "test"), help="default: val")
    p.add_argument("--weights", default="eresfd", help="registry name (eresfd, extd-fpgm-20 ...) or checkpoint path")
    p.add_argument("--detector", choices=tuple(DISPLAY_NAMES), help="expected architecture (checked against the file)")
    p.add_argument("--protocol", default="single", choices=("single", "paper"),
                   help="single: one pass at the automatic scale; paper: the authors' multi-scale + flip "
                        "test with box voting (Tables 1-2; about 5x slower)")
    p.add_argument("--scale", type=float, help="fixed scale for the single protocol (default: automatic)")
    p.add_argument("--out", required=True, help="submission folder to write (<event>/<image>.txt)")
    p.add_argument("--limit", type=int, help="only the first N images")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    add_backend_option(p)
    p.set_defaults(run=run)


def run(args):
    from facedet.errors import DataError
    from facedet.wider.layout import split_images
    from facedet.wider.layout import MARKER, NOTICE, is_sample_set

    if args.scale is not None and (args.protocol != "single" or not 0 < args.scale <= 16):
        raise DataError("--scale must be in (0, 16] and only goes with --protocol single")
    if args.limit is not None and args.limit < 1:
        raise DataError("--limit must be at least 1")
    split_images(args.wider, args.split)  # bad paths are reported before the model loads
    from facedet.detector import load_detector
    from facedet.wider.protocols import predict_split

    sample = is_sample_set(args.wider)
    if sample:
        print(NOTICE, file=sys.stderr)
    detector = load_detector(args.weights, detector=args.detector, device=args.device, backend=args.backend)
    predictions = predict_split(detector, args.wider, args.split, protocol=args.protocol, out_dir=args.out,
                                limit=args.limit, progress=True, scale=args.scale)
    if sample:
        # Predictions on the sample set carry its marker, so evaluate can say what they are.
        shutil.copyfile(f"{args.wider}/{MARKER}", f"{args.out}/{MARKER}")
    faces = sum(len(rows) for rows in predictions.values())
    print(f"wrote {len(predictions)} prediction files ({faces} detections; {detector.arch}, weights {args.weights}, "
          f"{args.protocol} protocol) to {args.out}")
    return 0
