"""``python -m pruning runs [--json]``: the results store (``--show ID [--curves FILE]``: one run, and
the precision-recall curves its evaluation stored, in ``facedet evaluate --curves``'s format)."""

import json
import sys
from pathlib import Path

from facedet import cli_types


def register(subparsers, name, help_text):
    p = subparsers.add_parser(name, help=help_text, description=help_text)
    p.add_argument("--status", choices=("running", "finished", "cancelled", "failed", "crashed"))
    p.add_argument("--show", type=cli_types.positive_int, metavar="ID", help="one run in full, with its epochs")
    p.add_argument("--curves", metavar="FILE",
                   help="with --show ID: write the run's stored precision-recall curves to FILE "
                        "(JSON, as facedet evaluate --curves writes them)")
    p.add_argument("--delete", type=cli_types.positive_int, metavar="ID", help="delete a run from the store (its files stay)")
    p.add_argument("--csv", metavar="FILE", help="export every run to a CSV file ('-': standard output)")
    p.add_argument("--results-db", help="results store file (default: $PRUNING_RESULTS_DB or the data folder)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(run=run)


COLUMNS = (("id", 4), ("kind", 6), ("status", 9), ("detector", 8), ("criterion", 9), ("rate", 5),
           ("epochs_done", 6), ("final_loss", 8), ("nonzero_parameters", 9), ("ap_easy", 7), ("created_at", 25),
           ("rates", 5))  # last: group rates are wider than a column


def run(args):
    from facedet.errors import DataError
    from pruning.store import ResultsStore

    if args.curves and args.show is None:
        raise DataError("--curves FILE needs --show ID: the run whose curves to write")
    store = ResultsStore(args.results_db)
    if args.delete is not None:
        store.delete_run(args.delete)
        if not args.json:
            print(f"run {args.delete} deleted from {store.path}")
        else:
            print(json.dumps({"deleted": args.delete}))
        return 0
    if args.csv:
        if args.csv == "-":
            store.write_csv(sys.stdout)
        else:
            count = _write_csv(store, Path(args.csv))
            print(f"{count} runs written to {args.csv}", file=sys.stderr)
        return 0
    if args.show is not None:
        run_ = store.get_run(args.show)
        if args.curves:
            _write_curves(store, args.show, args.curves)
        print(json.dumps(run_, indent=None if args.json else 1, default=str))
        return 0
    runs = store.runs(status=args.status)
    if args.json:
        print(json.dumps(runs, default=str))
        return 0
    print(f"{len(runs)} runs in {store.path}")
    if runs:
        print("  ".join(name[:width].ljust(width) for name, width in COLUMNS))
    from pruning.rates import run_rates

    for r in runs:
        r = dict(r, rates=run_rates(r))
        print("  ".join(_cell(r.get(name)).ljust(width) for name, width in COLUMNS))
    return 0


def _write_csv(store, path):
    """Export the runs to ``path`` atomically (a full disk leaves no truncated file); returns their number."""
    from facedet.atomic import atomic_file, write_failure
    from facedet.errors import DataError

    if path.is_dir():
        raise DataError(f"--csv {path} is a directory; give a file name")
    if not path.parent.is_dir():
        raise DataError(f"--csv {path}: the folder {path.parent} does not exist")
    try:
        with atomic_file(path, "w", encoding="utf-8", newline="") as f:
            return store.write_csv(f)
    except OSError as err:
        raise DataError(write_failure(path, err)) from None


def _write_curves(store, run_id, path):
    from facedet.atomic import write_text
    from facedet.errors import DataError

    document = store.run_curves(run_id)
    if document is None:
        raise DataError(f"run {run_id} has no stored precision-recall curves (not evaluated on WIDER FACE or the "
                        "sample set, or recorded before runs kept their curves)")
    write_text(path, json.dumps(document) + "\n")


def _cell(value):
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
