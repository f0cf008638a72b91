"""The live design window: ``scalp3d design DIR`` (issue 15, point 1).

A :class:`DesignWindow` shows a :class:`scalp3d.live.LiveDesign` as the patient will see it, healed after the last
session (the pictures' look: :class:`scalp3d.viewers.pictures.HeadLook`), with the design's handles on the skin:

* **spheres on the hairline**: the mid-frontal point (its height above the glabella), the frontotemporal points
  (their distance from the midline and the recession) and the temple points, or each point of a drawn hairline;
  one on each reserved region's centre and each scar (the scar moves whole). Drag one along the skin and release:
  the plan follows it, the dots are placed again where the density changed, the look is baked again;
* **sliders**: the core and hairline densities, the transition band's width, the edge's irregularity;
* **painting** (``p`` with the pointer on the skin): a disc of skin reserved, no dots in it;
* ``z`` undo, ``y`` redo, ``d`` the design field (density per cm2) instead of the look, ``r`` the starting view,
  ``w`` save (the plan and the dots shown, to the folder given to the window: what the patient approved is what is
  tattooed), ``q`` close.

The work each change asks for is the engine's (:meth:`LiveDesign.change`); the window only turns a handle's place
into the plan keys (:meth:`LiveDesign.move_handle`) and draws. A change the plan refuses (out of range, unsafe) is
shown as a red line and its handle goes back. The look's texture atlas is made once for the whole head, so a change
only bakes the dots again (about a second on the sample head); the stubble of the hair-bearing skin around the
treated area is the opening design's, minus what a change treats.

Off screen (``off_screen=True``) it is driven by the tests as a user would: a handle's sphere widget moved and its
end-of-interaction event fired, a slider's value set and its event fired, the paint key's callback with a point.
"""
from __future__ import annotations

import contextlib
import textwrap
import time
from pathlib import Path

import numpy as np

from scalp3d import config

from .interactive import WindowShots
from .pictures import HeadLook

#: handle colours: the hairline's, reserved regions', scars'
HANDLE_RGB = {"hairline": "#d4147a", "reserved": "#1f5fd1", "scars": "#e08a00"}
#: a handle sphere's radius (mm) and how far it floats above the skin (mm)
HANDLE_RADIUS_MM = 3.0
HANDLE_LIFT_MM = 1.0
#: the sliders: plan key -> (label, range, format)
SLIDERS = {
    "density.core_per_cm2": ("core density /cm2", (40.0, 140.0), "%.0f"),
    "density.hairline_per_cm2": ("hairline density /cm2", (20.0, 80.0), "%.0f"),
    "hairline.transition_mm": ("transition band mm", (0.0, 40.0), "%.0f"),
    "hairline.irregularity_mm": ("edge irregularity mm", (0.0, 10.0), "%.1f"),
}
HELP = ("Drag a sphere along the skin and let go: the hairline, a reserved region or a scar follows.",
        "p reserve the skin under the pointer, z undo, y redo, d density map, w save, r reset view, q close.")
ERROR_RGB = "#b00020"
#: the designs whose picture the window keeps for an undo or a redo back to them, the most recently shown: each holds
#: its stubble (a few MB on a full head), and a long consultation makes hundreds of changes; an undo further back
#: shows the very dots, the stubble along their edge placed again
SHOWN_KEPT = 16
#: the help lines are wrapped at this many pixels per character (the help's font at size 9 measured 8.2 px a
#: character: at 8.0 the first line ran 10 px past a 1,100 px window and lost its last word)
HELP_CHAR_PX = 8.5
#: the sliders start at this share of the window's width; the title and the status (at its left) stay short of it
SLIDERS_X = 0.52
#: the status is wrapped at this many pixels per character (its font at size 10 measured 10.1 px a character)
STATUS_CHAR_PX = 10.5


def open_design(live, *, save_to=None, off_screen=False, window_size=(1280, 900), log=print):
    """A :class:`DesignWindow` of ``live``; on screen, shown until closed."""
    w = DesignWindow(live, save_to=save_to, off_screen=off_screen, window_size=window_size, log=log)
    if not off_screen:
        w.show()
    return w


