"""Blue-noise dot placement on a head surface: the entry point every other part of scalp3d calls.

:func:`place_dots` validates its input once, then runs the kernels: stratified candidates weighted by area times
density, weighted sample elimination with a skin-distance conflict measure and a variable radius (Yuksel 2015), a
light relaxation that pushes too-close pairs apart along the skin, then sessions picked one by one as well-spread
subsets of the dots at their own density. With ``session_mode="joint"`` the dots are then relaxed once more, all
sessions together, each pair at a target distance set by the two dots' sessions (soft over-compressed sweeps, then a
projection onto hard targets), so that every session alone is as well spread as the union (issue 3). It never reads
files and never plots. :func:`check_fractions` and :func:`check_density` are its input checks, public so that the plan
reader and the command line check the same way.
"""
from __future__ import annotations

import functools
import math
from collections import namedtuple
from dataclasses import replace

import numpy as np

from . import config
from .errors import GeometryError, InputError, MissingDependencyError
from .meshes import vertex_normals_of  # noqa: F401  (re-exported: scripts and tests import it from here)
from .types import Placement, check_fractions
from .warmup import in_stage


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
    return spacing_for_density(np.maximum(dens, _density_floor(peak_per_cm2)))


def _density_floor(peak_per_cm2) -> float:
    """The density (dots per cm2) a local spacing is taken at, at the least (see :func:`local_spacing_mm`)."""
    return max(float(peak_per_cm2) * config.SPACING_DENSITY_FLOOR_SHARE, 1e-3)


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
    """Cumulative fractions (K,) float64 of ``sessions``: a count (1 to ``config.MAX_SESSIONS``: the configured
    fractions for their count, even steps otherwise) or the fractions themselves (:func:`check_fractions`)."""
    if isinstance(sessions, (int, np.integer)):
        k = int(sessions)
        if k < 1 or k > config.MAX_SESSIONS:
            raise InputError(f"sessions must be 1-{config.MAX_SESSIONS}, not {k}")
        if k == len(config.SESSION_FRACTIONS):
            return np.array(config.SESSION_FRACTIONS)
        return np.arange(1, k + 1) / k
    return np.array(check_fractions(sessions), dtype=np.float64)


def check_density(density_per_cm2, n_vertices=1, what="density_per_cm2") -> np.ndarray:
    """The density field, checked: a number or an (n_vertices,) array, finite, >= 0 and at most
    ``config.DENSITY_INPUT_MAX_PER_CM2`` everywhere (the one check of that limit). Returns it per vertex,
    (n_vertices,) float64 (a copy). ``what`` is the name the message gives it (e.g. a command-line option).

    Raises
    ------
    InputError (a ValueError)
    """
    dens_v = np.broadcast_to(np.asarray(density_per_cm2, dtype=np.float64), (n_vertices,)).copy()
    if not np.isfinite(dens_v).all() or dens_v.min() < 0:
        raise InputError(f"{what} must be finite and >= 0 everywhere")
    if dens_v.max() > config.DENSITY_INPUT_MAX_PER_CM2:
        raise InputError(f"{what} up to {dens_v.max():.0f}; at most {config.DENSITY_INPUT_MAX_PER_CM2:.0f}")
    return dens_v


#: dots already on the skin (place_dots' ``fixed``): points, normals (k,3) and local spacing radius (k,), both from
#: each dot's nearest vertex; they push the new dots and never move
_Fixed = namedtuple("_Fixed", "points normals radius")
#: the candidate pool of the elimination: face_ids (m,), bary, points, normals (m,3), radius (m,) local spacing (mm)
_Candidates = namedtuple("_Candidates", "face_ids bary points normals radius")


