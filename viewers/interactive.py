"""The plan in a window to turn: ``scalp3d view DIR`` (issue 13, point 4).

:func:`open_view` puts a :class:`~scalp3d.viewers.scene.Scene` in a PyVista window: the head in the healed look (the
skin's colour per vertex times the baked dot texture, as :class:`scalp3d.viewers.pictures.Renderer` draws it), turned
with the mouse (trackball) and zoomed with the wheel. Its controls, each a widget and a key:

* a **session slider** (top right; Left/Right arrows, keys 0-9): 0 is the head before treatment, k the head healed
  after session k, each session's dots in their own pigment;
* **fresh** (``f``): session k as it looks the first days (darker, wider dots on reddened skin), the ones before healed;
* **before** (``b``): a quick switch between the head before treatment and the chosen session;
* **heat maps** instead of the look, one at a time (checkboxes, radio-like; ``m`` the next, ``l`` back to the look):
  target density per cm2 (``d``), zone (``z``), needle depth (``n``), spacing quality (``s``);
* **hairline** (``h``): the border of the treated area as a line; **landmarks** (``k``): the six landmarks, labelled;
* ``r`` the starting view again, Up/Down zoom, ``q`` closes.

A title says what is shown and a second line how to read it; scalar maps have a colour bar, the zone map a legend.

Spacing quality is drawn per dot, as points coloured on a diverging scale: each dot's distance to its nearest
neighbour among the dots placed up to the chosen session, divided by its local target spacing (the smaller of the
two dots' :func:`scalp3d.placement.local_spacing_mm`, widened by the session's share of the dots as the quality
figures do: exactly ``quality.spread_figures``'s ratio). 1 is hexagonal packing at the planned density; the
scale runs from the spacing floor (0.5: two dots as close as the plan ever allows, red) to 1.5 (a gap, blue).
Per dot rather than interpolated over the skin: the figure belongs to a dot and its neighbour, a clump is two red
dots side by side, and an interpolation would smear it into a pink patch of skin that holds no dot.

Everything runs off screen too (``off_screen=True``: EGL, no display), which is how the tests drive it; on screen,
:func:`no_display_reason` says in one line why a window cannot open, before anything tries to.
"""
from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import sys
import textwrap
from pathlib import Path

import numpy as np

from scalp3d import config

from .pictures import HeadLook

#: the heat maps, in the order ``m`` walks through them: name -> (key, checkbox label)
MAPS = {"density": ("d", "density per cm2"), "zone": ("z", "zone"), "depth": ("n", "needle depth"),
        "spacing": ("s", "spacing quality")}
#: spacing quality: the diverging scale (nn / local spacing): its range (the spacing floor to a gap), its colour map
#: (white at the median of the dots shown) and the number of colours in its table
SPACING_CLIM = (config.SPACING_FLOOR_FRACTION, 2.0 - config.SPACING_FLOOR_FRACTION)
SPACING_CMAP = "RdBu"
SPACING_COLOURS = 256
#: colour maps of the scalar maps (those of design.png)
MAP_CMAPS = {"density": "viridis", "depth": "plasma"}
#: spacing dots drawn this far above the skin (mm) and this many pixels across
SPACING_LIFT_MM = 0.3
SPACING_POINT_PX = 6.0
#: the hairline: colour, width (pixels), lifted off the skin (mm)
HAIRLINE_RGB = "#d4147a"
HAIRLINE_PX = 4.0
HAIRLINE_LIFT_MM = 0.4
#: landmarks: colour, point size (pixels), lifted off the skin (mm), their names on screen
LANDMARK_RGB = "#1f5fd1"
LANDMARK_PX = 16.0
LANDMARK_LIFT_MM = 1.5
#: a label shows when nothing lies in front of its landmark by more than this share of the depth range
LANDMARK_LABEL_TOLERANCE = 0.02
LANDMARK_LABELS = {"nasion": "nasion (top of the nose)", "glabella": "glabella (between the brows)",
                   "lpa": "left ear (LPA)", "rpa": "right ear (RPA)", "vertex": "vertex (top)",
                   "inion": "inion (back)"}
