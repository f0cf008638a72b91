"""Per-vertex principal curvatures of a triangle mesh (numba).

At each vertex, the shape operator S (2x2, symmetric) is fitted by least squares to the 1-ring: for every edge e to a
neighbour, the change of the unit normal dn satisfies dn = S e in the tangent plane. Its eigenvalues are the principal
curvatures k1 >= k2 (1/mm; positive where the surface bends away from its normal, as on a sphere with outward
normals: k = 1/R).
"""
import numpy as np
from numba import njit, prange


@njit(parallel=True, cache=True)
def principal_curvatures(vertices, vertex_normals, nb_indptr, nb_indices):
    """Principal curvatures (n,2) [k1, k2] with k1 >= k2, from the vertex neighbour lists (CSR).

    Vertices with fewer than two neighbours get 0.
    """
    n = vertices.shape[0]
    out = np.zeros((n, 2))
    for i in prange(n):
        nx, ny, nz = vertex_normals[i, 0], vertex_normals[i, 1], vertex_normals[i, 2]
        # tangent basis (t1, t2)
        if abs(nx) < 0.9:
            ax, ay, az = 1.0, 0.0, 0.0
        else:
            ax, ay, az = 0.0, 1.0, 0.0
        d = ax * nx + ay * ny + az * nz
        t1x, t1y, t1z = ax - d * nx, ay - d * ny, az - d * nz
        s = np.sqrt(t1x * t1x + t1y * t1y + t1z * t1z)
        t1x, t1y, t1z = t1x / s, t1y / s, t1z / s
        t2x = ny * t1z - nz * t1y
        t2y = nz * t1x - nx * t1z
        t2z = nx * t1y - ny * t1x
        # normal equations for S = [[a, b], [b, c]]: minimise sum |S e - dn|^2
        m00 = m01 = m02 = m11 = m12 = m22 = 0.0
        r0 = r1 = r2 = 0.0
        cnt = 0
        for k in range(nb_indptr[i], nb_indptr[i + 1]):
            j = nb_indices[k]
            ex = vertices[j, 0] - vertices[i, 0]
            ey = vertices[j, 1] - vertices[i, 1]
            ez = vertices[j, 2] - vertices[i, 2]
            fx = vertex_normals[j, 0] - nx
            fy = vertex_normals[j, 1] - ny
            fz = vertex_normals[j, 2] - nz
            u = ex * t1x + ey * t1y + ez * t1z
            v = ex * t2x + ey * t2y + ez * t2z
            du = fx * t1x + fy * t1y + fz * t1z
            dv = fx * t2x + fy * t2y + fz * t2z
            # rows: [u, v, 0] . [a, b, c] = du ; [0, u, v] . [a, b, c] = dv
            m00 += u * u
            m01 += u * v
            m11 += v * v + u * u
            m12 += u * v
            m22 += v * v
            r0 += u * du
            r1 += v * du + u * dv
            r2 += v * dv
            cnt += 1
        if cnt < 2:
            continue
        M = np.array([[m00, m01, m02], [m01, m11, m12], [m02, m12, m22]])
        rhs = np.array([r0, r1, r2])
        det = np.linalg.det(M)
        if abs(det) < 1e-30:
            continue
        a, b, c = np.linalg.solve(M, rhs)
        tr = 0.5 * (a + c)
        disc = np.sqrt(max(0.0, 0.25 * (a - c) ** 2 + b * b))
        out[i, 0] = tr + disc
        out[i, 1] = tr - disc
    return out


def vertex_neighbours(n_vertices, faces):
    """Vertex -> neighbouring vertices as CSR (indptr (n+1,), indices), from the mesh edges (numpy)."""
    f = np.asarray(faces, dtype=np.int64)
    e = np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])
    e = np.concatenate([e, e[:, ::-1]])
    e = np.unique(e, axis=0)
    counts = np.bincount(e[:, 0], minlength=n_vertices)
    indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    return indptr, np.ascontiguousarray(e[:, 1])