@in_stage("placement")
def place_dots(vertices, faces, *, count=None, density_per_cm2=None, sessions=3, seed=0, fixed=None,
               vertex_normals=None, candidates_per_dot=None, fold_cos=config.FOLD_COS, relax_passes=None,
               session_mode=config.SESSION_MODE, fixed_session=None, region=None, backend="auto"):
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
    fixed_session : (k,) int array, optional. The session (1-based, of ``sessions``) each fixed dot belongs to, 0 for
        none: a local re-placement (the dots kept outside a design change are fixed and keep their sessions; each new
        dot is then held apart from the fixed dots of its own session at that session's spacing, and the sessions'
        shares are of all dots, not of the new ones).
    region : (n,) bool array, optional. New dots start only on faces whose vertices are all in it (with ``count``;
        a density field is then taken as it is, not scaled to the count).
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
    backend : "auto" (default), "cpu" or "cuda": where the elimination's conflict graph, the snapping of fixed dots
        onto the mesh and the relaxation sweeps run (the rest is on the CPU either way: see
        :mod:`scalp3d.kernels.cuda`). "auto" takes the CUDA twins when ``numba.cuda.is_available()`` finds a real
        GPU (numba's simulator does not count: it is thousands of times slower), the CPU kernels otherwise; "cpu"
        always the CPU; "cuda" the twins, on a GPU or on the simulator (``NUMBA_ENABLE_CUDASIM=1``), and raises
        MissingDependencyError without either. On the simulator the dots equal the CPU's within
        :data:`scalp3d.kernels.cuda.PLACEMENT_ATOL_MM` (same count, faces, sessions and ids).

    Returns
    -------
    Placement with ``positions`` (N,3), ``normals`` (N,3), ``face_ids`` (N,), ``session`` (N,) 1-based, ``ids`` (N,)
    1-based in session order, ``bary`` (N,3).

    Examples
    --------
    >>> import trimesh
    >>> s = trimesh.creation.icosphere(5, radius=50.0)
    >>> dots = place_dots(s.vertices, s.faces, density_per_cm2=20.0, seed=1)
    >>> len(dots) > 0
    True
    """
    from scalp3d.kernels.multiclass import Mesh

    kern = _kernels_for(backend)
    v, f, vn, dens_v, fractions, fixed_pts = _checked_input(vertices, faces, count, density_per_cm2, sessions,
                                                            session_mode, vertex_normals, fixed)
    fixed_ses = _checked_classes(fixed_session, len(fixed_pts), len(fractions), region, len(v), count)
    # around fixed dots even one session is relaxed jointly: its dots are a class of their own with their own spacing
    # (a touch-up at a quarter of the density, or the last session of a revision, must be spread on its own, not
    # dropped into the fixed dots' gaps side by side)
    joint = session_mode == "joint" and (len(fractions) > 1 or len(fixed_pts) > 0)
    if candidates_per_dot is None:
        # (around fixed dots, which cannot make room, the fuller pool still pays)
        lean = joint and len(fixed_pts) == 0
        candidates_per_dot = config.JOINT_CANDIDATES_PER_DOT if lean else config.CANDIDATES_PER_DOT
        if len(fixed_pts) and len(fractions) == 1 and fixed_ses is None:
            candidates_per_dot = config.HOLE_CANDIDATES_PER_DOT  # only the holes' share is used
    if relax_passes is None:
        relax_passes = config.RELAX_PASSES
    areas, dens_f, n_new, scale = _dot_count(v, f, dens_v, count, len(fixed_pts),
                                             absolute=region is not None and density_per_cm2 is not None)
    if n_new == 0:
        empty = np.zeros((0, 3))
        return Placement(empty, empty.copy(), np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64),
                         empty.copy())
    n_all = n_new + len(fixed_pts)
    peak = float(dens_v.max()) * scale
    weights = areas * dens_f if region is None else areas * dens_f * _all3(np.asarray(region, bool)[f])
    cand = _candidates(v, vn, f, weights, dens_v, scale, peak, n_new, candidates_per_dot, seed)
    parts = _mesh_parts(v, f)  # the vertex -> faces lists and the vertex tree, kept for the next call on this mesh
    fixed_dots = _fixed_dots(fixed_pts, v, vn, f, dens_v, scale, peak, kern, parts)

    # 1. select the union by weighted sample elimination, fixed dots kept
    if len(fixed_pts) and len(fractions) == 1 and fixed_ses is None:
        dots, rad = _select_in_holes(cand, fixed_dots, n_new, n_all, fold_cos, kern)
    else:
        dots, rad = _select_union(cand, fixed_dots, n_new, fold_cos, kern)
    mesh = Mesh(v, vn, f, *parts.vertex_faces(), dens_f > 0) if relax_passes > 0 or joint else None
    # 2. relax the union: push too-close pairs apart along the skin (fixed dots stay)
    if relax_passes > 0:
        dots = _relax(mesh, fixed_dots, dots, rad, relax_passes, fold_cos, kern)
    # 3. sessions: each a well-spread subset of the union
    # (with classed fixed dots the sessions' shares are of all dots: the new ones fill in a region at every share)
    new_fraction = n_new / n_all if fixed_ses is None else 1.0
    session = _assign_sessions(dots.points, dots.normals, rad / math.sqrt(new_fraction), fractions, fold_cos, kern)
    # 4. joint mode: relax all dots again, each pair at a target set by its two sessions
    if joint:
        dots = _relax_joint(mesh, fixed_dots, dots, rad, session, fractions, new_fraction, fold_cos, kern,
                            dens_v=None if density_per_cm2 is None else dens_v * scale, fixed_session=fixed_ses)
    crowded = joint and not len(fixed_pts) and density_per_cm2 is not None
    if crowded or len(fixed_pts):
        # the checks below at the spacing where each new dot ended (the sweeps move dots across density bands)
        rad = local_spacing_mm((dots.bary * dens_v[f[dots.face_ids]]).sum(axis=1) * scale, peak)
    # 5. a plan's crowded pairs (no fixed dots): a dot or two pinned where the treated skin narrows to a tip
    if crowded:
        dots, session = _clear_crowded(dots, session, rad)
    # 6. no new dot under the floor of a fixed one: the relaxation's floor guard reverts every move of a dot that
    # starts under it, so a new dot picked beside a fixed one can stay stuck there (seen: 5-15 of 3,107 new dots
    # 0.1 mm from 10,357 fixed ones); such a dot is dropped
    if len(fixed_pts):
        dots, session, rad = _clear_of_fixed(dots, session, rad, fixed_dots)
        # and none under its own session's floor: around fixed dots the projection may stall with a few pairs of a
        # sparse session (a touch-up at a quarter of the density) side by side in one gap (seen: 32 of 11,853)
        dots, session = _clear_within_sessions(dots, session, rad, fractions, new_fraction,
                                               None if fixed_ses is None else (fixed_dots, fixed_ses))
    return _in_session_order(dots, session)


def _clear_of_fixed(dots, session, rad, fixed):
    """The new dots (and their sessions) farther from every fixed dot than their pair's floor (with a margin of
    ``config.FIXED_FLOOR_MARGIN``)."""
    from scipy.spatial import cKDTree

    from scalp3d.kernels.multiclass import DotState

    from .spacing import floor_mm

    d, j = cKDTree(fixed.points).query(dots.points, workers=-1)
    floor = floor_mm(rad, fixed.radius[j])
    keep = d >= floor * config.FIXED_FLOOR_MARGIN
    if keep.all():
        return dots, session, rad
    return (DotState(dots.points[keep], dots.normals[keep], dots.face_ids[keep], dots.bary[keep]), session[keep],
            rad[keep])


def _clear_crowded(dots, session, rad):
    """The dots less the fewest (greedily, the closest pairs first; of each pair, the dot of the later session) that
    leave no pair closer than ``config.CROWDED_RHO`` of its spacing (the smaller of the two local d_max, as the
    quality figures measure it). Such pairs are a dot or two pinned where the treated skin narrows to a tip (a
    hairline band's end, a zone's sliver): the skin there cannot hold the dots its density asks for, and the
    relaxation, which keeps every dot on it, cannot make room (seen, before the distances from a hairline's edge
    were corrected: one of twelve heights and seeds of the hairline-only plan, a pair 0.63 of its spacing apart where
    9 dots sat on 21 mm2 planned for 7.5; none since in 42 plans and seeds, so this is a net). When more than
    ``config.CROWDED_MAX_SHARE`` of the dots would go, none does: the crowding is then no tip's, and the summary's
    quality warning says so."""
    from scipy.spatial import cKDTree

    from scalp3d.kernels.multiclass import DotState

    n = len(session)
    if n < 2:
        return dots, session
    pairs = cKDTree(dots.points).query_pairs(config.CROWDED_RHO * float(rad.max()), output_type="ndarray")
    if len(pairs) == 0:
        return dots, session
    i, j = pairs.min(axis=1), pairs.max(axis=1)
    ratio = np.linalg.norm(dots.points[i] - dots.points[j], axis=1) / np.minimum(rad[i], rad[j])
    close = np.flatnonzero(ratio < config.CROWDED_RHO)
    if len(close) == 0:
        return dots, session
    keep = np.ones(n, bool)
    for c in close[np.lexsort((j[close], i[close], ratio[close]))]:
        a, b = i[c], j[c]
        if keep[a] and keep[b]:
            keep[b if (session[b], b) > (session[a], a) else a] = False
    if (~keep).sum() > config.CROWDED_MAX_SHARE * n:
        return dots, session
    return DotState(dots.points[keep], dots.normals[keep], dots.face_ids[keep], dots.bary[keep]), session[keep]


def _clear_within_sessions(dots, session, rad, fractions, new_fraction, classed=None):
    """The new dots less the fewest (greedily, the closest pairs first) that leave every session alone above its own
    floor with ``config.FIXED_FLOOR_MARGIN``: half its own spacing, the union's over the square root of the session's
    share of all dots (``new_fraction`` x its share of the new ones)."""
    from scipy.spatial import cKDTree

    from scalp3d.kernels.multiclass import DotState

    from .spacing import floor_mm

    shares = np.diff(np.concatenate([[0.0], np.asarray(fractions, dtype=np.float64)])) * new_fraction
    n = len(session)
    keep = np.ones(n, bool)
    fx_pts, fx_rad, fx_ses = ((np.zeros((0, 3)), np.zeros(0), np.zeros(0, np.int64)) if classed is None else
                              (classed[0].points, classed[0].radius, classed[1]))
    for k, share in enumerate(shares, start=1):
        rows = np.flatnonzero(session == k)
        fx = np.flatnonzero(fx_ses == k)
        if len(rows) < 1 or len(rows) + len(fx) < 2 or share <= 0:
            continue
        # the session's new dots first, then its fixed ones (never dropped)
        pts = np.vstack([dots.points[rows], fx_pts[fx]])
        own = np.concatenate([rad[rows], fx_rad[fx]]) / math.sqrt(share)
        reach = config.FIXED_FLOOR_MARGIN * float(floor_mm(own.max(), own.max()))
        pairs = cKDTree(pts).query_pairs(reach, output_type="ndarray")
        if len(pairs) == 0:
            continue
        i, j = pairs.min(axis=1), pairs.max(axis=1)
        dist = np.linalg.norm(pts[i] - pts[j], axis=1)
        floor = floor_mm(own[i], own[j])
        close = (dist < floor * config.FIXED_FLOOR_MARGIN) & (i < len(rows))
        alive = np.ones(len(pts), bool)
        for a, b, _ in sorted(zip(i[close], j[close], dist[close]), key=lambda x: x[2]):
            if alive[a] and alive[b]:
                gone = b if b < len(rows) else a  # a new dot goes, a fixed one stays
                alive[gone] = False
                keep[rows[gone]] = False
    if keep.all():
        return dots, session
    return DotState(dots.points[keep], dots.normals[keep], dots.face_ids[keep], dots.bary[keep]), session[keep]


def _checked_input(vertices, faces, count, density_per_cm2, sessions, session_mode, vertex_normals, fixed):
    """place_dots' input, checked and made contiguous float64/int64: (v, f, vertex normals, density per vertex (ones
    without a density field), fractions, fixed points (k,3)). Raises InputError."""
    v, f = _as_mesh(vertices, faces)
    if count is None and density_per_cm2 is None:
        raise InputError("place_dots needs count= or density_per_cm2=")
    fractions = _fractions(sessions)
    if session_mode not in ("subsets", "joint"):
        raise InputError(f"session_mode must be 'subsets' or 'joint', not {session_mode!r}")
    vn = vertex_normals_of(v, f) if vertex_normals is None else np.ascontiguousarray(vertex_normals, np.float64)
    if vn.shape != v.shape:
        raise InputError(f"vertex_normals must have the shape of vertices {v.shape}, not {vn.shape}")
    dens_v = np.ones(len(v)) if density_per_cm2 is None else check_density(density_per_cm2, len(v))
    fixed_pts = np.zeros((0, 3)) if fixed is None else np.ascontiguousarray(fixed, dtype=np.float64).reshape(-1, 3)
    if not np.isfinite(fixed_pts).all():
        raise InputError("fixed dots hold NaN or infinite coordinates")
    if count is not None and int(count) < 0:
        raise InputError(f"count must be >= 0, not {int(count)}")
    return v, f, vn, dens_v, fractions, fixed_pts


def _checked_classes(fixed_session, n_fix, n_sessions, region, n_vertices, count):
    """place_dots' ``fixed_session`` as (k,) int64 (or None) and its ``region``, checked. Raises InputError."""
    if region is not None and (count is None or np.shape(region) != (n_vertices,)):
        raise InputError(f"region needs count=, and one flag per vertex ({n_vertices})")
    if fixed_session is None:
        return None
    fs = np.asarray(fixed_session, dtype=np.int64).reshape(-1)
    if len(fs) != n_fix or (len(fs) and (fs.min() < 0 or fs.max() > n_sessions)):
        raise InputError(f"fixed_session needs one session (0-{n_sessions}) per fixed dot ({n_fix})")
    return fs


