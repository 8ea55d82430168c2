"""The architectures against the published checkpoints: keys, shapes, parameter counts, outputs."""

import pytest
import torch

from facedet.models import ARCHITECTURES, create_model
from facedet.params import count_parameters
from facedet.priors import feature_map_sizes, make_priors
from facedet.weights import PRETRAINED, identify, load_model

PAPER_DENSE_PARAMETERS = {"extd": 162_352, "eresfd": 92_208}


@pytest.mark.parametrize("name", sorted(PRETRAINED))
def test_every_published_checkpoint_loads_strictly(name, weights_dir, monkeypatch):
    monkeypatch.setenv("FACEDET_WEIGHTS_DIR", str(weights_dir))
    model, ckpt = load_model(name)
    entry = PRETRAINED[name]
    assert ckpt.arch == entry.arch
    counts = count_parameters(model)
    assert counts.total == PAPER_DENSE_PARAMETERS[entry.arch]
    if entry.rate:
        # Pruned filters are stored as zeros: fewer nonzero parameters, more with higher rates.
        assert counts.nonzero < counts.total
        assert counts.sparsity == pytest.approx(entry.rate, abs=0.12)
    else:
        assert counts.nonzero == counts.total


def test_pruned_checkpoints_get_sparser_with_the_rate(weights_dir, monkeypatch):
    monkeypatch.setenv("FACEDET_WEIGHTS_DIR", str(weights_dir))
    for arch in ARCHITECTURES:
        for criterion in ("fpgm", "l1"):
            nonzero = [count_parameters(load_model(f"{arch}-{criterion}-{r}")[0]).nonzero for r in (10, 20, 30, 40, 50)]
            assert nonzero == sorted(nonzero, reverse=True), (arch, criterion, nonzero)


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_state_dict_keys_and_shapes_match_the_published_listing(arch, weights_dir):
    listing = {}
    for line in (weights_dir / f"{arch}.keys.txt").read_text().splitlines():
        key, shape, _dtype = line.split("\t")
        listing[key] = tuple(int(v) for v in shape.strip("()").split(",") if v.strip())
    ours = {k: tuple(v.shape) for k, v in create_model(arch).state_dict().items()}
    assert ours == listing


@pytest.mark.parametrize("arch", ARCHITECTURES)
@pytest.mark.parametrize("height,width", [(640, 640), (480, 640), (333, 517), (100, 61)])
def test_outputs_line_up_with_the_priors(arch, height, width):
    model = create_model(arch).eval()
    with torch.no_grad():
        loc, conf = model(torch.randn(2, 3, height, width))
    priors = make_priors(height, width)
    assert loc.shape == (2, priors.shape[0], 4)
    assert conf.shape == (2, priors.shape[0], 2)
    assert priors.shape[0] == sum(h * w for h, w in feature_map_sizes(height, width))


def test_priors_are_square_anchors_centred_on_their_cells():
    priors = make_priors(640, 640)
    assert priors.shape == (160 * 160 + 80 * 80 + 40 * 40 + 20 * 20 + 10 * 10 + 5 * 5, 4)
    first = priors[0].tolist()
    assert first == pytest.approx([2 / 640, 2 / 640, 16 / 640, 16 / 640])
    last = priors[-1].tolist()
    assert last == pytest.approx([(4.5 * 128) / 640, (4.5 * 128) / 640, 512 / 640, 512 / 640])
    tall = make_priors(640, 640, aspect_ratio=1.5)
    assert torch.allclose(tall[:, 3], priors[:, 3] * 1.5)


def test_architecture_is_recognised_from_the_keys(weights_dir):
    for arch in ARCHITECTURES:
        sd = torch.load(weights_dir / f"{arch}.pth", map_location="cpu", weights_only=True)
        assert identify(sd) == (arch, 1.0)
