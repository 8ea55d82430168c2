"""``python -m pruning search --detector D --criterion C --target-sparsity S --trials N --out DIR``: one
pruning rate per layer group, searched by Bayesian optimisation (B-FPGM's objective; Optuna).
``--resume`` continues an interrupted search; Ctrl-C stops it with every finished trial kept."""

import json

from facedet import cli_types
from pruning.commands.progress_bar import LazyBar


def register(subparsers, name, help_text):
    from facedet.models import DETECTORS
    from pruning.criteria import CRITERIA
    from pruning.search import SAMPLERS, SearchConfig

    defaults = SearchConfig()
    p = subparsers.add_parser(name, help=help_text, description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, help="the search's folder (its journal, settings and best rates)")
    p.add_argument("--resume", action="store_true", help="continue the search in --out (more --trials or --minutes)")
    p.add_argument("--detector", choices=tuple(DETECTORS), help="required for a new search")
    p.add_argument("--criterion", choices=tuple(CRITERIA), help="required for a new search")
    p.add_argument("--target-sparsity", type=cli_types.number(float, 0.0, 0.95),
                   help="share of the parameters to zero, e.g. 0.5 (required for a new search)")
    p.add_argument("--trials", type=cli_types.positive_int,
                   help=f"trained trials in all (default {defaults.trials}); off-target rates are scored at once "
                        "and not counted")
    p.add_argument("--minutes", type=cli_types.number(float, 0.0, None, True),
                   help="start no trial after this many minutes (resume later to go on)")
    p.add_argument("--sampler", choices=SAMPLERS, help=f"Optuna's TPE or Gaussian-process sampler (default {defaults.sampler})")
    p.add_argument("--recovery-steps", type=cli_types.positive_int,
                   help=f"training steps after pruning, per trial (default {defaults.recovery_steps})")
    p.add_argument("--validation-crops", type=cli_types.positive_int,
                   help=f"crops the validation loss is measured on (default {defaults.validation_crops})")
    p.add_argument("--penalty-weight", type=cli_types.number(float, 0.0, 1e6),
                   help=f"weight of the sparsity penalty (B-FPGM's {defaults.penalty_weight:g})")
    p.add_argument("--no-prune-trials", dest="prune_trials", action="store_false", default=None,
                   help="never stop a trial early (default: stop one above the median half-way)")
    p.add_argument("--weights", help="starting checkpoint, and the teacher (default: the published dense model)")
    p.add_argument("--photos", help="unlabelled photos to recover and validate on (default: the quick preset's)")
    p.add_argument("--wider", help="a WIDER FACE root instead of photos")
    p.add_argument("--seed", type=cli_types.seed)
    p.add_argument("--device", choices=("auto", "cpu", "cuda"))
    p.add_argument("--threads", type=cli_types.positive_int, help="CPU threads for torch")
    p.add_argument("--results-db", help="results store file (default: $PRUNING_RESULTS_DB or the data folder)")
    p.add_argument("--json", action="store_true", help="print only the best rates as JSON")
    p.set_defaults(run=run)


SETTINGS = ("detector", "criterion", "target_sparsity", "trials", "minutes", "sampler", "recovery_steps",
            "validation_crops", "penalty_weight", "prune_trials", "weights", "photos", "wider", "seed", "device",
            "threads")


def run(args):
    from pathlib import Path

    from facedet.detector import pick_device
    from facedet.errors import DataError
    from pruning.search import CONFIG_FILE, SearchConfig, _read_json, search
    from pruning.store import ResultsStore

    given = {name: getattr(args, name) for name in SETTINGS if getattr(args, name) is not None}
    out = Path(args.out)
    if args.resume:
        saved = _read_json(out / CONFIG_FILE)
        if not saved:
            raise DataError(f"nothing to resume in {out} (no readable {CONFIG_FILE})")
        config = SearchConfig.from_dict({**saved, **given})
    else:
        missing = [f"--{name.replace('_', '-')}" for name in ("detector", "criterion", "target_sparsity")
                   if name not in given]
        if missing:
            raise DataError(f"a new search needs {', '.join(missing)}")
        config = SearchConfig(**given)
    pick_device(config.device)
    store = ResultsStore(args.results_db)
    with _Bar(disable=args.json) as bar:
        result = search(config, out, resume=args.resume, progress=bar.update, store=store)
    best = result.best
    if args.json:
        print(json.dumps({"status": result.status, "run_id": result.run_id, "out": str(out), "best": best}))
        return 0
    print(f"search {result.run_id} {result.status} in {out}")
    if best is None:
        print("  no trained trial reached the target sparsity yet")
        return 0
    print(f"  best of {best['trials']} trials: group rates {best['group_rates_text']}")
    print(f"  sparsity {best['sparsity'] * 100:.2f} % (target {config.target_sparsity * 100:g} %), "
          f"validation loss {best['validation_loss']:.4f}, score {best['value']:.4f}")
    print(f"  train with: python -m pruning train --preset quick --detector {config.detector} "
          f"--criterion {config.criterion} --group-rates {best['group_rates_text']} --run-dir DIR")
    return 0


class _Bar(LazyBar):
    """A tqdm bar over the trained trials; its description holds the best score so far."""

    def update(self, event):
        if self.disable:
            return
        bar = self.start(event.trials, "trial")
        bar.n = event.trials_done
        if event.best_value is not None:
            bar.set_description(f"best {event.best_value:.4f}", refresh=False)
        bar.set_postfix_str(f"{event.unscored} off-target rates scored at once", refresh=False)
        bar.refresh()
