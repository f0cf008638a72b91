"""Live design (issue 15): change the plan one key at a time, in front of the patient, and see the dots follow.

A :class:`LiveDesign` holds a head, its landmarks, the plan, its design field and the dots shown. Each change
(:meth:`LiveDesign.set`, any plan key, dotted: ``"hairline.height_above_glabella_mm"``, ``"zones.crown.density_per_cm2"``,
``"reserved"`` for the whole list of reserved regions, ``"reserved.0.radius_mm"`` for one of them) builds the design
field again (the head's geodesic solver, its factorisation, is kept: :meth:`scalp3d.geodesic.HeadGeodesics.of`) and
then does the least the change needs:

* **nothing** when the plan is the same;
* **settings**: the density did not move (a depth, a needle, a shade): every dot stays, its settings are read again;
* **local**: the density moved somewhere: the dots farther than the seam (``config.LOCAL_SEAM_MM``) from every
  vertex whose density changed keep their ids and positions exactly, the others are placed again around them
  (:func:`scalp3d.placement.replace_where_changed`);
* **full**: the sessions' split or the seed changed, or a local change would keep fewer than
  ``config.LIVE_FULL_BELOW_KEPT`` of the dots: every dot is placed again, exactly as ``scalp3d plan`` places them.

Every change is checked against the spacing floor before it is shown: one that cannot be made safe is refused
(:class:`scalp3d.errors.PlanRefused`) and the design stays as it was. Undo and redo walk the changes back and forth
and give back the very dots shown before. :meth:`LiveDesign.save` writes a complete plan folder, as ``scalp3d plan``
does, with the dots shown: what the patient approved is what gets tattooed (a fresh ``scalp3d plan`` of the saved
plan.toml would place other dots: the summary says so and lists the changes).

The local re-placement of a change is seeded from the plan's seed and the change's step, so the same changes in the
same order give the same dots.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from . import config
from .design import build_field, dots_with_settings, load_plan
from .errors import InputError, PlanError, nearest_name
from .placement import local_spacing_mm, place_dots, replace_where_changed, rows_in_reach_of_box
from .spacing import refuse_close_dots
from .types import Dots, Field, Head, Landmarks, Placement, Plan


@dataclass(frozen=True)
class Update:
    """What a change did: the dots now shown, the field and plan they come from, the ids of the dots placed by this
    change (new ids, or ids that moved: a full re-placement numbers its dots from 1 again), the ids of the previous
    dots now gone, how the change was made (``none``, ``settings``, ``local``, ``full``, ``undo``, ``redo``), the
    change in words, and the seconds it took."""

    dots: Dots
    field: Field
    plan: Plan
    changed_ids: np.ndarray
    removed_ids: np.ndarray
    how: str
    change: str
    seconds: float


@dataclass(frozen=True)
class _State:
    plan: Plan
    field: Field
    dots: Dots
    change: str
    how: str
    #: (n,) per vertex: the density the dots around it were placed for (a change re-places the dots where the new
    #: density differs from it by more than ``config.LIVE_DENSITY_TOL``; small changes never add up unseen)
    placed_for: np.ndarray


class LiveDesign:
    """A design being changed live: see the module's docstring. Make one with :meth:`open` (a plan folder),
    :meth:`new` (a head and a plan) or :meth:`sample` (the embedded sample head)."""

    def __init__(self, head: Head, landmarks: Landmarks, plan: Plan, field: Field, dots: Dots, *, source=None,
                 opened_from: str = ""):
        from .geodesic import HeadGeodesics
        from .meshes import longest_edge_mm
        from .pipeline import Source

        self.head, self.landmarks = head, landmarks
        self.source = source or Source("(live design)", "mm")
        self.opened_from = opened_from
        self._geodesic = HeadGeodesics.of(head.vertices, head.faces)
        self._done = [_State(plan, field, dots, "opened", "full", field.density_per_cm2)]
        self._undone: list[_State] = []
        self._steps = 0
        self._edge_mm = longest_edge_mm(head.vertices, head.faces)  # for the floor check (_check_floor)
        self.course: _Course | None = None  # a case's course under way (open_case): its done dots never move

    # ---- making one -------------------------------------------------------------------------------------------
    @classmethod
    def new(cls, head: Head, landmarks: Landmarks, plan: Plan | None = None, *, source=None) -> "LiveDesign":
        """Place a fresh plan (``plan``, default: the default plan) on ``head``, as ``scalp3d plan`` does."""
        from .geodesic import HeadGeodesics
        from .pipeline import plan_dots

        plan = plan if plan is not None else load_plan()
        field = build_field(head, landmarks, plan, geodesic=HeadGeodesics.of(head.vertices, head.faces))
        dots, _ = plan_dots(head, field, plan)
        return cls(head, landmarks, plan, field, dots, source=source)

    @classmethod
    def sample(cls, plan: Plan | None = None) -> "LiveDesign":
        """A fresh plan on the embedded sample head (its fiducials as landmarks)."""
        from .landmarks import resolve_landmarks
        from .pipeline import Source
        from .sample import CREDIT, load_sample_head

        scan, head, fiducials = load_sample_head()
        return cls.new(head, resolve_landmarks(head, fiducials, "fiducials"), plan,
                       source=Source(Path(scan.path).name, scan.units_reason, CREDIT))

    @classmethod
    def open(cls, folder) -> "LiveDesign":
        """The plan in a folder ``scalp3d plan`` (or :meth:`save`) wrote: its head.ply, landmarks.json, plan.toml and
        the dots of its dots.csv, exactly (not placed again)."""
        from .export import read_dots_csv
        from .fileio import plan_folder
        from .geodesic import HeadGeodesics
        from .landmarks import load_landmarks, resolve_landmarks
        from .pipeline import Source
        from .surface import load_head

        d = plan_folder(folder)
        head = load_head(d / "head.ply")
        lm = resolve_landmarks(head, load_landmarks(d / "landmarks.json"), "file")
        plan = load_plan(d / "plan.toml")
        field = build_field(head, lm, plan, geodesic=HeadGeodesics.of(head.vertices, head.faces))
        placed = _placement_from_csv(read_dots_csv(d / "dots.csv"), head, d / "dots.csv", len(plan.sessions))
        dots = dots_with_settings(placed, head, field)
        source = Source(d.name, "mm")
        try:
            s = json.loads((d / "summary.json").read_text(encoding="utf-8"))
            source = Source(str(s["scan"]), str(s["units"]), s.get("credit"))
        except (OSError, ValueError, KeyError, TypeError):
            pass  # a folder without its summary still opens; the saved summary then names the folder
        return cls(head, lm, plan, field, dots, source=source, opened_from=str(d))

    @classmethod
    def open_case(cls, case_path) -> "LiveDesign":
        """A patient's case (``scalp3d case``) at its latest revision, for a revision made live: the dots already
        tattooed never move (they keep their settings too), the sessions not yet done change with the design;
        :meth:`save_case` stores the result as the case's next revision. Refused, as ``case revise`` is, when every
        session is done or a touch-up was made."""
        from .case import Case
        from .case_commands import _revisable
        from .geodesic import HeadGeodesics
        from .pipeline import Source

        path = Path(case_path)
        with Case.open(path) as case:
            plan, head, lm = case.plan(), case.head(), case.landmarks()
            finished = _revisable(case, path, plan, plan, path)
            done, latest, first_id = case.done_dots(), case.dots(), case.next_dot_id()
        field = build_field(head, lm, plan, geodesic=HeadGeodesics.of(head.vertices, head.faces))
        course_dots = latest.subset(np.isin(latest.ids, done.ids) | (latest.session > finished))
        live = cls(head, lm, plan, field, course_dots, source=Source(path.name, "mm"), opened_from=str(path))
        live.course = _Course(path, tuple(plan.sessions.fractions), finished, done, first_id)
        return live

    def save_case(self, comment: str = "") -> int:
        """Store the design shown as the case's next revision (the dots shown, the done ones as they were); returns
        its number. Refused when the case changed since it was opened (a session marked done meanwhile)."""
        from .case import Case
        from .case_commands import _revisable

        course = self.course
        if course is None:
            raise InputError("this design was not opened from a case; save it to a folder with save()")
        with Case.open(course.path, write=True) as case:
            if not np.array_equal(np.sort(case.done_ids()), np.sort(course.done_ids)):
                raise InputError(f"{course.path}: dots were marked done since the design was opened; open it again")
            _revisable(case, course.path, self.plan, case.plan(), course.path)
            return case.add_revision(self.plan, self.dots, comment or "live design: " + "; ".join(self.history))

    # ---- what is shown ----------------------------------------------------------------------------------------
    @property
    def plan(self) -> Plan:
        return self._done[-1].plan

    @property
    def field(self) -> Field:
        return self._done[-1].field

    @property
    def dots(self) -> Dots:
        return self._done[-1].dots

    @property
    def history(self) -> list:
        """The changes in force, oldest first (undone ones are not listed)."""
        return [f"{s.change} ({s.how})" for s in self._done[1:]]

    @property
    def can_undo(self) -> bool:
        return len(self._done) > 1

    @property
    def can_redo(self) -> bool:
        return bool(self._undone)

    def get(self, key: str):
        """The plan's value at a dotted ``key`` (lists as lists; None for an optional key not set)."""
        parts = _parts(key)
        _check_key(parts, key)
        node = self.plan.to_dict()
        for part in parts:
            if isinstance(node, dict) and part not in node:
                return None
            node = _child(node, part, key)
        return node

    # ---- changing it ------------------------------------------------------------------------------------------
    def set(self, key: str, value) -> Update:
        """Set one plan key (dotted) and update the dots. A bad key or value raises :class:`PlanError` (one line, as
        a plan file's would); a change the spacing floor refuses raises :class:`PlanRefused`; either way the design
        stays as it was."""
        return self.change({key: value})

    def change(self, values: dict) -> Update:
        """Set several plan keys at once, as one change (one undo step): e.g. a hairline drawn again."""
        t0 = time.perf_counter()
        cur = self._done[-1]
        plan = _changed_plan(cur.plan, values)
        words = ", ".join(f"{k} = {_short(v)}" for k, v in values.items())
        if plan == cur.plan:
            return Update(cur.dots, cur.field, cur.plan, np.zeros(0, np.int64), np.zeros(0, np.int64), "none", words,
                          time.perf_counter() - t0)
        field = build_field(self.head, self.landmarks, plan, geodesic=self._geodesic)
        placed, how, placed_for = self._placed(cur, plan, field)
        dots = self._with_settings(placed, field)
        new = _State(plan, field, dots, words, how, placed_for)
        u = _update(cur.dots, new, how, 0.0)
        if how != "settings":
            self._check_floor(dots, field, plan, cur.field.density_per_cm2 != field.density_per_cm2,
                              np.isin(dots.ids, u.changed_ids), words)
        self._done.append(new)
        self._undone.clear()
        self._steps += 1
        return replace(u, seconds=time.perf_counter() - t0)

    def undo(self) -> Update:
        """Back to the design before the last change: the very dots shown then."""
        if not self.can_undo:
            raise InputError("nothing to undo: the design is as it was opened")
        t0 = time.perf_counter()
        gone = self._done.pop()
        self._undone.append(gone)
        return _update(gone.dots, self._done[-1], "undo", time.perf_counter() - t0, words=f"undo {gone.change}")

    def redo(self) -> Update:
        """The change undone last, again (its very dots, not placed anew)."""
        if not self.can_redo:
            raise InputError("nothing to redo")
        t0 = time.perf_counter()
        back = self._undone.pop()
        before = self._done[-1].dots
        self._done.append(back)
        return _update(before, back, "redo", time.perf_counter() - t0, words=f"redo {back.change}")

    def _placed(self, cur: _State, plan: Plan, field: Field):
        """(Placement, how, the density each vertex's dots are placed for) for a new plan and field: see the module's
        docstring. In a course under way (:meth:`open_case`) the done dots stay, the sessions still to come are
        placed around them, new ids after the case's."""
        head = self.head
        fractions = plan.sessions.fractions
        new_d = field.density_per_cm2
        course = self.course
        local = {}
        if course is not None:
            if len(fractions) != len(course.fractions):
                raise PlanError(f"{self.opened_from}: the case has {len(course.fractions)} sessions; a revision keeps "
                                "the number of sessions")
            fractions = course.rest(fractions)
            local = {"pinned": np.isin(cur.dots.ids, course.done_ids), "first_session": course.finished + 1,
                     "first_id": max(course.first_id, int(cur.dots.ids.max()) + 1)}
        if (plan.seed, plan.sessions.fractions) == (cur.plan.seed, cur.plan.sessions.fractions):
            old = cur.placed_for
            changed = ((old > 0) != (new_d > 0)) | (np.abs(new_d - old) > config.LIVE_DENSITY_TOL
                                                    * np.maximum(old, new_d))
            if not changed.any():
                return cur.dots, "settings", old
            seed = (plan.seed + config.LIVE_STEP_SEED * (self._steps + 1)) % 2**31
            # the vertices whose dots are placed again (the same margin as replace_where_changed's)
            redone = _within(head.vertices[changed], head.vertices, config.LOCAL_SEAM_MM)
            placed, keep = replace_where_changed(head.vertices, head.faces, cur.dots, old, new_d, sessions=fractions,
                                                 seed=seed, vertex_normals=head.vertex_normals, changed=changed,
                                                 margin_mm=config.LOCAL_SEAM_MM, region=redone, **local)
            if course is not None or len(keep) == 0 or keep.mean() >= config.LIVE_FULL_BELOW_KEPT:
                placed_for = old.copy()
                placed_for[redone] = new_d[redone]
                return placed, "local", placed_for
        if course is not None:
            return course.placed_around_done(head, new_d, fractions, plan.seed, cur.dots), "full", new_d
        placed = place_dots(head.vertices, head.faces, density_per_cm2=new_d, sessions=fractions, seed=plan.seed,
                            vertex_normals=head.vertex_normals)
        return placed, "full", new_d

    def _with_settings(self, placed, field) -> Dots:
        """The placed dots with the field's settings; in a course, the done dots keep the ones they were tattooed
        with, bit for bit."""
        if self.course is None:
            return dots_with_settings(placed, self.head, field)
        from .case_commands import _joined

        done = np.isin(placed.ids, self.course.done_ids)
        return _joined(self.course.done_dots, dots_with_settings(placed.subset(~done), self.head, field))

    def _check_floor(self, dots, field, plan, moved_v, fresh, words):
        """Refuse (:class:`PlanRefused`) dots under the spacing floor. Checked among the dots that can be in a pair
        that changed: within a floor's reach of a ``fresh`` dot (placed by this change) or of a vertex whose density
        moved (``moved_v``: a kept dot's floor follows its density); every other pair is one checked before, with
        the same floor."""
        from .spacing import floor_reach_mm

        head = self.head
        sp = local_spacing_mm((dots.bary * field.density_per_cm2[head.faces[dots.face_ids]]).sum(axis=1),
                              field.density_per_cm2.max())
        fr = plan.sessions.fractions
        reach = floor_reach_mm(sp, fr)
        edge = self._edge_mm  # (a dot's density comes from its face's corners)
        # (one query for both, at the longer reach: a few more dots checked, half the time)
        rows = _within(np.vstack([dots.positions[fresh], head.vertices[moved_v]]), dots.positions, reach + edge)
        done = None if self.course is None else np.isin(dots.ids[rows], self.course.done_ids)
        refuse_close_dots(dots.subset(rows), sp[rows], fr, source=f"the change {words}", done=done)

    # ---- handles: what the design window drags -----------------------------------------------------------------
    def handles(self) -> dict:
        """Where each handle of the design is on the skin (scan axes, mm): ``hairline.mid-frontal``,
        ``hairline.frontotemporal.right``/``.left``, ``hairline.temple.right``/``.left`` (or ``hairline.polyline.I``
        for each point of a drawn hairline), ``reserved.I`` (a reserved region's centre) and ``scars.I`` (a scar's
        first point). :meth:`move_handle` moves one."""
        on = self._frame()
        out = {}
        hp = self.plan.hairline
        if hp.polyline_mm:
            for i, q in enumerate(hp.polyline_mm):
                out[f"hairline.polyline.{i}"] = self._on_skin(q)
        else:
            c = np.asarray(self.field.figures["hairline_controls_deg_mm"], dtype=np.float64)
            front = c[np.argmin(np.abs(c[:, 0]))]
            ft = c[(c[:, 0] > 0) & (c[:, 0] < 90.0)]
            names = {"frontotemporal": ft[0], "temple": ft[1]} if len(ft) >= 2 else {}
            out["hairline.mid-frontal"] = on.skin_at(*front)
            for what, (az, z) in names.items():
                out[f"hairline.{what}.right"] = on.skin_at(az, z)
                out[f"hairline.{what}.left"] = on.skin_at(-az, z)
        for i, r in enumerate(self.plan.reserved):
            if r.center_mm is not None:
                out[f"reserved.{i}"] = self._on_skin(r.center_mm)
        for i, sc in enumerate(self.plan.scars):
            pts = sc.polyline_mm or sc.points_mm
            if pts:
                out[f"scars.{i}"] = self._on_skin(pts[0])
        return out

    def move_handle(self, name: str, point) -> Update:
        """Move the handle ``name`` (one of :meth:`handles`) to the skin at ``point`` (scan axes, mm; taken to the
        nearest skin) and update the design: the plan keys the handle stands for are set from where it now is (the
        mid-frontal point's height along the skin above the glabella; a frontotemporal point's distance from the
        midline and its recession along the skin; a temple point's place ahead of and above the tragi; a reserved
        region's centre; a whole scar, moved as one). Values are kept within the plan's ranges."""
        from .design import SCHEMA

        if name not in self.handles():
            raise PlanError(f"no handle '{name}'; the handles are {', '.join(self.handles())}")
        p = self._picked(point, f"handle '{name}'")
        hs = SCHEMA["hairline"]

        def clip(key, value):
            lo, hi = hs[key][2]
            return round(float(min(max(value, lo), hi)), 1)

        parts = name.split(".")
        if parts[0] == "reserved":
            return self.change({f"{name}.center_mm": [float(c) for c in p]})
        if parts[0] == "scars":
            return self.change(self._scar_moved(int(parts[1]), p))
        if parts[1] == "polyline":
            poly = [list(q) for q in self.plan.hairline.polyline_mm]
            poly[int(parts[2])] = [float(c) for c in p]
            return self.change({"hairline.polyline_mm": poly})
        on = self._frame()
        x, y, z = on.local_of(p)
        if parts[1] == "mid-frontal":
            return self.change({"hairline.height_above_glabella_mm": clip("height_above_glabella_mm",
                                                                         on.from_glabella(p))})
        if parts[1] == "temple":
            return self.change({"hairline.temple_ahead_of_tragus_mm": clip("temple_ahead_of_tragus_mm", y),
                                "hairline.temple_above_tragus_mm": clip("temple_above_tragus_mm", z)})
        width = clip("frontotemporal_half_width_mm", abs(x))
        c = np.asarray(self.field.figures["hairline_controls_deg_mm"], dtype=np.float64)
        z_front = float(c[np.argmin(np.abs(c[:, 0])), 1])
        return self.change({"hairline.frontotemporal_half_width_mm": width,
                            "hairline.recession_mm": clip("recession_mm", on.arc_above(np.sign(x) * width, z_front,
                                                                                        z))})

    def paint(self, point, radius_mm: float = config.LIVE_PAINT_RADIUS_MM) -> Update:
        """Reserve a disc of skin (no dots) around ``point`` (scan axes, mm): one more reserved region."""
        reserved = [dict(_plain_item(r)) for r in self.plan.reserved]
        reserved.append({"center_mm": [float(c) for c in self._picked(point, "painted region")],
                         "radius_mm": float(radius_mm),
                         "comment": "painted in the live design"})
        return self.change({"reserved": reserved})

    def _scar_moved(self, i, p) -> dict:
        sc = self.plan.scars[i]
        key = "polyline_mm" if sc.polyline_mm else "points_mm"
        pts = np.asarray(getattr(sc, key), dtype=np.float64)
        moved = [[float(c) for c in self._on_skin(q)] for q in pts + (p - self._on_skin(pts[0]))]
        return {f"scars.{i}.{key}": moved}

    def _on_skin(self, point) -> np.ndarray:
        return self._frame().nearest_skin(np.asarray(point, dtype=np.float64).reshape(3))

    def _picked(self, point, what: str) -> np.ndarray:
        """The skin point nearest to a point a caller gave (scan axes, mm), refused with a PlanError when it is not
        three finite numbers or lies more than ``config.LIVE_POINT_REACH_MM`` off the skin."""
        try:
            p = np.asarray(point, dtype=np.float64).reshape(3)
        except (TypeError, ValueError):
            raise PlanError(f"the point for the {what} must be three numbers (x, y, z in mm, the scan's axes), "
                            f"not {_short(point)}") from None
        if not np.isfinite(p).all():
            raise PlanError(f"the point for the {what} must be finite (x, y, z in mm), not {_short(p.tolist())}")
        skin = self._on_skin(p)
        off = float(np.linalg.norm(skin - p))
        if off > config.LIVE_POINT_REACH_MM:
            raise PlanError(f"the point for the {what} ({', '.join(f'{c:g}' for c in p)}) is {off:.0f} mm off the "
                            f"skin (at most {config.LIVE_POINT_REACH_MM:g}); drop it on the head, or give a point on "
                            f"the head in mm in the scan's axes")
        return skin

    def _frame(self) -> "_HeadFrame":
        if getattr(self, "_head_frame", None) is None:
            self._head_frame = _HeadFrame(self.head, self.landmarks, self._geodesic)
        return self._head_frame

    # ---- figures and saving -----------------------------------------------------------------------------------
    def quality(self) -> dict:
        """The quality figures of the dots shown (:func:`scalp3d.quality.placement_quality`), with ``below_bars``."""
        from .pipeline import quality_warnings
        from .quality import placement_quality

        q = placement_quality(self.head, self.field, self.dots, self.plan.sessions.fractions, seed=self.plan.seed)
        q["below_bars"] = quality_warnings(q, len(self.dots))
        return q

    def save(self, folder, *, overwrite=False, render=True, machine=None, chunk_dots=None, chunk_minutes=None,
             log=print) -> dict:
        """Write a complete plan folder, as ``scalp3d plan`` does (needle programs checked and verified, dots.csv,
        head.ply, landmarks.json, plan.toml, summary.json, pictures with ``render``), with the dots shown. The
        folder is written whole or not at all; a plan already there is refused unless ``overwrite`` (then kept as
        ``DIR.previous-N``). Returns the summary (its ``live_design`` key lists the changes)."""
        from .fileio import staged_dir
        from .machine import load_machine
        from .pipeline import _prepare_out_dir, summary_table, write_plan_files

        out = Path(folder)
        machine = load_machine(machine)
        keep_previous = _prepare_out_dir(out, overwrite)
        extra = {"live_design": {
            "opened_from": self.opened_from or None, "changes": self.history,
            "dots": "the dots shown in the live design, kept where each change did not reach; a fresh `scalp3d plan` "
                    "of this plan.toml places other dots"}}
        with staged_dir(out, keep_previous) as stage:
            summary, images = write_plan_files(stage.path, self.source, self.head, self.landmarks, machine, self.plan,
                                               self.field, self.dots, self.quality(), chunk_dots=chunk_dots,
                                               chunk_minutes=chunk_minutes, render=render, extra_summary=extra)
        if stage.previous is not None:
            log(f"the plan that was in {out} is kept as {stage.previous}")
        for line in summary_table(summary, out, images):
            log(line)
        return summary


