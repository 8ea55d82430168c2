"""``python -m pruning``: one-shot pruning, SFP training, compaction and the results store.

Each sub-command lives in ``pruning.commands.<name>`` and exposes ``register(subparsers, name,
help_text)``; it is imported only when its command runs.
"""

from facedet.cli import run_commands

COMMANDS = {
    "prune": ("pruning.commands.prune", "one-shot pruning of a checkpoint: masks, parameter counts"),
    "train": ("pruning.commands.train", "soft filter pruning + fine-tuning (resumable)"),
    "search": ("pruning.commands.search", "search one pruning rate per layer group (B-FPGM; Optuna), resumable"),
    "compact": ("pruning.commands.compact", "physically remove pruned channels; ONNX export; costs"),
    "runs": ("pruning.commands.runs", "the results store: list, export, delete runs"),
}
DESCRIPTION = "One-shot pruning, soft filter pruning training, compaction and the results store."


def main(argv=None):
    return run_commands("python -m pruning", DESCRIPTION, COMMANDS, argv)
