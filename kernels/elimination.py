"""Weighted sample elimination (Yuksel 2015) with a variable radius and a distance measured along the skin.

Each point i has a radius r_i (the hexagonal-packing spacing d_max at the local target density). Two points conflict
when their skin distance d_ij is below r_ij = (r_i + r_j) / 2; the conflict weighs (1 - max(d_ij, r_min_ij) / r_ij)^alpha.
The skin distance is Bowers et al. 2010's estimate from the chord and the two unit normals; points whose normals
differ by more than the fold angle (two sides of a fold) never conflict. Points are then removed one by one, always the
one with the largest total weight, until ``target`` remain. Fixed points (``removable`` False) are never removed but
weigh on their neighbours, so new points interleave with them.

The conflict graph (:func:`conflict_graph`, every candidate's row of weights) is the parallel part and has a CUDA twin
(:func:`scalp3d.kernels.cuda.conflict_graph_cuda`); the removal (:func:`eliminate`) pops a heap one point at a time,
each pop depending on the last, and runs on the CPU for both.

All loops are serial or write disjoint slices, so the result does not depend on the thread count.
"""
import math

import numpy as np
from numba import njit

from .chunks import run_chunks
from .grid import dense_cell, dense_grid


@njit(cache=True)
def skin_distance(p, q, n1, n2):
    """Bowers et al. 2010 geodesic estimate between points ``p``, ``q`` with unit normals ``n1``, ``n2``."""
    dx = q[0] - p[0]
    dy = q[1] - p[1]
    dz = q[2] - p[2]
    chord = math.sqrt(dx * dx + dy * dy + dz * dz)
    if chord == 0.0:
        return 0.0
    c1 = (n1[0] * dx + n1[1] * dy + n1[2] * dz) / chord
    c2 = (n2[0] * dx + n2[1] * dy + n2[2] * dz) / chord
    c1 = min(1.0, max(-1.0, c1))
    c2 = min(1.0, max(-1.0, c2))
    diff = c1 - c2
    if abs(diff) < 1e-6:
        return chord
    return chord * (math.asin(c1) - math.asin(c2)) / diff


@njit(cache=True)
def _pair_weight(i, j, points, normals, radius, alpha, rmin_factor, fold_cos):
    # returns weight > 0 for a conflict, 0 otherwise
    dot = normals[i, 0] * normals[j, 0] + normals[i, 1] * normals[j, 1] + normals[i, 2] * normals[j, 2]
    if dot < fold_cos:
        return 0.0
    r = 0.5 * (radius[i] + radius[j])
    dx = points[j, 0] - points[i, 0]
    dy = points[j, 1] - points[i, 1]
    dz = points[j, 2] - points[i, 2]
    chord2 = dx * dx + dy * dy + dz * dz
    if chord2 >= r * r:
        return 0.0
    d = skin_distance(points[i], points[j], normals[i], normals[j])
    if d >= r:
        return 0.0
    rmin = r * rmin_factor
    if d < rmin:
        d = rmin
    return (1.0 - d / r) ** alpha


@njit(cache=True, inline="always")
def _scan_row(i, points, normals, radius, rule, grid, out_idx, out_w, k0, limit):
    """Conflicts of point i with the points of the 27 cells around it (the row's length), the first ``limit`` of
    them written from k0 (0: a counting pass). ``rule`` is the conflict weight's (alpha, rmin_factor, fold_cos),
    ``grid`` as :func:`conflict_grid` returns it (a dense grid: the 27 cells are nine runs of three, visited in the
    hash grid's old order). The scan order is fixed, so a row written in two tries holds the same entries in the
    same order."""
    alpha, rmin_factor, fold_cos = rule
    _origin, cells, dims, start, order = grid
    c = 0
    for ox in range(-1, 2):
        for oy in range(-1, 2):
            mid = ((cells[i, 0] + ox) * dims[1] + (cells[i, 1] + oy)) * dims[2] + cells[i, 2]
            for s in range(start[mid - 1], start[mid + 2]):
                j = order[s]
                if j == i:
                    continue
                w = _pair_weight(i, j, points, normals, radius, alpha, rmin_factor, fold_cos)
                if w > 0.0:
                    if c < limit:
                        out_idx[k0 + c] = j
                        out_w[k0 + c] = w
                    c += 1
    return c