class _Course:
    """A case's course under way, as a live design sees it: the case file, the cumulative fractions of all its
    sessions, how many are finished, the dots done (Dots, as tattooed) and the next free dot id."""

    def __init__(self, path, fractions, finished, done_dots, first_id):
        self.path, self.fractions, self.finished = Path(path), tuple(fractions), int(finished)
        self.done_dots, self.done_ids, self.first_id = done_dots, np.asarray(done_dots.ids), int(first_id)

    def rest(self, fractions) -> tuple:
        """The cumulative fractions of the sessions still to come, among themselves."""
        from .case_commands import rest_fractions

        return rest_fractions(fractions, self.finished)

    def placed_around_done(self, head, density, rest, seed, now) -> Placement:
        """Every dot not done placed again around the done ones (a new seed or split), ids after the case's."""
        from .case_commands import _renumbered

        done = self.done_dots
        placed = place_dots(head.vertices, head.faces, density_per_cm2=density, sessions=rest, seed=seed,
                            vertex_normals=head.vertex_normals, fixed=done.positions if len(done) else None)
        placed = _renumbered(placed, first_id=max(self.first_id, int(now.ids.max()) + 1),
                             first_session=self.finished + 1)
        return Placement(*(np.concatenate([getattr(done, k), getattr(placed, k)]) for k in
                           ("positions", "normals", "face_ids", "session", "ids", "bary")))


