"""From network outputs to final detections: scores, candidate filtering, NMS."""

import math
from dataclasses import dataclass

import numpy as np
import torch

from facedet.box_coding import VARIANCES, decode


@dataclass(frozen=True)
class PostprocessConfig:
    score_threshold: float = 0.05  # candidates must score above this to enter NMS
    nms_top_k: int = 5000  # at most this many candidates (highest scores) enter NMS
    nms_iou: float = 0.3
    keep_top_k: int = 750
    variances: tuple = VARIANCES


def top_order(scores, top_k=None):
    """``np.argsort(-scores, kind="stable")[:top_k]``, without sorting every score."""
    n = len(scores)
    if top_k is None or top_k >= n:
        return np.argsort(-scores, kind="stable")
    kth = np.partition(scores, n - top_k)[n - top_k]
    candidates = np.flatnonzero(scores >= kth)  # ties at the cut stay, in index order
    return candidates[np.argsort(-scores[candidates], kind="stable")][:top_k]


def nms(boxes, scores, iou_threshold, top_k=None, max_keep=None, block=512):
    """Greedy non-maximum suppression; returns kept indices, best first (at most ``max_keep``).

    A box is suppressed when its IoU with an already kept box exceeds ``iou_threshold`` (or is
    undefined, as for two empty boxes). Areas are ``(x2 - x1) * (y2 - y1)`` (continuous
    coordinates, no +1); ties in score keep the lower index first.

    Exactly the result of the one-box-at-a-time loop, computed a block of candidates at a time:
    a block is first checked against the boxes kept so far, and the survivors are resolved among
    themselves by iterating "kept unless a kept earlier box suppresses it" to its fixed point
    (the Cluster-NMS argument), which is the greedy answer. For ordinary boxes (finite, sizes not
    negative, a threshold not negative) only pairs of boxes that share a cell of a grid are
    compared (``_grid_greedy``); otherwise every pair is (``_dense_greedy``).
    """
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    scores = np.asarray(scores, dtype=np.float32).reshape(-1)
    if (top_k is None or top_k >= len(scores)) and (scores[:-1] >= scores[1:]).all():
        order = np.arange(len(scores))  # best first already: what the stable sort would give
    else:
        order = top_order(scores, top_k)
    if not len(order):
        return order
    x1, y1, x2, y2 = (np.ascontiguousarray(c) for c in boxes[order].T)
    threshold = np.float32(iou_threshold)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        kept = None
        if threshold >= 0 and np.isfinite(boxes).all() and (x2 >= x1).all() and (y2 >= y1).all():
            kept = _grid_greedy(x1, y1, x2, y2, threshold, max_keep, block)
        if kept is None:
            kept = _dense_greedy(x1, y1, x2, y2, threshold, max_keep, min(block, 256))
    return order[kept[:max_keep]]


def _suppressed(earlier, later, threshold):
    """Does each ``earlier`` box suppress its ``later`` box: both ``[5, ...]`` rows of x1, y1, x2, y2
    and area (float32) that broadcast together. The reference loop's IoU, operation for operation."""
    w = np.minimum(earlier[2], later[2]) - np.maximum(earlier[0], later[0])
    np.maximum(w, 0, out=w)
    h = np.minimum(earlier[3], later[3]) - np.maximum(earlier[1], later[1])
    np.maximum(h, 0, out=h)
    inter = w * h
    union = later[4] - inter
    union += earlier[4]
    return ~(inter / union <= threshold)


def _settle(alive, earlier, later):
    """Greedy NMS within a block given its suppressing pairs (``earlier`` before ``later``, both
    block positions): iterate "kept unless a kept earlier box suppresses it" from ``alive`` to its
    fixed point. Position by position that fixed point is determined by the earlier ones, so it is
    unique: the greedy answer (reached in as many rounds as the longest suppression chain)."""
    keep = alive
    while True:
        settled = alive.copy()
        settled[later[keep[earlier]]] = False
        if settled.tobytes() == keep.tobytes():  # np.array_equal's checks cost more than the comparison
            return keep
        keep = settled


