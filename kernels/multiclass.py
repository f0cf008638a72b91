"""Joint multi-class (session) relaxation of dots on a triangle mesh (numba).

The dots of every session are relaxed together, each pair at a target distance chosen by the two dots' classes (an
"r-matrix", Wei 2010): t_ij = min(r_i, r_j) * scale[c_i, c_j], with r the local union spacing d_max of each dot
(from the density field, so density gradients work; the smaller of the two, as the spacing floor takes it: with the
mean, a dot drifting into a margin feathered to zero pushed harder the farther it went, ran away to the edge and piled
its neighbours up 0.1 mm apart) and ``scale`` holding the class factors (e.g. 0.85 / sqrt(share)
for two dots of the same session: 0.85 of the session's own d_max). With a relaxation factor ``omega`` (1 for a plain
pass: the light relaxation of :func:`scalp3d.placement.place_dots` is this sweep with one class) it returns the
largest relative violation max (t_ij - d_ij) / t_ij, so a caller can run over-compressed soft sweeps and then project
onto hard constraints until the violation is gone.

One sweep (Jacobi): every movable dot i sums, over its neighbours j closer than t_ij, a push of half the shortfall
(all of it when j is fixed) along the pair direction, keeps the tangent part, scales it by ``omega``, caps it at
``max_step * r_i``, and is put back onto the mesh: projected onto its own face's plane when it stays inside that face
(allocation-free fast path), otherwise snapped by :func:`scalp3d.kernels.snap.snap_xyz` walking from its face
(never onto a face whose ``face_ok`` is False: the dot then stays). Pairs whose normals satisfy n_i . n_j < ``fold_cos``
(opposite sides of a fold) never interact. New positions depend on the old ones only, so the result does not depend on
the thread count.

Neighbours come from lists (:func:`pair_lists`, CSR) rather than from the grid at every sweep: a caller builds them
with a ``reach`` beyond every pair's target and reuses them until a pair could have come within its target unseen
(the two largest moves since the build, plus the growth of the spacing, exceed the reach).
"""
import math
from collections import namedtuple

import numpy as np
from numba import njit

from .chunks import run_chunks
from .grid import dense_cell, dense_grid
from .snap import snap_xyz

#: slots per row of the first pass of :func:`pair_lists`
PAIR_ROW_CAP = 48

# The sweep's arguments, grouped by meaning (numba types a namedtuple of arrays as one argument, on the CPU and in a
# CUDA kernel alike). The neighbour lists travel as the (indptr, indices) pair :func:`pair_lists` returns.

#: where the dots are, what a sweep moves: points, normals (n,3) float64; face_ids (n,) int64; bary (n,3) float64
DotState = namedtuple("DotState", "points normals face_ids bary")
#: each pair's target distance t_ij = min(r_i, r_j) * scale[c_i, c_j]: cls (n,) int64 in [0, K); radius (n,) float64
#: local union spacing d_max (mm); scale (K,K) float64 pair factors (symmetric)
Targets = namedtuple("Targets", "cls radius scale")
#: how a sweep moves a dot: fold_cos (pairs with n_i . n_j below it never interact), omega (relaxation factor on the
#: summed push), max_step (step cap as a fraction of r_i); floats
SweepStep = namedtuple("SweepStep", "fold_cos omega max_step")
#: the mesh the dots move on: vertices, vertex_normals (V,3) float64; faces (F,3) int64; vf_indptr, vf_indices the
#: vertex -> faces CSR (:func:`scalp3d.kernels.snap.vertex_faces`); face_ok (F,) bool, faces a dot may move onto
Mesh = namedtuple("Mesh", "vertices vertex_normals faces vf_indptr vf_indices face_ok")