class _HeadFrame:
    """The head as the handles see it: vertices in the head frame (x right, y forward, z up; mm), a nearest-vertex
    tree, and the distance along the skin from the glabella."""

    def __init__(self, head, landmarks, geodesic):
        from scipy.spatial import cKDTree

        self.head = head
        self.origin, self.R = landmarks.frame()
        self.local = (head.vertices - self.origin) @ self.R.T
        self.tree = cKDTree(head.vertices)
        self.azimuth = np.degrees(np.arctan2(self.local[:, 0], self.local[:, 1]))
        self._glabella = int(self.tree.query(landmarks.glabella)[1])
        self._geodesic = geodesic
        self._from_glabella = None

    def nearest_skin(self, p) -> np.ndarray:
        return self.head.vertices[int(self.tree.query(p)[1])].copy()

    def local_of(self, p) -> np.ndarray:
        return (np.asarray(p, dtype=np.float64) - self.origin) @ self.R.T

    def skin_at(self, azimuth_deg, z_mm) -> np.ndarray:
        """The skin point at this azimuth (degrees, 0 = front, + to the right) and height (head frame, mm)."""
        near = np.abs(self.local[:, 2] - z_mm) < config.LIVE_HANDLE_BAND_MM
        rows = np.flatnonzero(near) if near.any() else np.arange(len(self.local))
        da = np.abs((self.azimuth[rows] - azimuth_deg + 180.0) % 360.0 - 180.0)
        return self.head.vertices[rows[np.argmin(da)]].copy()

    def from_glabella(self, p) -> float:
        if self._from_glabella is None:
            self._from_glabella = self._geodesic.distance([self._glabella])
        return float(self._from_glabella[int(self.tree.query(p)[1])])

    def arc_above(self, x0, z_from, z_to) -> float:
        """Distance along the forehead's skin at lateral ``x0`` from height ``z_from`` up to ``z_to`` (mm, >= 0)."""
        from .design import _column_profile
        from .errors import GeometryError

        x, y, z = self.local.T
        below, above = config.FOREHEAD_COLUMN_SPAN_MM
        prof = _column_profile(x, y, z, x0, z_from - below, z_from + above)
        if prof is None:
            raise GeometryError(f"no forehead skin {abs(x0):.0f} mm from the midline there; move the handle onto "
                                "the forehead")
        zc, yc = prof
        arc = np.concatenate([[0.0], np.cumsum(np.hypot(np.diff(zc), np.diff(yc)))])
        return max(float(np.interp(z_to, zc, arc) - np.interp(z_from, zc, arc)), 0.0)


