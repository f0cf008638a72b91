"""Candidate sampling on a triangle mesh, weighted by area times density (numba).

Stratified sampling along the cumulative weight table: candidate k takes the face that holds the value
(k + u_k) / M * total, found by one linear walk (the u_k are sorted strata, so the walk is monotone). This costs O(m + M)
instead of a binary search per point and spreads candidates more evenly than independent draws.
"""
import numpy as np
from numba import njit


@njit(cache=True)
def stratified_faces(cumulative, u):
    """Face of every stratified sample.

    Parameters
    ----------
    cumulative : (m,) float64, inclusive cumulative face weights (non-decreasing, last > 0)
    u : (M,) float64 in [0, 1), one jitter per stratum

    Returns
    -------
    faces : (M,) int64, non-decreasing; faces with zero weight are never chosen
    """
    m = cumulative.shape[0]
    M = u.shape[0]
    total = cumulative[m - 1]
    # the last face with weight: when (k + u_k) / M * total rounds up to total, the walk must stop there, not on
    # trailing zero-weight faces
    last = m - 1
    while last > 0 and cumulative[last - 1] == total:
        last -= 1
    out = np.empty(M, dtype=np.int64)
    f = 0
    for k in range(M):
        t = (k + u[k]) / M * total
        while f < last and cumulative[f] <= t:
            f += 1
        out[k] = f
    return out
