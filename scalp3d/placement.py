"""Blue-noise dot placement on a head surface: the entry point every other part of scalp3d calls.

:func:`place_dots` validates its input once, then runs the kernels: stratified candidates weighted by area times
density, weighted sample elimination with a skin-distance conflict measure and a variable radius (Yuksel 2015), a
light relaxation that pushes too-close pairs apart along the skin, then sessions picked one by one as well-spread
subsets of the dots at their own density. With ``session_mode="joint"`` the dots are then relaxed once more, all
sessions together, each pair at a target distance set by the two dots' sessions (soft over-compressed sweeps, then a
projection onto hard targets), so that every session alone is as well spread as the union (issue 3). It never reads
files and never plots.
"""
from __future__ import annotations

import math

import numpy as np

from . import config
from .errors import GeometryError, InputError
from .meshes import vertex_normals_of  # noqa: F401  (re-exported: scripts and tests import it from here)
from .types import Dots


def spacing_for_density(density_per_cm2):
    """Hexagonal-packing spacing d_max (mm) for a density in dots per cm2: sqrt(2 / (sqrt(3) * rho))."""
    rho_per_mm2 = np.asarray(density_per_cm2, dtype=np.float64) / 100.0
    with np.errstate(divide="ignore"):
        return np.sqrt(2.0 / (math.sqrt(3.0) * rho_per_mm2))


def local_spacing_mm(density_per_cm2, peak_per_cm2):
    """A dot's local target spacing (mm): d_max of the local density, taken at no less than
    ``config.SPACING_DENSITY_FLOOR_SHARE`` of the plan's highest density ``peak_per_cm2``. Where a margin feathers to
    zero the density's own spacing grows without bound (a dot at 0.05 dots/cm2 would keep every other dot 48 mm
    away); there the dots thin out to scattered ones spaced as at a tenth of the peak. The placement, the quality
    figures and the spacing floor all measure with this one spacing."""
    dens = np.asarray(density_per_cm2, dtype=np.float64)
    low = max(float(peak_per_cm2) * config.SPACING_DENSITY_FLOOR_SHARE, 1e-3)
    return spacing_for_density(np.maximum(dens, low))


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


def _fractions(sessions):
    if isinstance(sessions, (int, np.integer)):
        k = int(sessions)
        if k < 1 or k > config.MAX_SESSIONS:
            raise InputError(f"sessions must be 1-{config.MAX_SESSIONS}, not {k}")
        if k == len(config.SESSION_FRACTIONS):
            return np.array(config.SESSION_FRACTIONS)
        return np.arange(1, k + 1) / k
    fr = np.asarray(sessions, dtype=np.float64)
    if fr.ndim != 1 or len(fr) < 1 or not np.all(np.diff(fr) > 0) or fr[0] <= 0 or abs(fr[-1] - 1.0) > 1e-9:
        raise InputError(f"session fractions must rise strictly and end at 1.0 (cumulative), not {list(fr)}")
    return fr