@njit(cache=True, nogil=True, _nrt=False)
def _pair_rows(lo, hi, points, normals, targets, reach, fold_cos, grid, wanted, rows, counts):
    """Rows lo..hi-1 of :func:`pair_lists`: their first PAIR_ROW_CAP entries to rows[i], their lengths to
    counts[i + 1] (0 for a row not ``wanted``)."""
    for i in range(lo, hi):
        if wanted[i]:
            counts[i + 1] = _pair_row(i, points, normals, targets, reach, fold_cos, grid, rows[i], np.int64(0),
                                      np.int64(PAIR_ROW_CAP))


@njit(cache=True, nogil=True, _nrt=False)
def _pair_rows_whole(lo, hi, points, normals, targets, reach, fold_cos, grid, wanted, indptr, indices):
    """Rows lo..hi-1 of :func:`pair_lists` written whole to their place in ``indices`` (when some row overflowed)."""
    end = indptr[indptr.shape[0] - 1]
    for i in range(lo, hi):
        if wanted[i]:
            _pair_row(i, points, normals, targets, reach, fold_cos, grid, indices, indptr[i], end)


@njit(cache=True, nogil=True, _nrt=False)
def _copy_rows(lo, hi, rows, indptr, indices):
    """Rows lo..hi-1 of ``rows`` (CSR lengths from ``indptr``) to their place in ``indices``."""
    for i in range(lo, hi):
        k0 = indptr[i]
        for c in range(indptr[i + 1] - k0):
            indices[k0 + c] = rows[i, c]


def pair_lists(points, normals, cls, radius, scale, reach, fold_cos, rows=None):
    """Neighbour lists (CSR) for the sweeps: j is listed for i when their chord is below the pair's target
    t_ij = min(r_i, r_j) * scale[c_i, c_j] plus ``reach`` (mm), and their normals are not across a fold.

    The condition is symmetric. Rows are filled in the grid's fixed scan order, so the lists do not depend on the
    thread count. Sweeps then visit only these pairs (about a third of the points the 27 grid cells hold) until a
    dot has moved more than ``reach / 2`` (the caller rebuilds then). ``rows`` ((n,) bool, optional): only these
    rows are filled, the others left empty (their points are still listed in the filled rows): the joint
    relaxation reads only the rows of dots that can move, and the fixed dots around a local re-placement are about
    two fifths of its dots.

    Returns
    -------
    indptr : (n+1,) int64; indices : (nnz,) int64
    """
    n = points.shape[0]
    reach = float(reach)
    smax = float(np.max(scale)) if scale.size else 0.0
    rmax = max(float(np.max(radius)), 0.0) if n else 0.0
    cell = max(rmax * max(smax, 0.0) + reach, 1e-9)
    grid = dense_grid(points, dense_cell(points, cell))
    targets = (cls, radius, scale)
    # one pass into rows of PAIR_ROW_CAP slots (the usual case: 10-30 neighbours), compacted after; a second pass,
    # writing whole rows, only when some row overflows
    counts = np.zeros(n + 1, dtype=np.int64)
    fold_cos = float(fold_cos)
    wanted = np.ones(n, dtype=np.bool_) if rows is None else np.ascontiguousarray(rows, dtype=np.bool_)
    first = np.empty((n, PAIR_ROW_CAP), dtype=np.int64)
    run_chunks(n, _pair_rows, points, normals, targets, reach, fold_cos, grid, wanted, first, counts)
    indptr = np.cumsum(counts)
    indices = np.empty(indptr[n], dtype=np.int64)
    if n == 0 or counts.max() <= PAIR_ROW_CAP:
        run_chunks(n, _copy_rows, first, indptr, indices)
    else:
        run_chunks(n, _pair_rows_whole, points, normals, targets, reach, fold_cos, grid, wanted, indptr, indices)
    return indptr, indices


@njit(cache=True, nogil=True, _nrt=False)
def _list_nearest_rows(lo, hi, points, nbr_ptr, nbr_idx, out):
    for i in range(lo, hi):
        best = np.inf
        for s in range(nbr_ptr[i], nbr_ptr[i + 1]):
            j = nbr_idx[s]
            d = (points[i, 0] - points[j, 0]) ** 2 + (points[i, 1] - points[j, 1]) ** 2 \
                + (points[i, 2] - points[j, 2]) ** 2
            if d < best:
                best = d
        out[i] = math.sqrt(best)


