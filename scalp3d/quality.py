"""Placement quality figures: how natural and how right the dots are.

With d_max = sqrt(2 / (sqrt(3) * rho)) the hexagonal-packing spacing at the local target density rho (taken at no
less than a tenth of the plan's peak density, :func:`scalp3d.placement.local_spacing_mm`):
rho (min nearest-neighbour distance / d_max), nn_p1 (1st percentile of that ratio), nn_cv (coefficient of
variation of the ratio: 0 for a lattice, about 0.52 for uniform random points), coverage_p99 (99th percentile, over
random points on the treated skin, of the distance to the nearest dot / d_max), realised vs planned density per zone
(after each session too), and the radially averaged spectrum's peak (a lattice spikes above 6; blue noise stays
near 2) and its mean power below 0.6 / d_max (blue noise: low; white noise: about 0.6).
"""
from __future__ import annotations

import numpy as np

from . import config
from .placement import local_spacing_mm
from .meshes import stratified_samples
from .types import Dots, Field, Head, settings_vertex
from .warmup import in_stage


def _dot_density(head: Head, field: Field, dots: Dots):
    f = head.faces[dots.face_ids]
    return (dots.bary * field.density_per_cm2[f]).sum(axis=1)


def spread_figures(points, dmax_local) -> dict:
    """rho, nn_p1, nn_cv of one point set (n,3) given each point's local d_max (n,).

    Each dot's nearest distance is measured against the smaller of its own and its nearest neighbour's d_max, as the
    spacing floor is (:mod:`scalp3d.config`): where the density falls steeply (a margin feathered to zero), a sparse
    dot beside the dense edge is not a clump. Under a uniform density this is the usual nn / d_max."""
    from scalp3d import kernels as K

    if len(points) < 2:
        return {"count": int(len(points)), "rho": None, "nn_p1": None, "nn_cv": None}
    dmax_local = np.broadcast_to(np.asarray(dmax_local, dtype=np.float64), (len(points),))
    nn, near = K.nearest_distance(np.ascontiguousarray(points), np.ascontiguousarray(points),
                                  float(np.median(dmax_local)), True)
    r = nn / np.minimum(dmax_local, dmax_local[near])
    return {"count": int(len(points)), "rho": round(float(r.min()), 4), "nn_p1": round(float(np.percentile(r, 1)), 4),
            "nn_cv": round(float(r.std() / r.mean()), 4)}


