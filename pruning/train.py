"""Soft filter pruning and fine-tuning of a detector (paper §3.3, §4.2).

``train(config, run_dir)`` runs the schedule of ``pruning.schedule``: SFP epochs (masks recomputed
every ``prune_every`` epochs, pruned filters trainable) then fine-tuning with the masks frozen
(pruned weights, their gradients and optimiser state held at zero). One forward pass per step;
CUDA when available, with automatic mixed precision; DataLoader workers; DistributedDataParallel
under ``torchrun``.

The run directory holds ``config.json``, ``state.pth`` (everything needed to continue: written
atomically after every epoch), ``run.json`` (its row in the results store, and whether it
finished) and, at the end, ``model.pth`` (the masked model) and ``compact.pth`` (physically
pruned). ``resume=True`` continues from the last complete epoch: the data of each epoch is a
function of the seed and the epoch, so nothing is lost or repeated. One process at a time works
in a run directory (``pruning.locks``); a finished run cannot be resumed.
"""

import contextlib
import copy
import json
import numbers
import sys
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import torch

from facedet.atomic import write_failure, write_text
from facedet.cli_types import MAX_SEED, range_problem
from facedet.errors import DataError, FacedetError
from facedet.models import detector_spec
from facedet.numerics import first_non_finite
from pruning.criteria import CRITERIA, check_criterion, check_rate, select_filters
from pruning.rates import check_layer_rates, removed_share
from pruning.distill import HeadInputs, Teacher, capturing, distillation_loss, teacher_boxes, weight_distance
from pruning.photos import ZOOM_RANGE
from pruning.masks import (apply_masks, masks_from_lists, masks_from_removed, masks_to_lists, zero_gradients,
                           zero_optimizer_state)
from pruning.schedule import Schedule
from facedet.cancel import is_cancelled

STATE_FILE = "state.pth"
CONFIG_FILE = "config.json"
RUN_FILE = "run.json"  # {"run_id", "store", "finished"}: the run's row in the results store
# Settings that may change when a run is resumed (they do not change what is computed).
RESUMABLE_CHANGES = ("device", "workers", "evaluate", "eval_images", "threads")
# The range of every numeric setting: (int or float, low, high, low excluded, high excluded), None
# for no bound; of each element for the tuples. TrainConfig checks them (the app builds configs
# too) and the command line's options parse with them. The learning rates stop at 1: beyond it
# every step diverges, and a run "finishes" with NaN APs.
NUMBER_RANGES = {
    "epochs": (int, 0), "finetune_epochs": (int, 0), "prune_every": (int, 1), "ramp_epochs": (int, 0),
    "lr": (float, 0.0, 1.0, True), "lr_gamma": (float, 0.0, 1.0, True), "finetune_lr": (float, 0.0, 1.0, True),
    "lr_milestones": (int, 0), "momentum": (float, 0.0, 1.0, False, True), "weight_decay": (float, 0.0, 1.0),
    "batch_size": (int, 1), "crop_size": (int, 64, 4096), "workers": (int, 0), "crops_per_photo": (int, 1),
    "face_crops": (float, 0.0, 1.0), "mosaic": (float, 0.0, 1.0), "photo_zoom": (float, -4.0, 4.0),
    "face_sizes": (float, 4.0, 4096.0), "paste_faces": (float, 0.0, 1.0), "paste_sizes": (float, 4.0, 4096.0),
    "mixup": (float, 0.0, 1.0), "paste_background": (float, 0.0, 1.0),
    "distill_conf": (float, 0.0), "distill_loc": (float, 0.0), "distill_features": (float, 0.0),
    "distill_temperature": (float, 0.0, None, True), "distill_face_weight": (float, 0.0), "distill_boxes": (float, 0.0),
    "distill_focus": (float, 0.0, 8.0), "average_epochs": (int, 0), "reconstruct_crops": (int, 1, 4096),
    "distill_box_score": (float, 0.0, 1.0, True), "label_loss": (float, 0.0), "distill_anchor": (float, 0.0),
    "sample_images": (int, 1), "max_images": (int, 1), "seed": (int, 0, MAX_SEED), "slimming_lambda": (float, 0.0),
    "eval_images": (int, 1), "threads": (int, 1),
}


RECONSTRUCT_CHOICES = ("off", "every", "final")  # after which pruning steps the convs are refitted

# The settings a TrainConfig keeps in its Schedule (flat in config.json and on the command line).
SCHEDULE_SETTINGS = tuple(f.name for f in fields(Schedule))


class TrainingDiverged(FacedetError):
    """The loss or the weights stopped being finite: the settings (usually the lr) are too high."""