def place_dots(vertices, faces, *, count=None, density_per_cm2=None, sessions=3, seed=0, fixed=None,
               vertex_normals=None, candidates_per_dot=None, fold_cos=config.FOLD_COS, relax_passes=None,
               session_mode=config.SESSION_MODE):
    """Place blue-noise dots on a triangle mesh in millimetres.

    Parameters
    ----------
    vertices : (n,3) float array, mm
    faces : (m,3) int array
    count : int, optional. Exact number of new dots. With a density field too, the field's shape is kept and scaled.
    density_per_cm2 : float or (n,) float array, optional. Target final density per vertex (0 = no dots there);
        with ``fixed`` dots, the final density of old and new dots together.
        One of ``count`` and ``density_per_cm2`` is required.
    sessions : int or sequence of cumulative fractions, e.g. (0.3, 0.7, 1.0). Dots of session k are those added in
        session k; the union of sessions 1..k is spread at fraction[k] of the final density.
    seed : int, the only source of randomness: same input and seed give identical dots.
    fixed : (k,3) float array, optional. Dots already on the skin (mm, on this mesh); new dots interleave with them
        at the spacing of the final density and are split into sessions among themselves.
    vertex_normals : (n,3) float array, optional (computed, area-weighted, when omitted).
    candidates_per_dot : int, candidate pool per dot for the elimination (default ``config.CANDIDATES_PER_DOT``,
        ``config.JOINT_CANDIDATES_PER_DOT`` in joint mode without fixed dots: its relaxation evens a rough start out).
    relax_passes : int, relaxation passes after selection (0 = pure sample elimination; default
        ``config.RELAX_PASSES``). The joint relaxation alone would even out a start without passes too (the cap's
        figures are the same), but on real heads the union's closest pair then comes out worse (sample head, seeds
        0-3: rho 0.70-0.75 against 0.74-0.79), so the guarded passes stay in every mode.
    session_mode : "joint" (default, ``config.SESSION_MODE``) starts from sessions picked as well-spread subsets of the
        relaxed union and relaxes all dots again jointly with a target distance per pair of sessions (see
        :func:`_relax_joint`), so that every session is well spread on its own as well as the union; "subsets" stops
        at the subsets (about twice as fast; sessions alone less even).

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

    from .meshes import stratified_samples

    v, f = _as_mesh(vertices, faces)
    if count is None and density_per_cm2 is None:
        raise InputError("place_dots needs count= or density_per_cm2=")
    fractions = _fractions(sessions)
    if session_mode not in ("subsets", "joint"):
        raise InputError(f"session_mode must be 'subsets' or 'joint', not {session_mode!r}")
    joint = session_mode == "joint" and len(fractions) > 1
    if candidates_per_dot is None:
        # (around fixed dots, which cannot make room, the fuller pool still pays)
        lean = joint and (fixed is None or len(fixed) == 0)
        candidates_per_dot = config.JOINT_CANDIDATES_PER_DOT if lean else config.CANDIDATES_PER_DOT
    if relax_passes is None:
        relax_passes = config.RELAX_PASSES
    vn = vertex_normals_of(v, f) if vertex_normals is None else np.ascontiguousarray(vertex_normals, np.float64)
    if vn.shape != v.shape:
        raise InputError(f"vertex_normals must have the shape of vertices {v.shape}, not {vn.shape}")

    if density_per_cm2 is None:
        dens_v = np.ones(len(v))
    else:
        dens_v = np.broadcast_to(np.asarray(density_per_cm2, dtype=np.float64), (len(v),)).copy()
    if not np.isfinite(dens_v).all() or dens_v.min() < 0:
        raise InputError("density_per_cm2 must be finite and >= 0 everywhere")
    if dens_v.max() > config.DENSITY_INPUT_MAX_PER_CM2:
        raise InputError(f"density_per_cm2 up to {dens_v.max():.0f}; at most {config.DENSITY_INPUT_MAX_PER_CM2:.0f}")

    areas = K.triangle_areas(v, f)
    dens_f = dens_v[f].mean(axis=1)
    # a face is treated only if all its vertices are: zero-density regions keep a clean edge
    dens_f[(dens_v[f] <= 0).any(axis=1)] = 0.0
    expected = float((areas * dens_f).sum() / 100.0)
    fixed_pts = np.zeros((0, 3)) if fixed is None else np.ascontiguousarray(fixed, dtype=np.float64).reshape(-1, 3)
    if not np.isfinite(fixed_pts).all():
        raise InputError("fixed dots hold NaN or infinite coordinates")
    n_fix = len(fixed_pts)
    # with fixed dots, a density is the final density of old and new dots together
    if count is None:
        n_new = max(int(round(expected)) - n_fix, 0)
    else:
        n_new = int(count)
        if n_new < 0:
            raise InputError(f"count must be >= 0, not {n_new}")
    scale = (n_new + n_fix) / expected if expected > 0 else 0.0
    if n_new > config.MAX_DOTS:
        raise InputError(f"{n_new} dots asked for; at most {config.MAX_DOTS}")
    if n_new > 0 and expected <= 0:
        raise GeometryError("the density field is zero everywhere: no area to place dots on")

    if n_new == 0:
        empty = np.zeros((0, 3))
        return Dots(empty, empty.copy(), np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64),
                    empty.copy())

    rng = np.random.default_rng(seed)
    m_cand = max(n_new * int(candidates_per_dot), n_new + 16)
    cand_faces, bary, pts, nrm = stratified_samples(v, vn, f, areas * dens_f, m_cand, rng)
    dens_c = (bary * dens_v[f[cand_faces]]).sum(axis=1) * scale
    peak = float(dens_v.max()) * scale
    radius_c = local_spacing_mm(dens_c, peak)

    # fixed dots: normal and radius from their nearest vertex
    if n_fix:
        from scipy.spatial import cKDTree

        _, near = cKDTree(v).query(fixed_pts)
        fix_nrm = vn[near]
        fix_radius = local_spacing_mm(dens_v[near] * scale, peak)
    else:
        fix_nrm = np.zeros((0, 3))
        fix_radius = np.zeros(0)

    # 1. select the union by weighted sample elimination, fixed dots kept
    all_pts = np.ascontiguousarray(np.vstack([fixed_pts, pts]))
    all_nrm = np.ascontiguousarray(np.vstack([fix_nrm, nrm]))
    all_rad = np.concatenate([fix_radius, radius_c])
    removable = np.concatenate([np.zeros(n_fix, bool), np.ones(m_cand, bool)])
    chosen = _eliminate_to(all_pts, all_nrm, all_rad, removable, n_fix + n_new, n_new / m_cand, fold_cos)
    sel = chosen[chosen >= n_fix] - n_fix  # candidate indices of the new dots
    pos, nor, fid, bar, rad = pts[sel], nrm[sel], cand_faces[sel], bary[sel], radius_c[sel]

    # 2. relax the union: push too-close pairs apart along the skin (fixed dots stay)
    if relax_passes > 0:
        pos, nor, fid, bar = _relax(v, vn, f, dens_f > 0, fixed_pts, fix_nrm, fix_radius, pos, nor, fid, bar, rad,
                                    relax_passes, fold_cos)

    # 3. sessions: each a well-spread subset of the union
    session = _assign_sessions(pos, nor, rad * math.sqrt((n_new + n_fix) / n_new), fractions, fold_cos)

    # 4. joint mode: relax all dots again, each pair at a target set by its two sessions
    if joint:
        pos, nor, fid, bar = _relax_joint(v, vn, f, dens_f > 0, fixed_pts, fix_nrm, fix_radius, pos, nor, fid, bar,
                                          rad, session, fractions, n_new / (n_new + n_fix), fold_cos,
                                          dens_v=None if density_per_cm2 is None else dens_v * scale)

    # ids in session order, then selection order (stratified along faces): stable and reproducible
    order = np.lexsort((np.arange(n_new), session))
    ids = np.arange(1, n_new + 1, dtype=np.int64)
    return Dots(positions=pos[order], normals=nor[order], face_ids=fid[order], session=session[order], ids=ids,
                bary=bar[order])


def _relax(v, vn, f, face_ok, fixed_pts, fix_nrm, fix_radius, pos, nor, fid, bar, rad, passes, fold_cos):
    """Jacobi relaxation of the new dots (see :mod:`scalp3d.kernels.multiclass`); fixed dots push but never move."""
    from scalp3d import kernels as K
    from scalp3d.kernels.multiclass import floor_offenders, list_nearest, multiclass_sweep
    from scalp3d.kernels.snap import vertex_faces

    n_fix = len(fixed_pts)
    vf_ptr, vf_idx = vertex_faces(len(v), f)
    p = np.ascontiguousarray(np.vstack([fixed_pts, pos]))
    n = np.ascontiguousarray(np.vstack([fix_nrm, nor]))
    fi = np.concatenate([np.zeros(n_fix, np.int64), fid])
    b = np.ascontiguousarray(np.vstack([np.full((n_fix, 3), 1.0 / 3.0), bar]))
    r = np.concatenate([fix_radius, rad])
    movable = np.concatenate([np.zeros(n_fix, bool), np.ones(len(pos), bool)])
    cls = np.zeros(len(p), np.int64)
    target = np.full((1, 1), config.RELAX_TARGET)
    floor_one = np.ones((1, 1))
    ok = np.ascontiguousarray(face_ok)
    cell = float(np.median(r))
    nn_old, _ = K.nearest_distance(p, p, cell, True)
    # the lists serve the sweeps and the guard's nearest distances (a pair closer than the guard's limit is listed)
    lists = _PairLists(cls, target, config.LIST_REACH * cell, fold_cos)
    for _ in range(passes):
        p2, n2, fi2, b2, _worst, moved = multiclass_sweep(p, n, fi, b, movable, cls, r, target, fold_cos, 1.0,
                                                          config.RELAX_MAX_STEP, *lists.at(p, n, r), v, vn, f,
                                                          vf_ptr, vf_idx, ok)
        if moved == 0:
            break
        # guard: no move may make a pair closer (relative to the local spacing) than the closest pair was before
        # the pass, nor break the spacing floor; offenders are reverted until none is left, so the worst spacing
        # never gets worse
        limit = (nn_old / r).min() * r - 1e-9
        while True:
            lst = lists.at(p2, n, r)
            nn_new = list_nearest(p2, *lst)
            changed = (p2 != p).any(axis=1)
            bad = (nn_new < limit) & changed | floor_offenders(p, p2, changed, cls, r, floor_one, *_FLOOR, *lst)
            if not bad.any():
                break
            p2[bad], n2[bad], fi2[bad], b2[bad] = p[bad], n[bad], fi[bad], b[bad]
        p, n, fi, b = p2, n2, fi2, b2
        nn_old = nn_new
    return p[n_fix:], n[n_fix:], fi[n_fix:], b[n_fix:]


#: the spacing floor as the kernels take it: (fraction of the local spacing, absolute minimum in mm)
_FLOOR = (config.SPACING_FLOOR_FRACTION, config.SPACING_FLOOR_MIN_MM)


class _PairLists:
    """Neighbour lists reused across sweeps (:func:`scalp3d.kernels.multiclass.pair_lists`): every pair within its
    target (``scale``, (K,K) factors of the spacing) plus ``reach`` mm, rebuilt when twice the largest move since the
    build plus the growth of the spacing could have brought an unlisted pair within its target."""

    def __init__(self, cls, scale, reach, fold_cos):
        self.cls, self.scale, self.reach, self.fold_cos = cls, scale, reach, fold_cos
        self.smax = float(scale.max())
        self.points = None

    def at(self, points, normals, radius):
        """(indptr, indices) valid for dots at ``points`` with spacings ``radius``."""
        from scalp3d.kernels.multiclass import max_shift, pair_lists

        if self.points is None or (2.0 * max_shift(points, self.points)
                                   + self.smax * max(float((radius - self.radius).max()), 0.0)) >= self.reach:
            self.lists = pair_lists(points, normals, self.cls, radius, self.scale, self.reach, self.fold_cos)
            self.points, self.radius = points, radius
        return self.lists



def _relax_joint(v, vn, f, face_ok, fixed_pts, fix_nrm, fix_radius, pos, nor, fid, bar, rad, session, fractions,
                 new_fraction, fold_cos, dens_v=None):
    """Joint multi-class relaxation of the new dots with their sessions kept (see :mod:`scalp3d.kernels.multiclass`).

    Soft stage: ``config.JOINT_SOFT_SWEEPS`` Jacobi sweeps at over-compressed targets (``config.JOINT_SOFT``) make the
    union and every session uniform and irregular at once; hard stage: up to ``config.JOINT_HARD_SWEEPS`` over-relaxed
    projection sweeps onto ``config.JOINT_HARD`` (the guarantees: every session >= 0.75 of its own d_max, the union
    >= 0.82, each within ``config.JOINT_HARD_TOL``) until the largest relative violation is below
    ``config.JOINT_HARD_TOL``. Where the targets cannot all be met (fixed dots that cannot make room, extreme session
    counts) the projection stalls; the targets are then lowered step by step until it converges. Fixed dots push every
    new dot at the union targets and never move. With ``dens_v`` (final density per vertex, dots per cm2), the new
    dots' local spacing follows them as they move (sweeps move dots across density bands).
    """
    from scalp3d.kernels.multiclass import floor_offenders, multiclass_sweep, session_scales
    from scalp3d.kernels.snap import vertex_faces

    n_fix = len(fixed_pts)
    k = len(fractions)
    shares = np.diff(np.concatenate([[0.0], np.asarray(fractions, dtype=np.float64)]))
    vf_ptr, vf_idx = vertex_faces(len(v), f)
    p = np.vstack([fixed_pts, pos])
    # spatial order (cells of 2 d_max) keeps neighbours close in memory: the sweeps run ~25 % faster
    cell = np.floor((p - p.min(axis=0)) / (2.0 * float(np.median(rad)))).astype(np.int64)
    srt = np.lexsort((cell[:, 2], cell[:, 1], cell[:, 0]))
    p = np.ascontiguousarray(p[srt])
    n = np.ascontiguousarray(np.vstack([fix_nrm, nor])[srt])
    fi = np.ascontiguousarray(np.concatenate([np.zeros(n_fix, np.int64), fid])[srt])
    b = np.ascontiguousarray(np.vstack([np.full((n_fix, 3), 1.0 / 3.0), bar])[srt])
    r = np.ascontiguousarray(np.concatenate([fix_radius, rad])[srt])
    movable = np.concatenate([np.zeros(n_fix, bool), np.ones(len(pos), bool)])[srt]
    cls = np.ascontiguousarray(np.concatenate([np.full(n_fix, k, np.int64), session.astype(np.int64) - 1])[srt])
    ok = np.ascontiguousarray(face_ok)
    soft = session_scales(shares, new_fraction, *config.JOINT_SOFT[:3], first_two_floor=config.JOINT_SOFT[3],
                          fixed_class=True)
    hard = session_scales(shares, new_fraction, *config.JOINT_HARD[:3], first_two_floor=config.JOINT_HARD[3],
                          fixed_class=True)

    # the guard holds the union's floor; each session's own (half its own spacing) is left to the targets, which
    # keep it with a wide margin (0.75 of the own spacing), and to the pipeline's check: guarding it too blocked the
    # projection around fixed dots (new-to-old spacing 0.54 of d_max instead of 0.66 in the fixed-dot test)
    floor_scale = np.ones_like(soft)

    def follow_density(r, fi, b):
        """The new dots' local d_max at their current place (fixed dots keep theirs)."""
        if dens_v is None:
            return r
        r = r.copy()
        r[movable] = local_spacing_mm((b[movable] * dens_v[f[fi[movable]]]).sum(axis=1), dens_v.max())
        return r

    # one set of lists for both stages: each pair within the larger of its soft and hard targets
    lists = _PairLists(cls, np.maximum(soft, hard), config.LIST_REACH * float(np.median(r)), fold_cos)

    def sweep(p, n, fi, b, r, scale, omega):
        """One sweep, then its guard: no move may break the spacing floor
        (:func:`scalp3d.kernels.multiclass.floor_offenders`); offenders go back until none is left."""
        p2, n2, fi2, b2, worst, moved = multiclass_sweep(p, n, fi, b, movable, cls, r, scale, fold_cos, omega,
                                                         config.JOINT_MAX_STEP, *lists.at(p, n, r), v, vn, f,
                                                         vf_ptr, vf_idx, ok)
        if moved == 0:
            return p, n, fi, b, r, worst
        r2 = follow_density(r, fi2, b2)
        changed = (p2 != p).any(axis=1)
        while True:
            bad = floor_offenders(p, p2, changed, cls, r2, floor_scale, *_FLOOR, *lists.at(p2, n2, r2))
            if not bad.any():
                return p2, n2, fi2, b2, r2, worst
            p2[bad], n2[bad], fi2[bad], b2[bad], r2[bad] = p[bad], n[bad], fi[bad], b[bad], r[bad]
            changed &= ~bad

    worst = float("nan")
    for _ in range(config.JOINT_SOFT_SWEEPS):
        p, n, fi, b, r, worst = sweep(p, n, fi, b, r, soft, config.JOINT_SOFT_OMEGA)
    # projection; when it stalls (infeasible targets, e.g. around fixed dots that cannot make room), the hard targets
    # are lowered a little at a time, so the sweeps always end on a consistent state rather than an oscillating one
    # (lowering the targets only around the dots that keep a violation was tried: it converges in fewer sweeps, but
    # around fixed dots the sessions' worst spacing comes out worse: 0.53, against over 0.6, in the fixed-dot test)
    level, ref = 1.0, np.inf
    for done in range(1, config.JOINT_HARD_SWEEPS + 1):
        p2, n2, fi2, b2, r2, worst = sweep(p, n, fi, b, r, hard * level, config.JOINT_HARD_OMEGA)
        if worst < config.JOINT_HARD_TOL:
            break  # the old positions already satisfy the targets: keep them
        p, n, fi, b, r = p2, n2, fi2, b2, r2
        if done % config.JOINT_HARD_PATIENCE == 0:
            if worst > config.JOINT_HARD_STALL * ref:
                level *= config.JOINT_HARD_BACKOFF
            ref = worst
    back = np.empty_like(srt)
    back[srt] = np.arange(len(srt))
    new = back[n_fix:]  # rows of the new dots, in their input order
    return p[new], n[new], fi[new], b[new]


