"""``python -m facedet``: the command line.

Each sub-command lives in its own module and exposes ``register(subparsers, name, help_text)``;
the module is imported only when its command runs, so that torch-free commands (``evaluate``)
never import torch. ``run_commands`` is shared with ``python -m pruning``.
"""

import argparse
import importlib
import os
import sys
import warnings

from facedet.errors import FacedetError, FacedetWarning

# command name -> (module, one-line help)
COMMANDS = {
    "detect": ("facedet.commands.detect", "detect faces in an image"),
    "info": ("facedet.commands.info", "describe a checkpoint: detector, parameters, sparsity"),
    "bench": ("facedet.commands.bench", "measure inference latency"),
    "compare": ("facedet.commands.compare", "two detectors on one photo: faces both find, and those only one finds"),
    "evaluate": ("facedet.commands.evaluate", "WIDER FACE Easy/Medium/Hard AP of a prediction folder"),
    "predict": ("facedet.commands.predict", "run a detector over a WIDER FACE split"),
    "sample-set": ("facedet.commands.sample_set", "write a small WIDER-format sample set"),
}
DESCRIPTION = "EXTD and EResFD face detectors: detection, checkpoints, latency and WIDER FACE evaluation."


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one ``error: ...`` line and exit 2, like every
    other user error (argparse's own print the usage first: two lines or more)."""

    def error(self, message):
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


def build_parser(prog, description, commands, command=None):
    # Sub-parsers are made by the parent's class, so every command's parser is a OneLineParser.
    parser = OneLineParser(prog=prog, description=description)
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
        with warnings.catch_warnings():
            warnings.showwarning = _NoteOncePerKind()
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


class _NoteOncePerKind:
    """``warnings.showwarning`` for a command: a FacedetWarning becomes one ``note: ...`` line, and
    only the first of each kind is shown (a run over many images would repeat it per image);
    other warnings are shown as Python shows them."""

    def __init__(self):
        self.shown = set()
        self.default = warnings.showwarning

    def __call__(self, message, category, filename, lineno, file=None, line=None):
        if not issubclass(category, FacedetWarning):
            return self.default(message, category, filename, lineno, file, line)
        if category not in self.shown:
            self.shown.add(category)
            print(f"note: {message}", file=sys.stderr)
        return None


def main(argv=None):
    return run_commands("python -m facedet", DESCRIPTION, COMMANDS, argv)
