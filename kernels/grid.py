"""Spatial hash grid on plain arrays (numba).

Points are binned into cubic cells of side ``cell``; cells are hashed into a table of ``2**k`` buckets and the points
are sorted by bucket with a counting sort (serial, deterministic), then by cell within a bucket (stable: a cell's
points stay in index order), so every cell's points are one contiguous run. Queries walk the cube of cells around a
point (:func:`cube_cell`: all 27 cells, or only the shell at one Chebyshev distance for searches that grow ring by
ring), so hash collisions never yield a point twice.
"""
import numpy as np
from numba import njit

_P1 = np.int64(73856093)
_P2 = np.int64(19349663)
_P3 = np.int64(83492791)


@njit(cache=True)
def cell_hash(ix, iy, iz, mask):
    return ((ix * _P1) ^ (iy * _P2) ^ (iz * _P3)) & mask


@njit(cache=True)
def build_grid(points, cell):
    """Bin ``points`` (n,3) float64 into a hash grid of side ``cell`` (same unit as the points).

    Returns
    -------
    origin : (3,) float64, lower corner of cell (0,0,0)
    cells : (n,3) int64, each point's integer cell
    start : (T+1,) int64, bucket b holds order[start[b]:start[b+1]]
    order : (n,) int64, point indices sorted by bucket (stable)
    mask : int64, T - 1
    """
    n = points.shape[0]
    origin = _column_minima(points)
    table = 1
    while table < 2 * n:
        table *= 2
    mask = np.int64(table - 1)
    cells = np.empty((n, 3), dtype=np.int64)
    bucket = np.empty(n, dtype=np.int64)
    for i in range(n):
        for k in range(3):
            cells[i, k] = np.int64(np.floor((points[i, k] - origin[k]) / cell))
        bucket[i] = cell_hash(cells[i, 0], cells[i, 1], cells[i, 2], mask)
    start, order = _counting_sort(bucket, table)
    # group each bucket by cell (insertion sort, stable; buckets hold about one point)
    for b in range(table):
        for s in range(start[b] + 1, start[b + 1]):
            j = order[s]
            t = s
            while t > start[b] and _cell_before(cells, j, order[t - 1]):
                order[t] = order[t - 1]
                t -= 1
            order[t] = j
    return origin, cells, start, order, mask


@njit(cache=True, inline="always")
def _column_minima(points):
    """The (3,) column minima of ``points`` (NaN if any is NaN, as np.min), by a loop: numba's np.min on a column view
    took 0.8 s to compile on a first run."""
    origin = np.zeros(3)
    for k in range(3):
        if points.shape[0] > 0:
            m = points[0, k]
            for i in range(1, points.shape[0]):
                v = points[i, k]
                if v < m or v != v:
                    m = v
            origin[k] = m
    return origin


@njit(cache=True, inline="always")
def _counting_sort(keys, total):
    """(start, order): the indices of ``keys`` (n,) int64 in [0, total) sorted by key, stable (index order within a
    key), with key b's indices at order[start[b]:start[b+1]]."""
    start = np.zeros(total + 1, dtype=np.int64)
    for i in range(keys.shape[0]):
        start[keys[i] + 1] += 1
    for b in range(total):
        start[b + 1] += start[b]
    fill = start[:-1].copy()
    order = np.empty(keys.shape[0], dtype=np.int64)
    for i in range(keys.shape[0]):
        order[fill[keys[i]]] = i
        fill[keys[i]] += 1
    return start, order


@njit(cache=True)
def _cell_before(cells, a, b):
    for k in range(3):
        if cells[a, k] != cells[b, k]:
            return cells[a, k] < cells[b, k]
    return False