@dataclass
class TrainConfig:
    detector: str = "eresfd"
    criterion: str = "fpgm"
    rate: float = 0.2
    # {conv name: rate} (pruning.rates; group rates resolve to these) instead of one rate for every
    # layer; then ``rate`` is set to the share of prunable filters they remove (what charts plot).
    layer_rates: dict | None = None
    weights: str | None = None  # starting point; default: the published dense model
    schedule: Schedule = field(default_factory=Schedule)  # epochs, learning rates, when to prune (the paper's)
    optimizer: str = "auto"  # auto: the detector's own (DetectorSpec): SGD with momentum for EXTD, Adam for EResFD
    momentum: float = 0.9
    weight_decay: float = 5e-4
    batch_size: int = 16
    crop_size: int = 640
    workers: int = 0
    wider: str | None = None  # WIDER FACE root; None: photos if given, else the generated sample set
    photos: str | None = None  # folder of unlabelled photos (recursive); the teacher supplies the targets
    crops_per_photo: int = 4  # photo crops per photo and epoch
    face_crops: float = 0.5  # share of photo crops centred near a face the teacher finds
    mosaic: float = 0.0  # share of photo crops made of four photos' windows in a 2 x 2 grid
    photo_zoom: tuple = ZOOM_RANGE  # log2 range of the photo crops' zoom around the automatic scale
    face_sizes: tuple = ()  # (low, high) px: face-centred crops zoom their face to a size in this range
    paste_faces: float = 0.0  # share of photo crops with faces of the photos pasted in (copy-paste)
    paste_sizes: tuple = (12.0, 40.0)  # (low, high) px: the pasted faces' sides
    paste_background: float = 0.0  # share of pasted patches cut from the crop's own background, not faces
    mixup: float = 0.0  # share of photo crops blended with a second crop, of any photo (the teacher labels the blend)
    distill: bool = False  # learn the outputs of the starting model (the teacher)
    distill_conf: float = 1.0  # weight: teacher face probabilities on every prior
    distill_loc: float = 1.0  # weight: teacher box regression where it is confident
    distill_features: float = 0.0  # weight: the maps fed to the detection heads
    distill_temperature: float = 1.0
    distill_face_weight: float = 1.0  # the teacher's face priors count this many times in the probabilities
    distill_focus: float = 0.0  # > 0: probabilities weighted by the teacher-student gap to this power
    distill_boxes: float = 0.0  # weight of the MultiBox loss on the teacher's detections as labels (0: off)
    distill_box_score: float = 0.5  # teacher detections at least this sure are labels for distill_boxes
    distill_anchor: float = 0.0  # weight of the squared distance of the student's weights to the teacher's (L2-SP)
    average_epochs: int = 0  # > 0: the final model is the mean of the weights after every step of the last N epochs
    keep_pruned: bool = False  # pruned filters stay pruned (hard gradual pruning): no regrowth, steps only add
    freeze_batchnorm: bool = False  # BatchNorm keeps its running statistics (small batches: batch statistics mislead)
    reconstruct: str = "off"  # after every or the final pruning step, refit each conv to the network before it (off)
    reconstruct_crops: int = 48  # training crops the refit samples its pixels from
    label_loss: float = 1.0  # weight of the MultiBox loss on labelled data (WIDER FACE, sample set)
    holdout: str | None = None  # photos for the agreement with the teacher (default: the held-out samples)
    sample_images: int = 20
    max_images: int | None = None  # train on the first N images only
    device: str = "auto"
    amp: bool = True  # mixed precision on CUDA
    seed: int = 0
    slimming_lambda: float = 1e-4  # strength of the criterion's training penalty (slimming: L1 on BN scales)
    evaluate: bool = True  # Easy/Medium/Hard AP on the validation split at the end
    eval_images: int | None = None
    threads: int | None = None  # CPU threads for torch (None: torch's default, all cores)

    def __post_init__(self):
        detector_spec(self.detector)  # a one-line error for an unknown detector
        check_criterion(self.criterion)
        self.rate = check_rate(self.rate)
        if not isinstance(self.schedule, Schedule):
            raise FacedetError(f"schedule must be a pruning.schedule.Schedule, got {self.schedule!r}")
        if self.layer_rates is not None:
            from facedet.models import create_model
            from pruning.graph import prunable_convs

            names = [name for name, _ in prunable_convs(create_model(self.detector))]
            self.layer_rates = check_layer_rates(self.layer_rates, names, self.detector)
            self.rate = removed_share(self.detector, self.layer_rates)
        self._check_numbers()
        if len(self.photo_zoom) != 2 or not self.photo_zoom[0] <= self.photo_zoom[1]:
            raise FacedetError(f"photo_zoom must be two numbers, low <= high, got {self.photo_zoom}")
        if self.face_sizes and (len(self.face_sizes) != 2 or not self.face_sizes[0] <= self.face_sizes[1]):
            raise FacedetError(f"face_sizes must be two sizes in px, low <= high, or none, got {self.face_sizes}")
        if len(self.paste_sizes) != 2 or not self.paste_sizes[0] <= self.paste_sizes[1]:
            raise FacedetError(f"paste_sizes must be two sizes in px, low <= high, got {self.paste_sizes}")
        if self.schedule.total_epochs < 1:
            raise FacedetError("nothing to train: epochs and finetune_epochs are both 0")
        if self.crop_size % 32:
            raise FacedetError(f"crop_size must be a multiple of 32, got {self.crop_size}")
        if self.reconstruct not in RECONSTRUCT_CHOICES:
            raise FacedetError(f"reconstruct must be one of {', '.join(RECONSTRUCT_CHOICES)}, not {self.reconstruct!r}")
        if self.optimizer not in ("auto", "sgd", "adam"):
            raise FacedetError(f"optimizer must be auto, sgd or adam, not {self.optimizer!r}")
        if self.wider and self.photos:
            raise FacedetError("train on WIDER FACE or on photos, not both")
        if self.photos and not self.distill:
            raise FacedetError("photos have no labels: training on them needs distillation (distill=True)")

    def _check_numbers(self):
        """Every numeric setting made its type and checked against ``NUMBER_RANGES``; the tuples
        element by element; None is allowed where it is the default (max_images ...). The
        schedule's numbers are checked the same way."""
        defaults = {f.name: f.default for f in setting_fields()}
        schedule = {}
        for name, (kind, *bounds) in NUMBER_RANGES.items():
            value = getattr(self.schedule if name in SCHEDULE_SETTINGS else self, name)
            if value is None and defaults[name] is None:
                continue
            is_tuple = isinstance(defaults[name], tuple)
            if is_tuple and not isinstance(value, (tuple, list)):
                raise FacedetError(f"{name} must be a list of numbers, got {value!r}")
            checked = tuple(_as_number(name, v, kind) for v in (value if is_tuple else (value,)))
            for v in checked:
                problem = range_problem(v, *bounds)
                if problem:
                    raise FacedetError(f"{name} {problem}, got {v:g}")
            if name in SCHEDULE_SETTINGS:
                schedule[name] = checked if is_tuple else checked[0]
            else:
                setattr(self, name, checked if is_tuple else checked[0])
        self.schedule = replace(self.schedule, **schedule)

    @property
    def distill_weights(self):
        from pruning.distill import DistillWeights

        return DistillWeights(self.distill_conf, self.distill_loc, self.distill_features, self.distill_temperature,
                              face_weight=self.distill_face_weight, focus=self.distill_focus, boxes=self.distill_boxes,
                              box_score=self.distill_box_score)

    def to_dict(self):
        """The settings as JSON, flat: the schedule's beside the others, as every run has saved them."""
        data = {f.name: getattr(self.schedule if f.name in SCHEDULE_SETTINGS else self, f.name)
                for f in setting_fields()}
        data["lr_milestones"] = list(self.schedule.lr_milestones)
        data["photo_zoom"] = list(self.photo_zoom)
        data["face_sizes"] = list(self.face_sizes)
        data["paste_sizes"] = list(self.paste_sizes)
        return data

    @classmethod
    def from_settings(cls, **settings):
        """A config from flat settings (``epochs=30, lr=1e-4, rate=0.3 ...``): the schedule's go into
        its ``Schedule``, on top of ``schedule`` (a Schedule or a dict of its fields) if one is given."""
        schedule = settings.pop("schedule", None) or {}
        if isinstance(schedule, Schedule):
            schedule = asdict(schedule)
        schedule = {**schedule, **{name: settings.pop(name) for name in SCHEDULE_SETTINGS if name in settings}}
        return cls(schedule=Schedule(**schedule), **settings)

    @classmethod
    def from_dict(cls, data):
        """A saved config: flat (``to_dict``) or with a nested ``schedule``; unknown keys are ignored."""
        known = {f.name for f in setting_fields()} | {"schedule"}
        try:
            return cls.from_settings(**{k: v for k, v in data.items() if k in known})
        except (TypeError, ValueError) as err:  # wrong kinds of values in a saved or hand-made config
            raise FacedetError(f"invalid training settings: {err}") from None


