"""One pass from a scan to needle programs, previews and a summary: what ``scalp3d plan`` and ``scalp3d demo`` run.

Stages: load the scan in mm -> head surface -> landmarks -> plan and design field -> dots -> per-session needle
programs (checked, written atomically, read back and verified) -> head.ply, landmarks.json, dots.csv, plan.toml,
summary.json -> preview PNGs. Every coordinate written is in millimetres in the input scan's own axes.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import __version__
from . import config
from .errors import InputError, SafetyError
from .fileio import atomic_path, check_writable, staged_dir, write_json, write_text
from .checksums import head_checksum
from .design import build_field, dots_with_settings, load_plan, plan_to_toml
from .export import dots_csv_text, gcode_text, session_dict, write_head_ply
from .landmarks import load_landmarks, resolve_landmarks
from .machine import load_machine
from .meshes import face_areas
from .needle import plan_session, split_program
from .placement import local_spacing_mm, place_dots
from .progress import Timer
from .proximity import SurfaceQuery
from .quality import placement_quality
from .scan import load_scan
from .spacing import refuse_close_dots
from .surface import make_head, report_lines
from .types import Field, Head, Landmarks, Plan, Scan
from .verify import verify_program

def _prepare_out_dir(out_dir: Path, overwrite: bool, replaces_scan: str | None = None) -> bool:
    """Check that a plan may be written to ``out_dir`` (nothing is created yet: the plan is written into a temporary
    folder and swapped in whole, :func:`scalp3d.fileio.staged_dir`). Refuse to replace a plan already there unless
    ``overwrite`` or it is a plan of the same ``replaces_scan`` (the demo replacing its own earlier demo), and a folder
    holding anything but a plan. Returns whether the old plan is kept as ``DIR.previous-N`` (``--overwrite``: a plan
    someone may have tattooed from is never deleted; the demo's own earlier demo is)."""
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"{out_dir}: exists and is not a folder; choose another --out")
    check_writable(out_dir)
    if not out_dir.exists() or not any(out_dir.iterdir()):
        return False
    old = out_dir / "summary.json"
    if not old.exists():
        raise InputError(f"{out_dir}: is a folder holding other files, not a plan; choose a new or empty --out folder")
    same_demo = False
    if replaces_scan is not None:
        try:
            same_demo = json.loads(old.read_text(encoding="utf-8")).get("scan") == replaces_scan
        except (json.JSONDecodeError, UnicodeDecodeError, AttributeError, OSError):
            pass
    if not (overwrite or same_demo):
        raise InputError(f"{out_dir}: already holds a plan (summary.json); choose a new --out folder or pass "
                         "--overwrite to replace it (the old plan is kept as DIR.previous-N)")
    return not same_demo


def quality_warnings(quality: dict, n_dots: int) -> list:
    """Lines for each quality figure below the engine's bars (plans of ``config.QUALITY_BAR_MIN_DOTS`` or more)."""
    if n_dots < config.QUALITY_BAR_MIN_DOTS:
        return []
    out = []
    u = quality["union"].get("rho")
    if u is not None and u < config.QUALITY_BAR_UNION_RHO:
        out.append(f"all dots: rho {u:.2f} is below the bar {config.QUALITY_BAR_UNION_RHO}")
    for a in quality["sessions"]:
        if a.get("rho") is not None and a["rho"] < config.QUALITY_BAR_SESSION_RHO:
            out.append(f"session {a['session']} alone: rho {a['rho']:.2f} is below the bar "
                       f"{config.QUALITY_BAR_SESSION_RHO}")
    return out


