"""ONNX export of a detector network and running it with ONNX Runtime.

The exported graph maps ``image`` [B, 3, H, W] (RGB minus the mean, as ``model(x)`` takes it) to
``loc`` [B, P, 4] and ``conf`` [B, P, 2]; batch, height and width are dynamic. Torch's
TorchScript-based exporter is used (``dynamo=False``): it needs no extra packages and handles the
detectors' size-dependent interpolations.
"""

import copy
import io
import warnings
from pathlib import Path

import torch

from facedet.atomic import write_bytes
from facedet.errors import WeightsError

OPSET = 17
EXPORT_SIZE = (640, 640)


def export_onnx(model, path, size=EXPORT_SIZE):
    """Write ``model`` (a copy on CPU, eval mode) to ``path`` as ONNX; returns the path."""
    from facedet.backends import leaky_prelus

    path = Path(path)
    model = leaky_prelus(copy.deepcopy(model).cpu().eval())  # the same function; ONNX Runtime fuses it
    example = torch.zeros(1, 3, *size)
    dims = {0: "batch", 2: "height", 3: "width"}
    # Exported into memory, then written atomically: a full disk leaves no truncated model behind.
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model, (example,), buffer, dynamo=False, opset_version=OPSET,
            input_names=["image"], output_names=["loc", "conf"],
            dynamic_axes={"image": dims, "loc": {0: "batch", 1: "priors"}, "conf": {0: "batch", 1: "priors"}},
        )
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise WeightsError(f"cannot make the folder of {path}: {err.strerror or err}") from None
    return write_bytes(path, buffer.getbuffer(), error=WeightsError)


def onnx_session(path, threads=None):
    """An ONNX Runtime CPU session for an exported detector."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = int(threads)
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as err:  # ORT raises its own exception types for missing or invalid files
        raise WeightsError(f"ONNX Runtime cannot load {path}: {str(err).splitlines()[0][:160]}") from None


def run_onnx(session, x):
    """``(loc, conf)`` numpy arrays for the float tensor or array ``x`` [B, 3, H, W]."""
    array = x.detach().cpu().numpy() if torch.is_tensor(x) else x
    loc, conf = session.run(["loc", "conf"], {"image": array.astype("float32", copy=False)})
    return loc, conf