def _plain_item(item) -> dict:
    """A reserved region or scar of a Plan as the plan file's table (lists, no None)."""
    from .types import _section_dict

    return _section_dict(item)


# ---- helpers -------------------------------------------------------------------------------------------------------
def _update(before: Dots, state: _State, how: str, seconds: float, words: str | None = None) -> Update:
    """The Update from ``before`` to ``state``: which ids are new or moved, which are gone."""
    now = state.dots
    order = np.argsort(before.ids, kind="stable")
    ids_b = before.ids[order]
    at = np.clip(np.searchsorted(ids_b, now.ids), 0, max(len(ids_b) - 1, 0))
    same = np.zeros(len(now), bool)
    found = np.zeros(len(ids_b), bool)  # the ids shown before that are still there (ids are unique)
    if len(ids_b):
        hit = ids_b[at] == now.ids
        same = hit & (before.positions[order[at]] == now.positions).all(axis=1)
        found[at[hit]] = True
    removed = ids_b[~found]
    return Update(now, state.field, state.plan, np.sort(now.ids[~same]), removed, how,
                  words if words is not None else state.change, seconds)


def _within(sources, points, dist_mm) -> np.ndarray:
    """(len(points),) bool: the points within ``dist_mm`` of any of ``sources``."""
    from scipy.spatial import cKDTree

    out = np.zeros(len(points), bool)
    if len(sources) == 0 or len(points) == 0:
        return out
    # only the points in the sources' box grown by the distance can be within it (a hairline move's box holds about
    # half the head's points): the tree queries the rest for nothing
    rows = rows_in_reach_of_box(points, sources, dist_mm)
    if len(rows):
        out[rows] = cKDTree(sources).query(points[rows], distance_upper_bound=dist_mm * (1.0 + 1e-9),
                                           workers=-1)[0] <= dist_mm
    return out


