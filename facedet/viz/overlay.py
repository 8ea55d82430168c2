"""Drawing the Compare pictures: the original model's faces, and the pruned model's faces marked as
found by both, found only by the pruned model, or found only by the original. The app, the Gradio
front and ``facedet compare|detect --out`` all draw through this module.

The original is not ground truth (on a photo without faces every box it draws is false), so the
words say which model finds a box, never that the pruned one "missed" it.

Sizes are given in pixels of the picture *as it is shown* (``shown_width``): a 1400 px picture
shown 720 px wide on a projector needs its lines and labels drawn twice as thick to read the same.
"""

import base64
import dataclasses
from dataclasses import dataclass, field

import cv2
import numpy as np

from facedet.iou import overlap_area

LEGEND = {
    "matched": "found by both models",
    "only_pruned": "only the pruned model finds",
    "only_original": "only the original finds (dashed)",
}
# How wide a picture is assumed to be shown when nobody says (a file opened in a viewer):
# its own width, up to a typical screen's.
DEFAULT_SHOWN_WIDTH = 1600
HALO = (0, 0, 0)
_FONT = cv2.FONT_HERSHEY_SIMPLEX
_FONT_HEIGHT = 27  # cv2.getTextSize's height of a label at font scale 1


@dataclass(frozen=True)
class BoxStyle:
    """How boxes and score labels are drawn; lengths in pixels of the shown picture.

    ``halo``: a dark outline on each side of every line, so that a box stands out on light and on
    dark photos alike. ``min_dashed_side``: dashed boxes smaller than this are drawn this large
    (about their centre), because a few pixels of dashes on a tiny face read as a smudge.
    """

    name: str
    colours: dict = field(hash=False)  # kind -> RGB
    line: float
    halo: float
    label: float  # height of the score text
    label_text: tuple  # RGB of the score text on its box-coloured tag
    min_dashed_side: float


# Okabe-Ito colours (distinguishable with colour blindness), as the charts use them.
SCREEN = BoxStyle(
    name="screen",
    colours={"original": (0, 114, 178), "matched": (0, 114, 178), "only_pruned": (230, 159, 0),
             "only_original": (213, 94, 0)},
    line=2, halo=0, label=11, label_text=(255, 255, 255), min_dashed_side=12,
)
# For a projector: light colours (Okabe-Ito's sky blue and yellow, and a bright orange), which stay
# bright on dark photos, each line edged in black so that it also stands out on light ones; thick
# lines, score labels about the size of body text, and dashed boxes at least 32 px a side.
PRESENTATION = BoxStyle(
    name="presentation",
    colours={"original": (86, 180, 233), "matched": (86, 180, 233), "only_pruned": (240, 228, 66),
             "only_original": (255, 140, 0)},
    line=4, halo=1.5, label=18, label_text=(0, 0, 0), min_dashed_side=32,
)
STYLES = {style.name: style for style in (PRESENTATION, SCREEN)}


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
    """Detections (N, >=4) as a float32 copy with their boxes multiplied by ``factor``; none: (0, 5)."""
    dets = np.array(detections, dtype=np.float32)
    dets = dets.reshape(0, 5) if dets.size == 0 else dets.reshape(-1, dets.shape[-1])
    dets[:, :4] *= factor
    return dets


def _unit(image, shown_width):
    """Image pixels per shown pixel."""
    width = image.shape[1]
    return width / (shown_width or min(width, DEFAULT_SHOWN_WIDTH))


def _grown(box, side):
    """``box`` (x1, y1, x2, y2) grown about its centre to at least ``side`` on each side."""
    x1, y1, x2, y2 = box
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    half_w, half_h = max(x2 - x1, side) / 2, max(y2 - y1, side) / 2
    return cx - half_w, cy - half_h, cx + half_w, cy + half_h


def _dashes(p, q, dash):
    """Segments of the line p-q, dashed, with a dash at each end so that the corners are drawn."""
    length = float(np.hypot(q[0] - p[0], q[1] - p[1]))
    count = max(2, int(round((length / dash + 1) / 2)))  # dashes, with count - 1 gaps between them
    piece = 1 / (2 * count - 1)

    def at(t):
        return p[0] + (q[0] - p[0]) * t, p[1] + (q[1] - p[1]) * t

    return [(at(2 * i * piece), at((2 * i + 1) * piece)) for i in range(count)]


def _segments(box, dashed, dash):
    x1, y1, x2, y2 = box
    sides = [((x1, y1), (x2, y1)), ((x2, y1), (x2, y2)), ((x2, y2), (x1, y2)), ((x1, y2), (x1, y1))]
    if not dashed:
        return sides
    return [segment for p, q in sides for segment in _dashes(p, q, dash)]


def _point(p):
    return int(round(p[0])), int(round(p[1]))


@dataclass
class _Layer:
    boxes: np.ndarray  # (N, >=4) in the picture's pixels
    colour: tuple
    dashed: bool = False
    scores: bool = True


