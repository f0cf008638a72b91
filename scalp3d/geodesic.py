"""Distances along the skin: the heat method (Crane, Weischedel and Wardetzky 2013) on the head mesh.

Build :class:`GeodesicSolver` once per head (it factorizes two sparse matrices), then ask for the distance from any
set of source vertices to every vertex. Used for the hairline's height along the skin, transition bands, scar margins
and reserved regions: never the straight-line distance through the head.
"""
from __future__ import annotations

import numpy as np

from . import config


def _cotangents(v, f):
    """cot of the angle at each corner (m,3) and face areas (m,)."""
    out = np.empty((len(f), 3))
    for k in range(3):
        a = v[f[:, (k + 1) % 3]] - v[f[:, k]]
        b = v[f[:, (k + 2) % 3]] - v[f[:, k]]
        cross = np.linalg.norm(np.cross(a, b), axis=1)
        out[:, k] = (a * b).sum(axis=1) / np.maximum(cross, 1e-12)
    area = 0.5 * np.linalg.norm(np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]]), axis=1)
    return out, area


class GeodesicSolver:
    """Heat-method geodesic distances on a triangle mesh (vertices (n,3) mm, faces (m,3))."""

    def __init__(self, vertices, faces, t_factor: float = 1.0):
        import scipy.sparse as sp
        from scipy.sparse.linalg import splu

        def factorized(A):
            # a symmetric ordering: about 2x faster than the default on mesh Laplacians
            return splu(A, permc_spec="MMD_AT_PLUS_A", options=dict(SymmetricMode=True)).solve

        v = np.asarray(vertices, dtype=np.float64)
        f = np.asarray(faces, dtype=np.int64)
        n = len(v)
        cot, area = _cotangents(v, f)
        # the Laplacian and the (barycentric) lumped mass, built here rather than by gpytoolbox's
        # cotangent_laplacian and massmatrix(type="barycentric"): the same matrices up to rounding (2.7e-15 on
        # 569,027 of L's 909,890 entries and 8.9e-16 on 43,477 of 129,986 masses on the sample head), but that
        # rounding changes the demo's session JSONs and summary; gpytoolbox also gives inf and nan on a degenerate
        # triangle, where the clamp in _cotangents keeps the weights finite; and the cotangents are needed here anyway
        # for the divergence. (gpytoolbox's default mass, "voronoi", differs by up to 18 percent.)
        rows, cols, vals = [], [], []
        for k in range(3):
            i, j = f[:, (k + 1) % 3], f[:, (k + 2) % 3]  # the edge opposite corner k
            w = 0.5 * cot[:, k]
            rows += [i, j, i, j]
            cols += [j, i, i, j]
            vals += [-w, -w, w, w]
        L = sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n))
        mass = np.zeros(n)
        for k in range(3):
            np.add.at(mass, f[:, k], area / 3.0)
        mass = np.maximum(mass, 1e-12)
        h = np.linalg.norm(v[f[:, 1]] - v[f[:, 0]], axis=1).mean()
        t = t_factor * h * h
        eps = 1e-8 * (mass.mean())
        self._heat = factorized((sp.diags(mass) + t * L).tocsc())
        self._poisson = factorized((L + sp.diags(np.full(n, eps))).tocsc())
        self.v, self.f, self.cot, self.area, self.mass, self.n = v, f, cot, area, mass, n
        fn = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
        self.fn = fn / np.maximum(np.linalg.norm(fn, axis=1, keepdims=True), 1e-300)

    def distance(self, sources) -> np.ndarray:
        """Distance along the surface (n,) in mm from the nearest of ``sources`` (vertex indices)."""
        src = np.atleast_1d(np.asarray(sources, dtype=np.int64))
        v, f = self.v, self.f
        delta = np.zeros(self.n)
        delta[src] = 1.0
        u = self._heat(delta * self.mass)
        # normalised negative gradient per face
        grad = np.zeros((len(f), 3))
        for k in range(3):
            e = v[f[:, (k + 2) % 3]] - v[f[:, (k + 1) % 3]]  # edge opposite corner k
            grad += u[f[:, k], None] * np.cross(self.fn, e)
        grad /= np.maximum(2 * self.area[:, None], 1e-300)
        X = -grad / np.maximum(np.linalg.norm(grad, axis=1, keepdims=True), 1e-300)
        # integrated divergence per vertex
        div = np.zeros(self.n)
        for k in range(3):
            i, j, l = f[:, k], f[:, (k + 1) % 3], f[:, (k + 2) % 3]
            e1 = v[j] - v[i]
            e2 = v[l] - v[i]
            c1 = self.cot[:, (k + 2) % 3]  # angle opposite e1
            c2 = self.cot[:, (k + 1) % 3]  # angle opposite e2
            np.add.at(div, i, 0.5 * (c1 * (e1 * X).sum(axis=1) + c2 * (e2 * X).sum(axis=1)))
        phi = self._poisson(-div)
        phi -= phi[src].mean()
        if np.median(phi) < 0:
            phi = -phi
        if len(src) == 1:
            return np.maximum(phi - phi[src].max(), 0.0)
        return np.maximum(phi - self._source_offsets(phi, src), 0.0)

    def _source_offsets(self, phi, src) -> np.ndarray:
        """(n,) the level ``phi`` has at the sources near each vertex: the heat method leaves each of several sources
        its own small offset (along a scar's line, its ends sit 2-3 mm above its middle). Taking the highest for all
        put a plateau of zero distance around the whole line: a scar 3 mm wide was treated 9 mm wide, its margin
        shifted 3 mm into the hair, and a hairline's transition band started 1 mm late. Each vertex now takes the
        offsets of its config.GEODESIC_OFFSET_SOURCES nearest sources, weighted by inverse square distance (each
        source its own: distance 0 there); within 20 mm of the fut-scar example's line their median then lies within
        1 mm above the straight distance (the skin's curve and the coarse mesh's cells), where the highest offset
        left it 3 mm short."""
        from scipy.spatial import cKDTree

        k = min(config.GEODESIC_OFFSET_SOURCES, len(src))
        d, j = cKDTree(self.v[src]).query(self.v, k=k)
        d, j = d.reshape(len(d), -1), j.reshape(len(j), -1)
        w = 1.0 / np.maximum(d, 1e-9) ** 2
        return (w * phi[src][j]).sum(axis=1) / w.sum(axis=1)


