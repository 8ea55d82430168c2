"""Our detectors against the authors' implementation: frozen outputs in fixtures/upstream/.

For every published checkpoint and photo, at the same scale as upstream, the confident detections
must be the same boxes (within a pixel) with the same scores (within 1e-3). See
fixtures/upstream/README.md for how the reference numbers were produced.
"""

import json

import numpy as np
import pytest

from facedet.detector import load_detector
from facedet.images import read_image
from facedet.weights import PRETRAINED

CONFIDENT = 0.3  # compare one to one above this score (the tail near 0.1 depends on near-ties)
BOX_TOLERANCE = 1.0  # pixels
SCORE_TOLERANCE = 1e-3


def _runs_to_check(fixture, arch, name):
    # EXTD at its automatic scale (~2 megapixels) is slow on a CPU: check that scale on the dense
    # model, and every checkpoint at the fixed scale 0.5.
    for run in fixture["runs"]:
        if arch == "extd" and name != "extd" and run["scale"] != 0.5:
            continue
        yield run


def _assert_same_detections(ours, theirs, label):
    ours_confident = ours[ours[:, 4] >= CONFIDENT + SCORE_TOLERANCE]
    theirs_confident = theirs[theirs[:, 4] >= CONFIDENT]
    assert len(theirs_confident) > 0 or label.startswith("eresfd-l1-50"), f"{label}: fixture has no confident face"
    for det in theirs_confident:
        close = np.abs(ours[:, :4] - det[:4]).max(axis=1) <= BOX_TOLERANCE
        assert close.any(), f"{label}: upstream box {det.tolist()} not found"
        assert np.abs(ours[close, 4] - det[4]).min() <= SCORE_TOLERANCE, f"{label}: score of {det.tolist()}"
    for det in ours_confident:
        close = np.abs(theirs[:, :4] - det[:4]).max(axis=1) <= BOX_TOLERANCE
        assert close.any(), f"{label}: our box {det.tolist()} is not in the upstream output"


@pytest.mark.parametrize("backend", ["torch", "onnx"])
@pytest.mark.parametrize("name", sorted(PRETRAINED))
def test_detections_match_the_authors_implementation(name, backend, weights_dir, assets_dir, fixtures_dir, monkeypatch):
    path = fixtures_dir / "upstream" / f"{name}.json"
    if not path.exists():
        pytest.fail(f"missing reference fixture {path.name}")
    monkeypatch.setenv("FACEDET_WEIGHTS_DIR", str(weights_dir))
    fixture = json.loads(path.read_text())
    detector = load_detector(name, device="cpu", backend=backend)
    assert detector.backend == backend
    images = {}
    for run in _runs_to_check(fixture, detector.arch, name):
        image = images.setdefault(run["image"], read_image(assets_dir / run["image"]))
        ours = detector.detect(image, scale=run["scale"], threshold=fixture["score_floor"])
        theirs = np.asarray(run["detections"], dtype=np.float64).reshape(-1, 5)
        label = f"{name} {run['image']} @ {run['scale']:.3f}"
        assert detector.preprocess(image, run["scale"]).shape[2:] == tuple(run["input_hw"]), label
        _assert_same_detections(ours, theirs, label)


def test_automatic_scale_is_the_demo_scale(weights_dir, assets_dir, fixtures_dir, monkeypatch):
    monkeypatch.setenv("FACEDET_WEIGHTS_DIR", str(weights_dir))
    for arch in ("extd", "eresfd"):
        fixture = json.loads((fixtures_dir / "upstream" / f"{arch}.json").read_text())
        detector = load_detector(arch)
        for run in fixture["runs"]:
            if run["scale"] != 0.5:
                h, w = read_image(assets_dir / run["image"]).shape[:2]
                assert detector.auto_scale(h, w) == pytest.approx(run["scale"], rel=1e-12)
