"""Searching one pruning rate per layer group, as B-FPGM does (Kaparinos & Mezaris, WACVW 2025), with Optuna.

Each trial proposes a rate for every layer group of the detector (``DetectorSpec.layer_groups``;
a group that is the detection head stays at 0), each in ``[0, min(0.98, S + 0.2)]`` as B-FPGM
bounds them (``S``: the target parameter sparsity). Its score, minimised, has B-FPGM's shape::

    validation loss after pruning and a short recovery + penalty_weight x penalty(S, reached sparsity)

``penalty`` is 0 when the reached sparsity lies in ``[S, S + tolerance]``, the shortfall when it
lies in ``(S - tolerance, S)``, and 100 plus the miss beyond the tolerance (B-FPGM's 100; the
added miss is ours, so that the sampler sees which way the target lies). As in B-FPGM, a trial
that misses the target by the tolerance or more is neither pruned nor trained (its loss counts 0):
its sparsity follows from the rates alone, so it is scored at once and does not count towards
the trials asked for. The first trial probes every group at ``S + probe_offset``, as B-FPGM does.

**The proxy** (what one trial costs): the quick preset's data and losses (``pruning.presets``:
crops of the project's photos, or ``photos`` / the sample set / ``wider``, with the dense model as
the teacher), one-shot pruning with the criterion at the trial's rates, ``recovery_steps`` Adam
steps at ``lr`` with the masks frozen and BatchNorm statistics fixed, then the same loss on a
fixed set of ``validation_crops`` crops that recovery never sees (another seed's). B-FPGM recovers
for one epoch of 80 % of WIDER FACE train and validates on the other 20 % (on a GPU); the same
code scales there through ``recovery_steps``, ``validation_crops`` and ``wider``.

A search lives in a directory: ``search.json`` (its settings), ``study.journal`` (Optuna's
journal: every trial, appended as it ends), ``best.json`` (the best rates so far, rewritten after
every trial) and ``run.json`` (its row in the results store, kind ``search``, whose
``layer_rates`` are the best rates). ``resume=True`` continues an interrupted search: a trial cut
off mid-way is run again from its rates. ``trials`` and ``minutes`` may change on resume (to search
longer); the other settings may not.
"""

import json
import math
import time
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import torch

from facedet.atomic import write_text
from facedet.errors import DataError, FacedetError
from facedet.models import detector_spec

CONFIG_FILE, JOURNAL_FILE, BEST_FILE, RUN_FILE = "search.json", "study.journal", "best.json", "run.json"
STUDY = "group-rates"
SAMPLERS = ("tpe", "gp")
RESUMABLE_CHANGES = ("trials", "minutes", "device", "threads")
PRUNING_STARTUP = 5  # trained trials finished before any is stopped early
UNSCORED_PER_TRIAL = 50  # at most this many instantly scored (off-target) trials per trained one


