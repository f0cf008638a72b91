"""Load a head scan in real units: meshes (PLY OBJ STL OFF GLB/glTF) and point clouds (PLY without faces, PCD, XYZ).

Coordinates stay in the scan's own axes, scaled to millimetres. The unit is given (``units`` or ``scale``) or detected
from the width of the skull (140-220 mm); when no unit fits, a one-line :class:`UnitsError` asks for one. Every read
failure becomes a one-line :class:`InputError` naming the file and the fix.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from . import config
from .errors import InputError, UnitsError
from .types import Scan

MESH_FORMATS = {".ply", ".obj", ".stl", ".off", ".glb", ".gltf"}
CLOUD_FORMATS = {".pcd", ".xyz", ".pts", ".txt"}


def _read_mesh(path: Path):
    import trimesh

    try:
        loaded = trimesh.load(str(path), process=False)
        if isinstance(loaded, trimesh.Scene):
            geoms = list(loaded.geometry.values())
            if geoms and all(isinstance(g, trimesh.PointCloud) for g in geoms):
                loaded = trimesh.PointCloud(np.vstack([g.vertices for g in geoms]))
            else:
                loaded = trimesh.load(str(path), force="mesh", process=False)
    except Exception as exc:  # trimesh raises many types for bad files
        msg = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
        raise InputError(f"{path}: cannot be read as a {path.suffix[1:].upper()} scan ({msg}); re-export it") from None
    if isinstance(loaded, trimesh.PointCloud):
        v = np.asarray(loaded.vertices, dtype=np.float64)
        colors = None
        c = getattr(loaded, "colors", None)
        if c is not None and len(c) == len(v):
            colors = np.asarray(c)[:, :3].astype(np.uint8)
        return v, None, colors
    if not hasattr(loaded, "faces"):
        raise InputError(f"{path}: holds no mesh or point cloud; re-export the scan as a mesh or points")
    v = np.asarray(loaded.vertices, dtype=np.float64)
    f = np.asarray(loaded.faces, dtype=np.int64)
    colors = None
    try:
        vc = loaded.visual.to_color().vertex_colors if loaded.visual.kind == "texture" else loaded.visual.vertex_colors
        if vc is not None and len(vc) == len(v):
            vc = np.asarray(vc)[:, :3].astype(np.uint8)
            if vc.std() > 0:
                colors = vc
    except Exception:  # colours are optional: a scan without usable colour is still a scan
        colors = None
    if len(f) == 0:
        return v, None, colors
    return v, f, colors


def _read_cloud(path: Path):
    if path.suffix.lower() == ".pcd":
        import open3d as o3d

        pc = o3d.io.read_point_cloud(str(path), format="pcd")
        v = np.asarray(pc.points, dtype=np.float64)
        if len(v) == 0:
            raise InputError(f"{path}: no points could be read from this PCD file; re-export it")
        colors = (np.asarray(pc.colors) * 255).round().astype(np.uint8) if pc.has_colors() else None
        normals = np.asarray(pc.normals, dtype=np.float64) if pc.has_normals() else None
        return v, colors, normals
    try:
        data = np.loadtxt(str(path), comments=("#", "//"), ndmin=2, dtype=np.float64, delimiter=None)
    except ValueError as exc:
        raise InputError(f"{path}: not a text point cloud with x y z columns ({str(exc)[:80]}); fix the file") from None
    if data.shape[1] < 3:
        raise InputError(f"{path}: {data.shape[1]} columns; a point cloud needs x y z per line")
    normals = data[:, 3:6] if data.shape[1] >= 6 else None
    return data[:, :3].copy(), None, normals


def head_width(vertices: np.ndarray) -> float:
    """Skull width (left-right) of a head scan in the scan's own unit, from a scale-free orientation estimate.

    The head is oriented by :func:`scalp3d.landmarks.estimate_axes`; the width is the left-right extent of the part of
    the head within 0.45 of its front-back length below the top (above the ears, below the widest point of the skull).
    """
    from .landmarks import estimate_axes

    axes = estimate_axes(vertices)
    right, fwd, up = axes
    h = vertices @ up
    top = h.max()
    x = vertices @ right
    y = vertices @ fwd
    depth = 0.0
    span = h.max() - h.min()
    for frac in np.linspace(0.05, 0.9, 35):
        depth = frac * span
        sel = h >= top - depth
        if sel.sum() < 10:
            continue
        length = np.ptp(y[sel])
        if depth >= 0.45 * length:
            break
    sel = h >= top - depth
    return float(np.ptp(x[sel]))


def decide_units(path, vertices, units=None, scale=None):
    """(scale_to_mm, unit name, reason) for a scan: given by ``scale`` or ``units``, else detected."""
    if scale is not None:
        if not np.isfinite(scale) or scale <= 0:
            raise UnitsError(f"{path}: --scale must be a positive number of millimetres per scan unit, not {scale}")
        return float(scale), "scale", f"given: {scale:g} mm per scan unit"
    if units is not None:
        if units not in config.UNIT_TO_MM:
            raise UnitsError(f"{path}: unknown unit '{units}'; use one of {', '.join(config.UNIT_TO_MM)}")
        return config.UNIT_TO_MM[units], units, f"given: {units}"
    width = head_width(vertices)
    fits = [u for u, s in config.UNIT_TO_MM.items()
            if config.HEAD_WIDTH_MIN_MM <= width * s <= config.HEAD_WIDTH_MAX_MM]
    if len(fits) == 1:
        u = fits[0]
        return config.UNIT_TO_MM[u], u, (f"detected: the head is {width:.4g} {u} wide "
                                         f"({width * config.UNIT_TO_MM[u]:.0f} mm)")
    raise UnitsError(
        f"{path}: head is {width:.3g} units wide, which is not {config.HEAD_WIDTH_MIN_MM:.0f}-"
        f"{config.HEAD_WIDTH_MAX_MM:.0f} mm in mm, cm, m or in; pass --units mm|cm|m|in or --scale MM_PER_UNIT")


def load_scan(path, *, units=None, scale=None) -> Scan:
    """Read a scan file and scale it to millimetres.

    Parameters
    ----------
    path : str or Path. Mesh: .ply .obj .stl .off .glb .gltf; point cloud: .ply without faces, .pcd, .xyz/.pts/.txt.
    units : 'mm', 'cm', 'm' or 'in', optional. The scan's unit; detected when omitted.
    scale : float, optional. Millimetres per scan unit (overrides ``units``).

    Returns
    -------
    Scan with vertices in mm (scan axes, never rotated), faces or None, colours if any.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: file not found; check the path")
    if path.is_dir():
        raise InputError(f"{path}: is a folder; give the scan file inside it")
    if os.path.getsize(path) == 0:
        raise InputError(f"{path}: the file is empty; re-export the scan")
    ext = path.suffix.lower()
    normals = None
    if ext in MESH_FORMATS:
        v, f, colors = _read_mesh(path)
    elif ext in CLOUD_FORMATS:
        v, colors, normals = _read_cloud(path)
        f = None
    else:
        raise InputError(f"{path}: unknown scan format '{ext}'; use one of "
                         f"{', '.join(sorted(MESH_FORMATS | CLOUD_FORMATS))}")
    if v.ndim != 2 or v.shape[1] != 3:
        raise InputError(f"{path}: coordinates have shape {v.shape}, not (n,3); re-export the scan")
    finite = np.isfinite(v).all(axis=1)
    if not finite.all():
        if f is not None:
            f = f[finite[f].all(axis=1)]
            remap = np.cumsum(finite) - 1
            f = remap[f]
        v = v[finite]
        colors = colors[finite] if colors is not None else None
        normals = normals[finite] if normals is not None else None
    if len(v) < config.MIN_SCAN_POINTS:
        raise InputError(f"{path}: only {len(v)} valid points; a head scan needs at least {config.MIN_SCAN_POINTS}")
    if np.ptp(v, axis=0).min() <= 0:
        raise InputError(f"{path}: all points lie on a plane or a line; this is not a head scan")
    scale_mm, unit, reason = decide_units(path, v, units, scale)
    return Scan(path=str(path), vertices=v * scale_mm, faces=f, colors=colors, normals=normals, units=unit,
                scale_to_mm=scale_mm, units_reason=reason)