#: the zone legend: its top left corner, swatch size and row pitch (normalized window coordinates)
LEGEND_LEFT, LEGEND_TOP = 0.87, 0.72
LEGEND_SWATCH = (0.018, 0.024)
LEGEND_PITCH = 0.036
#: the head in a map: plain light grey where the map has nothing to show
MAP_BASE_RGB = (0.80, 0.80, 0.80)
#: the camera at the start (and on ``r``): one of pictures.VIEWS, pulled back this much to leave room for the controls
START_VIEW = "three-quarter"
START_PULL_BACK = 1.12
#: controls: checkbox side (pixels), row pitch, left margin, lowest row's height above the window's bottom
BOX_PX = 22
ROW_PX = 30
LEFT_PX = 12
BOTTOM_PX = 62
CONTROL_ON_RGB = "#2f6fdf"
CONTROL_OFF_RGB = "#ffffff"
CONTROL_EDGE_RGB = "#8a8f98"
#: font sizes (VTK points): the title, the explanation and labels, the help line
TITLE_FONT = 18
TEXT_FONT = 11
HELP_FONT = 10

HELP = ("Drag: turn    Wheel or Up/Down: zoom    r: reset view    q: close    Left/Right or 0-9: session    "
        "b: before/after    f: fresh/healed\n"
        "m: next map (d density, z zone, n depth, s spacing, l the look)    h: hairline    k: landmarks")
#: the explanation under the title is wrapped to this share of the window's width (the slider is to its right),
#: at about this many pixels per character of TEXT_FONT
EXPLAIN_WIDTH = 0.50
CHAR_PX = 9.6
#: the help line is wrapped to the window's width at about this many pixels per character of HELP_FONT, each line
#: about HELP_LINE_PX high
HELP_CHAR_PX = 8.4
HELP_LINE_PX = 19


def no_display_reason() -> str | None:
    """Why no interactive window can open here, in one line; None when one can.

    Linux with neither DISPLAY nor WAYLAND_DISPLAY set (an SSH session, a container, a server), a DISPLAY no X server
    answers, only Wayland (VTK's window needs X: XWayland), no pyvista, or a VTK built to render off screen only.
    """
    alt = "; `scalp3d preview` writes pictures and `scalp3d share` a file to open in a browser instead"
    try:
        import pyvista  # noqa: F401
        import vtk  # noqa: F401
    except ImportError:
        return "the 3D view needs pyvista: pip install pyvista" + alt
    if sys.platform.startswith("linux"):
        display, wayland = os.environ.get("DISPLAY"), os.environ.get("WAYLAND_DISPLAY")
        if not display and not wayland:
            return ("no display: neither DISPLAY nor WAYLAND_DISPLAY is set (a server, a container, or SSH without "
                    "-X)" + alt)
        if not display:
            return (f"only Wayland ({wayland}) and no DISPLAY: VTK's window needs an X server (XWayland); start one "
                    "or log in to an X session" + alt)
        x11 = ctypes.util.find_library("X11")
        if x11 is None:
            return "no X11 client library (libX11): VTK cannot open a window" + alt
        try:
            lib = ctypes.CDLL(x11)
            lib.XOpenDisplay.restype = ctypes.c_void_p
            lib.XOpenDisplay.argtypes = [ctypes.c_char_p]
            lib.XCloseDisplay.argtypes = [ctypes.c_void_p]
            dpy = lib.XOpenDisplay(display.encode())
        except (OSError, AttributeError):
            dpy = 1  # cannot ask: let VTK try
        if not dpy:
            return f"cannot open display '{display}': no X server answers there (is the session still open?)" + alt
        if dpy != 1:
            lib.XCloseDisplay(dpy)
    kind = _render_window_class()
    if kind in ("vtkEGLRenderWindow", "vtkOSOpenGLRenderWindow"):
        return f"this VTK renders off screen only ({kind}): it cannot open a window" + alt
    return None


def _render_window_class() -> str:
    import vtk

    w = vtk.vtkRenderWindow()
    try:
        return w.GetClassName()
    finally:
        w.Finalize()


def open_view(scene, *, off_screen=False, window_size=(1280, 900)):
    """A :class:`View` of ``scene``; on screen, the window is shown and this returns when it is closed."""
    view = View(scene, off_screen=off_screen, window_size=window_size)
    if not off_screen:
        view.show()
    return view