def write_verified_program(prog, out_dir, stem, surface, *, n_sessions, plan_sha, part="", head_sha=None,
                           case_tag=""):
    """Write ``stem.ngc`` and ``stem.json`` for a program; the G-code is verified in its temporary file and only
    renamed into place when every move passes. Returns the verdict line.

    ``head_sha``: :func:`scalp3d.checksums.head_checksum` of the head in scan axes (the head.ply); it may be omitted
    only when the machine has no registration (then ``surface``'s head is that head)."""
    if head_sha is None:
        head_sha = _head_sha_of(surface, prog.machine)
    js = session_dict(prog, n_sessions=n_sessions, plan_sha=plan_sha, head_sha=head_sha, case_tag=case_tag)
    ngc = Path(out_dir) / f"{stem}.ngc"
    with atomic_path(ngc) as tmp:
        tmp.write_text(gcode_text(prog, n_sessions=n_sessions, plan_sha=plan_sha, head_sha=head_sha, part=part,
                                  case_tag=case_tag),
                       encoding="utf-8")
        rep = verify_program(tmp, surface, session_json=js, machine=prog.machine, head_sha=head_sha)
        if not rep.ok:
            raise SafetyError(f"{ngc.name}: verification refused the program: {rep.violations[0]}"
                              f" (+{len(rep.violations) - 1} more); nothing was written for it")
    write_json(Path(out_dir) / f"{stem}.json", js, rows_key="dots")
    return f"{ngc.name}: OK, {rep.plunges:,} plunges checked"


def _head_sha_of(surface, machine):
    if not np.array_equal(machine.scan_to_machine, np.eye(4)):
        raise ValueError("pass head_sha (head_checksum of the head in scan axes): this machine has a registration")
    return head_checksum(surface.head.vertices)


def write_session_programs(prog, out_dir, surface, *, n_sessions, plan_sha, chunk_dots=None, chunk_minutes=None,
                           head_sha=None, case_tag=""):
    """``session-K.ngc/.json``, or with chunks ``session-K-part-J.ngc/.json`` plus the whole ``session-K.json``.
    ``head_sha``: see :func:`write_verified_program`."""
    if head_sha is None:
        head_sha = _head_sha_of(surface, prog.machine)
    parts = split_program(prog, surface, chunk_dots=chunk_dots, chunk_minutes=chunk_minutes)
    if len(parts) == 1:
        return [write_verified_program(prog, out_dir, f"session-{prog.session}", surface, n_sessions=n_sessions,
                                       plan_sha=plan_sha, head_sha=head_sha, case_tag=case_tag)]
    write_json(Path(out_dir) / f"session-{prog.session}.json",
               session_dict(prog, n_sessions=n_sessions, plan_sha=plan_sha, head_sha=head_sha, case_tag=case_tag),
               rows_key="dots")
    return [write_verified_program(part, out_dir, f"session-{prog.session}-part-{j}", surface, n_sessions=n_sessions,
                                   plan_sha=plan_sha, part=f", part {j} of {len(parts)}", head_sha=head_sha,
                                   case_tag=case_tag)
            for j, part in enumerate(parts, start=1)]


def run(out_dir, *, scan_path=None, sample=False, plan_path=None, units=None, scale=None, seed=None,
        landmarks_path=None, overwrite=False, render=True, log=print, timer=None, machine=None, chunk_dots=None,
        chunk_minutes=None, progress=None):
    """Plan a whole treatment and write it to ``out_dir`` (written into a temporary folder beside it and swapped in
    whole: a re-plan leaves exactly the new plan's files, an error leaves nothing). Returns the summary dict.

    Before any program is written, the dots are checked against the spacing floor (a plan that breaks it is refused,
    :class:`scalp3d.errors.PlanRefused`, exit 3); quality figures below the engine's bars are printed as warnings and
    listed in ``summary["quality"]["below_bars"]``. ``progress``: a callable taking a line, told of every stage.
    ``sample``: plan on the embedded sample head instead of ``scan_path``."""
    timer = timer or Timer(progress)
    out_dir = Path(out_dir)
    plan = load_plan(plan_path, {"seed": int(seed)} if seed is not None else None)
    machine = load_machine(machine)  # the plan and the machine are validated before any heavy work
    with timer("load scan"):
        inp = _read_input(scan_path, sample, units, scale, landmarks_path)
    keep_previous = _prepare_out_dir(out_dir, overwrite, Path(inp.scan.path).name if sample else None)
    with staged_dir(out_dir, keep_previous) as stage:
        log(f"scan: {Path(inp.scan.path).name}: {len(inp.scan.vertices):,} points, units {inp.scan.units_reason}")
        head = inp.head
        if head is None:
            with timer("surface"):
                head = make_head(inp.scan, landmarks=inp.landmarks, progress=progress)
            for line in report_lines(head):
                log("  surface: " + line)
        with timer("landmarks"):
            lm = resolve_landmarks(head, inp.landmarks, inp.landmark_source)
        with timer("design"):
            field = build_field(head, lm, plan)
        dots, quality = plan_dots(head, field, plan, timer)
        summary, images = write_plan_files(stage.path, _source_of(inp), head, lm, machine, plan, field, dots, quality,
                                           timer=timer, chunk_dots=chunk_dots, chunk_minutes=chunk_minutes,
                                           render=render)
    if stage.previous is not None:
        log(f"the plan that was in {out_dir} is kept as {stage.previous}")
    for line in summary_table(summary, out_dir, images):
        log(line)
    return summary


