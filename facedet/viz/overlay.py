"""Drawing the Compare page's pictures: the original model's faces, and the pruned model's faces
marked as found by both, found only by the pruned model, or found only by the original.

The original is not ground truth (on a photo without faces every box it draws is false), so the
words say which model finds a box, never that the pruned one "missed" it."""

import cv2
import numpy as np

from facedet.images import draw_detections

# RGB, Okabe-Ito: distinguishable with colour-blindness and on a projector.
COLOURS = {
    "original": (0, 114, 178),  # blue
    "matched": (0, 114, 178),  # blue: the same face as on the left
    "only_pruned": (230, 159, 0),  # orange
    "only_original": (213, 94, 0),  # vermilion, dashed
}
LEGEND = {
    "matched": "found by both models",
    "only_pruned": "only the pruned model finds",
    "only_original": "only the original finds (dashed)",
}


def fit_for_display(image, max_side=1400):
    """The image shrunk (never enlarged) so its longer side is at most ``max_side``, and the factor.

    Only what is shown is shrunk: detection always runs on the full image.
    """
    factor = min(1.0, max_side / max(image.shape[:2]))
    if factor == 1.0:
        return image, 1.0
    size = (max(1, round(image.shape[1] * factor)), max(1, round(image.shape[0] * factor)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA), factor


def _scaled(detections, factor):
    dets = np.asarray(detections, dtype=np.float32).reshape(-1, 5).copy()
    dets[:, :4] *= factor
    return dets


def _dashed_boxes(image, detections, colour, thickness):
    out = image.copy()
    dash = max(4, 3 * thickness)
    for x1, y1, x2, y2 in np.asarray(detections)[:, :4].round().astype(int):
        for (ax, ay), (bx, by) in (((x1, y1), (x2, y1)), ((x2, y1), (x2, y2)), ((x2, y2), (x1, y2)), ((x1, y2), (x1, y1))):
            length = max(abs(bx - ax), abs(by - ay))
            for start in range(0, length, 2 * dash):
                end = min(start + dash, length)
                p = (round(ax + (bx - ax) * start / length), round(ay + (by - ay) * start / length))
                q = (round(ax + (bx - ax) * end / length), round(ay + (by - ay) * end / length))
                cv2.line(out, p, q, colour, thickness, cv2.LINE_AA)
    return out


def _thickness(image):
    return max(2, round(max(image.shape[:2]) / 400))


def annotate_original(image, detections, factor=1.0):
    """``image`` (already shrunk by ``factor``) with the original model's detections."""
    return draw_detections(image, _scaled(detections, factor), color=COLOURS["original"], thickness=_thickness(image))


def annotate_pruned(image, pruned, original, comparison, factor=1.0):
    """``image`` with the pruned model's detections coloured by ``comparison`` (facedet.compare),
    and the boxes only the original finds drawn dashed."""
    pruned, original = _scaled(pruned, factor), _scaled(original, factor)
    thickness = _thickness(image)
    out = _dashed_boxes(image, original[comparison.missed], COLOURS["only_original"], thickness)
    out = draw_detections(out, pruned[comparison.matched[:, 1]], color=COLOURS["matched"], thickness=thickness)
    return draw_detections(out, pruned[comparison.only_candidate], color=COLOURS["only_pruned"], thickness=thickness + 1)


def png_bytes(image):
    """PNG encoding of an RGB image."""
    ok, buf = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    if not ok:
        raise ValueError("cannot encode the image as PNG")
    return buf.tobytes()