#: the kernels of place_dots that have CUDA twins: the elimination's conflict graph, the relaxation sweep, the snap
_Kernels = namedtuple("_Kernels", "conflict_graph multiclass_sweep snap_points")


def _kernels_for(backend):
    """place_dots' ``backend``, checked, as the kernels it runs (:data:`_Kernels`): the CUDA twins for "cuda", and
    for "auto" when a real GPU is there; the CPU kernels otherwise. Raises InputError (an unknown name) or
    MissingDependencyError ("cuda" with neither a GPU nor numba's simulator)."""
    if backend not in ("auto", "cpu", "cuda"):
        raise InputError(f"backend must be 'auto', 'cpu' or 'cuda', not {backend!r}")
    if backend == "cuda" or (backend == "auto" and _gpu_present()):
        from scalp3d.kernels import cuda as kc

        try:
            kc.require_device()
        except RuntimeError as exc:
            raise MissingDependencyError(f"backend='cuda': {exc}; or pass backend='cpu' (or 'auto')") from None
        return _Kernels(kc.conflict_graph_cuda, kc.multiclass_sweep_cuda, kc.snap_points_cuda)
    from scalp3d.kernels.elimination import conflict_graph
    from scalp3d.kernels.multiclass import multiclass_sweep
    from scalp3d.kernels.snap import snap_points

    return _Kernels(conflict_graph, multiclass_sweep, snap_points)


@functools.lru_cache(maxsize=1)
def _gpu_present():
    """Whether a real CUDA GPU is there (asked once: importing numba.cuda takes about 0.3 s)."""
    from scalp3d.kernels import cuda as kc

    return kc.gpu_present()