#: HeadGeodesics.of's kept solvers, by the sha1 of their mesh's bytes, the most recent last
_CACHE: dict = {}


class HeadGeodesics:
    """Geodesic distances for a (possibly dense) head mesh: above ``max_faces`` triangles the heat method runs on a
    copy simplified by vertex clustering (``voxel_mm`` cells: plenty for bands and margins of centimetres, errors of
    about a cell) and the distances are carried back to every vertex from its nearest simplified vertex."""

    def __init__(self, vertices, faces, max_faces: int = config.GEODESIC_MAX_FACES,
                 voxel_mm: float = config.GEODESIC_VOXEL_MM):
        from scipy.spatial import cKDTree

        v = np.asarray(vertices, dtype=np.float64)
        f = np.asarray(faces, dtype=np.int64)
        if len(f) > max_faces:
            import open3d as o3d

            mesh = o3d.geometry.TriangleMesh(o3d.utility.Vector3dVector(v), o3d.utility.Vector3iVector(f))
            coarse = mesh.simplify_vertex_clustering(voxel_size=voxel_mm)
            coarse.remove_degenerate_triangles()
            coarse.remove_duplicated_triangles()
            coarse.remove_unreferenced_vertices()
            cv = np.asarray(coarse.vertices, dtype=np.float64)
            cf = np.asarray(coarse.triangles, dtype=np.int64)
            area = 0.5 * np.linalg.norm(np.cross(cv[cf[:, 1]] - cv[cf[:, 0]], cv[cf[:, 2]] - cv[cf[:, 0]]), axis=1)
            cf = cf[area > 1e-10]
        else:
            cv, cf = v, f
        self.solver = GeodesicSolver(cv, cf)
        self._to_coarse = cKDTree(cv).query(v)[1]
        self.n = len(v)
        self.vertices = v
        self._tree = None
        self._distances: dict = {}  # the last few distance fields asked for, by their sources (most recent last)

    @classmethod
    def of(cls, vertices, faces) -> HeadGeodesics:
        """The solver of this mesh, kept for the next call on the same mesh (the same bytes): its factorisation is
        80 % of a design field's time on the sample head (0.84 of 1.04 s), and a design change, a revision or a
        picture of the same head needs it again. The last ``config.GEODESIC_CACHE`` meshes are kept."""
        import hashlib

        v = np.ascontiguousarray(vertices, dtype=np.float64)
        f = np.ascontiguousarray(faces, dtype=np.int64)
        key = hashlib.sha1(v.tobytes() + b"|" + f.tobytes()).hexdigest()
        hit = _CACHE.pop(key, None)
        if hit is None:
            hit = cls(v, f)
        _CACHE[key] = hit  # most recent last
        while len(_CACHE) > config.GEODESIC_CACHE:
            _CACHE.pop(next(iter(_CACHE)))
        return hit

    def vertex_tree(self):
        """A nearest-vertex tree (scipy cKDTree) of the full mesh's vertices, built once (35 ms on the sample head, a
        tenth of a design change's field)."""
        if self._tree is None:
            from scipy.spatial import cKDTree

            self._tree = cKDTree(self.vertices)
        return self._tree

    def distance(self, sources) -> np.ndarray:
        """Distance along the skin (n,) in mm from the nearest of the full mesh's vertices ``sources``."""
        src = np.unique(self._to_coarse[np.atleast_1d(np.asarray(sources, dtype=np.int64))])
        # a design change asks again for most of the same fields (from the glabella, from an unmoved reserved
        # region...): the last config.GEODESIC_DISTANCE_CACHE are kept, so only the changed ones are solved
        key = src.tobytes()
        d = self._distances.pop(key, None)
        if d is None:
            d = self.solver.distance(src)
        self._distances[key] = d
        while len(self._distances) > config.GEODESIC_DISTANCE_CACHE:
            self._distances.pop(next(iter(self._distances)))
        return d[self._to_coarse]
