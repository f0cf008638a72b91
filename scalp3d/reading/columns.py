"""Array helpers the readers share: colours of any dtype to uint8, polygons to triangles, and the x y z, colour and
normal columns picked by name from a PLY or PCD element. Pure numpy; no files.
"""
from __future__ import annotations

import numpy as np


def _to_uint8_colors(c) -> np.ndarray:
    """(n,3) colours of any numeric dtype to uint8: floats in 0-1 are scaled by 255, 16-bit ones by 1/257."""
    c = np.asarray(c)
    if c.dtype.kind == "f":
        c = np.nan_to_num(c.astype(np.float64), nan=0.0)
        if c.size and c.max() <= 1.0:
            c = c * 255.0
        return np.clip(np.rint(c), 0, 255).astype(np.uint8)
    if c.dtype.itemsize > 1 and c.size and c.max() > 255:
        return np.clip(np.rint(c / 257.0), 0, 255).astype(np.uint8)
    return np.clip(c, 0, 255).astype(np.uint8)


def _fan(polys: np.ndarray) -> np.ndarray:
    """(m,k) polygons (k >= 3) as (m*(k-2),3) triangles fanned from each polygon's first corner."""
    k = polys.shape[1]
    if k == 3:
        return polys
    tris = [polys[:, [0, i, i + 1]] for i in range(1, k - 1)]
    return np.stack(tris, axis=1).reshape(-1, 3)


def _polygons_to_triangles(rows) -> np.ndarray:
    """A list of 1-D index arrays (polygons of any size) as (m,3) int64 triangles."""
    by_len = {}
    for r in rows:
        if len(r) >= 3:
            by_len.setdefault(len(r), []).append(r)
    if not by_len:
        return np.zeros((0, 3), np.int64)
    return np.concatenate([_fan(np.asarray(v, dtype=np.int64)) for _, v in sorted(by_len.items())])


def _pick(names, *candidates):
    """The first tuple of property names all present in ``names``, or None."""
    for cand in candidates:
        if all(c in names for c in cand):
            return cand
    return None


_COLOR_NAMES = (("red", "green", "blue"), ("r", "g", "b"), ("diffuse_red", "diffuse_green", "diffuse_blue"))
_NORMAL_NAMES = (("nx", "ny", "nz"), ("normal_x", "normal_y", "normal_z"))


def _columns(get, names):
    """(x y z, colours or None, normals or None) from a column getter ``get(name) -> (n,)`` and the names present."""
    if not all(c in names for c in "xyz"):
        return None
    x = get("x")
    v = np.empty((len(x), 3), np.float64)
    v[:, 0], v[:, 1], v[:, 2] = x, get("y"), get("z")
    colors = normals = None
    cn = _pick(names, *_COLOR_NAMES)
    if cn is not None:
        cols = [get(n) for n in cn]
        dtype = np.result_type(*[c.dtype for c in cols])
        colors = _to_uint8_colors(np.column_stack(cols).astype(dtype))
    nn = _pick(names, *_NORMAL_NAMES)
    if nn is not None:
        normals = np.column_stack([get(n) for n in nn]).astype(np.float64)
    return v, colors, normals
