"""Many quick sessions at once: settings x seeds, judged on the held-out photos.

A run's faces found move by about three of twenty with the seed alone, so a setting is judged by
its mean over seeds. Each job trains the quick preset with the job's overrides and seed, then
counts faces found and false boxes against our hand annotations of the held-out photos (score
0.4 / 0.5 / 0.6, IoU >= 0.4) and the agreement AP with the dense model. Jobs run in parallel
processes (``--workers``, each ``--threads`` torch threads, on ``--device``); every finished job
is appended to ``--out`` as one JSON line, so a stopped sweep keeps what it did, and the summary
(mean per setting and rate) is printed at the end (``--summary FILE`` prints it for a results file).
``--keep DIR`` also saves every job's model there as a checkpoint, to look at its errors afterwards.

    python benchmarks/sweep_quick_session.py --grid grid.json --seeds 0 1 2 --rates 0.5 --workers 2 --out sweep.jsonl

``grid.json`` is a list of ``{"name": ..., "set": {setting: value, ...}}`` (TrainConfig's flat
settings on top of the quick preset).
"""

import argparse
import json
import multiprocessing
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

THRESHOLDS = (0.4, 0.5, 0.6)
_WORKER = {}


def _init(threads, detector):
    import torch

    from facedet.detector import Detector
    from facedet.images import read_image
    from facedet.samples import annotated
    from facedet.weights import load_model

    torch.set_num_threads(threads)
    import cv2

    cv2.setNumThreads(threads)  # many workers side by side: no thread pool each
    photos = [(read_image(p.path), p.faces) for p in annotated("holdout")]
    dense, _ = load_model(detector)
    teacher = Detector(dense, detector, device="cpu")
    _WORKER.update(photos=photos, teacher_dets=[teacher.detect(image) for image, _ in photos], threads=threads)


def _judge(model, detector):
    from facedet.detector import Detector
    from facedet.params import count_parameters
    from pruning.agreement import agreement, face_counts

    judge = Detector(model.cpu().eval(), detector, device="cpu")
    dets = [judge.detect(image) for image, _ in _WORKER["photos"]]
    figures = {"agreement_ap": round(agreement(dets, _WORKER["teacher_dets"]).ap, 4),
               "sparsity": count_parameters(model).sparsity}
    for threshold in THRESHOLDS:
        found = false = 0
        for d, (_, faces) in zip(dets, _WORKER["photos"]):
            f, _, e = face_counts(d, faces, threshold=threshold)
            found, false = found + f, false + e
        figures[f"found@{threshold}"], figures[f"false@{threshold}"] = found, false
    return figures


def _job(job):
    from pruning.photos import find_photos
    from pruning.presets import preset_config
    from pruning.train import train

    # A grid entry's settings win, its own rate (or layer rates) included.
    settings = {**dict(detector=job["detector"], criterion=job["criterion"], rate=job["rate"], evaluate=False,
                       threads=_WORKER["threads"], device=job["device"], amp=False, seed=job["seed"]), **job["set"]}
    config = preset_config("quick", **settings)
    with tempfile.TemporaryDirectory() as run_dir:
        started = time.perf_counter()
        result = train(config, Path(run_dir) / "run")
        seconds = time.perf_counter() - started
    photos = len(find_photos(config.photos)) if config.photos else config.sample_images
    steps = -(-photos * config.crops_per_photo // config.batch_size) * config.schedule.total_epochs
    figures = _judge(result.model, job["detector"])
    if job.get("keep"):  # the student, for looking at its errors later
        from facedet.weights import save_checkpoint

        keep = Path(job["keep"]) / f"{job['name']}-r{config.rate:g}-s{job['seed']}.pth"
        keep.parent.mkdir(parents=True, exist_ok=True)
        save_checkpoint(keep, result.model.cpu(), job["detector"],
                        provenance={"settings": job["set"], "seed": job["seed"]})
    return {**{k: job[k] for k in ("name", "seed")}, "rate": config.rate, "sparsity": round(figures.pop("sparsity"), 4),
            "seconds": round(seconds, 1),
            "epochs": config.schedule.total_epochs, "steps": steps,
            **figures}


def summarise(rows, out=sys.stdout):
    groups = defaultdict(list)
    for row in rows:
        groups[(row["name"], row["rate"])].append(row)
    print(f"{'setting':28s} rate  n  found@.5  false@.5  found@.4 false@.4  agreeAP  seconds steps", file=out)
    for (name, rate), runs in sorted(groups.items(), key=lambda item: (item[0][1], -_mean(item[1], "found@0.5"))):
        print(f"{name:28s} {rate:4.0%} {len(runs):2d}  {_mean(runs, 'found@0.5'):7.2f}  {_mean(runs, 'false@0.5'):7.2f}"
              f"  {_mean(runs, 'found@0.4'):7.2f}  {_mean(runs, 'false@0.4'):7.2f}  {_mean(runs, 'agreement_ap'):6.3f}"
              f"  {_mean(runs, 'seconds'):6.0f} {_mean(runs, 'steps'):5.0f}", file=out)


def _mean(rows, key):
    return sum(r[key] for r in rows) / len(rows)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grid", help="JSON list of {name, set}")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--rates", type=float, nargs="+", default=[0.5])
    parser.add_argument("--detector", default="eresfd")
    parser.add_argument("--criterion", default="fpgm")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1, help="torch threads per worker")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--minutes", type=float, default=None, help="start no job after this many minutes")
    parser.add_argument("--out", default="sweep.jsonl")
    parser.add_argument("--summary", help="only print the summary of this results file")
    parser.add_argument("--keep", help="save every job's model into this folder as a checkpoint")
    args = parser.parse_args(argv)
    if args.summary:
        summarise([json.loads(line) for line in Path(args.summary).read_text().splitlines() if line.strip()])
        return
    grid = json.loads(Path(args.grid).read_text())
    # Seeds outermost: a sweep stopped early has every setting at its first seeds.
    jobs = [dict(name=item["name"], set=item.get("set", {}), seed=seed, rate=rate, detector=args.detector,
                 criterion=args.criterion, device=args.device, keep=args.keep)
            for seed in args.seeds for rate in args.rates for item in grid]
    deadline = time.monotonic() + args.minutes * 60 if args.minutes else None
    rows = []
    context = multiprocessing.get_context("spawn")
    with context.Pool(args.workers, initializer=_init, initargs=(args.threads, args.detector)) as pool, \
            open(args.out, "a") as out:
        pending = [pool.apply_async(_job, (job,)) for job in jobs]
        for job, handle in zip(jobs, pending):
            remaining = None if deadline is None else max(deadline - time.monotonic(), 1.0)
            try:
                row = handle.get(timeout=remaining)
            except multiprocessing.TimeoutError:
                print("time is up: the jobs not finished are left out", file=sys.stderr)
                pool.terminate()
                break
            except Exception as err:  # one failing setting does not stop the sweep
                print(f"{job['name']} seed {job['seed']}: {type(err).__name__}: {err}", file=sys.stderr)
                continue
            rows.append(row)
            out.write(json.dumps(row) + "\n")
            out.flush()
            print(json.dumps(row), flush=True)
    summarise(rows)


if __name__ == "__main__":
    main()
