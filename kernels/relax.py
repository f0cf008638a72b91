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
    """Closest point to p on triangle abc and its barycentric coordinates (Ericson, Real-Time Collision Detection)."""
    ab = b - a
    ac = c - a
    ap = p - a
    d1 = ab @ ap
    d2 = ac @ ap
    if d1 <= 0.0 and d2 <= 0.0:
        return a.copy(), 1.0, 0.0, 0.0
    bp = p - b
    d3 = ab @ bp
    d4 = ac @ bp
    if d3 >= 0.0 and d4 <= d3:
        return b.copy(), 0.0, 1.0, 0.0
    vc = d1 * d4 - d3 * d2
    if vc <= 0.0 and d1 >= 0.0 and d3 <= 0.0:
        v = d1 / (d1 - d3) if d1 != d3 else 0.0
        return a + v * ab, 1.0 - v, v, 0.0
    cp = p - c
    d5 = ab @ cp
    d6 = ac @ cp
    if d6 >= 0.0 and d5 <= d6:
        return c.copy(), 0.0, 0.0, 1.0
    vb = d5 * d2 - d1 * d6
    if vb <= 0.0 and d2 >= 0.0 and d6 <= 0.0:
        w = d2 / (d2 - d6) if d2 != d6 else 0.0
        return a + w * ac, 1.0 - w, 0.0, w
    va = d3 * d6 - d5 * d4
    if va <= 0.0 and (d4 - d3) >= 0.0 and (d5 - d6) >= 0.0:
        den = (d4 - d3) + (d5 - d6)
        w = (d4 - d3) / den if den != 0.0 else 0.0
        return b + w * (c - b), 0.0, 1.0 - w, w
    den = va + vb + vc
    if den == 0.0:
        return a.copy(), 1.0, 0.0, 0.0
    v = vb / den
    w = vc / den
    return a + ab * v + ac * w, 1.0 - v - w, v, w


@njit(cache=True)
def snap_to_mesh(q, face, vertices, faces, vf_indptr, vf_indices):
    """Walk from ``face`` to the closest point of the mesh to q among neighbouring faces.

    Returns (point (3,), face, barycentric (3,)).
    """
    best_face = face
    best_pt = np.empty(3)
    bary = np.empty(3)
    # most moves are small: when q projects inside its own face, that is the answer
    pt, u, vv, w = closest_on_triangle(q, vertices[faces[face, 0]], vertices[faces[face, 1]], vertices[faces[face, 2]])
    if u > 1e-9 and vv > 1e-9 and w > 1e-9:
        best_pt[:] = pt
        bary[0] = u
        bary[1] = vv
        bary[2] = w
        return best_pt, face, bary
    best_d = np.inf
    for _ in range(6):
        start = best_face
        for k in range(3):
            v = faces[start, k]
            for s in range(vf_indptr[v], vf_indptr[v + 1]):
                f = vf_indices[s]
                pt, u, vv, w = closest_on_triangle(q, vertices[faces[f, 0]], vertices[faces[f, 1]],
                                                   vertices[faces[f, 2]])
                d = 0.0
                for c in range(3):
                    d += (pt[c] - q[c]) ** 2
                if d < best_d or (d == best_d and f < best_face):
                    best_d = d
                    best_face = f
                    best_pt[:] = pt
                    bary[0] = u
                    bary[1] = vv
                    bary[2] = w
        if best_face == start:
            break
    return best_pt, best_face, bary


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