class WindowShots:
    """What a window's scripts and tests read of it (shared by :class:`View` and the live design window): a
    screenshot, the image, the head's box and world points in pixels. Needs ``plotter``, ``mesh`` and ``_render``."""

    def screenshot(self, path) -> Path:
        """The window as it is now, as a PNG."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._render()
        self.plotter.screenshot(str(path))
        return path

    def image(self) -> np.ndarray:
        """(h, w, 3) uint8: the window as it is now."""
        self._render()
        return np.asarray(self.plotter.screenshot(return_img=True))[..., :3].copy()

    def head_box(self):
        """(x0, y0, x1, y1) pixels (image rows from the top) of the head's drawn part in the window now."""
        xy = self.to_pixels(self.mesh.vertices)
        return (int(xy[:, 0].min()), int(xy[:, 1].min()), int(xy[:, 0].max()) + 1, int(xy[:, 1].max()) + 1)

    def to_pixels(self, points) -> np.ndarray:
        """(n,2) image pixel coordinates (x right, y down from the top row) of world ``points`` (n,3)."""
        ren = self.plotter.renderer
        _, h = self.plotter.window_size
        self.plotter.reset_camera_clipping_range()
        m = _matrix(ren)
        pts = np.column_stack([np.asarray(points, dtype=np.float64), np.ones(len(points))]) @ m.T
        ndc = pts[:, :3] / pts[:, 3:4]
        w, _ = self.plotter.window_size
        x0, y0, x1, y1 = ren.GetViewport()
        x = (x0 + (ndc[:, 0] + 1) / 2 * (x1 - x0)) * w
        y = (y0 + (ndc[:, 1] + 1) / 2 * (y1 - y0)) * h
        return np.column_stack([x, h - y])


