"""``python -m pruning train ... --run-dir DIR [--resume]``: soft filter pruning + fine-tuning.

Defaults are the paper's (200 SFP epochs, masks every 5, lr 1e-3 x 0.1 at 50 and 100, 10
fine-tuning epochs, batch 16, 640x640 crops); ``--preset quick`` is the app's few-minute session
(the project's photos, distilled from the dense model). Ctrl-C stops after saving nothing
half-done: ``--resume`` continues from the last complete epoch.
"""

import argparse
import json
import os
import sys

from facedet import cli_types
from pruning.commands.progress_bar import LazyBar
from pruning.commands.rate_options import add_rate_options, rates_from_args


# Help per TrainConfig setting; the options themselves are generated from the settings (the config's
# fields and its Schedule's: pruning.train.setting_fields).
HELP = {
    "weights": "starting checkpoint, and the teacher when distilling (default: the published dense model)",
    "epochs": "SFP epochs (paper: 200)",
    "finetune_epochs": "fine-tuning epochs with frozen masks (paper: 10)",
    "prune_every": "recompute the masks every k SFP epochs (paper: 5)",
    "lr": "SFP learning rate (paper: 1e-3)",
    "lr_milestones": "SFP epochs where the lr drops by --lr-gamma (paper: 50 100)",
    "lr_gamma": "learning-rate drop factor (0.1)",
    "finetune_lr": "fine-tuning learning rate, x lr-gamma half-way (paper: 1e-3)",
    "ramp_epochs": "ramp the rate up over these SFP epochs (gradual pruning; 0: full rate at once)",
    "optimizer": "auto (SGD for EXTD, Adam for EResFD, as in the paper), sgd or adam",
    "momentum": "SGD momentum (0.9)",
    "weight_decay": "paper: 5e-4",
    "batch_size": "paper: 16",
    "crop_size": "training crop side in px (paper: 640)",
    "workers": "data loader worker processes (0)",
    "wider": "WIDER FACE root (default: --photos, else the generated sample set)",
    "photos": "folder of unlabelled photos, searched recursively; needs --distill (bad files are skipped)",
    "crops_per_photo": "crops of every photo per epoch",
    "face_crops": "share of photo crops centred near a face the teacher finds (0-1)",
    "mosaic": "share of photo crops made as a 2 x 2 mosaic of four photos' windows (0-1)",
    "photo_zoom": "log2 range (low high) of the photo crops' zoom around the detector's automatic scale",
    "face_sizes": "face-centred crops zoom their face to a side drawn log-uniformly from this range, "
                  "low high in px (data-anchor sampling; default: zoom as --photo-zoom)",
    "paste_faces": "share of photo crops with 1-4 of the photos' faces (as the teacher finds them) pasted in "
                   "at small sizes (copy-paste; 0-1)",
    "paste_sizes": "side range (low high, px) of the pasted faces",
    "paste_background": "share of pasted patches cut from the crop's own background instead of faces (0-1)",
    "mixup": "share of photo crops blended with a second crop, of any photo (mixup; 0-1)",
    "distill": "learn the starting model's outputs (it is the teacher)",
    "distill_conf": "weight of the teacher's face probabilities (all priors)",
    "distill_loc": "weight of the teacher's boxes where it is confident",
    "distill_features": "weight of the teacher's detection maps (0: off)",
    "distill_temperature": "temperature of the face probabilities",
    "distill_face_weight": "how many times the priors the teacher calls faces count in the probabilities",
    "distill_focus": "weight each prior's probability term by the teacher-student gap to this power (0: off)",
    "average_epochs": "the final model is the mean of the weights after every step of the last N epochs (0: off)",
    "distill_boxes": "weight of the MultiBox loss on the teacher's detections as labels (0: off)",
    "distill_box_score": "teacher detections at least this sure are labels for --distill-boxes",
    "distill_anchor": "weight of the squared distance of the student's weights to the teacher's (L2-SP; 0: off)",
    "freeze_batchnorm": "keep BatchNorm running statistics fixed while training",
    "reconstruct": "after every pruning step, the final one only, or off: refit each conv by least squares to "
                   "the network before the step (the dense one at the first)",
    "reconstruct_crops": "training crops the refit draws its samples from (48)",
    "keep_pruned": "filters pruned as the rate ramps stay pruned (no regrowth; steps only add filters)",
    "label_loss": "weight of the MultiBox loss on labelled data",
    "holdout": "photos for the agreement with the teacher (default: the project's held-out photos)",
    "sample_images": "size of the generated sample set (20)",
    "max_images": "train on the first N images only",
    "device": "auto, cpu or cuda",
    "amp": "mixed precision on CUDA",
    "seed": "0",
    "slimming_lambda": "strength of the criterion's training penalty: network slimming's L1 on BN scales (1e-4)",
    "evaluate": "AP on the validation split and agreement with the teacher at the end",
    "eval_images": "evaluate on the first N validation images only",
    "threads": "CPU threads for torch (default: all cores)",
}
CHOICES = {"optimizer": ("auto", "sgd", "adam"), "device": ("auto", "cpu", "cuda")}
RATE_FIELDS = ("rate", "layer_rates")  # options of their own (rate_options): --rate, --group-rates, --layer-rates


