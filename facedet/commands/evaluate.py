"""``python -m facedet evaluate --pred DIR --gt DIR [--curves FILE]``: WIDER FACE Easy / Medium /
Hard AP, and the precision-recall curves behind them (``facedet.wider.curves``).

Torch-free and fast: the whole validation set evaluates in about a second.
"""

import json
import os
import sys
from pathlib import Path


def register(subparsers, name, help_text):
    p = subparsers.add_parser(name, help=help_text, description=help_text)
    p.add_argument("--pred", required=True, help="submission folder: <event>/<image>.txt files of 'x y w h score' lines")
    p.add_argument("--gt", default=os.environ.get("FACEDET_WIDER_GT"),
                   help="folder with wider_face_val.mat and wider_{easy,medium,hard}_val.mat "
                        "(default: $FACEDET_WIDER_GT)")
    p.add_argument("--only-predicted", action="store_true",
                   help="evaluate only the images that have a prediction file (a partial check, not the standard AP)")
    p.add_argument("--allow-incomplete", action="store_true",
                   help="evaluate a folder that facedet predict did not finish, on the images it has (with a "
                        "warning; not the standard AP)")
    p.add_argument("--json", action="store_true", help='print only {"easy": ..., "medium": ..., "hard": ...}')
    p.add_argument("--curves", metavar="FILE",
                   help="also write the Easy/Medium/Hard precision-recall curves (1,000 thresholds) to FILE as JSON")
    p.set_defaults(run=run)


def run(args):
    from facedet.errors import DataError
    from facedet.wider.curves import write_curves
    from facedet.wider.evaluation import evaluate
    from facedet.wider.layout import NOTICE, is_sample_set

    if not args.gt:
        raise DataError("no ground truth given: pass --gt DIR (the eval-tools .mat files) or set FACEDET_WIDER_GT")
    result = evaluate(args.pred, args.gt, only_predicted=args.only_predicted, allow_incomplete=args.allow_incomplete)
    if args.curves:
        write_curves(args.curves, result, predictions=Path(args.pred).resolve(), ground_truth=Path(args.gt).resolve())
    sample = is_sample_set(args.gt) or is_sample_set(args.pred)
    if args.json:
        if sample:
            print(NOTICE, file=sys.stderr)
        print(json.dumps(result.as_dict()))
        return 0
    if sample:
        print(NOTICE)
    scope = "predicted images only (not the standard AP)" if result.only_predicted else "all ground-truth images"
    print(f"WIDER FACE AP of {args.pred} ({scope}):")
    for setting, ap in result.as_dict().items():
        print(f"  {setting.capitalize():<7}{ap:.4f}")
    if args.curves:
        print(f"precision-recall curves: {args.curves}")
    return 0