class View(WindowShots):
    """The window's state and its actors. Each control calls one method (:meth:`set_session`, :meth:`set_fresh`,
    :meth:`toggle_before`, :meth:`show_map`, :meth:`show_hairline`, :meth:`show_landmarks`); scripts call them too, or
    drive the widgets as a user does: the one slider of ``plotter``, :attr:`checkboxes` by name, key events."""

    def __init__(self, scene, *, off_screen=False, window_size=(1280, 900)):
        from .preview import _egl_window, _import_pyvista

        self.pv = pv = _import_pyvista()
        self.scene = scene
        self.off_screen = bool(off_screen)
        self.session = scene.n_sessions
        self.fresh = False
        self.before = False
        self.map = None
        self.hairline = False
        self.landmarks = False
        self._batch = True  # no render while the window is built
        self._shown_state = None
        self._look = None
        self._maps = {}       # name -> (actor, scalar bar or None, legend entries or None)
        self._spacing = {}    # session -> (points actor, scalar bar)
        self._ratios = {}     # session -> spacing_ratio
        self._dot_density = None
        self._legend_actors = []
        self._map_base = None
        self._hairline_actor = None
        self._landmark_actors = None

        mesh = scene.display_mesh()
        self.mesh = mesh
        #: the controls' and texts' scale: pixel sizes and fonts are set for a 1280 x 900 window
        self._ui = float(np.clip(min(window_size[0] / 1280.0, window_size[1] / 900.0), 0.6, 2.0))
        with _egl_window() if off_screen else contextlib.nullcontext():
            self.plotter = p = pv.Plotter(off_screen=self.off_screen, window_size=list(window_size),
                                          title=f"scalp3d view{': ' + scene.source if scene.source else ''}")
        p.set_background(config.PICTURE_BACKGROUND)
        p.enable_trackball_style()
        # VTK's own one-letter keys (w wireframe, s surface, 3 stereo, f fly to, p pick, e exit...) would clash with
        # ours: a CharEvent observer on the style replaces them (vtkInteractorStyle then invokes it instead)
        style = p.iren.style
        if style is not None:
            style.AddObserver("CharEvent", lambda *_: None)
        self.checkboxes = {}  # name -> the checkbox widget: fresh, before, hairline, landmarks, map:<name>
        self.pd = self._head_polydata()
        self.actor = None
        self._set_look_state()
        self._build_text()
        self._build_controls()
        self._bind_keys()
        self.reset_view()
        self._batch = False
        self._refresh()

    # ---- what the controls call ---------------------------------------------------------------------------------
    def set_session(self, k):
        """Show the head after session ``k`` (0: before; clipped to 0..K); leaves the before switch."""
        k = min(max(round(float(k)), 0), self.scene.n_sessions)
        self.session = k
        self.before = False
        self._refresh()

    def set_fresh(self, fresh: bool):
        """The chosen session fresh (the first days) or healed."""
        self.fresh = bool(fresh)
        self._refresh()

    def toggle_before(self):
        """Switch between the head before treatment and the chosen session."""
        self.before = not self.before
        self._refresh()

    def show_map(self, name):
        """A heat map instead of the look (one of :data:`MAPS`), or the look again (None)."""
        if name is not None and name not in MAPS:
            raise ValueError(f"unknown map '{name}'; use one of {', '.join(MAPS)} or None")
        self.map = name
        self._refresh()

    def next_map(self):
        order = [None, *MAPS]
        self.show_map(order[(order.index(self.map) + 1) % len(order)])

    def show_hairline(self, on: bool):
        self.hairline = bool(on)
        self._refresh()

    def show_landmarks(self, on: bool):
        self.landmarks = bool(on)
        self._refresh()

    def reset_view(self):
        """The starting camera: the front three-quarter view, the whole head in the window."""
        from .pictures import view_shot

        w, h = self.plotter.window_size
        shot = view_shot(self.scene, START_VIEW, aspect=w / h)
        cam = self.plotter.camera
        cam.position = tuple(shot.focal + (shot.position - shot.focal) * START_PULL_BACK)
        cam.focal_point = tuple(shot.focal)
        cam.up = tuple(shot.up)
        cam.view_angle = shot.view_angle
        self.plotter.reset_camera_clipping_range()
        self._render()

    def show(self):
        """Open the window and wait until it is closed (on screen only)."""
        self.plotter.show()

    def close(self):
        self.plotter.close()

    # ---- what is shown ------------------------------------------------------------------------------------------
    @property
    def shown_session(self) -> int:
        return 0 if self.before else self.session

    def describe(self):
        """(title, explanation) of what the window shows now."""
        sc = self.scene
        k = self.shown_session
        shades = sc.plan.sessions.shades
        if self.map is None:
            if k == 0:
                return ("Before treatment", "The head as it is today: no pigment yet.")
            how = "Fresh: the first days after the session" if self.fresh else "Healed: as it looks once settled"
            title = f"{'Fresh' if self.fresh else 'Healed'} after session {k} of {sc.n_sessions}"
            return (title, f"{how}. Session {k} adds its dots in the '{shades[k - 1]}' pigment"
                           + (f" between those of the sessions before ({', '.join(shades[:k - 1])})." if k > 1
                              else "."))
        if self.map == "density":
            return ("Map: target density", "Dots per cm2 the plan aims at; grey: untreated.")
        if self.map == "zone":
            return ("Map: zones", "Each zone of the plan in its colour; grey: untreated.")
        if self.map == "depth":
            d = sc.field.depth_mm[sc.treated]
            if len(d) and np.ptp(d) < 1e-6:
                return ("Map: needle depth", f"{d[0]:.2f} mm everywhere treated; grey: untreated.")
            return ("Map: needle depth", "How deep the needle goes, mm; grey: untreated.")
        if k == 0:
            return ("Map: spacing quality", "Before treatment: no dots yet. Move the session slider.")
        med = float(np.median(self.spacing_ratio(k)[1]))
        return (f"Map: spacing quality, dots up to session {k}",
                (f"Each dot: distance to its nearest dot / planned spacing (1: perfect hexagonal packing). White: "
                f"typical here ({med:.2f}); red: closer, down to 0.5 (the closest allowed); blue: farther, a gap."))

    # ---- building the window -----------------------------------------------------------------------------------
    def _head_polydata(self):
        pv, mesh = self.pv, self.mesh
        pd = pv.PolyData.from_regular_faces(mesh.vertices, mesh.faces)
        pd.point_data["Normals"] = mesh.normals
        pd.point_data.active_normals_name = "Normals"
        return pd

    def _set_look_state(self):
        """The head's look after the shown session, as the pictures set it (:class:`pictures.HeadLook`)."""
        key = (self.shown_session, self.fresh and self.shown_session > 0)
        if key == self._shown_state:
            return
        if self._look is None:
            self._look = HeadLook(self.pv, self.plotter, self.scene, self.mesh, self.pd, reset_camera=False)
        self.actor = self._look.show(key)
        self._shown_state = key

    def _build_text(self):
        p = self.plotter
        self._title = p.add_text("", position=(0.012, 0.945), viewport=True, font_size=self._px(TITLE_FONT),
                                 color=config.PICTURE_TEXT, name="title")
        self._explain = p.add_text("", position=(0.012, 0.935), viewport=True, font_size=self._px(TEXT_FONT),
                                   color=config.PICTURE_TEXT, name="explain")
        self._explain.GetTextProperty().SetVerticalJustificationToTop()  # lines run down from under the title
        w = self.plotter.window_size[0]
        wrapped = "\n".join(textwrap.fill(line, max(int((w - 2 * self._px(LEFT_PX)) / (HELP_CHAR_PX * self._ui)), 30))
                             for line in HELP.split("\n"))
        self._help = p.add_text(wrapped, position=(self._px(LEFT_PX), self._px(6)), font_size=self._px(HELP_FONT),
                                color=config.PICTURE_TEXT, name="help")

    def _build_controls(self):
        p = self.plotter
        K = self.scene.n_sessions
        self._slider = p.add_slider_widget(self._on_slider, (0, K), value=self.session,
                                           title="session (0 = before)", pointa=(0.60, 0.93), pointb=(0.96, 0.93),
                                           color=config.PICTURE_TEXT, fmt="%.0f", interaction_event="end",
                                           style="modern", title_height=0.022, tube_width=0.008,
                                           slider_width=0.025)
        rows = [("fresh", "fresh (first days)  [f]", lambda on: self.set_fresh(on)),
                ("before", "before treatment  [b]", lambda on: self._on_before(on)),
                ("hairline", "hairline  [h]", lambda on: self.show_hairline(on)),
                ("landmarks", "landmarks  [k]", lambda on: self.show_landmarks(on))]
        rows += [(f"map:{name}", f"map: {label}  [{key}]", self._map_callback(name))
                 for name, (key, label) in MAPS.items()]
        lines = self._help.GetInput().count("\n") + 1
        y = self._px(BOTTOM_PX + HELP_LINE_PX * (lines - 2)) + self._px(ROW_PX) * (len(rows) - 1)
        for name, label, cb in rows:
            w = p.add_checkbox_button_widget(cb, value=False, position=(self._px(LEFT_PX), y), size=self._px(BOX_PX),
                                             border_size=2,
                                             color_on=CONTROL_ON_RGB, color_off=CONTROL_OFF_RGB,
                                             background_color=CONTROL_EDGE_RGB)
            p.add_text(label, position=(self._px(LEFT_PX + BOX_PX + 8), y + self._px(3)), font_size=self._px(TEXT_FONT),
                       color=config.PICTURE_TEXT, name=f"label-{name}")
            self.checkboxes[name] = w
            y -= self._px(ROW_PX)

    def _map_callback(self, name):
        def cb(on):
            if on:
                self.show_map(name)
            elif self.map == name:
                self.show_map(None)
        return cb

    def _on_slider(self, value):
        if getattr(self, "_batch", True):
            return
        self.set_session(value)

    def _on_before(self, on):
        if bool(on) != self.before:
            self.toggle_before()

    def _bind_keys(self):
        p = self.plotter
        for key in ("b", "v", "C", "plus", "minus"):  # pyvista's defaults that clash or mean nothing here
            p.clear_events_for_key(key)
        p.add_key_event("Right", lambda: self.set_session(self.session + 1))
        p.add_key_event("Left", lambda: self.set_session(self.session - 1))
        for k in range(10):
            p.add_key_event(str(k), lambda k=k: self.set_session(k))
        p.add_key_event("b", self.toggle_before)
        p.add_key_event("f", lambda: self.set_fresh(not self.fresh))
        p.add_key_event("m", self.next_map)
        p.add_key_event("l", lambda: self.show_map(None))
        for name, (key, _) in MAPS.items():
            p.add_key_event(key, lambda name=name: self.show_map(None if self.map == name else name))
        p.add_key_event("h", lambda: self.show_hairline(not self.hairline))
        p.add_key_event("k", lambda: self.show_landmarks(not self.landmarks))
        p.add_key_event("r", self.reset_view)

    # ---- bringing the window up to date -------------------------------------------------------------------------
    def _refresh(self):
        if self._batch:
            return
        self._set_look_state()
        self.actor.SetVisibility(self.map is None)
        base = self.map is not None and self.map == "spacing"
        if base and self._map_base is None:
            self._map_base = self.plotter.add_mesh(self.pd.copy(deep=False), color=MAP_BASE_RGB, smooth_shading=True,
                                                   ambient=config.PICTURE_AMBIENT, reset_camera=False,
                                                   show_scalar_bar=False)
        if self._map_base is not None:
            self._map_base.SetVisibility(base)
        for name in MAPS:
            if name != "spacing" and (name == self.map or name in self._maps):
                self._map_actor(name, visible=name == self.map)
        for k in list(self._spacing):
            self._spacing[k][0].SetVisibility(False)
            if self._spacing[k][1] is not None:
                self._spacing[k][1].SetVisibility(False)
        if self.map == "spacing" and self.shown_session > 0:
            actor, bar = self._spacing_actor(self.shown_session)
            actor.SetVisibility(True)
            bar.SetVisibility(True)
        self._zone_legend(self.map == "zone")
        if self.hairline or self._hairline_actor is not None:
            self._hairline().SetVisibility(self.hairline)
        if self.landmarks or self._landmark_actors is not None:
            for a in self._landmarks():
                a.SetVisibility(self.landmarks)
        title, explain = self.describe()
        overlays = [what for on, what in ((self.hairline, "pink line: the border of the treated area"),
                                          (self.landmarks, "blue points: the landmarks the plan is measured from"))
                    if on]
        if overlays:
            explain += " " + "; ".join(overlays).capitalize() + "."
        self._title.SetInput(title)
        w = self.plotter.window_size[0]
        self._explain.SetInput(textwrap.fill(explain, max(int(EXPLAIN_WIDTH * w / (CHAR_PX * self._ui)), 30)))
        # the widgets show the state, whoever changed it
        self._slider.GetRepresentation().SetValue(self.session)
        states = {"fresh": self.fresh, "before": self.before, "hairline": self.hairline,
                  "landmarks": self.landmarks, **{f"map:{n}": self.map == n for n in MAPS}}
        for name, w in self.checkboxes.items():
            w.GetRepresentation().SetState(int(states[name]))
        self._render()

    def _px(self, n) -> int:
        return max(round(n * self._ui), 1)

    def _render(self):
        if not self._batch:
            self.plotter.render()

    def _map_actor(self, name, visible):
        if name not in self._maps:
            from .pictures import UNTREATED_RGB, map_colours

            sc = self.scene
            treated = sc.treated
            pd = self.pd.copy(deep=False)
            bar = legend = None
            common = {"smooth_shading": True, "ambient": config.PICTURE_AMBIENT, "reset_camera": False,
                      "show_scalar_bar": False}
            if name == "zone":  # the colours of design.png
                rgb, legend = map_colours("category", np.where(treated, sc.field.zone, -1), list(sc.field.zone_names))
                pd.point_data["zone"] = np.round(self.mesh.per_vertex(rgb) * 255).astype(np.uint8)
                actor = self.plotter.add_mesh(pd, scalars="zone", rgb=True, **common)
                legend = [[n, c] for n, c in legend]
            else:
                values = sc.field.density_per_cm2 if name == "density" else sc.field.depth_mm
                v = np.where(treated, values, np.nan)
                pd.point_data[name] = self.mesh.per_vertex(v)
                finite = v[np.isfinite(v)]
                lo, hi = (float(finite.min()), float(finite.max())) if len(finite) else (0.0, 1.0)
                uniform = hi - lo < 1e-6
                if uniform:  # one colour, where design.png puts it (0.6 along the map); the title says the value
                    w = max(abs(lo), 1.0)
                    lo, hi = lo - 0.6 * w, hi + 0.4 * w
                title = "dots per cm2" if name == "density" else "depth, mm"
                actor = self.plotter.add_mesh(pd, scalars=name, cmap=MAP_CMAPS[name],
                                              clim=(lo, hi), nan_color=UNTREATED_RGB, **common)
                if not uniform:
                    bar = self._bar(actor, title, "%.0f" if hi >= 10 else "%.2f")
            self._maps[name] = (actor, bar, legend)
        actor, bar, _ = self._maps[name]
        actor.SetVisibility(visible)
        if bar is not None:
            bar.SetVisibility(visible)

    def _bar(self, actor, title, fmt):
        return self.plotter.add_scalar_bar(title=title, mapper=actor.mapper, vertical=True, position_x=0.90,
                                           position_y=0.25, width=0.05, height=0.5, n_labels=5, fmt=fmt,
                                           color=config.PICTURE_TEXT, title_font_size=14, label_font_size=12)

    def _zone_legend(self, on):
        """The zones' colours as swatches at the right edge, labels in the text colour (made once, then shown or
        hidden)."""
        if on and not self._legend_actors:
            import vtk

            y = LEGEND_TOP
            for name, c in self._maps["zone"][2]:
                x0, x1, y0, y1 = LEGEND_LEFT, LEGEND_LEFT + LEGEND_SWATCH[0], y - LEGEND_SWATCH[1], y
                pts = vtk.vtkPoints()
                for x_, y_ in ((x0, y0), (x1, y0), (x1, y1), (x0, y1)):
                    pts.InsertNextPoint(x_, y_, 0.0)
                quad = vtk.vtkCellArray()
                quad.InsertNextCell(4, [0, 1, 2, 3])
                poly = vtk.vtkPolyData()
                poly.SetPoints(pts)
                poly.SetPolys(quad)
                coord = vtk.vtkCoordinate()
                coord.SetCoordinateSystemToNormalizedViewport()
                mapper = vtk.vtkPolyDataMapper2D()
                mapper.SetInputData(poly)
                mapper.SetTransformCoordinate(coord)
                sw = vtk.vtkActor2D()
                sw.SetMapper(mapper)
                sw.GetProperty().SetColor(*c)
                self.plotter.renderer.AddViewProp(sw)
                label = self.plotter.add_text(name, position=(x1 + 0.008, y0), viewport=True,
                                              font_size=self._px(TEXT_FONT),
                                              color=config.PICTURE_TEXT, name=f"legend-{name}")
                self._legend_actors += [sw, label]
                y -= LEGEND_PITCH
        for a in self._legend_actors:
            a.SetVisibility(on)

    def spacing_ratio(self, k):
        """(positions (n,3), ratio (n,)) of the dots placed up to session ``k``: each one's nearest-neighbour
        distance over its local target spacing, as ``quality.spread_figures`` measures it (see the module docstring)."""
        from scipy.spatial import cKDTree

        from scalp3d.placement import local_spacing_mm

        if k in self._ratios:
            return self._ratios[k]
        sc = self.scene
        d = sc.dots
        m = d.session <= k
        pos = d.positions[m]
        if len(pos) < 2:
            return pos, np.ones(len(pos))
        if self._dot_density is None:
            self._dot_density = self._density_at(d.positions)
        dens = self._dot_density[m]
        peak = float(sc.field.density_per_cm2.max())
        share = float(sc.plan.sessions.fractions[k - 1])
        spacing = local_spacing_mm(dens, peak) / np.sqrt(share)
        nn, near = cKDTree(pos).query(pos, k=2)
        self._ratios[k] = pos, nn[:, 1] / np.minimum(spacing, spacing[near[:, 1]])
        return self._ratios[k]

    def _density_at(self, points):
        """The design's density at ``points`` on the skin: barycentric on the closest triangle, as the quality figures
        take it at each dot."""
        from scalp3d.proximity import SurfaceQuery

        head = self.scene.head
        q, _, fid = SurfaceQuery(head).closest(points)
        a, b, c = (head.vertices[head.faces[fid, i]] for i in range(3))
        v0, v1, v2 = b - a, c - a, q - a
        d00, d01, d11 = (v0 * v0).sum(1), (v0 * v1).sum(1), (v1 * v1).sum(1)
        d20, d21 = (v2 * v0).sum(1), (v2 * v1).sum(1)
        den = np.maximum(d00 * d11 - d01 ** 2, 1e-300)
        wb = (d11 * d20 - d01 * d21) / den
        wc = (d00 * d21 - d01 * d20) / den
        bary = np.clip(np.column_stack([1.0 - wb - wc, wb, wc]), 0.0, 1.0)
        bary /= bary.sum(axis=1, keepdims=True)
        return (bary * self.scene.field.density_per_cm2[head.faces[fid]]).sum(axis=1)

    def _spacing_actor(self, k):
        if k not in self._spacing:
            d = self.scene.dots
            m = d.session <= k
            pos, ratio = self.spacing_ratio(k)
            cloud = self.pv.PolyData(pos + d.normals[m] * SPACING_LIFT_MM)
            cloud.point_data["spacing"] = ratio
            actor = self.plotter.add_mesh(cloud, scalars="spacing", cmap=spacing_colours(float(np.median(ratio))),
                                          clim=SPACING_CLIM, n_colors=SPACING_COLOURS,
                                          point_size=SPACING_POINT_PX, render_points_as_spheres=True,
                                          show_scalar_bar=False, reset_camera=False, lighting=False)
            bar = self._bar(actor, f"spacing, session {k}", "%.2f")
            self._spacing[k] = (actor, bar)
        return self._spacing[k]

    def hairline_segments(self):
        """(s,2,3): the border of the treated area, one segment per triangle with treated and untreated corners,
        between the midpoints of its two mixed edges, lifted off the skin."""
        sc = self.scene
        v, f, n = sc.head.vertices, sc.head.faces, sc.head.vertex_normals
        t = sc.treated[f]
        mixed = f[t.any(axis=1) & ~t.all(axis=1)]
        tm = sc.treated[mixed]
        # the corner that is alone on its side: the segment joins the midpoints of its two edges
        odd = np.where(tm.sum(axis=1) == 1, np.argmax(tm, axis=1), np.argmin(tm, axis=1))
        r = np.arange(len(mixed))
        a = mixed[r, odd]
        b = mixed[r, (odd + 1) % 3]
        c = mixed[r, (odd + 2) % 3]
        lift = n * HAIRLINE_LIFT_MM
        p = v + lift
        return np.stack([0.5 * (p[a] + p[b]), 0.5 * (p[a] + p[c])], axis=1)

    def _hairline(self):
        if self._hairline_actor is None:
            seg = self.hairline_segments().reshape(-1, 3)
            lines = self.pv.line_segments_from_points(seg) if len(seg) else self.pv.PolyData()
            self._hairline_actor = self.plotter.add_mesh(lines, color=HAIRLINE_RGB, line_width=HAIRLINE_PX,
                                                         render_lines_as_tubes=True, lighting=False,
                                                         reset_camera=False)
        return self._hairline_actor

    def _landmarks(self):
        if self._landmark_actors is None:
            from scipy.spatial import cKDTree

            sc = self.scene
            names = [k for k in LANDMARK_LABELS if getattr(sc.landmarks, k, None) is not None]
            pts = np.array([getattr(sc.landmarks, k) for k in names], dtype=np.float64)
            _, i = cKDTree(sc.head.vertices).query(pts)
            pts = pts + sc.head.vertex_normals[i] * LANDMARK_LIFT_MM
            cloud = self.pv.PolyData(pts)
            dots = self.plotter.add_mesh(cloud, color=LANDMARK_RGB, point_size=LANDMARK_PX,
                                         render_points_as_spheres=True, reset_camera=False)
            labels = self.plotter.add_point_labels(pts, [LANDMARK_LABELS[k] for k in names],
                                                   font_size=self._px(TEXT_FONT + 1),
                                                   text_color=config.PICTURE_TEXT, shape_color="white",
                                                   shape_opacity=0.75, show_points=False, always_visible=False,
                                                   tolerance=LANDMARK_LABEL_TOLERANCE,
                                                   reset_camera=False, name="landmark-labels")
            self._landmark_actors = (dots, labels)
        return self._landmark_actors


def spacing_colours(centre):
    """The spacing scale's colours over SPACING_CLIM: RdBu with its white at ``centre`` (two slopes: red below, blue
    above), as a list of SPACING_COLOURS hex colours."""
    import matplotlib
    from matplotlib.colors import TwoSlopeNorm, to_hex

    lo, hi = SPACING_CLIM
    norm = TwoSlopeNorm(vcenter=float(np.clip(centre, lo + 1e-3, hi - 1e-3)), vmin=lo, vmax=hi)
    cmap = matplotlib.colormaps[SPACING_CMAP]
    return [to_hex(cmap(norm(v))) for v in np.linspace(lo, hi, SPACING_COLOURS)]


def _matrix(ren):
    """The renderer's world -> normalized device coordinates matrix (4,4)."""
    cam = ren.GetActiveCamera()
    m = cam.GetCompositeProjectionTransformMatrix(ren.GetTiledAspectRatio(), -1, 1)
    return np.array([[m.GetElement(i, j) for j in range(4)] for i in range(4)])

