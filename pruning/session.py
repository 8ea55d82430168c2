"""Pruning sessions for the app: quick SFP + fine-tuning runs in the background.

``run_session(config, progress, cancel)`` runs one session in the calling thread.
``SessionQueue`` runs submitted sessions one at a time in a background thread; the app submits,
polls ``status``, cancels, resumes an interrupted run (``resume_run_dir``: from its last complete
epoch), and finds everything again after a page reload through ``shared_queue()`` (one queue per
process) and the results store (every session is a run).
"""

import itertools
import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from pathlib import Path

from pruning.paths import sessions_dir
from pruning.train import CONFIG_FILE, TrainConfig, read_saved_config, train

INTERRUPTED = ("cancelled", "failed")  # the states a session can be resumed from


DATA_SOURCES = ("photos", "sample", "wider")


@dataclass(frozen=True)
class SessionConfig:
    """A session: what to prune, on which data, with which preset (``pruning.presets``; by default
    ``quick``: the project's sample photos, distilled from the dense model, a few minutes on a
    CPU). ``data``: ``photos`` (``photos``, default the preset's), ``sample`` (the generated sample
    set, labelled) or ``wider`` (WIDER FACE at ``wider``). Any ``TrainConfig`` setting can be
    overridden through ``options``."""

    detector: str = "eresfd"
    criterion: str = "fpgm"
    rate: float = 0.3
    preset: str = "quick"
    data: str = "photos"
    photos: str | None = None
    wider: str | None = None
    device: str = "auto"
    options: dict = field(default_factory=dict)

    def train_config(self):
        from facedet.errors import FacedetError
        from pruning.presets import preset_config

        if self.data not in DATA_SOURCES:
            raise FacedetError(f"data must be one of {', '.join(DATA_SOURCES)}, not {self.data!r}")
        settings = dict(detector=self.detector, criterion=self.criterion, rate=self.rate, device=self.device)
        if self.data == "wider":
            if not self.wider:
                raise FacedetError("WIDER FACE data needs its root folder")
            settings["wider"] = self.wider
        elif self.data == "sample":
            settings["photos"] = None
        elif self.photos:
            settings["photos"] = self.photos
        return preset_config(self.preset, **{**settings, **self.options})

    def label(self):
        if self.options.get("layer_rates") is not None:  # group or per-layer rates (pruning.rates)
            from pruning.rates import describe_rates

            return f"{self.detector} {self.criterion} {describe_rates(self.detector, self.options['layer_rates'])}"
        return f"{self.detector} {self.criterion} {round(self.rate * 100)}%"


def run_session(config, progress=None, cancel=None, store=None, run_dir=None):
    """Run one session (blocking); returns ``pruning.train.TrainResult``."""
    from pruning.store import ResultsStore

    train_config = config.train_config() if isinstance(config, SessionConfig) else config
    run_dir = Path(run_dir) if run_dir else _new_run_dir(train_config)
    return train(train_config, run_dir, progress=progress, cancel=cancel,
                 store=store if store is not None else ResultsStore())


@dataclass
class SessionStatus:
    id: str
    label: str
    state: str  # queued, running, finished, cancelled, failed
    config: object
    run_dir: str | None = None
    run_id: int | None = None
    progress: object = None  # the last pruning.train.Progress
    losses: list = field(default_factory=list)  # per finished epoch
    figures: dict = field(default_factory=dict)
    error: str | None = None
    submitted_at: float = 0.0
    started_at: float | None = None
    finished_at: float | None = None
    resumed: bool = False  # continues an interrupted run (its run_dir) rather than starting one


