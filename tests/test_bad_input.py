"""Issue #11, inputs and options: every unusable input or option value ends in one ``error: ...``
line on stderr and exit code 2 (no traceback, no extra warning lines, no output file left), as
a user runs the commands; the library and the app refuse the same inputs the same way."""

import math
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from cli_helpers import assert_one_error_line, cli, cli_env
from facedet.errors import FacedetError, FacedetWarning, ImageError
from facedet.images import read_image

ROOT = Path(__file__).resolve().parents[1]
NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without CUDA")


@pytest.fixture(scope="module")
def env(weights_dir, tmp_path_factory):
    folder = tmp_path_factory.mktemp("bad_input_env")
    return cli_env(weights_dir, folder)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Small inputs made once: images of awkward sizes, a one-image sample set."""
    from facedet.wider.sample_set import write_sample_set

    folder = tmp_path_factory.mktemp("bad_input_files")
    cv2.imwrite(str(folder / "strip.png"), np.full((10, 100_000, 3), 128, np.uint8))  # 1 Mpx, 10000:1
    cv2.imwrite(str(folder / "photo.png"), np.full((48, 64, 3), 128, np.uint8))
    cv2.imwrite(str(folder / "long.png"), np.full((200, 8000, 3), 128, np.uint8))
    write_sample_set(folder / "sample", images=1)
    return folder


def _detector(arch="eresfd"):
    from facedet.detector import load_detector

    return load_detector(arch, device="cpu")


class _InputRecorder(torch.nn.Module):
    """Wraps a network and remembers the shape of every input it is given."""

    def __init__(self, net):
        super().__init__()
        self.net, self.shapes = net, []

    def forward(self, x):
        self.shapes.append(tuple(x.shape))
        return self.net(x)


# 1 -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("case", ["auto scale, thin image", "detect --scale", "predict --scale"])
def test_an_image_that_resizes_to_nothing_is_one_line(env, files, tmp_path, case):
    out = tmp_path / "out.png"
    if case == "auto scale, thin image":  # the long side's cap leaves 0.4 px of the short one
        done = cli(env, "facedet", "detect", files / "strip.png", "--out", out)
    elif case == "detect --scale":
        done = cli(env, "facedet", "detect", files / "photo.png", "--scale", "0.0001", "--out", out)
    else:
        out = tmp_path / "predictions"
        done = cli(env, "facedet", "predict", "--wider", files / "sample", "--scale", "0.0001", "--out", out)
    assert_one_error_line(done, "at least 16 px")
    assert not out.exists()


def test_the_detector_refuses_too_small_an_input_and_the_compare_page_says_so(files, weights_dir):
    detector = _detector()
    with pytest.raises(ImageError, match="at least 16 px"):
        detector.detect(read_image(files / "strip.png"))
    with pytest.raises(ImageError, match="at least 16 px"):
        detector.detect(read_image(files / "photo.png"), scale=0.0001)

    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=600).switch_page("pages/1_Compare.py")
    at.session_state["sample"] = "grace_hopper.jpg"
    at.run()
    at.file_uploader(key="upload").set_value(("strip.png", (files / "strip.png").read_bytes(), "image/png")).run()
    assert not at.exception
    assert len(at.error) == 1 and "Cannot use this photo" in at.error[0].value and "16 px" in at.error[0].value
    assert not at.image


# 2 -------------------------------------------------------------------------------------------
def test_an_explicit_scale_is_capped_at_the_max_side(env, files):
    from facedet.detector import MAX_SIDE

    detector = _detector()
    detector.network = _InputRecorder(detector.network)  # what detect runs (facedet.backends)
    image = read_image(files / "long.png")  # 8000 px long: scale 16 would make 128000 px
    with pytest.warns(FacedetWarning, match="capped at 4096"):
        detector.detect(image, scale=16)
    assert max(detector.network.shapes[-1][2:]) == MAX_SIDE

    done = cli(env, "facedet", "detect", files / "long.png", "--scale", "16", "--json")
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("note: scale 16 reduced to 0.512"), done.stderr


# 3 -------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def unknown_arch_checkpoint(tmp_path_factory):
    from facedet.models import create_model
    from facedet.weights import save_checkpoint

    return save_checkpoint(tmp_path_factory.mktemp("unknown_arch") / "yolo.pth", create_model("eresfd"), "yolo")


@pytest.mark.parametrize("command", ["info", "prune", "compact", "train"])
def test_a_checkpoint_naming_an_unknown_detector_is_one_line(env, unknown_arch_checkpoint, tmp_path, command):
    ckpt, out = unknown_arch_checkpoint, tmp_path / "out.pth"
    run_dir = tmp_path / "run"
    args = {
        "info": ("facedet", "info", ckpt),
        "prune": ("pruning", "prune", "--weights", ckpt, "--criterion", "l1", "--rate", "0.3", "--out", out),
        "compact": ("pruning", "compact", ckpt, "--out", out),
        "train": ("pruning", "train", "--run-dir", run_dir, "--detector", "eresfd", "--criterion", "l1",
                  "--rate", "0.3", "--weights", ckpt, "--epochs", "1", "--finetune-epochs", "0",
                  "--sample-images", "1", "--crop-size", "64", "--batch-size", "1", "--no-eval", "--threads", "1"),
    }[command]
    assert_one_error_line(cli(env, *args), "unknown detector 'yolo'")
    assert not out.exists() and not run_dir.exists()


# 4 -------------------------------------------------------------------------------------------
def test_non_finite_weights_are_one_line(env, files, weights_dir, tmp_path):
    state = torch.load(weights_dir / "eresfd.pth", map_location="cpu", weights_only=True)
    name = next(k for k, v in state.items() if v.is_floating_point())
    state[name].view(-1)[0] = math.nan
    torch.save(state, tmp_path / "nan.pth")
    done = cli(env, "facedet", "detect", "--weights", tmp_path / "nan.pth", files / "photo.png")
    assert_one_error_line(done, "NaN or infinite", name)


# 5 -------------------------------------------------------------------------------------------
DEVICE_COMMANDS = {
    "detect": lambda f, t: ("facedet", "detect", f / "photo.png"),
    "bench": lambda f, t: ("facedet", "bench", "eresfd", "--size", "64x48", "--runs", "1"),
    "predict": lambda f, t: ("facedet", "predict", "--wider", f / "sample", "--out", t / "predictions"),
    "train": lambda f, t: ("pruning", "train", "--run-dir", t / "run", "--detector", "eresfd", "--criterion", "l1",
                           "--rate", "0.3"),
}


@pytest.mark.parametrize("device", ["bogus", pytest.param("cuda", marks=NO_CUDA)])
@pytest.mark.parametrize("command", list(DEVICE_COMMANDS))
def test_a_bad_device_is_one_line(env, files, tmp_path, command, device):
    done = cli(env, *DEVICE_COMMANDS[command](files, tmp_path), "--device", device)
    assert_one_error_line(done, device)
    assert not (tmp_path / "predictions").exists() and not (tmp_path / "run").exists()


def test_pick_device_names_the_problem():
    from facedet.detector import pick_device
    from facedet.errors import DeviceError

    assert pick_device("cpu").type == "cpu" and pick_device("auto").type in ("cpu", "cuda")
    for bad in ("bogus", "meta", "cuda:99"):
        with pytest.raises(DeviceError):
            pick_device(bad)


# 6 -------------------------------------------------------------------------------------------
NUMERIC_CASES = [
    ("facedet", "detect", "{photo}", "--threshold", "2"),
    ("facedet", "detect", "{photo}", "--threshold", "nan"),
    ("facedet", "detect", "{photo}", "--threshold", "-5"),
    ("facedet", "detect", "{photo}", "--scale", "inf"),
    ("facedet", "detect", "{photo}", "--scale", "17"),
    ("facedet", "bench", "eresfd", "--runs", "0"),
    ("facedet", "bench", "eresfd", "--warmup", "-1"),
    ("facedet", "predict", "--wider", "{sample}", "--out", "{out}", "--limit", "0"),
    ("facedet", "predict", "--wider", "{sample}", "--out", "{out}", "--scale", "nan"),
    ("facedet", "sample-set", "--out", "{out}", "--images", "-3"),
    ("facedet", "sample-set", "--out", "{out}", "--seed", "-1"),
    ("pruning", "prune", "--weights", "eresfd", "--criterion", "l1", "--out", "{out}", "--rate", "nan"),
    ("pruning", "prune", "--weights", "eresfd", "--criterion", "random", "--rate", "0.3", "--out", "{out}", "--seed", "-1"),
    ("pruning", "compact", "eresfd-fpgm-50", "--out", "{out}", "--threads", "-2"),
    ("pruning", "compact", "eresfd-fpgm-50", "--out", "{out}", "--runs", "0"),
    ("pruning", "runs", "--show", "-4"),
    *[("pruning", "train", "--run-dir", "{out}", "--detector", "eresfd", "--criterion", "l1", "--rate", "0.3", *option)
      for option in (("--threads", "-1"), ("--lr", "nan"), ("--lr", "1e30"), ("--eval-images", "-1"),
                     ("--epochs", "-1"), ("--momentum", "1"), ("--face-crops", "2"), ("--photo-zoom", "-1", "inf"),
                     ("--face-sizes", "2", "40"), ("--batch-size", "2.5"))],
]


def _case_id(args):
    """``train --lr nan``: the command and its last option with its values."""
    last = max(i for i, a in enumerate(args) if a.startswith("--"))
    return " ".join((args[1], *args[last:]))


@pytest.mark.parametrize("args", NUMERIC_CASES, ids=_case_id)
def test_numeric_options_are_range_checked_in_one_line(env, files, tmp_path, args):
    out = tmp_path / "out"
    args = [a.format(photo=files / "photo.png", sample=files / "sample", out=out) for a in args]
    assert_one_error_line(cli(env, *args), "error: argument --")
    assert not out.exists()


def test_training_settings_are_range_checked_for_the_app_too():
    from pruning.schedule import Schedule
    from pruning.train import TrainConfig

    for bad in (dict(lr=math.nan), dict(lr=1e30), dict(eval_images=-1), dict(threads=-1), dict(momentum=1.0),
                dict(lr_milestones=(-1,)), dict(photo_zoom=(0.0, math.inf)), dict(distill_loc=math.inf),
                dict(face_sizes=(40.0, 20.0)), dict(face_sizes=(16.0,)), dict(paste_sizes=(40.0, 20.0)),
                dict(paste_faces=1.5), dict(mixup=-0.1), dict(paste_background=2.0),
                dict(epochs=2.5), dict(seed=-1)):
        with pytest.raises(FacedetError, match=next(iter(bad))):
            TrainConfig.from_settings(**bad)
    config = TrainConfig.from_settings(epochs=np.int64(3), lr=np.float32(0.5), threads=None)
    assert (config.schedule.epochs, config.schedule.lr) == (3, 0.5)
    assert type(config.schedule.epochs) is int and type(config.schedule.lr) is float
    with pytest.raises(FacedetError, match="finetune_epochs"):  # the schedule's numbers, however it is given
        TrainConfig(schedule=Schedule(finetune_epochs=-1))
    with pytest.raises(FacedetError, match="nothing to train"):
        TrainConfig(schedule=Schedule(epochs=0, finetune_epochs=0))


def test_the_range_types_themselves():
    import argparse

    from facedet import cli_types

    assert cli_types.probability("0") == 0.0 and cli_types.probability("1") == 1.0
    assert cli_types.positive_int("3") == 3 and cli_types.non_negative_int("0") == 0
    for parse, text in ((cli_types.probability, "1.01"), (cli_types.scale, "0"),
                        (cli_types.finite_float, "-inf"), (cli_types.positive_int, "1.5"),
                        (cli_types.non_negative_int, "-1"), (cli_types.scale, "nan")):
        with pytest.raises(argparse.ArgumentTypeError):
            parse(text)


# 7 -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["device", "fifo"])
def test_special_files_are_refused_without_reading_them(env, tmp_path, kind):
    if kind == "device":
        path = Path("/dev/zero")  # endless: reading it would fill the memory
    else:
        path = tmp_path / "x.jpg"
        os.mkfifo(path)  # opening it would wait for a writer forever
    with pytest.raises(ImageError, match="not a regular file"):
        read_image(path)
    assert_one_error_line(cli(env, "facedet", "detect", path, timeout=60), "not a regular file")


# 8 -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["image over Pillow's warning limit", "garbage checkpoint"])
def test_warnings_do_not_add_lines_to_the_error(env, files, tmp_path, kind):
    if kind == "garbage checkpoint":
        (tmp_path / "garbage.pth").write_bytes(b"\x80" + b"garbage" * 10)  # torch warns of pickle protocol 103
        done = cli(env, "facedet", "detect", files / "photo.png", "--weights", tmp_path / "garbage.pth")
        assert_one_error_line(done, "corrupt")
    else:
        Image.new("1", (10_000, 10_000)).save(tmp_path / "big.png")  # 100 Mpx: Pillow warns, we refuse
        assert_one_error_line(cli(env, "facedet", "detect", tmp_path / "big.png"), "too large")


# 9 -------------------------------------------------------------------------------------------
def test_output_paths_that_are_files_or_foreign_folders_are_refused(env, files, tmp_path):
    existing = tmp_path / "existing.txt"
    existing.write_text("keep me")
    done = cli(env, "facedet", "predict", "--wider", files / "sample", "--out", existing)
    assert_one_error_line(done, "is a file")
    done = cli(env, "facedet", "sample-set", "--out", existing, "--images", "1")
    assert_one_error_line(done, "is a file")
    assert existing.read_text() == "keep me"

    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    assert_one_error_line(cli(env, "facedet", "sample-set", "--out", folder, "--images", "1"), "--force")
    assert sorted(p.name for p in folder.iterdir()) == ["notes.txt"]
    # A sample set may be written again; any other folder with --force.
    assert cli(env, "facedet", "sample-set", "--out", files / "sample", "--images", "1").returncode == 0
    assert cli(env, "facedet", "sample-set", "--out", folder, "--images", "1", "--force").returncode == 0
    assert (folder / "notes.txt").is_file() and (folder / "SAMPLE_SET.txt").is_file()


# 10 ------------------------------------------------------------------------------------------
def test_an_empty_ground_truth_file_is_one_line(env, wider_gt_dir, tmp_path):
    gt = tmp_path / "gt"
    gt.mkdir()
    for path in wider_gt_dir.glob("*.mat"):
        (gt / path.name).write_bytes(b"" if path.name == "wider_face_val.mat" else path.read_bytes())
    (tmp_path / "pred").mkdir()
    done = cli(env, "facedet", "evaluate", "--pred", tmp_path / "pred", "--gt", gt)
    assert_one_error_line(done, "wider_face_val.mat is empty")


# 14 ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("content", ["", "[1, 2]", "{not json", '{"epochs": "many"}'])
def test_resuming_with_a_corrupt_config_is_one_line(env, tmp_path, content):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.json").write_text(content)
    assert_one_error_line(cli(env, "pruning", "train", "--resume", "--run-dir", run_dir))
    assert sorted(p.name for p in run_dir.iterdir()) == ["config.json"]
