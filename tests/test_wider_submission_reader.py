"""Reading submission folders: the parser reads every number exactly as Python's float() does,
refuses every line that is not five finite numbers, and a folder read chunk by chunk gives
exactly what was written."""

import numpy as np
import pytest

from facedet.errors import DataError
from facedet.wider import submission_reader
from facedet.wider.evaluation import evaluate
from facedet.wider.ground_truth import load_ground_truth
from facedet.wider.submission import write_submission
from facedet.wider.submission_reader import parse_rows, read_submission
from facedet.wider.synthetic import synthetic_predictions


@pytest.fixture(scope="module")
def gt(wider_gt_dir):
    return load_ground_truth(wider_gt_dir)


def _same_bits(a, b):
    return a is not None and b is not None and a.shape == b.shape and np.ascontiguousarray(a).tobytes() == np.ascontiguousarray(b).tobytes()


def test_the_parser_reads_the_numbers_python_reads():
    rng = np.random.default_rng(0)
    values = np.concatenate([
        rng.random(2000) * 1000,  # repr: up to 17 significant digits
        -rng.random(500) * 50,
        rng.random(500) * 1e-300,  # subnormal and tiny
        rng.integers(0, 5000, 500).astype(float),
        10.0 ** rng.uniform(-8, 8, 500),
        [0.0, -0.0, 1e308, 5e-324],
    ])
    rng.shuffle(values)
    values = values[: len(values) // 5 * 5].reshape(-1, 5)
    styles = [repr, "{:.1f}".format, "{:.3f}".format, "{:e}".format, "{:.17g}".format, "{:.6E}".format]
    lines = [" ".join(styles[(i + j) % len(styles)](v) for j, v in enumerate(row)) for i, row in enumerate(values.tolist())]
    expected = np.array([[float(v) for v in line.split()] for line in lines])
    for newline in ("\n", "\r\n"):
        assert _same_bits(parse_rows(newline.join(lines).encode()), expected)


@pytest.mark.parametrize("body", [
    b"1\t2 3 4 0.5\n5 6 7 8 0.25",  # a tab
    b"1  2 3 4 0.5\n5 6 7 8 0.25",  # two spaces
    b"1 2 3 4 0.5 \n5 6 7 8 0.25",  # a trailing space
    b" 1 2 3 4 0.5\n5 6 7 8 0.25",  # a leading space
])
def test_any_blank_separates_numbers(body):
    assert _same_bits(parse_rows(body), np.array([[1, 2, 3, 4, 0.5], [5, 6, 7, 8, 0.25]]))


@pytest.mark.parametrize("body", [
    b"1 2 3 4 0.5\r5 6 7 8 0.25",  # a lone carriage return: one line of ten numbers
    b'"1" 2 3 4 0.5\n5 6 7 8 0.25',  # quotes
    b"1 2 3 4\n5 6 7 8 0.25",  # four numbers
    b"1 2 3 4 0.5 6\n5 6 7 8 0.25",  # six
    b"1 2 3 4\n5 6 7 8 0.25 9",  # four, then six: ten numbers in all
    b"1 2 3 4 nan\n5 6 7 8 0.25",
    b"1 2 3 4 inf\n5 6 7 8 0.25",
    b"1 2 3 4 0.5\n\n5 6 7 8 0.25",  # an empty line
    b"1 2 3 4 NA\n5 6 7 8 0.25",
    b"1 2 3 four 0.5\n5 6 7 8 0.25",
])
def test_lines_that_are_not_five_finite_numbers_are_refused(body):
    assert parse_rows(body) is None


def test_a_folder_read_in_chunks_is_exactly_what_was_written(gt, wider_gt_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(submission_reader, "FILES_PER_CHUNK", 97)  # chunks end inside events
    predictions = synthetic_predictions(gt, 4, duplicates=0.3, false_positives=3.0)
    folder = write_submission(predictions, tmp_path / "pred")
    back = read_submission(folder)
    assert back.keys() == predictions.keys()
    assert all(_same_bits(back[k], predictions[k]) for k in predictions)
    expected, result = evaluate(predictions, wider_gt_dir), evaluate(folder, wider_gt_dir)
    assert result.as_dict() == expected.as_dict()
    for setting in ("easy", "medium", "hard"):
        for ours, theirs in zip(result.curves[setting], expected.curves[setting]):
            np.testing.assert_array_equal(ours, theirs)


def test_a_bad_line_in_a_later_chunk_names_file_and_line(gt, wider_gt_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(submission_reader, "FILES_PER_CHUNK", 97)
    predictions = synthetic_predictions(gt, 9)
    folder = write_submission(predictions, tmp_path / "pred")
    key = [k for k, rows in predictions.items() if len(rows) >= 3][500]
    path = folder / f"{key}.txt"
    lines = path.read_text().split("\n")
    lines[4] = "1 2 3 4 0.5 0.7"
    path.write_text("\n".join(lines))
    with pytest.raises(DataError, match=rf"{path.name}: line 5: expected 'x y w h score'") as err:
        evaluate(folder, wider_gt_dir)
    assert "\n" not in str(err.value)