@dataclass(frozen=True)
class SearchConfig:
    detector: str = "eresfd"
    criterion: str = "fpgm"
    target_sparsity: float = 0.5  # share of the detector's parameters that are zero after pruning
    trials: int = 30  # trained trials (off-target ones, scored at once, are not counted)
    minutes: float | None = None  # start no trial after this many minutes (of this call)
    sampler: str = "tpe"  # Optuna's TPE or Gaussian-process sampler
    recovery_steps: int = 20
    validation_crops: int = 32
    lr: float = 1e-3
    penalty_weight: float = 5.0  # B-FPGM's regularisation coefficient
    tolerance: float = 0.04
    probe_offset: float = 0.04
    prune_trials: bool = True  # stop a trial whose loss half-way through recovery is above the median
    weights: str | None = None  # starting checkpoint (the teacher too); default the published dense model
    photos: str | None = None  # unlabelled photos (default: the quick preset's)
    wider: str | None = None  # a WIDER FACE root instead of photos
    seed: int = 0
    device: str = "auto"
    threads: int | None = None

    def __post_init__(self):
        from pruning.criteria import check_criterion

        spec = detector_spec(self.detector)
        check_criterion(self.criterion)
        if not spec.layer_groups:
            raise FacedetError(f"{spec.display_name} has no layer groups to search rates for")
        checks = (("target_sparsity", 0.0, 0.95), ("lr", 1e-8, 1.0), ("penalty_weight", 0.0, 1e6),
                  ("tolerance", 1e-4, 0.5), ("probe_offset", -0.5, 0.5))
        for name, low, high in checks:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
                raise FacedetError(f"{name.replace('_', ' ')} must be a number from {low:g} to {high:g}, got {value!r}")
        for name in ("trials", "recovery_steps", "validation_crops"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise FacedetError(f"{name.replace('_', ' ')} must be a whole number of at least 1, got {value!r}")
        if self.minutes is not None and not (isinstance(self.minutes, (int, float)) and self.minutes > 0
                                             and math.isfinite(self.minutes)):
            raise FacedetError(f"minutes must be a positive number, got {self.minutes!r}")
        if self.sampler not in SAMPLERS:
            raise FacedetError(f"sampler must be one of {', '.join(SAMPLERS)}, not {self.sampler!r}")
        if self.photos and self.wider:
            raise FacedetError("search on WIDER FACE or on photos, not both")

    @property
    def upper(self):
        """The highest rate a group may get (B-FPGM's bound)."""
        return min(0.98, self.target_sparsity + 0.2)

    def to_dict(self):
        return asdict(self)

    @classmethod
    def from_dict(cls, data):
        known = {f.name for f in fields(cls)}
        try:
            return cls(**{k: v for k, v in data.items() if k in known})
        except TypeError as err:
            raise FacedetError(f"invalid search settings: {err}") from None


def penalty(target, reached, tolerance=0.04):
    """B-FPGM's sparsity penalty (see the module docstring)."""
    miss = abs(reached - target)
    if miss >= tolerance:
        return 100.0 + miss
    return target - reached if reached < target else 0.0


@dataclass
class SearchProgress:
    """What a progress callback receives after every trial."""

    trials_done: int  # trained trials, this search's whole history
    trials: int
    unscored: int  # off-target trials scored at once (this call)
    best_value: float | None
    best_group_rates: list | None
    elapsed_s: float
    message: str = ""


@dataclass
class SearchResult:
    status: str  # finished, cancelled
    directory: Path
    run_id: int | None
    best: dict | None  # best.json's contents


class SearchCancelled(Exception):
    pass


class GroupRateSpace:
    """The layer groups of a detector as a search space, and the sparsity rates give (counted, not pruned)."""

    def __init__(self, arch, upper):
        from facedet.models import create_model
        from facedet.params import count_parameters
        from pruning.graph import prunable_convs
        from pruning.rates import layer_groups

        self.arch = arch
        self.groups = layer_groups(arch)  # prunable convs per group; an empty group (a head) is not searched
        self.searched = [i for i, names in enumerate(self.groups) if names]
        model = create_model(arch)
        self.total = count_parameters(model).total
        self.per_filter = {name: conv.weight[0].numel() + (1 if conv.bias is not None else 0)
                           for name, conv in prunable_convs(model)}
        self.filters = {name: conv.out_channels for name, conv in prunable_convs(model)}
        self.upper = upper

    def distributions(self):
        from optuna.distributions import FloatDistribution

        return {f"group{i + 1}": FloatDistribution(0.0, self.upper) for i in self.searched}

    def group_rates(self, params):
        """All groups' rates (0 for the unsearched) from a trial's params."""
        return [float(params.get(f"group{i + 1}", 0.0)) for i in range(len(self.groups))]

    def params(self, group_rates):
        return {f"group{i + 1}": min(max(float(group_rates[i]), 0.0), self.upper) for i in self.searched}

    def expected_sparsity(self, layer_rates):
        """The sparsity pruning at ``layer_rates`` reaches: a removed filter zeroes its conv weights
        and bias (the dense model's own zero weights aside, which are few)."""
        from pruning.rates import filters_to_remove

        zeroed = sum(filters_to_remove(self.filters[name], rate) * self.per_filter[name]
                     for name, rate in layer_rates.items())
        return zeroed / self.total


class Proxy:
    """One trial's cost: prune a copy of the start model, recover briefly, measure the validation loss."""

    def __init__(self, config, device):
        from pruning.distill import DistillWeights, Teacher
        from pruning.loss import MultiBoxLoss
        from pruning.presets import preset_config
        from pruning.train import initial_model, teacher_model, training_data
        from pruning.distributed import Distributed

        settings = dict(detector=config.detector, criterion=config.criterion, rate=0.0, weights=config.weights,
                        seed=config.seed, evaluate=False, device=str(device))
        if config.wider:
            settings["wider"] = config.wider
        elif config.photos:
            settings["photos"] = config.photos
        self.train_config = preset_config("quick", **settings)
        self.device = device
        self.start = initial_model(self.train_config, None).cpu()
        self.teacher = Teacher(teacher_model(self.train_config)).to(device)
        dist = Distributed(0, 1, device)
        _, self.data, self.loader = training_data(self.train_config, self.teacher, device, dist)
        self.weights = DistillWeights(self.train_config.distill_conf, self.train_config.distill_loc)
        self.loss_fn = MultiBoxLoss()
        self.priors = {}
        # Validation: a fixed set of crops that recovery never draws (another seed's epoch).
        self.validation = _take_crops(_reseeded(self.loader, config.seed + 7919), config.validation_crops)
        self.recovery = _Batches(self.loader)

    def _loss(self, model, images, targets):
        from pruning.distill import distillation_loss

        images = images.to(self.device)
        teacher_out, _ = self.teacher(images)
        loc, conf = model(images)
        terms = distillation_loss((loc, conf), teacher_out, self.weights)
        loss = terms["loc"] + terms["conf"]
        if self.loader.has_labels:
            key = tuple(images.shape[2:])
            if key not in self.priors:
                from facedet.priors import make_priors

                spec = detector_spec(self.train_config.detector)
                self.priors[key] = make_priors(*key, spec.strides, spec.anchor_sizes).to(self.device)
            label_loc, label_conf = self.loss_fn(loc, conf, self.priors[key], [t.to(self.device) for t in targets])
            loss = loss + label_loc + label_conf
        return loss

    @torch.no_grad()
    def validation_loss(self, model):
        model.eval()
        losses = [float(self._loss(model, images, targets)) * len(images) for images, targets in self.validation]
        return sum(losses) / sum(len(images) for images, _ in self.validation)

    def run(self, layer_rates, criterion, steps, lr, report, cancel=None, seed=0):
        """``(validation loss, reached sparsity)`` of the start model pruned at ``layer_rates`` and
        recovered ``steps`` steps; ``report(step, loss)`` after pruning (step 0) and half-way
        (step 1): True stops the trial (``optuna.TrialPruned``)."""
        import copy

        import optuna

        from facedet.cancel import is_cancelled
        from facedet.params import count_parameters
        from pruning.masks import apply_masks, masks_from_removed, zero_gradients
        from pruning.criteria import select_filters

        model = copy.deepcopy(self.start)
        masks = masks_from_removed(model, select_filters(model, criterion, layer_rates, seed=seed))
        apply_masks(model, masks)
        reached = count_parameters(model).sparsity
        model.to(self.device)
        if report(0, self.validation_loss(model), reached):
            raise optuna.TrialPruned()
        optimizer = torch.optim.Adam(model.parameters(), lr=lr)
        for step in range(steps):
            if is_cancelled(cancel):
                raise SearchCancelled()
            model.train()
            for module in model.modules():  # BatchNorm statistics stay the published model's
                if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                    module.eval()
            images, targets = self.recovery.next()
            loss = self._loss(model, images, targets)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            zero_gradients(model, masks)
            optimizer.step()
            apply_masks(model, masks)
            if step + 1 == steps // 2 and steps >= 2 and report(1, self.validation_loss(model), reached):
                raise optuna.TrialPruned()
        return self.validation_loss(model), reached


def _reseeded(loader, seed):
    import copy

    other = copy.copy(loader)
    other.seed = seed
    return other


def _take_crops(loader, count):
    """The first ``count`` crops (whole batches) of epoch 0 of ``loader``, kept in memory."""
    batches, taken = [], 0
    for images, targets in loader.epoch(0):
        batches.append((images, targets))
        taken += len(images)
        if taken >= count:
            break
    if not batches:
        raise DataError("no validation crops: the training data is empty")
    return batches


class _Batches:
    """Endless batches of the training loader, epoch after epoch."""

    def __init__(self, loader):
        self.loader, self.epoch, self.iterator = loader, 0, None

    def next(self):
        while True:
            if self.iterator is None:
                self.iterator = iter(self.loader.epoch(self.epoch))
            try:
                return next(self.iterator)
            except StopIteration:
                self.iterator, self.epoch = None, self.epoch + 1


def search(config, directory, resume=False, progress=None, cancel=None, store=None):
    """Run (or, ``resume``, continue) a group-rate search in ``directory``; see the module docstring.

    ``progress``: callable receiving ``SearchProgress`` after every trial; ``cancel``: callable or
    event, checked every recovery step; ``store``: a ``ResultsStore`` to record the search in.
    """
    from facedet.threads import torch_threads
    from pruning.locks import RunDirLock

    directory = Path(directory)
    with torch_threads(config.threads if config is not None else None), RunDirLock(directory):
        return _Search(config, directory, resume, progress, cancel, store).run()


class _Search:
    def __init__(self, config, directory, resume, progress, cancel, store):
        import optuna

        from facedet.detector import pick_device

        optuna.logging.set_verbosity(optuna.logging.ERROR)  # failures are reported as our own one line
        self.directory = directory
        if config is not None:
            _check_reachable(config)  # before anything is written
        self.config = _prepare_directory(config, directory, resume)
        self.progress = progress or (lambda event: None)
        self.cancel = cancel
        self.store = store
        self.device = pick_device(self.config.device)
        self.space = GroupRateSpace(self.config.detector, self.config.upper)
        self.study = _open_study(self.config, directory)
        self.run_id = None

    def run(self):
        from pruning.train import Cancelled

        config, study = self.config, self.study
        _requeue_interrupted(study)
        if not study.trials:
            probe = [config.target_sparsity + config.probe_offset] * len(self.space.groups)
            study.enqueue_trial(self.space.params(probe))
        self._open_store_record()
        started = time.monotonic()
        deadline = started + config.minutes * 60 if config.minutes else None
        proxy = None
        unscored = 0
        try:
            while self.trained_count() < config.trials:
                if deadline is not None and time.monotonic() >= deadline:
                    break
                if unscored >= UNSCORED_PER_TRIAL * config.trials:
                    raise DataError(f"{unscored} proposed rates missed the target sparsity {config.target_sparsity:g} "
                                    f"by {config.tolerance:g} or more; try a wider --tolerance or another target")
                trial = study.ask(self.space.distributions())
                group_rates = self.space.group_rates(trial.params)
                layer_rates = _layer_rates(config.detector, group_rates)
                expected = self.space.expected_sparsity(layer_rates)
                trial.set_user_attr("group_rates", group_rates)
                if abs(expected - config.target_sparsity) >= config.tolerance:
                    value = config.penalty_weight * penalty(config.target_sparsity, expected, config.tolerance)
                    trial.set_user_attr("sparsity", expected)
                    study.tell(trial, value)
                    unscored += 1
                    self._record_trial(trial.number, "off-target", value, expected)
                    continue
                if proxy is None:
                    proxy = Proxy(config, self.device)
                self._trained_trial(trial, proxy, group_rates, layer_rates)
                self._report(started, unscored)
        except (SearchCancelled, Cancelled, KeyboardInterrupt) as stop:
            self._close_store_record("cancelled", "stopped by the user; resume to continue")
            if isinstance(stop, KeyboardInterrupt):
                raise
            return SearchResult("cancelled", self.directory, self.run_id, self.best())
        except BaseException as err:
            self._close_store_record("failed", str(err)[:500] if isinstance(err, FacedetError)
                                     else f"{type(err).__name__}: {err}"[:500])
            raise
        self._write_best()
        best = self.best()
        done = self.trained_count() >= config.trials
        message = (f"best of {self.trained_count()} trials" if best else "no trial reached the target sparsity")
        self._close_store_record("finished" if done else "cancelled", message if done else
                                 f"{message}; stopped at the time limit, resume to continue")
        return SearchResult("finished" if done else "cancelled", self.directory, self.run_id, best)

    def _trained_trial(self, trial, proxy, group_rates, layer_rates):
        import optuna
        from optuna.trial import TrialState

        config = self.config

        def report(step, loss, reached):
            trial.set_user_attr("sparsity", reached)
            value = loss + config.penalty_weight * penalty(config.target_sparsity, reached, config.tolerance)
            trial.report(value, step)
            # Optuna's startup count includes off-target trials: wait for enough trained ones.
            return config.prune_trials and self.completed_count() >= PRUNING_STARTUP and trial.should_prune()

        trial.set_user_attr("trained", True)
        try:
            loss, reached = proxy.run(layer_rates, config.criterion, config.recovery_steps, config.lr, report,
                                      self.cancel, config.seed)
        except optuna.TrialPruned:
            self.study.tell(trial, state=TrialState.PRUNED)
            self._record_trial(trial.number, "pruned", None, trial.user_attrs.get("sparsity"))
            return
        except BaseException:
            # Cut off (Ctrl-C, cancel, an error): not a result. Resume runs these rates again.
            self.study.tell(trial, state=TrialState.FAIL)
            self.study.enqueue_trial(trial.params)
            raise
        value = loss + config.penalty_weight * penalty(config.target_sparsity, reached, config.tolerance)
        trial.set_user_attr("validation_loss", loss)
        trial.set_user_attr("sparsity", reached)
        self.study.tell(trial, value)
        self._record_trial(trial.number, "trained", value, reached)
        self._write_best()

    def trained_count(self):
        from optuna.trial import TrialState

        return sum(1 for t in self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
                   if t.user_attrs.get("trained"))

    def completed_count(self):
        from optuna.trial import TrialState

        return sum(1 for t in self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
                   if t.user_attrs.get("trained"))

    def best(self):
        """The best trained trial as ``best.json`` holds it, or None."""
        from optuna.trial import TrialState

        trained = [t for t in self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
                   if t.user_attrs.get("trained")]
        if not trained:
            return None
        top = min(trained, key=lambda t: t.value)
        group_rates = [round(r, 4) for r in top.user_attrs["group_rates"]]
        return {"detector": self.config.detector, "criterion": self.config.criterion,
                "target_sparsity": self.config.target_sparsity, "group_rates": group_rates,
                "group_rates_text": group_rates_text(group_rates),
                "sparsity": round(top.user_attrs["sparsity"], 4), "value": top.value,
                "validation_loss": top.user_attrs.get("validation_loss"), "trial": top.number,
                "trials": self.trained_count()}

    def _write_best(self):
        best = self.best()
        if best is not None:
            write_text(self.directory / BEST_FILE, json.dumps(best, indent=1))

    def _report(self, started, unscored):
        best = self.best()
        self.progress(SearchProgress(self.trained_count(), self.config.trials, unscored,
                                     best["value"] if best else None, best["group_rates"] if best else None,
                                     time.monotonic() - started))

    # --- the results store -----------------------------------------------------------------
    def _open_store_record(self):
        if self.store is None:
            return
        from pruning.store import UnknownRun

        record = _read_json(self.directory / RUN_FILE)
        run_id = record.get("run_id")
        if run_id is not None:
            try:
                row = self.store.get_run(int(run_id))
            except UnknownRun:
                row = None
            if row is not None and row.get("run_dir") == str(self.directory.resolve()):
                self.run_id = int(run_id)
                self.store.resume_run(self.run_id)
                return
        self.run_id = self.store.start_run("search", self.config.to_dict(), self.config.detector,
                                           self.config.criterion, None, run_dir=str(self.directory.resolve()),
                                           data=f"group-rate search, target sparsity {self.config.target_sparsity:g}")
        write_text(self.directory / RUN_FILE, json.dumps({"run_id": self.run_id, "store": str(self.store.path)}))

    def _record_trial(self, number, phase, value, sparsity):
        if self.store is not None and self.run_id is not None:
            self.store.record_epoch(self.run_id, number, phase, value, sparsity=sparsity)

    def _close_store_record(self, status, message):
        if self.store is None or self.run_id is None:
            return
        figures = {}
        best = self.best()
        if best is not None:
            from pruning.rates import removed_share

            layer_rates = _layer_rates(self.config.detector, best["group_rates"])
            figures = dict(layer_rates=json.dumps(layer_rates, sort_keys=True), sparsity=best["sparsity"],
                           nonzero_parameters=round(self.space.total * (1 - best["sparsity"])),
                           parameters=self.space.total, final_loss=best["value"],
                           epochs_done=self.trained_count())
            self.store.set_rate(self.run_id, removed_share(self.config.detector, layer_rates))
        try:
            self.store.finish_run(self.run_id, status, message, **figures)
        except DataError:
            if status == "finished":
                raise


def _check_reachable(config):
    space = GroupRateSpace(config.detector, config.upper)
    highest = space.expected_sparsity(_layer_rates(config.detector, [config.upper] * len(space.groups)))
    if highest <= config.target_sparsity - config.tolerance:
        raise DataError(f"a target sparsity of {config.target_sparsity:g} is out of reach: every group at the "
                        f"highest rate ({config.upper:g}) zeroes {highest:.3f} of the parameters")


def _layer_rates(arch, group_rates):
    from pruning.rates import group_layer_rates

    return {name: rate for name, rate in group_layer_rates(arch, group_rates).items()}


def _open_study(config, directory):
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    storage = JournalStorage(JournalFileBackend(str(directory / JOURNAL_FILE)))
    startup = max(4, min(10, config.trials // 3))
    if config.sampler == "gp":
        sampler = optuna.samplers.GPSampler(seed=config.seed, n_startup_trials=startup)
    else:
        sampler = optuna.samplers.TPESampler(seed=config.seed, n_startup_trials=startup)
    pruner = optuna.pruners.MedianPruner(n_startup_trials=0, n_warmup_steps=1)
    try:
        return optuna.create_study(storage=storage, sampler=sampler, pruner=pruner, study_name=STUDY,
                                   direction="minimize", load_if_exists=True)
    except Exception as err:  # a damaged journal
        raise DataError(f"{directory / JOURNAL_FILE} is unreadable ({type(err).__name__}); "
                        "start the search in a new directory") from None


def _requeue_interrupted(study):
    """Trials left running by a process that died: failed, and their rates queued again."""
    from optuna.trial import TrialState

    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        study.tell(trial.number, state=TrialState.FAIL)
        if trial.params:
            study.enqueue_trial(trial.params)


def _prepare_directory(config, directory, resume):
    saved_file = directory / CONFIG_FILE
    if not resume:
        if saved_file.exists():
            raise DataError(f"{directory} already holds a search: pass --resume to continue it, or pick another --out")
        write_text(saved_file, json.dumps(config.to_dict(), indent=1))
        return config
    saved_data = _read_json(saved_file)
    if not saved_data:
        raise DataError(f"nothing to resume in {directory} (no readable {CONFIG_FILE})")
    saved = SearchConfig.from_dict(saved_data)
    if config is None:
        return saved
    different = [name for name, value in config.to_dict().items()
                 if name not in RESUMABLE_CHANGES and saved.to_dict()[name] != value]
    if different:
        raise DataError(f"--resume with different settings ({', '.join(different)}) than the search in {directory}")
    merged = replace(saved, **{name: getattr(config, name) for name in RESUMABLE_CHANGES})
    write_text(saved_file, json.dumps(merged.to_dict(), indent=1))
    return merged


def _read_json(path):
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def read_best(directory):
    """A search directory's best rates (``best.json``), or None."""
    return _read_json(Path(directory) / BEST_FILE) or None


def stored_searches(store, detector=None):
    """The searches of a results store that have a best trial, newest first: dicts with ``run_id``,
    ``detector``, ``criterion``, ``target_sparsity``, ``group_rates``, ``sparsity``, ``trials``, ``status``."""
    from pruning.rates import layer_groups

    found = []
    for run in store.runs(kind="search"):
        if not run.get("layer_rates") or (detector and run.get("detector") != detector):
            continue
        rates = json.loads(run["layer_rates"])
        groups = layer_groups(run["detector"])
        group_rates = [next((rates[name] for name in names if name in rates), 0.0) for names in groups]
        found.append(dict(run_id=run["id"], detector=run["detector"], criterion=run["criterion"],
                          target_sparsity=run.get("config", {}).get("target_sparsity"), group_rates=group_rates,
                          sparsity=run.get("sparsity"), trials=run.get("epochs_done"), status=run["status"]))
    return found


def group_rates_text(group_rates):
    """``0.2,0,0.08,...``: group rates as the command line and the app's fields take them."""
    return ",".join(f"{rate:g}" for rate in group_rates)
