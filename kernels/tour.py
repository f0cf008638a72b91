"""Needle tours: the order in which a session's dots are visited (numba).

A nearest-neighbour tour on a hash grid: from the current dot, search the grid outward ring by ring for the nearest
unvisited dot; when nothing is left within a few rings, scan the unvisited list. About O(n) on evenly spread dots.
"""
import math

import numpy as np
from numba import njit

from .chunks import run_chunks
from .grid import build_grid, cube_cell, sq_dist


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
            for t in range((2 * ring + 1) ** 3):
                lo, hi = cube_cell(t, ring, True, cells[cur, 0], cells[cur, 1], cells[cur, 2], cells, start,
                                   bucket_order, mask)
                for s in range(lo, hi):
                    j = bucket_order[s]
                    if visited[j]:
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


@njit(cache=True, nogil=True)
def _knn_rows(lo, hi, points, k, cell, grid, out):
    """Rows lo..hi-1 of :func:`knn_lists`."""
    origin, cells, start, order, mask = grid
    bd = np.empty(k)
    bj = np.empty(k, dtype=np.int64)
    for i in range(lo, hi):
        bd[:] = np.inf
        bj[:] = -1
        ring = 0
        while True:
            for q in range((2 * ring + 1) ** 3):
                c_lo, c_hi = cube_cell(q, ring, True, cells[i, 0], cells[i, 1], cells[i, 2], cells, start, order,
                                       mask)
                for s in range(c_lo, c_hi):
                    j = order[s]
                    if j == i:
                        continue
                    d = sq_dist(points, j, points, i)
                    if d < bd[k - 1] or (d == bd[k - 1] and j < bj[k - 1]):
                        # insert in order
                        t = k - 1
                        while t > 0 and (d < bd[t - 1] or (d == bd[t - 1] and j < bj[t - 1])):
                            bd[t] = bd[t - 1]
                            bj[t] = bj[t - 1]
                            t -= 1
                        bd[t] = d
                        bj[t] = j
            if bj[k - 1] >= 0 and math.sqrt(bd[k - 1]) <= ring * cell:
                break
            ring += 1
            if ring > 64:
                break
        for t in range(k):
            out[i, t] = bj[t]


def knn_lists(points, k, cell):
    """The k nearest other points of every point (n,k) int64, nearest first (ties to the smaller index).

    Uses a hash grid, visiting rings of cells until the k-th distance is inside the visited ring; the points are
    shared among threads in chunks (:func:`scalp3d.kernels.chunks.run_chunks`).
    """
    n = points.shape[0]
    k = int(min(k, n - 1))
    out = np.empty((n, max(k, 0)), dtype=np.int64)
    if k <= 0:
        return out
    cell = float(cell)
    run_chunks(n, _knn_rows, points, k, cell, build_grid(points, cell), out)
    return out


@njit(cache=True)
def _d(points, a, b, dummy):
    # distance with a free dummy node (index ``dummy``): it turns the open path into a cycle
    if a == dummy or b == dummy:
        return 0.0
    return math.sqrt(sq_dist(points, a, points, b))


@njit(cache=True)
def _reverse(tour, pos, i, j):
    # reverse tour[i..j] (inclusive), i <= j, never touching position 0
    while i < j:
        a = tour[i]
        b = tour[j]
        tour[i] = b
        pos[b] = i
        tour[j] = a
        pos[a] = j
        i += 1
        j -= 1


@njit(cache=True)
def _move_segment(tour, pos, i, L, j, reverse):
    # move tour[i..i+L-1] to sit right after position j (j outside the segment), optionally reversed
    seg = tour[i:i + L].copy()
    if reverse:
        seg = seg[::-1].copy()
    if j > i:
        for p in range(i + L, j + 1):
            tour[p - L] = tour[p]
            pos[tour[p - L]] = p - L
        base = j - L + 1
    else:
        for p in range(i - 1, j, -1):
            tour[p + L] = tour[p]
            pos[tour[p + L]] = p + L
        base = j + 1
    for t in range(L):
        tour[base + t] = seg[t]
        pos[seg[t]] = base + t


