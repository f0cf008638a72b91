"""The standard pictures of a plan, rendered off screen from a :class:`~scalp3d.viewers.scene.Scene`.

One renderer holds the head (its skin colour per vertex times the baked dot texture, mipmapped, smoothly shaded)
and moves its camera: the six views of the landmark frame (front, left, right, back, top, three-quarter), close-ups
framed on the treated area, the same view in every state (before, healed after each session, fresh). The pictures
are composed with their labels by Pillow:

* ``preview.png``: a contact sheet of the six views, healed after the last session;
* ``preview-before-after.png``: before and after, side by side, from the front three-quarter and the top;
* ``preview-sessions.png``: the progression, healed after each session in its own shade (top and front);
* ``preview-closeups.png``: close-ups at true scale of the hairline, the crown, a scar and a reserved region, as the
  plan has them;
* ``preview-turntable.gif``: the head turning once, healed.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from scalp3d import config
from scalp3d.errors import InputError
from scalp3d.fileio import atomic_path

#: views in the head frame (x right, y forward, z up): direction from the head to the camera, and the screen's up
VIEWS = {
    "front": ((0.0, 1.0, 0.0), (0.0, 0.0, 1.0)),
    "left": ((-1.0, 0.0, 0.0), (0.0, 0.0, 1.0)),
    "right": ((1.0, 0.0, 0.0), (0.0, 0.0, 1.0)),
    "back": ((0.0, -1.0, 0.0), (0.0, 0.0, 1.0)),
    "top": ((0.0, 0.15, 1.0), (0.0, 1.0, 0.0)),
    "three-quarter": ((0.62, 0.62, 0.48), (0.0, 0.0, 1.0)),
    "back-left": ((-0.62, -0.62, 0.48), (0.0, 0.0, 1.0)),
}
#: the views a user asks for (``scalp3d preview --view``) and the contact sheet shows
STANDARD_VIEWS = ("front", "left", "right", "back", "top", "three-quarter")


@dataclass
class Shot:
    """A camera: position and focal point (mm, scan axes), the screen's up, the vertical view angle (degrees)."""

    position: np.ndarray
    focal: np.ndarray
    up: np.ndarray
    view_angle: float


def texture_of(pv, image):
    """A pyvista Texture of ``image`` (H,W,C) uint8, row 0 its top: ``pv.Texture(image)`` as pyvista makes it (its
    rows flipped, VTK's first row is the bottom one), with one plain copy of the flipped rows where pyvista's
    column-major reshape took 0.2 s for a live design texture of 5,029 x 4,708 texels."""
    grid = pv.ImageData(dimensions=(image.shape[1], image.shape[0], 1))
    grid.point_data["Image"] = np.ascontiguousarray(image[::-1]).reshape(-1, image.shape[2])
    grid.set_active_scalars("Image")
    return pv.Texture(grid)


class HeadLook:
    """The head's actor in the healed look on a plotter, shared by the pictures and the 3D view: the state's skin
    colours written in place, its texture (made once, uploaded once, kept) swapped in."""

    def __init__(self, pv, plotter, scene, mesh, pd, reset_camera=None):
        self.pv, self.plotter, self.scene, self.mesh, self.pd = pv, plotter, scene, mesh, pd
        self.reset_camera = reset_camera
        self.textures = {}
        self.actor = None

    def show(self, key):
        """Show state ``key`` = (session, fresh); returns the actor."""
        rgb = np.clip(np.round(self.mesh.per_vertex(self.scene.skin(*key)) * 255.0), 0, 255).astype(np.uint8)
        if key not in self.textures:
            tex = texture_of(self.pv, self.scene.texture(*key))
            tex.mipmap = True
            tex.interpolate = True
            # trilinear filtering only: Mesa's software renderer filters anisotropically (VTK asks for 4x) in strips,
            # and cut the dots of a close-up along straight lines a few mm apart
            tex.SetMaximumAnisotropicFiltering(1.0)
            self.textures[key] = tex
        if self.actor is None:
            self.pd.active_texture_coordinates = self.mesh.uv
            self.pd.point_data["skin"] = rgb
            self.actor = self.plotter.add_mesh(self.pd, scalars="skin", rgb=True, texture=self.textures[key],
                                               smooth_shading=True, ambient=config.PICTURE_AMBIENT,
                                               diffuse=1.0 - config.PICTURE_AMBIENT,
                                               specular=config.PICTURE_SPECULAR, specular_power=20.0,
                                               show_scalar_bar=False, reset_camera=self.reset_camera)
        else:
            self.pd.point_data["skin"][:] = rgb
            self.pd.Modified()
            self.actor.texture = self.textures[key]
        return self.actor


