"""B-FPGM's released checkpoints (Kaparinos & Mezaris, WACVW 2025): registry, loading, alias keys."""

import pytest
import torch

from facedet.detector import load_detector
from facedet.images import read_image
from facedet.models import DETECTORS
from facedet.params import count_parameters
from facedet.weights import BFPGM, PRETRAINED, WeightsError, load_checkpoint, load_model, published

BFPGM_NAMES = ["bfpgm-eresfd", *(f"bfpgm-eresfd-{r}" for r in (10, 20, 30, 40, 50, 60)), "bfpgm-extd", "bfpgm-extd-20"]
DENSE_PARAMETERS = {"extd": 162_352, "eresfd": 92_208}


@pytest.fixture(autouse=True)
def _published_weights(weights_dir, monkeypatch):
    monkeypatch.setenv("FACEDET_WEIGHTS_DIR", str(weights_dir))


def test_registry_names_and_families():
    assert sorted(BFPGM) == sorted(BFPGM_NAMES)
    assert all(e.family == "bfpgm" for e in BFPGM.values()) and all(e.family == "paper" for e in PRETRAINED.values())
    assert published("paper") is PRETRAINED and published("bfpgm") is BFPGM
    assert set(published()) == set(PRETRAINED) | set(BFPGM) and not set(PRETRAINED) & set(BFPGM)
    assert BFPGM["bfpgm-eresfd-30"].group_rates == (0.213, 0.045, 0.305, 0.471, 0.321, 0.448)
    assert BFPGM["bfpgm-eresfd-30"].rate == 0.3 and BFPGM["bfpgm-eresfd"].group_rates is None
    assert "B-FPGM" in BFPGM["bfpgm-extd"].license and BFPGM["bfpgm-extd"].license != PRETRAINED["extd"].license


def test_the_paper_checkpoints_are_still_the_22_that_upstream_agreement_iterates(fixtures_dir):
    import test_upstream_agreement

    assert test_upstream_agreement.PRETRAINED is PRETRAINED and len(PRETRAINED) == 22
    marks = test_upstream_agreement.test_detections_match_the_authors_implementation.pytestmark
    names = next(m.args[1] for m in marks if m.name == "parametrize" and m.args[0] == "name")
    assert sorted(names) == sorted(PRETRAINED)
    assert all((fixtures_dir / "upstream" / f"{name}.json").is_file() for name in names)


@pytest.mark.parametrize("name", BFPGM_NAMES)
def test_every_bfpgm_checkpoint_loads_strictly_with_the_published_nonzero_count(name):
    model, ckpt = load_model(name)  # load_state_dict(strict=True)
    entry = BFPGM[name]
    assert ckpt.arch == entry.arch and ckpt.sha256 == entry.sha256
    counts = count_parameters(model)
    assert counts.total == DENSE_PARAMETERS[entry.arch]
    assert counts.nonzero == entry.nonzero_parameters


def test_the_eresfd_aliases_are_the_tensors_they_name(weights_dir):
    # The alias table is read from the files: every key it drops shares its storage with its canonical key.
    aliases = DETECTORS["eresfd"].key_aliases
    for name in (n for n in BFPGM_NAMES if BFPGM[n].arch == "eresfd"):
        raw = torch.load(weights_dir / f"{name}.pth", map_location="cpu", weights_only=True)
        kept = load_checkpoint(name).state_dict
        dropped = set(raw) - set(kept)
        assert len(raw) == 920 and len(kept) == 475 and len(dropped) == 445, name
        for key in dropped:
            alias, canonical = next((a, c) for a, c in aliases if key.startswith(a))
            twin = raw[canonical + key[len(alias):]]
            assert twin.untyped_storage().data_ptr() == raw[key].untyped_storage().data_ptr(), key


def test_an_alias_with_different_values_is_refused_in_one_line(weights_dir, tmp_path):
    state_dict = torch.load(weights_dir / "bfpgm-eresfd-30.pth", map_location="cpu", weights_only=True)
    state_dict = {k: v.clone() for k, v in state_dict.items()}  # no shared storage: each key its own tensor
    state_dict["loc3.weight"] += 0.5
    path = tmp_path / "tampered.pth"
    torch.save(state_dict, path)
    with pytest.raises(WeightsError) as err:
        load_checkpoint(path)
    message = str(err.value)
    assert "\n" not in message and "loc3.weight" in message and "loc.3.weight" in message


def test_an_alias_of_another_shape_is_refused(weights_dir, tmp_path):
    state_dict = torch.load(weights_dir / "bfpgm-eresfd.pth", map_location="cpu", weights_only=True)
    state_dict = {k: v.clone() for k, v in state_dict.items()}
    key = next(k for k in state_dict if k.startswith("base.m0.layer6.") and k.endswith(".weight"))
    state_dict[key] = state_dict[key].flatten()[:1].clone()
    path = tmp_path / "reshaped.pth"
    torch.save(state_dict, path)
    with pytest.raises(WeightsError, match=f"{key} as a second copy of base.m0.fpn."):
        load_checkpoint(path)


def test_the_extd_original_wrapper_is_unwrapped(weights_dir):
    raw = torch.load(weights_dir / "bfpgm-extd.pth", map_location="cpu", weights_only=True)
    assert set(raw) == {"epoch", "weight"} and raw["epoch"] == 300
    assert set(load_checkpoint("bfpgm-extd").state_dict) == set(raw["weight"])


@pytest.mark.parametrize("name", ["bfpgm-eresfd", "bfpgm-extd"])
def test_the_dense_bfpgm_models_detect_faces(name, assets_dir):
    detector = load_detector(name, device="cpu")
    hopper = detector.detect(read_image(assets_dir / "photos" / "train" / "grace_hopper.jpg"), threshold=0.5)
    assert len(hopper) >= 1 and hopper[:, 4].max() > 0.9, name
    group = detector.detect(read_image(assets_dir / "photos" / "holdout" / "office-group-13.jpg"), threshold=0.5)
    assert len(group) >= 10, (name, len(group))