def list_nearest(points, nbr_ptr, nbr_idx):
    """Distance from every point to its nearest listed neighbour (inf when its list is empty): the nearest distance
    wherever it is below the lists' reach."""
    out = np.full(points.shape[0], np.inf)
    run_chunks(points.shape[0], _list_nearest_rows, points, nbr_ptr, nbr_idx, out)
    return out


@njit(cache=True, nogil=True, _nrt=False)
def _moved_spacing_rows(lo, hi, rows, face_ids, bary, faces, dens_v, low, out):
    for q in range(lo, hi):
        i = rows[q]
        f = face_ids[i]
        d = bary[i, 0] * dens_v[faces[f, 0]] + bary[i, 1] * dens_v[faces[f, 1]] + bary[i, 2] * dens_v[faces[f, 2]]
        out[i] = math.sqrt(2.0 / (math.sqrt(3.0) * (max(d, low) / 100.0)))


def moved_spacing(radius, rows, face_ids, bary, faces, dens_v, low):
    """``radius`` with the rows ``rows`` set to the local d_max (mm) of the density at their dots: the vertex
    densities ``dens_v`` (dots per cm2) interpolated at (face_ids, bary), taken at no less than ``low``, as
    :func:`scalp3d.placement.local_spacing_mm` does (the same operations in the same order: the same bits)."""
    out = radius.copy()
    run_chunks(rows.shape[0], _moved_spacing_rows, rows, face_ids, bary, faces, dens_v, float(low), out)
    return out


@njit(cache=True)
def pair_shift_bound(a, b):
    """The most any pair of rows can have come closer between two (n,3) arrays of the same points: the sum of the
    two largest row shifts (one pair cannot hold the largest twice)."""
    m1 = 0.0
    m2 = 0.0
    for i in range(a.shape[0]):
        d = (a[i, 0] - b[i, 0]) ** 2 + (a[i, 1] - b[i, 1]) ** 2 + (a[i, 2] - b[i, 2]) ** 2
        if d > m1:
            m2 = m1
            m1 = d
        elif d > m2:
            m2 = d
    return math.sqrt(m1) + math.sqrt(m2)


@njit(cache=True)
def _pair_row(i, points, normals, targets, reach, fold_cos, grid, out, k0, limit):
    """Count row i's neighbours (``targets`` a :data:`Targets`, ``grid`` as :func:`scalp3d.kernels.grid.dense_grid`
    returns it); write them to out[k0 + c] while k0 + c < limit. The 27 cells around i's are visited as nine runs
    of three (the dense grid's cells along z are contiguous), in the hash grid's order: the rows hold the same
    entries in the same order as they did on it, a third faster (no hashing)."""
    cls, radius, scale = targets
    _origin, cells, dims, start, order = grid
    c = 0
    ci = cls[i]
    for ox in range(-1, 2):
        for oy in range(-1, 2):
            mid = ((cells[i, 0] + ox) * dims[1] + (cells[i, 1] + oy)) * dims[2] + cells[i, 2]
            for s in range(start[mid - 1], start[mid + 2]):
                j = order[s]
                if j == i or (normals[i, 0] * normals[j, 0] + normals[i, 1] * normals[j, 1]
                              + normals[i, 2] * normals[j, 2]) < fold_cos:
                    continue
                t = min(radius[i], radius[j]) * scale[ci, cls[j]] + reach
                ex = points[i, 0] - points[j, 0]
                ey = points[i, 1] - points[j, 1]
                ez = points[i, 2] - points[j, 2]
                if ex * ex + ey * ey + ez * ez >= t * t:
                    continue
                if k0 + c < limit:
                    out[k0 + c] = j
                c += 1
    return c


