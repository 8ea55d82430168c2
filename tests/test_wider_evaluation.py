"""The WIDER FACE evaluation against numbers of the standard eval tools on the real ground truth."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from facedet.errors import DataError
from facedet.wider.evaluation import evaluate, thresholds
from facedet.wider.ground_truth import load_ground_truth
from facedet.wider.plain_evaluation import plain_evaluate
from facedet.wider.submission import write_submission
from facedet.wider.submission_reader import read_submission
from facedet.wider.synthetic import synthetic_predictions


@pytest.fixture(scope="module")
def reference(fixtures_dir):
    return json.loads((fixtures_dir / "wider_eval_reference.json").read_text())


@pytest.fixture(scope="module")
def gt(wider_gt_dir):
    return load_ground_truth(wider_gt_dir)


def _case_predictions(gt, case):
    params = {k: tuple(v) if isinstance(v, list) else v for k, v in case["params"].items()}
    return synthetic_predictions(gt, case["seed"], **params)


ROOT = Path(__file__).resolve().parents[1]


def facedet_cli(*args):
    return subprocess.run([sys.executable, "-m", "facedet", *map(str, args)], capture_output=True, text=True, cwd=ROOT)


CASE_NAMES = [c["name"] for c in json.loads(
    (Path(__file__).parent / "fixtures" / "wider_eval_reference.json").read_text())["cases"]]


def test_reference_covers_the_tricky_cases(reference):
    names = " ".join(case["name"] for case in reference["cases"])
    for word in ("duplicates", "empty", "missing", "sorted", "ties", "degenerate", "scores"):
        assert word in names
    assert len(reference["cases"]) >= 8


@pytest.mark.parametrize("name", CASE_NAMES)
def test_in_memory_predictions_match_the_standard_code(reference, gt, wider_gt_dir, name):
    case = next(c for c in reference["cases"] if c["name"] == name)
    result = evaluate(_case_predictions(gt, case), wider_gt_dir)
    for setting, expected in case["expected"].items():
        assert getattr(result, setting) == pytest.approx(expected, abs=1e-12), (case["name"], setting)


@pytest.mark.parametrize("name", ["empty_missing_and_extra_files", "authors_file_format_top750"])
def test_submission_folder_matches_the_standard_code(reference, gt, wider_gt_dir, tmp_path, name):
    case = next(c for c in reference["cases"] if c["name"] == name)
    predictions = _case_predictions(gt, case)
    write_submission(predictions, tmp_path)
    assert len(list(tmp_path.glob("*/*.txt"))) == len(predictions)
    result = evaluate(tmp_path, wider_gt_dir)
    assert result.as_dict() == pytest.approx(case["expected"], abs=1e-12)
    # Writing and reading back loses nothing.
    back = read_submission(tmp_path)
    assert back.keys() == predictions.keys()
    assert all(np.array_equal(back[k], predictions[k]) for k in predictions)


def test_lines_in_any_order_give_the_same_ap(gt, wider_gt_dir):
    predictions = synthetic_predictions(gt, 11, shuffle=False)
    rng = np.random.default_rng(0)
    shuffled = {k: v[rng.permutation(len(v))] for k, v in predictions.items()}
    assert evaluate(shuffled, wider_gt_dir).as_dict() == evaluate(predictions, wider_gt_dir).as_dict()


@pytest.mark.parametrize("seed", [21, 22])
def test_vectorised_equals_the_plain_per_image_implementation(gt, wider_gt_dir, seed):
    predictions = synthetic_predictions(gt, seed, duplicates=0.5, exact_duplicates=0.2, score_decimals=2,
                                        degenerate=0.2, false_positives=6.0)
    subset = {k: v for k, v in list(predictions.items())[seed::97]}
    fast = evaluate(subset, wider_gt_dir, only_predicted=True)
    plain = plain_evaluate(subset, wider_gt_dir, only_predicted=True)
    assert fast.as_dict() == plain.as_dict()
    for setting in ("easy", "medium", "hard"):
        for ours, theirs in zip(fast.curves[setting], plain.curves[setting]):
            np.testing.assert_array_equal(ours, theirs)


def test_curves_are_pr_curves_over_1000_thresholds(gt, wider_gt_dir):
    result = evaluate(synthetic_predictions(gt, 3), wider_gt_dir)
    assert thresholds()[0] == pytest.approx(0.999) and thresholds()[-1] == 0.0
    for setting in ("easy", "medium", "hard"):
        precision, recall = result.curves[setting]
        assert precision.shape == recall.shape == (1000,)
        assert np.all(np.diff(recall) >= 0) and 0 < recall[-1] <= 1
        assert np.nanmax(precision) <= 1 and np.nanmin(precision) >= 0
    assert set(result.as_dict()) == {"easy", "medium", "hard"}


def test_perfect_predictions_score_one_and_none_score_zero(gt, wider_gt_dir):
    perfect = {}
    for i, key in enumerate(gt.keys):
        faces = gt.boxes[gt.offsets[i] : gt.offsets[i + 1]]
        perfect[key] = np.column_stack([faces, np.linspace(1, 0.5, len(faces))])
    result = evaluate(perfect, wider_gt_dir)
    # Not exactly 1: WIDER FACE annotates a few faces twice with the same box, and the copy's
    # detection matches the first copy (a second hit: a proposal without recall).
    for setting in ("easy", "medium", "hard"):
        assert 0.9999 < getattr(result, setting) < 1
        assert np.nanmin(result.curves[setting][0]) > 0.999
    assert evaluate({}, wider_gt_dir).as_dict() == {"easy": 0.0, "medium": 0.0, "hard": 0.0}


def test_equal_scores_give_a_single_point_curve(gt, wider_gt_dir):
    # The standard code divides 0 by 0 here and loses every detection; we keep them all.
    predictions = {k: np.column_stack([v[:, :4], np.full(len(v), 0.7)]) for k, v in synthetic_predictions(gt, 5).items()}
    result = evaluate(predictions, wider_gt_dir)
    for setting in ("easy", "medium", "hard"):
        precision, recall = result.curves[setting]
        assert np.unique(precision).size == 1 and np.unique(recall).size == 1
        assert getattr(result, setting) == pytest.approx(precision[0] * recall[0]) and recall[0] > 0.3


def test_malformed_line_names_file_and_line(gt, wider_gt_dir, tmp_path):
    key = gt.keys[5]
    write_submission({key: np.array([[10, 20, 30, 40, 0.9], [1, 2, 3, 4, 0.5], [5, 6, 7, 8, 0.2]])}, tmp_path)
    path = tmp_path / f"{key}.txt"
    lines = path.read_text().splitlines()
    lines[3] = "1 2 3 four 0.5"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=rf"{path.name}: line 4: expected 'x y w h score'") as err:
        evaluate(tmp_path, wider_gt_dir)
    assert "\n" not in str(err.value)
    lines[3] = "1 2 3 4 0.5 7"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match="line 4"):
        evaluate(tmp_path, wider_gt_dir)
    lines[3] = "1 2 3 4 0.5"
    lines[1] = "5"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match="says 5 detections but has 3"):
        evaluate(tmp_path, wider_gt_dir)
    lines[1] = "three"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match="line 2: expected the number of detections"):
        evaluate(tmp_path, wider_gt_dir)


def test_bad_inputs_are_one_line_errors(gt, wider_gt_dir, tmp_path):
    with pytest.raises(DataError, match="prediction folder not found"):
        evaluate(tmp_path / "nope", wider_gt_dir)
    with pytest.raises(DataError, match="ground-truth folder not found"):
        evaluate({}, tmp_path / "nope")
    with pytest.raises(DataError, match="wider_face_val.mat is missing"):
        evaluate({}, tmp_path)
    with pytest.raises(DataError, match="no prediction matches an image"):
        evaluate({"0--Parade/not_there": np.zeros((0, 5))}, wider_gt_dir)
    with pytest.raises(DataError, match="shape"):
        evaluate({gt.keys[0]: np.zeros((3, 4))}, wider_gt_dir)
    with pytest.raises(DataError, match="NaN or infinite"):
        evaluate({gt.keys[0]: np.array([[1, 2, 3, 4, np.nan]])}, wider_gt_dir)
    with pytest.raises(DataError, match="not of the form"):
        write_submission({"../escape": np.zeros((0, 5))}, tmp_path)


def test_cli_prints_the_three_aps(gt, wider_gt_dir, tmp_path):
    write_submission(synthetic_predictions(gt, 0), tmp_path / "pred")
    as_json = facedet_cli("evaluate", "--pred", tmp_path / "pred", "--gt", wider_gt_dir, "--json")
    assert as_json.returncode == 0, as_json.stderr
    numbers = json.loads(as_json.stdout)
    assert numbers == pytest.approx(evaluate(tmp_path / "pred", wider_gt_dir).as_dict(), abs=1e-15)
    text = facedet_cli("evaluate", "--pred", tmp_path / "pred", "--gt", wider_gt_dir).stdout
    assert f"Easy   {numbers['easy']:.4f}" in text and f"Hard   {numbers['hard']:.4f}" in text
    assert "sample set" not in text  # the real ground truth: no notice
    bad = facedet_cli("evaluate", "--pred", tmp_path / "missing", "--gt", wider_gt_dir)
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr.count("\n") == 1 and "prediction folder not found" in bad.stderr


def test_evaluate_command_never_imports_torch(gt, wider_gt_dir, tmp_path):
    write_submission({gt.keys[0]: np.array([[1.0, 2.0, 30.0, 40.0, 0.9]])}, tmp_path)
    run = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "facedet", "evaluate", "--pred", str(tmp_path), "--gt",
         str(wider_gt_dir), "--json"], capture_output=True, text=True, check=True, cwd=ROOT)
    imported = {line.split("|")[-1].strip() for line in run.stderr.splitlines() if "|" in line}
    assert "numpy" in imported
    assert "scipy.io" in imported  # the .mat reader
    assert not {name for name in imported if name.split(".")[0] in ("torch", "cv2", "PIL")}


def test_cli_curves_file_holds_the_curves_behind_the_printed_aps(reference, gt, wider_gt_dir, tmp_path):
    from facedet.wider.curves import curve_ap, read_curves

    # The authors' file format at the 750 cap, whose APs the standard code gave (the frozen reference).
    case = next(c for c in reference["cases"] if c["name"] == "authors_file_format_top750")
    predictions = _case_predictions(gt, case)
    write_submission(predictions, tmp_path / "pred")
    run = facedet_cli("evaluate", "--pred", tmp_path / "pred", "--gt", wider_gt_dir, "--json",
                      "--curves", tmp_path / "curves.json")
    assert run.returncode == 0, run.stderr
    printed = json.loads(run.stdout)
    document = json.loads((tmp_path / "curves.json").read_text())
    assert document["predictions"] == str((tmp_path / "pred").resolve()) and not document["only_predicted"]
    assert document["thresholds"] == thresholds().tolist()
    curves = read_curves(document)
    expected = evaluate(predictions, wider_gt_dir)
    for setting in ("easy", "medium", "hard"):
        # The area under the stored curve is the printed AP, bit for bit, and the standard code's.
        assert curve_ap(curves[setting]) == curves[setting].ap == printed[setting]
        assert printed[setting] == pytest.approx(case["expected"][setting], abs=1e-12)
        precision, recall = expected.curves[setting]
        np.testing.assert_array_equal(curves[setting].precision, precision)  # NaN where nothing passes
        np.testing.assert_array_equal(curves[setting].recall, recall)

    text = facedet_cli("evaluate", "--pred", tmp_path / "pred", "--gt", wider_gt_dir, "--curves", tmp_path / "c2.json")
    assert text.returncode == 0 and f"precision-recall curves: {tmp_path / 'c2.json'}" in text.stdout
    assert json.loads((tmp_path / "c2.json").read_text()) == document

    # A top score on an image the ground truth lacks: no proposal at the highest thresholds, so no
    # precision there (null in the file, NaN read back), and still the printed AP.
    outsider = dict(predictions, **{"0--Parade/not_in_the_ground_truth": np.array([[0.0, 0.0, 10.0, 10.0, 2.0]])})
    write_submission(outsider, tmp_path / "pred2")
    run = facedet_cli("evaluate", "--pred", tmp_path / "pred2", "--gt", wider_gt_dir, "--json",
                      "--curves", tmp_path / "c3.json")
    assert run.returncode == 0, run.stderr
    assert None in json.loads((tmp_path / "c3.json").read_text())["hard"]["precision"]
    curves, expected = read_curves((tmp_path / "c3.json").read_text()), evaluate(outsider, wider_gt_dir)
    for setting in ("easy", "medium", "hard"):
        assert curve_ap(curves[setting]) == json.loads(run.stdout)[setting] == getattr(expected, setting)
        np.testing.assert_array_equal(curves[setting].precision, expected.curves[setting][0])


@pytest.mark.parametrize("target, message", [("missing/curves.json", "does not exist"), (".", "is a directory")])
def test_cli_curves_to_a_bad_path_is_one_line(gt, wider_gt_dir, tmp_path, target, message):
    write_submission(synthetic_predictions(gt, 0), tmp_path / "pred")
    run = facedet_cli("evaluate", "--pred", tmp_path / "pred", "--gt", wider_gt_dir, "--curves", tmp_path / target)
    assert run.returncode == 2 and run.stdout == ""
    errors = [line for line in run.stderr.splitlines() if not line.startswith("note:")]
    assert len(errors) == 1 and errors[0].startswith("error: cannot write") and message in errors[0]
    assert not list(tmp_path.glob("**/*.json")) and not list(tmp_path.glob("**/.*.tmp"))
