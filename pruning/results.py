"""The end of a training run: the saved models and their figures.

Writes ``model.pth`` (the masked model, which ``facedet`` loads) and ``compact.pth`` (channels
removed), measures parameters, sparsity, FLOPs at 640x640 and CPU latency of both, and the
Easy/Medium/Hard AP on the validation split when it has ground truth, with the data root and
ground-truth folder it used and the precision-recall curves (kept in the results store).
"""

import copy
import os
import sys
from pathlib import Path

from facedet.latency import describe
from facedet.weights import save_checkpoint

LATENCY_RUNS = 5


def finish_run(trainer, stage):
    """Figures for the results store (keys of ``pruning.store.FIGURES``)."""
    from pruning.compact import compact_model
    from pruning.costs import model_costs

    config, run_dir = trainer.config, trainer.run_dir
    model = copy.deepcopy(trainer.net).cpu().eval()
    provenance = {"criterion": config.criterion, "rate": config.rate, "epochs": config.schedule.epochs,
                  "finetune_epochs": config.schedule.finetune_epochs, "data": trainer.data_description,
                  "run_id": trainer.run_id}
    checkpoint = save_checkpoint(run_dir / "model.pth", model, config.detector, provenance=provenance)
    stage("measuring")
    costs = model_costs(model, latency=False)
    latency = detector_latency(model, config.detector)
    figures = {
        "checkpoint": str(checkpoint.resolve()),
        "parameters": costs["parameters"], "nonzero_parameters": costs["nonzero_parameters"],
        "sparsity": costs["sparsity"], "flops": costs["flops"], "nonzero_flops": costs["nonzero_flops"],
        "latency_ms": latency["ms"], "network_ms": latency["network_ms"], "latency_setup": describe(latency),
    }
    stage("compacting")
    try:
        compact = compact_model(model).model
    except RuntimeError as err:  # should not happen; the masked model is still a result
        figures["message"] = f"compaction failed: {err}"
    else:
        path = save_checkpoint(run_dir / "compact.pth", compact, config.detector, compact=True,
                               provenance=dict(provenance, compacted_from=str(checkpoint.resolve())))
        compact_costs = model_costs(compact, latency=False)
        compact_latency = detector_latency(compact, config.detector)
        figures.update(compact_checkpoint=str(path.resolve()), compact_parameters=compact_costs["parameters"],
                       compact_flops=compact_costs["flops"], compact_latency_ms=compact_latency["ms"],
                       compact_network_ms=compact_latency["network_ms"])
    if config.evaluate:
        curves = None
        if trainer.root is not None:
            stage("evaluating")
            evaluation, curves = evaluate_model(model, config.detector, trainer.root, config.eval_images, trainer.cancel)
            figures.update(evaluation)
        stage("agreement with the teacher")
        figures.update(teacher_agreement(model, config, trainer.cancel))
        stage("recording")  # raises Cancelled if the evaluation was cut short
        if curves is not None and trainer.store is not None and trainer.run_id is not None:
            trainer.store.record_curves(trainer.run_id, curves)
    return figures


def detector_latency(model, arch):
    """End-to-end latency on the CPU as ``facedet bench`` measures it (``facedet.latency``), with
    the faster backend for this model here."""
    from facedet.detector import Detector
    from facedet.latency import measure_latency

    return measure_latency(Detector(model, arch, device="cpu", backend="auto"), runs=LATENCY_RUNS, warmup=2)


def holdout_photos(folder=None):
    """``(images, names)`` for the agreement measure: ``folder``'s photos, default the project's
    held-out sample photos (never trained on by the quick preset)."""
    from facedet.samples import photos_dir
    from pruning.photos import find_photos, load_photos

    images, names, _ = load_photos(find_photos(folder or photos_dir("holdout")))
    return images, [Path(n).name for n in names]


def teacher_agreement(model, config, cancel=None):
    """``{agreement_ap, agreement_recall, agreement_photos}`` of the trained model with its
    starting checkpoint (the teacher) on held-out photos; {} when there are none to use."""
    import json

    from facedet.detector import Detector
    from facedet.weights import load_model
    from pruning.agreement import detector_agreement

    from facedet.errors import FacedetError
    from facedet.samples import photos_dir

    holdout = Path(config.holdout or photos_dir("holdout")).expanduser().resolve()
    if config.photos and _overlaps(Path(config.photos).expanduser().resolve(), holdout):
        print(f"agreement not computed: the held-out photos {holdout} are among the training photos", file=sys.stderr)
        return {}
    try:
        images, names = holdout_photos(holdout)
    except FacedetError as err:  # a missing folder costs the figure, not the run
        print(f"agreement not computed: {err}", file=sys.stderr)
        return {}
    teacher_model, _ = load_model(config.weights or config.detector, arch=config.detector)
    result = detector_agreement(Detector(model, config.detector, device="cpu"),
                                Detector(teacher_model, config.detector, device="cpu"), images, cancel)
    if result.ap is None:
        return {}
    return {"agreement_ap": result.ap, "agreement_recall": result.recall, "agreement_photos": json.dumps(names)}


def ground_truth_dir(root):
    """The WIDER FACE evaluation ``.mat`` folder for a data root, or None."""
    candidates = [Path(root) / "eval_tools" / "ground_truth"]
    if os.environ.get("FACEDET_WIDER_GT"):
        candidates.append(Path(os.environ["FACEDET_WIDER_GT"]))
    return next((c for c in candidates if (c / "wider_face_val.mat").is_file()), None)


def evaluate_model(model, arch, root, limit=None, cancel=None):
    """``(figures, curves)`` on the validation split (single scale): figures ``{ap_easy, ap_medium,
    ap_hard, eval_root, eval_gt}`` and the precision-recall curves document
    (``facedet.wider.curves``); ``({}, None)`` without ground truth or validation images."""
    from facedet.detector import Detector
    from facedet.errors import DataError
    from facedet.wider.curves import curves_document
    from facedet.wider.evaluation import evaluate
    from facedet.wider.protocols import predict_split

    gt = ground_truth_dir(root)
    if gt is None:
        print(f"no WIDER FACE ground truth for {root}: APs not computed", file=sys.stderr)
        return {}, None
    root, gt = Path(root).resolve(), gt.resolve()
    detector = Detector(model, arch, device="cpu")
    try:
        predictions = predict_split(detector, root, "val", limit=limit, cancel=cancel)
        ap = evaluate(predictions, gt, only_predicted=limit is not None)
    except DataError as err:
        print(f"APs not computed: {err}", file=sys.stderr)
        return {}, None
    figures = {"ap_easy": ap.easy, "ap_medium": ap.medium, "ap_hard": ap.hard, "eval_root": str(root), "eval_gt": str(gt)}
    described = f"single-scale predictions on the validation images of {root}" + (f" (the first {limit})" if limit else "")
    return figures, curves_document(ap, predictions=described, ground_truth=gt)


def _overlaps(a, b):
    return a == b or a in b.parents or b in a.parents