class DesignWindow(WindowShots):
    """The window, its handles and controls. Scripts and tests call :meth:`drag`, :meth:`slide`, :meth:`paint`,
    :meth:`change`, :meth:`undo`, :meth:`redo`, :meth:`save`, or drive the widgets (:attr:`handle_widgets`,
    :attr:`sliders`)."""

    def __init__(self, live, *, save_to=None, off_screen=False, window_size=(1280, 900), log=print):
        from .preview import _egl_window, _import_pyvista

        self.pv = pv = _import_pyvista()
        self.live = live
        self.save_to = Path(save_to) if save_to is not None else None
        self.log = log
        self.message = ""
        self.error = False
        self.density_map = False
        self.last = None
        self._batch = True
        self.scene = _scene(live, None)
        self.mesh = self.scene.display_mesh()
        with _egl_window() if off_screen else contextlib.nullcontext():
            self.plotter = p = pv.Plotter(off_screen=off_screen, window_size=list(window_size),
                                          title="scalp3d design" + (f": {live.opened_from}" if live.opened_from
                                                                    else ""))
        p.set_background(config.PICTURE_BACKGROUND)
        p.enable_trackball_style()
        if p.iren.style is not None:
            p.iren.style.AddObserver("CharEvent", lambda *_: None)  # VTK's own one-letter keys off
        self.pd = pv.PolyData.from_regular_faces(self.mesh.vertices, self.mesh.faces)
        self.pd.point_data["Normals"] = self.mesh.normals
        self.pd.point_data.active_normals_name = "Normals"
        self._look = HeadLook(pv, p, self.scene, self.mesh, self.pd, reset_camera=False)
        self.actor = self._look.show((self.scene.n_sessions, False))
        self._map = None
        self.handle_widgets = {}
        self.sliders = {}
        self._title = p.add_text("", position=(0.012, 0.95), viewport=True, font_size=14,
                                 color=config.PICTURE_TEXT, name="title")
        self._status = p.add_text("", position=(0.012, 0.935), viewport=True, font_size=10,
                                  color=config.PICTURE_TEXT, name="status")
        self._status.GetTextProperty().SetVerticalJustificationToTop()
        width = max(int((window_size[0] - 20) / HELP_CHAR_PX), 40)  # 10 px of margin each side
        p.add_text("\n".join(textwrap.fill(line, width) for line in HELP), position=(10, 8), font_size=9,
                   color=config.PICTURE_TEXT, name="help")
        self._build_handles()
        self._build_sliders()
        self._bind_keys()
        self.reset_view()
        self._batch = False
        self._refresh()

    # ---- what the controls call ---------------------------------------------------------------------------------
    def drag(self, name, point):
        """Handle ``name`` let go at ``point`` (scan axes, mm): the design follows (or the handle goes back)."""
        return self._apply(lambda: self.live.move_handle(name, point))

    def slide(self, key, value):
        """A slider's plan key set to ``value``."""
        return self._apply(lambda: self.live.set(key, round(float(value), 1)))

    def paint(self, point):
        """Reserve the skin around ``point``."""
        return self._apply(lambda: self.live.paint(point))

    def change(self, values):
        """Plan keys set at once (``{"dotted.key": value}``), as a script or a benchmark sets them."""
        return self._apply(lambda: self.live.change(values))

    def undo(self):
        return self._apply(self.live.undo) if self.live.can_undo else self._say("nothing to undo", error=True)

    def redo(self):
        return self._apply(self.live.redo) if self.live.can_redo else self._say("nothing to redo", error=True)

    def show_density(self, on: bool):
        self.density_map = bool(on)
        self._refresh()

    def save(self, folder=None):
        """Write the plan and the dots shown (:meth:`LiveDesign.save`) to ``folder`` or the window's own (an
        existing plan there is kept as ``DIR.previous-N``); a case's design is stored as its next revision."""
        from scalp3d.errors import Scalp3dError

        if self.live.course is not None and folder is None:
            try:
                n = self.live.save_case()
            except Scalp3dError as exc:
                return self._say(str(exc), error=True)
            return self._say(f"saved as revision {n} of {self.live.course.path.name}: {len(self.live.dots):,} dots, "
                             "the ones shown; write its programs with scalp3d case session")
        out = Path(folder) if folder is not None else self.save_to
        if out is None:
            return self._say("no folder to save to: open the window with --out FOLDER", error=True)
        try:
            s = self.live.save(out, overwrite=True, log=self.log)
        except Scalp3dError as exc:
            return self._say(str(exc), error=True)
        self._say(f"saved to {out}: {s['dots_total']:,} dots, the ones shown")
        return s

    def reset_view(self):
        from .pictures import view_shot

        w, h = self.plotter.window_size
        shot = view_shot(self.scene, "three-quarter", aspect=w / h)
        cam = self.plotter.camera
        cam.position = tuple(shot.focal + (shot.position - shot.focal) * 1.1)
        cam.focal_point = tuple(shot.focal)
        cam.up = tuple(shot.up)
        cam.view_angle = shot.view_angle
        self.plotter.reset_camera_clipping_range()
        self._render()

    def show(self):
        self.plotter.show()

    def close(self):
        self.plotter.close()

    # ---- applying a change ----------------------------------------------------------------------------------------
    def _apply(self, change):
        from scalp3d.errors import Scalp3dError

        t0 = time.perf_counter()
        try:
            u = change()
        except Scalp3dError as exc:
            self._place_handles()  # the handle goes back where the design is
            return self._say(str(exc).splitlines()[0], error=True)
        self.last = u
        if u.how != "none":
            self.scene = _scene(self.live, self.scene)
            self._look.scene = self.scene
            self._look.textures.clear()
            self.actor = self._look.show((self.scene.n_sessions, False))
            if self._map is not None:
                self.plotter.remove_actor(self._map)
                self._map = None
        self._place_handles()
        self._say(f"{u.change}: {_how(u)}; {len(u.dots):,} dots; {time.perf_counter() - t0:.1f} s "
                  f"(dots {u.seconds:.1f} s)")
        return u

    def _say(self, text, error=False):
        self.message, self.error = text, error
        if not error:
            self.log(text)
        self._refresh()
        return None

    # ---- building ------------------------------------------------------------------------------------------------
    def _build_handles(self):
        for name, pos in self.live.handles().items():
            kind = name.split(".")[0]
            self.handle_widgets[name] = self.plotter.add_sphere_widget(
                lambda point, name=name: self._on_handle(name, point), center=self._lifted(pos),
                radius=HANDLE_RADIUS_MM, color=HANDLE_RGB[kind], selected_color="white", test_callback=False,
                interaction_event="end")

    def _on_handle(self, name, point):
        if not self._batch:
            self.drag(name, point)

    def _place_handles(self):
        """Every handle where the design now has it; handles added (a painted region) or gone are made or removed."""
        now = self.live.handles()
        for name in [n for n in self.handle_widgets if n not in now]:
            self.handle_widgets.pop(name).Off()
        for name, pos in now.items():
            if name in self.handle_widgets:
                self.handle_widgets[name].SetCenter(*self._lifted(pos))
            else:
                kind = name.split(".")[0]
                self.handle_widgets[name] = self.plotter.add_sphere_widget(
                    lambda point, name=name: self._on_handle(name, point), center=self._lifted(pos),
                    radius=HANDLE_RADIUS_MM, color=HANDLE_RGB[kind], selected_color="white", test_callback=False,
                    interaction_event="end")

    def _vertex_tree(self):
        """The head's vertex tree, made once and shared with the scenes (a change asks it where the handles are)."""
        return self.scene.vertex_tree()

    def _lifted(self, pos):
        head = self.live.head
        n = head.vertex_normals[int(self._vertex_tree().query(pos)[1])]
        return tuple(np.asarray(pos) + HANDLE_LIFT_MM * n)

    def _build_sliders(self):
        for i, (key, (label, rng, fmt)) in enumerate(SLIDERS.items()):
            x0 = SLIDERS_X + 0.24 * (i % 2)
            y = 0.95 - 0.09 * (i // 2)
            value = float(np.clip(self.live.get(key), *rng))
            self.sliders[key] = self.plotter.add_slider_widget(
                lambda v, key=key: None if self._batch else self.slide(key, v), rng, value=value, title=label,
                pointa=(x0, y), pointb=(x0 + 0.21, y), color=config.PICTURE_TEXT, fmt=fmt, interaction_event="end",
                style="modern", title_height=0.018, tube_width=0.006, slider_width=0.02)

    def _bind_keys(self):
        p = self.plotter
        for key in ("b", "v", "C", "plus", "minus"):
            p.clear_events_for_key(key)
        p.add_key_event("z", self.undo)
        p.add_key_event("y", self.redo)
        p.add_key_event("d", lambda: self.show_density(not self.density_map))
        p.add_key_event("w", self.save)
        p.add_key_event("r", self.reset_view)
        p.add_key_event("p", self._paint_under_pointer)

    def _paint_under_pointer(self):
        import vtk

        x, y = self.plotter.iren.get_event_position()
        picker = vtk.vtkCellPicker()
        if picker.Pick(x, y, 0, self.plotter.renderer) and picker.GetActor() is not None:
            self.paint(np.asarray(picker.GetPickPosition()))

    # ---- bringing the window up to date ---------------------------------------------------------------------------
    def _refresh(self):
        if self._batch:
            return
        live = self.live
        if self.density_map and self._map is None:
            from .pictures import map_colours

            dens = live.field.density_per_cm2
            rgb, _ = map_colours("scalar", np.where(dens > 0, dens, np.nan), "per cm2")
            pd = self.pd.copy(deep=False)
            pd.point_data["map"] = np.clip(np.round(self.mesh.per_vertex(rgb) * 255.0), 0, 255).astype(np.uint8)
            self._map = self.plotter.add_mesh(pd, scalars="map", rgb=True, smooth_shading=True, reset_camera=False,
                                              ambient=config.PICTURE_AMBIENT, show_scalar_bar=False)
        if self._map is not None:
            self._map.SetVisibility(self.density_map)
        self.actor.SetVisibility(not self.density_map)
        what = "Design map: dots per cm2 (grey: none)" if self.density_map else \
            f"Healed after all {self.scene.n_sessions} sessions: {len(live.dots):,} dots"
        self._title.SetInput(what)
        status = self.message or (f"hairline {live.get('hairline.height_above_glabella_mm'):.0f} mm above the "
                                  "glabella; drag a sphere to change the design")
        room = (SLIDERS_X - 0.03) * self.plotter.window_size[0]  # from the left margin to short of the sliders
        self._status.SetInput(textwrap.fill(status, max(int(room / STATUS_CHAR_PX), 30)))
        self._status.GetTextProperty().SetColor(self.pv.Color(ERROR_RGB if self.error else
                                                              config.PICTURE_TEXT).float_rgb)
        for key, w in self.sliders.items():
            w.GetRepresentation().SetValue(float(np.clip(live.get(key), *SLIDERS[key][1])))
        self._render()

    def _render(self):
        if not self._batch:
            self.plotter.render()


def _how(u) -> str:
    return {"local": f"{len(u.changed_ids):,} dots placed again, the others kept",
            "full": "every dot placed again", "settings": "every dot kept, settings updated",
            "undo": "undone", "redo": "redone", "none": "no change"}[u.how]


def _stubble_recipe(plan):
    """What the fringe's stubble is drawn from (:meth:`scalp3d.viewers.scene.Scene.place_stubble`): a change of any
    of it (the core density above all) draws all of it again."""
    return (plan.density.core_per_cm2, plan.needle.name, tuple(plan.sessions.fractions), tuple(plan.sessions.shades),
            plan.seed, plan.preview)


def _seam_to_redo(before, sc):
    """(n,) bool: the fringe's skin of ``sc`` within a few core spacings of its bald treated skin, where a dot came
    or went since ``before`` (within twice that of one): its stubble is placed again around the dots now."""
    from scipy.spatial import cKDTree

    from scalp3d.placement import spacing_for_density

    from .look import _found_in, _hashed

    a, b = before.dots.positions, sc.dots.positions
    ha, hb = _hashed(a), _hashed(b)
    changed = np.vstack([a[~_found_in(a, ha, b, hb)], b[~_found_in(b, hb, a, ha)]])
    v = sc.head.vertices
    bald = sc.treated & ~sc.fringe
    out = np.zeros(len(v), bool)
    if not len(changed) or not bald.any():
        return out
    reach = config.STUBBLE_SEAM_SPACINGS * spacing_for_density(sc.plan.density.core_per_cm2)
    rows = np.flatnonzero(sc.fringe)
    rows = rows[cKDTree(changed).query(v[rows], distance_upper_bound=2 * reach)[0] < 2 * reach]
    rows = rows[cKDTree(v[bald]).query(v[rows], distance_upper_bound=reach)[0] < reach]
    out[rows] = True
    return out


def _scene(live, before):
    """The Scene of the design now, which the window shows healed after its last session only (``final_only``);
    after a change it shares the opening scene's texture atlas and display mesh. Its fringe is the design's own
    hair-bearing skin now; the stubble drawn so far is kept where that fringe is, and placed again over skin the
    change added to it and along the bald edge where dots came or went (all of it when the core density, needle,
    sessions, seed or preview settings changed)."""
    from scalp3d.design import hair_bearing

    from .scene import Scene

    if before is None:
        sc = Scene.from_plan(live.head, live.landmarks, live.plan, live.field, live.dots)
        sc.final_only = True
        from .atlas import make_atlas

        f = live.head.faces
        sc._atlas = make_atlas(live.head.vertices, f, live.head.vertex_normals, sc.frame,
                               textured=np.ones(len(f), bool))
        sc.stubble()
        # the stubble drawn so far, its faces and the skin it covers, which each change carries on
        sc._stubble_all, sc._stubble_all_faces, sc._stubble_domain = sc._stubble, sc._stubble_faces, sc.fringe
        sc._shown = {}
        return _remembered(sc, live.dots)
    from .scene import DotsShown

    d = live.dots
    shown = DotsShown(d.positions, d.normals, d.session, np.asarray(d.shade_names, dtype=object)[d.shade],
                      d.dot_size_mm, np.asarray(d.zone_names, dtype=object)[d.zone], d.ids)
    # a design shown before (an undo or a redo gives back its very Dots): its very picture again, the stubble as it
    # was drawn then (placed again along the edge, it was evenly spread but not the spots the patient saw)
    seen = before._shown.get(id(d))
    if seen is not None and seen[0] is not d:
        seen = None
    # the hair-bearing skin of the design now: a change can add some (a hairline-only band moved forward leaves hair
    # behind it, which the opening stubble did not cover: a bare strip 5 mm wide ran between the band and the hair)
    fringe = seen[1] if seen else hair_bearing(live.head, live.landmarks, live.plan, live.field)
    sc = Scene(live.head, live.landmarks, live.plan, live.field, shown, fringe, source=before.source,
               _atlas=before._atlas, _display=before._display, final_only=True, _baked=before.take_bake(),
               _tree=before._tree)
    sc._shown = before._shown
    if seen:
        _, _, sc._stubble_all, sc._stubble_all_faces, sc._stubble_domain, sc._stubble = seen
        return _remembered(sc, d)
    if _stubble_recipe(before.plan) != _stubble_recipe(live.plan):
        # the stubble's density, size, shades or seed changed: all of it is placed again, as on opening
        sc._stubble_domain = np.zeros(len(fringe), bool)
    else:
        sc._stubble_all, sc._stubble_all_faces, sc._stubble_domain = (before._stubble_all, before._stubble_all_faces,
                                                                       before._stubble_domain)
    if live.plan.preview.fringe != "stubble":
        return _remembered(sc, d)
    f = live.head.faces
    # stubble placed again over the hair-bearing skin the opening did not have, and along the edge of bald skin
    # where the dots changed (the stubble there was placed around the dots before; beside dots placed again without
    # it, the bare seam between the two came back: edge p99 1.15 mm from a spot against 0.87 inside)
    cover = (fringe & ~sc._stubble_domain) | _seam_to_redo(before, sc)
    if cover[f].all(axis=1).any():
        from .look import Spots

        st, faces = sc._stubble_all, sc._stubble_all_faces
        if st is None:
            st, faces = Spots.join([]), np.zeros(0, np.int64)
        out = cover[f[faces]].any(axis=1)  # the spots the new ones replace
        add, add_faces = sc.place_stubble(cover, held=st.positions[~out & fringe[f[faces]].any(axis=1)])
        if add is not None:
            sc._stubble_all = Spots.join([st.take(~out), add])
            sc._stubble_all_faces = np.concatenate([faces[~out], add_faces])
            sc._stubble_domain = sc._stubble_domain | cover
    st = sc._stubble_all
    if st is not None and len(st.positions):
        # the spots on faces touching the fringe now, as the opening drew them (none on skin wholly treated)
        sc._stubble = st.take(fringe[f[sc._stubble_all_faces]].any(axis=1))
    return _remembered(sc, d)


def _remembered(sc, dots):
    """``sc``, its fringe and stubble recorded under the design's ``dots`` (kept with them, so that an id reused by
    another object never matches), for an undo or a redo back to it; the oldest beyond :data:`SHOWN_KEPT` dropped."""
    sc._shown.pop(id(dots), None)  # (shown again: the most recent now)
    sc._shown[id(dots)] = (dots, sc.fringe, sc._stubble_all, sc._stubble_all_faces, sc._stubble_domain, sc._stubble)
    while len(sc._shown) > SHOWN_KEPT:
        sc._shown.pop(next(iter(sc._shown)))
    return sc
