"""Greedy non-maximum suppression, exactly as the one-box-at-a-time loop, in compiled code."""

import numpy as np

GRID_ENTRIES_PER_BOX = 16  # a coarser grid is used if boxes would cover more cells than this on average
GRID_CELLS_PER_BOX = 64  # ... or if the grid would have more cells than this per box (plus a floor)


def top_order(scores, top_k=None):
    """``np.argsort(-scores, kind="stable")[:top_k]``, without sorting every score."""
    n = len(scores)
    if top_k is None or top_k >= n:
        return np.argsort(-scores, kind="stable")
    kth = np.partition(scores, n - top_k)[n - top_k]
    candidates = np.flatnonzero(scores >= kth)  # ties at the cut stay, in index order
    return candidates[np.argsort(-scores[candidates], kind="stable")][:top_k]


def nms(boxes, scores, iou_threshold, top_k=None, max_keep=None):
    """Greedy non-maximum suppression; returns kept indices, best first (at most ``max_keep``).

    A box is suppressed when its IoU with an already kept box exceeds ``iou_threshold`` (or is
    undefined, as for two empty boxes). Areas are ``(x2 - x1) * (y2 - y1)`` (continuous
    coordinates, no +1); ties in score keep the lower index first.

    The loop runs compiled (``facedet.nms_kernels``). For ordinary boxes (finite, sizes not
    negative, a threshold not negative) a box is compared only with the kept boxes that share a
    cell of a grid; otherwise with every kept box.
    """
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    scores = np.asarray(scores, dtype=np.float32).reshape(-1)
    if (top_k is None or top_k >= len(scores)) and (scores[:-1] >= scores[1:]).all():
        order = np.arange(len(scores))  # best first already: what the stable sort would give
    else:
        order = top_order(scores, top_k)
    limit = len(order) if max_keep is None else max(int(max_keep), 0)
    if not len(order) or limit == 0:
        return order[:limit]
    from facedet import nms_kernels  # loads Numba on first use only

    ordered = boxes[order]
    with np.errstate(invalid="ignore", over="ignore"):
        rows = np.empty((len(order), 5), dtype=np.float32)
        rows[:, :4] = ordered
        rows[:, 4] = (ordered[:, 2] - ordered[:, 0]) * (ordered[:, 3] - ordered[:, 1])
    threshold = np.float32(iou_threshold)
    grid = None
    if threshold >= 0 and np.isfinite(ordered).all() and (ordered[:, 2:] >= ordered[:, :2]).all():
        grid = _grid(ordered)
    if grid is None:
        kept = nms_kernels.greedy_all_pairs(rows, threshold, limit)
    else:
        kept = nms_kernels.greedy_grid(rows, threshold, limit, *grid)
    return order[kept]


def _grid(boxes):
    """``(origin, cell, columns, rows)`` of a square grid for ``boxes`` (finite, x2 >= x1, y2 >= y1):
    cells about twice the median box side, coarsened until boxes cover few cells each and the
    table stays small; None when no grid does (coordinates too far apart for integer cells)."""
    coords = boxes.astype(np.float64)  # the kernel maps coordinates to cells in float64 too
    n = len(coords)
    origin = float(min(coords[:, 0].min(), coords[:, 1].min()))
    span = float(max(coords[:, 2].max(), coords[:, 3].max())) - origin
    sides = np.maximum(coords[:, 2] - coords[:, 0], coords[:, 3] - coords[:, 1])[:: max(1, n // 512)]
    cell = 2 * float(np.partition(sides, len(sides) // 2)[len(sides) // 2])  # a sample is enough
    if not cell > 0:
        cell = span if span > 0 else 1.0
    max_cells = GRID_CELLS_PER_BOX * n + 4096
    for _ in range(2100):  # doubling from the smallest positive double passes any finite span
        if span / cell < max_cells:
            low = np.floor((coords[:, :2] - origin) / cell)
            high = np.floor((coords[:, 2:] - origin) / cell)
            columns, rows = int(high[:, 0].max()) + 1, int(high[:, 1].max()) + 1
            covered = ((high - low + 1).prod(axis=1)).sum()
            if columns * rows <= max_cells and covered <= GRID_ENTRIES_PER_BOX * n:
                return origin, cell, columns, rows
        cell *= 2
        if not np.isfinite(cell):
            return None
    return None