def setting_fields():
    """The settings of a ``TrainConfig``, flat: its fields with the ``Schedule``'s in place of
    ``schedule`` (what ``to_dict`` writes and the command line's options are made from)."""
    flat = []
    for f in fields(TrainConfig):
        flat.extend(fields(Schedule) if f.name == "schedule" else [f])
    return flat


def _as_number(name, value, kind):
    """``value`` as ``kind``: ints may come as whole floats (JSON, the app's widgets), not as text."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise FacedetError(f"{name} must be a number, got {value!r}")
    if kind is int and not isinstance(value, numbers.Integral):
        if not float(value).is_integer():
            raise FacedetError(f"{name} must be a whole number, got {float(value):g}")
        return int(value)
    return int(value) if kind is int else float(value)


@dataclass
class Progress:
    """What a progress callback receives: after every step (``kind="step"``), every epoch
    (``"epoch"``), after each layer refitted by ``reconstruct`` (``"refit"``, in epoch ``epoch``) and
    at each finishing stage (``"stage"``: evaluating, compacting ...)."""

    kind: str
    epoch: int
    epochs: int
    step: int = 0
    steps: int = 0
    phase: str = ""
    loss: float | None = None
    lr: float | None = None
    elapsed_s: float = 0.0
    eta_s: float | None = None
    message: str = ""
    run_id: int | None = None  # the run's row in the results store, once it has one


@dataclass
class TrainResult:
    status: str  # finished, cancelled
    run_dir: Path
    run_id: int | None
    history: list = field(default_factory=list)  # per epoch: {epoch, phase, loss, loss_loc, loss_conf, lr, sparsity, seconds}
    figures: dict = field(default_factory=dict)
    model: torch.nn.Module | None = None


class Cancelled(Exception):
    """The run was asked to stop; its last complete epoch is saved."""


def train(config, run_dir, resume=False, progress=None, cancel=None, store=None):
    """Run (or resume) a pruning + fine-tuning session; see the module docstring.

    ``progress``: callable receiving ``Progress``; ``cancel``: callable or event, checked every
    step; ``store``: a ``ResultsStore`` to record the run in (None: not recorded).
    """
    from facedet.threads import torch_threads
    from pruning.distributed import Distributed
    from pruning.locks import RunDirLock

    run_dir = Path(run_dir)
    dist = Distributed.from_environment(config.device if config is not None else "auto")
    # On a busy machine fewer threads than cores avoid OpenMP's spinning (10x slower steps); in a
    # server thread the process's setting stays (facedet.threads).
    try:
        # Taken here, so that the command line and the app's sessions both hold it; under torchrun
        # the main process holds it for all of them.
        with torch_threads(config.threads if config is not None else None), \
                RunDirLock(run_dir) if dist.is_main else contextlib.nullcontext():
            trainer = _Trainer(config, run_dir, resume, progress, cancel, store if dist.is_main else None, dist)
            return trainer.run()
    finally:
        dist.close()


class _Trainer:
    def __init__(self, config, run_dir, resume, progress, cancel, store, dist):
        self.dist = dist
        self.device = dist.device
        self.config, state = _prepare_run_dir(config, run_dir, resume)
        self.run_dir = run_dir
        report = progress or (lambda event: None)
        self.progress = lambda event: report(replace(event, run_id=self.run_id))
        self.cancel = cancel
        self.store = store
        self.schedule = self.config.schedule
        self.net = initial_model(self.config, state).to(self.device)
        # On the CPU, oneDNN trains the detectors' depthwise convolutions and PReLUs faster in the
        # channels-last layout (README, "Quick sessions"); the values are the same up to rounding.
        self.channels_last = self.device.type == "cpu"
        if self.channels_last:
            self.net = self.net.to(memory_format=torch.channels_last)
        if not resume and dist.is_main:
            _write_config(self.config, run_dir)  # after the model loads: a bad checkpoint leaves no run behind
        self.model = dist.wrap(self.net)
        self.optimizer = _optimizer(self.config, self.net)
        self.amp = bool(self.config.amp and self.device.type == "cuda")
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)
        self.masks = None
        self.history = []
        self.start_epoch = 0
        self.run_id = None
        self.average, self.averaged = None, 0  # running mean of the weights (average_epochs) and its count
        if state is not None:
            self.average, self.averaged = state.get("average"), int(state.get("averaged", 0))
            self.optimizer.load_state_dict(state["optimizer"])
            if state["scaler"]:  # empty when the run started without CUDA
                self.scaler.load_state_dict(state["scaler"])
            self.masks = masks_from_lists(state["masks"]) if state["masks"] is not None else None
            self.history = list(state["history"])
            self.start_epoch = int(state["epoch"])
            self.run_id = state.get("run_id")
        self.criterion = CRITERIA[self.config.criterion]
        from pruning.loss import MultiBoxLoss

        self.teacher = self.student_maps = None
        if self.config.distill:
            self.teacher = Teacher(teacher_model(self.config)).to(self.device)
            if self.channels_last:
                self.teacher = self.teacher.to(memory_format=torch.channels_last)
            self.student_maps = HeadInputs(self.net) if self.config.distill_features else None
        self.root, self.data_description, self.loader = training_data(self.config, self.teacher, self.device, dist)
        self.loss_fn = MultiBoxLoss()
        self._priors = {}
        self._refit_crops = None  # the crops pruning.reconstruct samples from, made at its first use

    # --- the run ---------------------------------------------------------------------------
    def run(self):
        self._open_store_record()
        total = self.schedule.total_epochs
        started = time.perf_counter()
        self._steps_done, self._step_time = 0, 0.0
        try:
            for epoch in range(self.start_epoch, total):
                record = self._train_epoch(epoch, total, started)
                self._after_epoch(epoch, record)
            self._use_average()
            self._default_layout()
        except (Cancelled, KeyboardInterrupt) as stop:
            self._default_layout()
            self._close_store_record("cancelled", "stopped by the user; resume to continue", quiet=True)
            if isinstance(stop, KeyboardInterrupt):
                raise
            return TrainResult("cancelled", self.run_dir, self.run_id, self.history, model=self.net)
        except BaseException as err:
            self._close_store_record("failed", _failure_message(err), quiet=True)
            raise
        figures = {}
        if self.dist.is_main:
            try:
                from pruning.results import finish_run

                figures = finish_run(self, self._stage)
            except (Cancelled, KeyboardInterrupt) as stop:  # Ctrl-C while measuring or evaluating
                self._close_store_record("cancelled", "stopped while evaluating; the trained model is saved, "
                                         "resume to finish", quiet=True)
                if isinstance(stop, KeyboardInterrupt):
                    raise
                return TrainResult("cancelled", self.run_dir, self.run_id, self.history, model=self.net)
            except BaseException as err:
                self._close_store_record("failed", _failure_message(err), quiet=True)
                raise
            self._close_store_record("finished", None, **figures)
            _write_run_record(self.run_dir, self.run_id, self.store, finished=True)
        return TrainResult("finished", self.run_dir, self.run_id, self.history, figures, self.net)

    def _default_layout(self):
        """The model handed out (and measured, compacted, saved) in PyTorch's default memory layout."""
        if self.channels_last:
            self.net.to(memory_format=torch.contiguous_format)

    def _train_epoch(self, epoch, total, started):
        phase = self.schedule.phase(epoch)
        lr = self.schedule.learning_rate(epoch)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        if phase == "finetune" and self.masks is None:
            # No SFP epochs: prune once, then fine-tune.
            self._prune(None)
        # Frozen: pruned filters stay at zero through the epoch (fine-tuning, or keep_pruned).
        frozen = phase == "finetune" or (self.config.keep_pruned and self.masks is not None)
        self.model.train()
        if self.config.freeze_batchnorm:
            for module in self.net.modules():
                if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                    module.eval()
        batches = self.loader.epoch(epoch)
        steps = len(batches)
        sums = {"loss": 0.0, "loss_loc": 0.0, "loss_conf": 0.0}
        epoch_start = time.perf_counter()
        last_batch = None
        for step, (images, targets) in enumerate(batches, start=1):
            if is_cancelled(self.cancel):
                raise Cancelled()
            t0 = time.perf_counter()
            loss_loc, loss_conf = self._step(images, targets, frozen)
            if epoch >= total - self.config.average_epochs:
                self._accumulate_average()
            for key, value in (("loss", loss_loc + loss_conf), ("loss_loc", loss_loc), ("loss_conf", loss_conf)):
                sums[key] += value
            last_batch = (images, targets)
            self._steps_done += 1
            self._step_time += time.perf_counter() - t0
            remaining = (total - epoch - 1) * steps + (steps - step)
            self.progress(Progress("step", epoch, total, step, steps, phase, loss_loc + loss_conf, lr,
                                   time.perf_counter() - started, remaining * self._step_time / self._steps_done))
        record = {"epoch": epoch, "phase": phase, "lr": lr, "seconds": time.perf_counter() - epoch_start,
                  **{k: self.dist.mean(v / max(steps, 1)) for k, v in sums.items()}}
        if self.schedule.prunes_after(epoch):
            self._prune(last_batch, epoch)
        if frozen and self.masks is not None:
            apply_masks(self.net, self.masks)
        from facedet.params import count_parameters

        record["sparsity"] = count_parameters(self.net).sparsity
        self.progress(Progress("epoch", epoch, total, steps, steps, phase, record["loss"], lr,
                               time.perf_counter() - started,
                               (total - epoch - 1) * steps * self._step_time / max(self._steps_done, 1)))
        return record

    def _step(self, images, targets, frozen):
        images = images.to(self.device, non_blocking=True)
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        targets = [t.to(self.device, non_blocking=True) for t in targets]
        with torch.autocast("cuda", dtype=torch.float16, enabled=self.amp):
            if self.teacher is not None:
                teacher_out, teacher_maps = self.teacher(images)
            with capturing(self.student_maps):
                loc, conf = self.model(images)
        loss_loc = loss_conf = loc.sum() * 0.0
        if self.loader.has_labels and self.config.label_loss:
            label_loc, label_conf = self.loss_fn(loc, conf, self._priors_for(images.shape[2:]), targets)
            loss_loc, loss_conf = self.config.label_loss * label_loc, self.config.label_loss * label_conf
        loss = loss_loc + loss_conf
        if self.teacher is not None:
            student_maps = self.student_maps.take() if self.student_maps is not None else None
            weights = self.config.distill_weights
            terms = distillation_loss((loc, conf), teacher_out, weights, student_maps, teacher_maps)
            if weights.boxes:
                priors = self._priors_for(images.shape[2:])
                labels = teacher_boxes(teacher_out, priors, weights.box_score)
                box_loc, box_conf = self.loss_fn(loc, conf, priors, labels)
                terms["loc"], terms["conf"] = terms["loc"] + weights.boxes * box_loc, terms["conf"] + weights.boxes * box_conf
            loss_loc, loss_conf = loss_loc + terms["loc"], loss_conf + terms["conf"]
            loss = loss + terms["loc"] + terms["conf"] + terms["features"]
        if self.teacher is not None and self.config.distill_anchor:
            # L2-SP: the teacher's weights hold what WIDER FACE taught; a few photos should not pull them far.
            loss = loss + self.config.distill_anchor * weight_distance(self.net, self.teacher.model)
        loss = self.criterion.regularize(self.net, loss, self.config.slimming_lambda)  # e.g. slimming's L1
        if not torch.isfinite(loss):
            raise TrainingDiverged("the training loss is not finite; try a lower learning rate")
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if frozen and self.masks is not None:
            zero_gradients(self.net, self.masks)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        if frozen and self.masks is not None:
            apply_masks(self.net, self.masks)
        return loss_loc.item(), loss.item() - loss_loc.item()

    def _accumulate_average(self):
        """Add the current weights to their running mean (floating tensors: BatchNorm's statistics too)."""
        current = {k: v.detach() for k, v in self.net.state_dict().items() if v.is_floating_point()}
        self.averaged += 1
        if self.average is None:
            self.average = {k: v.clone().cpu() for k, v in current.items()}
            return
        for key, value in current.items():
            self.average[key] += (value.cpu() - self.average[key]) / self.averaged

    def _use_average(self):
        """The model becomes the mean of its weights over the last ``average_epochs`` epochs (pruned
        filters zero again under the final masks): smoother than the last step's on a few photos."""
        if self.average is None:
            return
        with torch.no_grad():
            for key, value in self.net.state_dict().items():
                if key in self.average:
                    value.copy_(self.average[key].to(value.device))
        if self.masks is not None:
            apply_masks(self.net, self.masks)

    def _prune(self, batch, epoch=None):
        """Recompute the masks with the criterion and zero the selected filters (and their state)."""
        rate = self.config.layer_rates if self.config.layer_rates is not None else self.config.rate
        if epoch is not None:  # the ramp scales every layer's rate alike
            ramp = self.schedule.rate_after
            rate = {name: ramp(epoch, r) for name, r in rate.items()} if isinstance(rate, dict) else ramp(epoch, rate)
        removed = select_filters(self.net, self.config.criterion, rate, batch=batch, seed=self.config.seed)
        if self.config.keep_pruned and self.masks is not None:
            removed = _keeping_pruned(self.masks, removed)
        final = epoch is None or epoch >= self.schedule.epochs - 1
        due = self.config.reconstruct == "every" or (self.config.reconstruct == "final" and final)
        before = copy.deepcopy(self.net) if due else None  # what the refit restores, layer by layer
        # Under torchrun each process sees its own batch (taylor scores differ): the main one decides.
        self.masks = masks_from_removed(self.net, self.dist.from_main(removed))
        apply_masks(self.net, self.masks)
        if due:
            self._reconstruct(before, self.schedule.epochs if epoch is None else epoch)
        zero_optimizer_state(self.optimizer, self.net, self.masks)

    def _reconstruct(self, before, epoch):
        """Refit the pruned network's convs to ``before`` (the network just before this pruning
        step: the dense one at the first) on the first crops of epoch 0 (the same crops at every
        step and on resume: they depend on the seed only)."""
        from pruning.reconstruct import reconstruct

        if self._refit_crops is None:  # made once: every pruning step refits on the same crops
            crops, wanted = [], self.config.reconstruct_crops
            for images, _ in self.loader.epoch(0):
                crops.append(images)
                if sum(len(c) for c in crops) >= wanted:
                    break
            self._refit_crops = torch.cat(crops)[:wanted]
        total = self.schedule.total_epochs

        def report(done, layers):
            self.progress(Progress("refit", epoch, total, message=f"refitting layer {done} of {layers}"))

        reconstruct(self.net, before, self._refit_crops, self.masks, seed=self.config.seed, progress=report,
                    cancel=lambda: is_cancelled(self.cancel))
        if is_cancelled(self.cancel):
            raise Cancelled()

    def _after_epoch(self, epoch, record):
        bad = first_non_finite(self.net.state_dict())
        if bad is not None:  # never saved: a resumed run would go on from broken weights
            raise TrainingDiverged(f"training diverged in epoch {epoch + 1} ({bad} is not finite); "
                                   "try a lower learning rate")
        self.history.append(record)
        if not self.dist.is_main:
            self.dist.barrier()
            return
        # The store first: if it cannot be written, the state stays at the previous epoch and a
        # resumed run redoes this one (its row replaced), so store and state always agree.
        if self.store is not None:
            self.store.record_epoch(self.run_id, epoch, record["phase"], record["loss"], record["loss_loc"],
                                    record["loss_conf"], record["lr"], record["sparsity"], record["seconds"])
        _save_state(self.run_dir, {
            "epoch": epoch + 1,
            "model": self.net.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
            "masks": masks_to_lists(self.masks) if self.masks is not None else None,
            "history": self.history,
            "run_id": self.run_id,
            "average": self.average,
            "averaged": self.averaged,
        })
        self.dist.barrier()

    def _priors_for(self, size):
        from facedet.priors import make_priors

        key = tuple(size)
        if key not in self._priors:
            spec = detector_spec(self.config.detector)
            self._priors[key] = make_priors(*key, spec.strides, spec.anchor_sizes).to(self.device)
        return self._priors[key]

    def _stage(self, message):
        if is_cancelled(self.cancel):
            raise Cancelled()
        total = self.schedule.total_epochs
        self.progress(Progress("stage", total - 1, total, message=message))

    # --- the results store -----------------------------------------------------------------
    def _open_store_record(self):
        if self.store is None:
            return
        if self.run_id is None:
            self.run_id = _read_run_record(self.run_dir).get("run_id")
        if self.run_id is not None and self._resumes_row(self.run_id):
            self.store.resume_run(self.run_id)
            return
        self.run_id = self.store.start_run(
            "train", self.config.to_dict(), self.config.detector, self.config.criterion, self.config.rate,
            run_dir=str(self.run_dir.resolve()), data=self.data_description,
            layer_rates=json.dumps(self.config.layer_rates, sort_keys=True) if self.config.layer_rates is not None else None,
        )
        _write_run_record(self.run_dir, self.run_id, self.store)

    def _resumes_row(self, run_id):
        """Whether this run continues row ``run_id`` of the store: it must be there (not deleted,
        nor in another store), be this directory's (a copied directory gets a row of its own)
        and not be finished (DataError: nothing to resume)."""
        from pruning.store import UnknownRun

        try:
            row = self.store.get_run(run_id)
        except UnknownRun:
            return False  # deleted, or recorded in another store: record afresh
        if row.get("run_dir") != str(self.run_dir.resolve()):
            return False
        if row["status"] == "finished":
            raise DataError(f"run {run_id} in {self.run_dir} has finished; nothing to resume "
                            "(start a new run in another run directory)")
        return True

    def _close_store_record(self, status, message, quiet=False, **figures):
        """Record how the run ended; ``quiet``: while another error ends the run, a store that
        cannot be written (a full disk) must not hide it: the row is then marked crashed later."""
        if self.store is None or self.run_id is None:
            return
        try:
            self.store.finish_run(self.run_id, status, message, **figures)
        except DataError:
            if not quiet:
                raise


