"""``python -m pruning``: one-shot pruning, SFP training, compaction and the results store.

Each sub-command lives in ``pruning.commands.<name>`` and exposes ``register(subparsers, name,
help_text)``; it is imported only when its command runs.
"""

import argparse
import importlib
import sys

from facedet.errors import FacedetError

COMMANDS = {
    "prune": ("pruning.commands.prune", "one-shot pruning of a checkpoint: masks, parameter counts"),
    "train": ("pruning.commands.train", "soft filter pruning + fine-tuning (resumable)"),
    "compact": ("pruning.commands.compact", "physically remove pruned channels; ONNX export; costs"),
    "runs": ("pruning.commands.runs", "the results store: list, export, delete runs"),
}


def build_parser(command=None):
    parser = argparse.ArgumentParser(prog="python -m pruning", description=__doc__.splitlines()[0])
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
