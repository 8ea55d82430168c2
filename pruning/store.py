"""The results store: every pruning run in one SQLite file.

A run row records its configuration, the code revision, its status and figures (parameters,
sparsity, FLOPs, latency, APs and the data root and ground-truth folder they were measured on,
checkpoint paths, timestamps); an epochs table its per-epoch losses; a pr_curves table the
precision-recall curves of its evaluation (``facedet.wider.curves`` documents). Every write is one transaction. A run is ``running`` while its owner (host, process id
and process start time) lives; a store that finds a ``running`` run whose owner on this host has
died marks it ``crashed``: nothing is ever silently dropped. Statuses: running, finished,
cancelled, failed, crashed.
"""

import csv
import json
import os
import shutil
import socket
import sqlite3
import subprocess
from contextlib import closing
from datetime import datetime, timezone
from pathlib import Path

from facedet.errors import DataError
from pruning.paths import results_db_path

STATUSES = ("running", "finished", "cancelled", "failed", "crashed")
# Figures a run may be updated with (column -> SQL type).
FIGURES = {
    "run_dir": "TEXT", "data": "TEXT", "checkpoint": "TEXT", "compact_checkpoint": "TEXT", "onnx_file": "TEXT",
    "parameters": "INTEGER", "nonzero_parameters": "INTEGER", "sparsity": "REAL",
    "compact_parameters": "INTEGER", "flops": "INTEGER", "nonzero_flops": "INTEGER", "compact_flops": "INTEGER",
    # Latency as facedet.latency defines it: end to end and network alone, ms at 640x480, and how.
    "latency_ms": "REAL", "compact_latency_ms": "REAL", "network_ms": "REAL", "compact_network_ms": "REAL",
    "latency_setup": "TEXT",
    "ap_easy": "REAL", "ap_medium": "REAL", "ap_hard": "REAL",
    # What the APs were measured on: the data root (its validation split) and the ground-truth folder.
    "eval_root": "TEXT", "eval_gt": "TEXT",
    # Agreement with the teacher on held-out photos (pruning.agreement): AP, recall, photo names (JSON).
    "agreement_ap": "REAL", "agreement_recall": "REAL", "agreement_photos": "TEXT",
    "epochs_done": "INTEGER", "final_loss": "REAL", "message": "TEXT",
    # Per-layer rates as JSON {conv name: rate} (pruning.rates), NULL for one rate in every layer.
    "layer_rates": "TEXT",
}
_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    detector TEXT, criterion TEXT, rate REAL,
    config TEXT NOT NULL,
    code_revision TEXT,
    owner TEXT,
    created_at TEXT NOT NULL, updated_at TEXT NOT NULL, finished_at TEXT,
    {", ".join(f"{name} {kind}" for name, kind in FIGURES.items())}
);
CREATE TABLE IF NOT EXISTS epochs (
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    epoch INTEGER NOT NULL,
    phase TEXT, loss REAL, loss_loc REAL, loss_conf REAL, lr REAL, sparsity REAL, seconds REAL,
    PRIMARY KEY (run_id, epoch)
);
CREATE TABLE IF NOT EXISTS pr_curves (
    run_id INTEGER PRIMARY KEY REFERENCES runs(id) ON DELETE CASCADE,
    document TEXT NOT NULL
);
"""
# Columns every version of the store has had: a runs table without them is another program's.
CORE_COLUMNS = {"id", "kind", "status", "config", "owner", "created_at", "updated_at"}
EXPORT_COLUMNS = ("id", "kind", "status", "detector", "criterion", "rate", "created_at", "finished_at",
                  *FIGURES, "code_revision", "config")


class UnknownRun(DataError):
    """No run of that id in the store (never recorded there, or deleted)."""


class ResultsStore:
    """``ResultsStore(path=None)``: the store at ``path``, ``$PRUNING_RESULTS_DB`` or the default."""

    def __init__(self, path=None):
        self.path = Path(path).expanduser() if path else results_db_path()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise DataError(f"cannot open the results store {self.path}: {err.strerror or err}") from None
        with self._connect() as conn:
            self._check_tables(conn)
            conn.executescript(_SCHEMA)
            _add_missing_columns(conn)
        self.mark_crashed()

    def _check_tables(self, conn):
        """Refuse (before changing anything) an SQLite file whose ``runs`` table is another program's."""
        present = {row["name"] for row in conn.execute("PRAGMA table_info(runs)")}
        if present and not CORE_COLUMNS <= present:
            raise DataError(f"the results store {self.path} holds another program's tables (its runs table has no "
                            f"{', '.join(sorted(CORE_COLUMNS - present))} column); choose another file")

    def _connect(self):
        """One transaction (``with store._connect() as conn``); every SQLite error in it, or in
        opening the file, becomes a one-line DataError naming the store (``store_error``)."""
        conn = None
        try:
            conn = sqlite3.connect(self.path, timeout=30)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA foreign_keys = ON")
            conn.execute("PRAGMA journal_mode = WAL")  # readers (the app) never block the writer
        except sqlite3.DatabaseError as err:  # OperationalError included
            if conn is not None:
                conn.close()
            raise store_error(self.path, err) from None
        return _Transaction(conn, self.path)

    # --- writing ---------------------------------------------------------------------------
    def start_run(self, kind, config, detector=None, criterion=None, rate=None, **figures):
        """A new ``running`` run owned by this process; returns its id."""
        now = _now()
        with self._connect() as conn:
            cursor = conn.execute(
                "INSERT INTO runs (kind, status, detector, criterion, rate, config, code_revision, owner, "
                "created_at, updated_at) VALUES (?, 'running', ?, ?, ?, ?, ?, ?, ?, ?)",
                (kind, detector, criterion, rate, json.dumps(config, sort_keys=True, default=str),
                 code_revision(), current_owner(), now, now),
            )
            run_id = cursor.lastrowid
            _update(conn, run_id, figures)
        return run_id

    def resume_run(self, run_id):
        """Mark an interrupted run as ``running`` again, owned by this process; the message of
        its interruption ("its process ended ...") no longer applies and is cleared."""
        with self._connect() as conn:
            self._require(conn, run_id)
            conn.execute("UPDATE runs SET status='running', owner=?, finished_at=NULL, message=NULL, updated_at=? "
                         "WHERE id=?", (current_owner(), _now(), run_id))

    def record_epoch(self, run_id, epoch, phase=None, loss=None, loss_loc=None, loss_conf=None, lr=None,
                     sparsity=None, seconds=None):
        """Store (or replace: a resumed run redoes an epoch) one epoch's figures."""
        with self._connect() as conn:
            self._require(conn, run_id)
            conn.execute("INSERT OR REPLACE INTO epochs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                         (run_id, epoch, phase, loss, loss_loc, loss_conf, lr, sparsity, seconds))
            _update(conn, run_id, {"epochs_done": epoch + 1, "final_loss": loss})

    def finish_run(self, run_id, status="finished", message=None, **figures):
        if status not in STATUSES or status == "running":
            raise ValueError(f"a run finishes as finished, cancelled, failed or crashed, not {status!r}")
        with self._connect() as conn:
            self._require(conn, run_id)
            _update(conn, run_id, dict(figures, message=message) if message is not None else figures)
            conn.execute("UPDATE runs SET status=?, finished_at=?, updated_at=? WHERE id=?",
                         (status, _now(), _now(), run_id))

    def set_rate(self, run_id, rate):
        """The share of filters the run's rates remove (a search knows it only once it has a best trial)."""
        with self._connect() as conn:
            self._require(conn, run_id)
            conn.execute("UPDATE runs SET rate=?, updated_at=? WHERE id=?", (rate, _now(), run_id))

    def record_curves(self, run_id, document):
        """Keep the precision-recall curves document of the run's evaluation (replacing any)."""
        with self._connect() as conn:
            self._require(conn, run_id)
            conn.execute("INSERT OR REPLACE INTO pr_curves VALUES (?, ?)", (run_id, json.dumps(document)))

    def delete_run(self, run_id):
        with self._connect() as conn:
            self._require(conn, run_id)
            conn.execute("DELETE FROM runs WHERE id=?", (run_id,))

    def mark_crashed(self):
        """Mark ``running`` runs whose owner process on this host is gone as ``crashed``."""
        with self._connect() as conn:
            rows = conn.execute("SELECT id, owner FROM runs WHERE status='running'").fetchall()
            dead = [row["id"] for row in rows if not owner_alive(row["owner"])]
            for run_id in dead:
                conn.execute(
                    "UPDATE runs SET status='crashed', finished_at=?, updated_at=?, "
                    "message=COALESCE(message, 'its process ended without finishing the run') WHERE id=?",
                    (_now(), _now(), run_id),
                )
        return dead

    # --- reading ---------------------------------------------------------------------------
    def get_run(self, run_id):
        """The run as a dict (``config`` parsed, ``epochs``: list of dicts)."""
        with self._connect() as conn:
            row = self._require(conn, run_id)
            epochs = conn.execute("SELECT * FROM epochs WHERE run_id=? ORDER BY epoch", (run_id,)).fetchall()
        run = _as_dict(row)
        run["epochs"] = [dict(e) for e in epochs]
        return run

    def run_curves(self, run_id):
        """The run's precision-recall curves document, or None (not evaluated, or recorded before
        runs kept their curves)."""
        with self._connect() as conn:
            self._require(conn, run_id)
            row = conn.execute("SELECT document FROM pr_curves WHERE run_id=?", (int(run_id),)).fetchone()
        return json.loads(row["document"]) if row else None

    def runs(self, status=None, kind=None):
        """All runs, newest first (without their epochs)."""
        self.mark_crashed()
        query, args = "SELECT * FROM runs", []
        conditions = []
        if status:
            conditions.append("status=?")
            args.append(status)
        if kind:
            conditions.append("kind=?")
            args.append(kind)
        if conditions:
            query += " WHERE " + " AND ".join(conditions)
        with self._connect() as conn:
            rows = conn.execute(query + " ORDER BY id DESC", args).fetchall()
        return [_as_dict(row) for row in rows]

    def export_rows(self):
        """``(columns, rows)`` of every run for a CSV file (config as JSON text)."""
        rows = []
        for run in self.runs():
            run = dict(run, config=json.dumps(run["config"], sort_keys=True))
            rows.append([run.get(column) for column in EXPORT_COLUMNS])
        return list(EXPORT_COLUMNS), rows

    def write_csv(self, file):
        """Every run as CSV into the open text ``file``; returns the number of runs."""
        columns, rows = self.export_rows()
        writer = csv.writer(file)
        writer.writerow(columns)
        writer.writerows(rows)
        return len(rows)

    @staticmethod
    def _require(conn, run_id):
        row = conn.execute("SELECT * FROM runs WHERE id=?", (int(run_id),)).fetchone()
        if row is None:
            raise UnknownRun(f"no run {run_id} in the results store")
        return row


def _add_missing_columns(conn):
    """Stores written by an older version lack the newer figure columns: add them (NULL)."""
    present = {row["name"] for row in conn.execute("PRAGMA table_info(runs)")}
    for name, kind in FIGURES.items():
        if name not in present:
            conn.execute(f"ALTER TABLE runs ADD COLUMN {name} {kind}")


class _Transaction:
    """``with store._connect() as conn``: one transaction, committed or rolled back, then closed.
    An SQLite error of the block or of the commit leaves it as a DataError (``store_error``)."""

    def __init__(self, conn, path):
        self.conn = conn
        self.path = path

    def __enter__(self):
        return self.conn

    def __exit__(self, exc_type, exc, tb):
        try:
            with closing(self.conn):
                if exc_type is None:
                    self.conn.commit()
                else:
                    self.conn.rollback()
        except sqlite3.DatabaseError as err:
            if exc is None or isinstance(exc, sqlite3.DatabaseError):
                raise store_error(self.path, exc or err) from None
            # the block's own error (a DataError, a bug) says more than the failed rollback
        if isinstance(exc, sqlite3.DatabaseError):
            raise store_error(self.path, exc) from None
        return False


# Parts of SQLite's messages -> what they mean for the store, in a few words.
_REASONS = (
    ("malformed", "is damaged"),  # "database disk image is malformed"
    ("not a database", "is not an SQLite database"),  # "file is not a database"
    ("no such column", "holds another program's tables"),
    ("no such table", "holds another program's tables"),
    ("has no column", "holds another program's tables"),
    ("readonly", "is read-only"),
    ("locked", "is locked by another process; try again"),
    ("unable to open", "cannot be opened"),
)
MIN_FREE_BYTES = 4 << 20  # below this an SQLite "disk I/O error" is taken for a full disk


def store_error(path, err):
    """A one-line DataError for an SQLite error of the store at ``path``: its path and a short reason."""
    text = (str(err).strip().splitlines() or [type(err).__name__])[0][:160]
    lowered = text.lower()
    if "disk is full" in lowered or ("disk i/o error" in lowered and _disk_nearly_full(path)):
        return DataError(f"no space left on device for the results store {path}")
    for part, reason in _REASONS:
        if part in lowered:
            return DataError(f"the results store {path} {reason} ({text})")
    return DataError(f"the results store {path} cannot be used ({text})")


def _disk_nearly_full(path):
    try:
        return shutil.disk_usage(Path(path).parent).free < MIN_FREE_BYTES
    except OSError:
        return False


def _update(conn, run_id, figures):
    unknown = set(figures) - set(FIGURES)
    if unknown:
        raise ValueError(f"unknown run figures: {', '.join(sorted(unknown))}")
    if figures:
        columns = ", ".join(f"{name}=?" for name in figures)
        conn.execute(f"UPDATE runs SET {columns}, updated_at=? WHERE id=?",
                     (*[_plain(v) for v in figures.values()], _now(), run_id))


def _plain(value):
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item"):  # numpy / torch scalars
        return value.item()
    return value


def _as_dict(row):
    run = dict(row)
    run["config"] = json.loads(run["config"]) if run.get("config") else {}
    return run


def _now():
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def current_owner():
    pid = os.getpid()
    return f"{socket.gethostname()}:{pid}:{_start_time(pid)}"


def owner_alive(owner):
    """Whether the process that owns a run still runs (always assumed for other hosts)."""
    try:
        host, pid, started = owner.split(":")
        pid = int(pid)
    except (AttributeError, ValueError):
        return False
    if host != socket.gethostname():
        return True  # cannot tell from here; another machine's run is left alone
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return started == "" or _start_time(pid) == started  # a reused pid is another process


def _start_time(pid):
    """The process start time (clock ticks since boot) on Linux; '' where unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


_REVISION = {}


def code_revision():
    """``git describe --always --dirty`` of the project checkout, or 'unknown'."""
    if "value" not in _REVISION:
        root = Path(__file__).resolve().parent.parent
        try:
            out = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=root, capture_output=True,
                                 text=True, timeout=10)
            _REVISION["value"] = out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else "unknown"
        except (OSError, subprocess.SubprocessError):
            _REVISION["value"] = "unknown"
    return _REVISION["value"]
