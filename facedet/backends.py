"""Where a detector's network runs: PyTorch eager with BatchNorm folded, or ONNX Runtime.

Both take the pre-processed image tensor [1, 3, H, W] and return ``(loc, conf)`` tensors, so the
``Detector`` around them (pre-processing, priors, NMS) is the same whichever runs. The network is
copied (``inference_copy``): folding rewrites layers, subnormal weights are flushed
(``facedet.numerics``) and one-slope PReLUs become LeakyReLUs, while the caller's model (trained,
pruned, counted, shown layer by layer) stays exactly as it was.
"""

import copy
import io
import time
import warnings

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from facedet.errors import FacedetError
from facedet.numerics import flush_subnormals

from facedet.commands import BACKENDS  # one list, shared with the command line
ONNX_OPSET = 17


def fold_batchnorm(model):
    """``model`` (in eval mode) with every Conv2d directly followed by a BatchNorm2d in a
    Sequential replaced by one Conv2d with the normalisation folded in. Modified in place and
    returned. ``ScatterBatchNorm`` (a compacted layer widening its channels) is left alone."""
    for module in model.modules():
        if not isinstance(module, nn.Sequential):
            continue
        for i in range(len(module) - 1):
            conv, bn = module[i], module[i + 1]
            if type(conv) is nn.Conv2d and type(bn) is nn.BatchNorm2d and bn.track_running_stats:
                module[i] = fuse_conv_bn_eval(conv, bn)
                module[i + 1] = nn.Identity()
    return model


def leaky_prelus(model):
    """``model`` with every single-slope PReLU (EXTD's) replaced by the LeakyReLU of that slope: the
    same function, exactly, but one that ONNX Runtime fuses into the convolution before it and runs
    in its blocked (NCHWc) layout. A PReLU there is a separate operator that cannot: each one costs
    a conversion out of that layout and back, around a slow broadcast kernel (EXTD's network ran
    2.6x slower). Modified in place and returned."""
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if type(child) is nn.PReLU and child.num_parameters == 1:
                setattr(module, name, nn.LeakyReLU(float(child.weight.detach())))
    return model


def inference_copy(model):
    """The copy of ``model`` that runs inference: eval mode, BatchNorm folded, subnormal values
    flushed to zero, single-slope PReLUs as LeakyReLUs. Outputs within float rounding of ``model``'s."""
    copied = leaky_prelus(fold_batchnorm(copy.deepcopy(model).eval()))
    flush_subnormals(copied)
    return copied


class TorchNetwork:
    """PyTorch eager, BatchNorm folded; on the CPU in channels-last layout, where oneDNN runs the
    detectors' depthwise convolutions and PReLUs several times faster (EXTD: ~1.5x overall)."""

    name = "torch"

    def __init__(self, model, device):
        self.device = device
        self.model = inference_copy(model).to(device)
        self.channels_last = device.type == "cpu"
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)

    def __call__(self, x):
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.model(x)


class OnnxNetwork:
    """The network exported to ONNX in memory and run by ONNX Runtime on the CPU (its graph
    optimisations fold BatchNorm too). Height and width are dynamic."""

    name = "onnx"

    def __init__(self, model, threads=None):
        import onnxruntime as ort

        self.device = torch.device("cpu")
        model = inference_copy(model).cpu()
        buffer = io.BytesIO()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the exporter's tracer warnings on size-dependent code
            torch.onnx.export(
                model, (torch.zeros(1, 3, 320, 320),), buffer, dynamo=False,
                opset_version=ONNX_OPSET, input_names=["image"], output_names=["loc", "conf"],
                dynamic_axes={"image": {2: "height", 3: "width"}, "loc": {1: "priors"}, "conf": {1: "priors"}},
            )
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(threads or torch.get_num_threads())
        options.log_severity_level = 3
        self.onnx = buffer.getvalue()  # the exported graph, as given to ONNX Runtime
        self.session = ort.InferenceSession(self.onnx, options, providers=["CPUExecutionProvider"])

    def __call__(self, x):
        loc, conf = self.session.run(["loc", "conf"], {"image": x.detach().cpu().numpy()})
        return torch.from_numpy(loc), torch.from_numpy(conf)


def _median_ms(network, x, runs=3):
    network(x)  # warm-up
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        network(x)
        samples.append(time.perf_counter() - start)
    return sorted(samples)[len(samples) // 2] * 1e3


_AUTO_CHOICE = {}  # (architecture, layer shapes, threads) -> backend name, measured once per process


def make_network(model, backend="auto", device=torch.device("cpu"), arch=None):
    """The network of a detector on ``backend`` (``auto``: on a GPU PyTorch; on the CPU whichever
    of the two measures faster for this model here, at 320x320, once per process)."""
    if backend not in BACKENDS:
        raise FacedetError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if backend == "onnx" and device.type != "cpu":
        raise FacedetError("the onnx backend runs on the CPU; use --device cpu or --backend torch")
    if backend == "torch" or (backend == "auto" and device.type != "cpu"):
        return TorchNetwork(model, device)
    if backend == "onnx":
        return OnnxNetwork(model)
    key = (arch, tuple(tuple(p.shape) for p in model.parameters()), torch.get_num_threads())
    if key in _AUTO_CHOICE:
        return TorchNetwork(model, device) if _AUTO_CHOICE[key] == "torch" else OnnxNetwork(model)
    candidates = {"torch": TorchNetwork(model, device), "onnx": OnnxNetwork(model)}
    x = torch.randn(1, 3, 320, 320) * 60
    with torch.inference_mode():
        times = {name: _median_ms(net, x) for name, net in candidates.items()}
    _AUTO_CHOICE[key] = min(times, key=times.get)
    return candidates[_AUTO_CHOICE[key]]
