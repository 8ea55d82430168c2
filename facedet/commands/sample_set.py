"""``python -m facedet sample-set --out DIR``: write a small generated WIDER-format sample set."""

from facedet import cli_types


def register(subparsers, name, help_text):
    p = subparsers.add_parser(name, help=help_text, description=help_text)
    p.add_argument("--out", required=True, help="folder to write the sample set into (new, empty, or a sample set)")
    p.add_argument("--images", type=cli_types.positive_int, default=20, help="images per split (train and val; default 20)")
    p.add_argument("--seed", type=cli_types.seed, default=0, help="random seed (default 0)")
    p.add_argument("--force", action="store_true", help="write into a folder that holds other files")
    p.set_defaults(run=run)


def run(args):
    from facedet.wider.layout import NOTICE
    from facedet.wider.sample_set import write_sample_set

    out = write_sample_set(args.out, images=args.images, seed=args.seed, force=args.force)
    print(NOTICE)
    print(f"wrote {args.images} validation and {args.images} training images with annotations and "
          f"eval-tools ground truth to {out}")
    print(f"  predict:  python -m facedet predict --wider {out} --split val --weights eresfd --out PRED_DIR")
    print(f"  evaluate: python -m facedet evaluate --pred PRED_DIR --gt {out}/eval_tools/ground_truth")
    return 0