class Renderer:
    """An off-screen pyvista plotter showing a scene's head; :meth:`image` renders one state from one camera."""

    def __init__(self, scene, size=(800, 800)):
        from .preview import _egl_window, _import_pyvista

        self.pv = pv = _import_pyvista()
        self.scene = scene
        self.size = (int(size[0]), int(size[1]))
        mesh = scene.display_mesh()
        pd = pv.PolyData.from_regular_faces(mesh.vertices, mesh.faces)
        pd.point_data["Normals"] = mesh.normals
        pd.point_data.active_normals_name = "Normals"
        pd.active_texture_coordinates = mesh.uv
        self.mesh = mesh
        self.pd = pd
        with _egl_window():
            # no multisampling (it tripled the time per picture on llvmpipe): the texture's mipmaps smooth the dots,
            # supersampling the head's outline (FXAA is not available with EGL)
            self.plotter = pv.Plotter(off_screen=True, window_size=list(self.size))
            self.plotter.ren_win.SetMultiSamples(0)
            self.plotter.enable_anti_aliasing("ssaa")
        self.plotter.set_background(config.PICTURE_BACKGROUND)
        self._state = self._look_state = None
        self._look = HeadLook(pv, self.plotter, scene, mesh, pd)
        self.actor = None
        self._map_actor = None

    def set_state(self, session: int, fresh: bool = False):
        """Show the head after ``session`` (0: before), healed or fresh (:class:`HeadLook`)."""
        key = (int(session), bool(fresh) and session > 0)
        if key == self._state or (self._state == "map" and key == self._look_state):
            self._state = key
            return
        self.actor = self._look.show(key)
        self._state = self._look_state = key

    def show_colours(self, rgb):
        """Show the head in plain colours instead of the look: ``rgb`` (n,3) 0-1 per head vertex (a heat map)."""
        if self._map_actor is None:
            self._map_pd = self.pd.copy(deep=True)
            self._map_pd.point_data["map"] = np.zeros((self._map_pd.n_points, 3), dtype=np.uint8)
            self._map_actor = self.plotter.add_mesh(self._map_pd, scalars="map", rgb=True, smooth_shading=True,
                                                    ambient=0.35, diffuse=0.65, show_scalar_bar=False)
        self._map_pd.point_data["map"][:] = np.clip(np.round(self.mesh.per_vertex(rgb) * 255.0), 0, 255)
        self._map_pd.Modified()
        self._map_actor.visibility = True
        if self.actor is not None:
            self.actor.visibility = False
        self._state = "map"

    def image(self, shot: Shot, session: int | None, fresh: bool = False, size=None) -> np.ndarray:
        """(h, w, 3) uint8 of the head after ``session`` from ``shot`` (``session`` None: the colours shown last
        by :meth:`show_colours`)."""
        if session is not None:
            if self._map_actor is not None:
                self._map_actor.visibility = False
            self.set_state(session, fresh)
            self.actor.visibility = True
        if size is not None and tuple(size) != self.size:
            self.size = (int(size[0]), int(size[1]))
            self.plotter.window_size = list(self.size)
        cam = self.plotter.camera
        cam.position = tuple(shot.position)
        cam.focal_point = tuple(shot.focal)
        cam.up = tuple(shot.up)
        cam.view_angle = shot.view_angle
        self.plotter.reset_camera_clipping_range()
        self.plotter.render()
        return np.asarray(self.plotter.screenshot(return_img=True))[..., :3].copy()

    def close(self):
        self.plotter.close()


