"""Inference backends: the folded eager network and ONNX Runtime give the model's outputs."""

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
        models["compact"] = compact_model(model).model.eval()
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


def test_auto_measures_once_and_reuses_its_choice(weights_dir, monkeypatch):
    monkeypatch.setenv("FACEDET_WEIGHTS_DIR", str(weights_dir))
    monkeypatch.setattr(backends, "_AUTO_CHOICE", {})
    model, _ = load_model("eresfd-fpgm-30")
    first = backends.make_network(model, "auto", torch.device("cpu"), "eresfd")
    assert first.name in ("torch", "onnx") and list(backends._AUTO_CHOICE.values()) == [first.name]
    monkeypatch.setattr(backends, "_median_ms", lambda *a, **k: pytest.fail("measured twice"))
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
