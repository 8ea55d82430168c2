"""Reading submission folders: Arrow and numpy parse the same numbers, worker threads and the
binary index give exactly what the text says, and the index is never trusted after a change."""

import os

import numpy as np
import pytest

from facedet.errors import DataError
from facedet.wider import submission_index, submission_reader
from facedet.wider.evaluation import evaluate
from facedet.wider.ground_truth import load_ground_truth
from facedet.wider.submission import write_submission
from facedet.wider.submission_reader import (
    _parse_rows,
    _parse_rows_arrow,
    _parse_rows_numpy,
    index_submission,
    list_submission,
    read_submission,
)
from facedet.wider.synthetic import synthetic_predictions


@pytest.fixture(scope="module")
def gt(wider_gt_dir):
    return load_ground_truth(wider_gt_dir)


@pytest.fixture
def every_path(monkeypatch, tmp_path):
    """Small folders take the big-folder paths: Arrow, worker threads, the index (in a cache of its own)."""
    monkeypatch.setattr(submission_reader, "ARROW_MIN_BYTES", 0)
    monkeypatch.setattr(submission_reader, "THREADED_MIN_BYTES", 0)
    monkeypatch.setattr(submission_reader, "FILES_PER_CHUNK", 97)
    monkeypatch.setattr(submission_index, "MIN_BYTES", 0)
    monkeypatch.setenv("FACEDET_CACHE_DIR", str(tmp_path / "cache"))


def _same_bits(a, b):
    return a is not None and b is not None and a.shape == b.shape and np.ascontiguousarray(a).tobytes() == np.ascontiguousarray(b).tobytes()


def test_arrow_and_numpy_read_the_same_numbers():
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
    for newline in ("\n", "\r\n"):
        body = newline.join(lines).encode()
        arrow, numpy_rows = _parse_rows_arrow(body), _parse_rows_numpy(body)
        assert arrow is not None and _same_bits(arrow, numpy_rows)
        expected = np.array([[float(v) for v in line.split()] for line in lines])
        assert _same_bits(arrow, expected)


@pytest.mark.parametrize("body", [
    b"1\t2 3 4 0.5\n5 6 7 8 0.25",  # a tab
    b"1  2 3 4 0.5\n5 6 7 8 0.25",  # two spaces
    b"1 2 3 4 0.5 \n5 6 7 8 0.25",  # a trailing space
    b" 1 2 3 4 0.5\n5 6 7 8 0.25",  # a leading space
    b"1 2 3 4 0.5\r5 6 7 8 0.25",  # a lone carriage return
    b'"1" 2 3 4 0.5\n5 6 7 8 0.25',  # quotes
    b"1 2 3 4\n5 6 7 8 0.25",  # four numbers
    b"1 2 3 4 0.5 6\n5 6 7 8 0.25",  # six
    b"1 2 3 4 nan\n5 6 7 8 0.25",
    b"1 2 3 4 inf\n5 6 7 8 0.25",
    b"1 2 3 4 0.5\n\n5 6 7 8 0.25",  # an empty line
    b"1 2 3 4 NA\n5 6 7 8 0.25",
    b"1 2 3 four 0.5\n5 6 7 8 0.25",
])
def test_whatever_arrow_does_not_take_as_is_goes_to_numpy(body):
    assert _parse_rows_arrow(body) is None
    expected = _parse_rows_numpy(body)
    got = _parse_rows(body)
    assert (got is None and expected is None) or _same_bits(got, expected)


def test_big_folder_paths_read_exactly_what_was_written(gt, wider_gt_dir, tmp_path, every_path):
    predictions = synthetic_predictions(gt, 4, duplicates=0.3, false_positives=3.0)
    folder = write_submission(predictions, tmp_path / "pred")
    from_text = read_submission(folder)
    assert from_text.keys() == predictions.keys()
    assert all(_same_bits(from_text[k], predictions[k]) for k in predictions)
    expected = evaluate(predictions, wider_gt_dir)
    assert evaluate(folder, wider_gt_dir).as_dict() == expected.as_dict()

    assert index_submission(folder)
    assert submission_index.load(folder, list_submission(folder)) is not None
    # From now on the text is not read at all.
    def no_text(listing):
        raise AssertionError("parsed the text although the index is current")

    original = submission_reader._parsed_chunks
    submission_reader._parsed_chunks = no_text
    try:
        from_index = read_submission(folder)
        result = evaluate(folder, wider_gt_dir)
    finally:
        submission_reader._parsed_chunks = original
    assert all(_same_bits(from_index[k], predictions[k]) for k in predictions)
    assert result.as_dict() == expected.as_dict()
    for setting in ("easy", "medium", "hard"):
        for ours, theirs in zip(result.curves[setting], expected.curves[setting]):
            np.testing.assert_array_equal(ours, theirs)


