"""Healed-look preview of a dot plan: off-screen PNGs a patient can read.

:func:`render_preview` draws the head as skin and every planned dot as a small dark grey-blue point, from four sides
(front, left, top, back), and a second picture that shows how the look builds up session by session. It renders off
screen (EGL on Linux, no display needed), writes each PNG atomically and never computes any part of a plan.
pyvista is imported inside the functions, so ``import scalp3d.viewers`` stays light.
"""
from __future__ import annotations

import contextlib
import math
import os
import sys
from pathlib import Path

import numpy as np

from scalp3d.errors import InputError, MissingDependencyError
from scalp3d.fileio import atomic_path

# --- look (the tunables of this view, with their units) ------------------------------------------------------------
#: bald scalp, light-medium skin, RGB 0-1
SKIN_RGB = (0.86, 0.70, 0.60)
#: a healed dot: dark grey with a faint blue cast (fresh dots are darker; the preview shows the healed look), RGB 0-1
DOT_RGB = (0.16, 0.17, 0.21)
#: dots are drawn this far above the skin along their normals so the head's triangles never hide them
DOT_LIFT_MM = 0.05
#: drawn dot diameter relative to the on-screen spacing of dots 1 mm apart; real healed dots (0.07-0.15 mm) would be
#: far below a pixel at this zoom, so the size is chosen for the overall tone (stubble shadow) and discernible dots
DOT_DIAMETER_PER_MM = 0.55
#: bounds on the drawn dot diameter, pixels
DOT_PIXELS_RANGE = (1.0, 6.0)
#: camera's vertical field of view, degrees
VIEW_ANGLE_DEG = 30.0
#: the framed part of the head: everything within this height below the top of the head (crown to chin), mm
HEAD_HEIGHT_MM = 240.0
#: empty border around the framed head, as a fraction of its size
FRAME_MARGIN = 0.06
#: background gradient, bottom and top, RGB 0-1
BACKGROUND_RGB = ((0.80, 0.82, 0.85), (0.97, 0.97, 0.98))
TEXT_RGB = (0.10, 0.10, 0.12)
#: label and credit heights as a fraction of a tile's height
LABEL_SIZE = 0.045
CREDIT_SIZE = 0.026
#: smallest window accepted, pixels
MIN_WINDOW_PX = (200, 150)

#: the four views of the main picture: name, direction from the head to the camera and the screen's up, both in the
#: head frame (x right, y forward, z up)
VIEWS = {
    "front": ((0.0, 1.0, 0.0), (0.0, 0.0, 1.0)),
    "left side": ((-1.0, 0.0, 0.0), (0.0, 0.0, 1.0)),
    "top": ((0.0, 0.0, 1.0), (0.0, 1.0, 0.0)),
    "back": ((0.0, -1.0, 0.0), (0.0, 0.0, 1.0)),
}


