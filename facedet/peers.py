"""Peer detectors: other authors' face detectors, run behind the ``Detector`` interface so that the
command line, the benchmarks and the app can set them beside EXTD and EResFD.

YuNet-n and YuNet-s (libfacedetection, Apache-2.0) are ONNX files (``facedet.weights.PEERS``,
resolved like any checkpoint) run by OpenCV's ``cv2.FaceDetectorYN``, which does its own
pre-processing, decoding and NMS. They have no PyTorch model: their parameters and FLOPs are counted
from the ONNX graph.
"""

import threading
import time
from functools import lru_cache
from pathlib import Path

import numpy as np

from facedet.errors import DeviceError, FacedetError, WeightsError
from facedet.params import ParamCount
from facedet.postprocess import PostprocessConfig

RUNTIME = "opencv"  # what ``Detector.backend`` says for a peer
FLOPS_INPUT = (480, 640)  # (height, width): facedet.viz.cost's VGA input


def is_peer(weights):
    """True for a peer's registry name (``yunet-n``) or an ONNX file path."""
    from facedet.weights import PEERS

    text = str(weights)
    return text in PEERS or Path(text).suffix.lower() == ".onnx"


def peer_names():
    """The peers' registry names, as the pages and benchmarks list them."""
    from facedet.weights import PEERS

    return list(PEERS)


def peer_label(name):
    """``YuNet-n`` for ``yunet-n``."""
    family, _, variant = str(name).partition("-")
    return f"YuNet-{variant}" if family == "yunet" and variant else str(name)


class PeerFile:
    """The file a peer detector was loaded from (what ``Detector.checkpoint`` is for our models)."""

    def __init__(self, name, path, sha256):
        self.name, self.path, self.sha256 = name, Path(path), sha256
        self.arch = "yunet"


def _onnx_model(path):
    import onnx

    try:
        return onnx.load(str(path))
    except Exception as err:  # a truncated or foreign file: protobuf's DecodeError and others
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise WeightsError(f"{path} is not a readable ONNX file ({reason[:100]})") from None


@lru_cache(maxsize=8)
def onnx_parameter_count(path):
    """Total and nonzero numbers in the floating-point initializers of an ONNX file: its weights and
    biases as exported (YuNet's export folds BatchNorm into the convolutions, so the trained model's
    BatchNorm scales and shifts are not there)."""
    from onnx import TensorProto, numpy_helper

    tensors = [numpy_helper.to_array(t) for t in _onnx_model(path).graph.initializer
               if t.data_type in (TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.DOUBLE)]
    return ParamCount(sum(t.size for t in tensors), sum(int(np.count_nonzero(t)) for t in tensors))


@lru_cache(maxsize=8)
def onnx_conv_flops(path, height=FLOPS_INPUT[0], width=FLOPS_INPUT[1]):
    """FLOPs (2 x multiply-adds) of every convolution's nonzero weights at a ``height`` x ``width``
    input, as ``facedet.viz.cost.nonzero_conv_flops`` counts ours: output sizes from ONNX shape
    inference with the input resized. None when the graph's shapes cannot be inferred."""
    from onnx import numpy_helper, shape_inference

    model = _onnx_model(path)
    dims = model.graph.input[0].type.tensor_type.shape.dim
    if len(dims) != 4:
        return None
    dims[2].dim_value, dims[3].dim_value = int(height), int(width)
    for output in model.graph.output:  # exported for 640x640: let inference recompute them
        output.type.tensor_type.ClearField("shape")
    del model.graph.value_info[:]
    try:
        inferred = shape_inference.infer_shapes(model)
    except Exception:  # a graph onnx cannot infer: the FLOPs stay unknown rather than guessed
        return None
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
              for v in (*inferred.graph.value_info, *inferred.graph.output)}
    weights = {t.name: t for t in model.graph.initializer}
    total = 0
    for node in model.graph.node:
        if node.op_type != "Conv":
            continue
        shape = shapes.get(node.output[0])
        if not shape or len(shape) != 4 or not all(shape[2:]) or node.input[1] not in weights:
            return None
        total += 2 * int(np.count_nonzero(numpy_helper.to_array(weights[node.input[1]]))) * shape[2] * shape[3]
    return total