def _keeping_pruned(masks, removed):
    """``removed`` changed to keep every filter ``masks`` already prune: per layer, the old ones
    plus the first of the new selection not among them, up to the new selection's count."""
    merged = {}
    for name, keep in masks.items():
        old = torch.nonzero(~keep).flatten().tolist()
        new, pruned = list(removed.get(name, ())), set(old)
        extra = [i for i in new if i not in pruned][:max(len(new) - len(old), 0)]
        if old or extra:
            merged[name] = sorted(old + extra)
    return merged


def _prepare_run_dir(config, run_dir, resume):
    """``(config, state or None)``: the config of a fresh run (its directory is checked; written by
    ``_write_config``), or the saved config and state of a resumed one."""
    state_file = run_dir / STATE_FILE
    if resume and _read_run_record(run_dir).get("finished"):
        raise DataError(f"the run in {run_dir} has finished; nothing to resume (start a new run in another "
                        "run directory)")
    if not resume:
        if state_file.exists():
            raise DataError(f"{run_dir} already holds a run: pass --resume to continue it, or pick another --run-dir")
        if run_dir.exists() and not run_dir.is_dir():
            raise DataError(f"the run directory {run_dir} is a file")
        return config, None
    saved = TrainConfig.from_dict(read_saved_config(run_dir))
    if config is not None:
        different = [name for name, value in config.to_dict().items()
                     if name not in RESUMABLE_CHANGES and saved.to_dict()[name] != value]
        if different:
            raise DataError(f"--resume with different settings ({', '.join(different)}) than the run in {run_dir}")
        saved = TrainConfig.from_dict({**saved.to_dict(), **{k: getattr(config, k) for k in RESUMABLE_CHANGES}})
    if not state_file.is_file():
        return saved, None  # interrupted before its first epoch ended: start it again
    try:
        state = torch.load(state_file, map_location="cpu", weights_only=True)
    except Exception as err:
        raise DataError(f"{state_file} is unreadable ({type(err).__name__}); the run cannot be resumed") from None
    return saved, state


