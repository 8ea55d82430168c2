"""Compose facedet/assets/group.jpg: public-domain faces at several sizes on a public-domain background.

No public-domain group photo ships with a pip/apt package, so this builds one deterministically
from the two portraits in this folder, pasted at six scales (some mirrored) onto scikit-image's
``rocket.jpg`` (SpaceX launch photo, public domain), so that tests get faces from ~20 px to ~200 px.

Usage:
    python -m facedet.assets.make_group_photo --background /path/to/skimage/data/rocket.jpg
(``rocket.jpg`` is inside the scikit-image wheel, e.g. ``pip download --no-deps scikit-image==0.24.0``.)
"""

import argparse
import cv2
import numpy as np

from facedet.assets import asset_path

ASSETS = asset_path()
CANVAS_WH = (1200, 800)

# Head crops (x1, y1, x2, y2) in the source portraits and the face box inside each source,
# measured by eye; the face box lets us scale each crop to a wanted face width.
HEADS = {
    "grace_hopper.jpg": {"crop": (120, 15, 400, 375), "face": (155, 130, 370, 335)},
    "astronaut.png": {"crop": (140, 5, 310, 225), "face": (175, 75, 275, 185)},
}

# (source, face width in px, top-left of the pasted crop on the canvas, mirrored)
PLACEMENTS = [
    ("grace_hopper.jpg", 200, (40, 300), False),
    ("astronaut.png", 150, (900, 330), True),
    ("grace_hopper.jpg", 100, (640, 120), True),
    ("astronaut.png", 60, (420, 200), False),
    ("grace_hopper.jpg", 35, (820, 90), False),
    ("astronaut.png", 20, (300, 90), True),
]


def feathered_ellipse(height, width):
    """Alpha mask in [0, 1]: an ellipse filling the crop with soft edges, so no hard seams."""
    mask = np.zeros((height, width), np.float32)
    centre = (width // 2, height // 2)
    axes = (max(1, int(width * 0.46)), max(1, int(height * 0.46)))
    cv2.ellipse(mask, centre, axes, 0, 0, 360, 1.0, thickness=-1)
    sigma = max(1.0, 0.04 * min(height, width))
    return cv2.GaussianBlur(mask, (0, 0), sigma)[..., None]


def paste_head(canvas, source_rgb, head, face_width, top_left, mirrored):
    x1, y1, x2, y2 = head["crop"]
    crop = source_rgb[y1:y2, x1:x2]
    if mirrored:
        crop = crop[:, ::-1]
    factor = face_width / (head["face"][2] - head["face"][0])
    size = (max(1, round(crop.shape[1] * factor)), max(1, round(crop.shape[0] * factor)))
    crop = cv2.resize(np.ascontiguousarray(crop), size, interpolation=cv2.INTER_AREA)
    h, w = crop.shape[:2]
    x, y = top_left
    region = canvas[y:y + h, x:x + w].astype(np.float32)
    alpha = feathered_ellipse(h, w)
    canvas[y:y + h, x:x + w] = np.round(alpha * crop + (1 - alpha) * region).astype(np.uint8)


def read_rgb(path):
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise SystemExit(f"cannot read image: {path}")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--background", required=True, help="scikit-image's rocket.jpg")
    parser.add_argument("--out", default=str(ASSETS / "group.jpg"))
    args = parser.parse_args()

    canvas = cv2.resize(read_rgb(args.background), CANVAS_WH, interpolation=cv2.INTER_CUBIC)
    sources = {name: read_rgb(ASSETS / name) for name in HEADS}
    for name, face_width, top_left, mirrored in PLACEMENTS:
        paste_head(canvas, sources[name], HEADS[name], face_width, top_left, mirrored)
    cv2.imwrite(args.out, cv2.cvtColor(canvas, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 92])
    print(f"wrote {args.out} ({CANVAS_WH[0]}x{CANVAS_WH[1]}, {len(PLACEMENTS)} faces)")


if __name__ == "__main__":
    main()
