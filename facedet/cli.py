"""``python -m facedet``: the command line.

Each sub-command lives in its own module and exposes ``register(subparsers, name, help_text)``;
the module is imported only when its command runs, so that torch-free commands (``evaluate``)
never import torch. ``run_commands`` is shared with ``python -m pruning``.
"""

import argparse
import importlib
import os
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
DESCRIPTION = "EXTD and EResFD face detectors: detection, checkpoints, latency and WIDER FACE evaluation."


def build_parser(prog, description, commands, command=None):
    parser = argparse.ArgumentParser(prog=prog, description=description)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, (module, help_text) in commands.items():
        if command == name:
            importlib.import_module(module).register(sub, name, help_text)
        else:
            sub.add_parser(name, help=help_text, add_help=False)
    return parser


def run_commands(prog, description, commands, argv=None):
    """Parse ``argv`` and run the chosen command; user errors become one stderr line and exit 2."""
    argv = sys.argv[1:] if argv is None else list(argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    args = build_parser(prog, description, commands, command if command in commands else None).parse_args(argv)
    try:
        return args.run(args) or 0
    except FacedetError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (``... --json | head``): not an error of ours; silence the flush at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def main(argv=None):
    return run_commands("python -m facedet", DESCRIPTION, COMMANDS, argv)