def _dot_count(v, f, dens_v, count, n_fix, absolute=False):
    """(face areas (m,), face density (m,), new dots to place, scale of the density field).

    A face is treated only if all its vertices are (zero-density regions keep a clean edge). With fixed dots, a
    density is the final density of old and new dots together; with ``count``, the field's shape is scaled to it,
    unless ``absolute`` (a ``region`` re-placed among fixed dots: the density is the one asked for there, whatever
    number of fixed dots takes part)."""
    from scalp3d import kernels as K

    areas = K.triangle_areas(v, f)
    dens_f = dens_v[f].mean(axis=1)
    dens_f[_any3(dens_v[f] <= 0)] = 0.0
    expected = float((areas * dens_f).sum() / 100.0)
    n_new = max(int(round(expected)) - n_fix, 0) if count is None else int(count)
    scale = 1.0 if absolute else (n_new + n_fix) / expected if expected > 0 else 0.0
    if n_new > config.MAX_DOTS:
        raise InputError(f"{n_new} dots asked for; at most {config.MAX_DOTS}")
    if n_new > 0 and expected <= 0:
        raise GeometryError("the density field is zero everywhere: no area to place dots on")
    return areas, dens_f, n_new, scale


def _candidates(v, vn, f, weights, dens_v, scale, peak, n_new, per_dot, seed):
    """The elimination's pool (:data:`_Candidates`): ``per_dot`` stratified samples per new dot (at least 16 more
    than the dots), spread over the faces in proportion to ``weights`` (area x density), each with its local spacing
    at the final density. ``seed`` is the only source of randomness."""
    from .meshes import stratified_samples

    rng = np.random.default_rng(seed)
    m_cand = max(n_new * int(per_dot), n_new + 16)
    face_ids, bary, pts, nrm = stratified_samples(v, vn, f, weights, m_cand, rng)
    dens_c = (bary * dens_v[f[face_ids]]).sum(axis=1) * scale
    return _Candidates(face_ids, bary, pts, nrm, local_spacing_mm(dens_c, peak))


def _fixed_dots(fixed_pts, v, vn, f, dens_v, scale, peak, kern, parts):
    """The fixed dots (:data:`_Fixed`): normal from each one's nearest vertex, local spacing at the dot (``parts``
    the mesh's :class:`_MeshParts`)."""
    if len(fixed_pts) == 0:
        return _Fixed(fixed_pts, np.zeros((0, 3)), np.zeros(0))
    _, near = parts.vertex_tree().query(fixed_pts, workers=-1)
    # the density at the dot itself (snapped onto the skin from a face of its nearest vertex), not at that vertex: on
    # a steep ramp (a revision moving the hairline) the vertex's density can be half the dot's, and the spacing the
    # floor is checked at comes from the dot's own
    indptr, indices = parts.vertex_faces()
    _, face, b = kern.snap_points(fixed_pts, indices[indptr[near]], v, f, indptr, indices)
    dens = b[:, 0] * dens_v[f[face, 0]] + b[:, 1] * dens_v[f[face, 1]] + b[:, 2] * dens_v[f[face, 2]]
    return _Fixed(fixed_pts, vn[near], local_spacing_mm(dens * scale, peak))


class _MeshParts:
    """What place_dots derives from the mesh alone, built when first asked for and kept for the next call on the same
    mesh (:func:`_mesh_parts`): a design change places dots again on the same head, and these took 60 ms of it."""

    def __init__(self, v, f):
        self.v, self.f = v.copy(), f.copy()  # copies: the caller's arrays may change in place after the call
        self._vf = self._tree = None

    def same_mesh(self, v, f) -> bool:
        return self.v.shape == v.shape and self.f.shape == f.shape and np.array_equal(self.v, v) and \
            np.array_equal(self.f, f)

    def vertex_faces(self):
        """The vertex -> faces CSR (:func:`scalp3d.kernels.snap.vertex_faces`)."""
        if self._vf is None:
            from scalp3d.kernels.snap import vertex_faces

            self._vf = vertex_faces(len(self.v), self.f)
        return self._vf

    def vertex_tree(self):
        """A nearest-vertex tree (scipy cKDTree)."""
        if self._tree is None:
            from scipy.spatial import cKDTree

            self._tree = cKDTree(self.v)
        return self._tree


_LAST_MESH: list = []  # the last mesh's _MeshParts


def _mesh_parts(v, f) -> _MeshParts:
    """The :class:`_MeshParts` of this mesh: the last call's when the mesh is the same, by value (about 3 ms to
    compare on the sample head), new otherwise."""
    if not (_LAST_MESH and _LAST_MESH[0].same_mesh(v, f)):
        _LAST_MESH[:] = [_MeshParts(v, f)]
    return _LAST_MESH[0]


def _select_union(cand, fixed, n_new, fold_cos, kern):
    """The new dots (a :class:`scalp3d.kernels.multiclass.DotState`, candidate order) and their local spacing,
    chosen from the pool by weighted sample elimination with the fixed dots kept (new dots interleave with them)."""
    from scalp3d.kernels.multiclass import DotState

    n_fix, m_cand = len(fixed.points), len(cand.points)
    all_pts = np.ascontiguousarray(np.vstack([fixed.points, cand.points]))
    all_nrm = np.ascontiguousarray(np.vstack([fixed.normals, cand.normals]))
    all_rad = np.concatenate([fixed.radius, cand.radius])
    removable = np.concatenate([np.zeros(n_fix, bool), np.ones(m_cand, bool)])
    chosen = _eliminate_to(all_pts, all_nrm, all_rad, removable, n_fix + n_new, n_new / m_cand, fold_cos, kern)
    sel = chosen[chosen >= n_fix] - n_fix  # candidate indices of the new dots
    return DotState(cand.points[sel], cand.normals[sel], cand.face_ids[sel], cand.bary[sel]), cand.radius[sel]


def _select_in_holes(cand, fixed, n_new, n_all, fold_cos, kern):
    """One session of new dots among many fixed ones (a touch-up, or the last session of a revision): the candidates
    in the holes between the fixed dots (farther from them than ``config.HOLE_CLEARANCE`` of the union's d_max), then
    weighted sample elimination among those alone at the session's own spacing, so that its dots are spread among
    themselves and not only between the old ones (picking them with the fixed dots at the union's spacing, as
    :func:`_select_union` does, fills the holes side by side: rho 0.54 for the session alone). Falls back to
    :func:`_select_union` when the holes hold too few candidates."""
    from scipy.spatial import cKDTree

    from scalp3d.kernels.multiclass import DotState

    d, j = cKDTree(fixed.points).query(cand.points, workers=-1)
    ok = np.flatnonzero(d >= config.HOLE_CLEARANCE * np.minimum(cand.radius, fixed.radius[j]))
    if len(ok) < 2 * n_new:
        return _select_union(cand, fixed, n_new, fold_cos, kern)
    own = cand.radius[ok] * math.sqrt(n_all / n_new)
    keep = _eliminate_to(cand.points[ok], cand.normals[ok], own, np.ones(len(ok), bool), n_new, n_new / len(ok),
                         fold_cos, kern)
    sel = ok[keep]
    return DotState(cand.points[sel], cand.normals[sel], cand.face_ids[sel], cand.bary[sel]), cand.radius[sel]