@in_stage("quality")
def placement_quality(head: Head, field: Field, dots: Dots, fractions, seed: int = 0,
                      coverage_samples: int = config.COVERAGE_SAMPLES) -> dict:
    """Quality figures for the union, each cumulative session and each session alone, plus density per zone."""
    from scalp3d import kernels as K

    dens = _dot_density(head, field, dots)
    out = {"union": {}, "cumulative": [], "sessions": [], "zones": {}}
    fr = np.asarray(fractions, dtype=np.float64)
    peak = float(field.density_per_cm2.max())
    spacing = local_spacing_mm(dens, peak)
    full = spread_figures(dots.positions, spacing)

    def figures(rows, share):
        # the set of all dots at the whole density (the last cumulative session; the one session of a one-session
        # plan) is the union, measured already
        return dict(full) if rows.all() and share == 1.0 else \
            spread_figures(dots.positions[rows], spacing[rows] / np.sqrt(share))

    for k in range(1, len(fr) + 1):
        share = fr[k - 1] - (fr[k - 2] if k > 1 else 0.0)
        c = figures(dots.session <= k, fr[k - 1])
        a = figures(dots.session == k, share)
        out["cumulative"].append({"through_session": k, **c})
        out["sessions"].append({"session": k, **a})
    # coverage: random points on the treated skin
    areas = K.triangle_areas(head.vertices, head.faces)
    fd = field.density_per_cm2[head.faces]
    treated = (fd > 0).all(axis=1)
    w = areas * treated
    rng = np.random.default_rng(seed + 7919)
    if w.sum() > 0 and len(dots) > 1:
        faces, bary, pts, _ = stratified_samples(head.vertices, head.vertex_normals, head.faces, w,
                                                 coverage_samples, rng)
        dq = (bary * fd[faces]).sum(axis=1)
        d, _ = K.nearest_distance(pts, np.ascontiguousarray(dots.positions), 1.0, False)
        full["coverage_p99"] = round(float(np.percentile(d / local_spacing_mm(dq, peak), 99)), 4)
    out["union"] = full
    # realised vs planned density per zone, by the rule dots.csv uses (the settings vertex, the face corner with the
    # largest barycentric weight): a dot counts in its vertex's zone, and each treated face gives a third of its area
    # (and of its planned dots) to the zone of each of its corners
    dot_zone = dots.zone if isinstance(dots, Dots) else \
        field.zone[settings_vertex(head.faces, dots.face_ids, dots.bary)]
    corner_zone = field.zone[head.faces].ravel()  # (3m,): each face's three corners
    third = np.repeat(np.where(treated, areas / 3.0, 0.0), 3)
    planned_third = third * np.repeat(fd.mean(axis=1), 3) / 100.0
    nz = len(field.zone_names)
    zone_area = np.bincount(corner_zone, weights=third, minlength=nz)
    zone_planned = np.bincount(corner_zone, weights=planned_third, minlength=nz)
    for k, name in enumerate(field.zone_names):
        area_cm2 = float(zone_area[k] / 100.0)
        if area_cm2 <= 0:
            continue
        n = int((dot_zone == k).sum())
        by_session = [round(int(((dot_zone == k) & (dots.session <= s)).sum()) / area_cm2, 2)
                      for s in range(1, len(fr) + 1)]
        out["zones"][name] = {"area_cm2": round(area_cm2, 2), "dots": n,
                              "planned_per_cm2": round(float(zone_planned[k] / area_cm2), 2),
                              "realised_per_cm2": round(n / area_cm2, 2),
                              "realised_per_cm2_after_session": by_session}
    if len(dots) > 100:
        freq, power = radial_spectrum(dots.positions, dots.normals, float(np.median(spacing)), patches=32,
                                      seed=seed)
        full["spectrum_peak"] = round(float(power.max()), 3)
        full["spectrum_low"] = round(float(power[freq < 0.6].mean()), 3)
    return out


def radial_spectrum(points, normals, dmax_mm, *, patches=48, patch_radius=8.0, bins=40, seed=0):
    """Radially averaged power spectrum of the dots, from tangent-plane patches.

    Around ``patches`` dots chosen at random, the dots within ``patch_radius`` d_max are projected onto the tangent
    plane and their periodogram P(k) = |sum exp(-2 pi i k.x)|^2 / n is averaged over directions and patches.
    Frequencies are in units of 1 / d_max. Blue noise shows a low P near 0, a soft rise to about 1 and no tall spike;
    a lattice shows spikes (P in the tens) at its reciprocal-lattice radii; white noise is flat at about 1.

    Returns
    -------
    freq : (bins,) float64, in 1 / d_max
    power : (bins,) float64
    """
    from scipy.spatial import cKDTree

    from scalp3d.kernels.spectrum import patch_power

    pts = np.asarray(points, dtype=np.float64)
    nrm = np.asarray(normals, dtype=np.float64)
    rng = np.random.default_rng(seed)
    tree = cKDTree(pts)
    kmin, kmax = 0.25, 2.5  # below about 2 / patch_radius the window's own transform dominates
    step = (kmax - kmin) / bins
    freq = kmin + (np.arange(bins) + 0.5) * step
    angles = np.linspace(0, np.pi, 36, endpoint=False)
    total = np.zeros(bins)
    used = 0
    window_r = patch_radius * dmax_mm
    for c in rng.choice(len(pts), size=min(patches, len(pts)), replace=False):
        idx = tree.query_ball_point(pts[c], window_r)
        if len(idx) < 30:
            continue
        n = nrm[c]
        a = np.array([1.0, 0, 0]) if abs(n[0]) < 0.9 else np.array([0, 1.0, 0])
        t1 = a - n * (a @ n)
        t1 /= np.linalg.norm(t1)
        t2 = np.cross(n, t1)
        rel = pts[idx] - pts[c]
        xy = np.column_stack([rel @ t1, rel @ t2])
        # a smooth window keeps the patch's edge from ringing
        w = np.cos(0.5 * np.pi * np.minimum(np.linalg.norm(xy, axis=1) / window_r, 1.0)) ** 2
        total += patch_power(freq[0] / dmax_mm, step / dmax_mm, bins, angles, np.ascontiguousarray(xy), w)
        used += 1
    return freq, total / max(used, 1)
