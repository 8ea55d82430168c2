"""S3FD-style training augmentation: photometric distortion, data-anchor sampling or random square
crops, random interpolation, horizontal flip; fixed-size crops with normalised face boxes.

The probabilities and ranges are those of the authors' training configuration (EXTD/EResFD
``data/config.py``); the code is ours. Two deliberate differences: boxes are clipped to the crop
(the authors' data-anchor path could leave them sticking out), and crops that run past the image
on any side are padded with the mean colour (theirs only padded the top and left). The image is
never enlarged as a whole: only the crop window is resampled, so zooming onto a tiny face in a
large photo costs no more than any other crop.
"""

import math

import cv2
import numpy as np
import torch

from facedet.iou import iou_matrix
from facedet.detector import MEAN_RGB
from facedet.priors import ANCHOR_SIZES

# Photometric distortion: (probability, maximum change) per step.
BRIGHTNESS = (0.5, 0.125)  # factor 1 +- 0.125
CONTRAST = (0.5, 0.5)
SATURATION = (0.5, 0.5)
HUE = (0.5, 18 * 360 / 256)  # the authors shift PIL's 0-255 hue by up to 18: about 25 degrees

DATA_ANCHOR_PROBABILITY = 0.5
MIN_FACE = 6.0  # px in the output crop: smaller faces (by area) are dropped
CROP_SCALES = (1.0, 0.3, 0.3, 0.3, 0.3)  # random square crops: smallest side fraction, one sampler each
TRIALS = 50  # attempts per sampler
FLIP_PROBABILITY = 0.5
RETRIES = 10  # new draws when a crop lost every face (the authors drew another image instead)

# The authors pick one of five resampling filters at random (PIL's Hamming has no OpenCV twin).
INTERPOLATIONS = (cv2.INTER_LINEAR, cv2.INTER_CUBIC, cv2.INTER_AREA, cv2.INTER_NEAREST, cv2.INTER_LANCZOS4)


