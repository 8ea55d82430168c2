"""facedet: the EXTD and EResFD face detectors, their published checkpoints, inference and
WIDER FACE evaluation.

Importing this package is cheap: torch is imported only when a model is used, so that
``python -m facedet evaluate`` stays fast.
"""

__all__ = ["create_model", "load_detector", "Detector", "count_parameters", "FacedetError"]

from facedet.errors import FacedetError


def __getattr__(name):
    # Lazy imports keep the torch-free paths (evaluation) free of torch.
    if name in ("create_model",):
        from facedet.models import create_model

        return create_model
    if name in ("load_detector", "Detector"):
        from facedet import detector

        return getattr(detector, name)
    if name == "count_parameters":
        from facedet.params import count_parameters

        return count_parameters
    raise AttributeError(f"module 'facedet' has no attribute {name!r}")
