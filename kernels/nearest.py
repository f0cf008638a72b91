"""Nearest-neighbour distances on a hash grid (numba), the core of the placement quality figures."""
import math

import numpy as np
from numba import njit

from .chunks import run_chunks
from .grid import build_grid, cube_cell, sq_dist


@njit(cache=True, inline="always")
def _offer(j, i, points, queries, exclude_self, best, bj):
    """(best, bj) after point j is offered to query i: nearer wins, ties go to the smaller index."""
    if exclude_self and j == i:
        return best, bj
    d = sq_dist(points, j, queries, i)
    if d < best or (d == best and j < bj):
        return d, j
    return best, bj


@njit(cache=True, nogil=True, _nrt=False)
def _nearest_rows(lo, hi, queries, points, cell, exclude_self, grid, dist, index):
    """Queries lo..hi-1 of :func:`nearest_distance`."""
    origin, cells, start, order, mask = grid
    n = points.shape[0]
    for i in range(lo, hi):
        qc0 = np.int64(np.floor((queries[i, 0] - origin[0]) / cell))
        qc1 = np.int64(np.floor((queries[i, 1] - origin[1]) / cell))
        qc2 = np.int64(np.floor((queries[i, 2] - origin[2]) / cell))
        best = np.inf
        bj = -1
        ring = 0
        while True:
            # visit the shell of cells at Chebyshev distance ``ring``
            for t in range((2 * ring + 1) ** 3):
                c_lo, c_hi = cube_cell(t, ring, True, qc0, qc1, qc2, cells, start, order, mask)
                for s in range(c_lo, c_hi):
                    best, bj = _offer(order[s], i, points, queries, exclude_self, best, bj)
            # every point not yet seen is at least ring * cell away
            if bj >= 0 and math.sqrt(best) <= ring * cell:
                break
            ring += 1
            if ring > 8:
                # far from everything: finish by brute force
                for j in range(n):
                    best, bj = _offer(j, i, points, queries, exclude_self, best, bj)
                break
        dist[i] = math.sqrt(best)
        index[i] = bj


def nearest_distance(queries, points, cell, exclude_self):
    """Euclidean distance from every query to its nearest point.

    Parameters
    ----------
    queries : (q,3) float64
    points : (n,3) float64, n >= 1 (n >= 2 with ``exclude_self``)
    cell : float, grid cell size; about the expected nearest distance is fastest
    exclude_self : bool, queries are the points themselves: skip index i for query i

    Returns
    -------
    dist : (q,) float64
    index : (q,) int64, index into ``points``
    """
    q = queries.shape[0]
    cell = float(cell)
    grid = build_grid(points, cell)
    dist = np.empty(q)
    index = np.empty(q, dtype=np.int64)
    run_chunks(q, _nearest_rows, queries, points, cell, bool(exclude_self), grid, dist, index)
    return dist, index