@njit(cache=True, inline="always")
def cube_cell(t, ring, shell_only, c0, c1, c2, cells, start, order, mask):
    """The points of the t-th cell (x-major, t < (2 ring + 1)**3) of the cube of cells within Chebyshev distance
    ``ring`` of cell (c0, c1, c2): (lo, hi) such that order[lo:hi] are exactly that cell's points, in index order.
    With ``shell_only``, cells nearer than ``ring`` give (0, 0) (a search growing ring by ring has seen them).

    Examples
    --------
    >>> for t in range(27):  # doctest: +SKIP
    ...     lo, hi = cube_cell(t, 1, False, c0, c1, c2, cells, start, order, mask)
    ...     for s in range(lo, hi):
    ...         j = order[s]
    """
    w = 2 * ring + 1
    ox = t // (w * w) - ring
    oy = (t // w) % w - ring
    oz = t % w - ring
    if shell_only and max(abs(ox), max(abs(oy), abs(oz))) != ring:
        return 0, 0
    cx = c0 + ox
    cy = c1 + oy
    cz = c2 + oz
    b = cell_hash(cx, cy, cz, mask)
    lo = start[b]
    hi = start[b + 1]
    while lo < hi and (cells[order[lo], 0] != cx or cells[order[lo], 1] != cy or cells[order[lo], 2] != cz):
        lo += 1
    end = lo
    while end < hi and cells[order[end], 0] == cx and cells[order[end], 1] == cy and cells[order[end], 2] == cz:
        end += 1
    return lo, end


@njit(cache=True)
def sq_dist(a, i, b, j):
    """Squared distance between row i of ``a`` and row j of ``b`` ((n,3) arrays)."""
    d = 0.0
    for k in range(3):
        t = a[i, k] - b[j, k]
        d += t * t
    return d


#: a dense grid (:func:`dense_grid`) holds at most this many cells, or eight per point when that is more; a larger
#: cell is taken otherwise
DENSE_MAX_CELLS = 1 << 21


@njit(cache=True)
def dense_grid(points, cell):
    """Bin ``points`` (n,3) float64 into a dense grid of side ``cell`` over their bounding box, with an empty layer of
    cells all round: each point's cell as :func:`build_grid` gives it, plus one on each axis, and the points sorted by
    cell (x-major, then y, then z; index order within a cell), so that the three cells along z of any cell's 3x3x3
    neighbourhood are one contiguous run of ``order`` and the 27 cells are visited in :func:`cube_cell`'s order
    without hashing. The caller keeps the cell count reasonable (:func:`dense_cell`).

    Returns
    -------
    origin : (3,) float64, lower corner of cell (1,1,1)
    cells : (n,3) int64, each point's cell (from 1)
    dims : (3,) int64, cells along each axis (with the empty layers)
    start : (dims.prod()+1,) int64, cell b (= (x * dims[1] + y) * dims[2] + z) holds order[start[b]:start[b+1]]
    order : (n,) int64, point indices sorted by cell (stable)
    """
    n = points.shape[0]
    origin = _column_minima(points)
    cells = np.empty((n, 3), dtype=np.int64)
    top = np.zeros(3, dtype=np.int64)
    for i in range(n):
        for k in range(3):
            c = np.int64(np.floor((points[i, k] - origin[k]) / cell)) + 1
            cells[i, k] = c
            if c > top[k]:
                top[k] = c
    dims = top + 2
    ids = np.empty(n, dtype=np.int64)
    for i in range(n):
        ids[i] = (cells[i, 0] * dims[1] + cells[i, 1]) * dims[2] + cells[i, 2]
    start, order = _counting_sort(ids, dims[0] * dims[1] * dims[2])
    return origin, cells, dims, start, order


def dense_cell(points, cell) -> float:
    """``cell``, or a larger one when a :func:`dense_grid` of ``points`` at ``cell`` would hold more than
    ``DENSE_MAX_CELLS`` cells (or eight per point): points spread far apart for their spacing."""
    n = len(points)
    if n == 0:
        return float(cell)
    extent = points.max(axis=0) - points.min(axis=0)
    limit = max(DENSE_MAX_CELLS, 8 * n)
    cell = float(cell)
    while float(np.prod(np.floor(extent / cell) + 3.0)) > limit:
        cell *= 1.25
    return cell
