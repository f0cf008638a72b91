"""The spacing floor: no two dots of a plan closer than their pair's floor, checked on the union and per session.

The floor of a pair is ``config.SPACING_FLOOR_FRACTION`` of the smaller of the two dots' local target spacings
(d_max of the local final density), never under ``config.SPACING_FLOOR_MIN_MM``; a session alone is held to the same
fraction of its own spacing (the union's over the square root of the session's share of the final density). The
placement engine keeps every pair above it; this module is the independent check the pipeline and `scalp3d sample`
run on the finished dots before any program or file is written (a plan that fails is refused, exit 3). It uses its
own KD-tree (scipy), not the engine's grid, so a shared bug cannot hide a close pair.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from . import config
from .errors import PlanRefused
from .types import Dots


def floor_mm(spacing_a, spacing_b):
    """Floor (mm) of pairs whose dots have local target spacings ``spacing_a`` and ``spacing_b`` (mm)."""
    return np.maximum(config.SPACING_FLOOR_FRACTION * np.minimum(spacing_a, spacing_b), config.SPACING_FLOOR_MIN_MM)


def floor_reach_mm(spacing_mm, fractions) -> float:
    """The largest floor any pair of these dots can have, on the union or a session alone (mm): two dots farther
    apart than this are never a breach."""
    sp = np.asarray(spacing_mm, dtype=np.float64)
    if len(sp) == 0:
        return 0.0
    shares = np.diff(np.concatenate([[0.0], np.asarray(fractions, dtype=np.float64)]))
    own = float(sp.max()) / math.sqrt(float(shares[shares > 0].min()))
    return float(floor_mm(own, own))


def close_pairs(points, spacing_mm):
    """Every pair closer than its floor.

    Parameters
    ----------
    points : (n,3) float, mm
    spacing_mm : (n,) float, each dot's local target spacing (mm)

    Returns
    -------
    i, j : (p,) int64 row indices with i < j; dist, floor : (p,) float64 mm, closest pairs first
    """
    from scipy.spatial import cKDTree

    pts = np.asarray(points, dtype=np.float64)
    sp = np.broadcast_to(np.asarray(spacing_mm, dtype=np.float64), (len(pts),))
    empty = np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0), np.zeros(0)
    if len(pts) < 2:
        return empty
    # a pair under its floor is within the floor of each of its dots taken alone (the pair's floor is the smaller):
    # every pair within the usual dot's reach at once, then the few dots that reach farther (sparse ones: a feathered
    # margin) among themselves; a ball query per dot took most of the plan's check in Python lists
    reach = floor_mm(sp, sp)
    common = float(np.percentile(reach, 95))
    ii, jj = cKDTree(pts).query_pairs(common, output_type="ndarray").T.astype(np.int64)
    far = np.flatnonzero(reach > common)
    if len(far) > 1:
        hits = cKDTree(pts[far]).query_ball_point(pts[far], reach[far], return_sorted=False)
        fi = np.repeat(np.arange(len(far)), [len(h) for h in hits])
        fj = np.concatenate([np.asarray(h, dtype=np.int64) for h in hits])
        a, b = far[fi], far[fj]
        keep = (a < b) & (np.linalg.norm(pts[a] - pts[b], axis=1) > common)  # nearer pairs are listed already
        ii, jj = np.concatenate([ii, a[keep]]), np.concatenate([jj, b[keep]])
    dist = np.linalg.norm(pts[ii] - pts[jj], axis=1)
    fl = floor_mm(sp[ii], sp[jj])
    bad = dist < fl
    order = np.argsort(dist[bad], kind="stable")
    return ii[bad][order], jj[bad][order], dist[bad][order], fl[bad][order]


@dataclass
class Breach:
    """Pairs under the floor in one set of dots (``scope``: "all dots" or "session K")."""

    scope: str
    i: np.ndarray
    j: np.ndarray
    dist: np.ndarray
    floor: np.ndarray


def check_floor(points, spacing_mm, session, fractions, done=None) -> list:
    """Breaches of the floor on the union and on each session alone (an empty list when the plan is safe).

    ``spacing_mm`` is each dot's local target spacing for the final density; ``session`` 1-based; ``fractions`` the
    cumulative share of the final density after each session; ``done`` (n,) bool, optional: dots already on the skin.
    A pair of two done dots is not checked: they were checked under the plan they were tattooed from, and a revision
    that lowers the density around them (a hairline moved up) cannot move them; every pair with a new dot is.
    """
    pts = np.asarray(points, dtype=np.float64)
    sp = np.asarray(spacing_mm, dtype=np.float64)
    session = np.asarray(session)
    fr = np.asarray(fractions, dtype=np.float64)
    shares = np.diff(np.concatenate([[0.0], fr]))
    done = np.zeros(len(pts), bool) if done is None else np.asarray(done, dtype=bool)

    def new_pairs(rows, i, j, d, f):
        keep = ~(done[rows[i]] & done[rows[j]])
        return rows[i][keep], rows[j][keep], d[keep], f[keep]

    out = []
    i, j, d, f = new_pairs(np.arange(len(pts)), *close_pairs(pts, sp))
    if len(i):
        out.append(Breach("all dots", i, j, d, f))
    for k, share in enumerate(shares, start=1):
        rows = np.flatnonzero(session == k)
        if len(rows) < 2 or share <= 0:
            continue
        i, j, d, f = new_pairs(rows, *close_pairs(pts[rows], sp[rows] / np.sqrt(share)))
        if len(i):
            out.append(Breach(f"session {k} alone", i, j, d, f))
    return out


def refuse_close_dots(dots, spacing_mm, fractions, source: str = "the plan", done=None):
    """Refuse (:class:`PlanRefused`, exit 3) dots that break the spacing floor on the union or any session alone,
    naming the closest pairs, where they are and what to change (:mod:`scalp3d.spacing`); pairs of two ``done``
    dots are not checked (see :func:`check_floor`)."""
    breaches = check_floor(dots.positions, spacing_mm, dots.session, fractions, done=done)
    if not breaches:
        return
    b = breaches[0]
    def zone(k):
        return f" in zone {dots.zone_names[int(dots.zone[k])]}" if isinstance(dots, Dots) else ""

    pairs = "; ".join(
        f"dots {dots.ids[i]} and {dots.ids[j]} {d:.2f} mm apart (floor {fl:.2f} mm){zone(i)} at "
        f"({', '.join(f'{x:.1f}' for x in dots.positions[i])}) mm"
        for i, j, d, fl in list(zip(b.i, b.j, b.dist, b.floor))[:3])
    more = sum(len(x.i) for x in breaches) - min(len(b.i), 3)
    raise PlanRefused(f"{source} refused: {len(b.i)} pair(s) of dots closer than the spacing floor ({b.scope}): "
                      f"{pairs}{f' (+{more} more)' if more > 0 else ''}; lower the density there, widen the region "
                      "or its margin, or try another --seed; nothing was written")
