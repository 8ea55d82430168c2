"""CPU cost of pruned detectors: dense vs masked vs compact, in PyTorch and ONNX Runtime.

For each checkpoint (default: the published EResFD and EXTD pruned by FPGM at 50 %), compacts
it (``pruning.compact``, both ways: coupled channels narrowed, and kept), checks that the outputs
agree, and prints parameters, FLOPs and the median CPU latency of one 640x640 forward pass of the
dense architecture (the masked model computes exactly like it) and of the compact models, in
PyTorch and in ONNX Runtime.

    python benchmarks/bench_compact.py [--weights eresfd-fpgm-50 extd-fpgm-50] [--runs 20]
                                       [--threads 1] [--size 640x640]

Weights are registry names (found in $FACEDET_WEIGHTS_DIR or downloaded) or paths. Latency
depends on what else runs on the machine: compare rows from the same run.
"""

import argparse


import torch

from facedet.weights import load_model
from pruning.compact import compact_model
from pruning.costs import model_costs


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", nargs="+", default=["eresfd-fpgm-50", "extd-fpgm-50"])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1, help="CPU threads for both runtimes (default 1)")
    parser.add_argument("--size", default="640x640", help="input WxH (default 640x640)")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.lower().split("x"))
    size = (height, width)
    torch.set_num_threads(args.threads)
    print(f"CPU, {args.threads} thread(s), {width}x{height}, median of {args.runs} runs")
    print(f"{'model':40} {'parameters':>11} {'GFLOPs':>8} {'torch ms':>9} {'ORT ms':>8} {'torch x':>8} {'ORT x':>6}")
    for name in args.weights:
        masked, _ = load_model(name)
        result = compact_model(masked)
        kept = compact_model(masked, coupled="keep")
        rows = {label: model_costs(model, onnx=True, size=size, runs=args.runs, threads=args.threads)
                for label, model in (("dense/masked", masked), ("compact", result.model), ("compact, coupled kept", kept.model))}
        dense = rows["dense/masked"]
        for label, c in rows.items():
            shown = f"{c['parameters']:,}" if label != "dense/masked" else f"{c['parameters']:,}/{c['nonzero_parameters']:,}"
            print(f"{name + ' ' + label:40} {shown:>11} {c['flops'] / 1e9:>8.3f} {c['torch_ms']:>9.1f} {c['onnx_ms']:>8.1f} "
                  f"{dense['torch_ms'] / c['torch_ms']:>8.2f} {dense['onnx_ms'] / c['onnx_ms']:>6.2f}")
        print(f"{'':40} outputs agree within {result.max_abs_diff:.1e}; {result.removed_channels} channels removed")
    print("parameters of dense/masked: total/nonzero; x: speed-up over the dense model")


if __name__ == "__main__":
    main()
