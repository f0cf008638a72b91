"""Reference surfaces for tests and benchmarks: the ellipsoid scalp cap every placement figure is measured on."""
from __future__ import annotations

import numpy as np


def geodesic_sphere(splits: int):
    """Unit sphere from an icosahedron whose faces are each split ``splits`` x ``splits`` (20 splits^2 triangles).

    Returns (vertices (n,3) float64, faces (m,3) int64), outward winding.
    """
    import trimesh

    ico = trimesh.creation.icosahedron()
    n = int(splits)
    ii, jj = np.meshgrid(np.arange(n + 1), np.arange(n + 1), indexing="ij")
    keep = ii + jj <= n
    ii, jj = ii[keep], jj[keep]
    index = -np.ones((n + 1, n + 1), dtype=np.int64)
    index[ii, jj] = np.arange(len(ii))
    tris = []
    for i in range(n):
        for j in range(n - i):
            tris.append((index[i, j], index[i + 1, j], index[i, j + 1]))
            if i + j + 1 < n:
                tris.append((index[i + 1, j], index[i + 1, j + 1], index[i, j + 1]))
    tris = np.array(tris, dtype=np.int64)
    verts, faces = [], []
    for k, (a, b, c) in enumerate(ico.vertices[ico.faces]):
        p = a + np.outer(ii / n, b - a) + np.outer(jj / n, c - a)
        faces.append(tris + k * len(p))
        verts.append(p)
    v = np.vstack(verts)
    f = np.vstack(faces)
    mesh = trimesh.Trimesh(v, f, process=False)
    mesh.merge_vertices(digits_vertex=9)
    v = np.asarray(mesh.vertices, dtype=np.float64)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    return v, np.asarray(mesh.faces, dtype=np.int64)


def ellipsoid_cap(splits: int = 160, semi_axes_mm=(95.0, 80.0, 110.0)):
    """The benchmark cap: the geodesic sphere scaled to an ellipsoid, keeping faces with all three vertices at z > 0.

    With the defaults: 254,698 triangles, 56,231 mm2. Returns (vertices mm, faces), unused vertices dropped.
    """
    v, f = geodesic_sphere(splits)
    v = v * np.asarray(semi_axes_mm, dtype=np.float64)
    f = f[(v[f][:, :, 2] > 0).all(axis=1)]
    used = np.unique(f)
    remap = -np.ones(len(v), dtype=np.int64)
    remap[used] = np.arange(len(used))
    return np.ascontiguousarray(v[used]), np.ascontiguousarray(remap[f])