def view_shot(scene, name: str, aspect: float = 1.0) -> Shot:
    """A camera showing the whole head from one of :data:`VIEWS`, at a distance that fits its treated and hair-bearing
    part (everything above the nape) in the frame."""
    if name not in VIEWS:
        raise InputError(f"unknown view '{name}'; use one of {', '.join(STANDARD_VIEWS)}")
    origin, R = scene.frame
    back, up = (np.asarray(x, dtype=np.float64) for x in VIEWS[name])
    back /= np.linalg.norm(back)
    d_scan, up_scan = R.T @ back, R.T @ up
    q = (scene.head.vertices - origin) @ R.T
    shown = q[q[:, 2] > config.PICTURE_HEAD_BOTTOM_MM]
    centre = 0.5 * (shown.min(axis=0) + shown.max(axis=0))
    # the framed size: the head's extent across the screen's two axes
    right = np.cross(up, back)
    right /= np.linalg.norm(right)
    up_s = np.cross(back, right)
    half_h = 0.5 * np.ptp(shown @ up_s) * (1.0 + config.PICTURE_MARGIN)
    half_w = 0.5 * np.ptp(shown @ right) * (1.0 + config.PICTURE_MARGIN)
    half = max(half_h, half_w / aspect)
    angle = config.PICTURE_VIEW_ANGLE_DEG
    dist = half / math.tan(math.radians(angle) / 2.0) + 0.5 * np.ptp(shown @ back)
    focal = origin + R.T @ centre
    return Shot(focal + d_scan * dist, focal, up_scan, angle)


def closeup_shot(scene, anchor, normal, width_mm: float) -> Shot:
    """A camera looking straight at the skin at ``anchor`` (mm, scan axes) along ``-normal``, ``width_mm`` across."""
    origin, R = scene.frame
    up = R[2] - normal * (R[2] @ normal)
    if np.linalg.norm(up) < 1e-6:  # looking down on the top: the forehead up the screen
        up = R[1] - normal * (R[1] @ normal)
    up /= np.linalg.norm(up)
    angle = config.CLOSEUP_VIEW_ANGLE_DEG
    dist = 0.5 * width_mm / math.tan(math.radians(angle) / 2.0)
    return Shot(anchor + normal * dist, np.asarray(anchor, dtype=np.float64), up, angle)


# ---- composing pictures ---------------------------------------------------------------------------------------------

def _font(px):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=max(int(px), 8))
    except TypeError:  # Pillow < 10.1: one bitmap size
        return ImageFont.load_default()