def test_the_index_is_not_trusted_after_any_change(gt, wider_gt_dir, tmp_path, every_path):
    predictions = synthetic_predictions(gt, 6)
    folder = write_submission(predictions, tmp_path / "pred")
    assert index_submission(folder)

    # The same size in place: one score's digit changes.
    key = next(k for k, rows in predictions.items() if len(rows) and rows[0, 4] < 0.5)
    path = folder / f"{key}.txt"
    text = path.read_bytes()
    lines = text.split(b"\n")
    fields = lines[2].split(b" ")
    fields[4] = fields[4].replace(b"0.", b"9.", 1)  # the first detection now outscores everything
    lines[2] = b" ".join(fields)
    changed = b"\n".join(lines)
    assert len(changed) == len(text)
    with open(path, "r+b") as f:
        f.write(changed)
    assert submission_index.load(folder, list_submission(folder)) is None
    edited = dict(predictions)
    edited[key] = predictions[key].copy()
    edited[key][0, 4] = float(fields[4])
    assert evaluate(folder, wider_gt_dir).as_dict() == evaluate(edited, wider_gt_dir).as_dict()
    assert evaluate(folder, wider_gt_dir).as_dict() != evaluate(predictions, wider_gt_dir).as_dict()

    assert index_submission(folder)  # re-indexed
    assert evaluate(folder, wider_gt_dir).as_dict() == evaluate(edited, wider_gt_dir).as_dict()
    # A file more, a file less.
    extra = folder / "0--Parade" / "not_an_image.txt"
    write_submission({"0--Parade/not_an_image": np.array([[1.0, 2.0, 3.0, 4.0, 0.5]])}, folder)
    assert submission_index.load(folder, list_submission(folder)) is None
    extra.unlink()
    assert submission_index.load(folder, list_submission(folder)) is not None
    path.unlink()
    assert submission_index.load(folder, list_submission(folder)) is None
    del edited[key]
    assert evaluate(folder, wider_gt_dir).as_dict() == evaluate(edited, wider_gt_dir).as_dict()


def test_a_damaged_index_or_an_unwritable_cache_costs_only_speed(gt, wider_gt_dir, tmp_path, every_path, monkeypatch):
    predictions = synthetic_predictions(gt, 7)
    folder = write_submission(predictions, tmp_path / "pred")
    expected = evaluate(predictions, wider_gt_dir).as_dict()
    assert index_submission(folder)
    rows_file = next(submission_index.index_dir(folder).glob("rows-*.f64"))
    with open(rows_file, "r+b") as f:
        f.truncate(rows_file.stat().st_size - 40)
    assert submission_index.load(folder, list_submission(folder)) is None
    assert evaluate(folder, wider_gt_dir).as_dict() == expected
    (submission_index.index_dir(folder) / "meta.npz").write_bytes(b"not a zip file")
    assert evaluate(folder, wider_gt_dir).as_dict() == expected

    blocker = tmp_path / "a_file"
    blocker.write_text("the cache cannot be a folder here")
    monkeypatch.setenv("FACEDET_CACHE_DIR", str(blocker))
    assert not index_submission(folder)
    assert evaluate(folder, wider_gt_dir).as_dict() == expected
    assert blocker.read_text() == "the cache cannot be a folder here"


def test_only_the_latest_indexes_are_kept(gt, tmp_path, every_path, monkeypatch):
    monkeypatch.setattr(submission_index, "KEEP", 2)
    predictions = {k: v for k, v in list(synthetic_predictions(gt, 8).items())[:50]}
    folders = [write_submission(predictions, tmp_path / f"pred{i}") for i in range(3)]
    for age, folder in enumerate(folders):
        assert index_submission(folder)
        # Written long ago, oldest first (distinct times even where the clock is coarse).
        os.utime(submission_index.index_dir(folder) / "meta.npz", ns=((age + 1) * 10**9, (age + 1) * 10**9))
    kept = [submission_index.load(f, list_submission(f)) is not None for f in folders]
    assert kept == [False, True, True]  # the third one's commit evicted the oldest
    assert len(list(submission_index.index_root().iterdir())) == 2


def test_bad_lines_in_big_folders_still_name_file_and_line(gt, wider_gt_dir, tmp_path, every_path):
    predictions = synthetic_predictions(gt, 9)
    folder = write_submission(predictions, tmp_path / "pred")
    key = [k for k, rows in predictions.items() if len(rows) >= 3][500]
    path = folder / f"{key}.txt"
    lines = path.read_text().split("\n")
    lines[4] = "1 2 3 4 0.5 0.7"
    path.write_text("\n".join(lines))
    with pytest.raises(DataError, match=rf"{path.name}: line 5: expected 'x y w h score'"):
        evaluate(folder, wider_gt_dir)
    assert not index_submission(folder)
    assert not submission_index.index_root().exists() or not any(submission_index.index_root().iterdir())
