"""``python -m facedet detect|info|bench`` as a user runs them."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from facedet.cli import main
from facedet.images import read_image
from facedet.iou import iou_matrix

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HOPPER_FACE = (155, 130, 370, 335)  # approximate, from facedet/assets/README.md


def _iou(a, b):
    return float(iou_matrix([a], [b])[0, 0])


@pytest.fixture(autouse=True)
def _weights_env(weights_dir, monkeypatch):
    monkeypatch.setenv("FACEDET_WEIGHTS_DIR", str(weights_dir))


def _run(args, capsys):
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def test_detect_json_finds_grace_hopper(assets_dir, capsys):
    code, out, err = _run(["detect", str(assets_dir / "grace_hopper.jpg"), "--json"], capsys)
    assert code == 0
    faces = json.loads(out)
    assert len(faces) == 1 and faces[0]["score"] > 0.99
    assert _iou(faces[0]["box"], HOPPER_FACE) > 0.6
    assert set(faces[0]) == {"box", "score"}


def test_detect_group_photo_with_extd_finds_faces_of_all_sizes(assets_dir, capsys):
    code, out, _ = _run(["detect", str(assets_dir / "group.jpg"), "--weights", "extd", "--scale", "1", "--json"], capsys)
    faces = json.loads(out)
    assert code == 0 and len(faces) >= 5
    scores = [f["score"] for f in faces]
    assert scores == sorted(scores, reverse=True) and min(scores) >= 0.5
    widths = sorted(f["box"][2] - f["box"][0] for f in faces)
    assert widths[0] < 50 and widths[-1] > 140


def test_detect_writes_an_annotated_image(assets_dir, tmp_path, capsys):
    out_file = tmp_path / "annotated.png"
    code, out, _ = _run(["detect", str(assets_dir / "astronaut.png"), "--weights", "eresfd-fpgm-10", "--out", str(out_file)], capsys)
    assert code == 0 and "1 face(s)" in out
    drawn = read_image(out_file)
    assert drawn.shape == (512, 512, 3)
    assert not np.array_equal(drawn, read_image(assets_dir / "astronaut.png"))
    # The app's drawing: its presentation style by default, the thin screen style on request.
    from facedet.viz.overlay import PRESENTATION, SCREEN

    def has(image, colour):
        return bool(np.all(image == colour, axis=2).any())

    assert has(drawn, PRESENTATION.colours["original"]) and not has(drawn, SCREEN.colours["original"])
    code, _, _ = _run(["detect", str(assets_dir / "astronaut.png"), "--weights", "eresfd-fpgm-10", "--out",
                       str(out_file), "--style", "screen"], capsys)
    assert code == 0 and has(read_image(out_file), SCREEN.colours["original"])


def test_awkward_image_forms_are_detected_like_the_original(assets_dir, tmp_path, capsys):
    rgb = Image.open(assets_dir / "grace_hopper.jpg").convert("RGB")
    variants = {
        "gray.png": rgb.convert("L"),
        "rgba.png": rgb.convert("RGBA"),
        "palette.png": rgb.convert("P", palette=Image.Palette.ADAPTIVE),
        "sixteen.png": Image.fromarray((np.asarray(rgb.convert("L"), np.uint16) * 257).astype(np.uint16)),
    }
    for name, img in variants.items():
        img.save(tmp_path / name)
    exif = Image.Exif()
    exif[0x0112] = 6
    rgb.transpose(Image.Transpose.ROTATE_90).save(tmp_path / "rotated.jpg", exif=exif, quality=95)
    for name in [*variants, "rotated.jpg"]:
        code, out, _ = _run(["detect", str(tmp_path / name), "--json"], capsys)
        faces = json.loads(out)
        assert code == 0 and len(faces) == 1, name
        assert _iou(faces[0]["box"], HOPPER_FACE) > 0.6, name


def test_info_json(capsys):
    code, out, _ = _run(["info", "eresfd-l1-20", "--json"], capsys)
    info = json.loads(out)
    assert code == 0 and info["detector"] == "eresfd" and info["parameters"] == 92_208
    assert info["nonzero_parameters"] < 92_208
    assert info["sparsity"] == pytest.approx(1 - info["nonzero_parameters"] / 92_208, abs=1e-6)


def test_bench_json(capsys):
    code, out, _ = _run(["bench", "eresfd", "--size", "160x120", "--runs", "3", "--json"], capsys)
    stats = json.loads(out)
    assert code == 0 and stats["device"] == "cpu"
    assert 0 < stats["ms_min"] <= stats["ms"] <= stats["ms_max"]
    assert 0 < stats["network_ms"] < stats["ms"]
    assert {"pre_ms", "post_ms", "threads", "backend", "size"} <= set(stats)


def _bad_files(tmp_path, assets_dir, weights_dir):
    jpeg = (assets_dir / "grace_hopper.jpg").read_bytes()
    files = {"empty.jpg": b"", "notes.jpg": b"hello", "truncated.jpg": jpeg[:4000]}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    huge = Image.new("1", (9000, 9000))
    huge.save(tmp_path / "huge.png")
    return ["empty.jpg", "notes.jpg", "truncated.jpg", "huge.png", "missing.jpg", "."]


def test_bad_images_exit_2_with_one_line(tmp_path, assets_dir, weights_dir):
    env = dict(os.environ, FACEDET_WEIGHTS_DIR=str(weights_dir))
    for name in _bad_files(tmp_path, assets_dir, weights_dir):
        proc = subprocess.run([sys.executable, "-m", "facedet", "detect", str(tmp_path / name)],
                              capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)
        assert proc.returncode == 2, (name, proc.stderr)
        assert len(proc.stderr.strip().splitlines()) == 1, (name, proc.stderr)
        assert proc.stderr.startswith("error: ") and "Traceback" not in proc.stderr


def test_bad_weights_exit_2(tmp_path, assets_dir, capsys):
    (tmp_path / "junk.pth").write_bytes(b"junk")
    for weights in ["nosuchmodel", str(tmp_path / "junk.pth"), str(tmp_path / "absent.pth")]:
        code, _, err = _run(["detect", str(assets_dir / "grace_hopper.jpg"), "--weights", weights], capsys)
        assert code == 2 and len(err.strip().splitlines()) == 1
    code, _, err = _run(["detect", str(assets_dir / "grace_hopper.jpg"), "--weights", "eresfd", "--detector", "extd"], capsys)
    assert code == 2 and "EResFD" in err


def test_compare_pairs_the_faces_of_two_detectors(assets_dir, tmp_path, capsys):
    from facedet.compare import compare_detectors
    from facedet.detector import load_detector
    from facedet.images import read_image

    photo = assets_dir / "photos" / "holdout" / "office-group-13.jpg"
    out = tmp_path / "both.png"
    code, stdout, _ = _run(["compare", "eresfd", "eresfd-fpgm-50", str(photo), "--json", "--out", str(out)], capsys)
    assert code == 0
    summary = json.loads(stdout)
    image = read_image(photo)
    *_, expected = compare_detectors(load_detector("eresfd", backend="torch"),
                                     load_detector("eresfd-fpgm-50", backend="torch"), image)
    for key in ("matched", "only_reference", "only_candidate"):
        assert summary[key] == expected[key]
    assert summary["reference"]["faces"] == summary["matched"] + summary["only_reference"] >= 10
    assert summary["candidate"]["nonzero_parameters"] < summary["reference"]["nonzero_parameters"] == 92_208
    drawn = read_image(out)
    assert drawn.shape[1] == 2 * image.shape[1] + 16 and drawn.shape[0] == image.shape[0]
    code, _, err = _run(["compare", "eresfd", "nosuchmodel", str(photo)], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1