def _label(img, text, *, size=None, where="top", credit=None):
    """The picture with a caption band above (or below) it, and a credit line in small type at its bottom right."""
    from PIL import Image, ImageDraw

    im = Image.fromarray(img) if isinstance(img, np.ndarray) else img
    px = size or max(14, im.height // 28)
    band = int(px * 1.7)
    out = Image.new("RGB", (im.width, im.height + band), config.PICTURE_BACKGROUND)
    out.paste(im, (0, band if where == "top" else 0))
    d = ImageDraw.Draw(out)
    d.text((int(px * 0.5), (band if where == "bottom" else 0) + int(px * 0.3) + (im.height if where == "bottom" else 0)),
           text, fill=config.PICTURE_TEXT, font=_font(px))
    if credit:
        f = _font(max(9, px * 0.6))
        w = d.textlength(credit, font=f)
        d.text((out.width - w - 6, out.height - px * 0.9), credit, fill=config.PICTURE_TEXT, font=f)
    return out


def _grid(tiles, cols, title=None, credit=None):
    """Tiles (PIL images of one size) in rows of ``cols``, a title band on top and a credit at the bottom right."""
    from PIL import Image, ImageDraw

    w, h = tiles[0].size
    rows = (len(tiles) + cols - 1) // cols
    px = max(16, h // 22)
    top = int(px * 2.0) if title else 0
    foot = int(px * 1.2) if credit else 0
    sheet = Image.new("RGB", (w * cols, h * rows + top + foot), config.PICTURE_BACKGROUND)
    for i, t in enumerate(tiles):
        sheet.paste(t, ((i % cols) * w, top + (i // cols) * h))
    d = ImageDraw.Draw(sheet)
    if title:
        d.text((int(px * 0.6), int(px * 0.4)), title, fill=config.PICTURE_TEXT, font=_font(px * 1.1))
    if credit:
        f = _font(max(10, px * 0.6))
        d.text((sheet.width - d.textlength(credit, font=f) - 8, sheet.height - foot + int(px * 0.15)), credit,
               fill=config.PICTURE_TEXT, font=f)
    return sheet


def _save(img, path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        img.save(tmp, format="PNG")
    return path


def contact_sheet(scene, renderer, *, session=None, fresh=False, tile=None, credit=None):
    """The six views of the head after ``session`` (default: the last), healed or fresh: a PIL image."""
    k = scene.n_sessions if session is None else int(session)
    size = tile or config.PICTURE_TILE_PX
    tiles = [_label(renderer.image(view_shot(scene, v), k, fresh, size), v) for v in STANDARD_VIEWS]
    return _grid(tiles, 3, title=f"{_state_title(scene, k, fresh)}: six views", credit=credit)


def before_after(scene, renderer, *, tile=None, credit=None):
    size = tile or config.PICTURE_TILE_PX
    k = scene.n_sessions
    views = ("three-quarter", "top")
    shots = {(s, v): _label(renderer.image(view_shot(scene, v), s, False, size),
                            f"before, {v}" if s == 0 else f"healed after session {k}, {v}")
             for s in (0, k) for v in views}  # one state at a time
    return _grid([shots[(s, v)] for v in views for s in (0, k)], 2, title="Before and after", credit=credit)


def progression(scene, renderer, *, tile=None, credit=None):
    """Before, then healed after each session in its own shade: top and front views."""
    size = tile or config.PICTURE_TILE_PX
    states = list(range(scene.n_sessions + 1))
    views = ("top", "front")
    shots = {(k, v): _label(renderer.image(view_shot(scene, v), k, False, size), _state_title(scene, k, False))
             for k in states for v in views}  # one state at a time
    return _grid([shots[(k, v)] for v in views for k in states], len(states), title="Session by session (healed)",
                 credit=credit)


def closeup_anchors(scene) -> list:
    """Where close-ups look: (name, anchor (3,), normal (3,)): the hairline's middle, the crown, a scar, each where
    the plan has dots there, and the first reserved region left bare among the dots that none of them shows whole;
    the treated area's middle when it has none of them."""
    d = scene.dots
    origin, R = scene.frame
    q = (d.positions - origin) @ R.T
    out = []
    for name, zone, pick in (("hairline", "hairline", lambda m: np.argmin(np.abs(q[m, 0]) - 0.001 * q[m, 1])),
                             ("crown", "crown", None), ("scar", "scar", None)):
        m = np.flatnonzero(d.zone == zone)
        if len(m) < config.CLOSEUP_MIN_DOTS:
            continue
        if pick is None:  # the dot nearest the zone's middle
            c = d.positions[m].mean(axis=0)
            i = m[np.argmin(np.linalg.norm(d.positions[m] - c, axis=1))]
        else:
            i = m[pick(m)]
        out.append((name, d.positions[i], d.normals[i]))
    if not out and len(d):
        c = d.positions.mean(axis=0)
        i = int(np.argmin(np.linalg.norm(d.positions - c, axis=1)))
        out.append(("treated area", d.positions[i], d.normals[i]))
    # a reserved region among the dots (a mole), as it will be: bare skin, the dots around it
    bare = scene.field.left_bare
    for r in scene.plan.reserved if bare is not None else ():
        if r.center_mm is None:
            continue
        i = int(np.argmin(np.linalg.norm(scene.head.vertices - np.asarray(r.center_mm), axis=1)))
        c = scene.head.vertices[i]
        # (not when a close-up already shows it whole)
        shown = any(np.linalg.norm(c - a) < 0.5 * config.CLOSEUP_WIDTH_MM - r.radius_mm - 2.0 for _, a, _ in out)
        if bare[i] and not shown:
            out.append(("reserved region", c, scene.head.vertex_normals[i]))
            break
    return out


def closeups(scene, renderer, *, tile=None, credit=None, width_mm=None):
    """Close-ups at true scale where the plan has dots (:func:`closeup_anchors`), healed and fresh, with a scale."""
    from PIL import ImageDraw

    size = tile or config.PICTURE_TILE_PX
    width_mm = width_mm or config.CLOSEUP_WIDTH_MM
    k = scene.n_sessions
    anchors = closeup_anchors(scene)
    shots = {}
    for fresh in (False, True):  # one state at a time
        for name, p, n in anchors:
            shots[(name, fresh)] = renderer.image(closeup_shot(scene, p, n, width_mm * size[1] / size[0]), k, fresh,
                                                  size)
    tiles = []
    for name, p, n in anchors:
        for fresh in (False, True):
            im = _label(shots[(name, fresh)],
                        f"{name}, {'fresh' if fresh else 'healed'}, {width_mm:.0f} mm across")
            d = ImageDraw.Draw(im)
            bar = size[0] * config.CLOSEUP_SCALE_MM / width_mm
            y = im.height - 18
            d.rectangle([12, y, 12 + bar, y + 5], fill=config.PICTURE_TEXT)
            d.text((18 + bar, y - 8), f"{config.CLOSEUP_SCALE_MM:.0f} mm", fill=config.PICTURE_TEXT,
                   font=_font(14))
            tiles.append(im)
    return _grid(tiles, 2, title="Close-ups at true scale", credit=credit)


def turntable(scene, renderer, path, *, frames=None, size=None):
    """The healed head turning once about its up axis, as a GIF (imageio)."""
    import imageio.v3 as iio

    frames = frames or config.TURNTABLE_FRAMES
    size = size or config.TURNTABLE_PX
    base = view_shot(scene, "front")
    origin, R = scene.frame
    images = []
    for j in range(frames):
        a = 2 * math.pi * j / frames
        rot = R.T @ np.array([[math.cos(a), -math.sin(a), 0.0], [math.sin(a), math.cos(a), 0.0], [0, 0, 1.0]]) @ R
        pos = base.focal + rot @ (base.position - base.focal)
        # a slightly raised camera shows the top as it turns
        pos = pos + R[2] * config.TURNTABLE_RISE * np.linalg.norm(base.position - base.focal)
        images.append(renderer.image(Shot(pos, base.focal, R[2], base.view_angle), scene.n_sessions, False, size))
    path = Path(path)
    with atomic_path(path) as tmp:
        iio.imwrite(tmp, np.stack(images), extension=".gif", duration=int(1000 / config.TURNTABLE_FPS), loop=0)
    return path


def _state_title(scene, k, fresh):
    if k == 0:
        return "before"
    return f"{'fresh' if fresh else 'healed'} after session {k} of {scene.n_sessions}"


def render_standard(scene, out_dir, *, credit=None, turntable_gif=True, extra=None):
    """The standard set of pictures into ``out_dir`` (see the module docstring); returns their paths."""
    out_dir = Path(out_dir)
    r = Renderer(scene, config.PICTURE_TILE_PX)
    try:
        paths = [_save(contact_sheet(scene, r, credit=credit), out_dir / "preview.png"),
                 _save(before_after(scene, r, credit=credit), out_dir / "preview-before-after.png"),
                 _save(progression(scene, r, credit=credit), out_dir / "preview-sessions.png"),
                 _save(closeups(scene, r, credit=credit), out_dir / "preview-closeups.png")]
        if turntable_gif:
            paths.append(turntable(scene, r, out_dir / "preview-turntable.gif"))
        paths.append(_save(design_sheet(scene, r, extra=extra, credit=credit), out_dir / "design.png"))
    finally:
        r.close()
    return paths


# ---- the design's maps ---------------------------------------------------------------------------------------------

#: colours of zones and shades in the maps (sRGB 0-1); other categories take CATEGORY_RGB in turn; untreated skin grey
ZONE_RGB = {"hairline": (0.89, 0.47, 0.20), "front": (0.95, 0.78, 0.30), "mid": (0.55, 0.75, 0.35),
            "crown": (0.30, 0.60, 0.80), "sides": (0.60, 0.45, 0.75), "back": (0.85, 0.55, 0.65),
            "scar": (0.75, 0.20, 0.25)}
SHADE_RGB = {"light": (0.60, 0.68, 0.82), "medium": (0.33, 0.40, 0.58), "dark": (0.10, 0.12, 0.22)}
CATEGORY_RGB = ((0.20, 0.45, 0.75), (0.90, 0.55, 0.15), (0.35, 0.65, 0.30), (0.75, 0.25, 0.30), (0.55, 0.40, 0.70))
UNTREATED_RGB = (0.78, 0.78, 0.78)
DESIGN_VIEWS = ("three-quarter", "back-left")


def design_maps(scene, extra=None) -> list:
    """The design field as maps: (title, kind, values per vertex, names or unit). kind 'scalar' (untreated skin:
    nan) or 'category' (untreated: -1)."""
    f = scene.field
    treated = scene.treated
    for name in ("zone", "depth_mm", "needle"):
        if np.shape(getattr(f, name)) != treated.shape:
            raise InputError(f"field.{name} must have one value per head vertex {treated.shape}, not "
                             f"{np.shape(getattr(f, name))}")
    maps = [("target density", "scalar", np.where(treated, f.density_per_cm2, np.nan), "dots/cm2"),
            ("zone", "category", np.where(treated, f.zone, -1), list(f.zone_names)),
            ("depth", "scalar", np.where(treated, f.depth_mm, np.nan), "mm"),
            ("needle", "category", np.where(treated, f.needle, -1), list(f.needle_names))]
    if f.shade is not None:
        for k in range(len(f.shade)):
            maps.append((f"shade, session {k + 1}", "category", np.where(treated, f.shade[k], -1),
                         list(f.shade_names)))
    for name, arr in (extra or {}).items():
        arr = np.asarray(arr, dtype=np.float64)
        maps.append((name, "scalar", np.where(arr > 0, arr, np.nan) if arr.shape == treated.shape else arr, ""))
    for name, _, values, _ in maps:
        if np.shape(values) != treated.shape:
            raise InputError(f"the {name} map must have one value per head vertex {treated.shape}, not "
                             f"{np.shape(values)}")
    return maps


def map_colours(kind, values, names_or_unit, cmap="viridis"):
    """Per-vertex rgb (n,3) of a map and its legend: [(label, rgb), ...] for categories, or (lo, hi, cmap) for a
    scalar map (lo == hi: uniform)."""
    n = len(values)
    rgb = np.tile(np.asarray(UNTREATED_RGB), (n, 1))
    if kind == "category":
        names = names_or_unit
        legend = []
        for k, name in enumerate(names):
            m = values == k
            if m.any():
                c = ZONE_RGB.get(name, SHADE_RGB.get(name, CATEGORY_RGB[k % len(CATEGORY_RGB)]))
                rgb[m] = c
                legend.append((name, c))
        return rgb, legend
    import matplotlib

    ok = np.isfinite(values)
    if not ok.any():
        return rgb, (np.nan, np.nan, cmap)
    lo, hi = float(values[ok].min()), float(values[ok].max())
    t = (values[ok] - lo) / (hi - lo) if hi > lo else np.full(ok.sum(), 0.6)
    rgb[ok] = matplotlib.colormaps[cmap](t)[:, :3]
    return rgb, (lo, hi, cmap)


def _legend_panel(width, title, unit, legend, px):
    """A PIL panel under a map: its categories as swatches, or its colour bar with the two ends (one swatch and
    "x everywhere" when the map is uniform)."""
    from PIL import Image, ImageDraw

    import matplotlib

    rows = len(legend) if isinstance(legend, list) else 2
    h = int(px * (2.2 + 1.5 * rows))
    im = Image.new("RGB", (width, h), config.PICTURE_BACKGROUND)
    d = ImageDraw.Draw(im)
    f = _font(px)
    d.text((int(px * 0.6), int(px * 0.3)), title + (f", {unit}" if unit else ""), fill=config.PICTURE_TEXT, font=f)
    y = int(px * 1.9)
    if isinstance(legend, list):
        if not legend:
            d.text((int(px * 0.6), y), "nothing treated", fill=config.PICTURE_TEXT, font=f)
        for name, c in legend:
            d.rectangle([int(px * 0.6), y, int(px * 1.6), y + px], fill=tuple(int(255 * x) for x in c))
            d.text((int(px * 2.0), y - 2), name, fill=config.PICTURE_TEXT, font=f)
            y += int(px * 1.5)
        return im
    lo, hi, cmap = legend
    fmt = (lambda v: f"{v:.2f}") if np.isfinite(hi) and hi < 10 else (lambda v: f"{v:.0f}")
    if not np.isfinite(lo):
        d.text((int(px * 0.6), y), "nothing treated", fill=config.PICTURE_TEXT, font=f)
    elif hi <= lo:
        c = matplotlib.colormaps[cmap](0.6)[:3]
        d.rectangle([int(px * 0.6), y, int(px * 1.6), y + px], fill=tuple(int(255 * x) for x in c))
        d.text((int(px * 2.0), y - 2), f"{fmt(lo)} {unit} everywhere treated".replace("  ", " "),
               fill=config.PICTURE_TEXT, font=f)
    else:
        x0, x1 = int(px * 0.6), width - int(px * 0.6)
        bar = matplotlib.colormaps[cmap](np.linspace(0, 1, max(x1 - x0, 2)))[:, :3]
        for i, c in enumerate(bar):
            d.line([(x0 + i, y), (x0 + i, y + px)], fill=tuple(int(255 * x) for x in c))
        d.text((x0, y + px + 2), fmt(lo), fill=config.PICTURE_TEXT, font=f)
        t = fmt(hi)
        d.text((x1 - d.textlength(t, font=f), y + px + 2), t, fill=config.PICTURE_TEXT, font=f)
    return im


def design_sheet(scene, renderer, *, extra=None, tile=None, credit=None):
    """The design field's maps, each from two views with its legend beside the head (below it, never over it)."""
    from PIL import Image

    size = tile or config.DESIGN_TILE_PX
    px = max(14, size[0] // 22)
    columns = []
    for title, kind, values, names in design_maps(scene, extra):
        rgb, legend = map_colours(kind, values, names, cmap="plasma" if title == "depth" else "viridis")
        renderer.show_colours(rgb)
        views = [renderer.image(view_shot(scene, v), None, size=size) for v in DESIGN_VIEWS]
        panel = _legend_panel(size[0], title, names if kind == "scalar" else "", legend, px)
        col = Image.new("RGB", (size[0], 2 * size[1] + panel.height), config.PICTURE_BACKGROUND)
        col.paste(Image.fromarray(views[0]), (0, 0))
        col.paste(Image.fromarray(views[1]), (0, size[1]))
        col.paste(panel, (0, 2 * size[1]))
        columns.append(col)
    h = max(c.height for c in columns)
    tiles = []
    for c in columns:
        t = Image.new("RGB", (c.width, h), config.PICTURE_BACKGROUND)
        t.paste(c, (0, 0))
        tiles.append(t)
    return _grid(tiles, len(tiles), title="The design on the head (grey: not treated)", credit=credit)