class SessionQueue:
    """Sessions run one at a time, in submission order, in a daemon thread."""

    def __init__(self, store=None):
        self._store = store
        self._opened = None  # (path, ResultsStore) of the configured store, reopened when it moves
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._sessions = OrderedDict()  # id -> SessionStatus
        self._pending = []  # ids, in order
        self._cancel = {}  # id -> threading.Event
        self._resume = {}  # id -> run directory to resume
        self._closed = False
        self._thread = threading.Thread(target=self._work, name="pruning-sessions", daemon=True)
        self._thread.start()

    @property
    def store(self):
        """The store given, else the one configured now (``PRUNING_RESULTS_DB``): a process-wide
        queue must not keep recording into the location that held when it was made."""
        if self._store is not None:
            return self._store
        from pruning.paths import results_db_path
        from pruning.store import ResultsStore

        path = results_db_path()
        if self._opened is None or self._opened[0] != path:
            self._opened = (path, ResultsStore(path))
        return self._opened[1]

    def submit(self, config):
        """Queue a session (``SessionConfig`` or ``TrainConfig``); returns its id."""
        train_config = config.train_config() if isinstance(config, SessionConfig) else config  # checks settings
        label = config.label() if isinstance(config, SessionConfig) else f"{config.detector} {config.criterion}"
        return self._enqueue(SessionStatus(uuid.uuid4().hex[:12], label, "queued", train_config,
                                           submitted_at=time.time()))

    def resume(self, run_id):
        """Queue the continuation of an interrupted (cancelled or crashed) run of the store."""
        from facedet.errors import DataError

        run = self.store.get_run(run_id)
        if run["status"] not in ("cancelled", "crashed", "failed") or not run.get("run_dir"):
            raise DataError(f"run {run_id} is {run['status']}; only interrupted runs can be resumed")
        return self.resume_run_dir(run["run_dir"], run_id=run_id)

    def resume_run_dir(self, run_dir, run_id=None):
        """Queue the continuation of the interrupted run in ``run_dir`` (a cancelled or failed
        session's, or one a dead server left): training goes on from its last complete epoch, in the
        same store record. Returns the new session's id; DataError when the folder holds no run's
        settings, or a session of this queue is already on it."""
        run_dir = str(Path(run_dir))  # as _run writes it, so that one run directory is one string
        config = TrainConfig.from_dict(read_saved_config(run_dir))
        status = SessionStatus(uuid.uuid4().hex[:12], f"{config.detector} {config.criterion} (resumed)", "queued",
                               config, run_dir=run_dir, run_id=run_id, submitted_at=time.time(), resumed=True)
        return self._enqueue(status, resume_dir=run_dir)

    def resumable(self, session_id):
        """True for a cancelled or failed session that left a run to continue (its settings are
        saved) and that no later session of this queue continues already."""
        with self._lock:
            status = self._sessions.get(session_id)
            if status is None or status.state not in INTERRUPTED or not status.run_dir:
                return False
            ids = list(self._sessions)
            later = (self._sessions[i].run_dir for i in ids[ids.index(session_id) + 1:])
            if _dir_key(status.run_dir) in {_dir_key(d) for d in later if d}:
                return False
        return (Path(status.run_dir) / CONFIG_FILE).is_file()

    def interrupted_runs(self):
        """The store's runs that stopped before their end (cancelled, failed, or crashed: their
        server died) whose run directory no session of this queue holds: what ``resume(run_id)``
        can continue after a restart, newest first."""
        with self._lock:
            held = {_dir_key(s.run_dir) for s in self._sessions.values() if s.run_dir}
        return [run for run in self.store.runs(kind="train")
                if run["status"] in ("cancelled", "failed", "crashed") and run.get("run_dir")
                and _dir_key(run["run_dir"]) not in held and (Path(run["run_dir"]) / CONFIG_FILE).is_file()]

    def _enqueue(self, status, resume_dir=None):
        from facedet.errors import DataError

        with self._lock:
            if self._closed:
                raise RuntimeError("the session queue is shut down")
            if resume_dir is not None:
                if _dir_key(resume_dir) in {_dir_key(s.run_dir) for s in self._sessions.values()
                                            if s.run_dir and s.state in ("queued", "running")}:
                    raise DataError(f"a session is already queued or running on {resume_dir}")
                self._resume[status.id] = resume_dir
            self._sessions[status.id] = status
            self._pending.append(status.id)
            self._cancel[status.id] = threading.Event()
            self._wake.notify()
        return status.id

    def cancel(self, session_id):
        """Stop a running session after its current step, or drop a queued one."""
        with self._lock:
            status = self._sessions.get(session_id)
            if status is None or status.state not in ("queued", "running"):
                return False
            self._cancel[session_id].set()
            if status.state == "queued":
                self._pending.remove(session_id)
                status.state, status.finished_at = "cancelled", time.time()
                self._wake.notify_all()
            return True

    def status(self, session_id):
        with self._lock:
            status = self._sessions.get(session_id)
            return replace(status, losses=list(status.losses), figures=dict(status.figures)) if status else None

    def sessions(self):
        """Every session of this process, newest first."""
        with self._lock:
            return [replace(s, losses=list(s.losses), figures=dict(s.figures)) for s in reversed(self._sessions.values())]

    def wait(self, session_id, timeout=None):
        """Block until the session ends (or the timeout passes); returns its status."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            while self._sessions[session_id].state in ("queued", "running"):
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    break
                self._wake.wait(remaining)
        return self.status(session_id)

    def shutdown(self, cancel_running=True, timeout=None):
        with self._lock:
            self._closed = True
            for session_id in list(self._pending):
                self._sessions[session_id].state = "cancelled"
            self._pending.clear()
            if cancel_running:
                for event in self._cancel.values():
                    event.set()
            self._wake.notify_all()
        self._thread.join(timeout)

    # --- the worker thread -----------------------------------------------------------------
    def _work(self):
        while True:
            with self._lock:
                while not self._pending and not self._closed:
                    self._wake.wait()
                if self._closed and not self._pending:
                    return
                session_id = self._pending.pop(0)
                status = self._sessions[session_id]
                status.state, status.started_at = "running", time.time()
            self._run(status, self._cancel[session_id])
            with self._lock:
                status.finished_at = time.time()
                self._wake.notify_all()

    def _run(self, status, cancel):
        def on_progress(event):
            with self._lock:
                status.progress = event
                if event.run_id is not None:
                    status.run_id = event.run_id
                if event.kind == "epoch":
                    status.losses.append(event.loss)

        resume_dir = self._resume.get(status.id)
        run_dir = Path(resume_dir) if resume_dir else _new_run_dir(status.config)
        with self._lock:  # resume_run_dir checks it: one session at a time on a run directory
            status.run_dir = str(run_dir)
        try:
            result = train(status.config, run_dir, resume=resume_dir is not None, progress=on_progress,
                           cancel=cancel, store=self.store)
        except Exception as err:  # a session's failure must not end the queue
            with self._lock:
                status.state, status.error = "failed", (str(err).splitlines() or [type(err).__name__])[0][:300]
            return
        with self._lock:
            status.state, status.run_id, status.figures = result.status, result.run_id, dict(result.figures)


_counter = itertools.count()


def _dir_key(path):
    """One string per run directory, however it is written (the store keeps it resolved)."""
    return str(Path(path).resolve())


def _new_run_dir(config):
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return sessions_dir() / f"{stamp}-{next(_counter)}-{config.detector}-{config.criterion}-{round(config.rate * 100)}"


_SHARED = {}
_SHARED_LOCK = threading.Lock()


def shared_queue():
    """The process-wide queue (created on first use): the app finds its sessions after reloads."""
    with _SHARED_LOCK:
        if "queue" not in _SHARED:
            _SHARED["queue"] = SessionQueue()
        return _SHARED["queue"]
