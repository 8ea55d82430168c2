"""How long ``python -m facedet evaluate`` takes on the full WIDER FACE validation set.

Writes synthetic submissions for all 3,226 validation images (from the real ground truth, see
``facedet.wider.synthetic``) at three sizes, in the authors' text format, then times the whole
command (a fresh process: interpreter start, imports, reading the files, the evaluation) and,
for comparison, the plain image-by-image, threshold-by-threshold implementation of the same
protocol.

    python benchmarks/bench_evaluate.py [--gt DIR] [--repeat 5] [--plain]

``--gt`` defaults to $FACEDET_WIDER_GT. The requirement: the whole command at least 20 times
faster than the plain implementation, with identical APs (``--plain`` checks both at ~10
detections per image). Wall time depends on what else runs; CPU time (user + sys) is printed too.
"""

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

from facedet.wider.evaluation import evaluate
from facedet.wider.ground_truth import load_ground_truth
from facedet.wider.plain_evaluation import plain_evaluate
from facedet.wider.submission import write_submission
from facedet.wider.synthetic import synthetic_predictions

# (label, generator parameters): detections per image from few (a confident detector such as
# EXTD) to the 750 cap (EResFD at threshold 0.05 fills it on almost every image).
SIZES = [
    ("~10 per image", dict(score_decimals=3, box_decimals=1)),
    ("~65 per image", dict(false_positives=60.0, score_decimals=3, box_decimals=1)),
    ("750 per image", dict(false_positives=800.0, max_per_image=750, score_decimals=3, box_decimals=1)),
]


def time_command(pred_dir, gt_dir, repeat, env):
    cmd = [sys.executable, "-m", "facedet", "evaluate", "--pred", str(pred_dir), "--gt", str(gt_dir), "--json"]
    walls, cpus = [], []
    for _ in range(repeat):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True, cwd=ROOT, env=env)
        walls.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return statistics.median(walls), min(walls), statistics.median(cpus)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gt", default=os.environ.get("FACEDET_WIDER_GT"), help="WIDER FACE eval-tools ground truth")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--plain", action="store_true", help="also time the plain per-image implementation (minutes)")
    args = parser.parse_args()
    if not args.gt:
        parser.error("pass --gt DIR or set FACEDET_WIDER_GT")
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ)
        gt = load_ground_truth(args.gt)
        print(f"python -m facedet evaluate, {len(gt.keys)} validation images, {os.cpu_count()} CPUs, "
              f"load average {os.getloadavg()[0]:.1f}")
        for label, params in SIZES:
            predictions = synthetic_predictions(gt, 0, **params)
            folder = write_submission(predictions, Path(tmp) / label.split()[0].strip("~"))
            lines = sum(len(rows) for rows in predictions.values())
            megabytes = sum(f.stat().st_size for f in folder.glob("*/*.txt")) / 1e6
            # One untimed run warms the file cache.
            subprocess.run([sys.executable, "-m", "facedet", "evaluate", "--pred", str(folder), "--gt", args.gt],
                           check=True, capture_output=True, cwd=ROOT, env=env)
            wall, best, cpu = time_command(folder, args.gt, args.repeat, env)
            print(f"  {label:>14} ({lines:>9,} lines, {megabytes:4.1f} MB of text):")
            print(f"      whole command:          {wall:.2f} s wall (best {best:.2f} s), {cpu:.2f} s CPU")
            start = time.process_time()
            evaluate(predictions, args.gt)
            in_memory = time.process_time() - start
            print(f"      in memory, no files:    {in_memory:.2f} s CPU (as the app and pruning sessions use it)")
            if args.plain and label.startswith("~10"):
                start = time.perf_counter()
                plain = plain_evaluate(predictions, args.gt)
                plain_s = time.perf_counter() - start
                start = time.perf_counter()
                fast = evaluate(predictions, args.gt)
                fast_s = time.perf_counter() - start
                same = "identical APs" if plain.as_dict() == fast.as_dict() else "APs DIFFER"
                print(f"  plain per-image implementation, in process: {plain_s:.1f} s; vectorised: {fast_s:.2f} s ({same}); "
                      f"the whole command is {plain_s / wall:.0f}x faster than the plain implementation")


if __name__ == "__main__":
    main()