def _dense_greedy(x1, y1, x2, y2, threshold, max_keep, block):
    """Kept positions (in score order): every pair of a block, and of the block against the kept boxes."""
    boxes = np.stack((x1, y1, x2, y2, (x2 - x1) * (y2 - y1)))
    kept = np.zeros(0, dtype=np.int64)
    for start in range(0, len(x1), block):
        alive = np.arange(start, min(start + block, len(x1)))
        if len(kept):
            alive = alive[~_suppressed(boxes[:, kept, None], boxes[:, None, alive], threshold).any(axis=0)]
        if not len(alive):
            continue
        earlier, later = np.nonzero(np.triu(_suppressed(boxes[:, alive, None], boxes[:, None, alive], threshold), 1))
        kept = np.concatenate((kept, alive[_settle(np.ones(len(alive), dtype=bool), earlier, later)]))
        if max_keep is not None and len(kept) >= max_keep:
            break
    return kept


GRID_ENTRIES_PER_BOX = 16  # a coarser grid is used if boxes would cover more cells than this on average


def _grid_cells(x1, y1, x2, y2):
    """The cells of a square grid each box covers, as ``(cells, owner, offsets)``: the cell ids of
    box ``i`` are ``cells[offsets[i]:offsets[i + 1]]`` (``owner`` repeats ``i`` alongside); None
    when no grid keeps the count of cells small.

    Two boxes whose intersection has a positive area share a cell: the one holding its top-left
    corner (any monotone map of coordinates to cells has this property, rounding included).
    """
    n = len(x1)
    origin = min(float(x1.min()), float(y1.min()))
    span = max(float(x2.max()), float(y2.max())) - origin
    sides = np.maximum(x2 - x1, y2 - y1)[:: max(1, n // 512)]  # a sample is enough for the cell size
    cell = 2 * float(np.partition(sides, len(sides) // 2)[len(sides) // 2])  # about a box: each covers a few cells
    if not cell > 0:
        cell = span if span > 0 else 1.0
    for _ in range(64):
        if span / cell < 2 ** 30:
            gx0, gx1, gy0, gy1 = (np.floor((c - origin) / cell).astype(np.int64) for c in (x1, x2, y1, y2))
            nx = gx1 - gx0 + 1
            counts = nx * (gy1 - gy0 + 1)
            if counts.sum() <= GRID_ENTRIES_PER_BOX * n:
                break
        cell *= 2
    else:
        return None
    offsets = np.concatenate(([0], np.cumsum(counts)))
    owner = np.repeat(np.arange(n), counts)
    step = np.arange(offsets[-1]) - offsets[owner]
    columns = int(gx1.max()) + 1
    cells = (gy0[owner] + step // nx[owner]) * columns + gx0[owner] + step % nx[owner]
    return cells, owner, offsets


def _pairs_sharing_a_cell(cells, owner):
    """``(earlier, later)``: the owners of every two entries in one cell, earlier first (entries come
    in owner order). A pair sharing several cells comes once per cell."""
    s = np.argsort(cells, kind="stable")
    cells, owner = cells[s], owner[s]
    m = len(cells)
    ends = np.searchsorted(cells, cells, side="right")  # where each entry's cell ends
    later_count = ends - np.arange(1, m + 1)  # entries after each one in its cell
    # entry i pairs with entries i + 1 ... i + later_count[i]
    step = np.arange(1, m + 1) - (np.cumsum(later_count) - later_count)
    second = np.repeat(step, later_count) + np.arange(int(later_count.sum()))
    return np.repeat(owner, later_count), owner[second]


def _block_bounds(n, block, first=64):
    """Block boundaries: small blocks first (the best boxes, which suppress most of what follows,
    are kept early and cheaply), doubling up to ``block``."""
    bounds, size = [0], min(first, block)
    while bounds[-1] < n:
        bounds.append(min(bounds[-1] + size, n))
        size = min(2 * size, block)
    return bounds


def _grid_greedy(x1, y1, x2, y2, threshold, max_keep, block):
    """Kept positions (in score order), comparing only boxes that share a grid cell; None when the
    boxes spread too unevenly for a grid.

    With a threshold >= 0, a box suppresses another only if their intersection has a positive
    area (found through the grid), or if both are empty (0/0: IoU undefined): the first empty box
    is kept, nothing else can suppress it, and it suppresses every later empty box.
    """
    grid = _grid_cells(x1, y1, x2, y2)
    if grid is None:
        return None
    cells, owner, offsets = grid
    n_cells = int(cells.max()) + 1
    if n_cells > 4 * len(cells):  # few cells used: renumbered 0..m-1 in order, for a small table
        used, cells = np.unique(cells, return_inverse=True)
        n_cells = len(used)
    area = (x2 - x1) * (y2 - y1)
    empty = area == 0
    any_empty = bool(empty.any())
    boxes = np.stack((x1, y1, x2, y2, area))  # [5, n]: one gather per side of a pair
    kept = np.zeros(0, dtype=np.int64)
    kept_cells = np.zeros(0, dtype=np.int64)  # the kept boxes' entries, sorted by cell ...
    kept_boxes = np.zeros((5, 0), dtype=boxes.dtype)  # ... and their boxes, entry by entry
    kept_start = np.zeros(n_cells + 1, dtype=np.int64)  # the entries of cell c: kept_start[c]:[c + 1]
    empty_kept = False
    bounds = _block_bounds(len(x1), block)
    for start, stop in zip(bounds[:-1], bounds[1:]):
        entries = slice(offsets[start], offsets[stop])
        block_cells, block_owner = cells[entries], owner[entries]
        alive = np.ones(stop - start, dtype=bool)
        if len(kept):  # against the kept boxes that share a cell with each entry
            first = kept_start[block_cells]
            count = kept_start[block_cells + 1] - first
            total = int(count.sum())
            entry = np.repeat(first - (np.cumsum(count) - count), count) + np.arange(total)
            later = np.repeat(block_owner - start, count)
            hit = _suppressed(np.take(kept_boxes, entry, axis=1), np.take(boxes[:, start:stop], later, axis=1), threshold)
            alive[later[hit]] = False
        if any_empty:
            blank = np.flatnonzero(empty[start:stop] & alive)
            alive[blank[0 if empty_kept else 1:]] = False
        live = alive[block_owner - start]
        earlier, later = _pairs_sharing_a_cell(block_cells[live], block_owner[live])
        hit = _suppressed(np.take(boxes, earlier, axis=1), np.take(boxes, later, axis=1), threshold)
        new = np.flatnonzero(_settle(alive, earlier[hit] - start, later[hit] - start)) + start
        kept = np.concatenate((kept, new))
        if max_keep is not None and len(kept) >= max_keep:
            break
        empty_kept = empty_kept or (any_empty and bool(empty[new].any()))
        counts = offsets[new + 1] - offsets[new]
        taken = np.repeat(offsets[new] - (np.cumsum(counts) - counts), counts) + np.arange(int(counts.sum()))
        merged_cells = np.concatenate((kept_cells, cells[taken]))
        s = np.argsort(merged_cells, kind="stable")
        kept_cells = merged_cells[s]
        kept_boxes = np.concatenate((kept_boxes, np.take(boxes, owner[taken], axis=1)), axis=1)[:, s]
        kept_start[1:] = np.cumsum(np.bincount(kept_cells, minlength=n_cells))
    return kept


def _take_rows(tensor, index):
    """``tensor[index]`` for a 1-D index: NumPy's ``take`` on the CPU (an order of magnitude faster
    than torch's advanced indexing for a few thousand rows), ``index_select`` elsewhere."""
    if tensor.device.type == "cpu" and index.device.type == "cpu" and tensor.dtype != torch.bfloat16:
        return torch.from_numpy(np.take(tensor.detach().numpy(), index.numpy(), axis=0))
    return tensor.index_select(0, index.to(tensor.device))


def _scored_rows(conf, threshold, top_k):
    """``(rows, scores)``: the face scores (softmax of the logits ``conf``) of a set of rows that
    holds every row that can pass ``threshold`` and be among the ``top_k`` best.

    Both shortcuts follow the logit gap ``l1 - l0``, which the score grows with:
    ``softmax(l)[1] > t`` means ``l1 - l0 > logit(t)``, so rows well below that gap cannot pass;
    and with many more rows than ``top_k``, the best scores lie among the rows whose gap is at
    least the ``top_k``-th largest less a small margin. The float32 softmax rounds (a few units
    in the last place, more for large gaps), so the second shortcut is taken only when the
    ``top_k``-th best score kept beats, by more than that rounding, the score of the left-out row
    with the largest gap; otherwise every row that can pass is scored.
    """
    conf = conf.detach().float().cpu()
    logits = conf.numpy()
    gap = logits[:, 1] - logits[:, 0]  # float32, as torch computes it: NumPy keeps the bookkeeping cheap
    possible = None
    count = len(gap)
    if 0 < threshold < 1:  # a generous margin for rounding; the exact test on the softmax follows
        logit = math.log(threshold / (1 - threshold))
        possible = gap > logit - 0.05 - 1e-3 / (threshold * (1 - threshold))
        count = int(np.count_nonzero(possible))
    if top_k is not None and count > 2 * top_k:
        # the top_k largest gaps are all possible rows, there being more of those than top_k
        cut = float(np.partition(gap, len(gap) - top_k)[len(gap) - top_k])
        inside = gap >= cut - 4e-6 * (1 + abs(cut))
        if possible is not None:
            inside &= possible
        picked = np.flatnonzero(inside)
        if len(picked) < len(gap):
            scores = torch.softmax(torch.from_numpy(np.take(logits, picked, axis=0)), dim=-1)[:, 1]
            outside = int(np.argmax(np.where(inside, -np.inf, gap)))
            # relative error of one computed score, and of the float32 gap's order (about as much)
            rounding = 1.5e-7 + 1.2e-7 * abs(float(gap[outside]))
            bound = float(torch.softmax(conf[outside], dim=-1)[1]) * (1 + 4 * rounding)
            values = scores.numpy()
            if len(picked) >= top_k and float(np.partition(values, len(values) - top_k)[len(values) - top_k]) > bound:
                return torch.from_numpy(picked), scores
    rows = np.arange(len(gap)) if possible is None else np.flatnonzero(possible)
    return torch.from_numpy(rows), torch.softmax(torch.from_numpy(np.take(logits, rows, axis=0)), dim=-1)[:, 1]


def postprocess(loc, conf_logits, priors, image_width, image_height, config=PostprocessConfig()):
    """Detections ``(N, 5)`` float32 [x1, y1, x2, y2, score] for ONE image, best first.

    ``loc`` [P, 4] and ``conf_logits`` [P, 2] are the network outputs for the image; boxes come
    back in the pixel coordinates of an image of ``image_width x image_height`` (the original
    image, whatever scale the network ran at).

    Only what can matter is computed: scores of the rows that can pass the threshold and be
    among the ``nms_top_k`` best, boxes only for the ``nms_top_k`` best candidates.
    """
    threshold = config.score_threshold
    rows, scores = _scored_rows(conf_logits, threshold, config.nms_top_k)
    scores = scores.numpy()
    candidates = np.flatnonzero(scores > np.float32(threshold))  # a float32 comparison, as torch's
    if not len(candidates):
        return np.zeros((0, 5), dtype=np.float32)
    order = top_order(scores[candidates], config.nms_top_k)
    rows = torch.from_numpy(rows.numpy()[candidates[order]])
    scores = scores[candidates[order]]
    boxes = decode(_take_rows(loc, rows).float(), _take_rows(priors, rows), config.variances).cpu().numpy()
    keep = nms(boxes, scores, config.nms_iou, max_keep=config.keep_top_k)  # already best first
    scale = np.array([image_width, image_height, image_width, image_height], dtype=np.float32)
    return np.concatenate((boxes[keep] * scale, scores[keep, None]), axis=1).astype(np.float32)
