"""Light relaxation of dots on a triangle mesh (numba): pushes too-close pairs apart along the skin.

Each movable dot i is pushed away from every neighbour j closer than the pair's target spacing
t_ij = (r_i + r_j) / 2 * scale[c_i, c_j] (r: the local spacing d_max, c: the dot's class, i.e. its session), by half the
shortfall (all of it when j is fixed), in its tangent plane; the step is capped, and the dot is then snapped back onto
the mesh by walking from its face to the closest point among the faces around it. A dot never moves onto a face whose
``face_ok`` is False (zero density). Every dot's new position is computed from the old positions only (Jacobi), so
the result does not depend on the thread count. A few passes lift the smallest distances while the pattern stays
irregular (pairs already farther apart than their target do not interact: no lattice forms).
"""
import numpy as np
from numba import njit


@njit(cache=True)
def closest_on_triangle(p, a, b, c):
    """Closest point to p on triangle abc and its barycentric coordinates (Ericson, Real-Time Collision Detection).

    Returns (point (3,), u, v, w). Array wrapper of :func:`closest_xyz`.
    """
    x, y, z, u, v, w = closest_xyz(p[0], p[1], p[2], a[0], a[1], a[2], b[0], b[1], b[2], c[0], c[1], c[2])
    out = np.empty(3)
    out[0] = x
    out[1] = y
    out[2] = z
    return out, u, v, w


@njit(cache=True)
def closest_xyz(px, py, pz, ax, ay, az, bx, by, bz, cx, cy, cz):
    """:func:`closest_on_triangle` on scalars, allocation-free: returns (x, y, z, u, v, w)."""
    abx, aby, abz = bx - ax, by - ay, bz - az
    acx, acy, acz = cx - ax, cy - ay, cz - az
    apx, apy, apz = px - ax, py - ay, pz - az
    d1 = abx * apx + aby * apy + abz * apz
    d2 = acx * apx + acy * apy + acz * apz
    if d1 <= 0.0 and d2 <= 0.0:
        return ax, ay, az, 1.0, 0.0, 0.0
    bpx, bpy, bpz = px - bx, py - by, pz - bz
    d3 = abx * bpx + aby * bpy + abz * bpz
    d4 = acx * bpx + acy * bpy + acz * bpz
    if d3 >= 0.0 and d4 <= d3:
        return bx, by, bz, 0.0, 1.0, 0.0
    vc = d1 * d4 - d3 * d2
    if vc <= 0.0 and d1 >= 0.0 and d3 <= 0.0:
        v = d1 / (d1 - d3) if d1 != d3 else 0.0
        return ax + v * abx, ay + v * aby, az + v * abz, 1.0 - v, v, 0.0
    cpx, cpy, cpz = px - cx, py - cy, pz - cz
    d5 = abx * cpx + aby * cpy + abz * cpz
    d6 = acx * cpx + acy * cpy + acz * cpz
    if d6 >= 0.0 and d5 <= d6:
        return cx, cy, cz, 0.0, 0.0, 1.0
    vb = d5 * d2 - d1 * d6
    if vb <= 0.0 and d2 >= 0.0 and d6 <= 0.0:
        w = d2 / (d2 - d6) if d2 != d6 else 0.0
        return ax + w * acx, ay + w * acy, az + w * acz, 1.0 - w, 0.0, w
    va = d3 * d6 - d5 * d4
    if va <= 0.0 and (d4 - d3) >= 0.0 and (d5 - d6) >= 0.0:
        den = (d4 - d3) + (d5 - d6)
        w = (d4 - d3) / den if den != 0.0 else 0.0
        return bx + w * (cx - bx), by + w * (cy - by), bz + w * (cz - bz), 0.0, 1.0 - w, w
    den = va + vb + vc
    if den == 0.0:
        return ax, ay, az, 1.0, 0.0, 0.0
    v = vb / den
    w = vc / den
    return ax + abx * v + acx * w, ay + aby * v + acy * w, az + abz * v + acz * w, 1.0 - v - w, v, w