def _draw(image, layers, style, unit):
    """Every layer's boxes: all dark halos first, then the colours, then the score labels, so that
    no box's halo covers another box's line."""
    out = image.copy()
    line = max(1, int(round(style.line * unit)))
    halo = int(round(style.halo * unit))
    dash = max(3.0, 2.5 * style.line * unit)
    drawn = []
    for layer in layers:
        for det in layer.boxes:
            box = tuple(float(v) for v in det[:4])
            if layer.dashed:
                box = _grown(box, style.min_dashed_side * unit)
            drawn.append((layer, det, _segments(box, layer.dashed, dash)))
    if halo:
        for layer, _, segments in drawn:
            for p, q in segments:
                cv2.line(out, _point(p), _point(q), HALO, line + 2 * halo, cv2.LINE_AA)
    for layer, _, segments in drawn:
        for p, q in segments:
            cv2.line(out, _point(p), _point(q), layer.colour, line, cv2.LINE_AA)
    font_scale = style.label * unit / _FONT_HEIGHT
    weight = max(1, int(round(font_scale * 2)))
    faces = [tuple(det[:4]) for _, det, _ in drawn]
    placed = []
    for layer, det, _ in drawn:
        if layer.scores and len(det) > 4:
            placed.append(_label(out, f"{det[4]:.2f}", det[:4], layer.colour, style, font_scale, weight, halo,
                                 placed, faces))
    return out


def _label(out, text, box, colour, style, font_scale, weight, halo, placed, faces):
    """``text`` on a tag of the box's colour at the box's left edge: above the box, else below it,
    else inside its top, whichever covers the fewest other labels and faces. Returns the tag."""
    (tw, th), base = cv2.getTextSize(text, _FONT, font_scale, weight)
    pad = max(1, th // 6)
    width, height = tw + 2 * pad, th + base + 2 * pad
    x1, y1, x2, y2 = (int(round(v)) for v in box)
    left = min(max(x1, 0), max(0, out.shape[1] - width))
    tags = []
    for top in (y1 - height - halo, y2 + halo, y1 + halo):
        top = min(max(top, 0), max(0, out.shape[0] - height))
        tags.append((left, top, left + width, top + height))
    others = [face for face in faces if tuple(face) != tuple(box[:4])]
    tag = min(tags, key=lambda t: 4 * sum(overlap_area(t, p) for p in placed) + sum(overlap_area(t, f) for f in others))
    if halo:
        cv2.rectangle(out, (tag[0] - halo, tag[1] - halo), (tag[2] + halo, tag[3] + halo), HALO, -1)
    cv2.rectangle(out, tag[:2], tag[2:], colour, -1)
    cv2.putText(out, text, (tag[0] + pad, tag[1] + pad + th), _FONT, font_scale, style.label_text, weight, cv2.LINE_AA)
    return tag


def annotate_detections(image, detections, colour=None, style=PRESENTATION, shown_width=None):
    """``image`` with ``detections`` (N, >=4; a score in column 4 is written above each box)."""
    return _draw(image, [_Layer(_scaled(detections, 1.0), colour or style.colours["original"])], style,
                 _unit(image, shown_width))


def annotate_original(image, detections, factor=1.0, style=PRESENTATION, shown_width=None):
    """``image`` (already shrunk by ``factor``) with the original model's detections."""
    return _draw(image, [_Layer(_scaled(detections, factor), style.colours["original"])], style,
                 _unit(image, shown_width))


def annotate_pruned(image, pruned, original, comparison, factor=1.0, style=PRESENTATION, shown_width=None):
    """``image`` with the pruned model's detections coloured by ``comparison`` (facedet.compare),
    and the boxes only the original finds drawn dashed."""
    pruned, original = _scaled(pruned, factor), _scaled(original, factor)
    layers = [
        _Layer(original[comparison.missed], style.colours["only_original"], dashed=True, scores=False),
        _Layer(pruned[comparison.matched[:, 1]], style.colours["matched"]),
        _Layer(pruned[comparison.only_candidate], style.colours["only_pruned"]),
    ]
    return _draw(image, layers, style, _unit(image, shown_width))


def legend_swatch(kind, style=PRESENTATION, size=(60, 34)):
    """A small picture of how a ``LEGEND`` kind is drawn: a box of its colour, dashed where the
    pictures dash it, drawn by the same code on a neutral grey."""
    width, height = size
    image = np.full((height, width, 3), 128, np.uint8)
    inset = style.line / 2 + style.halo + 2
    box = np.array([[inset, inset, width - inset, height - inset]], np.float32)
    layer = _Layer(box, style.colours[kind], dashed=kind == "only_original", scores=False)
    # Dashes as long as on a box of this size in the pictures, however small the swatch.
    return _draw(image, [layer], dataclasses.replace(style, min_dashed_side=0), 1.0)


def legend_html(counts=None, style=PRESENTATION, names=None):
    """The legend as one line of HTML: each kind's swatch (``legend_swatch``, inline PNG) and its
    words, followed by how many boxes of that kind the pictures hold when ``counts`` is given.
    ``names`` replaces words of ``LEGEND`` (a peer's name instead of "the pruned model")."""
    items = []
    for kind, text in LEGEND.items():
        text = (names or {}).get(kind, text)
        png = base64.b64encode(png_bytes(legend_swatch(kind, style))).decode()
        count = f": <b>{counts[kind]}</b>" if counts is not None else ""
        items.append(f"<span style='white-space:nowrap'><img src='data:image/png;base64,{png}' alt='' "
                     f"style='height:1.4em;vertical-align:middle'>&nbsp;{text}{count}</span>")
    return " &emsp; ".join(items)


def png_bytes(image):
    """PNG encoding of an RGB image."""
    ok, buf = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    if not ok:
        raise ValueError("cannot encode the image as PNG")
    return buf.tobytes()
