"""The precision-recall curves of a WIDER FACE evaluation as one JSON document.

``python -m facedet evaluate --curves FILE`` writes it, and pruning runs keep it in the results
store, so that the curves can be drawn again without predicting again. The document::

    {"format": 1, "predictions": ..., "ground_truth": ..., "only_predicted": false,
     "thresholds": [0.999, ..., 0.0],
     "easy": {"ap": 0.93, "precision": [...], "recall": [...]}, "medium": {...}, "hard": {...}}

Per setting, precision and recall at the standard's 1,000 thresholds, highest first; precision is
``null`` where no detection passes the threshold. Numbers are written in the shortest form that
reads back to the same float64, so the area under a curve read back is the AP printed.
"""

import json
import math
from typing import NamedTuple

import numpy as np

from facedet.atomic import write_text
from facedet.errors import DataError
from facedet.wider.evaluation import NUM_THRESHOLDS, thresholds, voc_ap
from facedet.wider.ground_truth import SETTINGS

FORMAT = 1


class Curve(NamedTuple):
    ap: float
    precision: np.ndarray  # NaN where no detection passes the threshold
    recall: np.ndarray


def curves_document(result, predictions=None, ground_truth=None):
    """The JSON-ready document of a ``WiderAP`` (``predictions``, ``ground_truth``: what it evaluated)."""
    document = {"format": FORMAT, "predictions": _text(predictions), "ground_truth": _text(ground_truth),
                "only_predicted": bool(result.only_predicted), "thresholds": thresholds().tolist()}
    for setting in SETTINGS:
        precision, recall = result.curves[setting]
        document[setting] = {"ap": float(getattr(result, setting)),
                             "precision": [None if math.isnan(p) else p for p in precision.tolist()],
                             "recall": recall.tolist()}
    return document


def write_curves(path, result, predictions=None, ground_truth=None):
    """Write the curves document to ``path`` atomically; a one-line DataError if that fails."""
    return write_text(path, json.dumps(curves_document(result, predictions, ground_truth)) + "\n")


def read_curves(document):
    """``{setting: Curve}`` of a curves document (a dict, or its JSON text); DataError if it is not one."""
    try:
        if isinstance(document, (str, bytes)):
            document = json.loads(document)
        if document.get("format") != FORMAT:
            raise ValueError(f"format {document.get('format')!r}, not {FORMAT}")
        curves = {}
        for setting in SETTINGS:
            entry = document[setting]
            precision = np.array([np.nan if p is None else p for p in entry["precision"]], dtype=np.float64)
            recall = np.array(entry["recall"], dtype=np.float64)
            if precision.shape != recall.shape or precision.shape != (NUM_THRESHOLDS,):
                raise ValueError(f"{setting}: {NUM_THRESHOLDS} precision and recall values were expected")
            curves[setting] = Curve(float(entry["ap"]), precision, recall)
    except (ValueError, TypeError, KeyError, AttributeError) as err:
        raise DataError(f"not a precision-recall curves document ({str(err)[:100]})") from None
    return curves


def curve_ap(curve):
    """The area under the curve's monotone precision envelope: the standard's AP of these points."""
    return float(voc_ap(curve.recall, curve.precision))


def _text(value):
    return None if value is None else str(value)
