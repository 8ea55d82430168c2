"""Compaction: physically smaller models with the masked model's outputs, loadable by facedet,
exportable to ONNX and runnable with ONNX Runtime."""

import copy

import numpy as np
import pytest
import torch

from facedet.detector import Detector
from facedet.images import read_image
from facedet.params import count_parameters
from facedet.weights import load_model, save_checkpoint
from pruning import compact_model, export_onnx, one_shot_prune
from pruning.compact import max_output_difference
from pruning.costs import conv_flops
from pruning.deploy import onnx_session, run_onnx
from pruning_helpers import one_thread  # noqa: F401  (autouse fixture)



@pytest.fixture(scope="module")
def photo(assets_dir):
    return read_image(assets_dir / "group.jpg")


@pytest.fixture(scope="module")
def published_fpgm50(weights_dir):
    model, _ = load_model(weights_dir / "eresfd-fpgm-50.pth")
    return model, compact_model(model)


def _network_input(image, size=(320, 480)):
    import cv2

    resized = cv2.resize(image, size[::-1], interpolation=cv2.INTER_AREA).astype(np.float32)
    return torch.from_numpy(resized - np.array([123.0, 117.0, 104.0], np.float32)).permute(2, 0, 1)[None]


def test_published_eresfd_fpgm50_compacts_exactly(published_fpgm50, photo):
    masked, result = published_fpgm50
    compact = result.model
    before, after = count_parameters(masked), count_parameters(compact)
    assert result.removed_channels > 150
    assert after.total < 0.6 * before.total
    # Fewer parameters than the masked model's nonzero ones: the pruned filters inside coupled
    # channels are gone too (pruning.narrow), not just stored as zeros.
    assert after.total < before.nonzero
    assert result.narrowed_filters > 0
    assert conv_flops(compact) < 0.6 * conv_flops(masked)
    assert result.max_abs_diff < 1e-4
    with torch.no_grad():
        x = _network_input(photo)
        for a, b in zip(masked(x), compact(x)):
            assert torch.allclose(a, b, atol=1e-4, rtol=0)


def test_coupled_masks_compact_below_the_masked_nonzero_count(weights_dir):
    # Torch-Pruning's L2 criterion scores coupled layers together, so whole channels die and
    # compaction can drop them everywhere: the compact model is smaller than the masked one's
    # nonzero count.
    model, _ = load_model(weights_dir / "eresfd.pth")
    one_shot_prune(model, "l2", 0.5)
    result = compact_model(model)
    assert count_parameters(result.model).total < count_parameters(model).nonzero
    assert max_output_difference(model, result.model) < 1e-4


def test_extd_compaction_keeps_outputs_through_the_shared_backbone(weights_dir):
    model, _ = load_model(weights_dir / "extd.pth")
    one_shot_prune(model, "fpgm", 0.3)
    result = compact_model(model)
    assert count_parameters(result.model).total < count_parameters(model).total - 20_000
    assert max_output_difference(model, result.model, sizes=((96, 128), (131, 97))) < 1e-4


def test_a_dense_model_stays_whole_unless_it_has_dead_filters(weights_dir):
    extd, _ = load_model(weights_dir / "extd.pth")
    result = compact_model(extd)
    assert result.removed_channels == 0
    assert count_parameters(result.model).total == count_parameters(extd).total
    # The published dense EResFD has 104 filters whose weights weight decay drove below 1e-20:
    # numerically dead, so compaction removes their channels without changing the outputs.
    eresfd, _ = load_model(weights_dir / "eresfd.pth")
    dead = sum(int((m.weight.detach().flatten(1).abs().amax(1) < 1e-20).sum())
               for m in eresfd.modules() if isinstance(m, torch.nn.Conv2d))
    assert dead == 104
    result = compact_model(eresfd)
    assert 0 < result.removed_channels <= dead
    assert result.max_abs_diff < 1e-4


def test_compact_checkpoint_loads_in_facedet_and_detects_the_same_faces(published_fpgm50, photo, tmp_path):
    masked, result = published_fpgm50
    path = save_checkpoint(tmp_path / "compact.pth", result.model, "eresfd", compact=True,
                           provenance={"source": "eresfd-fpgm-50"})
    loaded, ckpt = load_model(path)
    assert ckpt.compact and ckpt.arch == "eresfd"
    assert count_parameters(loaded).total == count_parameters(result.model).total
    faces_masked = Detector(copy.deepcopy(masked), "eresfd", device="cpu").detect(photo, threshold=0.5)
    faces_compact = Detector(loaded, "eresfd", device="cpu").detect(photo, threshold=0.5)
    assert len(faces_masked) >= 3
    assert faces_compact.shape == faces_masked.shape
    np.testing.assert_allclose(faces_compact, faces_masked, atol=1e-3)


def test_onnx_export_of_the_compact_model_runs_in_onnx_runtime(published_fpgm50, photo, tmp_path):
    _, result = published_fpgm50
    path = export_onnx(result.model, tmp_path / "compact.onnx")
    session = onnx_session(path)
    x = _network_input(photo, size=(256, 352))  # not the export size: height and width are dynamic
    loc, conf = run_onnx(session, x)
    with torch.no_grad():
        ref_loc, ref_conf = result.model(x)
    np.testing.assert_allclose(loc, ref_loc.numpy(), atol=1e-4)
    np.testing.assert_allclose(conf, ref_conf.numpy(), atol=1e-4)
