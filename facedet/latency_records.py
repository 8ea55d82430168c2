"""Latency measured once per model and machine, remembered and reused (``facedet.latency``'s figure).

Timing a model takes seconds and a repeat under other load gives another figure, so the app and
``facedet bench`` keep what they measured in a small SQLite file in the user cache
(``latency.sqlite``; ``$FACEDET_LATENCY_RECORDS`` names another file), keyed by the model's weights (a hash of its state dict: a published file, a
session's checkpoint and a one-shot model alike), the machine (CPU or GPU model, core count,
library versions) and the setup (size, threshold, backend asked for, threads). A figure says when
and how it was measured. The records are a cache: when the file cannot be read or written the
latency is still measured and returned, only not remembered.
"""

import hashlib
import json
import os
import platform
import sqlite3
import time
from pathlib import Path

from facedet.paths import cache_dir

SCHEMA = """CREATE TABLE IF NOT EXISTS latency (
    model TEXT NOT NULL, machine TEXT NOT NULL, setup TEXT NOT NULL,
    stats TEXT NOT NULL, machine_description TEXT NOT NULL, measured_at REAL NOT NULL,
    PRIMARY KEY (model, machine, setup))"""


def model_fingerprint(detector):
    """A hash of what the detector computes with: its architecture and every tensor of its state
    (for a peer run from a file by another runtime, YuNet through OpenCV: that file's sha256)."""
    digest = hashlib.sha256(detector.arch.encode())
    if getattr(detector, "model", None) is None:
        digest.update(detector.checkpoint.sha256.encode())
        return digest.hexdigest()[:32]
    for name, tensor in sorted(detector.model.state_dict().items()):
        digest.update(name.encode())
        digest.update(str(tuple(tensor.shape)).encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:32]


def machine_description(device="cpu"):
    """The processor (or GPU) and the libraries a latency depends on, in words."""
    import torch

    if str(device).startswith("cuda") and torch.cuda.is_available():
        chip = torch.cuda.get_device_name(torch.device(device))
    else:
        chip = _cpu_model()
    parts = [chip, f"{os.cpu_count()} cores", f"torch {torch.__version__}"]
    try:
        import onnxruntime

        parts.append(f"onnxruntime {onnxruntime.__version__}")
    except ImportError:
        pass
    return ", ".join(parts)


def _cpu_model():
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def setup_key(size, threshold, backend, threads):
    return f"{size}|score>={threshold:g}|{backend}|{threads} threads"


class LatencyRecords:
    """The remembered latencies: ``path``, else ``$FACEDET_LATENCY_RECORDS``, else ``latency.sqlite``
    in the user cache."""

    def __init__(self, path=None):
        path = path or os.environ.get("FACEDET_LATENCY_RECORDS") or cache_dir() / "latency.sqlite"
        self.path = Path(path).expanduser()

    def _connect(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(self.path, timeout=5)
        connection.execute(SCHEMA)
        return connection

    def get(self, model, machine, setup):
        """The stored stats (with ``measured_at`` and ``machine``), or None; None when unreadable."""
        try:
            with self._connect() as connection:
                row = connection.execute(
                    "SELECT stats, machine_description, measured_at FROM latency "
                    "WHERE model = ? AND machine = ? AND setup = ?", (model, machine, setup)).fetchone()
        except (sqlite3.Error, OSError):
            return None
        if row is None:
            return None
        try:
            stats = json.loads(row[0])
        except ValueError:
            return None
        return {**stats, "machine": row[1], "measured_at": row[2]}

    def put(self, model, machine, setup, stats, description):
        """Remember ``stats``; False (and nothing raised) when the file cannot be written."""
        record = {k: v for k, v in stats.items() if k not in ("machine", "measured_at", "remembered")}
        try:
            with self._connect() as connection:
                connection.execute("INSERT OR REPLACE INTO latency VALUES (?, ?, ?, ?, ?, ?)",
                                   (model, machine, setup, json.dumps(record), description,
                                    stats.get("measured_at", time.time())))
        except (sqlite3.Error, OSError):
            return False
        return True


def _keys(detector, measure, backend=None):
    """``(model, machine, setup, machine in words)`` of a measurement of ``detector`` with ``measure``
    (on ``backend``: by default the detector's)."""
    import torch

    from facedet.latency import LATENCY_SIZE, LATENCY_THRESHOLD

    width, height = measure.get("width", LATENCY_SIZE[0]), measure.get("height", LATENCY_SIZE[1])
    setup = setup_key(f"{width}x{height}", measure.get("threshold", LATENCY_THRESHOLD), backend or detector.backend,
                      torch.get_num_threads())
    if measure.get("image") is not None:  # a figure on another photo is another measurement
        setup += "|photo " + hashlib.sha256(measure["image"].tobytes()).hexdigest()[:12]
    description = machine_description(detector.device)
    return model_fingerprint(detector), hashlib.sha256(description.encode()).hexdigest()[:16], setup, description


def stored_latency(detector, records=None, backend=None, **measure):
    """The remembered stats of ``detector`` on this machine with this setup (on ``backend``: by
    default the detector's), or None (nothing measured)."""
    model, machine, setup, _ = _keys(detector, measure, backend)
    stored = (records or LatencyRecords()).get(model, machine, setup)
    return {**stored, "remembered": True} if stored is not None else None


def stored_auto_latency(detector, records=None, **measure):
    """The remembered stats ``backend="auto"`` would have measured for ``detector``'s model, without
    building that backend (``auto`` times torch against onnx, and onnx may time compactions): the
    faster of what is remembered for the backends ``auto`` chooses between here; None if neither is."""
    backends = ("torch", "onnx") if detector.backend in ("torch", "onnx") and detector.device.type == "cpu" \
        else (detector.backend,)
    found = [stats for backend in backends
             if (stats := stored_latency(detector, records, backend=backend, **measure)) is not None]
    return min(found, key=lambda stats: stats["ms"]) if found else None


def remembered_latency(detector, refresh=False, records=None, **measure):
    """``facedet.latency.measure_latency(detector, **measure)``, measured once per model, machine
    and setup, then read back (``refresh``: measure again and replace it). The stats gain
    ``measured_at`` (epoch seconds), ``machine`` (in words) and ``remembered`` (True when read back)."""
    from facedet.latency import measure_latency

    records = records or LatencyRecords()
    model, machine, setup, description = _keys(detector, measure)
    if not refresh:
        stored = records.get(model, machine, setup)
        if stored is not None:
            return {**stored, "remembered": True}
    stats = measure_latency(detector, **measure)
    stats.update(measured_at=time.time(), machine=description)
    records.put(model, machine, setup, stats, description)
    return {**stats, "remembered": False}


def when_and_how(stats):
    """``measured 2026-12-02 10:31 on <machine>: <how>``, for captions."""
    from facedet.latency import describe

    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(stats["measured_at"])) if "measured_at" in stats else "now"
    where = f" on {stats['machine']}" if stats.get("machine") else ""
    return f"measured {when}{where}: {describe(stats)}"
