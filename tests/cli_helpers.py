"""Running the command lines as a user does (a subprocess), and the one-error-line check."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def cli_env(weights_dir, folder):
    """The environment of a subprocess run: published weights, every written location under ``folder``."""
    return dict(os.environ, FACEDET_WEIGHTS_DIR=str(weights_dir), FACEDET_CACHE_DIR=str(folder / "cache"),
                PRUNING_DATA_DIR=str(folder / "data"), PRUNING_RESULTS_DB=str(folder / "results.sqlite3"),
                OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))


def cli(env, module, *args, timeout=120):
    return subprocess.run([sys.executable, "-m", module, *map(str, args)], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


def assert_one_error_line(done, *expected):
    assert done.returncode == 2, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    assert "Traceback" not in done.stderr
    for text in expected:
        assert text in lines[0], lines[0]