def _write_config(config, run_dir):
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DataError(f"cannot write into the run directory {run_dir}: {err.strerror or err}") from None
    # Atomic: a full disk leaves no empty config.json that --resume could not read.
    write_text(run_dir / CONFIG_FILE, json.dumps(config.to_dict(), indent=1))


def read_saved_config(run_dir):
    """The settings saved in a run directory's config.json, as a dict; DataError (one line) when
    there is none or it is damaged (empty, not JSON, not an object)."""
    config_file = Path(run_dir) / CONFIG_FILE
    if not config_file.is_file():
        raise DataError(f"nothing to resume in {run_dir} (no {CONFIG_FILE})")
    try:
        saved = json.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as err:
        reason = getattr(err, "strerror", None) or type(err).__name__
        raise DataError(f"{config_file} is unreadable or not JSON ({reason}); the run cannot be resumed") from None
    if not isinstance(saved, dict):
        raise DataError(f"{config_file} holds a JSON {type(saved).__name__}, not the run's settings; "
                        "the run cannot be resumed")
    return saved


def initial_model(config, state):
    from facedet.models import create_model
    from facedet.weights import load_model

    if state is not None:
        model = create_model(config.detector)
        model.load_state_dict(state["model"])
        return model
    model, _ = load_model(config.weights or config.detector, arch=config.detector)
    return model


