"""``python -m facedet predict``: run a detector over a WIDER FACE split, write a submission folder."""

import sys
from pathlib import Path

from facedet import cli_types
from facedet.commands import add_backend_option


def register(subparsers, name, help_text):
    p = subparsers.add_parser(name, help=help_text, description=help_text)
    p.add_argument("--wider", required=True, help="WIDER FACE root (WIDER_val/images, wider_face_split ...)")
    p.add_argument("--split", default="val", choices=("train", "val", "test"), help="default: val")
    p.add_argument("--weights", default="eresfd", help="registry name (eresfd, extd-fpgm-20 ...) or checkpoint path")
    from facedet.models import DETECTORS

    p.add_argument("--detector", choices=tuple(DETECTORS), help="expected architecture (checked against the file)")
    p.add_argument("--protocol", default="single", choices=("single", "paper"),
                   help="single: one pass at the automatic scale; paper: the authors' multi-scale + flip "
                        "test with box voting (Tables 1-2; about 5x slower)")
    p.add_argument("--scale", type=cli_types.scale,
                   help=f"fixed scale for the single protocol, up to {cli_types.MAX_SCALE:g} (default: automatic); "
                        "the network input stays within 4096 px a side")
    p.add_argument("--out", required=True, help="submission folder to write (<event>/<image>.txt)")
    p.add_argument("--limit", type=cli_types.positive_int, help="only the first N images")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    add_backend_option(p)
    p.set_defaults(run=run)


def run(args):
    from facedet.atomic import write_bytes
    from facedet.errors import DataError
    from facedet.wider.layout import MARKER, NOTICE, is_sample_set, load_image, split_images

    if args.scale is not None and args.protocol != "single":
        raise DataError("--scale only goes with --protocol single (the paper protocol has its own scales)")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise DataError(f"--out {out} is a file; give a folder for the submission (<event>/<image>.txt)")
    images = split_images(args.wider, args.split)  # bad paths are reported before the model loads
    from facedet.detector import load_detector
    from facedet.wider.protocols import predict_split

    detector = load_detector(args.weights, detector=args.detector, device=args.device, backend=args.backend)
    if args.scale is not None:
        # A scale unusable for the split's images (they are alike) is refused before the run starts.
        first = load_image(images[0][1])
        detector.scale_for(*first.shape[:2], args.scale)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:  # a file on the way (a/b with a a file), no permission ...
        raise DataError(f"cannot make the --out folder {out}: {err.strerror or err}") from None
    sample = is_sample_set(args.wider)
    if sample:
        print(NOTICE, file=sys.stderr)
        # Predictions on the sample set carry its marker, so evaluate can say what they are.
        write_bytes(out / MARKER, Path(args.wider, MARKER).read_bytes())
    # What decides the predictions: a stopped run continues only with the same ones.
    settings = {"weights": detector.checkpoint.sha256, "detector": detector.arch, "split": args.split,
                "protocol": args.protocol, "scale": args.scale}
    predictions = predict_split(detector, args.wider, args.split, protocol=args.protocol, out_dir=args.out,
                                limit=args.limit, progress=True, scale=args.scale, settings=settings)
    faces = sum(len(rows) for rows in predictions.values())
    print(f"wrote {len(predictions)} prediction files ({faces} detections; {detector.arch}, weights {args.weights}, "
          f"{args.protocol} protocol) to {args.out}")
    return 0
