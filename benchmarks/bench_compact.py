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

BLOCK = 16  # the channel block of ONNX Runtime's NCHWc kernels on AVX-512 (8 on AVX2)


def blocked_macs(model, height, width, block=BLOCK):
    """Multiply-adds as kernels that work in channel blocks compute them: output channels rounded up
    to ``block``, input channels too once there are ``block`` or more (fewer go to a direct kernel);
    a depthwise conv's channels rounded up to ``block``."""
    total = 0

    def count(conv, _inputs, output):
        nonlocal total
        pixels = output.shape[2] * output.shape[3] * conv.kernel_size[0] * conv.kernel_size[1]
        out = -(-conv.out_channels // block) * block
        if conv.groups > 1:
            total += pixels * out
            return
        inputs = conv.in_channels if conv.in_channels < block else -(-conv.in_channels // block) * block
        total += pixels * inputs * out

    hooks = [m.register_forward_hook(count) for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    try:
        with torch.no_grad():
            model(torch.zeros(1, 3, height, width))
    finally:
        for hook in hooks:
            hook.remove()
    return total


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
    print(f"{'model':40} {'parameters':>11} {'GFLOPs':>8} {'GMACs/16':>9} {'torch ms':>9} {'ORT ms':>8} {'torch x':>8} "
          f"{'ORT x':>6}")
    for name in args.weights:
        masked, _ = load_model(name)
        result = compact_model(masked)
        kept = compact_model(masked, coupled="keep")
        models = {"dense/masked": masked, "compact": result.model, "compact, coupled kept": kept.model}
        rows = {label: model_costs(model, onnx=True, size=size, runs=args.runs, threads=args.threads)
                for label, model in models.items()}
        dense = rows["dense/masked"]
        for label, c in rows.items():
            shown = f"{c['parameters']:,}" if label != "dense/masked" else f"{c['parameters']:,}/{c['nonzero_parameters']:,}"
            blocked = blocked_macs(models[label], height, width) / 1e9
            print(f"{name + ' ' + label:40} {shown:>11} {c['flops'] / 1e9:>8.3f} {blocked:>9.3f} {c['torch_ms']:>9.1f} {c['onnx_ms']:>8.1f} "
                  f"{dense['torch_ms'] / c['torch_ms']:>8.2f} {dense['onnx_ms'] / c['onnx_ms']:>6.2f}")
        print(f"{'':40} outputs agree within {result.max_abs_diff:.1e}; {result.removed_channels} channels removed")
    print("parameters of dense/masked: total/nonzero; GMACs/16: multiply-adds in channel blocks of 16, as ONNX Runtime's "
          "NCHWc kernels compute them on AVX-512; x: speed-up over the dense model")


if __name__ == "__main__":
    main()