def _parts(key: str) -> list:
    if not isinstance(key, str) or not key or any(not p for p in key.split(".")):
        raise PlanError(f"plan key {key!r}: give a dotted key, e.g. 'hairline.height_above_glabella_mm'")
    return key.split(".")


def _child(node, part, key):
    if isinstance(node, list):
        if not part.isdigit() or int(part) >= len(node):
            raise PlanError(f"plan key '{key}': '{part}' is not one of the {len(node)} items (0 to {len(node) - 1})")
        return node[int(part)]
    if not isinstance(node, dict) or part not in node:
        names = list(node) if isinstance(node, dict) else []
        near = nearest_name(part, names) if names else None
        hint = f"did you mean '{near}'?" if near else "check the key"
        raise PlanError(f"plan key '{key}': '{part}' is not in the plan; {hint}")
    return node[part]


def _changed_plan(plan: Plan, values: dict) -> Plan:
    """The plan with each dotted key set (validated as a plan file is: :func:`scalp3d.design.load_plan`); a value of
    None removes an optional key (e.g. ``hairline.polyline_mm``, to go back to the control points)."""
    d = plan.to_dict()
    for key, value in values.items():
        parts = _parts(key)
        _check_key(parts, key)
        value = value.tolist() if isinstance(value, np.ndarray) else value
        node = d
        for part in parts[:-1]:
            node = node.setdefault(part, {}) if isinstance(node, dict) else _child(node, part, key)
        last = parts[-1]
        if isinstance(node, list):
            _child(node, last, key)
            node[int(last)] = value
        elif value is None:
            node.pop(last, None)
        else:
            node[last] = value
    return load_plan(None, d)


