"""``python -m facedet info WEIGHTS``: what a checkpoint is."""

import json


def register(subparsers, name, help_text):
    p = subparsers.add_parser(name, help=help_text, description=help_text)
    p.add_argument("weights", help="registry name or checkpoint path")
    p.add_argument("--json", action="store_true", help="print only JSON")
    p.set_defaults(run=run)


def describe(weights):
    from facedet.peers import is_peer
    from facedet.params import count_parameters
    from facedet.weights import load_model, published

    if is_peer(weights):
        return _describe_peer(weights)
    model, ckpt = load_model(weights)
    counts = count_parameters(model)
    info = {
        "detector": ckpt.arch,
        "file": str(ckpt.path),
        "sha256": ckpt.sha256,
        "compact": ckpt.compact,
        "parameters": counts.total,
        "nonzero_parameters": counts.nonzero,
        "sparsity": round(counts.sparsity, 6),
    }
    entry = published().get(str(weights))
    if entry is not None:  # a registry name: what its release says about it
        info.update(family=entry.family, license=entry.license, rate=entry.rate, group_rates=entry.group_rates,
                    published_nonzero_parameters=entry.nonzero_parameters)
    return info


def _describe_peer(weights):
    """A peer's ONNX file (YuNet): its numbers counted from the file's initializers."""
    from facedet.peers import load_peer
    from facedet.weights import PEERS

    detector = load_peer(weights)
    counts = detector.parameter_count()
    info = {"detector": detector.arch, "file": str(detector.path), "sha256": detector.checkpoint.sha256,
            "compact": False, "parameters": counts.total, "nonzero_parameters": counts.nonzero,
            "sparsity": round(counts.sparsity, 6), "runtime": "OpenCV cv2.FaceDetectorYN"}
    entry = PEERS.get(str(weights))
    if entry is not None:
        # The trained model's count: the ONNX export has BatchNorm folded into the convolutions.
        info.update(family=entry.family, license=entry.license, published_parameters=entry.nonzero_parameters)
    return info


def _published_note(info):
    """How the counted nonzero parameters compare with the release's own count, if it gives one."""
    published = info.get("published_nonzero_parameters")
    if published is None:
        return ""
    if published == info["nonzero_parameters"]:
        return " (as published)"
    return f" (the release states {published:,})"


def run(args):
    info = describe(args.weights)
    if args.json:
        keys = ("detector", "parameters", "nonzero_parameters", "sparsity", "family", "group_rates")
        print(json.dumps({k: info[k] for k in keys if k in info}))
        return 0
    print(f"detector            {info['detector']}{' (compact)' if info['compact'] else ''}")
    print(f"file                {info['file']}")
    print(f"sha256              {info['sha256']}")
    print(f"parameters          {info['parameters']:,}")
    print(f"nonzero parameters  {info['nonzero_parameters']:,}{_published_note(info)}")
    print(f"sparsity            {info['sparsity'] * 100:.2f} %")
    if "runtime" in info:
        print(f"runtime             {info['runtime']}")
    if info.get("published_parameters"):
        print(f"published           {info['published_parameters']:,} parameters (the trained model; the ONNX "
              "export folds BatchNorm into the convolutions)")
    if "family" in info:
        print(f"family              {info['family']}")
        print(f"license             {info['license']}")
    if info.get("group_rates"):
        rates = ", ".join(f"{r:g}" for r in info["group_rates"])
        print(f"rates               target {info['rate']:g}; per group (1..6) {rates}")
    return 0