def teacher_model(config):
    """The teacher: the run's starting checkpoint as published (not the resumed student), its
    subnormal weights flushed: it only runs forward, and those would slow every step."""
    from facedet.numerics import flush_subnormals
    from facedet.weights import load_model

    model, _ = load_model(config.weights or config.detector, arch=config.detector)
    flush_subnormals(model)
    return model


def training_data(config, teacher, device, dist):
    """``(root or None, description, loader)``: WIDER FACE, the sample set, or a photo folder."""
    if config.photos:
        from facedet.detector import Detector
        from pruning.photos import PhotoCrops, PhotoLoader, face_patches, find_photos, load_photos, teacher_faces

        images, names, skipped = load_photos(find_photos(config.photos))
        if skipped:
            print(f"{len(skipped)} of {len(images) + len(skipped)} files in {config.photos} skipped "
                  f"(not readable images), e.g. {skipped[0][0]}: {skipped[0][1]}", file=sys.stderr)
        if not images:
            raise DataError(f"no readable photos in {config.photos}")
        finder = Detector(teacher.model, config.detector, device=device)
        anchors = teacher_faces(finder, images)
        crops = PhotoCrops(config.crop_size, finder.auto_scale, config.photo_zoom, config.face_crops,
                           face_sizes=config.face_sizes, paste_faces=config.paste_faces,
                           face_patches=face_patches(images, anchors) if config.paste_faces else (),
                           paste_sizes=config.paste_sizes, paste_background=config.paste_background)
        loader = PhotoLoader(images, anchors, crops, config.crops_per_photo, config.batch_size,
                             config.workers, config.seed, dist.rank, dist.world_size, config.mosaic, config.mixup)
        return None, f"{len(images)} photos from {config.photos} (unlabelled; teacher-distilled)", loader
    from pruning.data import EpochLoader, training_root

    root, description = training_root(config.wider, config.sample_images)
    loader = EpochLoader(root, config.crop_size, config.batch_size, config.workers, config.seed, config.max_images,
                         dist.rank, dist.world_size, anchor_sizes=detector_spec(config.detector).anchor_sizes)
    return root, description + (" + teacher-distilled" if config.distill else ""), loader


