"""Latency remembered per model, machine and setup (facedet.latency_records), on the published models."""

import sqlite3

import pytest

from facedet.detector import load_detector
from facedet.latency_records import (LatencyRecords, model_fingerprint, remembered_latency, stored_auto_latency,
                                     stored_latency)


@pytest.fixture(scope="module")
def detectors(weights_dir):
    return load_detector("eresfd", backend="torch"), load_detector("eresfd-fpgm-30", backend="torch")


def test_measured_once_then_read_back(detectors, tmp_path):
    dense, pruned = detectors
    records = LatencyRecords(tmp_path / "latency.sqlite")
    assert stored_latency(dense, records=records) is None
    first = remembered_latency(dense, records=records, runs=3, warmup=1)
    assert not first["remembered"] and first["ms"] > 0 and first["machine"]
    again = remembered_latency(dense, records=records, runs=3, warmup=1)
    assert again["remembered"] and again["ms"] == first["ms"] and again["measured_at"] == first["measured_at"]
    # Another model (same architecture, other weights) and another setup are other measurements.
    assert stored_latency(pruned, records=records) is None
    assert stored_latency(dense, records=records, threshold=0.3) is None
    fresh = remembered_latency(dense, records=records, refresh=True, runs=3, warmup=1)
    assert not fresh["remembered"] and fresh["measured_at"] >= first["measured_at"]
    assert stored_latency(dense, records=records)["measured_at"] == fresh["measured_at"]


def test_the_auto_figure_is_found_without_building_the_auto_backend(detectors, tmp_path):
    # The app shows what backend="auto" measured from the detector it already has (torch): the
    # faster of the remembered torch and onnx figures of the same weights.
    dense, _ = detectors
    records = LatencyRecords(tmp_path / "latency.sqlite")
    assert stored_auto_latency(dense, records=records) is None
    on_onnx = remembered_latency(load_detector("eresfd", backend="onnx"), records=records, runs=2, warmup=1)
    assert on_onnx["backend"] == "onnx" and stored_latency(dense, records=records) is None
    assert stored_auto_latency(dense, records=records)["ms"] == on_onnx["ms"]
    on_torch = remembered_latency(dense, records=records, runs=2, warmup=1)
    assert stored_auto_latency(dense, records=records)["ms"] == min(on_torch["ms"], on_onnx["ms"])


def test_fingerprint_follows_the_weights(detectors, weights_dir):
    dense, pruned = detectors
    assert model_fingerprint(dense) == model_fingerprint(load_detector("eresfd", backend="torch"))
    assert model_fingerprint(dense) != model_fingerprint(pruned)


def test_unusable_records_still_measure(detectors, tmp_path):
    """A damaged or unwritable file is a cache miss, never an error."""
    dense, _ = detectors
    damaged = tmp_path / "latency.sqlite"
    damaged.write_bytes(b"not a database" * 100)
    stats = remembered_latency(dense, records=LatencyRecords(damaged), runs=2, warmup=0)
    assert stats["ms"] > 0 and not stats["remembered"]
    blocked = tmp_path / "file"
    blocked.write_text("x")
    stats = remembered_latency(dense, records=LatencyRecords(blocked / "latency.sqlite"), runs=2, warmup=0)
    assert stats["ms"] > 0
    with pytest.raises(sqlite3.DatabaseError):
        sqlite3.connect(damaged).execute("SELECT 1 FROM latency")  # left as it was