def _in_session_order(dots, session):
    """The placed dots, in session order, then selection order (stratified along faces); ids 1..n in that order:
    stable and reproducible."""
    n = len(session)
    order = np.lexsort((np.arange(n), session))
    return Placement(positions=dots.points[order], normals=dots.normals[order], face_ids=dots.face_ids[order],
                     session=session[order], ids=np.arange(1, n + 1, dtype=np.int64), bary=dots.bary[order])


def _with_fixed(fixed, dots, rad):
    """Fixed dots first, then the new ones, as the sweeps take them: (DotState, radius, movable); a fixed dot's face
    is 0 at the face's centre (never read: fixed dots do not move)."""
    from scalp3d.kernels.multiclass import DotState

    n_fix = len(fixed.points)
    all_dots = DotState(np.ascontiguousarray(np.vstack([fixed.points, dots.points])),
                        np.ascontiguousarray(np.vstack([fixed.normals, dots.normals])),
                        np.concatenate([np.zeros(n_fix, np.int64), dots.face_ids]),
                        np.ascontiguousarray(np.vstack([np.full((n_fix, 3), 1.0 / 3.0), dots.bary])))
    movable = np.concatenate([np.zeros(n_fix, bool), np.ones(len(dots.points), bool)])
    return all_dots, np.concatenate([fixed.radius, rad]), movable


def _rows_differ(a, b):
    """(n,) bool: rows of two (n,3) arrays that differ (``(a != b).any(axis=1)``, a quarter of its time: numpy's
    reduction along a row of three is slow, and a sweep asks this of every dot)."""
    return (a[:, 0] != b[:, 0]) | (a[:, 1] != b[:, 1]) | (a[:, 2] != b[:, 2])


def _any3(m):
    """``m.any(axis=1)`` of an (n,3) bool array, faster."""
    return m[:, 0] | m[:, 1] | m[:, 2]


def _all3(m):
    """``m.all(axis=1)`` of an (n,3) bool array, faster."""
    return m[:, 0] & m[:, 1] & m[:, 2]


def _take(dots, rows):
    """The rows ``rows`` of every array of a DotState."""
    return type(dots)(*(a[rows] for a in dots))


@in_stage("relax")
def _relax(mesh, fixed, dots, rad, passes, fold_cos, kern):
    """Jacobi relaxation of the new dots (see :mod:`scalp3d.kernels.multiclass`); fixed dots push but never move.
    ``mesh`` a :class:`scalp3d.kernels.multiclass.Mesh` (face_ok: the faces with density), ``fixed`` a
    :data:`_Fixed`, ``dots`` the new dots (DotState) with their local spacing ``rad``, ``kern`` the
    :data:`_Kernels` to run. Returns the new dots moved."""
    from scalp3d import kernels as K
    from scalp3d.kernels.multiclass import SweepStep, Targets, floor_offenders, list_nearest

    n_fix = len(fixed.points)
    cur, r, movable = _with_fixed(fixed, dots, rad)
    cls = np.zeros(len(r), np.int64)
    targets = Targets(cls, r, np.full((1, 1), config.RELAX_TARGET))
    step = SweepStep(fold_cos, 1.0, config.RELAX_MAX_STEP)
    floor_one = np.ones((1, 1))
    cell = float(np.median(r))
    nn_old, _ = K.nearest_distance(cur.points, cur.points, cell, True)
    # the lists serve the sweeps and the guard's nearest distances (a pair closer than the guard's limit is listed)
    lists = _PairLists(cls, targets.scale, config.LIST_REACH * cell, fold_cos)
    for _ in range(passes):
        p, n, fi, b = cur
        p2, n2, fi2, b2, _worst, moved = kern.multiclass_sweep(cur, movable, targets, step, lists.at(p, n, r),
                                                               mesh)
        if moved == 0:
            break
        # guard: no move may make a pair closer (relative to the local spacing) than the closest pair was before
        # the pass, nor break the spacing floor; offenders are reverted until none is left, so the worst spacing
        # never gets worse
        limit = (nn_old / r).min() * r - 1e-9
        while True:
            lst = lists.at(p2, n, r)
            nn_new = list_nearest(p2, *lst)
            changed = _rows_differ(p2, p)
            bad = (nn_new < limit) & changed | floor_offenders(p, p2, changed, cls, r, floor_one, *_FLOOR, *lst)
            if not bad.any():
                break
            p2[bad], n2[bad], fi2[bad], b2[bad] = p[bad], n[bad], fi[bad], b[bad]
        cur = type(cur)(p2, n2, fi2, b2)
        nn_old = nn_new
    return _take(cur, slice(n_fix, None))


#: the spacing floor as the kernels take it: (fraction of the local spacing, absolute minimum in mm)
_FLOOR = (config.SPACING_FLOOR_FRACTION, config.SPACING_FLOOR_MIN_MM)


class _PairLists:
    """Neighbour lists reused across sweeps (:func:`scalp3d.kernels.multiclass.pair_lists`): every pair within its
    target (``scale``, (K,K) factors of the spacing) plus ``reach`` mm, rebuilt when the two largest moves since the
    build plus the growth of the spacing could have brought an unlisted pair within its target (twice the largest
    rebuilt them 8 times a full plan; one dot's long move no longer counts twice)."""

    def __init__(self, cls, scale, reach, fold_cos, rows=None):
        self.cls, self.scale, self.reach, self.fold_cos, self.rows = cls, scale, reach, fold_cos, rows
        self.smax = float(scale.max())
        self.points = None

    def at(self, points, normals, radius):
        """(indptr, indices) valid for dots at ``points`` with spacings ``radius``."""
        from scalp3d.kernels.multiclass import pair_lists, pair_shift_bound

        if self.points is None or (pair_shift_bound(points, self.points)
                                   + self.smax * max(float((radius - self.radius).max()), 0.0)) >= self.reach:
            self.lists = pair_lists(points, normals, self.cls, radius, self.scale, self.reach, self.fold_cos,
                                    self.rows)
            self.points, self.radius = points, radius
        return self.lists


