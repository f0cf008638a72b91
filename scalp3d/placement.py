"""Blue-noise dot placement on a head surface: the entry point every other part of scalp3d calls.

:func:`place_dots` validates its input once, then runs the kernels: stratified candidates weighted by area times
density, weighted sample elimination with a skin-distance conflict measure and a variable radius, and progressive
elimination to split the dots into sessions so that the union of the first k sessions is blue noise at its own
density (Yuksel 2015, section 5). It never reads files and never plots.
"""
from __future__ import annotations

import math

import numpy as np

from . import config
from .errors import GeometryError, InputError
from .types import Dots


def spacing_for_density(density_per_cm2):
    """Hexagonal-packing spacing d_max (mm) for a density in dots per cm2: sqrt(2 / (sqrt(3) * rho))."""
    rho_per_mm2 = np.asarray(density_per_cm2, dtype=np.float64) / 100.0
    with np.errstate(divide="ignore"):
        return np.sqrt(2.0 / (math.sqrt(3.0) * rho_per_mm2))


def _as_mesh(vertices, faces):
    v = np.ascontiguousarray(vertices, dtype=np.float64)
    f = np.ascontiguousarray(faces, dtype=np.int64)
    if v.ndim != 2 or v.shape[1] != 3 or len(v) < 3:
        raise InputError(f"vertices must be an (n,3) array with n >= 3, not {v.shape}")
    if f.ndim != 2 or f.shape[1] != 3 or len(f) < 1:
        raise InputError(f"faces must be triangular, an (m,3) array, not {f.shape}")
    if not np.isfinite(v).all():
        raise InputError("vertices hold NaN or infinite coordinates; repair the mesh")
    if f.min() < 0 or f.max() >= len(v):
        raise InputError(f"faces index vertices outside 0..{len(v) - 1}")
    return v, f


def vertex_normals_of(vertices, faces):
    """Area-weighted unit vertex normals (n,3); vertices on no face get (0,0,0)."""
    tri = vertices[faces]
    fn = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])  # length = 2 * area: area weighting
    vn = np.zeros_like(vertices)
    for k in range(3):
        np.add.at(vn, faces[:, k], fn)
    norm = np.linalg.norm(vn, axis=1)
    ok = norm > 0
    vn[ok] /= norm[ok, None]
    return vn


def _fractions(sessions):
    if isinstance(sessions, (int, np.integer)):
        k = int(sessions)
        if k < 1 or k > 8:
            raise InputError(f"sessions must be 1-8, not {k}")
        if k == len(config.SESSION_FRACTIONS):
            return np.array(config.SESSION_FRACTIONS)
        return np.arange(1, k + 1) / k
    fr = np.asarray(sessions, dtype=np.float64)
    if fr.ndim != 1 or len(fr) < 1 or not np.all(np.diff(fr) > 0) or fr[0] <= 0 or abs(fr[-1] - 1.0) > 1e-9:
        raise InputError(f"session fractions must rise strictly and end at 1.0 (cumulative), not {list(fr)}")
    return fr


