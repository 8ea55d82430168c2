"""The quick session against its alternatives, on real photos it never trained on.

For each rate: the dense detector, the one-shot pruned one (no training), the quick preset without
distillation (the generated sample set's labels), the quick preset (the project's photos,
distilled), and the published checkpoint at that rate (200 SFP epochs on WIDER FACE). Columns:
training time on this machine, agreement with the dense model (pruning.agreement) on the held-out
photos, and faces found / false boxes at score >= 0.5 against our hand annotations (IoU >= 0.4).

    python benchmarks/bench_quick_session.py [--detector eresfd] [--criterion fpgm] [--rates 0.3 0.5]
"""

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

from facedet.detector import Detector
from facedet.models import DETECTORS
from facedet.images import read_image
from facedet.samples import annotated
from facedet.weights import load_model
from pruning.agreement import agreement, face_counts
from pruning.criteria import one_shot_prune
from pruning.presets import preset_config
from pruning.train import train


ROWS = ("oneshot", "sample", "distilled", "published")


def evaluate(model, arch, photos, teacher_dets):
    detector = Detector(model.cpu().eval(), arch, device="cpu")
    dets = [detector.detect(image) for image, _ in photos]
    found = missed = false = 0
    for d, (_, faces) in zip(dets, photos):
        f, m, e = face_counts(d, faces)
        found, missed, false = found + f, missed + m, false + e
    return agreement(dets, teacher_dets), found, found + missed, false


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--detector", default="eresfd", choices=tuple(DETECTORS))
    parser.add_argument("--criterion", default="fpgm")
    parser.add_argument("--rates", type=float, nargs="+", default=[0.3, 0.5])
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--rows", nargs="+", choices=ROWS, default=list(ROWS), help="which rows (default all)")
    parser.add_argument("--set", nargs="*", default=[], metavar="NAME=VALUE",
                        help="override preset settings, e.g. epochs=6 (values as JSON)")
    parser.add_argument("--json", help="also write the rows to this file")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    overrides = {name: json.loads(value) for name, value in (item.split("=", 1) for item in args.set)}

    photos = [(read_image(p.path), p.faces) for p in annotated("holdout")]
    dense, _ = load_model(args.detector)
    teacher = Detector(dense, args.detector, device="cpu")
    teacher_dets = [teacher.detect(image) for image, _ in photos]
    faces = sum(len(f) for _, f in photos)
    print(f"{len(photos)} held-out photos, {faces} hand-annotated faces; {args.threads} threads; "
          f"{args.detector} {args.criterion}", file=sys.stderr)

    rows = []

    def add(label, rate, model, seconds):
        ag, found, total, false = evaluate(model, args.detector, photos, teacher_dets)
        row = dict(model=label, rate=rate, seconds=round(seconds, 1), agreement_ap=round(ag.ap, 3),
                   agreement_recall=round(ag.recall, 3), found=found, faces=total, false_boxes=false)
        rows.append(row)
        print(f"{label:34s} {rate:4.0%} {seconds:7.0f} s  agreement AP {ag.ap:.3f}  found {found}/{total}"
              f"  false {false}", flush=True)

    add("dense", 0.0, dense, 0.0)
    for rate in args.rates:
        if "oneshot" in args.rows:
            model, _ = load_model(args.detector)
            one_shot_prune(model, args.criterion, rate)
            add("one-shot (no training)", rate, model, 0.0)
        sessions = (("sample", "quick, sample set, no distillation", dict(distill=False, photos=None)),
                    ("distilled", "quick, photos, distilled", {}))
        for _, label, settings in (s for s in sessions if s[0] in args.rows):
            config = preset_config("quick", detector=args.detector, criterion=args.criterion, rate=rate,
                                   evaluate=False, threads=args.threads, **{**settings, **overrides})
            with tempfile.TemporaryDirectory() as run_dir:
                started = time.perf_counter()
                result = train(config, Path(run_dir) / "run")
                add(label, rate, result.model, time.perf_counter() - started)
        name = f"{args.detector}-{args.criterion}-{round(rate * 100)}"
        if "published" not in args.rows:
            continue
        try:
            published, _ = load_model(name)
        except Exception as err:  # no published checkpoint at this rate
            print(f"{name}: {err}", file=sys.stderr)
        else:
            add(f"published {name}", rate, published, 0.0)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
