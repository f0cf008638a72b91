"""Putting dots back onto a triangle mesh (numba), for the relaxation sweeps of :mod:`scalp3d.kernels.multiclass`.

:func:`closest_xyz` is the closest point of one triangle; :func:`snap_xyz` walks from a dot's face to the closest
point among the faces around it (the sweeps call it when a move leaves the dot's own face); both work on scalars so
that the parallel sweeps never allocate. :func:`snap_points` runs the walk for many points at once (one per thread;
its CUDA twin is :func:`scalp3d.kernels.cuda.snap_points_cuda`). :func:`vertex_faces` builds the vertex -> faces table
the walk uses.
"""
import numpy as np
from numba import njit

from .chunks import run_chunks


@njit(cache=True)
def closest_xyz(px, py, pz, ax, ay, az, bx, by, bz, cx, cy, cz):
    """Closest point to p on triangle abc and its barycentric coordinates (Ericson, Real-Time Collision Detection),
    on scalars (allocation-free: it runs inside the parallel sweeps): returns (x, y, z, u, v, w)."""
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
def snap_xyz(qx, qy, qz, face, vertices, faces, vf_indptr, vf_indices):
    """Walk from ``face`` to the closest point of the mesh to q among neighbouring faces, on scalars
    (allocation-free: it runs inside the parallel sweeps): returns (x, y, z, face, u, v, w)."""
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


@njit(cache=True, nogil=True, _nrt=False)
def _snap_rows(lo, hi, points, face_ids, vertices, faces, vf_indptr, vf_indices, snapped, face, bary):
    for i in range(lo, hi):
        x, y, z, fi, u, v, w = snap_xyz(points[i, 0], points[i, 1], points[i, 2], face_ids[i], vertices, faces,
                                        vf_indptr, vf_indices)
        snapped[i, 0] = x
        snapped[i, 1] = y
        snapped[i, 2] = z
        face[i] = fi
        bary[i, 0] = u
        bary[i, 1] = v
        bary[i, 2] = w


def snap_points(points, face_ids, vertices, faces, vf_indptr, vf_indices):
    """Every point put back onto the mesh by :func:`snap_xyz`, walking from its face (each point alone: the result
    does not depend on the thread count).

    Parameters
    ----------
    points : (k,3) float64, mm
    face_ids : (k,) int64, the face each walk starts from
    vertices : (V,3) float64; faces : (F,3) int64
    vf_indptr, vf_indices : the vertex -> faces CSR (:func:`vertex_faces`)

    Returns
    -------
    snapped : (k,3) float64, the closest point found; face : (k,) int64, its face; bary : (k,3) float64, its
    barycentric coordinates on that face
    """
    k = points.shape[0]
    snapped = np.empty((k, 3))
    face = np.empty(k, dtype=np.int64)
    bary = np.empty((k, 3))
    run_chunks(k, _snap_rows, points, face_ids, vertices, faces, vf_indptr, vf_indices, snapped, face, bary)
    return snapped, face, bary


def vertex_faces(n_vertices, faces):
    """Vertex -> incident faces as CSR (indptr (V+1,), indices) with numpy (no numba needed)."""
    f = np.asarray(faces, dtype=np.int64)
    flat = f.ravel()
    order = np.argsort(flat, kind="stable")
    indices = (order // 3).astype(np.int64)
    counts = np.bincount(flat, minlength=n_vertices)
    indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    return indptr, indices