@njit(cache=True, inline="always")
def update_dot(i, dots, movable, targets, step, lists, mesh):
    """Dot i's part of a sweep (arguments as :func:`multiclass_sweep`'s): (worst, face, x, y, z, nx, ny, nz, b0, b1,
    b2), its largest violation and, when it moves (face >= 0), its new face, point, unit normal and barycentric
    coordinates (:func:`store_dot` writes them). It reads and never writes (inlined into numba 0.68's parallel loops,
    writes through a tuple of arrays were lost; the sweep keeps the split). Scalars and indexing only: the CUDA twin
    (:mod:`scalp3d.kernels.cuda`) compiles this same source as a device function."""
    points, normals, face_ids, _bary = dots
    cls, radius, scale = targets
    fold_cos, omega, max_step = step
    nbr_ptr, nbr_idx = lists
    vertices, vertex_normals, faces, vf_indptr, vf_indices, face_ok = mesh
    if not movable[i]:
        return 0.0, -1, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0
    dx = 0.0
    dy = 0.0
    dz = 0.0
    wi = 0.0
    ci = cls[i]
    for s in range(nbr_ptr[i], nbr_ptr[i + 1]):
        j = nbr_idx[s]
        if (normals[i, 0] * normals[j, 0] + normals[i, 1] * normals[j, 1]
                + normals[i, 2] * normals[j, 2]) < fold_cos:
            continue
        t = min(radius[i], radius[j]) * scale[ci, cls[j]]
        ex = points[i, 0] - points[j, 0]
        ey = points[i, 1] - points[j, 1]
        ez = points[i, 2] - points[j, 2]
        d2 = ex * ex + ey * ey + ez * ez
        if d2 >= t * t:
            continue
        d = math.sqrt(d2)
        w = (t - d) / t
        if w > wi:
            wi = w
        if d < 1e-12:
            continue  # coincident: the direction is undefined; the neighbours resolve it
        share = 0.5 if movable[j] else 1.0
        push = share * (t - d) / d
        dx += push * ex
        dy += push * ey
        dz += push * ez
    # tangent plane
    nd = dx * normals[i, 0] + dy * normals[i, 1] + dz * normals[i, 2]
    dx = omega * (dx - nd * normals[i, 0])
    dy = omega * (dy - nd * normals[i, 1])
    dz = omega * (dz - nd * normals[i, 2])
    length = math.sqrt(dx * dx + dy * dy + dz * dz)
    if length == 0.0:
        return wi, -1, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0
    cap = max_step * radius[i]
    if length > cap:
        dx *= cap / length
        dy *= cap / length
        dz *= cap / length
    qx = points[i, 0] + dx
    qy = points[i, 1] + dy
    qz = points[i, 2] + dz
    # most moves stay over the dot's own face: project onto its plane without allocating; otherwise walk
    f = face_ids[i]
    a0 = faces[f, 0]
    a1 = faces[f, 1]
    a2 = faces[f, 2]
    abx = vertices[a1, 0] - vertices[a0, 0]
    aby = vertices[a1, 1] - vertices[a0, 1]
    abz = vertices[a1, 2] - vertices[a0, 2]
    acx = vertices[a2, 0] - vertices[a0, 0]
    acy = vertices[a2, 1] - vertices[a0, 1]
    acz = vertices[a2, 2] - vertices[a0, 2]
    aqx = qx - vertices[a0, 0]
    aqy = qy - vertices[a0, 1]
    aqz = qz - vertices[a0, 2]
    d00 = abx * abx + aby * aby + abz * abz
    d01 = abx * acx + aby * acy + abz * acz
    d11 = acx * acx + acy * acy + acz * acz
    d20 = aqx * abx + aqy * aby + aqz * abz
    d21 = aqx * acx + aqy * acy + aqz * acz
    den = d00 * d11 - d01 * d01
    b1 = -1.0
    b2 = -1.0
    if den > 0.0:
        b1 = (d11 * d20 - d01 * d21) / den
        b2 = (d00 * d21 - d01 * d20) / den
    b0 = 1.0 - b1 - b2
    if b0 > 1e-9 and b1 > 1e-9 and b2 > 1e-9:
        px = vertices[a0, 0] + b1 * abx + b2 * acx
        py = vertices[a0, 1] + b1 * aby + b2 * acy
        pz = vertices[a0, 2] + b1 * abz + b2 * acz
    else:
        px, py, pz, f, b0, b1, b2 = snap_xyz(qx, qy, qz, face_ids[i], vertices, faces, vf_indptr, vf_indices)
        if not face_ok[f]:
            # a move off the skin with density slides along its edge: the part of the step towards the face it
            # landed on (its centre, in the tangent plane) is dropped, and the rest tried whole, then halved (a pair
            # pressed against a hard edge otherwise stays under its target for good: held pairs of dots 0.68 of
            # d_max apart on the sample head)
            ux = (vertices[faces[f, 0], 0] + vertices[faces[f, 1], 0] + vertices[faces[f, 2], 0]) / 3.0 - points[i, 0]
            uy = (vertices[faces[f, 0], 1] + vertices[faces[f, 1], 1] + vertices[faces[f, 2], 1]) / 3.0 - points[i, 1]
            uz = (vertices[faces[f, 0], 2] + vertices[faces[f, 1], 2] + vertices[faces[f, 2], 2]) / 3.0 - points[i, 2]
            un = ux * normals[i, 0] + uy * normals[i, 1] + uz * normals[i, 2]
            ux -= un * normals[i, 0]
            uy -= un * normals[i, 1]
            uz -= un * normals[i, 2]
            ul = math.sqrt(ux * ux + uy * uy + uz * uz)
            du = (dx * ux + dy * uy + dz * uz) / ul if ul > 0.0 else 0.0
            if du > 0.0:
                dx -= du * ux / ul
                dy -= du * uy / ul
                dz -= du * uz / ul
                h = 1.0
                while h > 0.3 and not face_ok[f]:
                    px, py, pz, f, b0, b1, b2 = snap_xyz(points[i, 0] + h * dx, points[i, 1] + h * dy,
                                                         points[i, 2] + h * dz, face_ids[i], vertices, faces,
                                                         vf_indptr, vf_indices)
                    h *= 0.5
        if not face_ok[f]:
            return wi, -1, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0
    u0 = faces[f, 0]
    u1 = faces[f, 1]
    u2 = faces[f, 2]
    nx = b0 * vertex_normals[u0, 0] + b1 * vertex_normals[u1, 0] + b2 * vertex_normals[u2, 0]
    ny = b0 * vertex_normals[u0, 1] + b1 * vertex_normals[u1, 1] + b2 * vertex_normals[u2, 1]
    nz = b0 * vertex_normals[u0, 2] + b1 * vertex_normals[u1, 2] + b2 * vertex_normals[u2, 2]
    s = math.sqrt(nx * nx + ny * ny + nz * nz)
    if s == 0.0:
        return wi, -1, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0
    return wi, f, px, py, pz, nx / s, ny / s, nz / s, b0, b1, b2


