"""Triangle-mesh geometry kernels on plain arrays: areas, barycentric interpolation of points and normals, vertex
neighbours.

Inputs are C-contiguous float64 vertices (n,3) and int64 faces (m,3); kernels trust them (validated upstream).
"""
import numpy as np
from numba import njit

from .chunks import run_chunks


@njit(cache=True, nogil=True, _nrt=False)
def _area_rows(lo, hi, vertices, faces, out):
    for f in range(lo, hi):
        a = faces[f, 0]
        b = faces[f, 1]
        c = faces[f, 2]
        ux = vertices[b, 0] - vertices[a, 0]
        uy = vertices[b, 1] - vertices[a, 1]
        uz = vertices[b, 2] - vertices[a, 2]
        vx = vertices[c, 0] - vertices[a, 0]
        vy = vertices[c, 1] - vertices[a, 1]
        vz = vertices[c, 2] - vertices[a, 2]
        cx = uy * vz - uz * vy
        cy = uz * vx - ux * vz
        cz = ux * vy - uy * vx
        out[f] = 0.5 * np.sqrt(cx * cx + cy * cy + cz * cz)


def triangle_areas(vertices, faces):
    """Area of every triangle.

    Parameters
    ----------
    vertices : (n,3) float64
    faces : (m,3) int64

    Returns
    -------
    areas : (m,) float64, in the square of the vertices' unit
    """
    out = np.empty(faces.shape[0])
    run_chunks(faces.shape[0], _area_rows, vertices, faces, out)
    return out


@njit(cache=True, nogil=True, _nrt=False)
def _interpolate_rows(lo, hi, vertices, vertex_normals, faces, face_ids, bary, pts, nrm):
    for i in range(lo, hi):
        f = face_ids[i]
        for d in range(3):
            p = 0.0
            q = 0.0
            for j in range(3):
                v = faces[f, j]
                p += bary[i, j] * vertices[v, d]
                q += bary[i, j] * vertex_normals[v, d]
            pts[i, d] = p
            nrm[i, d] = q
        s = np.sqrt(nrm[i, 0] ** 2 + nrm[i, 1] ** 2 + nrm[i, 2] ** 2)
        if s > 0.0:
            for d in range(3):
                nrm[i, d] /= s


def interpolate_on_faces(vertices, vertex_normals, faces, face_ids, bary):
    """Points and unit normals at barycentric coordinates on faces.

    Parameters
    ----------
    vertices, vertex_normals : (n,3) float64
    faces : (m,3) int64
    face_ids : (k,) int64
    bary : (k,3) float64, rows sum to 1

    Returns
    -------
    points : (k,3) float64
    normals : (k,3) float64, unit length (smooth, from the vertex normals)
    """
    k = face_ids.shape[0]
    pts = np.empty((k, 3))
    nrm = np.empty((k, 3))
    run_chunks(k, _interpolate_rows, vertices, vertex_normals, faces, face_ids, bary, pts, nrm)
    return pts, nrm


def vertex_neighbours(n_vertices, faces):
    """Vertex -> neighbouring vertices as CSR (indptr (n+1,), indices), from the mesh edges (numpy).

    Parameters
    ----------
    n_vertices : int
    faces : (m,3) int

    Returns
    -------
    indptr : (n_vertices+1,) int64
    indices : (2 * edges,) int64, each vertex's neighbours in increasing order
    """
    f = np.asarray(faces, dtype=np.int64)
    e = np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])
    e = np.concatenate([e, e[:, ::-1]])
    e = np.unique(e, axis=0)
    counts = np.bincount(e[:, 0], minlength=n_vertices)
    indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    return indptr, np.ascontiguousarray(e[:, 1])
