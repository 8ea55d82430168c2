"""The detector object: pre-processing, the network, priors and post-processing tied together."""

import dataclasses
import math
import time
import warnings
from dataclasses import dataclass, field

import cv2
import numpy as np
import torch

from facedet.backends import make_network
from facedet.errors import DeviceError, FacedetError, FacedetWarning, ImageError
from facedet.images import resize
from facedet.postprocess import PostprocessConfig, postprocess
from facedet.models import detector_spec
from facedet.priors import make_priors

MEAN_RGB = (123.0, 117.0, 104.0)
MAX_SIDE = 4096  # cap on the network input side, so memory stays bounded
# Smallest network input side: the smallest anchor (16 px at stride 4), the smallest face the
# detectors find; a thinner input holds no face they can find.
MIN_SIDE = 16


@dataclass(frozen=True)
class DetectorConfig:
    mean: tuple = MEAN_RGB
    strides: tuple | None = None  # None: the detector's own (its DetectorSpec)
    anchor_sizes: tuple | None = None
    aspect_ratio: float = 1.0
    post: PostprocessConfig = field(default_factory=PostprocessConfig)


def pick_device(device="auto"):
    """The torch device for ``auto`` (CUDA when present), ``cpu``, ``cuda`` or ``cuda:N``;
    DeviceError (one line) for anything else or a device this machine does not have."""
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if isinstance(device, torch.device):
        chosen = device
    else:
        try:
            chosen = torch.device(str(device))
        except (RuntimeError, ValueError):
            raise DeviceError(f"unknown device {device!r}: use auto, cpu or cuda") from None
    if chosen.type == "cpu":
        return chosen
    if chosen.type != "cuda":
        raise DeviceError(f"device {device!r} is not supported: use auto, cpu or cuda")
    if not torch.cuda.is_available():
        raise DeviceError(f"device {device!r}: no CUDA device is available on this machine (use auto or cpu)")
    if chosen.index is not None and chosen.index >= torch.cuda.device_count():
        raise DeviceError(f"device {device!r}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    return chosen


class Detector:
    """A loaded face detector. ``detect(image)`` returns (N, 5) [x1, y1, x2, y2, score]."""

    def __init__(self, model, arch, config=DetectorConfig(), device="auto", checkpoint=None, backend="torch"):
        self.device = pick_device(device)
        self.model = model.to(self.device).eval()  # as loaded: layers, masks, parameter counts
        # What runs at inference: a folded copy or an ONNX Runtime session (facedet.backends).
        self.network = make_network(self.model, backend, self.device, arch)
        self.arch = arch
        self.spec = detector_spec(arch)
        self.config = config
        self.checkpoint = checkpoint
        self._priors = {}

    @property
    def backend(self):
        return self.network.name

    def auto_scale(self, height, width):
        """Scale that brings the image to the authors' demo area, capped at ``MAX_SIDE`` pixels."""
        scale = math.sqrt(self.spec.auto_area / (height * width))
        return min(scale, MAX_SIDE / max(height, width))

    def scale_for(self, height, width, scale=None):
        """The scale ``detect`` runs a ``height`` x ``width`` image at.

        ``scale`` None: the automatic one. A larger scale than the ``MAX_SIDE`` cap allows is
        reduced to it, with a FacedetWarning. ImageError when the network input would have a side
        under ``MIN_SIDE`` px (too small a scale, or an image too thin for both limits).
        """
        return checked_scale(height, width, self.auto_scale(height, width) if scale is None else scale)

    def parameter_count(self):
        """Total and nonzero learnable parameters of the model as loaded (``facedet.params``)."""
        from facedet.params import count_parameters

        return count_parameters(self.model)

    def conv_flops(self, height=480, width=640):
        """FLOPs of the nonzero convolution weights at ``height`` x ``width`` (``facedet.viz.cost``)."""
        from facedet.viz.cost import nonzero_conv_flops

        return nonzero_conv_flops(self.model, height, width)

    def priors(self, height, width):
        key = (height, width)
        if key not in self._priors:
            strides = self.config.strides or self.spec.strides
            anchor_sizes = self.config.anchor_sizes or self.spec.anchor_sizes
            self._priors = {key: make_priors(height, width, strides, anchor_sizes,
                                             self.config.aspect_ratio).to(self.device)}
        return self._priors[key]

    def preprocess(self, image, scale):
        """The network input [1, 3, H, W] float32: the RGB image resized by ``scale``, minus the mean.

        Laid out as the network runs: channels last (the image's own layout, viewed as NCHW) for
        PyTorch on the CPU, else channels first, written plane by plane (the same values either way).
        """
        resized = resize(image, scale)
        mean = np.asarray(self.config.mean, dtype=np.float32)
        if getattr(self.network, "channels_last", False):
            if resized.dtype == np.uint8:
                x = cv2.subtract(resized, (*self.config.mean, 0.0), dtype=cv2.CV_32F)
            else:
                x = resized.astype(np.float32) - mean
            return torch.from_numpy(x).permute(2, 0, 1).unsqueeze(0).to(self.device)
        x = np.empty((1, 3, *resized.shape[:2]), dtype=np.float32)
        for channel in range(3):
            np.subtract(resized[:, :, channel], mean[channel], out=x[0, channel], dtype=np.float32)
        return torch.from_numpy(x).to(self.device)

    @torch.inference_mode()
    def detect(self, image, scale=None, threshold=0.05, timings=None, map_by_input=False, progress=None,
               cancel=None):
        """Faces in an RGB uint8 image, in its own pixel coordinates, best first.

        ``scale`` resizes the image before the network (None: automatic; see ``scale_for`` for
        its limits: ImageError when the input would be too small); ``threshold`` drops
        detections scoring below it. Pass a dict as ``timings`` to receive the milliseconds spent
        in pre-processing, the network and post-processing. ``map_by_input`` maps boxes back by
        the network input's size over ``scale`` instead of the image's size, as the authors' test
        script does (the two differ by the rounding of the resized size). ``progress(fraction)``
        is told how much of the network's work is done as it runs (for a slow model on a large
        photo); ``cancel`` (a ``threading.Event`` or a callable, ``facedet.cancel``) stops the
        detection with DetectionCancelled, convolution by convolution.
        """
        height, width = image.shape[:2]
        scale = self.scale_for(height, width, scale)
        t0 = time.perf_counter()
        x = self.preprocess(image, scale)
        t1 = time.perf_counter()
        watched = progress is not None or cancel is not None
        loc, conf = self.network(x, progress=progress, cancel=cancel) if watched else self.network(x)
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        t2 = time.perf_counter()
        priors = self.priors(x.shape[2], x.shape[3])
        if map_by_input:
            width, height = x.shape[3] / scale, x.shape[2] / scale
        post = self.config.post
        if threshold > post.score_threshold:
            # Exact shortcut: NMS visits boxes best first, so boxes under the threshold never decide
            # the fate of a box above it, nor its place within the top-k caps. Fewer candidates.
            post = dataclasses.replace(post, score_threshold=float(np.nextafter(np.float32(threshold), np.float32(0))))
        dets = postprocess(loc[0], conf[0], priors, width, height, post)
        dets = dets[dets[:, 4] >= threshold]
        t3 = time.perf_counter()
        if timings is not None:
            timings.update(pre_ms=(t1 - t0) * 1e3, net_ms=(t2 - t1) * 1e3, post_ms=(t3 - t2) * 1e3)
        return dets


def checked_scale(height, width, scale):
    """``scale`` for a ``height`` x ``width`` image within the input limits, for every detector.

    A scale larger than the ``MAX_SIDE`` cap allows is reduced to it, with a FacedetWarning.
    ImageError when the network input would have a side under ``MIN_SIDE`` px (too small a scale,
    or an image too thin for both limits).
    """
    scale = float(scale)
    if not (math.isfinite(scale) and scale > 0):
        raise FacedetError(f"the scale must be a positive number, got {scale:g}")
    cap = MAX_SIDE / max(height, width)
    if scale > cap * (1 + 1e-9):
        warnings.warn(FacedetWarning(
            f"scale {scale:g} reduced to {cap:.4g} for a {width}x{height} image: the network input "
            f"is capped at {MAX_SIDE} px a side"), stacklevel=4)
        scale = cap
    in_height, in_width = input_size(height, width, scale)
    if min(in_height, in_width) < MIN_SIDE:
        raise ImageError(
            f"a {width}x{height} image at scale {scale:.4g} makes a {in_width}x{in_height} network input; "
            f"each side must be at least {MIN_SIDE} px (the smallest face the detector finds)"
            + (f" and at most {MAX_SIDE} px" if max(in_height, in_width) >= MAX_SIDE else ""))
    return scale


def input_size(height, width, scale):
    """(height, width) of the network input for an image resized by ``scale``: OpenCV's rounding."""
    return round(height * scale), round(width * scale)


def load_detector(weights="eresfd", detector=None, device="auto", config=DetectorConfig(), backend="auto"):
    """A Detector for a registry name (``eresfd``, ``extd-fpgm-10`` ...) or a checkpoint path.

    ``detector`` (extd/eresfd) is only a check: the architecture is recognised from the file.
    ``backend``: ``torch``, ``onnx`` or ``auto`` (the faster of the two measured here; see
    ``facedet.backends.make_network``). A peer detector's name (``yunet-n``, ``yunet-s``) or ONNX
    file gives a ``facedet.peers.YuNetDetector``, which runs through OpenCV (``backend`` auto).
    """
    from facedet.peers import is_peer, load_peer
    from facedet.weights import load_model

    if is_peer(weights):
        if detector is not None:
            raise FacedetError(f"{weights} is a peer detector (YuNet), not {detector}")
        return load_peer(weights, device=device, backend=backend)

    model, ckpt = load_model(weights, arch=detector)
    return Detector(model, ckpt.arch, config, device, checkpoint=ckpt, backend=backend)
