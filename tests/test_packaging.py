"""The project installs as a package (``pip install -e .``, done by requirements.txt): console
scripts, imports from any folder, benchmarks without path tricks, and the data files (``facedet/assets``)
installed with the package."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def test_console_scripts_run_from_any_folder(tmp_path, weights_dir):
    env = dict(os.environ, FACEDET_WEIGHTS_DIR=str(weights_dir))
    env.pop("PYTHONPATH", None)
    done = subprocess.run([str(BIN / "facedet"), "info", "eresfd", "--json"], capture_output=True, text=True,
                          cwd=tmp_path, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["parameters"] == 92_208
    done = subprocess.run([str(BIN / "facedet-prune"), "--help"], capture_output=True, text=True, cwd=tmp_path,
                          env=env, timeout=300)
    assert done.returncode == 0 and "prune" in done.stdout


def test_benchmarks_import_the_installed_package(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    for script in sorted((ROOT / "benchmarks").glob("bench_*.py")):
        assert "sys.path" not in script.read_text(), script.name
        done = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True,
                              cwd=tmp_path, env=env, timeout=300)
        assert done.returncode == 0, (script.name, done.stderr[-500:])


# Run in a fresh interpreter against a non-editable install: every data file the code reads.
ASSET_CHECK = """
import json
from pathlib import Path
from facedet.assets import asset_path
from facedet.images import read_image
from facedet.latency import DEFAULT_PHOTO
from facedet.samples import sample_photos
from facedet.viz.tradeoffs import paper_points
from facedet.wider.sample_set import write_sample_set
photos = sample_photos()
shapes = [read_image(p.path).shape for p in photos]
write_sample_set(Path("sample"), images=2)
print(json.dumps({"root": str(asset_path()), "photos": [str(p.path) for p in photos], "shapes": shapes,
                  "default_photo": str(DEFAULT_PHOTO), "paper_points": len(paper_points()),
                  "sample_images": len(list(Path("sample").rglob("*.jpg")))}))
"""


def test_the_data_files_are_installed_with_the_package(tmp_path):
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for package in ("facedet", "pruning", "app_support"):
        shutil.copytree(ROOT / package, source / package, ignore=shutil.ignore_patterns("__pycache__"))
    installed = tmp_path / "installed"
    done = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(installed),
                           str(source)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    shutil.rmtree(source)  # nothing may come from the copy it was built from
    run_dir = tmp_path / "elsewhere"
    run_dir.mkdir()
    env = dict({k: v for k, v in os.environ.items() if k != "PYTHONPATH"}, PYTHONPATH=str(installed))
    done = subprocess.run([sys.executable, "-c", ASSET_CHECK], capture_output=True, text=True, cwd=run_dir,
                          env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    found = json.loads(done.stdout)
    data = installed / "facedet" / "assets"
    assert Path(found["root"]) == data
    listed = json.loads((ROOT / "facedet" / "assets" / "photos" / "photos.json").read_text())["photos"]
    assert found["photos"] == [str(data / "photos" / entry["file"]) for entry in listed]
    assert all(len(shape) == 3 and shape[2] == 3 and min(shape[:2]) >= 100 for shape in found["shapes"])
    assert Path(found["default_photo"]).is_relative_to(data) and Path(found["default_photo"]).is_file()
    assert found["paper_points"] >= 20  # the paper's Tables 1-2: 22 checkpoints
    assert found["sample_images"] == 4  # 2 validation + 2 training images, from the installed portraits