@in_stage("relax")
def _relax_joint(mesh, fixed, dots, rad, session, fractions, new_fraction, fold_cos, kern, dens_v=None,
                 fixed_session=None):
    """Joint multi-class relaxation of the new dots with their sessions kept (see :mod:`scalp3d.kernels.multiclass`);
    arguments as :func:`_relax`'s, with each new dot's ``session`` (1-based), the cumulative ``fractions`` and the
    new dots' share of all dots ``new_fraction``. Returns the new dots moved, in their input order.

    Soft stage: ``config.JOINT_SOFT_SWEEPS`` Jacobi sweeps at over-compressed targets (``config.JOINT_SOFT``) make the
    union and every session uniform and irregular at once; hard stage (:func:`_project`): up to
    ``config.JOINT_HARD_SWEEPS`` over-relaxed projection sweeps onto ``config.JOINT_HARD`` (the guarantees: every
    session >= 0.75 of its own d_max, the union >= 0.82, each within ``config.JOINT_HARD_TOL``) until the largest
    relative violation is below ``config.JOINT_HARD_TOL``. Where the targets cannot all be met (fixed dots that cannot
    make room, extreme session counts) the projection stalls; the targets are then lowered step by step until it
    converges. Fixed dots push every new dot at the union targets and never move. With ``dens_v`` (final density per
    vertex, dots per cm2), the new dots' local spacing follows them as they move (sweeps move dots across density
    bands).
    """
    from scalp3d.kernels.multiclass import session_scales

    n_fix = len(fixed.points)
    k = len(fractions)
    shares = np.diff(np.concatenate([[0.0], np.asarray(fractions, dtype=np.float64)]))
    cur, r, movable = _with_fixed(fixed, dots, rad)
    fixed_cls = np.full(n_fix, k, np.int64) if fixed_session is None else \
        np.where(fixed_session > 0, fixed_session - 1, k).astype(np.int64)  # a kept dot keeps its session's targets
    cls = np.concatenate([fixed_cls, session.astype(np.int64) - 1])
    # spatial order (cells of 2 d_max) keeps neighbours close in memory: the sweeps run ~25 % faster
    cell = np.floor((cur.points - cur.points.min(axis=0)) / (2.0 * float(np.median(rad)))).astype(np.int64)
    srt = np.lexsort((cell[:, 2], cell[:, 1], cell[:, 0]))
    cur = type(cur)(*(np.ascontiguousarray(a[srt]) for a in cur))
    r, movable, cls = np.ascontiguousarray(r[srt]), movable[srt], np.ascontiguousarray(cls[srt])
    soft = session_scales(shares, new_fraction, *config.JOINT_SOFT[:3], first_two_floor=config.JOINT_SOFT[3],
                          fixed_class=True)
    hard = session_scales(shares, new_fraction, *config.JOINT_HARD[:3], first_two_floor=config.JOINT_HARD[3],
                          fixed_class=True)
    # one set of lists for both stages: each pair within the larger of its soft and hard targets; the fixed dots'
    # rows are left empty (the sweeps and their guard read only the rows of dots that move)
    lists = _PairLists(cls, np.maximum(soft, hard), config.LIST_REACH * float(np.median(r)), fold_cos,
                       rows=movable if n_fix else None)
    sweep = _GuardedSweep(mesh, movable, cls, lists, fold_cos, dens_v, np.ones_like(soft), kern.multiclass_sweep)
    for _ in range(config.JOINT_SOFT_SWEEPS):
        cur, r, _worst = sweep(cur, r, soft, config.JOINT_SOFT_OMEGA)
    cur = _project(sweep, cur, r, hard)
    back = np.empty_like(srt)
    back[srt] = np.arange(len(srt))
    return _take(cur, back[n_fix:])  # rows of the new dots, in their input order


class _GuardedSweep:
    """One sweep of the joint relaxation (:func:`scalp3d.kernels.multiclass.multiclass_sweep`), then its guard: no
    move may break the spacing floor (:func:`scalp3d.kernels.multiclass.floor_offenders`); offenders go back until
    none is left. With ``dens_v``, the moved dots' local spacing is taken at their new place.

    The guard holds the union's floor (``floor_scale`` all ones); each session's own (half its own spacing) is left to
    the targets, which keep it with a wide margin (0.75 of the own spacing), and to the pipeline's check: guarding it
    too blocked the projection around fixed dots (new-to-old spacing 0.54 of d_max instead of 0.66 in the fixed-dot
    test)."""

    def __init__(self, mesh, movable, cls, lists, fold_cos, dens_v, floor_scale, kernel):
        self.mesh, self.movable, self.cls, self.lists = mesh, movable, cls, lists
        self.fold_cos, self.dens_v, self.floor_scale = fold_cos, dens_v, floor_scale
        self.kernel = kernel  # multiclass_sweep or its CUDA twin
        self.low = None if dens_v is None else _density_floor(dens_v.max())
        self._last = None  # the last sweep's (points, spacing, pair factors, each row's violation, rows moved)

    def _rows(self, points, r, scale, lists):
        """The rows this sweep must compute (None: all): when it starts where the last one ended, with pair targets
        no larger, only the rows that had a violation or a moved dot among theirs
        (:func:`scalp3d.kernels.multiclass.rows_to_sweep`); the others would stay as they are."""
        from scalp3d.kernels.multiclass import rows_to_sweep

        last = self._last
        if last is None or points is not last[0] or r is not last[1] or last[2].shape != scale.shape \
                or (scale > last[2]).any():
            return None
        return rows_to_sweep(last[3], last[4], *lists)

    def spacing(self, r, fi, b, changed):
        """The new dots' local d_max at their current place (those that did not move, and fixed dots, keep theirs)."""
        from scalp3d.kernels.multiclass import moved_spacing

        if self.dens_v is None:
            return r
        return moved_spacing(r, np.flatnonzero(changed), fi, b, self.mesh.faces, self.dens_v, self.low)

    def __call__(self, dots, r, scale, omega):
        """(dots, their spacing, the largest relative violation before the sweep) after one guarded sweep at pair
        factors ``scale`` and relaxation ``omega``."""
        from scalp3d.kernels.multiclass import SweepStep, Targets, floor_offenders

        p, n, fi, b = dots
        step = SweepStep(self.fold_cos, omega, config.JOINT_MAX_STEP)
        lists = self.lists.at(p, n, r)
        violated = np.empty(len(p))
        p2, n2, fi2, b2, worst, moved = self.kernel(dots, self.movable, Targets(self.cls, r, scale), step, lists,
                                                    self.mesh, self._rows(p, r, scale, lists), violated)
        if moved == 0:
            self._last = (p, r, scale, violated, np.zeros(len(p), bool))
            return dots, r, worst
        changed = _rows_differ(p2, p)
        r2 = self.spacing(r, fi2, b2, changed)
        while True:
            bad = floor_offenders(p, p2, changed, self.cls, r2, self.floor_scale, *_FLOOR, *self.lists.at(p2, n2, r2))
            if not bad.any():
                self._last = (p2, r2, scale, violated, changed)
                return type(dots)(p2, n2, fi2, b2), r2, worst
            p2[bad], n2[bad], fi2[bad], b2[bad], r2[bad] = p[bad], n[bad], fi[bad], b[bad], r[bad]
            changed &= ~bad


