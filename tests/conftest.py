"""Shared test fixtures: the published checkpoints, the WIDER FACE ground truth, sample photos.

The reference data lives outside the project; CI (``.ci/run``) points these variables at it:
- ``FACEDET_WEIGHTS_DIR``: the authors' 22 checkpoints (``extd.pth``, ``eresfd-fpgm-10.pth`` ...);
- ``FACEDET_WIDER_GT``: the standard eval-tools ``.mat`` ground-truth files.
"""

import os
import sys
from pathlib import Path

import pytest

from facedet.assets import asset_path

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"


def _env_dir(name):
    value = os.environ.get(name)
    if not value or not Path(value).is_dir():
        pytest.fail(f"{name} must point at a directory (see .ci/run); got {value!r}")
    return Path(value)


@pytest.fixture(autouse=True)
def fresh_latency_records(tmp_path, monkeypatch):
    """Every test starts with no remembered latency (facedet.latency_records)."""
    monkeypatch.setenv("FACEDET_LATENCY_RECORDS", str(tmp_path / "latency.sqlite"))


@pytest.fixture(autouse=True)
def no_background_detections_left_behind():
    """The Compare page detects the models likely to be chosen next in the background
    (``app_support.detections``): stop that after each test, so that it never runs into the next."""
    yield
    detections = sys.modules.get("app_support.detections")
    if detections is not None:
        detections.stop_warming()


@pytest.fixture(scope="session")
def weights_dir():
    return _env_dir("FACEDET_WEIGHTS_DIR")


@pytest.fixture(scope="session")
def wider_gt_dir():
    return _env_dir("FACEDET_WIDER_GT")


@pytest.fixture(scope="session")
def assets_dir():
    return asset_path()


@pytest.fixture(scope="session")
def fixtures_dir():
    return FIXTURES
