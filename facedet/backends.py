"""Where a detector's network runs: PyTorch eager with BatchNorm folded, or ONNX Runtime.

Both take the pre-processed image tensor [1, 3, H, W] and return ``(loc, conf)`` tensors, so the
``Detector`` around them (pre-processing, priors, NMS) is the same whichever runs. The network is
copied: folding rewrites layers and subnormal weights are flushed (``facedet.numerics``), while the
caller's model (trained, pruned, counted, shown layer by layer) stays exactly as it was.
"""

import copy
import io
import threading
import time
import warnings

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from facedet.cancel import is_cancelled
from facedet.errors import DetectionCancelled, FacedetError
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


# The watch of the forward pass this thread runs (progress and cancellation), if any.
_WATCHING = threading.local()
PROFILE_SIDE = 128  # the input side of the one forward pass that counts a network's multiply-adds


class _Watch:
    """Progress and cancellation of one forward pass, told after each convolution. Progress is the
    share of the convolutions' multiply-adds done: a rough share of the time (within ~15 % of it
    for EXTD, whose depthwise layers take longer than their multiply-adds say)."""

    def __init__(self, progress=None, cancel=None, expected_macs=None):
        self.progress, self.cancel, self.expected = progress, cancel, expected_macs
        self.done = 0

    def after(self, conv, output):
        if is_cancelled(self.cancel):
            raise DetectionCancelled("the detection was cancelled")
        self.done += output.numel() * conv.in_channels // conv.groups * conv.kernel_size[0] * conv.kernel_size[1]
        if self.progress is not None and self.expected:
            self.progress(min(1.0, self.done / self.expected))


def _after_conv(conv, inputs, output):
    watch = getattr(_WATCHING, "watch", None)
    if watch is not None:  # another thread's watched pass attached the hooks: not this one's business
        watch.after(conv, output)


class TorchNetwork:
    """PyTorch eager, BatchNorm folded; on the CPU in channels-last layout, where oneDNN runs the
    detectors' depthwise convolutions and PReLUs several times faster (EXTD: ~1.5x overall).

    A call given ``progress`` or ``cancel`` is watched convolution by convolution (hooks attached
    for that call only, so that unwatched calls, latency measurements included, cost nothing more).
    """

    name = "torch"

    def __init__(self, model, device):
        self.device = device
        self.model = fold_batchnorm(copy.deepcopy(model).eval()).to(device)
        flush_subnormals(self.model)
        self.channels_last = device.type == "cpu"
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self._lock = threading.Lock()
        self._hooks, self._watched_calls = [], 0
        self._macs_per_pixel = None

    def _forward(self, x):
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.model(x)

    def __call__(self, x, progress=None, cancel=None):
        """``(loc, conf)``. ``progress(fraction)`` is called as the convolutions' multiply-adds are
        done; ``cancel`` (``facedet.cancel``) is checked after each convolution, and raises
        DetectionCancelled when set."""
        if progress is None and cancel is None:
            return self._forward(x)
        expected = self.macs(x.shape[2], x.shape[3]) if progress is not None else None
        out = self._watched(x, _Watch(progress, cancel, expected))
        if progress is not None:
            progress(1.0)
        return out

    def _watched(self, x, watch):
        with self._lock:
            if not self._watched_calls:
                self._hooks = [m.register_forward_hook(_after_conv) for m in self.model.modules()
                               if isinstance(m, nn.Conv2d)]
            self._watched_calls += 1
        _WATCHING.watch = watch
        try:
            return self._forward(x)
        finally:
            _WATCHING.watch = None
            with self._lock:
                self._watched_calls -= 1
                if not self._watched_calls:
                    for hook in self._hooks:
                        hook.remove()
                    self._hooks = []

    def macs(self, height, width):
        """Multiply-adds of the convolutions in one forward pass at ``height`` x ``width``, from one
        pass at ``PROFILE_SIDE`` px counted once (every layer's work grows with the input's area)."""
        if self._macs_per_pixel is None:
            counter = _Watch()
            with torch.inference_mode():
                self._watched(torch.zeros(1, 3, PROFILE_SIDE, PROFILE_SIDE, device=self.device), counter)
            self._macs_per_pixel = counter.done / PROFILE_SIDE ** 2
        return self._macs_per_pixel * height * width


class OnnxNetwork:
    """The network exported to ONNX in memory and run by ONNX Runtime on the CPU (its graph
    optimisations fold BatchNorm too). Height and width are dynamic."""

    name = "onnx"

    def __init__(self, model, threads=None):
        import onnxruntime as ort

        self.device = torch.device("cpu")
        model = copy.deepcopy(model).cpu().eval()
        flush_subnormals(model)
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
        self.session = ort.InferenceSession(buffer.getvalue(), options, providers=["CPUExecutionProvider"])

    def __call__(self, x, progress=None, cancel=None):
        """``(loc, conf)``; ONNX Runtime runs the whole graph at once, so ``cancel`` is checked
        before it and ``progress`` is told only at the end."""
        if is_cancelled(cancel):
            raise DetectionCancelled("the detection was cancelled")
        loc, conf = self.session.run(["loc", "conf"], {"image": x.detach().cpu().numpy()})
        if progress is not None:
            progress(1.0)
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