def _project(sweep, dots, r, hard):
    """The joint relaxation's hard stage: over-relaxed sweeps onto the pair factors ``hard`` until the largest
    relative violation is below ``config.JOINT_HARD_TOL`` (at most ``config.JOINT_HARD_SWEEPS``). When it stalls
    (infeasible targets, e.g. around fixed dots that cannot make room), the targets are lowered a little at a time, so
    the sweeps always end on a consistent state rather than an oscillating one. (Lowering the targets only around the
    dots that keep a violation was tried: it converges in fewer sweeps, but around fixed dots the sessions' worst
    spacing comes out worse: 0.53, against over 0.6, in the fixed-dot test.)"""
    level, ref, recent, repeats = 1.0, np.inf, [], 0
    for done in range(1, config.JOINT_HARD_SWEEPS + 1):
        moved, r2, worst = sweep(dots, r, hard * level, config.JOINT_HARD_OMEGA)
        if worst < config.JOINT_HARD_TOL:
            break  # the old positions already satisfy the targets: keep them
        dots, r = moved, r2
        # the same worst violation again and again: its pair cannot move at all (a new dot held between fixed ones),
        # or it swings between the same two to four states (over-relaxed steps against a held dot), drifting by a
        # few 1e-4 of itself; lower the targets now rather than after the patience (a hairline move: 0.095 held for
        # 32 sweeps, then 0.067 for 40 and 0.038 for 40, 141 sweeps in all; another seed: 0.281/0.240 in turn for 40
        # sweeps, 202 in all)
        held = any(abs(worst - w) <= config.JOINT_HARD_SAME * worst for w in recent)
        repeats = repeats + 1 if held else 0
        recent = (recent + [worst])[-config.JOINT_HARD_CYCLE:]
        if repeats >= config.JOINT_HARD_HELD_REPEATS:
            level *= config.JOINT_HARD_BACKOFF
            repeats = 0
        elif done % config.JOINT_HARD_PATIENCE == 0:
            if worst > config.JOINT_HARD_STALL * ref:
                level *= config.JOINT_HARD_BACKOFF
            ref = worst
    return dots


def _assign_sessions(pos, nor, rad, fractions, fold_cos, kern):
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
                             np.ones(len(avail), bool), want, want / len(avail), fold_cos, kern)
        session[avail[keep]] = c + 1
    session[session == 0] = picks[-1] + 1
    return session


def _eliminate_to(points, normals, radius, removable, target, ratio, fold_cos, kern):
    """Indices (sorted) of the points kept by weighted sample elimination (the conflict graph by ``kern``, a
    :data:`_Kernels`; the removal on the CPU)."""
    from scalp3d import kernels as K

    rmin_factor = (1.0 - ratio ** config.ELIMINATION_GAMMA) * config.ELIMINATION_BETA
    indptr, indices, weights = kern.conflict_graph(np.ascontiguousarray(points), np.ascontiguousarray(normals),
                                                np.ascontiguousarray(radius), config.ELIMINATION_ALPHA,
                                                rmin_factor, fold_cos)
    keep, _ = K.eliminate(indptr, indices, weights, removable, int(target))
    return np.flatnonzero(keep)


def replace_where_changed(vertices, faces, placed, old_density_per_cm2, density_per_cm2, *, sessions, seed=0,
                          vertex_normals=None, margin_mm=None, changed=None, pinned=None, first_session=1,
                          first_id=None, region=None):
    """A local re-placement after a design change (issue 15): the dots of ``placed`` farther than ``margin_mm`` from
    every vertex whose density changed (or from ``changed``, (n,) bool) stay exactly as they are (positions, ids,
    sessions, faces); the others are placed again around them, within ``margin_mm`` of the change, each new dot held
    apart from the kept dots of its own session at that session's spacing (:func:`place_dots` with
    ``fixed_session``). As many dots in all as the new density asks for.

    A revision of a course under way: ``pinned`` ((len(placed),) bool) marks dots that stay wherever they are (dots
    already tattooed; they push the new ones at the union's spacing, whatever their session), ``sessions`` are then
    the fractions of the sessions still to come, the first of which is session ``first_session`` (the kept dots'
    and the new dots' session numbers are the course's), and the new dots' ids start at ``first_id``.

    ``region`` ((n,) bool, optional): the vertices within ``margin_mm`` of a changed one, when the caller has them
    already (found here otherwise).

    Returns (Placement of every dot: the kept ones first, in their order, then the new ones with ids after the
    largest kept id, or from ``first_id``; the (len(placed),) bool mask of the kept dots).
    """
    from scipy.spatial import cKDTree

    from .meshes import face_areas

    margin = config.LOCAL_SEAM_MM if margin_mm is None else float(margin_mm)
    v = np.asarray(vertices, dtype=np.float64)
    f = np.asarray(faces, dtype=np.int64)
    old = check_density(old_density_per_cm2, len(v))
    new_d = check_density(density_per_cm2, len(v))
    if changed is None:
        peak = max(float(old.max()), float(new_d.max()), 1e-12)
        changed = np.abs(new_d - old) > 1e-9 * peak
    changed = np.asarray(changed, dtype=bool)
    if not changed.any():
        return placed, np.ones(len(placed), bool)
    tree = cKDTree(v[changed])
    reach = margin + config.LOCAL_FIXED_REACH_MM
    # (distances capped at the reach: the queries stop early, 1.3 s -> 0.1 s on the sample head; and only the dots in
    # the changed vertices' box grown by the reach are asked, the others are farther)
    dist = np.full(len(placed), np.inf)
    if len(placed):
        rows = rows_in_reach_of_box(placed.positions, v[changed], reach)
        dist[rows] = tree.query(placed.positions[rows], distance_upper_bound=reach, workers=-1)[0]
    pinned = np.zeros(len(placed), bool) if pinned is None else np.asarray(pinned, dtype=bool)
    keep = (dist > margin) | pinned
    if region is None:
        region = tree.query(v, distance_upper_bound=margin * (1.0 + 1e-9), workers=-1)[0] <= margin
    region = np.asarray(region, dtype=bool)
    # as many new dots as the new density asks for on the faces touching the region, less the kept dots on them
    # (counting only the faces wholly inside left the seam's ring of faces short: 0.9 % fewer dots than a fresh plan
    # after a 5 mm hairline move, about 6 % in the region placed again; the crowding this once brought to the seam,
    # rho 0.71-0.77, is the last pass's to mend, see _polished: 0.806, and 0.2 % fewer dots)
    touching = _any3(region[f])
    ft = f[touching]  # (the faces touching the region alone: the same terms in the same order, 20 ms less)
    wanted = float((face_areas(v, ft) * (new_d[ft].mean(axis=1) * _all3(new_d[ft] > 0))).sum()) / 100.0
    count = max(int(round(wanted)) - int(touching[placed.face_ids[keep]].sum()), 0)
    kept = placed.subset(keep)
    # only the kept dots within reach of the region take part (the others are too far to push a new dot); a new dot
    # that still ends under the floor of one farther away is dropped below
    near = keep[keep] & (dist[keep] <= reach)
    offset = int(first_session) - 1
    # the kept dots' sessions among the ones placed (0: a pinned dot, held at the union's spacing only)
    own = np.where(pinned[keep], 0, kept.session - offset)
    pushing = replace(kept.subset(near), session=own[near])
    new = place_dots(v, f, count=count, density_per_cm2=new_d, sessions=sessions, seed=seed,
                     vertex_normals=vertex_normals, fixed=pushing.positions if len(pushing) else None,
                     fixed_session=pushing.session if len(pushing) else None, region=region) if count else None
    if new is not None and len(new) and (~near).any():
        # a kept dot farther than the reach from every changed vertex is farther than the reach less the new dots'
        # largest distance to one from every new dot (the triangle inequality): when that exceeds the largest floor
        # any pair can have, the check below cannot drop a dot (the usual case: 30 ms saved a change)
        from .spacing import floor_mm

        widest = float(local_spacing_mm(0.0, float(new_d.max())))
        if reach - float(tree.query(new.positions, workers=-1)[0].max()) < floor_mm(widest, widest) * config.FIXED_FLOOR_MARGIN:
            new = new.subset(_clear_of_far(new, kept.subset(~near), new_d, f))
    if new is not None and len(new):
        new = new.subset(_polished(pushing, new, new_d, f, _fractions(sessions)))
    if new is None or len(new) == 0:
        return kept, keep
    first = first_id if first_id is not None else int(kept.ids.max()) + 1 if len(kept) else 1
    ids = np.arange(first, first + len(new), dtype=np.int64)
    new = replace(new, session=new.session + offset)
    return Placement(*(np.concatenate([getattr(kept, k), x]) for k, x in (
        ("positions", new.positions), ("normals", new.normals), ("face_ids", new.face_ids),
        ("session", new.session), ("ids", ids), ("bary", new.bary)))), keep


