"""What the rest of the code knows about each detector, written once in the detector's own file.

A ``DetectorSpec`` names the architecture, builds it, and states what inference, training,
pruning, the command lines and the app need: its automatic-scale area, anchors, which convs form
the detection head (never pruned), its layer groups (non-uniform rates), the optimizer its authors trained it with, its chart colour.
Each architecture file registers its spec with ``register_detector``; ``facedet.models`` imports
them all. Adding a detector is one file (plus its checkpoint rows in ``facedet/pretrained.json``).
"""

from dataclasses import dataclass

from facedet.errors import FacedetError
from facedet.priors import ANCHOR_SIZES, STRIDES


@dataclass(frozen=True)
class DetectorSpec:
    name: str  # registry key, also what checkpoints record: "eresfd"
    display_name: str  # "EResFD"
    build: type  # the nn.Module class; ``build()`` gives a freshly initialised model
    auto_area: int  # image area (pixels) the automatic scale brings a photo to: the authors' demos
    strides: tuple = STRIDES
    anchor_sizes: tuple = ANCHOR_SIZES
    head_prefixes: tuple = ("loc.", "conf.")  # module-name prefixes of the head convs (not pruned)
    # (alias prefix, canonical prefix) of key names some released files also store: the same tensors
    # registered twice upstream. The loader drops an alias key only once it equals its canonical tensor.
    key_aliases: tuple = ()
    # B-FPGM's layer groups (one pruning rate each): module-name prefixes per group, as B-FPGM's code
    # defines them; a conv belongs to the group naming it or a module above it (pruning.rates).
    layer_groups: tuple = ()
    optimizer: str = "adam"  # the authors' training optimizer, the "auto" choice of pruning.train
    colour: str = "#000000"  # chart colour (Okabe-Ito: readable with colour-blindness, on projectors)
    paper: str = ""  # citation


DETECTORS = {}


def register_detector(spec):
    """Add ``spec`` to the registry (called at the bottom of each architecture file)."""
    if spec.name in DETECTORS:
        raise ValueError(f"detector {spec.name!r} is registered twice")
    DETECTORS[spec.name] = spec
    return spec


def detector_spec(name):
    """The registered ``DetectorSpec`` for ``name``; a one-line FacedetError for anything else."""
    try:
        return DETECTORS[name]
    except (KeyError, TypeError):
        raise FacedetError(f"unknown detector {name!r}; choose one of {', '.join(DETECTORS)}") from None
