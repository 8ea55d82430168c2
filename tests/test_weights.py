"""Resolving, downloading, verifying and safely loading checkpoints."""

import dataclasses
import hashlib
from pathlib import Path

import pytest
import torch

from facedet import weights
from facedet.errors import WeightsError
from facedet.models import create_model


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.delenv("FACEDET_WEIGHTS_DIR", raising=False)
    monkeypatch.setenv("FACEDET_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _local_entry(monkeypatch, weights_dir, name, **changes):
    """Point a registry entry at the file in weights_dir (a file:// URL: no network needed)."""
    entry = dataclasses.replace(weights.PRETRAINED[name], url=(weights_dir / f"{name}.pth").resolve().as_uri(), **changes)
    monkeypatch.setitem(weights.PRETRAINED, name, entry)
    return entry


def test_a_name_resolves_to_the_weights_dir_first(weights_dir, monkeypatch):
    monkeypatch.setenv("FACEDET_WEIGHTS_DIR", str(weights_dir))
    assert weights.resolve("eresfd-l1-30") == weights_dir / "eresfd-l1-30.pth"


def test_download_verifies_and_caches(weights_dir, cache, monkeypatch):
    _local_entry(monkeypatch, weights_dir, "extd-fpgm-20")
    path = weights.resolve("extd-fpgm-20", progress=False)
    assert path == cache / "extd-fpgm-20.pth"
    assert hashlib.sha256(path.read_bytes()).hexdigest() == weights.PRETRAINED["extd-fpgm-20"].sha256
    assert sorted(p.name for p in cache.iterdir()) == ["extd-fpgm-20.pth"]  # no temp files left
    # Second time: from the cache, even with the source gone.
    monkeypatch.setitem(weights.PRETRAINED, "extd-fpgm-20",
                        dataclasses.replace(weights.PRETRAINED["extd-fpgm-20"], url="http://127.0.0.1:9/x.pth"))
    assert weights.resolve("extd-fpgm-20") == path


def test_a_corrupt_download_is_rejected_and_not_kept(weights_dir, cache, monkeypatch):
    _local_entry(monkeypatch, weights_dir, "eresfd", sha256="0" * 64)
    with pytest.raises(WeightsError, match="sha256"):
        weights.resolve("eresfd", progress=False)
    assert not any(cache.iterdir())


def test_offline_without_a_copy_names_the_url_and_the_variable(cache, monkeypatch):
    entry = dataclasses.replace(weights.PRETRAINED["extd"], url="http://127.0.0.1:9/sfd_face.pth")
    monkeypatch.setitem(weights.PRETRAINED, "extd", entry)
    with pytest.raises(WeightsError) as err:
        weights.resolve("extd", progress=False)
    message = str(err.value)
    assert "http://127.0.0.1:9/sfd_face.pth" in message and "FACEDET_WEIGHTS_DIR" in message
    assert "\n" not in message


def test_a_tampered_local_copy_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("FACEDET_WEIGHTS_DIR", str(tmp_path))
    (tmp_path / "eresfd.pth").write_bytes(b"PK\x03\x04not really")
    with pytest.raises(WeightsError, match="sha256"):
        weights.resolve("eresfd")


def test_unknown_names_and_missing_paths(tmp_path):
    with pytest.raises(WeightsError, match="unknown weights"):
        weights.resolve("resnet50")
    with pytest.raises(WeightsError, match="no such checkpoint"):
        weights.resolve(str(tmp_path / "missing.pth"))
    with pytest.raises(WeightsError, match="directory"):
        weights.resolve(str(tmp_path))


def test_bad_files_give_clear_errors(tmp_path, weights_dir, assets_dir):
    cases = {
        "empty.pth": b"",
        "photo.pth": (assets_dir / "grace_hopper.jpg").read_bytes(),
        "truncated.pth": (weights_dir / "extd.pth").read_bytes()[:5000],
    }
    expected = {"empty.pth": "empty", "photo.pth": "not a PyTorch checkpoint", "truncated.pth": "corrupt or truncated"}
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(WeightsError, match=expected[name]):
            weights.load_checkpoint(tmp_path / name)


class _Payload:
    def __reduce__(self):
        return (Path.touch, (Path(_Payload.marker),))


def test_a_malicious_checkpoint_is_refused_without_running_its_code(tmp_path):
    _Payload.marker = str(tmp_path / "pwned")
    torch.save({"base.0.0.weight": _Payload()}, tmp_path / "evil.pth")
    with pytest.raises(WeightsError, match="unsafe"):
        weights.load_checkpoint(tmp_path / "evil.pth")
    assert not (tmp_path / "pwned").exists()


def test_wrong_architecture_and_foreign_state_dicts(tmp_path, weights_dir):
    with pytest.raises(WeightsError, match="looks like an EResFD checkpoint, not EXTD"):
        weights.load_checkpoint(weights_dir / "eresfd.pth", arch="extd")
    torch.save({"fc.weight": torch.zeros(3, 3)}, tmp_path / "other.pth")
    with pytest.raises(WeightsError, match="not an EXTD or EResFD checkpoint"):
        weights.load_checkpoint(tmp_path / "other.pth")
    sd = torch.load(weights_dir / "extd.pth", weights_only=True, map_location="cpu")
    del sd["loc.0.weight"]
    torch.save(sd, tmp_path / "partial.pth")
    with pytest.raises(WeightsError, match="1 missing .*loc.0.weight"):
        weights.load_checkpoint(tmp_path / "partial.pth")
    sd = torch.load(weights_dir / "extd.pth", weights_only=True, map_location="cpu")
    sd["loc.0.weight"] = torch.zeros(4, 32, 3, 3)
    torch.save(sd, tmp_path / "reshaped.pth")
    with pytest.raises(WeightsError, match="size mismatch"):
        weights.load_model(tmp_path / "reshaped.pth")


def test_saved_checkpoints_describe_themselves_and_reload(tmp_path, weights_dir):
    model, _ = weights.load_model(weights_dir / "eresfd-fpgm-30.pth")
    path = weights.save_checkpoint(tmp_path / "sub" / "mine.pth", model, "eresfd", provenance={"from": "eresfd-fpgm-30"})
    assert [p.name for p in path.parent.iterdir()] == ["mine.pth"]
    again, ckpt = weights.load_model(path)
    assert ckpt.arch == "eresfd" and ckpt.meta["provenance"] == {"from": "eresfd-fpgm-30"}
    x = torch.randn(1, 3, 96, 128)
    with torch.no_grad():
        for a, b in zip(model(x), again(x)):
            assert torch.equal(a, b)


def test_a_compact_checkpoint_loads_with_its_own_channel_widths(tmp_path):
    # Narrow one depthwise-separable stage of EXTD by hand (as a compaction would) and reload it.
    model = create_model("extd").eval()
    sd = model.state_dict()
    keep = torch.arange(0, 128, 2)  # half the expanded channels of base.2
    for key in list(sd):
        if key.startswith("base.2.conv.") and key.split(".")[3] in {"0", "1", "2", "3", "4"}:
            tensor = sd[key]
            if key == "base.2.conv.2.weight":
                continue  # PReLU with one shared slope
            sd[key] = tensor[keep] if tensor.dim() and tensor.shape[0] == 128 else tensor
    sd["base.2.conv.6.weight"] = sd["base.2.conv.6.weight"][:, keep]
    narrowed = create_model("extd")
    from facedet.models import resize_to_state_dict

    resize_to_state_dict(narrowed, sd)
    narrowed.load_state_dict(sd, strict=True)
    weights.save_checkpoint(tmp_path / "compact.pth", narrowed, "extd", compact=True)
    reloaded, ckpt = weights.load_model(tmp_path / "compact.pth")
    assert ckpt.compact and reloaded.base[2].conv[3].groups == 64
    with torch.no_grad():
        x = torch.randn(1, 3, 64, 64)
        assert torch.equal(reloaded(x)[1], narrowed.eval()(x)[1])


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_weights_are_refused_naming_the_tensor(tmp_path, bad):
    model = create_model("eresfd")
    state = model.state_dict()
    name = next(k for k, v in state.items() if v.is_floating_point() and k.endswith("weight"))
    state[name].view(-1)[3] = bad
    torch.save(state, tmp_path / "bad.pth")
    with pytest.raises(WeightsError, match=f"NaN or infinite values \\(first in {name}\\)"):
        weights.load_checkpoint(tmp_path / "bad.pth")


def test_subnormal_weights_are_flushed_for_inference_only_without_changing_outputs(weights_dir, monkeypatch):
    from facedet.backends import TorchNetwork
    from facedet.params import count_parameters

    monkeypatch.setenv("FACEDET_WEIGHTS_DIR", str(weights_dir))
    tiny = torch.finfo(torch.float32).tiny

    def subnormals(module):
        return sum(int(((t.abs() < tiny) & (t != 0)).sum()) for t in module.state_dict().values() if t.is_floating_point())

    model, _ = weights.load_model("eresfd")
    assert subnormals(model) > 1000  # the published file has thousands
    network = TorchNetwork(model, torch.device("cpu"))
    assert subnormals(network.model) == 0
    assert count_parameters(model).nonzero == 92_208  # the loaded model keeps them: counts as published
    x = torch.randn(1, 3, 96, 128, generator=torch.Generator().manual_seed(0)) * 60
    with torch.no_grad():
        for a, b in zip(network(x), model(x)):
            assert torch.allclose(a, b, atol=1e-4, rtol=0)
