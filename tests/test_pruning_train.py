"""Soft filter pruning + fine-tuning on the generated sample set, on CPU: the loss goes down, the
masks end frozen at the requested rate, an interrupted run resumes to exactly the same result,
and everything is recorded in the results store."""

import json
import copy

import pytest
import torch

from facedet.params import count_parameters
from facedet.priors import make_priors
from facedet.weights import load_model
from pruning import ResultsStore, TrainConfig, one_shot_prune
from pruning.data import calibration_batch
from pruning.graph import prunable_convs
from pruning.loss import MultiBoxLoss
from pruning.masks import masks_from_lists, masks_of
from pruning.train import train
from pruning_helpers import one_thread  # noqa: F401  (autouse fixture)

RATE = 0.5


@pytest.fixture(scope="module", autouse=True)
def data_dir(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        folder = tmp_path_factory.mktemp("pruning_data")
        mp.setenv("PRUNING_DATA_DIR", str(folder))
        yield folder


def _config(weights_dir, **changes):
    settings = dict(detector="eresfd", criterion="fpgm", rate=RATE, weights=str(weights_dir / "eresfd.pth"),
                    epochs=2, finetune_epochs=1, prune_every=1, batch_size=2, crop_size=320, sample_images=8,
                    max_images=8, evaluate=False, threads=1)
    settings.update(changes)
    return TrainConfig.from_settings(**settings)


def _fixed_batch_loss(model):
    images, boxes = calibration_batch(size=320, images=8, seed=123)
    model.eval()
    with torch.no_grad():
        loc, conf = model(images)
        loss_loc, loss_conf = MultiBoxLoss()(loc, conf, make_priors(320, 320), boxes)
    return float(loss_loc + loss_conf)


@pytest.fixture(scope="module")
def finished_run(weights_dir, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("sfp_run")
    store = ResultsStore(run_dir.parent / "results.sqlite3")
    events = []
    result = train(_config(weights_dir, evaluate=True, eval_images=4), run_dir, store=store, progress=events.append)
    return result, store, events, run_dir


def test_a_short_sfp_run_lowers_the_loss_of_the_pruned_model(finished_run, weights_dir):
    result, _, _, _ = finished_run
    assert result.status == "finished"
    assert [h["phase"] for h in result.history] == ["sfp", "sfp", "finetune"]
    dense, _ = load_model(weights_dir / "eresfd.pth")
    one_shot = copy.deepcopy(dense)
    one_shot_prune(one_shot, "fpgm", RATE)
    assert _fixed_batch_loss(result.model) < 0.95 * _fixed_batch_loss(one_shot)


def test_the_run_ends_with_frozen_masks_at_the_requested_rate(finished_run):
    result, _, _, run_dir = finished_run
    state = torch.load(run_dir / "state.pth", weights_only=True)
    masks = masks_from_lists(state["masks"])
    model = result.model
    for name, conv in prunable_convs(model):
        assert int((~masks[name]).sum()) == int(conv.out_channels * RATE)
    # Every masked filter is still exactly zero after the fine-tuning epoch.
    found = masks_of(model)
    assert all(not bool((found[name] & ~keep).any()) for name, keep in masks.items())
    assert count_parameters(model).nonzero <= 47_284  # the one-shot count at 50 %
    saved, _ = load_model(run_dir / "model.pth")
    assert count_parameters(saved) == count_parameters(model)


def test_the_model_handed_out_is_in_the_default_memory_layout(finished_run):
    # Training runs channels-last on the CPU (faster there); what it hands out and saves is not.
    result, _, _, run_dir = finished_run
    weights = {name: p for name, p in result.model.named_parameters() if p.dim() == 4}
    assert any(p.shape[1] > 1 and p.shape[2] > 1 for p in weights.values())  # a layout that shows in the strides
    assert all(p.is_contiguous() for p in weights.values())
    saved, _ = load_model(run_dir / "model.pth")
    assert all(torch.equal(saved.state_dict()[name], p.detach()) for name, p in weights.items())


def test_the_run_is_recorded_with_its_figures(finished_run):
    result, store, events, run_dir = finished_run
    run = store.get_run(result.run_id)
    assert run["status"] == "finished"
    assert [e["epoch"] for e in run["epochs"]] == [0, 1, 2]
    assert [e["loss"] for e in run["epochs"]] == pytest.approx([h["loss"] for h in result.history])
    assert run["config"]["criterion"] == "fpgm" and run["rate"] == RATE
    assert run["code_revision"]
    assert run["parameters"] == 92_208 and run["nonzero_parameters"] == count_parameters(result.model).nonzero
    assert run["compact_parameters"] < run["parameters"] and run["compact_flops"] < run["flops"]
    assert all(run[k] is not None for k in ("ap_easy", "ap_medium", "ap_hard", "latency_ms", "compact_latency_ms",
                                            "network_ms", "compact_network_ms"))
    assert run["network_ms"] < run["latency_ms"] and "640x480" in run["latency_setup"]
    # What the APs were measured on, and the curves behind them (the area under each is its AP).
    from facedet.wider.curves import curve_ap, read_curves
    from pruning.results import ground_truth_dir

    assert run["eval_gt"] == str(ground_truth_dir(run["eval_root"]).resolve())
    curves = read_curves(store.run_curves(result.run_id))
    assert all(curve_ap(curves[s]) == curves[s].ap == run[f"ap_{s}"] for s in ("easy", "medium", "hard"))
    assert store.run_curves(result.run_id)["only_predicted"]  # eval_images=4: the first 4 images only
    compact, ckpt = load_model(run["compact_checkpoint"])
    assert ckpt.compact and count_parameters(compact).total == run["compact_parameters"]
    # Progress: every step with loss and ETA, every epoch, then the finishing stages.
    steps = [e for e in events if e.kind == "step"]
    assert len(steps) == 12 and all(e.loss > 0 and e.eta_s is not None for e in steps)
    assert steps[-1].eta_s == pytest.approx(0.0, abs=1e-6)
    assert [e.message for e in events if e.kind == "stage"] == ["measuring", "compacting", "evaluating",
                                                                "agreement with the teacher", "recording"]
    # Every run is also compared with its starting model on the held-out photos.
    assert 0 <= run["agreement_ap"] <= 1 and len(json.loads(run["agreement_photos"])) == 6


def test_an_interrupted_run_resumes_to_the_same_result(weights_dir, tmp_path):
    config = _config(weights_dir)
    store = ResultsStore(tmp_path / "results.sqlite3")
    straight = train(config, tmp_path / "straight", store=store)

    # Stop during the second epoch (after its first step), then resume.
    seen = []
    stop = lambda: len(seen) >= 5  # noqa: E731
    interrupted = train(config, tmp_path / "resumed", store=store,
                        progress=lambda e: seen.append(e) if e.kind == "step" else None, cancel=stop)
    assert interrupted.status == "cancelled" and len(interrupted.history) == 1
    assert store.get_run(interrupted.run_id)["status"] == "cancelled"
    resumed = train(config, tmp_path / "resumed", resume=True, store=store)
    assert resumed.status == "finished" and resumed.run_id == interrupted.run_id
    assert [h["loss"] for h in resumed.history] == [h["loss"] for h in straight.history]
    a, b = straight.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    run = store.get_run(resumed.run_id)
    assert run["status"] == "finished" and [e["epoch"] for e in run["epochs"]] == [0, 1, 2]


def test_keep_pruned_masks_only_grow_as_the_rate_ramps(weights_dir, tmp_path, monkeypatch):
    """keep_pruned: every pruning step keeps the filters already pruned (none regrows) and adds
    some, up to int(n * rate) per layer at the end."""
    from pruning.train import _Trainer

    seen = []
    prune = _Trainer._prune

    def recording(self, batch, epoch=None):
        prune(self, batch, epoch)
        seen.append({name: keep.clone() for name, keep in self.masks.items()})

    monkeypatch.setattr(_Trainer, "_prune", recording)
    result = train(_config(weights_dir, epochs=3, ramp_epochs=3, finetune_epochs=0, keep_pruned=True), tmp_path / "run")
    assert len(seen) == 3
    removed = [sum(int((~keep).sum()) for keep in masks.values()) for masks in seen]
    assert removed == sorted(set(removed))  # strictly more each step
    for before, after in zip(seen, seen[1:]):
        assert all(not (after[name] & ~before[name]).any() for name in before)  # pruned stays pruned
    final = masks_of(result.model)
    assert all(torch.equal(final[name], seen[-1][name]) for name in final)
    assert all(int((~keep).sum()) == int(keep.numel() * RATE) for keep in seen[-1].values())


def test_slimming_training_shrinks_the_batchnorm_scales(weights_dir, tmp_path):
    from pruning.criteria import slimming_batchnorms

    def gamma_l1(model):
        return float(sum(bn.weight.detach().abs().sum() for bn in slimming_batchnorms(model)))

    # Adam moves each scale by about the learning rate per step whatever the penalty's size, so
    # four steps can take at most ~0.004 off each of the ~200 scales.
    settings = dict(criterion="slimming", epochs=1, finetune_epochs=0, crop_size=256)
    plain = train(_config(weights_dir, slimming_lambda=0.0, **settings), tmp_path / "plain")
    slim = train(_config(weights_dir, slimming_lambda=0.05, **settings), tmp_path / "slim")
    assert gamma_l1(slim.model) < gamma_l1(plain.model) - 0.2


def test_bad_settings_are_reported_plainly(weights_dir, tmp_path):
    from facedet.errors import FacedetError

    with pytest.raises(FacedetError, match="criterion"):
        _config(weights_dir, criterion="nope")
    with pytest.raises(FacedetError, match="crop_size"):
        _config(weights_dir, crop_size=100)
    with pytest.raises(FacedetError, match="nothing to resume"):
        train(_config(weights_dir), tmp_path / "empty", resume=True)
    train_dir = tmp_path / "busy"
    (train_dir).mkdir()
    (train_dir / "state.pth").write_bytes(b"")
    with pytest.raises(FacedetError, match="already holds a run"):
        train(_config(weights_dir), train_dir)


def test_a_saved_config_loads_flat_or_with_a_nested_schedule(weights_dir):
    from facedet.errors import FacedetError
    from pruning.train import SCHEDULE_SETTINGS

    config = _config(weights_dir, lr=5e-4, lr_milestones=(1,), ramp_epochs=1)
    saved = json.loads(json.dumps(config.to_dict()))
    # Flat, as every run's config.json has been: the schedule's settings beside the others.
    assert "schedule" not in saved and (saved["epochs"], saved["lr"], saved["lr_milestones"]) == (2, 5e-4, [1])
    assert TrainConfig.from_dict(saved) == config
    nested = {name: value for name, value in saved.items() if name not in SCHEDULE_SETTINGS}
    nested["schedule"] = {name: saved[name] for name in SCHEDULE_SETTINGS}
    assert TrainConfig.from_dict(nested) == config
    assert TrainConfig.from_dict({**nested, "schedule": {}}).schedule.epochs == 200  # the paper's
    with pytest.raises(FacedetError, match="invalid training settings"):
        TrainConfig.from_dict({**nested, "schedule": {"epoch": 3}})
    with pytest.raises(FacedetError, match="lr"):
        TrainConfig.from_dict({**nested, "schedule": {"lr": 2.0}})
