"""``python -m pruning train ... --run-dir DIR [--resume]``: soft filter pruning + fine-tuning.

Defaults are the paper's (200 SFP epochs, masks every 5, lr 1e-3 x 0.1 at 50 and 100, 10
fine-tuning epochs, batch 16, 640x640 crops); a quick look: ``--epochs 2 --finetune-epochs 1
--max-images 8 --crop-size 320 --batch-size 4``. Ctrl-C stops after saving nothing half-done:
``--resume`` continues from the last complete epoch.
"""

import json
import os
import sys


def register(subparsers, name, help_text):
    p = subparsers.add_parser(name, help=help_text, description=__doc__.splitlines()[0])
    p.add_argument("--run-dir", required=True, help="folder for the run's state and models")
    p.add_argument("--resume", action="store_true", help="continue the run in --run-dir")
    p.add_argument("--detector", choices=("extd", "eresfd"), help="required for a new run")
    p.add_argument("--criterion", help="fpgm, l1, l2, taylor, random or slimming (required for a new run)")
    p.add_argument("--rate", type=float, help="pruning rate per layer (required for a new run)")
    p.add_argument("--weights", help="starting checkpoint (default: the published dense model)")
    p.add_argument("--epochs", type=int, help="SFP epochs (default 200)")
    p.add_argument("--finetune-epochs", type=int, help="fine-tuning epochs with frozen masks (default 10)")
    p.add_argument("--prune-every", type=int, help="recompute the masks every k SFP epochs (default 5)")
    p.add_argument("--lr", type=float, help="SFP learning rate (default 1e-3)")
    p.add_argument("--lr-milestones", type=int, nargs="*", help="epochs where the lr drops x0.1 (default 50 100)")
    p.add_argument("--finetune-lr", type=float, help="fine-tuning learning rate (default 1e-3, x0.1 half-way)")
    p.add_argument("--optimizer", choices=("auto", "sgd", "adam"), help="default auto: SGD for EXTD, Adam for EResFD")
    p.add_argument("--weight-decay", type=float, help="default 5e-4")
    p.add_argument("--batch-size", type=int, help="default 16")
    p.add_argument("--crop-size", type=int, help="training crop side in px (default 640)")
    p.add_argument("--workers", type=int, help="data loader worker processes (default 0)")
    p.add_argument("--wider", help="WIDER FACE root (default: the generated sample set)")
    p.add_argument("--sample-images", type=int, help="size of the generated sample set (default 20)")
    p.add_argument("--max-images", type=int, help="train on the first N images only")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), help="default auto")
    p.add_argument("--threads", type=int, help="CPU threads for torch (default: all cores)")
    p.add_argument("--no-amp", dest="amp", action="store_false", default=None, help="no mixed precision on CUDA")
    p.add_argument("--seed", type=int, help="default 0")
    p.add_argument("--slimming-lambda", type=float, help="L1 penalty on BN scales for --criterion slimming (1e-4)")
    p.add_argument("--no-eval", dest="evaluate", action="store_false", default=None, help="skip the final AP")
    p.add_argument("--eval-images", type=int, help="evaluate on the first N validation images only")
    p.add_argument("--results-db", help="results store file (default: $PRUNING_RESULTS_DB or the data folder)")
    p.add_argument("--json", action="store_true", help="print only the final figures as JSON")
    p.set_defaults(run=run)


OPTIONS = ("detector", "criterion", "rate", "weights", "epochs", "finetune_epochs", "prune_every", "lr",
           "lr_milestones", "finetune_lr", "optimizer", "weight_decay", "batch_size", "crop_size", "workers",
           "wider", "sample_images", "max_images", "device", "threads", "amp", "seed", "slimming_lambda", "evaluate",
           "eval_images")


def run(args):
    from pathlib import Path

    from facedet.errors import DataError
    from pruning.train import CONFIG_FILE, TrainConfig

    given = {name: getattr(args, name) for name in OPTIONS if getattr(args, name) is not None}
    run_dir = Path(args.run_dir)
    if args.resume:
        if not (run_dir / CONFIG_FILE).is_file():
            raise DataError(f"nothing to resume in {run_dir} (no {CONFIG_FILE})")
        saved = json.loads((run_dir / CONFIG_FILE).read_text())
        config = TrainConfig.from_dict({**saved, **given})
    else:
        missing = [f"--{name}" for name in ("detector", "criterion", "rate") if name not in given]
        if missing:
            raise DataError(f"a new run needs {', '.join(missing)}")
        config = TrainConfig(**given)
    from pruning.store import ResultsStore
    from pruning.train import train

    store = ResultsStore(args.results_db)
    main_process = int(os.environ.get("RANK", "0")) == 0  # under torchrun only rank 0 reports
    with _ProgressBar(disable=args.json or not main_process) as bar:
        result = train(config, run_dir, resume=args.resume, progress=bar.update, store=store)
    if not main_process:
        return 0
    figures = {k: v for k, v in result.figures.items()}
    summary = {"status": result.status, "run_id": result.run_id, "run_dir": str(run_dir),
               "losses": [round(h["loss"], 5) for h in result.history], **figures}
    if args.json:
        print(json.dumps(summary))
        return 0
    print(f"run {result.run_id} {result.status}: {len(result.history)} epochs in {run_dir}")
    if result.history:
        print("  loss per epoch  " + " ".join(f"{h['loss']:.3f}" for h in result.history))
    if figures:
        print(f"  parameters      {figures['parameters']:,} ({figures['nonzero_parameters']:,} nonzero, "
              f"sparsity {figures['sparsity'] * 100:.2f} %)")
        if "compact_parameters" in figures:
            print(f"  compact         {figures['compact_parameters']:,} parameters -> {figures['compact_checkpoint']}")
        if "ap_easy" in figures:
            print(f"  AP easy/medium/hard  {figures['ap_easy']:.4f} / {figures['ap_medium']:.4f} / {figures['ap_hard']:.4f}")
        print(f"  model           {figures['checkpoint']}")
    if config.wider is None:
        from facedet.wider.layout import NOTICE

        print(NOTICE, file=sys.stderr)
    return 0


class _ProgressBar:
    """A tqdm bar over all training steps; the description says the epoch, phase and loss."""

    def __init__(self, disable):
        self.disable = disable
        self.bar = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.close()
        return False

    def update(self, event):
        if self.disable:
            return
        from tqdm import tqdm

        if event.kind == "stage":
            if self.bar is not None:
                self.bar.set_description(event.message)
            return
        total = event.epochs * event.steps
        if self.bar is None:
            self.bar = tqdm(total=total, unit="step", dynamic_ncols=True)
            self.bar.update(event.epoch * event.steps + event.step - 1 if event.kind == "step" else 0)
        if event.kind == "step":
            self.bar.update(1)
            self.bar.set_description(f"epoch {event.epoch + 1}/{event.epochs} {event.phase}")
            self.bar.set_postfix(loss=f"{event.loss:.3f}", lr=f"{event.lr:.0e}")
