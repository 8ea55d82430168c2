"""Inference backends: the folded eager network and ONNX Runtime give the model's outputs."""

import copy

import cv2
import numpy as np
import onnx
import pytest
import torch

from facedet import backends
from facedet.errors import FacedetError
from facedet.weights import load_model
from pruning.compact import compact_model


def _image(height=200, width=264):
    return torch.randn(1, 3, height, width, generator=torch.Generator().manual_seed(1)) * 60


def _outputs(network, x):
    with torch.inference_mode():
        return [t.float() for t in network(x)]


@pytest.mark.parametrize("name", ["eresfd", "extd", "eresfd-fpgm-50", "extd-l1-30"])
def test_both_backends_reproduce_the_model_within_1e_4(name, weights_dir, monkeypatch):
    monkeypatch.setenv("FACEDET_WEIGHTS_DIR", str(weights_dir))
    model, _ = load_model(name)
    models = {"masked": model}
    if "-" in name:
        for coupled in ("narrow", "keep"):
            models[f"compact {coupled}"] = compact_model(model, coupled=coupled).model.eval()
    x = _image()
    expected = _outputs(model, x)
    for label, m in models.items():
        for network in (backends.TorchNetwork(m, torch.device("cpu")), backends.OnnxNetwork(m, threads=1)):
            got = _outputs(network, x)
            for a, b in zip(got, expected):
                assert a.shape == b.shape
                assert (a - b).abs().max() < 1e-4, (name, label, network.name)


def test_folding_removes_every_plain_batchnorm_and_leaves_the_model_alone(weights_dir, monkeypatch):
    monkeypatch.setenv("FACEDET_WEIGHTS_DIR", str(weights_dir))
    model, _ = load_model("eresfd")
    before = sum(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    network = backends.TorchNetwork(model, torch.device("cpu"))
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules()) == before > 0
    assert not any(type(m) is torch.nn.BatchNorm2d for m in network.model.modules())


def test_extd_runs_its_prelus_as_leaky_relus_with_identical_outputs(weights_dir, assets_dir, monkeypatch):
    monkeypatch.setenv("FACEDET_WEIGHTS_DIR", str(weights_dir))
    model, _ = load_model("extd")
    photo = cv2.imread(str(assets_dir / "photos" / "holdout" / "office-group-13.jpg"))
    x = torch.from_numpy(cv2.resize(photo, (320, 240))[..., ::-1] - np.float32([123, 117, 104]))
    x = x.permute(2, 0, 1)[None].contiguous()
    leaky = backends.leaky_prelus(copy.deepcopy(model))
    assert sum(type(m) is torch.nn.PReLU for m in model.modules()) == 10  # the model itself is untouched
    assert not any(isinstance(m, torch.nn.PReLU) for m in leaky.modules())
    with torch.inference_mode():
        for a, b in zip(model(x), leaky(x)):
            assert torch.equal(a, b)
    # What ONNX Runtime is given: LeakyRelu nodes, which it fuses into the convolutions before them.
    ops = {node.op_type for node in onnx.load_from_string(backends.OnnxNetwork(model, threads=1).onnx).graph.node}
    assert "LeakyRelu" in ops and "PRelu" not in ops


def test_a_pruned_model_runs_on_onnx_in_its_fastest_form_measured_once(weights_dir, monkeypatch):
    monkeypatch.setenv("FACEDET_WEIGHTS_DIR", str(weights_dir))
    monkeypatch.setattr(backends, "_ONNX_FORM", {})
    model, _ = load_model("eresfd-fpgm-50")
    timed = []
    fastest = backends._fastest
    monkeypatch.setattr(backends, "_fastest", lambda candidates, runs=5: timed.extend(candidates) or fastest(candidates, runs))
    network = backends.onnx_network(model, "eresfd", threads=1)
    assert sorted(timed) == sorted(["as loaded", *backends.COMPACT_FORMS])  # every form timed
    assert network.form in timed
    x = _image()
    for a, b in zip(_outputs(network, x), _outputs(model, x)):
        assert (a - b).abs().max() < 1e-4
    again = backends.onnx_network(model, "eresfd", threads=1)
    assert again.form == network.form and len(timed) == 3  # not timed again
    # A dense model has nothing to compact: it runs as loaded, untimed.
    dense, _ = load_model("eresfd")
    assert backends.onnx_network(dense, "eresfd", threads=1).form == "as loaded" and len(timed) == 3
    # The keep form leaves EResFD's coupled channels (residual streams, pyramid) whole: no ScatterBatchNorm.
    from facedet.models.scatter import ScatterBatchNorm

    kept, narrow = compact_model(model, coupled="keep"), compact_model(model)
    assert kept.narrowed_filters == 0 and not any(isinstance(m, ScatterBatchNorm) for m in kept.model.modules())
    assert 0 < kept.removed_channels < narrow.removed_channels
    assert any(isinstance(m, ScatterBatchNorm) for m in narrow.model.modules())


def test_auto_measures_once_and_reuses_its_choice(weights_dir, monkeypatch):
    monkeypatch.setenv("FACEDET_WEIGHTS_DIR", str(weights_dir))
    monkeypatch.setattr(backends, "_AUTO_CHOICE", {})
    model, _ = load_model("eresfd-fpgm-30")
    first = backends.make_network(model, "auto", torch.device("cpu"), "eresfd")
    assert first.name in ("torch", "onnx") and list(backends._AUTO_CHOICE.values()) == [first.name]
    monkeypatch.setattr(backends, "_fastest", lambda *a, **k: pytest.fail("measured twice"))
    assert backends.make_network(model, "auto", torch.device("cpu"), "eresfd").name == first.name


def test_bad_backend_choices_are_one_line_errors():
    model = torch.nn.Conv2d(3, 3, 1)
    with pytest.raises(FacedetError, match="unknown backend 'tensorrt'"):
        backends.make_network(model, "tensorrt")
    with pytest.raises(FacedetError, match="runs on the CPU"):
        backends.make_network(model, "onnx", torch.device("cuda"))


def test_a_watched_detection_reports_progress_and_can_be_cancelled_midway(weights_dir, assets_dir, monkeypatch):
    """Progress rises to 1 as the network runs and changes nothing; a cancel stops it within the
    network (at a convolution), not after it; unwatched calls leave no hooks behind."""
    from facedet.detector import load_detector
    from facedet.errors import DetectionCancelled
    from facedet.images import read_image

    monkeypatch.setenv("FACEDET_WEIGHTS_DIR", str(weights_dir))
    detector = load_detector("extd", device="cpu", backend="torch")
    photo = read_image(assets_dir / "grace_hopper.jpg")
    fractions = []
    watched = detector.detect(photo, scale=0.5, progress=fractions.append)
    assert torch.equal(torch.from_numpy(watched), torch.from_numpy(detector.detect(photo, scale=0.5)))
    assert len(fractions) > 20 and fractions == sorted(fractions) and fractions[-1] == 1.0
    assert fractions[-2] > 0.8  # the multiply-adds counted at 128 px predict this size's
    assert not any(m._forward_hooks for m in detector.network.model.modules())

    checks = []

    def cancel_at_the_tenth_check():
        checks.append(1)
        return len(checks) >= 10

    with pytest.raises(DetectionCancelled):
        detector.detect(photo, scale=0.5, cancel=cancel_at_the_tenth_check)
    assert len(checks) == 10 < len(fractions) - 1  # stopped at the tenth convolution of many
    assert not any(m._forward_hooks for m in detector.network.model.modules())