def _assign_sessions(pos, nor, rad, fractions, fold_cos):
    """Session (1-based) of every dot: sessions are picked one by one as well-spread subsets of the dots left.

    Session 1 (the one seen alone for weeks) is picked first from all dots by weighted sample elimination at its own
    density, then the last session from the rest, then session 2, the second last, and so on; the session left over
    takes the remaining dots. Picking from both ends keeps the first and the last sessions well spread on their own
    and every union of the first sessions spread too (measured in the tests and the benchmark).
    """
    n = len(pos)
    K = len(fractions)
    shares = np.diff(np.concatenate([[0.0], fractions]))
    counts = np.diff(np.concatenate([[0], np.round(np.asarray(fractions) * n).astype(np.int64)]))
    counts[-1] = n - counts[:-1].sum()
    session = np.zeros(n, dtype=np.int64)
    if K == 1:
        session[:] = 1
        return session
    lo, hi = 0, K - 1
    picks = []
    while lo <= hi:
        picks.append(lo)
        if hi != lo:
            picks.append(hi)
        lo, hi = lo + 1, hi - 1
    for c in picks[:-1]:
        avail = np.flatnonzero(session == 0)
        want = int(counts[c])
        if want <= 0:
            continue
        keep = _eliminate_to(pos[avail], nor[avail], rad[avail] / math.sqrt(shares[c]),
                             np.ones(len(avail), bool), want, want / len(avail), fold_cos)
        session[avail[keep]] = c + 1
    session[session == 0] = picks[-1] + 1
    return session


def _eliminate_to(points, normals, radius, removable, target, ratio, fold_cos):
    """Indices (sorted) of the points kept by weighted sample elimination."""
    from scalp3d import kernels as K

    rmin_factor = (1.0 - ratio ** config.ELIMINATION_GAMMA) * config.ELIMINATION_BETA
    indptr, indices, weights = K.conflict_graph(np.ascontiguousarray(points), np.ascontiguousarray(normals),
                                                np.ascontiguousarray(radius), config.ELIMINATION_ALPHA,
                                                rmin_factor, fold_cos)
    keep, _ = K.eliminate(indptr, indices, weights, removable, int(target))
    return np.flatnonzero(keep)