def _optimizer(config, model):
    kind = config.optimizer
    if kind == "auto":
        kind = detector_spec(config.detector).optimizer
    if kind == "sgd":
        return torch.optim.SGD(model.parameters(), lr=config.schedule.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    return torch.optim.Adam(model.parameters(), lr=config.schedule.lr, weight_decay=config.weight_decay)


def _save_state(run_dir, state):
    """Write the training state atomically: a crash or a full disk mid-write leaves the previous
    epoch's (DataError, one line, when it cannot be written)."""
    from facedet.weights import save_torch_file

    path = run_dir / STATE_FILE
    try:
        save_torch_file(path, state)
    except OSError as err:
        raise DataError(f"{write_failure(path, err)}: epoch {state['epoch']} is not saved; the state of the "
                        "epoch before is kept, resume (--resume) once there is room") from None


def _failure_message(err):
    """What the results store says of a failed run: a user error's own line, else the exception."""
    text = str(err) if isinstance(err, FacedetError) else f"{type(err).__name__}: {err}"
    return text[:500]


def _write_run_record(run_dir, run_id, store, finished=False):
    """``run.json``: the run's row (and store), and whether the run finished (then it cannot be resumed)."""
    record = {"run_id": run_id, "store": str(store.path) if store is not None else None, "finished": finished}
    write_text(run_dir / RUN_FILE, json.dumps(record))


def _read_run_record(run_dir):
    """``run.json`` as a dict ({} when there is none or it is unreadable)."""
    try:
        record = json.loads((run_dir / RUN_FILE).read_text())
        record["run_id"] = int(record["run_id"]) if record.get("run_id") is not None else None
        return record
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}