@dataclass(frozen=True)
class Source:
    """Where a plan's head came from, as its summary records it: the scan's file name, how its units were found, and
    the credit a sample head asks for (None)."""

    scan_name: str
    units: str
    credit: str | None = None


def _source_of(inp: "_Input") -> Source:
    return Source(Path(inp.scan.path).name, inp.scan.units_reason, inp.credit)


def write_plan_files(folder, source: Source, head, lm, machine, plan: Plan, field, dots, quality, *, timer=None,
                     chunk_dots=None, chunk_minutes=None, render=True, extra_summary=None):
    """Write a whole plan folder's files into ``folder`` (a staged folder: :func:`scalp3d.fileio.staged_dir`) for
    these ``dots``, exactly as given: one needle program per session (each move checked, written atomically and
    verified, :func:`write_session_programs`), dots.csv, head.ply, landmarks.json, plan.toml, summary.json and, with
    ``render``, the pictures. ``extra_summary``: keys added to summary.json (e.g. a live design's history).

    Returns (summary dict, picture paths)."""
    timer = timer or Timer()
    folder = Path(folder)
    plan_text = plan_to_toml(plan)
    plan_sha = hashlib.sha256(plan_text.encode()).hexdigest()[:16]
    with timer("needle programs"):
        surface = SurfaceQuery(machine.head_in_machine_frame(head))
        programs = [plan_session(dots, k, surface, plan.needle.motion, machine=machine,
                                 zone_order=plan.needle.zone_order) for k in range(1, len(plan.sessions) + 1)]
    with timer("export + verify"):
        verdicts = []
        for prog in programs:
            verdicts += write_session_programs(prog, folder, surface, n_sessions=len(plan.sessions),
                                               plan_sha=plan_sha, chunk_dots=chunk_dots,
                                               chunk_minutes=chunk_minutes, head_sha=head_checksum(head.vertices))
        write_text(folder / "dots.csv", dots_csv_text(dots))
        write_head_ply(head, folder / "head.ply")
        write_json(folder / "landmarks.json", lm.to_dict())
        write_text(folder / "plan.toml", plan_text)
    summary = make_summary(source, head, lm, machine, plan, plan_sha, field, dots, quality, programs, verdicts)
    summary.update(extra_summary or {})
    write_json(folder / "summary.json", summary)
    images = []
    if render:
        with timer("preview"):
            images = render_pictures(head, lm, plan, field, dots, folder, credit=source.credit)
    return summary, images


@dataclass
class _Input:
    """What the pipeline starts from: the scan (mm), the head when it comes ready-made (the sample), landmarks given
    with it or in a file (None: estimated later), where they came from, and the credit a sample asks for."""

    scan: Scan
    head: Head | None
    landmarks: Landmarks | None
    landmark_source: str
    credit: str | None


def _read_input(scan_path, sample, units, scale, landmarks_path) -> _Input:
    if sample:
        from .sample import CREDIT, load_sample_head

        scan, head, fiducials = load_sample_head()
        inp = _Input(scan, head, fiducials, "fiducials", CREDIT)
    else:
        inp = _Input(load_scan(scan_path, units=units, scale=scale), None, None, "file", None)
    if landmarks_path is not None:
        inp.landmarks, inp.landmark_source = load_landmarks(landmarks_path, inp.scan.scale_to_mm), "file"
    return inp


