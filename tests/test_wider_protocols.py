"""Inference over a WIDER split: box voting, the paper protocol against the authors' code, and
predict -> evaluate end to end on a generated sample set."""

import json
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from facedet.iou import iou_matrix
from facedet.detector import load_detector
from facedet.images import read_image
from facedet.wider.evaluation import evaluate
from facedet.wider.layout import NOTICE
from facedet.wider.protocols import box_vote, paper_detect, predict_split
from facedet.wider.sample_set import write_sample_set
from facedet.wider.submission_reader import read_submission


ROOT = Path(__file__).resolve().parents[1]


def facedet_cli(*args):
    return subprocess.run([sys.executable, "-m", "facedet", *map(str, args)], capture_output=True, text=True, cwd=ROOT)


@pytest.fixture(scope="module")
def eresfd(weights_dir):
    return load_detector(weights_dir / "eresfd.pth", device="cpu")


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    return write_sample_set(tmp_path_factory.mktemp("sample"), images=3, seed=0)


def test_box_vote_merges_groups_and_drops_loners():
    dets = np.array([
        [10, 10, 29, 29, 0.9],  # a group of three around (10, 10, 30, 30)
        [12, 10, 31, 29, 0.6],
        [10, 12, 29, 31, 0.3],
        [100, 100, 119, 119, 0.8],  # alone: dropped
        [200, 50, 239, 89, 0.5],  # a pair
        [202, 52, 241, 91, 0.5],
    ])
    out = box_vote(dets)
    assert out.shape == (2, 5)
    weights = np.array([0.9, 0.6, 0.3])
    np.testing.assert_allclose(out[0, :4], (dets[:3, :4] * weights[:, None]).sum(0) / weights.sum())
    assert out[0, 4] == 0.9
    np.testing.assert_allclose(out[1], [201, 51, 240, 90, 0.5])
    assert box_vote(dets[3:4]).shape == (0, 5)  # nothing to merge: nothing survives
    many = np.tile([0, 0, 9, 9, 0.5], (4000, 1)) + np.arange(2000).repeat(2)[:, None] * [20, 0, 20, 0, 0]
    assert len(box_vote(many)) == 750  # capped like the authors' 750


def test_paper_protocol_matches_the_authors_code(eresfd, assets_dir, fixtures_dir):
    reference = json.loads((fixtures_dir / "upstream" / "paper_protocol_eresfd.json").read_text())
    ours = paper_detect(eresfd, read_image(assets_dir / reference["image"]))
    theirs = np.array(reference["detections"])
    # Confident boxes one to one. Below ~0.107 EResFD emits hundreds of background boxes whose
    # scores differ in the 6th decimal: there the fixture README asks for a loose comparison.
    confident = theirs[:, 4] > 0.107
    assert confident.sum() >= 6
    np.testing.assert_allclose(ours[: confident.sum()], theirs[confident], atol=2e-3, rtol=0)
    assert ours[confident.sum(), 4] <= 0.107
    assert abs(len(ours) - len(theirs)) <= 0.05 * len(theirs)
    matched = iou_matrix(theirs[:, :4], ours[:, :4]).max(axis=1) >= 0.9
    assert matched.mean() > 0.8


def test_predict_then_evaluate_on_the_sample_set(sample, weights_dir, tmp_path):
    out = tmp_path / "pred"
    run = facedet_cli("predict", "--wider", sample, "--split", "val", "--weights", weights_dir / "eresfd.pth",
                      "--protocol", "single", "--out", out)
    assert run.returncode == 0, run.stderr
    assert NOTICE in run.stderr and "wrote 3 prediction files" in run.stdout
    predictions = read_submission(out)
    assert len(predictions) == 3 and all(len(rows) for rows in predictions.values())
    gt_dir = sample / "eval_tools" / "ground_truth"
    evaluated = facedet_cli("evaluate", "--pred", out, "--gt", gt_dir)
    assert evaluated.returncode == 0, evaluated.stderr
    assert NOTICE in evaluated.stdout
    result = evaluate(out, gt_dir)
    # The published EResFD finds the pasted faces: a portrait, a group and a crowd.
    assert result.easy > 0.9 and result.medium > 0.8 and result.hard > 0.5
    as_json = facedet_cli("evaluate", "--pred", out, "--gt", gt_dir, "--json")
    assert json.loads(as_json.stdout) == pytest.approx(result.as_dict(), abs=1e-15)
    assert NOTICE in as_json.stderr


def test_paper_protocol_run_over_a_split_can_be_cancelled(sample, eresfd, tmp_path):
    seen = []
    stop = threading.Event()

    def progress(done, total):
        seen.append((done, total))
        stop.set()  # cancel after the first image

    predictions = predict_split(eresfd, sample, "val", protocol="paper", out_dir=tmp_path, progress=progress,
                                cancel=stop)
    assert seen == [(1, 3)] and len(predictions) == 1
    key, rows = next(iter(predictions.items()))
    assert key == "0--Portrait/0_Portrait_sample_0"
    assert (tmp_path / f"{key}.txt").is_file()
    # Box voting keeps the portrait's face: the best box is the annotated face.
    face = evaluate(predictions, sample / "eval_tools" / "ground_truth", only_predicted=True)
    assert face.easy == 1.0
    assert np.all(np.diff(rows[:, 4]) <= 0)


def test_predict_refuses_bad_arguments_before_loading_a_model(sample, tmp_path):
    for args, message in [
        (["--wider", str(tmp_path)], "WIDER_val/images"),
        (["--wider", str(sample), "--protocol", "paper", "--scale", "2"], "--scale"),
        (["--wider", str(sample), "--limit", "0"], "--limit"),
    ]:
        run = facedet_cli("predict", "--out", tmp_path / "o", *args)
        assert run.returncode == 2 and message in run.stderr and run.stderr.count("\n") == 1
