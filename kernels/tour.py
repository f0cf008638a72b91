"""Needle tours: the order in which a session's dots are visited (numba).

A nearest-neighbour tour on a hash grid: from the current dot, search the grid outward ring by ring for the nearest
unvisited dot; when nothing is left within a few rings, scan the unvisited list. About O(n) on evenly spread dots.
"""
import math

import numpy as np
from numba import njit

from .grid import build_grid, cell_hash, sq_dist


@njit(cache=True)
def nearest_neighbour_tour(points, start_index, cell):
    """Visit order of ``points`` (n,3) float64 starting at ``start_index``.

    Returns
    -------
    order : (n,) int64, a permutation of range(n)
    """
    n = points.shape[0]
    order = np.empty(n, dtype=np.int64)
    if n == 0:
        return order
    origin, cells, start, bucket_order, mask = build_grid(points, cell)
    visited = np.zeros(n, dtype=np.bool_)
    # unvisited list with O(1) swap-removal, for the brute-force fallback
    unv = np.arange(n)
    where = np.arange(n)
    n_unv = n
    cur = start_index
    for step in range(n):
        order[step] = cur
        visited[cur] = True
        w = where[cur]
        last = unv[n_unv - 1]
        unv[w] = last
        where[last] = w
        n_unv -= 1
        if n_unv == 0:
            break
        best = np.inf
        bj = -1
        found = False
        for ring in range(0, 4):
            for ox in range(-ring, ring + 1):
                for oy in range(-ring, ring + 1):
                    for oz in range(-ring, ring + 1):
                        if max(abs(ox), max(abs(oy), abs(oz))) != ring:
                            continue
                        cx = cells[cur, 0] + ox
                        cy = cells[cur, 1] + oy
                        cz = cells[cur, 2] + oz
                        b = cell_hash(cx, cy, cz, mask)
                        for s in range(start[b], start[b + 1]):
                            j = bucket_order[s]
                            if visited[j] or cells[j, 0] != cx or cells[j, 1] != cy or cells[j, 2] != cz:
                                continue
                            d = sq_dist(points, j, points, cur)
                            if d < best or (d == best and j < bj):
                                best = d
                                bj = j
            if bj >= 0 and math.sqrt(best) <= ring * cell:
                found = True
                break
        if not found:
            for u in range(n_unv):
                j = unv[u]
                d = sq_dist(points, j, points, cur)
                if d < best or (d == best and j < bj):
                    best = d
                    bj = j
        cur = bj
    return order


@njit(cache=True)
def path_length(points, order):
    """Length of the open path visiting ``points`` in ``order``."""
    total = 0.0
    for k in range(order.shape[0] - 1):
        a = order[k]
        b = order[k + 1]
        d = 0.0
        for c in range(3):
            t = points[b, c] - points[a, c]
            d += t * t
        total += math.sqrt(d)
    return total