def plan_dots(head: Head, field: Field, plan: Plan, timer=None):
    """Place every session's dots for the design ``field``, give them their settings, measure their quality and
    check them against the spacing floor (:class:`scalp3d.errors.PlanRefused` if any pair breaks it).

    Returns (:class:`Dots`, quality dict with ``below_bars``: the engine's quality bars not met)."""
    timer = timer or Timer()
    fractions = plan.sessions.fractions
    with timer("placement"):
        placed = place_dots(head.vertices, head.faces, density_per_cm2=field.density_per_cm2, sessions=fractions,
                            seed=plan.seed, vertex_normals=head.vertex_normals)
    if len(placed) == 0:
        raise InputError("the plan puts no dot on this head (treated area empty); check the landmarks and hairline")
    dots = dots_with_settings(placed, head, field)
    with timer("quality"):
        quality = placement_quality(head, field, dots, fractions, seed=plan.seed)
    dens = (dots.bary * field.density_per_cm2[head.faces[dots.face_ids]]).sum(axis=1)
    refuse_close_dots(dots, local_spacing_mm(dens, field.density_per_cm2.max()), fractions)
    quality["below_bars"] = quality_warnings(quality, len(dots))
    return dots, quality


def make_summary(source: Source, head, lm, machine, plan: Plan, plan_sha, field, dots, quality, programs,
                 verdicts) -> dict:
    """``summary.json``: inputs, head, landmarks' sources, machine, plan checksum, area, dots and time per session,
    the design as built, per-zone and spacing quality, verification verdicts. No wall-clock time (a data file)."""
    areas = face_areas(head.vertices, head.faces)
    treated = (field.density_per_cm2[head.faces] > 0).all(axis=1)
    fractions = plan.sessions.fractions
    return {
        "scalp3d": __version__,
        "scan": source.scan_name,
        "units": source.units,
        "head": {"vertices": int(len(head.vertices)), "faces": int(len(head.faces)), "notes": head.notes,
                 "filled_vertices": int(np.count_nonzero(head.filled)) if head.filled is not None else 0,
                 "surface_report": {k: v for k, v in head.report.items() if k != "steps_s"}},
        "landmarks": lm.sources,
        "machine": machine.summary(),
        "seed": plan.seed,
        "plan_sha256": plan_sha,
        "treated_area_cm2": round(float(areas[treated].sum() / 100.0), 2),
        "dots_total": int(len(dots)),
        "sessions": [{
            "session": p.session, "dots": len(p), "cumulative_dots": int((dots.session <= p.session).sum()),
            "cumulative_fraction": fractions[p.session - 1], "shade": p.main_shade,
            "estimated_time_min": round(p.estimated_time_s / 60.0, 1), "travel_m": round(p.travel_mm / 1000.0, 2),
            "lifted_travels": p.lifted,
        } for p in programs],
        "design": design_figures(head, field, areas),
        "zones": quality["zones"],
        "quality": {"union": quality["union"], "cumulative": quality["cumulative"],
                    "sessions": quality["sessions"], "below_bars": quality["below_bars"]},
        "verification": verdicts,
        "credit": source.credit,
    }


def render_pictures(head, lm, plan, field, dots, out_dir, credit=None) -> list:
    """The standard pictures (:func:`scalp3d.viewers.preview.render_preview`: six views, before and after, session
    by session, close-ups, a turntable) and the design's maps; returns their paths. (pyvista is imported here.)"""
    from .viewers.preview import render_preview
    from .viewers.scene import Scene

    extra = {}
    if field.hair is not None:
        extra["existing hair cover, 0-1"] = field.hair
    if head.filled is not None and head.filled.any():
        extra["filled holes (not measured), 1 = filled"] = head.filled.astype(float)
    return render_preview(Scene.from_plan(head, lm, plan, field, dots), out_dir, credit=credit, extra=extra)