def _check_key(parts, key) -> None:
    """Raise :class:`PlanError` (with a suggestion) unless ``parts`` name a key of the plan's schema: a section, a
    value, a list of tables (``reserved``, ``scars``), one of its items by index or a key of an item."""
    from .design import LIST_SCHEMA, SCHEMA

    node = {**SCHEMA, **LIST_SCHEMA}
    in_list = False
    for n, part in enumerate(parts):
        if in_list:
            if not part.isdigit():
                raise PlanError(f"plan key '{key}': '{part}' is not an item number (0, 1, ...)")
            in_list = False
            continue
        if not isinstance(node, dict) or part not in node:
            names = list(node) if isinstance(node, dict) else []
            near = nearest_name(part, names, cutoff=0.5) if names else None
            hint = f"did you mean '{near}'?" if near else (f"allowed: {', '.join(names)}" if names else
                                                             "it is a value, not a section")
            raise PlanError(f"plan key '{key}': '{part}' is not in the plan; {hint}")
        in_list = n == 0 and part in LIST_SCHEMA
        node = node[part]


def _short(v, n=40) -> str:
    """A plan value in a few words: numbers rounded, points as (x, y, z), lists of tables counted."""
    v = v.tolist() if isinstance(v, np.ndarray) else v
    if isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
        return f"{len(v)} table{'s' if len(v) > 1 else ''}"
    if isinstance(v, list) and len(v) == 3 and all(isinstance(x, (int, float)) for x in v):
        return "(" + ", ".join(f"{x:.1f}" for x in v) + ") mm"
    if isinstance(v, list) and v and all(isinstance(x, list) for x in v):
        return f"{len(v)} points"
    s = f"{v:g}" if isinstance(v, float) else repr(v)
    return s if len(s) <= n else s[:n - 3] + "..."


