"""Where a detector's network runs: PyTorch eager with BatchNorm folded, or ONNX Runtime.

Both take the pre-processed image tensor [1, 3, H, W] and return ``(loc, conf)`` tensors, so the
``Detector`` around them (pre-processing, priors, NMS) is the same whichever runs. The network is
copied (``inference_copy``): folding rewrites layers, subnormal weights are flushed
(``facedet.numerics``) and one-slope PReLUs become LeakyReLUs, while the caller's model (trained,
pruned, counted, shown layer by layer) stays exactly as it was.
"""

import copy
import hashlib
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
    detectors' depthwise convolutions and PReLUs several times faster (EXTD: ~1.5x overall).

    A call given ``progress`` or ``cancel`` is watched convolution by convolution (hooks attached
    for that call only, so that unwatched calls, latency measurements included, cost nothing more).
    """

    name = "torch"

    def __init__(self, model, device):
        self.device = device
        self.model = inference_copy(model).to(device)
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
    optimisations fold BatchNorm too). Height and width are dynamic. ``form`` says what was
    exported: the model as loaded, or one of its compactions (``onnx_network``)."""

    name = "onnx"

    def __init__(self, model, threads=None, form="as loaded"):
        import onnxruntime as ort

        self.form = form
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

    def __call__(self, x, progress=None, cancel=None):
        """``(loc, conf)``; ONNX Runtime runs the whole graph at once, so ``cancel`` is checked
        before it and ``progress`` is told only at the end."""
        if is_cancelled(cancel):
            raise DetectionCancelled("the detection was cancelled")
        loc, conf = self.session.run(["loc", "conf"], {"image": x.detach().cpu().numpy()})
        if progress is not None:
            progress(1.0)
        return torch.from_numpy(loc), torch.from_numpy(conf)


@torch.inference_mode()
def _fastest(candidates, runs=5):
    """The key of the fastest of ``candidates`` (``{key: network}``) on a 320x320 input: median of
    ``runs`` timings each, taken in turns (A, B, A, B ...) so that a change of load falls on all."""
    x = torch.randn(*MEASURE_INPUT) * 60
    samples = {key: [] for key in candidates}
    for network in candidates.values():
        network(x)  # warm-up
    for _ in range(runs):
        for key, network in candidates.items():
            start = time.perf_counter()
            network(x)
            samples[key].append(time.perf_counter() - start)
    medians = {key: sorted(times)[len(times) // 2] for key, times in samples.items()}
    return min(medians, key=medians.get)


# The forms a pruned model can run in on ONNX Runtime, all with its outputs (within 1e-4):
# pruning.compact's coupled="narrow" and coupled="keep".
COMPACT_FORMS = {"compacted": "narrow", "compacted, coupled channels kept": "keep"}
MEASURE_INPUT = (1, 3, 320, 320)
_ONNX_FORM = {}  # model signature -> the fastest form here, measured once per process
_AUTO_CHOICE = {}  # model signature -> backend name, measured once per process


def _zero_filter_masks(model):
    """Per conv, in module order: which of its output filters are all zero (what compaction removes)."""
    return [(m.weight.detach().flatten(1) == 0).all(dim=1) for m in model.modules() if isinstance(m, nn.Conv2d)]


def _signature(model, arch, masks=None):
    """Architecture, layer shapes, which filters are zero, threads: what the timings depend on."""
    zeros = hashlib.sha1()
    for mask in _zero_filter_masks(model) if masks is None else masks:
        zeros.update(mask.cpu().numpy().tobytes())
    return arch, tuple(tuple(p.shape) for p in model.parameters()), zeros.hexdigest(), torch.get_num_threads()


def compacted_form(model, form):
    """``model`` compacted as ONNX form ``form`` (a key of ``COMPACT_FORMS``)."""
    from pruning.compact import compact_model

    return compact_model(model, coupled=COMPACT_FORMS[form]).model


def onnx_network(model, arch=None, threads=None):
    """``model`` on ONNX Runtime in its fastest exact form here: as loaded, or for a pruned model
    one of its compactions (``COMPACT_FORMS``), whichever measures fastest at 320x320, once per
    process. Which is fastest depends on the runtime's kernels, not on FLOPs: ONNX Runtime computes
    output channels in blocks of 16 (AVX-512), and a compaction that removes filters but leaves a
    layer's channel count off the block (or adds ScatterBatchNorm's gathers) can be slower."""
    masks = _zero_filter_masks(model)
    if not any(bool(mask.any()) for mask in masks):
        return OnnxNetwork(model, threads)
    key = _signature(model, arch, masks)
    if key in _ONNX_FORM:
        form = _ONNX_FORM[key]
        return OnnxNetwork(model if form == "as loaded" else compacted_form(model, form), threads, form)
    candidates = {"as loaded": OnnxNetwork(model, threads)}
    for form in COMPACT_FORMS:
        try:
            candidates[form] = OnnxNetwork(compacted_form(model, form), threads, form)
        except Exception:  # a model compaction cannot handle (or a check it fails) runs as loaded
            continue
    _ONNX_FORM[key] = _fastest(candidates, runs=7)
    return candidates[_ONNX_FORM[key]]


def make_network(model, backend="auto", device=torch.device("cpu"), arch=None):
    """The network of a detector on ``backend`` (``onnx``: ``onnx_network``'s fastest form;
    ``auto``: on a GPU PyTorch, on the CPU whichever of torch and onnx measures faster for this
    model here, at 320x320, once per process)."""
    if backend not in BACKENDS:
        raise FacedetError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if backend == "onnx" and device.type != "cpu":
        raise FacedetError("the onnx backend runs on the CPU; use --device cpu or --backend torch")
    if backend == "torch" or (backend == "auto" and device.type != "cpu"):
        return TorchNetwork(model, device)
    if backend == "onnx":
        return onnx_network(model, arch)
    key = _signature(model, arch)
    if key in _AUTO_CHOICE:
        return TorchNetwork(model, device) if _AUTO_CHOICE[key] == "torch" else onnx_network(model, arch)
    candidates = {"torch": TorchNetwork(model, device), "onnx": onnx_network(model, arch)}
    _AUTO_CHOICE[key] = _fastest(candidates)
    return candidates[_AUTO_CHOICE[key]]
