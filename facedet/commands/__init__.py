"""Sub-commands of ``python -m facedet``, one module each."""

# facedet.backends.BACKENDS, spelled out here so that parsing options does not import torch.
BACKENDS = ("auto", "torch", "onnx")


def add_backend_option(parser, auto="whichever measures faster for the model here"):
    parser.add_argument("--backend", default="auto", choices=BACKENDS,
                        help=f"network runtime: torch (eager, BatchNorm folded), onnx (ONNX Runtime, CPU) "
                             f"or auto ({auto}; default)")


def add_style_option(parser):
    # The names of facedet.viz.overlay.STYLES, written out so that --help does not import OpenCV.
    parser.add_argument("--style", default="presentation", choices=("presentation", "screen"),
                        help="how --out draws boxes: presentation (thick, edged in black, large scores, "
                             "for a projector; default) or screen (thin, small scores)")


def one_photo_backend(choice, weights):
    """The backend for a command on one photo: ``auto`` means torch (an ONNX export, 0.5-1 s, and
    ONNX Runtime's first run at a new size cost more than they save), except for a peer detector
    (YuNet), which has its own runtime."""
    from facedet.peers import is_peer

    return "torch" if choice == "auto" and not is_peer(weights) else choice