def place_dots(vertices, faces, *, count=None, density_per_cm2=None, sessions=3, seed=0, fixed=None,
               vertex_normals=None, candidates_per_dot=config.CANDIDATES_PER_DOT, fold_cos=config.FOLD_COS):
    """Place blue-noise dots on a triangle mesh in millimetres.

    Parameters
    ----------
    vertices : (n,3) float array, mm
    faces : (m,3) int array
    count : int, optional. Exact number of new dots. With a density field too, the field's shape is kept and scaled.
    density_per_cm2 : float or (n,) float array, optional. Target density per vertex (0 = no dots there).
        One of ``count`` and ``density_per_cm2`` is required.
    sessions : int or sequence of cumulative fractions, e.g. (0.3, 0.7, 1.0). Dots of session k are those added in
        session k; the union of sessions 1..k is spread at fraction[k] of the final density.
    seed : int, the only source of randomness: same input and seed give identical dots.
    fixed : (k,3) float array, optional. Dots already on the skin; new dots interleave with them.
    vertex_normals : (n,3) float array, optional (computed, area-weighted, when omitted).

    Returns
    -------
    Dots with ``positions`` (N,3), ``normals`` (N,3), ``face_ids`` (N,), ``session`` (N,) 1-based, ``ids`` (N,)
    1-based in session order, ``bary`` (N,3).

    Examples
    --------
    >>> import trimesh
    >>> s = trimesh.creation.icosphere(5, radius=50.0)
    >>> dots = place_dots(s.vertices, s.faces, density_per_cm2=20.0, seed=1)
    >>> len(dots) > 0
    True
    """
    from scalp3d import kernels as K

    v, f = _as_mesh(vertices, faces)
    if count is None and density_per_cm2 is None:
        raise InputError("place_dots needs count= or density_per_cm2=")
    fractions = _fractions(sessions)
    vn = vertex_normals_of(v, f) if vertex_normals is None else np.ascontiguousarray(vertex_normals, np.float64)
    if vn.shape != v.shape:
        raise InputError(f"vertex_normals must have the shape of vertices {v.shape}, not {vn.shape}")

    if density_per_cm2 is None:
        dens_v = np.ones(len(v))
    else:
        dens_v = np.broadcast_to(np.asarray(density_per_cm2, dtype=np.float64), (len(v),)).copy()
    if not np.isfinite(dens_v).all() or dens_v.min() < 0:
        raise InputError("density_per_cm2 must be finite and >= 0 everywhere")
    if dens_v.max() > config.DENSITY_MAX_PER_CM2 * 10:
        raise InputError(f"density_per_cm2 up to {dens_v.max():.0f}; at most {config.DENSITY_MAX_PER_CM2 * 10:.0f}")

    areas = K.triangle_areas(v, f)
    dens_f = dens_v[f].mean(axis=1)
    # a face is treated only if all its vertices are: zero-density regions keep a clean edge
    dens_f[(dens_v[f] <= 0).any(axis=1)] = 0.0
    expected = float((areas * dens_f).sum() / 100.0)
    if count is None:
        n_new = int(round(expected))
        scale = 1.0
    else:
        n_new = int(count)
        if n_new < 0:
            raise InputError(f"count must be >= 0, not {n_new}")
        scale = n_new / expected if expected > 0 else 0.0
    if n_new > config.MAX_DOTS:
        raise InputError(f"{n_new} dots asked for; at most {config.MAX_DOTS}")
    if n_new > 0 and expected <= 0:
        raise GeometryError("the density field is zero everywhere: no area to place dots on")

    fixed_pts = np.zeros((0, 3)) if fixed is None else np.ascontiguousarray(fixed, dtype=np.float64).reshape(-1, 3)
    if not np.isfinite(fixed_pts).all():
        raise InputError("fixed dots hold NaN or infinite coordinates")
    if n_new == 0:
        empty = np.zeros((0, 3))
        return Dots(empty, empty.copy(), np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64),
                    empty.copy())

    rng = np.random.default_rng(seed)
    m_cand = max(n_new * int(candidates_per_dot), n_new + 16)
    weights = areas * dens_f
    cum = np.cumsum(weights)
    cand_faces = K.stratified_faces(cum, rng.random(m_cand))
    r1 = np.sqrt(rng.random(m_cand))
    r2 = rng.random(m_cand)
    bary = np.column_stack([1.0 - r1, r1 * (1.0 - r2), r1 * r2])
    pts, nrm = K.interpolate_on_faces(v, vn, f, cand_faces, bary)
    dens_c = (bary * dens_v[f[cand_faces]]).sum(axis=1) * scale
    radius_c = spacing_for_density(np.maximum(dens_c, 1e-3))

    # fixed dots: normal and radius from their nearest vertex
    n_fix = len(fixed_pts)
    if n_fix:
        from scipy.spatial import cKDTree

        _, near = cKDTree(v).query(fixed_pts)
        fix_nrm = vn[near]
        fix_radius = spacing_for_density(np.maximum(dens_v[near] * scale, 1e-3))
    else:
        fix_nrm = np.zeros((0, 3))
        fix_radius = np.zeros(0)

    all_pts = np.ascontiguousarray(np.vstack([fixed_pts, pts]))
    all_nrm = np.ascontiguousarray(np.vstack([fix_nrm, nrm]))
    all_rad = np.concatenate([fix_radius, radius_c])
    removable = np.concatenate([np.zeros(n_fix, bool), np.ones(m_cand, bool)])
    chosen = _eliminate_to(all_pts, all_nrm, all_rad, removable, n_fix + n_new, n_new / m_cand, fold_cos)
    chosen_new = chosen[chosen >= n_fix] - n_fix  # candidate indices of the new dots

    # progressive split into sessions: from the last session backwards, thin the remaining set
    counts = np.round(fractions * n_new).astype(np.int64)
    counts[-1] = n_new
    session = np.full(n_new, len(fractions), dtype=np.int64)
    current = np.arange(n_new)  # positions in chosen_new still unassigned (sessions 1..k)
    for k in range(len(fractions) - 1, 0, -1):
        keep_n = int(counts[k - 1])
        idx = chosen_new[current]
        grow = math.sqrt(counts[k] / max(keep_n, 1))
        sub = _eliminate_to(pts[idx], nrm[idx], radius_c[idx] * grow, np.ones(len(idx), bool), keep_n,
                            keep_n / max(len(idx), 1), fold_cos)
        dropped = np.setdiff1d(np.arange(len(idx)), sub)
        session[current[dropped]] = k + 1
        current = current[sub]
    session[current] = 1

    # ids in session order, then candidate order (stratified along faces): stable and reproducible
    order = np.lexsort((chosen_new, session))
    sel = chosen_new[order]
    ids = np.arange(1, n_new + 1, dtype=np.int64)
    return Dots(positions=pts[sel], normals=nrm[sel], face_ids=cand_faces[sel], session=session[order], ids=ids,
                bary=bary[sel])


def _eliminate_to(points, normals, radius, removable, target, ratio, fold_cos):
    """Indices (sorted) of the points kept by weighted sample elimination."""
    from scalp3d import kernels as K

    rmin_factor = (1.0 - ratio ** config.ELIMINATION_GAMMA) * config.ELIMINATION_BETA
    indptr, indices, weights = K.conflict_graph(np.ascontiguousarray(points), np.ascontiguousarray(normals),
                                                np.ascontiguousarray(radius), config.ELIMINATION_ALPHA,
                                                rmin_factor, fold_cos)
    keep, _ = K.eliminate(indptr, indices, weights, removable, int(target))
    return np.flatnonzero(keep)
