"""What a model costs: parameters, FLOPs at 640x640 and CPU latency (PyTorch and ONNX Runtime).

Reported for dense, masked and compact models alike. A masked model executes every weight, so its
``flops`` equal the dense ones; ``nonzero_flops`` count only the weights that survive pruning
(what compaction can save at best).
"""

import copy
import statistics
import tempfile
import time
from pathlib import Path

import torch

from facedet.params import count_parameters
from facedet.threads import torch_threads
from facedet.viz.cost import conv_output_sizes, nonzero_conv_flops

COST_SIZE = (640, 640)  # (height, width)


def conv_flops(model, height=COST_SIZE[0], width=COST_SIZE[1]):
    """FLOPs (2 x multiply-adds) of every convolution call at a ``height`` x ``width`` input."""
    modules = dict(model.named_modules())
    return sum(2 * modules[name].weight.numel() * out_h * out_w for name, out_h, out_w in conv_output_sizes(model, height, width))


def torch_latency_ms(model, size=COST_SIZE, runs=10, warmup=2, threads=None):
    """Median wall time (ms) of one forward pass of a CPU model at ``size`` (batch 1)."""
    model = model.eval()
    x = torch.randn(1, 3, *size) * 64
    with torch_threads(threads), torch.inference_mode():
        for _ in range(warmup):
            model(x)
        samples = []
        for _ in range(runs):
            start = time.perf_counter()
            model(x)
            samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def onnx_latency_ms(model_or_path, size=COST_SIZE, runs=10, warmup=2, threads=None):
    """Median wall time (ms) of one ONNX Runtime CPU run at ``size`` (exports ``model`` if needed)."""
    from pruning.deploy import export_onnx, onnx_session, run_onnx

    with tempfile.TemporaryDirectory() as tmp:
        path = model_or_path
        if isinstance(model_or_path, torch.nn.Module):
            path = export_onnx(model_or_path, Path(tmp) / "model.onnx", size=size)
        session = onnx_session(path, threads=threads)
        x = (torch.randn(1, 3, *size) * 64).numpy()
        for _ in range(warmup):
            run_onnx(session, x)
        samples = []
        for _ in range(runs):
            start = time.perf_counter()
            run_onnx(session, x)
            samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def model_costs(model, latency=True, onnx=False, size=COST_SIZE, runs=10, threads=None):
    """``{parameters, nonzero_parameters, sparsity, flops, nonzero_flops[, torch_ms][, onnx_ms]}``."""
    counts = count_parameters(model)
    on_cpu = all(p.device.type == "cpu" for p in model.parameters())
    cpu_model = (model if on_cpu else copy.deepcopy(model).cpu()).eval()
    costs = {
        "parameters": counts.total,
        "nonzero_parameters": counts.nonzero,
        "sparsity": counts.sparsity,
        "flops": conv_flops(cpu_model, *size),
        "nonzero_flops": nonzero_conv_flops(cpu_model, *size),
    }
    if latency:
        costs["torch_ms"] = torch_latency_ms(cpu_model, size, runs=runs, threads=threads)
    if onnx:
        costs["onnx_ms"] = onnx_latency_ms(cpu_model, size, runs=runs, threads=threads)
    return costs