@njit(cache=True, inline="always")
def store_dot(i, result, new_p, new_n, new_f, new_b, moved, worst_i):
    """Writes :func:`update_dot`'s ``result`` for dot i: its violation to worst_i[i] and, when it moved, its row of
    the new points, normals, faces and barycentric coordinates and 1 to moved[i]. Shared by the CUDA twin."""
    wi, f, px, py, pz, nx, ny, nz, b0, b1, b2 = result
    worst_i[i] = wi
    if f < 0:
        return
    new_p[i, 0] = px
    new_p[i, 1] = py
    new_p[i, 2] = pz
    new_n[i, 0] = nx
    new_n[i, 1] = ny
    new_n[i, 2] = nz
    new_f[i] = f
    new_b[i, 0] = b0
    new_b[i, 1] = b1
    new_b[i, 2] = b2
    moved[i] = 1


@njit(cache=True, nogil=True, _nrt=False)
def _sweep_rows(lo, hi, dots, movable, targets, step, lists, mesh, active, new_p, new_n, new_f, new_b, moved,
                worst_i):
    """Rows lo..hi-1 of :func:`multiclass_sweep` (one chunk of its parallel loop, see :mod:`.chunks`); a row not
    ``active`` is left as it is (not moved, no violation)."""
    points, normals, face_ids, bary = dots
    cls, radius, scale = targets
    fold_cos, omega, max_step = step
    nbr_ptr, nbr_idx = lists
    vertices, vertex_normals, faces, vf_indptr, vf_indices, face_ok = mesh
    for i in range(lo, hi):
        if not active[i]:
            continue
        result = update_dot(i, (points, normals, face_ids, bary), movable, (cls, radius, scale),
                            (fold_cos, omega, max_step), (nbr_ptr, nbr_idx),
                            (vertices, vertex_normals, faces, vf_indptr, vf_indices, face_ok))
        store_dot(i, result, new_p, new_n, new_f, new_b, moved, worst_i)


