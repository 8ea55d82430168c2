"""The project installs as a package (``pip install -e .``, done by requirements.txt): console
scripts, imports from any folder, benchmarks without path tricks."""

import json
import os
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