@njit(cache=True)
def two_opt_or_opt(points, order, neighbours, max_moves):
    """Improve an open path with 2-opt and Or-opt moves (segments of 1-3 dots, either way round).

    Moves are searched from each dot's nearest neighbours (``neighbours`` (n,k)), with a queue of dots whose edges
    changed (don't-look bits). The path is kept as a cycle through a free dummy node fixed at position 0, so its two
    ends are free too. Deterministic.

    Returns
    -------
    order : (n,) int64, the improved visit order
    """
    n = order.shape[0]
    if n < 4:
        return order.copy()
    dummy = n
    tour = np.empty(n + 1, dtype=np.int64)
    tour[0] = dummy
    for p in range(n):  # not tour[1:] = order: the slice's shape-check error costs 2.5 s of compiling
        tour[p + 1] = order[p]
    pos = np.empty(n + 1, dtype=np.int64)
    for p in range(n + 1):
        pos[tour[p]] = p
    m = n + 1
    queue = np.empty(m * 4 + 16, dtype=np.int64)
    inq = np.zeros(m, dtype=np.bool_)
    head = 0
    tail = 0
    for p in range(1, m):
        queue[tail] = tour[p]
        tail += 1
        inq[tour[p]] = True
    qcap = queue.shape[0]
    moves = 0
    K = neighbours.shape[1]
    while head != tail and moves < max_moves:
        a = queue[head]
        head = (head + 1) % qcap
        inq[a] = False
        improved = False
        # --- 2-opt, both directions around a
        for direction in range(2):
            pa = pos[a]
            if direction == 0:
                sa = tour[(pa + 1) % m]
            else:
                sa = tour[(pa - 1) % m]
            d_a_sa = _d(points, a, sa, dummy)
            for t in range(K):
                c = neighbours[a, t]
                d_ac = _d(points, a, c, dummy)
                if d_ac >= d_a_sa:
                    break
                pc = pos[c]
                sc = tour[(pc + 1) % m] if direction == 0 else tour[(pc - 1) % m]
                if c == sa or sc == a:
                    continue
                gain = d_a_sa + _d(points, c, sc, dummy) - d_ac - _d(points, sa, sc, dummy)
                if gain > 1e-10:
                    # the two removed edges start at positions e1 and e2; reversing the path between them
                    # (never position 0, where the dummy sits) makes the two new edges
                    if direction == 0:
                        e1, e2 = pa, pc
                    else:
                        e1, e2 = pa - 1, pc - 1
                    i, j = min(e1, e2) + 1, max(e1, e2)
                    _reverse(tour, pos, i, j)
                    moves += 1
                    improved = True
                    for x in (a, sa, c, sc):
                        if x != dummy and not inq[x]:
                            queue[tail] = x
                            tail = (tail + 1) % qcap
                            inq[x] = True
                    break
            if improved:
                break
        if improved:
            continue
        # --- Or-opt: move a segment starting at a (length 1..3, forward) next to one of a's neighbours
        pa = pos[a]
        for L in range(1, 4):
            if pa + L - 1 >= m:
                break
            e = tour[pa + L - 1]
            if e == dummy:
                break
            prv = tour[pa - 1]
            nxt = tour[(pa + L) % m]
            remove_gain = _d(points, prv, a, dummy) + _d(points, e, nxt, dummy) - _d(points, prv, nxt, dummy)
            if remove_gain <= 1e-10:
                continue
            best = 1e-10
            bj = np.int64(-1)
            brev = np.bool_(False)
            for end in range(2):
                x = a if end == 0 else e
                for t in range(K):
                    c = neighbours[x, t]
                    pc = pos[c]
                    if pc >= pa and pc <= pa + L - 1:
                        continue
                    d_xc = _d(points, x, c, dummy)
                    if d_xc >= remove_gain:
                        break
                    # insert between c and its successor, or its predecessor and c
                    for side in range(2):
                        if side == 0:
                            u, w = c, tour[(pc + 1) % m]
                            pu = pc
                        else:
                            u, w = tour[(pc - 1) % m], c
                            pu = (pc - 1) % m
                        if (pu >= pa - 1 and pu <= pa + L - 1):
                            continue  # touches the segment's own place
                        base = _d(points, u, w, dummy)
                        fwd = _d(points, u, a, dummy) + _d(points, e, w, dummy) - base
                        rev = _d(points, u, e, dummy) + _d(points, a, w, dummy) - base
                        g1 = remove_gain - fwd
                        g2 = remove_gain - rev
                        if g1 > best:
                            best = g1
                            bj = pu
                            brev = False
                        if g2 > best:
                            best = g2
                            bj = pu
                            brev = True
            if bj >= 0:
                seg0 = tour[pa - 1]
                seg1 = tour[(pa + L) % m]
                uu = tour[bj]
                ww = tour[(bj + 1) % m]
                _move_segment(tour, pos, pa, L, bj, brev)
                moves += 1
                improved = True
                for x in (a, e, seg0, seg1, uu, ww):
                    if x != dummy and not inq[x]:
                        queue[tail] = x
                        tail = (tail + 1) % qcap
                        inq[x] = True
                break
        if improved:
            if not inq[a]:
                queue[tail] = a
                tail = (tail + 1) % qcap
                inq[a] = True
    # cut the cycle at the dummy
    out = np.empty(n, dtype=np.int64)
    p0 = pos[dummy]
    for t in range(n):
        out[t] = tour[(p0 + 1 + t) % m]
    return out