def multiclass_sweep(dots, movable, targets, step, lists, mesh, active=None, worst_rows=None):
    """One Jacobi sweep of the joint multi-class relaxation over neighbour lists from :func:`pair_lists` (built with a
    reach covering every move since).

    Parameters
    ----------
    dots : :data:`DotState` (points, normals (n,3) float64; face_ids (n,) int64; bary (n,3) float64)
    movable : (n,) bool, False for fixed dots (they push, at full strength, and never move)
    targets : :data:`Targets` (cls (n,) int64 in [0, K); radius (n,) float64 local union spacing d_max (mm);
        scale (K,K) float64 pair target factors, symmetric)
    step : :data:`SweepStep` (fold_cos; omega, relaxation factor applied to the summed push; max_step, step cap as a
        fraction of r_i)
    lists : (indptr (n+1,) int64, indices int64): neighbour lists (CSR) from :func:`pair_lists`
    mesh : :data:`Mesh` (vertices, vertex_normals (V,3); faces (F,3) int64; vf_indptr, vf_indices the vertex -> faces
        CSR; face_ok (F,) bool, faces a dot may move onto)
    active : (n,) bool, optional: only these rows are computed, the others stay where they are with no violation
        (exactly what computing them gives when no pair of theirs is within its target:
        :func:`rows_to_sweep` finds the rows that can have one)
    worst_rows : (n,) float64, optional, filled with each row's largest relative violation (0 for none)

    Returns
    -------
    new points, normals, face_ids, bary; worst : float, largest relative violation (t - d) / t over the pairs seen
    from a movable dot (before the move); moved : int, number of dots moved.
    """
    n = dots.points.shape[0]
    new_p = dots.points.copy()
    new_n = dots.normals.copy()
    new_f = dots.face_ids.copy()
    new_b = dots.bary.copy()
    moved = np.zeros(n, dtype=np.int64)
    worst_i = np.zeros(n) if worst_rows is None else worst_rows
    worst_i[:] = 0.0
    active = np.ones(n, dtype=np.bool_) if active is None else active
    run_chunks(n, _sweep_rows, dots, movable, targets, step, lists, mesh, active, new_p, new_n, new_f, new_b, moved,
               worst_i)
    worst = float(worst_i.max()) if n else 0.0
    return new_p, new_n, new_f, new_b, worst, int(moved.sum())


@njit(cache=True, nogil=True, _nrt=False)
def _rows_to_sweep_rows(lo, hi, violated, changed, nbr_ptr, nbr_idx, out):
    for i in range(lo, hi):
        hit = violated[i] > 0.0 or changed[i]
        s = nbr_ptr[i]
        while not hit and s < nbr_ptr[i + 1]:
            hit = changed[nbr_idx[s]]
            s += 1
        out[i] = hit