def conflict_grid(points, radius):
    """The grid :func:`conflict_graph` scans (:func:`scalp3d.kernels.grid.dense_grid`, cells of the largest radius,
    1 when none is positive; larger where that would make millions of cells); its CUDA twin builds the same grid on
    the host."""
    cell = float(radius.max()) if radius.shape[0] else 0.0
    if not cell > 0.0:
        cell = 1.0
    return dense_grid(points, dense_cell(points, cell))


#: the conflict graph is scanned once, in blocks of this many rows, into rows of CONFLICT_ROW_CAP slots (the usual
#: row: 6-16 conflicts), compacted after; a row that overflows is scanned again once the rows' lengths are known
#: (two full passes, counting then writing, took twice as long: 0.69 s -> 0.4 s a full plan's three graphs)
CONFLICT_BLOCK = 1 << 15
CONFLICT_ROW_CAP = 32


@njit(cache=True, nogil=True, _nrt=False)
def _conflict_rows(lo, hi, b0, points, normals, radius, rule, grid, buf_idx, buf_w, counts):
    """Block rows b0+lo .. b0+hi-1 of :func:`conflict_graph` into the block's buffer rows lo..hi-1 (their first
    CONFLICT_ROW_CAP entries; their lengths to counts[i + 1])."""
    cap = buf_idx.shape[1]
    for q in range(lo, hi):
        counts[b0 + q + 1] = _scan_row(b0 + q, points, normals, radius, rule, grid, buf_idx[q], buf_w[q],
                                       np.int64(0), cap)


@njit(cache=True, nogil=True, _nrt=False)
def _rescan_rows(lo, hi, rows, points, normals, radius, rule, grid, indptr, indices, weights):
    """Rows rows[lo:hi] of :func:`conflict_graph` scanned again, whole, into their place (rows that overflowed)."""
    end = indptr[indptr.shape[0] - 1]
    for q in range(lo, hi):
        i = rows[q]
        _scan_row(i, points, normals, radius, rule, grid, indices, weights, indptr[i], end)


@njit(cache=True, nogil=True, _nrt=False)
def _copy_block_rows(lo, hi, b0, counts, indptr, buf_idx, buf_w, indices, weights):
    """Block rows b0+lo .. b0+hi-1: their first CONFLICT_ROW_CAP entries from the buffer to their place in
    (indices, weights) (a row that overflowed is scanned again, whole, after)."""
    cap = buf_idx.shape[1]
    for q in range(lo, hi):
        k0 = indptr[b0 + q]
        for c in range(min(counts[b0 + q + 1], cap)):
            indices[k0 + c] = buf_idx[q, c]
            weights[k0 + c] = buf_w[q, c]


