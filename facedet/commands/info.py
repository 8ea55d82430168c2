"""``python -m facedet info WEIGHTS``: what a checkpoint is."""

import json


def register(subparsers, name, help_text):
    p = subparsers.add_parser(name, help=help_text, description=help_text)
    p.add_argument("weights", help="registry name or checkpoint path")
    p.add_argument("--json", action="store_true", help="print only JSON")
    p.set_defaults(run=run)


def describe(weights):
    from facedet.params import count_parameters
    from facedet.weights import load_model

    model, ckpt = load_model(weights)
    counts = count_parameters(model)
    return {
        "detector": ckpt.arch,
        "file": str(ckpt.path),
        "sha256": ckpt.sha256,
        "compact": ckpt.compact,
        "parameters": counts.total,
        "nonzero_parameters": counts.nonzero,
        "sparsity": round(counts.sparsity, 6),
    }


def run(args):
    info = describe(args.weights)
    if args.json:
        print(json.dumps({k: info[k] for k in ("detector", "parameters", "nonzero_parameters", "sparsity")}))
        return 0
    print(f"detector            {info['detector']}{' (compact)' if info['compact'] else ''}")
    print(f"file                {info['file']}")
    print(f"sha256              {info['sha256']}")
    print(f"parameters          {info['parameters']:,}")
    print(f"nonzero parameters  {info['nonzero_parameters']:,}")
    print(f"sparsity            {info['sparsity'] * 100:.2f} %")
    return 0
