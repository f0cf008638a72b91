"""Nearest-neighbour distances on a hash grid (numba), the core of the placement quality figures."""
import math

import numpy as np
from numba import njit, prange

from .grid import build_grid, cell_hash, sq_dist


@njit(parallel=True, cache=True)
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
    origin, cells, start, order, mask = build_grid(points, cell)
    n = points.shape[0]
    dist = np.empty(q)
    index = np.empty(q, dtype=np.int64)
    for i in prange(q):
        qc0 = np.int64(np.floor((queries[i, 0] - origin[0]) / cell))
        qc1 = np.int64(np.floor((queries[i, 1] - origin[1]) / cell))
        qc2 = np.int64(np.floor((queries[i, 2] - origin[2]) / cell))
        best = np.inf
        bj = -1
        ring = 0
        while True:
            # visit the shell of cells at Chebyshev distance ``ring``
            for ox in range(-ring, ring + 1):
                for oy in range(-ring, ring + 1):
                    for oz in range(-ring, ring + 1):
                        if max(abs(ox), max(abs(oy), abs(oz))) != ring:
                            continue
                        cx = qc0 + ox
                        cy = qc1 + oy
                        cz = qc2 + oz
                        b = cell_hash(cx, cy, cz, mask)
                        for s in range(start[b], start[b + 1]):
                            j = order[s]
                            if cells[j, 0] != cx or cells[j, 1] != cy or cells[j, 2] != cz:
                                continue
                            if exclude_self and j == i:
                                continue
                            d = sq_dist(points, j, queries, i)
                            if d < best or (d == best and j < bj):
                                best = d
                                bj = j
            # every point not yet seen is at least ring * cell away
            if bj >= 0 and math.sqrt(best) <= ring * cell:
                break
            ring += 1
            if ring > 8:
                # far from everything: finish by brute force
                for j in range(n):
                    if exclude_self and j == i:
                        continue
                    d = sq_dist(points, j, queries, i)
                    if d < best or (d == best and j < bj):
                        best = d
                        bj = j
                break
        dist[i] = math.sqrt(best)
        index[i] = bj
    return dist, index