def registry_options():
    """Choices and help that come from the engine: the detector and criterion registries, the trainer's choices."""
    from facedet.models import DETECTORS
    from pruning.criteria import CRITERIA

    from pruning.train import RECONSTRUCT_CHOICES

    choices = {**CHOICES, "detector": tuple(DETECTORS), "criterion": tuple(CRITERIA), "reconstruct": RECONSTRUCT_CHOICES}
    helps = {"detector": "required for a new run: " + ", ".join(f"{n} ({s.display_name})" for n, s in DETECTORS.items()),
             "criterion": "required for a new run: " + "; ".join(f"{n} ({c.label}: {c.description})"
                                                                 for n, c in CRITERIA.items())}
    return choices, helps


def register(subparsers, name, help_text):
    from pruning.presets import PRESETS
    from pruning.train import NUMBER_RANGES, setting_fields

    choices, helps = registry_options()
    p = subparsers.add_parser(name, help=help_text, description=__doc__.splitlines()[0])
    p.add_argument("--run-dir", required=True, help="folder for the run's state and models")
    p.add_argument("--resume", action="store_true", help="continue the run in --run-dir")
    p.add_argument("--preset", choices=tuple(PRESETS), default="paper",
                   help="starting settings: paper (the paper's schedule) or quick (the app's few-minute session "
                        "on the project's photos, distilled); options given override them")
    add_rate_options(p, required=False)  # a new run needs one of them: checked in run()
    for field in setting_fields():
        if field.name in RATE_FIELDS:
            continue
        flag = "--" + field.name.replace("_", "-")
        kind = type(field.default) if field.default is not None else (int if field.name.endswith(("images", "threads")) else str)
        if field.name in ("rate",) or kind is float:
            kind = float
        # Numbers are range-checked as they are parsed (TrainConfig checks the same ranges again).
        number = cli_types.number(*NUMBER_RANGES[field.name]) if field.name in NUMBER_RANGES else cli_types.finite_float
        if kind is bool:
            p.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=HELP.get(field.name))
        elif kind is tuple:
            p.add_argument(flag, type=number, nargs="*", default=None, help=HELP.get(field.name))
        elif kind in (int, float):
            p.add_argument(flag, type=number, default=None, help=HELP.get(field.name))
        else:
            p.add_argument(flag, type=kind, default=None, choices=choices.get(field.name),
                           help=helps.get(field.name, HELP.get(field.name)))
    # Older spellings.
    p.add_argument("--no-eval", dest="evaluate", action="store_false", default=None, help=argparse.SUPPRESS)
    p.add_argument("--results-db", help="results store file (default: $PRUNING_RESULTS_DB or the data folder)")
    p.add_argument("--json", action="store_true", help="print only the final figures as JSON")
    p.set_defaults(run=run)


def run(args):
    from pathlib import Path

    from facedet.detector import pick_device
    from facedet.errors import DataError
    from pruning.presets import preset_config
    from pruning.train import TrainConfig, read_saved_config, setting_fields

    given = {f.name: getattr(args, f.name) for f in setting_fields()
             if f.name not in RATE_FIELDS and getattr(args, f.name) is not None}
    run_dir = Path(args.run_dir)
    if args.resume:
        saved = read_saved_config(run_dir)
        given.update(_rate_settings(args, given.get("detector", saved.get("detector"))))
        config = TrainConfig.from_dict({**saved, **given})
    else:
        missing = [f"--{name}" for name in ("detector", "criterion") if name not in given]
        if args.rate is None and args.group_rates is None and args.layer_rates is None:
            missing.append("--rate (or --group-rates, --layer-rates)")
        if missing:
            raise DataError(f"a new run needs {', '.join(missing)}")
        given.update(_rate_settings(args, given["detector"]))
        config = preset_config(args.preset, **given)
    pick_device(config.device)  # an unknown or absent device is reported before any work
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
            print(f"  AP easy/medium/hard  {figures['ap_easy']:.4f} / {figures['ap_medium']:.4f} / {figures['ap_hard']:.4f}"
                  + ("" if config.wider else "  (generated sample set, NOT WIDER FACE)"))
        if "agreement_ap" in figures:
            print(f"  agreement with the teacher  AP {figures['agreement_ap']:.3f}, recall "
                  f"{figures['agreement_recall']:.2f} on {len(json.loads(figures['agreement_photos']))} held-out photos")
        print(f"  model           {figures['checkpoint']}")
    if config.wider is None and config.photos is None:
        from facedet.wider.layout import NOTICE

        print(NOTICE, file=sys.stderr)
    return 0


def _rate_settings(args, detector):
    """``{"layer_rates": {...}}`` or ``{"rate": r, "layer_rates": None}`` from the rate options (so
    that a resumed run given other rates than its own is refused), ``{}`` without them."""
    rates = rates_from_args(args, detector)
    if rates is None:
        return {}
    return {"layer_rates": rates} if isinstance(rates, dict) else {"rate": rates, "layer_rates": None}


class _ProgressBar(LazyBar):
    """A tqdm bar over all training steps; the description says the epoch, phase and loss."""

    def update(self, event):
        if self.disable:
            return
        if event.kind in ("stage", "refit"):
            if self.bar is not None:
                self.bar.set_description(event.message)
            return
        total = event.epochs * event.steps
        if self.bar is None:
            self.start(total, "step").update(event.epoch * event.steps + event.step - 1 if event.kind == "step" else 0)
        if event.kind == "step":
            self.bar.update(1)
            self.bar.set_description(f"epoch {event.epoch + 1}/{event.epochs} {event.phase}")
            self.bar.set_postfix(loss=f"{event.loss:.3f}", lr=f"{event.lr:.0e}")