def rows_to_sweep(violated, changed, nbr_ptr, nbr_idx):
    """(n,) bool: the rows a sweep must compute after one that left each row's largest violation in ``violated``
    (:func:`multiclass_sweep`'s ``worst_rows``) and moved the dots ``changed`` (their spacing may have changed too),
    when the pair targets have not grown since: a row that had no pair within its target, and neither it nor any dot
    listed for it (``nbr_ptr``, ``nbr_idx``: lists valid at the current places) moved, has none now, so the sweep
    would leave it as it is. In the projection's last sweeps a third of the rows or fewer are left."""
    out = np.empty(violated.shape[0], dtype=np.bool_)
    run_chunks(violated.shape[0], _rows_to_sweep_rows, violated, changed, nbr_ptr, nbr_idx, out)
    return out


def session_scales(shares, new_fraction=1.0, same=0.85, cross=1.0, first_two=0.97, first_two_floor=None,
                   fixed_class=False):
    """Pair target factors (K,K) (or (K+1,K+1) with a last class for fixed dots) in units of the local union d_max.

    shares : (K,) each session's share of the new dots; new_fraction : the new dots' share of all dots (1 without
    fixed dots). Same session: ``same`` x the session's own d_max = same / sqrt(share * new_fraction); sessions 1-2
    cross: ``first_two`` x the d_max of their union, at least ``first_two_floor`` (default ``cross``) x the union
    d_max; any other pair (and fixed-new pairs): ``cross``.
    """
    shares = np.asarray(shares, dtype=np.float64)
    k = len(shares)
    m = k + 1 if fixed_class else k
    s = np.full((m, m), float(cross))
    for c in range(k):
        s[c, c] = same / math.sqrt(shares[c] * new_fraction)
    if k >= 3:
        floor = cross if first_two_floor is None else first_two_floor
        g = max(floor, first_two / math.sqrt((shares[0] + shares[1]) * new_fraction))
        s[0, 1] = s[1, 0] = g
    if fixed_class:
        s[k, k] = 0.0
    return s


@njit(cache=True, nogil=True, _nrt=False)
def _floor_offender_rows(lo, hi, old_points, new_points, moved, cls, radius, floor_scale, frac, min_mm, nbr_ptr,
                         nbr_idx, bad):
    for i in range(lo, hi):
        if not moved[i]:
            continue
        ci = cls[i]
        for s in range(nbr_ptr[i], nbr_ptr[i + 1]):
            j = nbr_idx[s]
            fl = max(frac * min(radius[i], radius[j]) * floor_scale[ci, cls[j]], min_mm)
            dn = (new_points[i, 0] - new_points[j, 0]) ** 2 + (new_points[i, 1] - new_points[j, 1]) ** 2 \
                + (new_points[i, 2] - new_points[j, 2]) ** 2
            if dn >= fl * fl:
                continue
            do = (old_points[i, 0] - old_points[j, 0]) ** 2 + (old_points[i, 1] - old_points[j, 1]) ** 2 \
                + (old_points[i, 2] - old_points[j, 2]) ** 2
            if dn < do:
                bad[i] = True
                break


def floor_offenders(old_points, new_points, moved, cls, radius, floor_scale, frac, min_mm, nbr_ptr, nbr_idx):
    """Moved dots that broke the spacing floor: dot i is an offender when, for a listed neighbour j, the pair is now
    closer than its floor max(frac * min(r_i, r_j) * floor_scale[c_i, c_j], min_mm) AND closer than it was before
    the move (a pair already under the floor may move apart, never closer). ``radius`` holds the local spacing at the
    new positions. The relaxations revert offenders until none is left, so a sweep never makes the floor worse.

    Returns
    -------
    (n,) bool
    """
    bad = np.zeros(new_points.shape[0], dtype=np.bool_)
    run_chunks(new_points.shape[0], _floor_offender_rows, old_points, new_points, moved, cls, radius, floor_scale,
               float(frac), float(min_mm), nbr_ptr, nbr_idx, bad)
    return bad