def conflict_graph(points, normals, radius, alpha, rmin_factor, fold_cos):
    """Conflicting pairs and their weights, as CSR rows (each row in a fixed grid order: thread-count independent).

    Rows are scanned in parallel (:func:`scalp3d.kernels.chunks.run_chunks`), a block of CONFLICT_BLOCK at a time,
    into rows of CONFLICT_ROW_CAP slots, then copied to their place; the rows that overflowed are scanned again, whole.

    Returns
    -------
    indptr : (n+1,) int64
    indices : (nnz,) int64
    weights : (nnz,) float64
    """
    n = points.shape[0]
    grid = conflict_grid(points, radius)
    rule = (float(alpha), float(rmin_factor), float(fold_cos))
    block = min(CONFLICT_BLOCK, max(n, 1))
    buf_idx = np.empty((block, CONFLICT_ROW_CAP), dtype=np.int64)
    buf_w = np.empty((block, CONFLICT_ROW_CAP))
    counts = np.zeros(n + 1, dtype=np.int64)
    indptr = np.zeros(n + 1, dtype=np.int64)
    indices = np.empty(max(8 * n, 16), dtype=np.int64)
    weights = np.empty(indices.shape[0])
    for b0 in range(0, n, block):
        b1 = min(n, b0 + block)
        run_chunks(b1 - b0, _conflict_rows, np.int64(b0), points, normals, radius, rule, grid, buf_idx, buf_w, counts)
        # the block's offsets, and room for its rows (doubled, or to the need)
        indptr[b0 + 1:b1 + 1] = indptr[b0] + np.cumsum(counts[b0 + 1:b1 + 1])
        if indptr[b1] > indices.shape[0]:
            size = max(2 * indices.shape[0], int(indptr[b1]))
            grown_idx = np.empty(size, dtype=np.int64)
            grown_w = np.empty(size)
            grown_idx[:indptr[b0]] = indices[:indptr[b0]]
            grown_w[:indptr[b0]] = weights[:indptr[b0]]
            indices, weights = grown_idx, grown_w
        run_chunks(b1 - b0, _copy_block_rows, np.int64(b0), counts, indptr, buf_idx, buf_w, indices, weights)
    rows = np.flatnonzero(counts[1:] > CONFLICT_ROW_CAP).astype(np.int64)  # the rows that overflowed
    if len(rows):
        run_chunks(len(rows), _rescan_rows, rows, points, normals, radius, rule, grid, indptr, indices, weights,
                   min_chunk=1)
    return indptr, indices[:indptr[n]].copy(), weights[:indptr[n]].copy()


@njit(cache=True)
def _above(a, b, key):
    # strict total order: larger weight first, ties broken by the larger index
    return key[a] > key[b] or (key[a] == key[b] and a > b)


@njit(cache=True)
def _sift_down(heap, pos, key, k, size):
    item = heap[k]
    while True:
        child = 2 * k + 1
        if child >= size:
            break
        if child + 1 < size and _above(heap[child + 1], heap[child], key):
            child += 1
        if _above(heap[child], item, key):
            heap[k] = heap[child]
            pos[heap[k]] = k
            k = child
        else:
            break
    heap[k] = item
    pos[item] = k


@njit(cache=True)
def eliminate(indptr, indices, weights, removable, target):
    """Remove points, heaviest first, until ``target`` remain.

    Parameters
    ----------
    indptr, indices, weights : CSR conflict graph from :func:`conflict_graph`
    removable : (n,) bool, False for fixed points
    target : int, points to keep (fixed ones included); clamped to the number of fixed points

    Returns
    -------
    keep : (n,) bool
    removed : (n - kept,) int64, indices in the order they were removed (the last removed are the best spread)
    """
    n = indptr.shape[0] - 1
    key = np.zeros(n)
    for i in range(n):
        s = 0.0
        for k in range(indptr[i], indptr[i + 1]):
            s += weights[k]
        key[i] = s
    heap = np.empty(n, dtype=np.int64)
    pos = np.full(n, -1, dtype=np.int64)
    size = np.int64(0)
    for i in range(n):
        if removable[i]:
            heap[size] = i
            pos[i] = size
            size += 1
    for k in range(size // 2 - 1, -1, -1):
        _sift_down(heap, pos, key, k, size)
    keep = np.ones(n, dtype=np.bool_)
    alive = n
    to_remove = max(0, alive - max(target, n - size))
    removed = np.empty(to_remove, dtype=np.int64)
    for r in range(to_remove):
        top = heap[0]
        size -= 1
        if size > 0:
            heap[0] = heap[size]
            pos[heap[0]] = 0
            _sift_down(heap, pos, key, np.int64(0), size)
        pos[top] = -1
        keep[top] = False
        removed[r] = top
        for k in range(indptr[top], indptr[top + 1]):
            j = indices[k]
            if pos[j] >= 0:
                key[j] -= weights[k]
                _sift_down(heap, pos, key, pos[j], size)
    return keep, removed
