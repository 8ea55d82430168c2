"""Sub-commands of ``python -m facedet``, one module each."""

# facedet.backends.BACKENDS, spelled out here so that parsing options does not import torch.
BACKENDS = ("auto", "torch", "onnx")


def add_backend_option(parser, auto="whichever measures faster for the model here"):
    parser.add_argument("--backend", default="auto", choices=BACKENDS,
                        help=f"network runtime: torch (eager, BatchNorm folded), onnx (ONNX Runtime, CPU) "
                             f"or auto ({auto}; default)")
