"""A texture atlas of the head, made in a second: the scalp seen from a point inside the head, on the faces of a cube.

The scalp is star-shaped from a point inside the skull: every direction from there meets it once. So each triangle
takes the chart of the cube face its direction points to (top, left, right, front, back, and bottom where the mesh goes
that low), and its corners are projected onto that face from the centre (a gnomonic projection: straight lines stay
straight, the stretch is mild where the skin faces the centre). Six rectangles are packed into one image, with a
gutter around each. A triangle that is not seen from the centre (an ear's rim, the nose: another surface lies closer
along its direction) gets a white texel, so nothing baked on the scalp can show on it. A general-purpose
parametrisation (xatlas) took 275 s on the 260,000-triangle sample head; this takes well under one.

Splats (:mod:`scalp3d.kernels.bake`) are placed in every chart whose rectangle holds the dot's direction, with the
local metric of that chart on the skin, so a dot on a seam is drawn whole on both sides.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from scalp3d import config

#: (axis, sign) of each chart: +z top, then the four sides, -z bottom
_CHARTS = ((2, 1), (0, 1), (0, -1), (1, 1), (1, -1), (2, -1))
#: the two in-chart axes of each chart axis
_OTHER = {0: (1, 2), 1: (0, 2), 2: (0, 1)}


@dataclass
class Atlas:
    """A head split at chart seams with texture coordinates, and where each chart lies in the image.

    vertices, normals : (k,3) float64 (mm, scan axes); faces : (m,3) int64 (the head's faces, same order);
    uv : (k,2) float32 in [0,1], v = 0 at the image's bottom row (OpenGL); vertex_of : (k,) int64 the head's vertex
    each split vertex copies; width, height : the image's size in texels; texel_mm : the nominal texel size on the skin.
    """

    vertices: np.ndarray
    normals: np.ndarray
    faces: np.ndarray
    uv: np.ndarray
    vertex_of: np.ndarray
    width: int
    height: int
    texel_mm: float
    centre: np.ndarray
    rotation: np.ndarray
    #: per chart: (axis, sign, texels per unit of the gnomonic coordinates, u0, v0 of its rectangle's origin, x0, y0
    #: in the image, width, height in texels)
    charts: list
    #: (x, y) of the white texel that unseen triangles use
    white_xy: tuple
    #: (m,) int64 the chart of each of the head's faces (-1: the white texel)
    chart_of_face: np.ndarray = None
    #: (m,3) float64 the head's face centroids, scan axes (to carry the charts to another mesh of the same skin)
    centroids: np.ndarray = None

    @property
    def white_uv(self):
        """(u, v) texture coordinates (OpenGL) of the white texel."""
        return (self.white_xy[0] + 0.5) / self.width, 1.0 - (self.white_xy[1] + 0.5) / self.height

    def project(self, vertices, faces, vertex_normals) -> "Atlas":
        """The same texture on another mesh of the same skin (e.g. a coarser one for a file to share): each triangle
        takes the chart of the head's triangle nearest its centroid, its corners the chart's projection. The
        returned atlas's ``vertex_of`` is each split vertex's vertex in ``vertices``."""
        from scipy.spatial import cKDTree

        v = np.asarray(vertices, dtype=np.float64)
        f = np.asarray(faces, dtype=np.int64)
        _, near = cKDTree(self.centroids).query(v[f].mean(axis=1))
        chart_of = self.chart_of_face[near]
        p = (v - self.centre) @ self.rotation.T
        vertex_of, chart_v, new_faces = _split(f, chart_of)
        uv = np.empty((len(vertex_of), 2))
        uv[:] = self.white_xy
        by_index = {_CHARTS.index((a, s)): (a, s, k, u0, v0, x0, y0) for a, s, k, u0, v0, x0, y0, _, _ in self.charts}
        for ci, (a, s, k, u0, v0, x0, y0) in by_index.items():
            m = chart_v == ci
            if not m.any():
                continue
            g = _gnomonic(p[vertex_of[m]], a, s)
            uv[m, 0] = x0 + (g[:, 0] - u0) * k
            uv[m, 1] = y0 + (g[:, 1] - v0) * k
        uv_gl = np.column_stack([uv[:, 0] / self.width, 1.0 - uv[:, 1] / self.height]).astype(np.float32)
        return Atlas(vertices=v[vertex_of], normals=np.asarray(vertex_normals, dtype=np.float64)[vertex_of],
                     faces=new_faces, uv=uv_gl, vertex_of=vertex_of, width=self.width,
                     height=self.height, texel_mm=self.texel_mm, centre=self.centre, rotation=self.rotation,
                     charts=self.charts, white_xy=self.white_xy, chart_of_face=chart_of,
                     centroids=v[f].mean(axis=1))

    def splats(self, points, normals):
        """Where to draw dots at ``points`` (n,3) with skin ``normals`` (n,3), both scan axes: (index of the dot,
        texel xy (k,2), metric (k,3) g00 g01 g11 in mm^2 per texel^2), one row per chart the dot falls in."""
        p = (np.asarray(points, dtype=np.float64) - self.centre) @ self.rotation.T
        n = np.asarray(normals, dtype=np.float64) @ self.rotation.T
        t1 = np.cross(n, np.where(np.abs(n[:, :1]) < 0.9, [[1.0, 0.0, 0.0]], [[0.0, 1.0, 0.0]]))
        t1 /= np.linalg.norm(t1, axis=1, keepdims=True)
        t2 = np.cross(n, t1)
        idx, xy, met = [], [], []
        for axis, sign, k, u0, v0, x0, y0, w, h in self.charts:
            b, c = _OTHER[axis]
            pa = sign * p[:, axis]
            ok = pa > 1e-6
            u = np.where(ok, p[:, b] / np.where(ok, pa, 1.0), np.inf)
            v = np.where(ok, p[:, c] / np.where(ok, pa, 1.0), np.inf)
            x = x0 + (u - u0) * k
            y = y0 + (v - v0) * k
            margin = config.ATLAS_GUTTER_TEXELS / 2
            inside = ok & (x > x0 - margin) & (x < x0 + w + margin) & (y > y0 - margin) & (y < y0 + h + margin)
            if not inside.any():
                continue
            i = np.flatnonzero(inside)
            # d(x, y) / d(tangent mm): the gnomonic map's derivative along t1 and t2
            pa_i, pb, pc = pa[i], p[i, b], p[i, c]
            cols = []
            for t in (t1[i], t2[i]):
                ta = sign * t[:, axis]
                du = (t[:, b] * pa_i - pb * ta) / pa_i ** 2
                dv = (t[:, c] * pa_i - pc * ta) / pa_i ** 2
                cols.append(np.column_stack([du * k, dv * k]))
            A = np.stack(cols, axis=2)  # (k, 2 image axes, 2 tangent axes)
            AAt = A @ np.transpose(A, (0, 2, 1))
            det = AAt[:, 0, 0] * AAt[:, 1, 1] - AAt[:, 0, 1] ** 2
            good = det > 1e-12
            i, AAt, det = i[good], AAt[good], det[good]
            # G = (A A^T)^-1: mm^2 per texel^2
            g = np.column_stack([AAt[:, 1, 1] / det, -AAt[:, 0, 1] / det, AAt[:, 0, 0] / det])
            idx.append(i)
            xy.append(np.column_stack([x[i], y[i]]))
            met.append(g)
        if not idx:
            return np.zeros(0, np.int64), np.zeros((0, 2)), np.zeros((0, 3))
        return np.concatenate(idx), np.concatenate(xy), np.concatenate(met)


def make_atlas(vertices, faces, vertex_normals, frame, *, texel_mm=None, max_side=None, textured=None) -> Atlas:
    """The cube-chart atlas of a head (see the module docstring).

    vertices : (n,3) float64 mm; faces : (m,3) int64; vertex_normals : (n,3); frame : (origin (3,), R (3,3)) the head
    frame (rows x right, y forward, z up). ``texel_mm`` (default ``config.PREVIEW_TEXEL_MM``) is the texel size on the
    skin at each chart's typical distance; ``max_side`` caps the image's larger side (texels grow to fit);
    ``textured`` (m,) bool: the triangles that may carry pigment (the rest get the white texel: a smaller image).
    """
    texel_mm = float(texel_mm or config.PREVIEW_TEXEL_MM)
    max_side = int(max_side or config.PREVIEW_TEXTURE_MAX_PX)
    v = np.asarray(vertices, dtype=np.float64)
    f = np.asarray(faces, dtype=np.int64)
    origin, R = frame
    centre = np.asarray(origin, dtype=np.float64) + config.ATLAS_CENTRE_UP_MM * np.asarray(R)[2]
    p = (v - centre) @ np.asarray(R).T
    seen = _seen_from_centre(p, f)
    # only the scalp and what lies around it get texels: the face and the neck are never treated
    fp = ((v - origin) @ np.asarray(R).T)[f].mean(axis=1)
    seen &= (fp[:, 2] > config.ATLAS_Z_MIN_MM) & ~((fp[:, 1] > config.ATLAS_FACE_AHEAD_MM)
                                                    & (fp[:, 2] < config.ATLAS_FACE_BELOW_MM))
    if textured is not None:
        seen &= np.asarray(textured, dtype=bool)
    d = p[f].mean(axis=1)
    ax = np.argmax(np.abs(d), axis=1)
    sg = np.sign(d[np.arange(len(f)), ax]).astype(np.int64)
    chart_of = np.full(len(f), -1, dtype=np.int64)
    for ci, (a, s) in enumerate(_CHARTS):
        chart_of[seen & (ax == a) & (sg == s)] = ci
    # split vertices: one copy per (vertex, chart) pair used; unseen faces share one copy per vertex (chart -1)
    vertex_of, chart_v, new_faces = _split(f, chart_of)
    # gnomonic coordinates per split vertex in its chart
    uvg = np.zeros((len(vertex_of), 2))
    rects = []
    for ci, (a, s) in enumerate(_CHARTS):
        m = chart_v == ci
        if not m.any():
            continue
        q = p[vertex_of[m]]
        uvg[m] = _gnomonic(q, a, s)
        scale = float(np.median(s * q[:, a])) / texel_mm  # texels per gnomonic unit
        lo, hi = uvg[m].min(axis=0), uvg[m].max(axis=0)
        rects.append([ci, scale, lo, hi])
    # pack (shrinking the texel until the image fits max_side)
    gutter = config.ATLAS_GUTTER_TEXELS
    shrink = 1.0
    while True:
        sizes = [(int(np.ceil((hi[0] - lo[0]) * sc * shrink)) + 1, int(np.ceil((hi[1] - lo[1]) * sc * shrink)) + 1)
                 for _, sc, lo, hi in rects]
        places, width, height = _shelf_pack(sizes + [(4, 4)], gutter)
        if max(width, height) <= max_side:
            break
        shrink *= 0.9 * max_side / max(width, height)
    charts = []
    uv = np.zeros((len(vertex_of), 2), dtype=np.float64)
    for (ci, sc, lo, hi), (x0, y0), (w, h) in zip(rects, places, sizes):
        a, s = _CHARTS[ci]
        k = sc * shrink
        m = chart_v == ci
        uv[m, 0] = x0 + (uvg[m, 0] - lo[0]) * k
        uv[m, 1] = y0 + (uvg[m, 1] - lo[1]) * k
        charts.append((a, s, k, float(lo[0]), float(lo[1]), x0, y0, w, h))
    wx, wy = places[-1]
    white_xy = (wx + 2, wy + 2)
    uv[chart_v < 0] = white_xy
    uv_gl = np.column_stack([uv[:, 0] / width, 1.0 - uv[:, 1] / height]).astype(np.float32)
    return Atlas(vertices=v[vertex_of], normals=np.asarray(vertex_normals, dtype=np.float64)[vertex_of],
                 faces=new_faces, uv=uv_gl, vertex_of=vertex_of, width=width, height=height,
                 texel_mm=texel_mm / shrink, centre=centre, rotation=np.asarray(R, dtype=np.float64), charts=charts,
                 white_xy=white_xy, chart_of_face=chart_of, centroids=v[f].mean(axis=1))


def _split(f, chart_of):
    """Split vertices: one copy per (vertex, chart) pair the faces use (chart -1: one shared white copy). Returns
    (vertex_of (k,) the original vertex of each copy, chart_v (k,) its chart, faces (m,3) on the copies)."""
    key = f * (len(_CHARTS) + 1) + (chart_of[:, None] + 1)
    uniq, inv = np.unique(key.ravel(), return_inverse=True)
    return uniq // (len(_CHARTS) + 1), uniq % (len(_CHARTS) + 1) - 1, inv.reshape(-1, 3).astype(np.int64)


def _gnomonic(q, axis, sign):
    """(k,2) coordinates of points ``q`` (k,3, from the centre, head frame) projected onto the cube face (axis, sign)
    from the centre (a point nearly level with the face is held at a small positive height)."""
    b, c = _OTHER[axis]
    pa = np.maximum(sign * q[:, axis], 1e-3 * np.linalg.norm(q, axis=1))
    return np.column_stack([q[:, b] / pa, q[:, c] / pa])


def _seen_from_centre(p, f):
    """(m,) bool: faces not hidden from the centre by a closer surface along their direction (ears' rims, the nose
    hide what lies behind them, or lie over another surface): a face is unseen when, in its 1-degree direction bin,
    some vertex lies more than ``config.ATLAS_OCCLUSION_MM`` closer to the centre."""
    r = np.linalg.norm(p, axis=1)
    bins = config.ATLAS_DIRECTION_BINS
    theta = np.arccos(np.clip(p[:, 2] / np.maximum(r, 1e-9), -1, 1))
    phi = np.arctan2(p[:, 1], p[:, 0])
    it = np.minimum((theta / np.pi * bins).astype(np.int64), bins - 1)
    ip = np.minimum(((phi + np.pi) / (2 * np.pi) * 2 * bins).astype(np.int64), 2 * bins - 1)
    cell = it * 2 * bins + ip
    nearest = np.full(bins * 2 * bins, np.inf)
    np.minimum.at(nearest, cell, r)
    # a face's own bin and its corners' bins: the closest surface in any of them
    fr = r[f].mean(axis=1)
    closest = nearest[cell[f]].min(axis=1)
    return fr <= closest + config.ATLAS_OCCLUSION_MM


def _shelf_pack(sizes, gutter):
    """Rectangles (w, h) packed in rows, tallest first: their (x, y) origins and the image's width and height."""
    order = sorted(range(len(sizes)), key=lambda i: -sizes[i][1])
    total = sum((w + gutter) * (h + gutter) for w, h in sizes)
    row_max = max(int(np.sqrt(total) * 1.3), max(w for w, _ in sizes) + 2 * gutter)
    places = [None] * len(sizes)
    x = y = gutter
    row_h = 0
    width = 0
    for i in order:
        w, h = sizes[i]
        if x + w + gutter > row_max and x > gutter:
            x = gutter
            y += row_h + gutter
            row_h = 0
        places[i] = (x, y)
        x += w + gutter
        row_h = max(row_h, h)
        width = max(width, x)
    return places, width, y + row_h + gutter