class YuNetDetector:
    """YuNet through ``cv2.FaceDetectorYN``: ``detect(image)`` returns (N, 5) [x1, y1, x2, y2, score]
    in the image's pixels, best first, like ``facedet.detector.Detector``.

    The automatic scale is 1 (YuNet runs at the image's own size; OpenCV pads the input to its
    strides), reduced for huge images to the same ``MAX_SIDE`` cap as ours. NMS IoU and the cap on
    kept boxes are our post-processing's (``PostprocessConfig``).
    """

    backend = RUNTIME

    def __init__(self, path, name=None, sha256=None, post=PostprocessConfig()):
        import cv2
        import torch

        from facedet.weights import sha256_of

        if not hasattr(cv2, "FaceDetectorYN_create"):
            raise FacedetError(f"this OpenCV ({cv2.__version__}) has no FaceDetectorYN; YuNet needs OpenCV 4.5.4 or newer")
        self.path = Path(path)
        self.name = name or self.path.stem
        self.arch = "yunet"
        self.device = torch.device("cpu")
        self.post = post
        self.checkpoint = PeerFile(self.name, self.path, sha256 or sha256_of(self.path))
        # OpenCV 5's DNN logs a warning per model (no target choice in its new graph engine):
        # errors still reach the user, as one line of ours.
        level = cv2.utils.logging.getLogLevel()
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
        try:
            self._net = cv2.FaceDetectorYN_create(str(self.path), "", (320, 320), post.score_threshold,
                                                  post.nms_iou, post.nms_top_k)
        except cv2.error as err:
            raise WeightsError(f"{self.name}: OpenCV cannot load {self.path.name} as a YuNet model "
                               f"({_first_line(err)})") from None
        finally:
            cv2.utils.logging.setLogLevel(level)
        self._size = None
        # One OpenCV net whose input size and threshold each call sets: the app's threads share it.
        self._lock = threading.Lock()

    def __repr__(self):
        return f"YuNetDetector({self.name!r})"

    def parameter_count(self):
        return onnx_parameter_count(self.path)

    def conv_flops(self, height=FLOPS_INPUT[0], width=FLOPS_INPUT[1]):
        return onnx_conv_flops(self.path, height, width)

    def auto_scale(self, height, width):
        from facedet.detector import MAX_SIDE

        return min(1.0, MAX_SIDE / max(height, width))

    def scale_for(self, height, width, scale=None):
        """The scale ``detect`` runs a ``height`` x ``width`` image at (limits as ``Detector.scale_for``)."""
        from facedet.detector import checked_scale

        return checked_scale(height, width, self.auto_scale(height, width) if scale is None else scale)

    def detect(self, image, scale=None, threshold=0.05, timings=None, map_by_input=False, progress=None,
               cancel=None):
        """Faces in an RGB uint8 image, in its own pixel coordinates, best first (arguments as
        ``Detector.detect``; the network time is OpenCV's whole ``detect``: its own pre-processing,
        network, decoding and NMS, which cannot be stopped halfway: ``cancel`` is checked before it,
        ``progress`` told after it)."""
        import cv2

        from facedet.cancel import is_cancelled
        from facedet.errors import DetectionCancelled

        if is_cancelled(cancel):
            raise DetectionCancelled("the detection was cancelled")

        from facedet.detector import input_size
        from facedet.images import resize

        height, width = image.shape[:2]
        scale = self.scale_for(height, width, scale)
        t0 = time.perf_counter()
        resized = resize(image, scale) if scale != 1.0 else image
        bgr = cv2.cvtColor(np.ascontiguousarray(resized), cv2.COLOR_RGB2BGR)
        size = (bgr.shape[1], bgr.shape[0])
        with self._lock:
            if size != self._size:
                self._net.setInputSize(size)
                self._size = size
            # Candidates from just under the threshold enter NMS (as Detector.detect's exact shortcut).
            self._net.setScoreThreshold(float(max(threshold, self.post.score_threshold)) * (1 - 1e-6))
            t1 = time.perf_counter()
            try:
                _, faces = self._net.detect(bgr)
            except cv2.error as err:
                raise FacedetError(f"{self.name} failed on a {width}x{height} image ({_first_line(err)})") from None
            t2 = time.perf_counter()
        if progress is not None:
            progress(1.0)
        dets = np.zeros((0, 5), dtype=np.float32)
        if faces is not None and len(faces):
            x, y, w, h, score = faces[:, 0], faces[:, 1], faces[:, 2], faces[:, 3], faces[:, 14]
            dets = np.stack([x, y, x + w, y + h, score], axis=1).astype(np.float32)
            in_height, in_width = input_size(height, width, scale)
            # Boxes back to the image's pixels: by the image's size over the input's, or by the scale.
            fx, fy = (1 / scale, 1 / scale) if map_by_input else (width / in_width, height / in_height)
            dets[:, [0, 2]] *= fx
            dets[:, [1, 3]] *= fy
            right, bottom = (in_width / scale, in_height / scale) if map_by_input else (width, height)
            dets[:, [0, 2]] = dets[:, [0, 2]].clip(0, right)
            dets[:, [1, 3]] = dets[:, [1, 3]].clip(0, bottom)
            dets = dets[dets[:, 4] >= threshold]
            dets = dets[np.argsort(-dets[:, 4], kind="stable")][: self.post.keep_top_k]
        t3 = time.perf_counter()
        if timings is not None:
            timings.update(pre_ms=(t1 - t0) * 1e3, net_ms=(t2 - t1) * 1e3, post_ms=(t3 - t2) * 1e3)
        return dets


def load_peer(weights="yunet-n", device="auto", backend="auto"):
    """A YuNetDetector for a peer's registry name (resolved like any checkpoint: the weights folder,
    the cache, or a download checked against its sha256) or an ONNX file path."""
    from facedet.weights import PEERS, resolve, sha256_of

    if device not in (None, "auto", "cpu"):
        raise DeviceError(f"{weights} runs on the CPU through OpenCV; use --device auto or cpu")
    if backend not in (None, "auto", RUNTIME):
        raise FacedetError(f"{weights} runs through OpenCV (cv2.FaceDetectorYN); --backend {backend} applies to "
                           "EXTD and EResFD only")
    path = resolve(weights)
    if path.stat().st_size == 0:
        raise WeightsError(f"{weights} is empty")
    name = str(weights) if str(weights) in PEERS else path.stem
    return YuNetDetector(path, name, sha256_of(path))


def _first_line(err):
    text = str(err).strip().splitlines()
    return (text[-1] if text else type(err).__name__)[:120]