def rows_in_reach_of_box(points, sources, dist_mm):
    """Indices of the ``points`` ((n,3)) inside the bounding box of ``sources`` ((k,3), k >= 1) grown by ``dist_mm``
    (and a hair more): every point within ``dist_mm`` of a source is among them, so a nearest-source query needs to
    ask only these (a small change's box holds a few per cent of the head's points)."""
    pad = float(dist_mm) * (1.0 + 1e-6) + 1e-9
    lo, hi = sources.min(axis=0) - pad, sources.max(axis=0) + pad
    return np.flatnonzero((points[:, 0] >= lo[0]) & (points[:, 0] <= hi[0]) & (points[:, 1] >= lo[1])
                          & (points[:, 1] <= hi[1]) & (points[:, 2] >= lo[2]) & (points[:, 2] <= hi[2]))


def _clear_of_far(new, far, density_v, faces):
    """(len(new),) bool: the new dots of a local re-placement not under the union's floor of a kept dot that took no
    part in it (farther than ``config.LOCAL_FIXED_REACH_MM`` beyond the region: none is expected)."""
    from scipy.spatial import cKDTree

    from .spacing import floor_mm

    def spacing(p):
        return local_spacing_mm((p.bary * density_v[faces[p.face_ids]]).sum(axis=1), float(density_v.max()))

    d, j = cKDTree(far.positions).query(new.positions, workers=-1)
    return d >= floor_mm(spacing(new), spacing(far)[j]) * config.FIXED_FLOOR_MARGIN


def _polished(fixed, new, density_v, faces, fractions):
    """(len(new),) bool: the new dots of a local re-placement kept by its last pass, which drops each new dot that
    is the newer of a pair closer than ``config.LOCAL_POLISH`` (of the pair's local d_max: all dots, each session
    alone) with its nearest dot. The projection can stall with a few such pairs where new dots meet the kept ones,
    which cannot move (a 5 mm hairline move on the sample head: 2-5 of 7,000 new dots, the union's rho 0.74-0.75
    against a fresh plan's 0.81); dropping them costs a few dots' density."""
    from scalp3d import kernels as K

    union_min, session_min = config.LOCAL_POLISH
    shares = np.diff(np.concatenate([[0.0], fractions]))
    pos = np.ascontiguousarray(np.vstack([fixed.positions, new.positions]))
    bary = np.vstack([fixed.bary, new.bary])
    fids = np.concatenate([fixed.face_ids, new.face_ids])
    ses = np.concatenate([fixed.session, new.session])
    sp = local_spacing_mm((bary * density_v[faces[fids]]).sum(axis=1), float(density_v.max()))
    alive = np.ones(len(pos), bool)
    is_new = np.arange(len(pos)) >= len(fixed)
    for _ in range(config.LOCAL_POLISH_ROUNDS):
        drop = np.zeros(len(pos), bool)
        groups = [(np.flatnonzero(alive), 1.0, union_min)] + [
            (np.flatnonzero(alive & (ses == k)), 1.0 / math.sqrt(sh), session_min)
            for k, sh in enumerate(shares, start=1) if sh > 0]
        for rows, widen, least in groups:
            if len(rows) < 2:
                continue
            r = sp[rows] * widen
            nn, j = K.nearest_distance(pos[rows], pos[rows], float(np.median(r)), True)
            ratio = nn / np.minimum(r, r[j])
            # the stalled pairs only: when the projection lowered every target a step (0.97), the bulk of the new
            # dots sits just under the bar, and dropping each (14 % of them, 563 dots, after a crown density change
            # on the sample head) emptied the region by 6 %; the bar then follows the new dots' own 5th percentile
            bar = least
            new_rows = is_new[rows]
            if new_rows.sum() >= config.LOCAL_POLISH_MIN_DOTS:
                bar = min(least, config.LOCAL_POLISH_STEP * float(np.percentile(ratio[new_rows], 5)))
            close = ratio < bar
            # the newer dot of each close pair goes (a kept dot never does)
            a, b = rows[close], rows[j[close]]
            drop[np.where(is_new[a] & (~is_new[b] | (a > b)), a, b)[is_new[a] | is_new[b]]] = True
        drop &= is_new
        if not drop.any():
            break
        alive &= ~drop
    return alive[len(fixed):]