def _placement_from_csv(cols: dict, head: Head, path, n_sessions: int) -> Placement:
    """The dots of a dots.csv as a Placement on ``head``: positions and normals exactly as written, faces and
    barycentric coordinates of their closest points on the head."""
    need = ("x", "y", "z", "nx", "ny", "nz", "session")
    missing = [c for c in need if c not in cols]
    if missing:
        raise InputError(f"{path}: has no column {missing[0]}; it is not the dots.csv of a plan (re-run scalp3d plan)")
    pos = np.column_stack([cols["x"], cols["y"], cols["z"]])
    ses = cols["session"].astype(np.int64)
    if len(ses) and (ses.min() < 1 or ses.max() > n_sessions):
        raise InputError(f"{path}: sessions run {ses.min()}-{ses.max()}, the plan beside it has {n_sessions}; "
                         "give a folder whose files belong together")
    ids = cols["id"].astype(np.int64)
    if len(np.unique(ids)) != len(ids):
        raise InputError(f"{path}: a dot id is listed twice; give the dots.csv scalp3d wrote")
    fid, bary, dist = _on_faces(head, pos)
    if len(dist) and dist.max() > config.LIVE_DOT_ON_HEAD_MM:
        k = int(np.argmax(dist))
        raise InputError(f"{path}: dot {ids[k]} is {dist[k]:.2f} mm off the head.ply beside it; give a folder whose "
                         "files belong together")
    return Placement(pos, np.column_stack([cols["nx"], cols["ny"], cols["nz"]]), fid, ses, ids, bary)


def _on_faces(head: Head, points):
    """(face ids, barycentric coordinates, distance) of each point's closest point on ``head``."""
    from .proximity import SurfaceQuery

    if len(points) == 0:
        return np.zeros(0, np.int64), np.zeros((0, 3)), np.zeros(0)
    q, _, fid = SurfaceQuery(head).closest(points)
    tri = head.vertices[head.faces[fid]]
    e0, e1, w = tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0], q - tri[:, 0]
    d00, d01, d11 = (e0 * e0).sum(1), (e0 * e1).sum(1), (e1 * e1).sum(1)
    d20, d21 = (w * e0).sum(1), (w * e1).sum(1)
    den = np.maximum(d00 * d11 - d01 * d01, 1e-300)
    b1 = (d11 * d20 - d01 * d21) / den
    b2 = (d00 * d21 - d01 * d20) / den
    bary = np.clip(np.column_stack([1.0 - b1 - b2, b1, b2]), 0.0, 1.0)
    bary /= bary.sum(axis=1, keepdims=True)
    return fid, bary, np.linalg.norm(q - np.asarray(points, dtype=np.float64), axis=1)
