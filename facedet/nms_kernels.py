"""Greedy NMS loops compiled by Numba (``facedet.nms`` calls them; importing this module loads Numba).

Both keep exactly the boxes of the reference loop: visit boxes best first, keep one unless a kept
box suppresses it. The IoU is the reference's, float32 operation for operation (Numba keeps float32
arithmetic in float32 and, without ``fastmath``, fuses no multiply-add; ``error_model="numpy"`` makes
0/0 a NaN rather than an exception), NaN propagating as in NumPy.

Boxes are rows of ``[x1, y1, x2, y2, area]`` (float32), already in score order. The compiled
machine code is cached on disk (``cache=True``): the first call on a machine compiles for a few
seconds, later processes load it in well under a second.
"""

import math

import numba
import numpy as np


@numba.njit(inline="always", error_model="numpy")
def _minimum(a, b):  # np.minimum: NaN if either is NaN
    return a if a != a or a < b else b


@numba.njit(inline="always", error_model="numpy")
def _maximum(a, b):  # np.maximum: NaN if either is NaN
    return a if a != a or a > b else b


@numba.njit(inline="always", error_model="numpy")
def _suppresses(boxes, earlier, later, threshold):
    """Does kept box ``earlier`` suppress box ``later``: ``not IoU <= threshold`` (NaN suppresses)."""
    w = _minimum(boxes[earlier, 2], boxes[later, 2]) - _maximum(boxes[earlier, 0], boxes[later, 0])
    if w < 0:
        w = np.float32(0)
    h = _minimum(boxes[earlier, 3], boxes[later, 3]) - _maximum(boxes[earlier, 1], boxes[later, 1])
    if h < 0:
        h = np.float32(0)
    inter = w * h
    union = (boxes[later, 4] - inter) + boxes[earlier, 4]
    return not (inter / union <= threshold)


@numba.njit(cache=True, nogil=True, error_model="numpy")
def greedy_all_pairs(boxes, threshold, max_keep):
    """Kept positions: each box against every kept box (any boxes, any threshold)."""
    n = boxes.shape[0]
    kept = np.empty(n, np.int64)
    count = 0
    for i in range(n):
        suppressed = False
        for j in range(count):
            if _suppresses(boxes, kept[j], i, threshold):
                suppressed = True
                break
        if not suppressed:
            kept[count] = i
            count += 1
            if count >= max_keep:
                break
    return kept[:count]


@numba.njit(cache=True, nogil=True, error_model="numpy")
def greedy_grid(boxes, threshold, max_keep, origin, cell, columns, rows):
    """Kept positions, each box checked only against the kept boxes that share a grid cell with it.

    For finite boxes of non-negative size and a threshold >= 0: a box suppresses another only if
    their intersection has a positive area, and then both cover the cell of the intersection's
    top-left corner (cells are a monotone map of coordinates, so this holds under rounding too);
    or if both are empty (IoU 0/0): the first empty box is kept and suppresses every later one.
    ``cell`` must be such that ``columns x rows`` cells of that side from ``origin`` cover every box.
    """
    n = boxes.shape[0]
    head = np.full(columns * rows, -1, np.int64)  # per cell, its last kept entry (a linked list)
    capacity = 1024
    following = np.empty(capacity, np.int64)
    owner = np.empty(capacity, np.int64)
    entries = 0
    kept = np.empty(n, np.int64)
    count = 0
    empty_kept = False
    for i in range(n):
        if boxes[i, 4] == 0:
            if empty_kept:
                continue
            empty_kept = True
            kept[count] = i
            count += 1
            if count >= max_keep:
                break
            continue  # nothing else can suppress an empty box, and it suppresses only empty ones
        gx0 = int(math.floor((boxes[i, 0] - origin) / cell))
        gx1 = int(math.floor((boxes[i, 2] - origin) / cell))
        gy0 = int(math.floor((boxes[i, 1] - origin) / cell))
        gy1 = int(math.floor((boxes[i, 3] - origin) / cell))
        suppressed = False
        for gy in range(gy0, gy1 + 1):
            for gx in range(gx0, gx1 + 1):
                entry = head[gy * columns + gx]
                while entry >= 0:
                    if _suppresses(boxes, owner[entry], i, threshold):
                        suppressed = True
                        break
                    entry = following[entry]
                if suppressed:
                    break
            if suppressed:
                break
        if suppressed:
            continue
        kept[count] = i
        count += 1
        if count >= max_keep:
            break
        for gy in range(gy0, gy1 + 1):
            for gx in range(gx0, gx1 + 1):
                if entries == capacity:
                    capacity *= 2
                    grown = np.empty(capacity, np.int64)
                    grown[:entries] = following[:entries]
                    following = grown
                    grown = np.empty(capacity, np.int64)
                    grown[:entries] = owner[:entries]
                    owner = grown
                c = gy * columns + gx
                following[entries] = head[c]
                owner[entries] = i
                head[c] = entries
                entries += 1
    return kept[:count]
