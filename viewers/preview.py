"""Healed-look preview of a dot plan: off-screen PNGs a patient can read.

:func:`render_preview` draws the head as skin and every planned dot as a small dark grey-blue point, from four sides
(front, left side, top, back) with a close-up of the skin, and a second picture that shows how the look builds up
session by session. It renders off screen (EGL on Linux, no display needed), writes each PNG atomically and never
computes any part of a plan. pyvista is imported inside the functions, so ``import scalp3d.viewers`` stays light.
"""
from __future__ import annotations

import contextlib
import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from scalp3d.errors import InputError, MissingDependencyError
from scalp3d.fileio import atomic_path

# --- the look: every tunable of this view, with its unit -----------------------------------------------------------
#: bald scalp, light-medium skin, RGB 0-1
SKIN_RGB = (0.86, 0.70, 0.60)
#: a healed dot: dark grey with a faint blue cast (fresh dots are darker; the preview shows the healed look), RGB 0-1
DOT_RGB = (0.16, 0.17, 0.21)
#: dots are drawn this far above the skin along their normals so the head's triangles never hide them
DOT_LIFT_MM = 0.05
#: zoomed out, a real healed dot (0.07-0.15 mm) is far below a pixel: dots are drawn this many pixels per on-screen
#: mm instead, so that 100 dots/cm2 darken the skin like a shaved head's shadow and single dots stay discernible
DOT_TONE_PER_MM = 0.75
#: bounds on the drawn dot diameter when zoomed out, pixels
DOT_PIXELS_RANGE = (1.0, 3.0)
#: close up (at least CLOSEUP_MIN_PX_PER_MM pixels per mm), dots are drawn at this diameter, mm, but at least
#: CLOSEUP_MIN_DOT_PX pixels
DOT_DIAMETER_MM = 0.15
CLOSEUP_MIN_PX_PER_MM = 6.0
CLOSEUP_MIN_DOT_PX = 2.0
#: the close-up's width on the skin, mm, and its camera's distance from the skin (parallel projection), mm
CLOSEUP_WIDTH_MM = 20.0
CLOSEUP_DISTANCE_MM = 100.0
#: the close-up's outline in the top views: colour, width in pixels and height above the skin (clears the skin's
#: curvature across the close-up), mm
OUTLINE_RGB = (1.0, 1.0, 1.0)
OUTLINE_PX = 2.0
OUTLINE_LIFT_MM = 1.5
#: the close-up inset's side as a fraction of the top view's tile height
INSET_SIZE = 0.40
#: the inset's bottom edge above its tile's bottom, as a fraction of the tile's height (leaves room for the credit)
INSET_BOTTOM = 0.05
#: the top view is moved left by this fraction of its tile's half width to make room for the inset
INSET_SHIFT = 0.25
#: the inset's label font size relative to the other labels'
INSET_LABEL_SCALE = 0.85
#: multisample anti-aliasing samples per pixel (1 = off): sub-pixel dots then darken the skin by their coverage
MSAA_SAMPLES = 4
#: camera's vertical field of view, degrees
VIEW_ANGLE_DEG = 30.0
#: the framed part of the head: everything within this height below the top of the head (crown to chin), mm
HEAD_HEIGHT_MM = 240.0
#: empty border around the framed head, as a fraction of its size
FRAME_MARGIN = 0.05
#: background gradient (bottom, top) and the inset's background, RGB 0-1
BACKGROUND_RGB = ((0.80, 0.82, 0.85), (0.97, 0.97, 0.98))
INSET_BACKGROUND_RGB = (0.97, 0.97, 0.98)
TEXT_RGB = (0.10, 0.10, 0.12)
#: label font size per pixel of a tile's height (VTK font size: a character is about 1.0 font size wide and its line
#: about 1.8 font size high); the credit's font size relative to the label's; the smallest font size
LABEL_SIZE = 0.018
CREDIT_SIZE = 0.8
CHAR_WIDTH_EM = 1.0
MIN_FONT_SIZE = 6
#: labels sit on a translucent box of the background colour so they stay readable over skin and dots
LABEL_BOX_OPACITY = 0.65
#: smallest window accepted, pixels
MIN_WINDOW_PX = (240, 180)

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
        ``positions`` (N,3) float mm on the skin, ``normals`` (N,3) unit, out of the skin, ``session`` (N,) int,
        1-based. N may be 0.
    frame : tuple (origin, R)
        origin (3,) float mm and R (3,3) whose rows are the head's right (x), forward (y, towards the nose) and up (z)
        axes in the scan's coordinates, as given by :meth:`scalp3d.types.Landmarks.frame`.
    out_dir : str or Path
        Folder for the PNGs (created if missing).
    prefix : str
        File name stem.
    window_size : (width, height) int, pixels
        Size of ``{prefix}.png``: a 2x2 tile of the front, left side, top and back views, with a close-up of the
        skin (CLOSEUP_WIDTH_MM across, at the dot nearest the top of the head) inset in the top view.
        ``{prefix}-sessions.png`` is ``(width, n_sessions * (height // 2))``: one row per session number k present in
        ``dots.session`` with the top, front and close-up views of the dots of sessions 1..k (one row saying "no dots
        planned" when there are none).
    credit : str, optional
        A small line of text at the bottom right of each picture (e.g. the scan's attribution).

    Returns
    -------
    list of Path: ``[out_dir / f"{prefix}.png", out_dir / f"{prefix}-sessions.png"]``.

    Raises
    ------
    MissingDependencyError if pyvista is not installed; InputError for arrays of the wrong shape or a bad frame.

    Examples
    --------
    >>> from scalp3d.viewers.preview import render_preview
    >>> paths = render_preview(head, dots, landmarks.frame(), "out", credit="Head: ...")  # doctest: +SKIP
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

    q = (verts - origin) @ rot.T  # vertices in the head frame
    head_pd = _head_polydata(pv, verts, faces, vnormals)
    lifted = pos + DOT_LIFT_MM * dnormals
    anchor, anchor_normal = _closeup_anchor(verts, q, pos, dnormals)
    closeup_name = f"close-up, {CLOSEUP_WIDTH_MM / 10:g} cm wide\n(the white frame)"
    paths = [out_dir / f"{prefix}.png", out_dir / f"{prefix}-sessions.png"]

    # main picture: the full plan from four sides, a close-up inset in the top view
    xs, ys = _cuts(width, 2), _cuts(height, 2)
    all_pd = _points_polydata(pv, lifted)
    tiles = []
    for i, (name, (back, up)) in enumerate(VIEWS.items()):
        row, col = divmod(i, 2)
        rect = (xs[col], height - ys[row + 1], xs[col + 1], height - ys[row])
        size = (rect[2] - rect[0], rect[3] - rect[1])
        label = f"{name}\nsimulated healed look, {len(pos):,} dots" if i == 0 else name
        cam = _overview_camera(q, origin, rot, back, up, size)
        tiles.append(_Tile(rect, cam, label, all_pd))
        if name == "top":
            cam.shift = INSET_SHIFT
            side = int(round(INSET_SIZE * min(size)))
            pad = int(round(0.02 * size[1]))
            low = int(round(INSET_BOTTOM * size[1]))  # clear of the credit line
            irect = (rect[2] - side - pad, rect[1] + low, rect[2] - pad, rect[1] + low + side)
            closeup = _closeup_camera(anchor, anchor_normal, rot, (side, side))
            tiles[-1].outline = _outline(pv, closeup, (side, side))
            tiles.append(_Tile(irect, closeup, closeup_name, all_pd, inset=True))
    label_size = LABEL_SIZE * (height // 2)
    _render_tiles(pv, paths[0], (width, height), head_pd, tiles, credit, label_size)

    # sessions picture: the cumulative result after each session k: top, front and close-up
    levels = [int(k) for k in np.unique(session)]
    rows = max(len(levels), 1)
    tile_h = height // 2
    total_h = rows * tile_h
    xs = _cuts(width, 3)
    cams = [(_overview_camera(q, origin, rot, *VIEWS["top"], (xs[1] - xs[0], tile_h)), "top"),
            (_overview_camera(q, origin, rot, *VIEWS["front"], (xs[2] - xs[1], tile_h)), "front"),
            (_closeup_camera(anchor, anchor_normal, rot, (xs[3] - xs[2], tile_h)), closeup_name)]
    outline = _outline(pv, cams[2][0], (xs[3] - xs[2], tile_h))
    tiles = []
    for row in range(rows):
        if levels:
            k = levels[row]
            mask = session <= k
            pd = _points_polydata(pv, lifted[mask])
            title = f"after session {k}: {int(mask.sum()):,} dots"
            if row > 0:
                title += f"\n(+{int(np.count_nonzero(session == k)):,} in session {k})"
        else:
            pd, title = None, "no dots planned"
        for col, (cam, name) in enumerate(cams):
            rect = (xs[col], total_h - (row + 1) * tile_h, xs[col + 1], total_h - row * tile_h)
            tiles.append(_Tile(rect, cam, f"{title}\n{name}" if col == 0 else name, pd,
                               outline=outline if col == 0 else None))
    _render_tiles(pv, paths[1], (width, total_h), head_pd, tiles, credit, label_size)
    return paths


#: the design maps: zone and needle colours (categorical), colour maps of the continuous fields, colour of
#: untreated skin in the density map
ZONE_RGB = {"hairline": (0.89, 0.47, 0.20), "front": (0.95, 0.78, 0.30), "mid": (0.55, 0.75, 0.35),
            "crown": (0.30, 0.60, 0.80), "sides": (0.60, 0.45, 0.75), "back": (0.40, 0.40, 0.65),
            "scar": (0.85, 0.25, 0.35)}
SHADE_RGB = {"light": (0.60, 0.68, 0.82), "medium": (0.33, 0.40, 0.58), "dark": (0.10, 0.12, 0.22)}
CATEGORY_RGB = ((0.20, 0.45, 0.75), (0.90, 0.55, 0.15), (0.35, 0.65, 0.30), (0.75, 0.25, 0.30), (0.55, 0.40, 0.70))
UNTREATED_RGB = (0.80, 0.80, 0.80)
DENSITY_CMAP = "viridis"
DEPTH_CMAP = "plasma"
#: the design picture's two views: from the front-left and from the back-right, both from above
DESIGN_VIEWS = {"front left": ((-0.55, 0.75, 0.45), (0.0, 0.0, 1.0)), "back right": ((0.55, -0.75, 0.45),
                                                                                    (0.0, 0.0, 1.0))}


def render_design(head, field, frame, out_dir, *, prefix="design", window_size=None, credit=None,
                  extra=None):
    """Heat maps of the design field on the head: ``{prefix}.png`` in ``out_dir``.

    Columns: target density (dots/cm2, grey where nothing is treated), zone, depth (mm), needle and the shade of each
    session (when the field has them), each seen from the front-left (top row) and the back-right (bottom row).
    ``window_size`` defaults to 450 x 900 pixels per column.

    Parameters
    ----------
    head : scalp3d.types.Head
    field : scalp3d.types.Field, per-vertex ``density_per_cm2``, ``zone`` (index into ``zone_names``), ``depth_mm``,
        ``needle`` (index into ``needle_names``), all (n,) for the head's n vertices.
    frame : (origin, R) as for :func:`render_preview`.
    extra : dict name -> (n,) float, optional: more continuous maps, one column each (e.g. existing hair).

    Returns
    -------
    Path of the PNG.
    """
    verts, faces, vnormals = _check_head(head)
    origin, rot = _check_frame(frame)
    n = len(verts)
    maps = []
    dens = np.asarray(field.density_per_cm2, dtype=np.float64)
    zone = np.asarray(field.zone)
    depth = np.asarray(field.depth_mm, dtype=np.float64)
    needle = np.asarray(field.needle)
    for name, arr in (("density_per_cm2", dens), ("zone", zone), ("depth_mm", depth), ("needle", needle)):
        if arr.shape != (n,):
            raise InputError(f"field.{name} must have one value per head vertex ({n},), not {arr.shape}")
    treated = dens > 0
    maps.append(("target density, dots/cm2", "scalars", dens, DENSITY_CMAP))
    maps.append(("zone (treated skin)", "categories", np.where(treated, zone, -1), list(field.zone_names)))
    maps.append(("depth, mm (treated skin)", "scalars", np.where(treated, depth, np.nan), DEPTH_CMAP))
    maps.append(("needle (treated skin)", "categories", np.where(treated, needle, -1), list(field.needle_names)))
    shade = getattr(field, "shade", None)
    if shade is not None:
        shade = np.asarray(shade)
        if shade.ndim != 2 or shade.shape[1] != n:
            raise InputError(f"field.shade must be (sessions, {n}), not {shade.shape}")
        for k in range(len(shade)):
            maps.append((f"shade, session {k + 1}", "categories", np.where(treated, shade[k], -1),
                         list(field.shade_names)))
    n_fixed = len(maps)  # the extra maps after these show zero as untreated skin
    for name, arr in (extra or {}).items():
        arr = np.asarray(arr, dtype=np.float64)
        if arr.shape != (n,):
            raise InputError(f"map '{name}' must have one value per head vertex ({n},), not {arr.shape}")
        maps.append((name, "scalars", arr, "magma"))
    cols = len(maps)
    width, height = _check_window(window_size or (450 * cols, 900))
    pv = _import_pyvista()
    q = (verts - origin) @ rot.T
    out = Path(out_dir) / f"{prefix}.png"
    xs, ys = _cuts(width, cols), _cuts(height, 2)
    with _egl_window():
        plotter = pv.Plotter(off_screen=True, shape=(1, 2 * cols + bool(credit)), window_size=[width, height],
                             border=False, lighting="light kit")
    try:
        for c, (title, kind, values, style) in enumerate(maps):
            # one surface with its colours per map, drawn from both views
            pd = _head_polydata(pv, verts, faces, vnormals)
            if kind == "scalars":
                vals = np.where(np.isfinite(values), values, np.nan)
                if title.startswith("target density") or c >= n_fixed:
                    vals = np.where(vals > 0, vals, np.nan)  # nothing there: shown as untreated skin
                pd.point_data["v"] = vals
                finite = vals[np.isfinite(vals)]
                clim = (float(finite.min()), float(max(finite.max(), finite.min() + 1e-6))) if len(finite) \
                    else (0.0, 1.0)
            else:
                names = style
                rgb = np.tile(np.asarray(UNTREATED_RGB), (n, 1))
                palette = [ZONE_RGB.get(nm, SHADE_RGB.get(nm, CATEGORY_RGB[k % len(CATEGORY_RGB)]))
                           for k, nm in enumerate(names)]
                present = [k for k in range(len(names)) if np.any(values == k)]
                for k in present:
                    rgb[values == k] = palette[k]
                pd.point_data["rgb"] = (rgb * 255).astype(np.uint8)
            for r, (vname, (back, up)) in enumerate(DESIGN_VIEWS.items()):
                plotter.subplot(0, 2 * c + r)
                plotter.renderer.viewport = (xs[c] / width, (height - ys[r + 1]) / height, xs[c + 1] / width,
                                             (height - ys[r]) / height)
                plotter.set_background(BACKGROUND_RGB[0], top=BACKGROUND_RGB[1])
                if kind == "scalars":
                    plotter.add_mesh(pd, scalars="v", cmap=style, clim=clim, nan_color=UNTREATED_RGB,
                                     show_scalar_bar=r == 1, scalar_bar_args={
                                         "title": title.split(",")[-1].strip() if "," in title else title,
                                         "color": TEXT_RGB, "n_labels": 3,
                                         "fmt": "%.2f" if clim[1] < 10 else "%.0f", "width": 0.6,
                                         "position_x": 0.2, "position_y": 0.04})
                else:
                    plotter.add_mesh(pd, scalars="rgb", rgb=True)
                    if r == 1 and present:
                        plotter.add_legend([[names[k], palette[k]] for k in present], bcolor=INSET_BACKGROUND_RGB,
                                           size=(0.45, 0.06 * len(present) + 0.02), loc="lower left", face="r")
                size = (xs[c + 1] - xs[c], ys[r + 1] - ys[r])
                cam = _overview_camera(q, origin, rot, np.asarray(back) / np.linalg.norm(back), up, size)
                plotter.camera.position = tuple(cam.position)
                plotter.camera.focal_point = tuple(cam.focal)
                plotter.camera.up = tuple(cam.up)
                plotter.camera.view_angle = VIEW_ANGLE_DEG
                plotter.reset_camera_clipping_range()
                label = f"{title}\n{vname}" if r == 0 else vname
                _add_text(plotter, label, (0.02, 0.98), min(LABEL_SIZE * size[1] * 1.6, _fit(label, 0.92 * size[0])),
                          right=False)
        if credit:
            # one more renderer over the whole picture that clears nothing: the credit may span every column
            plotter.subplot(0, 2 * cols)
            plotter.renderer.viewport = (0.0, 0.0, 1.0, 1.0)
            plotter.renderer.SetErase(False)
            plotter.renderer.SetInteractive(False)
            font = min(CREDIT_SIZE * LABEL_SIZE * height / 2, _fit(str(credit), 0.95 * width))
            _add_text(plotter, str(credit), (1.0 - 6.0 / width, 4.0 / height), font, right=True)
        with atomic_path(out) as tmp:
            plotter.screenshot(str(tmp))
    finally:
        plotter.close()
    return out


def _cuts(length, parts):
    """Pixel boundaries splitting ``length`` into ``parts`` nearly equal pieces: [0, ..., length]."""
    return [length * i // parts for i in range(parts + 1)]


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


@dataclass
class _Camera:
    position: np.ndarray
    focal: np.ndarray
    up: np.ndarray
    px_per_mm: float  # on screen, at the focal point
    parallel_scale: float | None = None  # half the height seen, mm (parallel projection); None = perspective
    shift: float = 0.0  # horizontal window centre, -1..1 of the tile's half width: > 0 moves the scene left


@dataclass
class _Tile:
    rect: tuple  # (x0, y0, x1, y1) pixels, origin at the bottom left
    camera: _Camera
    label: str
    dots: object  # pyvista.PolyData of the lifted dots, or None
    inset: bool = False
    outline: object = None  # pyvista.PolyData of the close-up's outline on the skin, or None


def _overview_camera(q, origin, rot, back, up, size):
    """Perspective camera framing the head (its top HEAD_HEIGHT_MM) from one side; back and up in the head frame."""
    top = q[:, 2].max()
    part = q[q[:, 2] >= top - HEAD_HEIGHT_MM]
    lo, hi = part.min(axis=0), part.max(axis=0)
    centre = 0.5 * (lo + hi)
    half = 0.5 * (hi - lo)
    back = np.asarray(back, dtype=np.float64)
    up = np.asarray(up, dtype=np.float64)
    right = np.cross(-back, up)
    ex, ey, ez = np.abs(right) @ half, np.abs(up) @ half, np.abs(back) @ half  # half extents: screen x, y, depth
    tan_v = math.tan(math.radians(VIEW_ANGLE_DEG) / 2)
    aspect = size[0] / size[1]
    dist = max(ey / tan_v, ex / (tan_v * aspect)) * (1.0 + 2 * FRAME_MARGIN) + ez
    focal = origin + rot.T @ centre
    return _Camera(focal + dist * (rot.T @ back), focal, rot.T @ up, size[1] / (2 * dist * tan_v))


def _closeup_anchor(verts, q, pos, normals):
    """Where the close-up looks: the dot nearest the top of the head (the top itself when there are no dots)."""
    top = verts[np.argmax(q[:, 2])]
    if len(pos) == 0:
        return top, None
    i = int(np.argmin(((pos - top) ** 2).sum(axis=1)))
    return pos[i], normals[i]


def _closeup_camera(anchor, normal, rot, size):
    """Parallel camera looking straight down the skin's normal at ``anchor``, CLOSEUP_WIDTH_MM across, nose up."""
    n = rot[2] if normal is None or not np.any(normal) else normal
    fwd = rot[1] - n * (rot[1] @ n)
    if np.linalg.norm(fwd) < 1e-6:
        fwd = rot[0] - n * (rot[0] @ n)
    fwd = fwd / np.linalg.norm(fwd)
    half_h = 0.5 * CLOSEUP_WIDTH_MM * size[1] / size[0]
    return _Camera(anchor + CLOSEUP_DISTANCE_MM * n, anchor, fwd, size[1] / (2 * half_h), half_h)


def _outline(pv, cam, size):
    """The rectangle a close-up camera sees, drawn OUTLINE_LIFT_MM above the skin, as a closed polyline."""
    n = cam.position - cam.focal
    n = n / np.linalg.norm(n)
    right = np.cross(-n, cam.up)
    half_h = cam.parallel_scale
    half_w = half_h * size[0] / size[1]
    corners = [(-1, -1), (1, -1), (1, 1), (-1, 1), (-1, -1)]
    pts = np.array([cam.focal + OUTLINE_LIFT_MM * n + a * half_w * right + b * half_h * cam.up for a, b in corners])
    return pv.lines_from_points(pts)


def _dot_pixels(px_per_mm):
    """Drawn dot diameter, pixels: the stubble-shadow tone when zoomed out, the dot's own size close up."""
    if px_per_mm < CLOSEUP_MIN_PX_PER_MM:
        return float(np.clip(DOT_TONE_PER_MM * px_per_mm, *DOT_PIXELS_RANGE))
    return max(DOT_DIAMETER_MM * px_per_mm, CLOSEUP_MIN_DOT_PX)


def _render_tiles(pv, path, window, head_pd, tiles, credit, label_size):
    """Render ``tiles`` into a PNG at ``path``, atomically: each tile is a viewport; later ones draw over earlier ones.

    Every picture has its own plotter, closed whatever happens. With a credit, one more renderer covers the whole
    window without clearing it, so the credit line may run across tiles.
    """
    width, height = window
    with _egl_window():
        theme = pv.themes.Theme()
        theme.anti_aliasing = "msaa" if MSAA_SAMPLES > 1 else None
        theme.multi_samples = max(int(MSAA_SAMPLES), 1)
        plotter = pv.Plotter(off_screen=True, shape=(1, len(tiles) + bool(credit)), window_size=[width, height],
                             border=False, theme=theme, lighting="light kit")
    try:
        head_actor, dots_actors = None, {}
        for i, tile in enumerate(tiles):
            plotter.subplot(0, i)
            x0, y0, x1, y1 = tile.rect
            plotter.renderer.viewport = (x0 / width, y0 / height, x1 / width, y1 / height)
            if tile.inset:
                plotter.set_background(INSET_BACKGROUND_RGB)
                plotter.renderer.add_border(color=TEXT_RGB, width=2.0)
            else:
                plotter.set_background(BACKGROUND_RGB[0], top=BACKGROUND_RGB[1])
            # tiles share one mapper per data set, so its buffers go to the GPU once (a new actor per tile)
            if head_actor is None:
                head_actor = plotter.add_mesh(head_pd, color=SKIN_RGB, smooth_shading=False, interpolation="gouraud",
                                              ambient=0.25, diffuse=0.75, specular=0.15, specular_power=20.0)
            else:
                plotter.add_actor(pv.Actor(mapper=head_actor.mapper, prop=head_actor.prop))
            cam = tile.camera
            if tile.dots is not None:
                dot_px = _dot_pixels(cam.px_per_mm)
                spheres = cam.parallel_scale is not None  # round dots close up; at 1-3 pixels squares are cheaper
                first = dots_actors.get(id(tile.dots))
                if first is None:
                    dots_actors[id(tile.dots)] = plotter.add_mesh(
                        tile.dots, color=DOT_RGB, style="points", point_size=dot_px, lighting=False,
                        render_points_as_spheres=spheres)
                else:
                    prop = first.prop.copy()
                    prop.point_size = dot_px
                    prop.render_points_as_spheres = spheres
                    plotter.add_actor(pv.Actor(mapper=first.mapper, prop=prop))
            if tile.outline is not None:
                plotter.add_mesh(tile.outline, color=OUTLINE_RGB, line_width=OUTLINE_PX, lighting=False)
            camera = plotter.camera
            camera.position = tuple(cam.position)
            camera.focal_point = tuple(cam.focal)
            camera.up = tuple(cam.up)
            if cam.parallel_scale is None:
                camera.view_angle = VIEW_ANGLE_DEG
            else:
                camera.enable_parallel_projection()
                camera.parallel_scale = cam.parallel_scale
            if cam.shift:
                camera.SetWindowCenter(cam.shift, 0.0)
            plotter.reset_camera_clipping_range()
            font = label_size * (INSET_LABEL_SCALE if tile.inset else 1.0)
            _add_text(plotter, tile.label, (0.02, 0.98) if not tile.inset else (0.04, 0.97),
                      min(font, _fit(tile.label, 0.92 * (x1 - x0))), right=False)
        if credit:
            # one more renderer over the whole picture that clears nothing: the credit may span every column
            plotter.subplot(0, len(tiles))
            plotter.renderer.viewport = (0.0, 0.0, 1.0, 1.0)
            plotter.renderer.SetErase(False)
            plotter.renderer.SetInteractive(False)
            font = min(CREDIT_SIZE * label_size, _fit(str(credit), 0.95 * width))
            _add_text(plotter, str(credit), (1.0 - 6.0 / width, 4.0 / height), font, right=True)
        with atomic_path(path) as tmp:
            plotter.screenshot(str(tmp))
    finally:
        plotter.close()


def _fit(text, width_px):
    """The largest font size at which every line of ``text`` is at most ``width_px`` wide."""
    longest = max((len(line) for line in text.splitlines()), default=1)
    return width_px / (CHAR_WIDTH_EM * max(longest, 1))


def _add_text(plotter, text, xy, font_size, right):
    """Text anchored at ``xy`` (fractions of the tile): top-left corner, or bottom-right when ``right``."""
    actor = plotter.add_text(text, position=xy, viewport=True, font_size=max(MIN_FONT_SIZE, int(round(font_size))),
                             color=TEXT_RGB, font="arial")
    prop = actor.GetTextProperty()
    prop.SetBackgroundColor(*INSET_BACKGROUND_RGB)
    prop.SetBackgroundOpacity(LABEL_BOX_OPACITY)
    if right:
        prop.SetJustificationToRight()
        prop.SetVerticalJustificationToBottom()
    else:
        prop.SetJustificationToLeft()
        prop.SetVerticalJustificationToTop()
    return actor