def design_figures(head, field, areas) -> dict:
    """The design as built: mode, realised mid-frontal height, hairline control points, existing hair's effect."""
    out = dict(field.figures)
    if field.hair is not None:
        f = head.faces
        before = field.density_without_hair[f].mean(axis=1)
        after = field.density_per_cm2[f].mean(axis=1)
        out["existing_hair"] = {
            "area_with_hair_cm2": round(float(areas[(field.hair[f] >= 0.5).all(axis=1)].sum() / 100.0), 2),
            "dots_not_added": int(round(float((areas * (before - after)).sum() / 100.0))),
            "share_of_dots_not_added": round(float((areas * (before - after)).sum()
                                                   / max((areas * before).sum(), 1e-12)), 4)}
    return out


def summary_table(s: dict, out_dir, images=()) -> list:
    """The printed summary: area, dots per session, time, density per zone, quality, verification."""
    L = [f"treated area {s['treated_area_cm2']:.1f} cm2, {s['dots_total']:,} dots in {len(s['sessions'])} sessions "
         f"(seed {s['seed']})",
         f"  {'session':<8}{'dots':>8}{'cumulative':>12}{'share':>7}  {'shade':<8}{'time':>9}{'lifts':>7}"]
    for r in s["sessions"]:
        L.append(f"  {r['session']:<8}{r['dots']:>8,}{r['cumulative_dots']:>12,}{r['cumulative_fraction']:>7.0%}  "
                 f"{r['shade']:<8}{r['estimated_time_min']:>5.1f} min{r['lifted_travels']:>7}")
    d = s.get("design", {})
    if d.get("mid_frontal_above_glabella_mm") is not None:
        L.append(f"  design: mode {d['mode']}, hairline {d['mid_frontal_above_glabella_mm']:.0f} mm above the glabella "
                 "along the skin")
    if d.get("unmeasured_treated_cm2"):
        L.append(f"  WARNING: {d['unmeasured_treated_cm2']:.1f} cm2 of the treated area was a hole in the scan (filled, "
                 "not measured): no dots there; rescan that part to treat it")
    if "existing_hair" in d:
        h = d["existing_hair"]
        L.append(f"  existing hair (from the scan's colour): {h['area_with_hair_cm2']:.1f} cm2 covered, "
                 f"{h['dots_not_added']:,} dots not added ({h['share_of_dots_not_added']:.0%})")
    L.append(f"  {'zone':<10}{'area cm2':>9}{'dots':>8}{'planned/cm2':>13}{'realised/cm2':>14}")
    for name, z in s["zones"].items():
        # a zone's sliver along another's edge (a few dots, well under 1 cm2) has no density to speak of: the front
        # zone of a hairline-only plan read "0.0 cm2, 3 dots, realised 171.9/cm2" against 79.8 planned
        small = z["area_cm2"] < config.ZONE_MIN_REPORTED_CM2
        L.append(f"  {name:<10}{z['area_cm2']:>9.1f}{z['dots']:>8,}{z['planned_per_cm2']:>13.1f}"
                 + (f"{'-':>14}  (a sliver: too small to measure)" if small else f"{z['realised_per_cm2']:>14.1f}"))
    q = s["quality"]["union"]
    L.append(f"  quality, all dots: rho {q['rho']:.2f}, nn p1 {q['nn_p1']:.2f}, nn CV {q['nn_cv']:.3f}, "
             f"coverage p99 {q.get('coverage_p99', float('nan')):.2f} (of the local d_max); spectrum peak "
             f"{q.get('spectrum_peak', float('nan')):.2f}, low-frequency power {q.get('spectrum_low', float('nan')):.2f}")
    for c, a in zip(s["quality"]["cumulative"], s["quality"]["sessions"]):
        L.append(f"  after session {c['through_session']}: rho {c['rho']:.2f}, nn p1 {c['nn_p1']:.2f}, "
                 f"nn CV {c['nn_cv']:.3f}; session {a['session']} alone: rho {a['rho']:.2f}, nn p1 {a['nn_p1']:.2f}")
    L.extend(f"  WARNING: quality below the engine's bar: {w}; look at the pictures before tattooing, or "
             "try another --seed" for w in s["quality"].get("below_bars", []))
    L.extend("  verified " + v for v in s["verification"])
    L.append(f"wrote {out_dir}/: session-K.ngc/.json, dots.csv, head.ply, landmarks.json, plan.toml, summary.json"
             + (", " + ", ".join(Path(i).name for i in images) if images else ""))
    return L
