"""Distances from points to the head surface (open3d's ray-casting scene), for the needle's safety checks."""
from __future__ import annotations

import numpy as np

from . import config
from .types import Head


class SurfaceQuery:
    """Closest-point queries against a head mesh (mm). Build once per head, query many times."""

    def __init__(self, head: Head):
        import open3d as o3d

        self._o3d = o3d
        self.scene = o3d.t.geometry.RaycastingScene()
        self.scene.add_triangles(o3d.core.Tensor(np.ascontiguousarray(head.vertices, dtype=np.float32)),
                                 o3d.core.Tensor(np.ascontiguousarray(head.faces, dtype=np.uint32)))
        self.head = head

    def distance(self, points) -> np.ndarray:
        """Unsigned distance (n,) from each point (n,3) to the surface."""
        p = np.ascontiguousarray(np.asarray(points, dtype=np.float32).reshape(-1, 3))
        if len(p) == 0:
            return np.zeros(0)
        return self.scene.compute_distance(self._o3d.core.Tensor(p)).numpy().astype(np.float64)

    def closest(self, points):
        """(closest points (n,3), smooth unit normals there (n,3), face ids (n,)).

        The normal is the barycentric blend of the face's vertex normals: the skin the scan samples is smooth, and a
        coarse scan's flat facets would otherwise tilt the reference by several degrees at every edge.
        """
        p = np.ascontiguousarray(np.asarray(points, dtype=np.float32).reshape(-1, 3))
        ans = self.scene.compute_closest_points(self._o3d.core.Tensor(p))
        q = ans["points"].numpy().astype(np.float64)
        fid = ans["primitive_ids"].numpy().astype(np.int64)
        uv = ans["primitive_uvs"].numpy().astype(np.float64)
        f = self.head.faces[fid]
        bary = np.column_stack([1.0 - uv[:, 0] - uv[:, 1], uv[:, 0], uv[:, 1]])
        n = (bary[:, :, None] * self.head.vertex_normals[f]).sum(axis=1)
        n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-300)
        return q, n, fid

    def segments_min_distance(self, starts, ends, step_mm, below_mm=None) -> np.ndarray:
        """Smallest distance to the surface along each segment (k,), sampled every ``step_mm`` or finer.

        With ``below_mm`` (the threshold the caller tests against), a segment whose two end distances d_a, d_b prove
        it stays at least ``below_mm`` away (the distance changes no faster than the point moves, so nowhere on a
        segment of length L is it under (d_a + d_b - L) / 2; a margin of LIPSCHITZ_MARGIN_MM covers the float32
        queries) is not sampled inside: its value is min(d_a, d_b), at or above ``below_mm`` like its sampled minimum.
        Every other segment is sampled as without it, so ``value < below_mm`` is decided the same either way."""
        starts = np.asarray(starts, dtype=np.float64).reshape(-1, 3)
        ends = np.asarray(ends, dtype=np.float64).reshape(-1, 3)
        if len(starts) == 0:
            return np.zeros(0)
        length = np.linalg.norm(ends - starts, axis=1)
        out = np.full(len(starts), np.inf)
        rows = np.arange(len(starts))
        if below_mm is not None:
            d_ends = self.distance(np.concatenate([starts, ends]))
            da, db = d_ends[:len(starts)], d_ends[len(starts):]
            sure = 0.5 * (da + db - length) >= below_mm + config.LIPSCHITZ_MARGIN_MM
            out[sure] = np.minimum(da, db)[sure]
            rows = np.flatnonzero(~sure)
            if not len(rows):
                return out
            starts, ends, length = starts[rows], ends[rows], length[rows]
        n = np.maximum(np.ceil(length / step_mm).astype(np.int64), 1) + 1
        seg = np.repeat(np.arange(len(starts)), n)
        first = np.concatenate([[0], np.cumsum(n)[:-1]])
        t = (np.arange(n.sum()) - np.repeat(first, n)) / np.repeat(n - 1, n)
        pts = starts[seg] + t[:, None] * (ends - starts)[seg]
        d = self.distance(pts)
        sampled = np.full(len(starts), np.inf)
        np.minimum.at(sampled, seg, d)
        out[rows] = sampled
        return out
