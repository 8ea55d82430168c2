"""``python -m facedet``: the command line.

Each sub-command lives in its own module under ``facedet.commands`` and exposes
``register(subparsers)``; the module is imported only when its command runs, so that
torch-free commands (``evaluate``) never import torch.
"""

import argparse
import importlib
import sys

from facedet.errors import FacedetError

# command name -> (module, one-line help)
COMMANDS = {
    "detect": ("facedet.commands.detect", "detect faces in an image"),
    "info": ("facedet.commands.info", "describe a checkpoint: detector, parameters, sparsity"),
    "bench": ("facedet.commands.bench", "measure inference latency"),
    "evaluate": ("facedet.commands.evaluate", "WIDER FACE Easy/Medium/Hard AP of a prediction folder"),
    "predict": ("facedet.commands.predict", "run a detector over a WIDER FACE split"),
    "sample-set": ("facedet.commands.sample_set", "write a small WIDER-format sample set"),
}


def build_parser(command=None):
    parser = argparse.ArgumentParser(prog="python -m facedet", description="EXTD and EResFD face detectors: detection, checkpoints, latency and WIDER FACE evaluation.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, (module, help_text) in COMMANDS.items():
        if command == name:
            importlib.import_module(module).register(sub, name, help_text)
        else:
            sub.add_parser(name, help=help_text, add_help=False)
    return parser


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(command if command in COMMANDS else None)
    args = parser.parse_args(argv)
    try:
        return args.run(args) or 0
    except FacedetError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
