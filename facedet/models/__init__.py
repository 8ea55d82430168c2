"""The detector architectures: ``create_model(arch)`` is the one entry point.

Each architecture file registers its ``DetectorSpec`` (``facedet.models.registry``) when imported;
importing this package imports them all, so ``DETECTORS`` lists every detector.
"""

import torch.nn as nn

from facedet.models import eresfd, extd  # noqa: F401  (each registers its DetectorSpec)
from facedet.models.registry import DETECTORS, DetectorSpec, detector_spec, register_detector  # noqa: F401
from facedet.models.scatter import ScatterBatchNorm

ARCHITECTURES = tuple(DETECTORS)


def create_model(arch):
    """A freshly initialised detector (load weights with ``facedet.weights.load_model``)."""
    return detector_spec(arch).build()


def resize_to_state_dict(model, state_dict):
    """Rebuild every conv, BatchNorm and PReLU to the tensor shapes in ``state_dict``.

    Physically pruned (compacted) models keep the architecture's wiring but have fewer channels;
    rebuilding from the saved shapes lets one code path load dense, masked and compact models.
    Depthwise convs stay depthwise (groups follow the channel count). A BatchNorm saved with an
    ``order`` buffer becomes a ``ScatterBatchNorm`` (a layer that computes only its kept filters).
    """
    for name, module in list(model.named_modules()):
        key = f"{name}.weight"
        if key not in state_dict:
            continue
        shape = tuple(state_dict[key].shape)
        if isinstance(module, nn.Conv2d):
            depthwise = module.groups > 1 and module.groups == module.in_channels == module.out_channels
            out_ch = shape[0]
            in_ch = out_ch if depthwise else shape[1] * module.groups
            groups = out_ch if depthwise else module.groups
            new = nn.Conv2d(in_ch, out_ch, module.kernel_size, module.stride, module.padding,
                            module.dilation, groups, module.bias is not None)
        elif isinstance(module, nn.BatchNorm2d) and f"{name}.order" in state_dict:
            new = ScatterBatchNorm(shape[0], state_dict[f"{name}.order"].shape[0], eps=module.eps, momentum=module.momentum)
            _replace(model, name, new)
            continue
        elif isinstance(module, nn.BatchNorm2d):
            new = nn.BatchNorm2d(shape[0], eps=module.eps, momentum=module.momentum)
        elif isinstance(module, nn.PReLU):
            new = nn.PReLU(shape[0])
        else:
            continue
        if tuple(getattr(module, "weight").shape) != shape:
            _replace(model, name, new)
    return model


def _replace(model, dotted_name, new_module):
    parent_name, _, child = dotted_name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, new_module)
