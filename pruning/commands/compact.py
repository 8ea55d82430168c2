"""``python -m pruning compact CKPT --out FILE [--onnx FILE]``: a physically smaller model."""

import json

from facedet import cli_types


def register(subparsers, name, help_text):
    p = subparsers.add_parser(name, help=help_text, description=help_text)
    p.add_argument("checkpoint", help="a masked checkpoint (path or registry name, e.g. eresfd-fpgm-50)")
    p.add_argument("--out", required=True, help="where to save the compact checkpoint")
    p.add_argument("--onnx", help="also export the compact model to this ONNX file (checked with ONNX Runtime)")
    p.add_argument("--runs", type=cli_types.positive_int, default=10, help="timed CPU runs per latency figure (default 10)")
    p.add_argument("--threads", type=cli_types.positive_int, help="CPU threads for the latency figures (default: all)")
    p.add_argument("--json", action="store_true", help="print only JSON")
    p.set_defaults(run=run)


def run(args):
    from tqdm import tqdm

    from facedet.weights import load_model

    model, ckpt = load_model(args.checkpoint)  # bad input is reported before any progress is shown
    steps = ["compacting", "saving", "measuring"] + (["exporting ONNX"] if args.onnx else [])
    with tqdm(total=len(steps), disable=args.json, leave=False, bar_format="{desc} [{n_fmt}/{total_fmt}]") as bar:
        report, result = _compact(args, model, ckpt, bar, steps)
    if args.json:
        print(json.dumps(report))
        return 0
    print(f"{args.checkpoint} ({ckpt.arch}): {result.removed_channels} channels removed, "
          f"outputs within {result.max_abs_diff:.1e} of the masked model")
    print(f"  {'':8} {'parameters':>11} {'GFLOPs@640':>11} {'torch ms':>9}" + (f" {'onnx ms':>8}" if args.onnx else ""))
    for name in ("dense", "masked", "compact"):
        row = report[name]
        line = f"  {name:8} {row['parameters']:>11,} {row['flops'] / 1e9:>11.3f} {row['torch_ms']:>9.1f}"
        print(line + (f" {row['onnx_ms']:>8.1f}" if args.onnx else ""))
    print("  (masked: nonzero parameters and FLOPs; it runs as fast as the dense model)")
    print(f"  saved {args.out}" + (f" and {args.onnx} (ONNX Runtime agrees within {report['onnx_max_abs_diff']:.1e})" if args.onnx else ""))
    return 0


def _compact(args, model, ckpt, bar, steps):
    from facedet.weights import save_checkpoint
    from pruning.compact import compact_model
    from pruning.costs import COST_SIZE, model_costs

    bar.set_description(steps[0])
    result = compact_model(model)
    bar.update()
    bar.set_description(steps[1])
    save_checkpoint(args.out, result.model, ckpt.arch, compact=True, provenance={
        **ckpt.meta.get("provenance", {}), "source": str(ckpt.path), "source_sha256": ckpt.sha256,
        "removed_channels": result.removed_channels, "max_abs_diff": result.max_abs_diff,
    })
    bar.update()
    bar.set_description(steps[2])
    masked = model_costs(model, onnx=bool(args.onnx), runs=args.runs, threads=args.threads)
    compact = model_costs(result.model, onnx=bool(args.onnx), runs=args.runs, threads=args.threads)
    bar.update()
    report = {
        "detector": ckpt.arch,
        "input": f"{COST_SIZE[1]}x{COST_SIZE[0]}",
        "removed_channels": result.removed_channels,
        "max_abs_diff": result.max_abs_diff,
        # The masked model computes like the dense one; its nonzero figures are what it stores.
        "dense": {"parameters": masked["parameters"], "flops": masked["flops"], "torch_ms": masked["torch_ms"],
                  **({"onnx_ms": masked["onnx_ms"]} if args.onnx else {})},
        "masked": {"parameters": masked["nonzero_parameters"], "flops": masked["nonzero_flops"],
                   "torch_ms": masked["torch_ms"], **({"onnx_ms": masked["onnx_ms"]} if args.onnx else {})},
        "compact": {"parameters": compact["parameters"], "flops": compact["flops"], "torch_ms": compact["torch_ms"],
                    **({"onnx_ms": compact["onnx_ms"]} if args.onnx else {})},
        "out": args.out,
    }
    if args.onnx:
        bar.set_description(steps[3])
        report["onnx"] = args.onnx
        report["onnx_max_abs_diff"] = _export_and_check(result.model, args.onnx)
        bar.update()
    return report, result


def _export_and_check(model, path):
    import torch

    from pruning.deploy import export_onnx, onnx_session, run_onnx

    export_onnx(model, path)
    x = torch.randn(1, 3, 320, 256, generator=torch.Generator().manual_seed(0)) * 64
    with torch.no_grad():
        expected = model(x)
    got = run_onnx(onnx_session(path), x)
    return max(float(abs(a - b.numpy()).max()) for a, b in zip(got, expected))