@njit(cache=True)
def _closest_on_face(qx, qy, qz, f, vertices, faces):
    a = faces[f, 0]
    b = faces[f, 1]
    c = faces[f, 2]
    return closest_xyz(qx, qy, qz, vertices[a, 0], vertices[a, 1], vertices[a, 2], vertices[b, 0], vertices[b, 1],
                       vertices[b, 2], vertices[c, 0], vertices[c, 1], vertices[c, 2])


@njit(cache=True)
def snap_to_mesh(q, face, vertices, faces, vf_indptr, vf_indices):
    """Walk from ``face`` to the closest point of the mesh to q among neighbouring faces.

    Returns (point (3,), face, barycentric (3,)). Array wrapper of :func:`snap_xyz`.
    """
    x, y, z, f, u, v, w = snap_xyz(q[0], q[1], q[2], face, vertices, faces, vf_indptr, vf_indices)
    pt = np.empty(3)
    pt[0] = x
    pt[1] = y
    pt[2] = z
    bary = np.empty(3)
    bary[0] = u
    bary[1] = v
    bary[2] = w
    return pt, f, bary


@njit(cache=True)
def snap_xyz(qx, qy, qz, face, vertices, faces, vf_indptr, vf_indices):
    """:func:`snap_to_mesh` on scalars, allocation-free (it runs inside the parallel sweeps): returns
    (x, y, z, face, u, v, w)."""
    # most moves are small: when q projects inside its own face, that is the answer
    x, y, z, u, v, w = _closest_on_face(qx, qy, qz, face, vertices, faces)
    if u > 1e-9 and v > 1e-9 and w > 1e-9:
        return x, y, z, face, u, v, w
    best_face = face
    bx, by, bz, bu, bv, bw = x, y, z, u, v, w
    best_d = np.inf
    for _ in range(6):
        start = best_face
        for k in range(3):
            vert = faces[start, k]
            for s in range(vf_indptr[vert], vf_indptr[vert + 1]):
                f = vf_indices[s]
                x, y, z, u, v, w = _closest_on_face(qx, qy, qz, f, vertices, faces)
                d = (x - qx) ** 2 + (y - qy) ** 2 + (z - qz) ** 2
                if d < best_d or (d == best_d and f < best_face):
                    best_d = d
                    best_face = f
                    bx, by, bz, bu, bv, bw = x, y, z, u, v, w
        if best_face == start:
            break
    return bx, by, bz, best_face, bu, bv, bw


def relax_step(points, normals, face_ids, bary, movable, cls, radius, scale, fold_cos, max_step,
               vertices, vertex_normals, faces, vf_indptr, vf_indices, face_ok):
    """One Jacobi relaxation pass. Returns new (points, normals, face_ids, bary) and the number of moved dots.

    The sweep of :func:`scalp3d.kernels.multiclass.multiclass_step` with no over- or under-relaxation (omega 1).

    Parameters
    ----------
    points, normals : (n,3) float64; face_ids : (n,) int64; bary : (n,3) float64
    movable : (n,) bool; cls : (n,) int64 in [0, K); radius : (n,) float64 local spacing d_max (mm)
    scale : (K,K) float64 target spacing factors; fold_cos : float; max_step : float, step cap as a fraction of r_i
    vertices, vertex_normals : (V,3); faces : (F,3) int64; vf_indptr, vf_indices : vertex -> faces CSR
    face_ok : (F,) bool, faces a dot may move onto
    """
    from .multiclass import multiclass_step  # multiclass uses snap_to_mesh from here

    p, n, f, b, _worst, moved = multiclass_step(points, normals, face_ids, bary, movable, cls, radius, scale,
                                                fold_cos, 1.0, max_step, vertices, vertex_normals, faces,
                                                vf_indptr, vf_indices, face_ok)
    return p, n, f, b, moved


def vertex_faces(n_vertices, faces):
    """Vertex -> incident faces as CSR (indptr (V+1,), indices) with numpy (no numba needed)."""
    f = np.asarray(faces, dtype=np.int64)
    flat = f.ravel()
    order = np.argsort(flat, kind="stable")
    indices = (order // 3).astype(np.int64)
    counts = np.bincount(flat, minlength=n_vertices)
    indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    return indptr, indices