def render_preview(head, dots, frame, out_dir, *, prefix="preview", window_size=(1600, 1200), credit=None):
    """Render the healed look of a plan to ``{prefix}.png`` and ``{prefix}-sessions.png`` in ``out_dir``.

    Parameters
    ----------
    head : scalp3d.types.Head
        ``vertices`` (n,3) float mm, ``faces`` (m,3) int, ``vertex_normals`` (n,3) float unit (used for smooth
        shading; recomputed when missing or of the wrong shape).
    dots : scalp3d.types.Dots
        ``positions`` (N,3) float mm on the skin, ``normals`` (N,3) unit, out of the skin, ``session`` (N,) int, 1-based.
    frame : tuple (origin, R)
        origin (3,) float mm and R (3,3) whose rows are the head's right (x), forward (y, towards the nose) and up (z)
        axes in the scan's coordinates, as given by :meth:`scalp3d.types.Landmarks.frame`.
    out_dir : str or Path
        Folder for the PNGs (created if missing).
    prefix : str
        File name stem.
    window_size : (width, height) int pixels
        Size of ``{prefix}.png``, a 2x2 tile of front, left side, top and back. ``{prefix}-sessions.png`` has one row
        per session with the top and front views, each tile of the same size as one tile of the main picture:
        ``(width, n_rows * (height // 2))`` pixels.
    credit : str, optional
        A small line of text written at the bottom of each picture (e.g. the scan's attribution).

    Returns
    -------
    list of Path: ``[out_dir / f"{prefix}.png", out_dir / f"{prefix}-sessions.png"]``.

    Raises
    ------
    MissingDependencyError if pyvista is not installed; InputError for arrays of the wrong shape or a bad frame.

    Examples
    --------
    >>> from scalp3d.viewers.preview import render_preview
    >>> paths = render_preview(head, dots, landmarks.frame(), "out", credit="Head: fsaverage (MNE, BSD-3)")
    ... # doctest: +SKIP
    """
    verts, faces, vnormals = _check_head(head)
    pos, dnormals, session = _check_dots(dots)
    origin, rot = _check_frame(frame)
    width, height = _check_window(window_size)
    prefix = str(prefix)
    if not prefix or "/" in prefix or "\\" in prefix:
        raise InputError(f"prefix must be a plain file name stem, not {prefix!r}")
    out_dir = Path(out_dir)

    pv = _import_pyvista()
    tile = (width // 2, height // 2)
    head_pd = _head_polydata(pv, verts, faces, vnormals)
    lifted = pos + DOT_LIFT_MM * dnormals
    cameras = {name: _camera(verts, origin, rot, back, up, tile) for name, (back, up) in VIEWS.items()}

    main_path = out_dir / f"{prefix}.png"
    sessions_path = out_dir / f"{prefix}-sessions.png"

    # main picture: the full plan from four sides
    n_total = len(pos)
    dots_pd = _points_polydata(pv, lifted)
    tiles = []
    for i, name in enumerate(VIEWS):
        label = name
        if i == 0:
            label = f"{name}\nhealed look, {n_total:,} dots"
        tiles.append((divmod(i, 2), cameras[name], label, dots_pd))
    _render_grid(pv, main_path, (2, 2), (width, height), tile, head_pd, tiles, credit)

    # sessions picture: cumulative result after each session, top and front
    levels = np.unique(session)
    tiles = []
    if len(levels) == 0:
        tiles.append(((0, 0), cameras["top"], "top\nno dots planned", None))
        tiles.append(((0, 1), cameras["front"], "front", None))
        rows = 1
    else:
        for row, k in enumerate(levels):
            mask = session <= k
            pd = _points_polydata(pv, lifted[mask])
            added = int(np.count_nonzero(session == k))
            tiles.append(((row, 0), cameras["top"], f"after session {k}: {int(mask.sum()):,} dots\ntop"
                          + (f"  (+{added:,} this session)" if row > 0 else ""), pd))
            tiles.append(((row, 1), cameras["front"], "front", pd))
        rows = len(levels)
    _render_grid(pv, sessions_path, (rows, 2), (width, rows * tile[1]), tile, head_pd, tiles, credit)
    return [main_path, sessions_path]


# --- input ---------------------------------------------------------------------------------------------------------

def _check_head(head):
    verts = np.asarray(getattr(head, "vertices", None), dtype=np.float64)
    faces = np.asarray(getattr(head, "faces", None))
    if verts.ndim != 2 or verts.shape[1] != 3 or len(verts) < 3:
        raise InputError(f"head.vertices must be an (n,3) array with n >= 3, not {verts.shape}")
    if not np.isfinite(verts).all():
        raise InputError("head.vertices hold NaN or infinite coordinates; repair the head mesh")
    if faces.ndim != 2 or faces.shape[1] != 3 or len(faces) < 1 or not np.issubdtype(faces.dtype, np.integer):
        raise InputError(f"head.faces must be an (m,3) integer array, not {faces.shape} {faces.dtype}")
    if faces.min() < 0 or faces.max() >= len(verts):
        raise InputError(f"head.faces index vertices outside 0..{len(verts) - 1}")
    vn = getattr(head, "vertex_normals", None)
    if vn is not None:
        vn = np.asarray(vn, dtype=np.float64)
        if vn.shape != verts.shape or not np.isfinite(vn).all():
            vn = None
    return verts, faces.astype(np.int64, copy=False), vn


def _check_dots(dots):
    pos = np.asarray(getattr(dots, "positions", None), dtype=np.float64)
    nrm = np.asarray(getattr(dots, "normals", None), dtype=np.float64)
    ses = np.asarray(getattr(dots, "session", None))
    if pos.ndim != 2 or pos.shape[1] != 3:
        raise InputError(f"dots.positions must be an (N,3) array, not {pos.shape}")
    if nrm.shape != pos.shape:
        raise InputError(f"dots.normals must have the shape of dots.positions {pos.shape}, not {nrm.shape}")
    if ses.shape != (len(pos),) or (len(ses) and not np.issubdtype(ses.dtype, np.integer)):
        raise InputError(f"dots.session must be an ({len(pos)},) integer array, not {ses.shape} {ses.dtype}")
    if len(ses) and ses.min() < 1:
        raise InputError(f"dots.session is 1-based; found session {int(ses.min())}")
    if not (np.isfinite(pos).all() and np.isfinite(nrm).all()):
        raise InputError("dots hold NaN or infinite positions or normals")
    length = np.linalg.norm(nrm, axis=1)
    nrm = np.divide(nrm, length[:, None], out=np.zeros_like(nrm), where=length[:, None] > 0)
    return pos, nrm, ses.astype(np.int64, copy=False)


def _check_frame(frame):
    try:
        origin, rot = frame
    except (TypeError, ValueError):
        raise InputError("frame must be a pair (origin (3,), R (3,3)), e.g. Landmarks.frame()") from None
    origin = np.asarray(origin, dtype=np.float64)
    rot = np.asarray(rot, dtype=np.float64)
    if origin.shape != (3,) or rot.shape != (3, 3) or not (np.isfinite(origin).all() and np.isfinite(rot).all()):
        raise InputError(f"frame must be origin (3,) and R (3,3), not {origin.shape} and {rot.shape}")
    if not np.allclose(rot @ rot.T, np.eye(3), atol=1e-6):
        raise InputError("frame R must be a rotation: its rows (right, forward, up) must be orthonormal")
    return origin, rot


def _check_window(window_size):
    try:
        width, height = (int(s) for s in window_size)
    except (TypeError, ValueError):
        raise InputError(f"window_size must be (width, height) in pixels, not {window_size!r}") from None
    if width < MIN_WINDOW_PX[0] or height < MIN_WINDOW_PX[1]:
        raise InputError(f"window_size {width}x{height} is too small; at least {MIN_WINDOW_PX[0]}x{MIN_WINDOW_PX[1]}")
    return width, height


# --- scene ---------------------------------------------------------------------------------------------------------

@contextlib.contextmanager
def _egl_window():
    """Ask VTK for its EGL render window while plotters are made (Linux, no display): off screen with no X warning.

    VTK reads ``VTK_DEFAULT_OPENGL_WINDOW`` when a render window is created; without it, it tries X first and prints
    "bad X server connection" before falling back to EGL. A value the user set is left alone.
    """
    key = "VTK_DEFAULT_OPENGL_WINDOW"
    use = (sys.platform.startswith("linux") and key not in os.environ
           and not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"))
    if use:
        os.environ[key] = "vtkEGLRenderWindow"
    try:
        yield
    finally:
        if use:
            os.environ.pop(key, None)


def _import_pyvista():
    try:
        import pyvista
    except ImportError:
        raise MissingDependencyError("rendering previews needs pyvista: pip install pyvista") from None
    return pyvista


def _head_polydata(pv, verts, faces, vnormals):
    pd = pv.PolyData.from_regular_faces(verts, faces)
    if vnormals is None:
        pd = pd.compute_normals(cell_normals=False, split_vertices=False, auto_orient_normals=False)
    else:
        pd.point_data["Normals"] = vnormals
        pd.point_data.active_normals_name = "Normals"
    return pd


def _points_polydata(pv, points):
    if len(points) == 0:
        return None
    return pv.PolyData(np.ascontiguousarray(points))


def _camera(verts, origin, rot, back, up, tile):
    """Camera (position, focal point, up, pixels per mm at the focal point) framing the head from one side."""
    q = (verts - origin) @ rot.T  # head frame
    top = q[:, 2].max()
    part = q[q[:, 2] >= top - HEAD_HEIGHT_MM]
    lo, hi = part.min(axis=0), part.max(axis=0)
    centre_h = 0.5 * (lo + hi)
    half = 0.5 * (hi - lo)
    back = np.asarray(back, dtype=np.float64)
    up = np.asarray(up, dtype=np.float64)
    right = np.cross(-back, up)
    # half extents of the framed box on screen and along the view
    ex = np.abs(right) @ half
    ey = np.abs(up) @ half
    ez = np.abs(back) @ half
    tan_v = math.tan(math.radians(VIEW_ANGLE_DEG) / 2)
    aspect = tile[0] / tile[1]
    dist = max(ey / tan_v, ex / (tan_v * aspect)) * (1.0 + 2 * FRAME_MARGIN) + ez
    focal = origin + rot.T @ centre_h
    position = focal + dist * (rot.T @ back)
    view_up = rot.T @ up
    px_per_mm = tile[1] / (2 * dist * tan_v)
    return position, focal, view_up, px_per_mm


def _render_grid(pv, path, shape, window, tile, head_pd, tiles, credit):
    """Render a grid of tiles [((row, col), camera, label, dots polydata or None)] to ``path`` atomically."""
    with _egl_window():
        plotter = pv.Plotter(off_screen=True, shape=shape, window_size=list(window), border=False,
                             theme=pv.themes.Theme(), lighting="light kit")
    try:
        for (row, col), (position, focal, up, px_per_mm), label, dots_pd in tiles:
            plotter.subplot(row, col)
            plotter.set_background(BACKGROUND_RGB[0], top=BACKGROUND_RGB[1])
            plotter.add_mesh(head_pd, color=SKIN_RGB, smooth_shading=False, interpolation="gouraud",
                             ambient=0.25, diffuse=0.75, specular=0.15, specular_power=20.0)
            if dots_pd is not None:
                size = float(np.clip(DOT_DIAMETER_PER_MM * px_per_mm, *DOT_PIXELS_RANGE))
                plotter.add_mesh(dots_pd, color=DOT_RGB, style="points", point_size=size, lighting=False,
                                 render_points_as_spheres=False)
            plotter.camera.position = tuple(position)
            plotter.camera.focal_point = tuple(focal)
            plotter.camera.up = tuple(up)
            plotter.camera.view_angle = VIEW_ANGLE_DEG
            plotter.reset_camera_clipping_range()
            _add_label(plotter, label, (0.02, 0.97), LABEL_SIZE * tile[1], "upper")
        if credit:
            plotter.subplot(shape[0] - 1, shape[1] - 1)
            _add_label(plotter, str(credit), (0.98, 0.015), CREDIT_SIZE * tile[1], "lower", right=True)
        with atomic_path(path) as tmp:
            plotter.screenshot(str(tmp))
    finally:
        plotter.close()


def _add_label(plotter, text, xy, size_px, vertical, right=False):
    actor = plotter.add_text(text, position=xy, viewport=True, font_size=max(6, int(round(size_px))),
                             color=TEXT_RGB, font="arial")
    prop = actor.GetTextProperty()
    prop.SetJustificationToRight() if right else prop.SetJustificationToLeft()
    prop.SetVerticalJustificationToTop() if vertical == "upper" else prop.SetVerticalJustificationToBottom()
    return actor