class TrainTransform:
    """``transform(image, boxes) -> (tensor [3, size, size], boxes [N, 4])``.

    ``image``: RGB uint8 HxWx3; ``boxes``: x1,y1,x2,y2 in pixels. The tensor is RGB minus the
    mean (123, 117, 104), unscaled, like the detectors' input; boxes are normalised to [0, 1].
    ``rng``: a ``numpy.random.Generator`` (or a seed) for reproducible draws.
    """

    def __init__(self, size=640, rng=None, photometric=True, data_anchor_probability=DATA_ANCHOR_PROBABILITY,
                 min_face=MIN_FACE, flip_probability=FLIP_PROBABILITY, anchor_sizes=ANCHOR_SIZES):
        if int(size) < 16:
            raise ValueError(f"training crops must be at least 16 px, not {size}")
        self.size = int(size)
        self.rng = np.random.default_rng(rng)
        self.photometric = photometric
        self.data_anchor_probability = data_anchor_probability
        self.min_face = min_face
        self.flip_probability = flip_probability
        self.anchor_sizes = np.asarray(anchor_sizes, dtype=np.float64)

    def __call__(self, image, boxes):
        image = np.ascontiguousarray(image)
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"expected an RGB uint8 HxWx3 image, got {image.dtype} {image.shape}")
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        for _attempt in range(RETRIES):
            crop, crop_boxes = self.augment(image, boxes)
            if len(crop_boxes) or not len(boxes):
                break
        return to_tensor(crop), torch.from_numpy((crop_boxes / self.size).astype(np.float32))

    def augment(self, image, boxes):
        """One random draw: ``(crop uint8 size x size x 3, boxes in crop pixels)``."""
        rng = self.rng
        # Colours draw from their own stream: switching them off leaves the geometry unchanged.
        colour_rng = np.random.default_rng(rng.integers(2**63))
        if self.photometric:
            image = distort(image, colour_rng)
        if len(boxes) and rng.random() < self.data_anchor_probability:
            window = self._data_anchor_window(image.shape, boxes)
        else:
            window = self._square_crop_window(image.shape, boxes)
        interpolation = INTERPOLATIONS[int(rng.integers(len(INTERPOLATIONS)))]
        crop = crop_resize(image, window, self.size, interpolation)
        crop_boxes = project_boxes(boxes, window, self.size, self.min_face)
        if rng.random() < self.flip_probability:
            crop = np.ascontiguousarray(crop[:, ::-1])
            crop_boxes = crop_boxes[:, [2, 1, 0, 3]] * [-1, 1, -1, 1] + [self.size, 0, self.size, 0]
        return crop, crop_boxes

    def _data_anchor_window(self, shape, boxes):
        """PyramidBox's data-anchor sampling: zoom so that a random face gets the size of a random
        anchor no larger than the next one up from its own, then a crop around it."""
        rng = self.rng
        height, width = shape[:2]
        face = boxes[int(rng.integers(len(boxes)))]
        side = math.sqrt(max(face[2] - face[0], 1e-6) * max(face[3] - face[1], 1e-6))
        nearest = int(np.argmin(np.abs(self.anchor_sizes - side)))
        target = self.anchor_sizes[int(rng.integers(min(nearest + 1, len(self.anchor_sizes) - 1) + 1))]
        ratio = target / side * 2.0 ** rng.uniform(-1.0, 1.0)

        # In the zoomed image: a size x size window that holds the face (or lies within it).
        crop = self.size
        x1, y1, x2, y2 = face * ratio
        zoomed_w, zoomed_h = width * ratio, height * ratio
        if crop < max(zoomed_w, zoomed_h):
            left = rng.uniform(min(x1, x2 - crop), max(x1, x2 - crop), TRIALS)
            top = rng.uniform(min(y1, y2 - crop), max(y1, y2 - crop), TRIALS)
        else:
            left = rng.uniform(zoomed_w - crop, 0.0, TRIALS)
            top = rng.uniform(zoomed_h - crop, 0.0, TRIALS)
        windows = np.stack([left, top, left + crop, top + crop], axis=1) / ratio
        # Keep the windows that hold a whole face or overlap one closely (IoU > 0.7).
        inside = _contains(windows, boxes).any(axis=1)
        close = (iou_matrix(windows, boxes) > 0.7).any(axis=1)
        good = np.flatnonzero(inside | close)
        if not len(good):
            return (0.0, 0.0, float(width), float(height))
        return tuple(windows[good[int(rng.integers(len(good)))]])

    def _square_crop_window(self, shape, boxes):
        """SSD-style sampling: per scale, the first of ``TRIALS`` random square windows holding a
        whole face; one of those found, or the whole image when none (or no face)."""
        rng = self.rng
        height, width = shape[:2]
        found = []
        for scale in CROP_SCALES:
            side = rng.uniform(scale, 1.0, TRIALS) * min(width, height)
            left = rng.uniform(0.0, 1.0, TRIALS) * (width - side)
            top = rng.uniform(0.0, 1.0, TRIALS) * (height - side)
            windows = np.stack([left, top, left + side, top + side], axis=1)
            if len(boxes):
                hits = np.flatnonzero(_contains(windows, boxes).any(axis=1))
                if len(hits):
                    found.append(windows[hits[0]])
        if not found:
            return (0.0, 0.0, float(width), float(height))
        return tuple(found[int(rng.integers(len(found)))])


def distort(image, rng):
    """Random brightness, contrast, saturation and hue, in one of the authors' two orders."""
    out = image.astype(np.float32)
    steps = (_brightness, _contrast, _saturation, _hue) if rng.random() > 0.5 else (_brightness, _saturation, _hue, _contrast)
    for step in steps:
        out = step(out, rng)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def _brightness(image, rng):
    probability, delta = BRIGHTNESS
    if rng.random() < probability:
        image = np.clip(image * (1.0 + rng.uniform(-delta, delta)), 0, 255)
    return image


def _contrast(image, rng):
    probability, delta = CONTRAST
    if rng.random() < probability:
        mean = float(_gray(image).mean())  # blend with the mean grey, as PIL's Contrast does
        image = np.clip(mean + (image - mean) * (1.0 + rng.uniform(-delta, delta)), 0, 255)
    return image


def _saturation(image, rng):
    probability, delta = SATURATION
    if rng.random() < probability:
        gray = _gray(image)[..., None]
        image = np.clip(gray + (image - gray) * (1.0 + rng.uniform(-delta, delta)), 0, 255)
    return image


def _hue(image, rng):
    probability, delta = HUE
    if rng.random() < probability:
        hsv = cv2.cvtColor(np.ascontiguousarray(image / 255.0, dtype=np.float32), cv2.COLOR_RGB2HSV)
        hsv[..., 0] = np.mod(hsv[..., 0] + rng.uniform(-delta, delta), 360.0)  # degrees for float input
        image = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB) * 255.0
    return image


def _gray(image):
    return image[..., 0] * 0.299 + image[..., 1] * 0.587 + image[..., 2] * 0.114


def crop_resize(image, window, size, interpolation=cv2.INTER_LINEAR):
    """The ``window`` (x1, y1, x2, y2 pixels, may pass the image edges) as a ``size x size`` image.

    A point x of the image lands at ``(x - x1) * size / (x2 - x1)``; outside the image is the mean
    colour (zero after normalisation).
    """
    x1, y1, x2, y2 = window
    scale_x, scale_y = size / (x2 - x1), size / (y2 - y1)
    fill = tuple(float(v) for v in MEAN_RGB)
    if min(scale_x, scale_y) < 1.0:
        # Shrink the whole image first (averaging filters only work in resize), then map the
        # window in its coordinates; resize keeps pixel edges at exact multiples.
        height, width = image.shape[:2]
        new_w = max(1, round(width * min(scale_x, 1.0)))
        new_h = max(1, round(height * min(scale_y, 1.0)))
        image = cv2.resize(image, (new_w, new_h), interpolation=interpolation)
        fx, fy = new_w / width, new_h / height
        x1, x2, y1, y2 = x1 * fx, x2 * fx, y1 * fy, y2 * fy
        scale_x, scale_y = scale_x / fx, scale_y / fy
        interpolation = cv2.INTER_LINEAR if interpolation == cv2.INTER_AREA else interpolation
    # warpAffine samples at pixel centres: edge x maps to (x - x1) * s, i.e. index i to
    # s * i + s * (0.5 - x1) - 0.5.
    matrix = np.array([[scale_x, 0.0, scale_x * (0.5 - x1) - 0.5], [0.0, scale_y, scale_y * (0.5 - y1) - 0.5]])
    if interpolation == cv2.INTER_AREA:  # not a warp filter; only reached when enlarging
        interpolation = cv2.INTER_LINEAR
    return cv2.warpAffine(image, matrix, (size, size), flags=interpolation,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=fill)


def project_boxes(boxes, window, size, min_face=MIN_FACE):
    """Boxes in the ``size x size`` crop of ``window``: those whose centre is inside the window,
    clipped to it, without those smaller than ``min_face`` px (by area)."""
    x1, y1, x2, y2 = window
    if not len(boxes):
        return np.zeros((0, 4), dtype=np.float64)
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2
    keep = (centres[:, 0] > x1) & (centres[:, 0] < x2) & (centres[:, 1] > y1) & (centres[:, 1] < y2)
    scale = np.array([size / (x2 - x1), size / (y2 - y1)] * 2)
    out = np.clip((boxes[keep] - [x1, y1, x1, y1]) * scale, 0, size)
    area = (out[:, 2] - out[:, 0]) * (out[:, 3] - out[:, 1])
    return out[area >= min_face * min_face]


def to_tensor(image):
    """RGB uint8 HxWx3 -> float32 [3, H, W] minus the mean colour (the detectors' input)."""
    chw = image.astype(np.float32).transpose(2, 0, 1) - np.asarray(MEAN_RGB, dtype=np.float32)[:, None, None]
    return torch.from_numpy(np.ascontiguousarray(chw))


def collate(batch):
    """``[(image [3,S,S], boxes [N_i,4]), ...] -> (images [B,3,S,S], [boxes, ...])``."""
    images = torch.stack([image for image, _ in batch])
    return images, [torch.as_tensor(boxes, dtype=torch.float32).reshape(-1, 4) for _, boxes in batch]


def _contains(windows, boxes):
    """``[W, N]``: box fully inside window."""
    return ((windows[:, None, 0] <= boxes[None, :, 0]) & (windows[:, None, 1] <= boxes[None, :, 1])
            & (windows[:, None, 2] >= boxes[None, :, 2]) & (windows[:, None, 3] >= boxes[None, :, 3]))


