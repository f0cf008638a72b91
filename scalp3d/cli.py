"""The command line: ``scalp3d demo | plan | sample | export | verify``.

Errors a user can cause print one line (``scalp3d: error: ...``) and exit non-zero; never a traceback
(set SCALP3D_DEBUG=1 to see one for an internal error).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

from . import config


class _Parser(argparse.ArgumentParser):
    """argparse with errors on one line (exit 2): its usage block would bury the one thing to fix."""

    def error(self, message):
        msg = " ".join(str(message).split())
        self.exit(2, f"scalp3d: error: {msg}; see `{self.prog} --help`\n")


def _whole(lo, hi=None, what="a whole number"):
    """An argparse type: a whole number in lo..hi (hi None: no upper bound)."""
    rng = f"from {lo} to {hi}" if hi is not None else f"of at least {lo}"

    def parse(text):
        try:
            val = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {what} {rng}, not {text!r}") from None
        if val < lo or (hi is not None and val > hi):
            raise argparse.ArgumentTypeError(f"must be {what} {rng}, not {val}")
        return val

    return parse


def _number(what="a positive number"):
    """An argparse type: a finite number above 0."""

    def parse(text):
        try:
            val = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {what}, not {text!r}") from None
        if not np.isfinite(val) or val <= 0:
            raise argparse.ArgumentTypeError(f"must be {what}, not {text!r}")
        return val

    return parse


_SEED = _whole(0, 2**31 - 1, "a whole-number seed")
_SCALE = _number("a positive number of millimetres per scan unit")


def _add_common(p):
    from .design import example_plans

    p.add_argument("--plan", dest="plan_path", metavar="PLAN.toml", help="the treatment plan (defaults otherwise), "
                   "or an example plan's name: " + ", ".join(example_plans()))
    p.add_argument("--seed", type=_SEED, help="random seed (overrides the plan's)")
    p.add_argument("--overwrite", action="store_true", help="replace a plan already in the output folder")
    p.add_argument("--no-preview", dest="render", action="store_false", help="skip the PNG previews")
    _add_quiet(p)
    _add_program_options(p)


def _add_quiet(p):
    p.add_argument("--quiet", action="store_true", help="no progress lines (the summary and errors still print)")


def _add_program_options(p):
    p.add_argument("--machine", help="machine profile: generic-5axis (default), generic-3axis or a TOML file")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--chunk-dots", type=_whole(1), metavar="N", help="split each session into programs of N dots")
    g.add_argument("--chunk-minutes", type=_number("a positive number of minutes"), metavar="M",
                   help="split each session into programs of M minutes")


def build_parser():
    from . import __version__

    ap = _Parser(prog="scalp3d", description="Plan scalp micropigmentation on a 3D head scan.")
    ap.add_argument("--version", action="version", version=f"scalp3d {__version__}")
    sub = ap.add_subparsers(dest="command", required=True)
    d = sub.add_parser("demo", help="plan a whole treatment on the embedded sample head")
    d.add_argument("--out", default="scalp3d-demo", help="output folder (default ./scalp3d-demo)")
    _add_common(d)
    p = sub.add_parser("plan", help="plan a treatment on your scan")
    p.add_argument("scan", help="scan file: mesh (PLY OBJ STL OFF GLB) or point cloud (PLY PCD XYZ)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--units", choices=["mm", "cm", "m", "in"], help="the scan's unit (detected when omitted)")
    p.add_argument("--scale", type=_SCALE, help="millimetres per scan unit (overrides --units)")
    p.add_argument("--landmarks", dest="landmarks_path", metavar="L.json",
                   help="nasion, lpa, rpa (and optionally glabella, vertex, inion) in mm, scan axes")
    _add_common(p)
    m = sub.add_parser("mesh", help="turn a raw scan into a clean head surface (mm, the scan's axes)")
    m.add_argument("scan", help="scan file: mesh (PLY OBJ STL OFF GLB) or point cloud (PLY PCD XYZ PTS)")
    m.add_argument("--out", required=True, metavar="HEAD.ply", help="the head surface to write (PLY)")
    m.add_argument("--units", choices=["mm", "cm", "m", "in"], help="the scan's unit (detected when omitted)")
    m.add_argument("--scale", type=_SCALE, help="millimetres per scan unit (overrides --units)")
    m.add_argument("--landmarks", dest="landmarks_path", metavar="L.json", help="landmarks for the neck cut")
    m.add_argument("--edge-mm", type=_number("a positive length in mm"), default=None,
                   help=f"target edge length of the remeshing (default {config.REMESH_EDGE_MM})")
    m.add_argument("--overwrite", action="store_true", help="replace HEAD.ply if it exists")
    _add_quiet(m)
    s = sub.add_parser("sample", help="the dot placement engine alone, on any mesh in mm")
    s.add_argument("mesh", help="mesh file (PLY OBJ STL OFF GLB)")
    g = s.add_mutually_exclusive_group(required=True)
    g.add_argument("--count", type=_whole(1), help="exact number of dots")
    g.add_argument("--density-per-cm2", type=_number("a positive density"), help="dots per cm2 over the whole mesh")
    s.add_argument("--sessions", type=_whole(1, config.MAX_SESSIONS), default=len(config.SESSION_FRACTIONS),
                   help="number of sessions (default 3: 30/70/100 %%)")
    s.add_argument("--seed", type=_SEED, default=0)
    s.add_argument("--fixed", metavar="DOTS.csv", help="dots already on the skin (columns x,y,z in mm)")
    s.add_argument("--units", choices=["mm", "cm", "m", "in"])
    s.add_argument("--scale", type=_SCALE)
    s.add_argument("--out", required=True, metavar="DOTS.csv")
    s.add_argument("--overwrite", action="store_true", help="replace DOTS.csv if it exists")
    _add_quiet(s)
    e = sub.add_parser("export", help="re-export a planned session: in chunks, or resumed from a dot")
    e.add_argument("plan_dir", help="the folder `scalp3d plan` wrote")
    e.add_argument("--session", type=_whole(1), required=True)
    e.add_argument("--resume-from", type=_whole(0), metavar="DOT_ID",
                   help="the first dot still to do (after an interruption)")
    _add_program_options(e)
    v = sub.add_parser("verify", help="check an exported needle program against the head: exit 0 OK, 1 refused",
                       description="Check session-K.ngc against head.ply with nothing else: its header's checksums "
                       "(head, plan.toml beside it, dots, tips), every plunge, dwell and travel, the spacing floor. "
                       "With session-K.json beside it (or --plan-json) every tip is also compared with the plan.")
    v.add_argument("program", help="session-K.ngc")
    v.add_argument("--head", required=True, help="head.ply the program was planned on")
    v.add_argument("--plan-json", help="session-K.json (default: beside the program, when there)")
    v.add_argument("--machine", help="machine profile the program was made for (default: the shipped profile its "
                   "header names, else generic-5axis)")
    v.add_argument("--case", metavar="CASE", help="also refuse a program written for another case, an older plan "
                   "revision or another head than this case's")
    pv = sub.add_parser("preview", help="one picture of a plan: a view, a session, before or fresh",
                        description="Render one picture of the plan in DIR (the folder scalp3d plan wrote) to FILE.png; "
                        "scalp3d plan already writes the standard set (preview*.png, the turntable GIF, design.png).")
    pv.add_argument("plan_dir", metavar="DIR", help="the folder `scalp3d plan` wrote")
    pv.add_argument("--view", default="three-quarter",
                    help="front, left, right, back, top or three-quarter (default)")
    pv.add_argument("--session", type=_whole(1), help="after this session (default: the last)")
    pv.add_argument("--before", action="store_true", help="the head as it is before the first session")
    pv.add_argument("--fresh", action="store_true", help="the first days after the session, not the healed look")
    pv.add_argument("--size", type=_size, default=None, metavar="WxH", help="pixels, e.g. 1200x900 (default 640x640)")
    pv.add_argument("--out", required=True, metavar="FILE.png")
    pv.add_argument("--overwrite", action="store_true", help="replace FILE.png if it exists")
    _add_quiet(pv)
    vw = sub.add_parser("view", help="turn the plan in 3D: sessions, healed or fresh, before/after, heat maps")
    vw.add_argument("plan_dir", metavar="DIR", help="the folder `scalp3d plan` wrote")
    _add_quiet(vw)
    dg = sub.add_parser("design", help="change the design live with the patient: drag the hairline, paint reserved "
                        "skin, sliders; the healed look follows", description="Open a plan in the live design window. "
                        "Drag the spheres on the hairline (mid-frontal, frontotemporal, temple points), on reserved "
                        "regions and scars; p reserves the skin under the pointer; z undo, y redo, w save.")
    dg.add_argument("plan_dir", metavar="DIR", help="the folder `scalp3d plan` wrote, or a patient's case file (w "
                    "then stores the design as the case's next revision: the dots already done never move)")
    dg.add_argument("--out", metavar="DIR2", help="where w saves the plan and the dots shown (default: DIR itself, "
                    "its plan kept as DIR.previous-N)")
    _add_quiet(dg)
    sh = sub.add_parser("share", help="one HTML file the patient opens at home, offline: turn, zoom, sessions")
    sh.add_argument("plan_dir", metavar="DIR", help="the folder `scalp3d plan` wrote")
    sh.add_argument("--out", required=True, metavar="FILE.html")
    sh.add_argument("--no-face", action="store_true", help="cut the face away below the brow (privacy)")
    sh.add_argument("--glb", metavar="FILE.glb", help="also write the 3D model alone (glTF binary)")
    sh.add_argument("--overwrite", action="store_true", help="replace FILE.html (and FILE.glb) if they exist")
    _add_quiet(sh)
    c = sub.add_parser("case", help="a patient's case across visits: one file, every session and dot remembered")
    cs = c.add_subparsers(dest="case_command", required=True)
    cn = cs.add_parser("new", help="read the scan, make the head, plan every session, store it all in CASE")
    cn.add_argument("case", metavar="CASE", help="the case file to make (e.g. smith.scalp3d)")
    cn.add_argument("--scan", required=True, help="the first scan (mesh or point cloud)")
    cn.add_argument("--plan", dest="plan_path", metavar="PLAN.toml", help="the treatment plan (defaults otherwise), "
                    "or an example plan's name")
    g = cn.add_mutually_exclusive_group()
    g.add_argument("--units", choices=["mm", "cm", "m", "in"], help="the scan's unit (detected when omitted)")
    g.add_argument("--scale", type=_SCALE, help="millimetres per scan unit")
    cn.add_argument("--landmarks", dest="landmarks_path", metavar="L.json")
    _add_quiet(cn)
    for name, what in (("show", "sessions, states, dot counts, revisions, scans"), ("history", "every change")):
        x = cs.add_parser(name, help=what)
        x.add_argument("case", metavar="CASE")
        _add_quiet(x)
    cse = cs.add_parser("session", help="write session K's programs, JSON and dots.csv into DIR (the dots not done)")
    cse.add_argument("case", metavar="CASE")
    cse.add_argument("session", type=_whole(1), metavar="K")
    cse.add_argument("--out", required=True, metavar="DIR")
    cse.add_argument("--scan", metavar="TODAY", help="today's scan: registered to the case's head, everything written "
                     "in its own axes (mm), with registration.json")
    _add_session_writing(cse)
    cr = cs.add_parser("revise", help="a new plan revision for the sessions not yet done, around the dots done")
    cr.add_argument("case", metavar="CASE")
    cr.add_argument("--plan", dest="plan_path", required=True, metavar="PLAN.toml")
    cr.add_argument("--comment", default="", help="why (kept in the case's history)")
    _add_quiet(cr)
    ct = cs.add_parser("touch-up", help="years later: a touch-up session from today's scan, written into DIR")
    ct.add_argument("case", metavar="CASE")
    ct.add_argument("--scan", required=True, metavar="TODAY", help="today's scan (registered to the case's head)")
    ct.add_argument("--out", required=True, metavar="DIR")
    ct.add_argument("--mode", choices=["rehit", "interleave"], default="interleave",
                    help="rehit: tattoo every done dot's position again; interleave (default): new dots between them")
    ct.add_argument("--fraction", type=float, metavar="F", help="interleave: the share of the density added "
                    f"(default {config.TOUCH_UP_FRACTION:g})")
    ct.add_argument("--comment", default="", help="why (kept in the case's history)")
    _add_session_writing(ct)
    cd = cs.add_parser("done", help="mark session K done, or done up to a dot when it was interrupted")
    cd.add_argument("case", metavar="CASE")
    cd.add_argument("session", type=_whole(1), metavar="K")
    cd.add_argument("--until-dot", type=_whole(0), metavar="ID", help="the last dot tattooed")
    _add_quiet(cd)
    return ap


def _add_session_writing(p):
    """The options of `case session` and `case touch-up` for writing a session (from today's scan)."""
    p.add_argument("--machine", help="machine profile: generic-5axis (default), generic-3axis or a TOML file")
    p.add_argument("--overwrite", action="store_true", help="replace DIR if it exists")
    p.add_argument("--landmarks", dest="landmarks_path", metavar="L.json", help="today's landmarks (with today's "
                   "scan, when its face is missing)")
    p.add_argument("--no-preview", action="store_true", help="skip the patient's pictures (about 17 s)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--units", choices=["mm", "cm", "m", "in"], help="today's scan's unit (detected when omitted)")
    g.add_argument("--scale", type=_SCALE, help="millimetres per unit of today's scan")
    _add_quiet(p)


def _case(args):
    from . import case_commands as cc
    from .case import Case

    if args.case_command == "new":
        cc.case_new(args.case, args.scan, plan_path=args.plan_path, units=args.units, scale=args.scale,
                    landmarks_path=args.landmarks_path, progress=_progress(args))
    elif args.case_command in ("show", "history"):
        with Case.open(args.case) as case:
            lines = cc.show_lines(case) if args.case_command == "show" else cc.history_lines(case)
        for line in lines:
            print(line)
    elif args.case_command == "revise":
        cc.case_revise(args.case, args.plan_path, comment=args.comment, progress=_progress(args))
    elif args.case_command == "session":
        cc.case_session(args.case, args.session, args.out, machine=args.machine, overwrite=args.overwrite,
                        scan=args.scan, units=args.units, scale=args.scale, landmarks=args.landmarks_path,
                        preview=not args.no_preview,
                        progress=_progress(args))
    elif args.case_command == "touch-up":
        cc.case_touch_up(args.case, args.scan, args.out, mode=args.mode, fraction=args.fraction,
                         machine=args.machine, overwrite=args.overwrite, units=args.units, scale=args.scale,
                         landmarks=args.landmarks_path, comment=args.comment, preview=not args.no_preview,
                         progress=_progress(args))
    else:
        cc.case_done(args.case, args.session, until_dot=args.until_dot)
    return 0


def _size(text):
    try:
        w, h = (int(x) for x in str(text).lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size; write WIDTHxHEIGHT in pixels, e.g. 1200x900") \
            from None
    return w, h


def _refuse_existing(path, overwrite, what="file"):
    from pathlib import Path

    from .errors import InputError

    path = Path(path)
    if path.exists() and not overwrite:
        raise InputError(f"{path}: exists; give another name or --overwrite to replace it")
    if path.is_dir():
        raise InputError(f"{path}: is a folder; give a {what} name")


def _preview(args):
    from .viewers.preview import check_view, render_view
    from .viewers.scene import Scene

    _refuse_existing(args.out, args.overwrite, "PNG file")
    check_view(args.view, args.size)
    _progress(args)("reading the plan and baking its look ...")
    scene = Scene.from_dir(args.plan_dir)
    out = render_view(scene, args.out, view=args.view, session=args.session, before=args.before, fresh=args.fresh,
                      size=args.size)
    print(f"wrote {out}")
    return 0


def _design(args):
    from .errors import InputError
    from .live import LiveDesign
    from .viewers.design import open_design
    from .viewers.interactive import no_display_reason

    reason = no_display_reason()
    if reason:
        raise InputError(f"scalp3d design needs a screen: {reason}; change plan.toml and run scalp3d plan instead")
    _progress(args)("reading the plan and baking its look ...")
    if Path(args.plan_dir).is_file():  # a patient's case: w stores the next revision
        if args.out:
            raise InputError(f"{args.plan_dir}: a case's design is saved into the case as its next revision; "
                             "leave out --out")
        live = LiveDesign.open_case(args.plan_dir)
    else:
        live = LiveDesign.open(args.plan_dir)
    open_design(live, save_to=args.out or args.plan_dir)
    if live.can_undo:
        print(f"scalp3d design: {len(live.history)} change(s) made; saved only where you pressed w")
    return 0


def _view(args):
    from .errors import InputError
    from .viewers.interactive import no_display_reason, open_view
    from .viewers.scene import Scene

    reason = no_display_reason()
    if reason:
        raise InputError(f"scalp3d view needs a screen: {reason}; use scalp3d preview or scalp3d share instead")
    _progress(args)("reading the plan and baking its look ...")
    open_view(Scene.from_dir(args.plan_dir))
    return 0


def _share(args):
    from .viewers.share_plan import share_plan
    from .viewers.scene import Scene

    _refuse_existing(args.out, args.overwrite, "HTML file")
    if args.glb:
        _refuse_existing(args.glb, args.overwrite, "GLB file")
    _progress(args)("reading the plan and baking its look ...")
    info = share_plan(Scene.from_dir(args.plan_dir), args.out, no_face=args.no_face, glb_path=args.glb)
    print(f"wrote {args.out}: {info['bytes'] / 1e6:.1f} MB, {info['triangles']:,} triangles, "
          f"states: {', '.join(info['variants'])}" + (f"; and {args.glb}" if args.glb else ""))
    return 0


def _verify(args):
    from .verify import verify_file

    if getattr(args, "case", None):
        from .case_commands import case_refusal

        why = case_refusal(args.program, args.head, args.case)
        if why:
            print(f"REFUSED: {why}")
            return 1

    rep = verify_file(args.program, args.head, plan_json=args.plan_json, machine=args.machine)
    print(rep.verdict())
    if rep.fatal:  # one line says it all (another head, another plan, no header)
        return 1
    for v in rep.violations[:50]:
        print("  " + v)
    if len(rep.violations) > 50:
        print(f"  ... and {len(rep.violations) - 50} more")
    return 0 if rep.ok else 1


def _sample(args):
    from pathlib import Path

    from .errors import InputError
    from .export import read_dots_csv, sample_csv_text
    from .fileio import write_text
    from .placement import check_density, place_dots, spacing_for_density
    from .quality import spread_figures
    from .scan import load_scan

    t0 = time.perf_counter()
    out = Path(args.out)
    if out.is_dir():
        raise InputError(f"{out}: is a folder; give --out a file name such as {out / 'dots.csv'}")
    if out.exists() and not args.overwrite:
        raise InputError(f"{out} exists; choose another --out or pass --overwrite to replace it")
    scan = load_scan(args.mesh, units=args.units, scale=args.scale, head=False)  # any mesh, not only a head
    if scan.is_point_cloud:
        raise InputError(f"{args.mesh}: is a point cloud; `scalp3d sample` needs a mesh (run `scalp3d plan` to mesh it)")
    fixed = None
    if args.fixed:
        cols = read_dots_csv(args.fixed)
        fixed = np.column_stack([cols["x"], cols["y"], cols["z"]])
    if args.count is not None and args.count < 1:
        raise InputError(f"--count must be at least 1, not {args.count}")
    if args.density_per_cm2 is not None:
        if not args.density_per_cm2 > 0:
            raise InputError(f"--density-per-cm2 must be above 0, not {args.density_per_cm2}")
        check_density(args.density_per_cm2, what="--density-per-cm2")  # the one check of the upper limit
    _progress(args)("placing dots ...")
    dots = place_dots(scan.vertices, scan.faces, count=args.count, density_per_cm2=args.density_per_cm2,
                      sessions=args.sessions, seed=args.seed, fixed=fixed)
    from . import kernels as K
    from .spacing import refuse_close_dots

    area = float(K.triangle_areas(np.ascontiguousarray(scan.vertices), np.ascontiguousarray(scan.faces)).sum())
    n = len(dots)
    fr = np.cumsum(np.bincount(dots.session, minlength=2)[1:]) / max(n, 1)
    n_all = n + (0 if fixed is None else len(fixed))
    d_all = float(spacing_for_density(n_all / area * 100)) if n_all else 0.0
    if n > 1:
        refuse_close_dots(dots, np.full(n, d_all), fr, source=f"{args.mesh}: the dots")
    write_text(out, sample_csv_text(dots))
    print(f"{Path(args.mesh).name}: {area / 100:,.1f} cm2, units {scan.units_reason}; {n:,} dots in "
          f"{time.perf_counter() - t0:.1f} s -> {args.out}")
    shares = np.diff(np.concatenate([[0.0], fr]))
    dmax = float(spacing_for_density(n / area * 100))
    u = spread_figures(dots.positions, np.full(n, dmax))
    print(f"  new dots: rho {u['rho']:.3f}, nn p1 {u['nn_p1']:.3f}, nn CV {u['nn_cv']:.3f} (of d_max {dmax:.3f} mm)")
    if fixed is not None and len(fixed):
        both = np.vstack([fixed, dots.positions])
        dm2 = float(spacing_for_density(len(both) / area * 100))
        w = spread_figures(both, np.full(len(both), dm2))
        print(f"  with the {len(fixed):,} fixed dots: rho {w['rho']:.3f}, nn p1 {w['nn_p1']:.3f}, "
              f"nn CV {w['nn_cv']:.3f} (of d_max {dm2:.3f} mm)")
    for k in range(1, len(fr) + 1):
        cum = dots.session <= k
        alone = dots.session == k
        c = spread_figures(dots.positions[cum], np.full(cum.sum(), dmax / np.sqrt(fr[k - 1])))
        a = spread_figures(dots.positions[alone], np.full(alone.sum(), dmax / np.sqrt(shares[k - 1])))
        print(f"  session {k}: {alone.sum():,} dots, alone rho {a['rho']:.3f}; sessions 1-{k}: rho {c['rho']:.3f}, "
              f"nn p1 {c['nn_p1']:.3f}")
    return 0


def _export(args):
    import json
    from pathlib import Path

    from .checksums import head_checksum
    from .errors import InputError
    from .export import program_from_session
    from .fileio import staged_dir
    from .machine import load_machine
    from .needle import build_program, resume_program
    from .pipeline import write_session_programs
    from .proximity import SurfaceQuery
    from .surface import load_head

    d = Path(args.plan_dir)
    js_path = d / f"session-{args.session}.json"
    if not js_path.is_file():
        raise InputError(f"{js_path}: not found; give the folder `scalp3d plan` wrote and a session it planned")
    try:
        js = json.loads(js_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        reason = str(exc).splitlines()[0][:80] if str(exc) else type(exc).__name__
        raise InputError(f"{js_path}: not valid JSON ({reason}); re-run scalp3d plan") from None
    machine = load_machine(args.machine)
    s = program_from_session(js, machine, str(js_path))
    written = js.get("machine", {}).get("scan_to_machine", np.eye(4)) if isinstance(js.get("machine", {}), dict) \
        else None
    try:
        written = np.asarray(written, dtype=np.float64)
    except (TypeError, ValueError):
        written = None
    if written is None or written.shape != (4, 4) or not np.isfinite(written).all():
        raise InputError(f"{js_path}: 'machine.scan_to_machine' is not a 4x4 matrix of numbers; re-run scalp3d plan")
    if not np.allclose(written, machine.scan_to_machine, atol=1e-6):
        raise InputError(f"{js_path}: was planned for another machine registration than --machine "
                         f"{args.machine or 'generic-5axis'}; give the same profile")
    ids = s["visits"].ids
    if args.resume_from is not None and args.resume_from not in set(ids.tolist()):
        raise InputError(f"{js_path}: dot {args.resume_from} is not in session {s['session']}; give an id from its "
                         f"'dots' (this session runs from dot {int(ids[0])} to dot {int(ids[-1])})")
    if args.resume_from is not None:
        out = d / f"session-{args.session}-from-{args.resume_from}"
    else:
        out = d / f"session-{args.session}-chunks"
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: exists and is not a folder; move it away and export again")
    head = load_head(d / "head.ply")
    surface = SurfaceQuery(machine.head_in_machine_frame(head))
    prog = build_program(s["visits"], surface, s["motion"], machine)
    if args.resume_from is not None:
        prog = resume_program(prog, surface, args.resume_from)
    head_sha = head_checksum(head.vertices)
    if js.get("head_sha256") not in (None, head_sha):
        raise InputError(f"{js_path}: was planned on head sha {js['head_sha256']}, but {d / 'head.ply'} is "
                         f"{head_sha}; export from the folder the plan was written to")
    # the export folder is written whole and swapped in: a re-export never leaves parts of an earlier one
    with staged_dir(out, keep_previous=False) as stage:
        lines = write_session_programs(prog, stage.path, surface, n_sessions=s["sessions"],
                                       plan_sha=s["plan_sha256"], chunk_dots=args.chunk_dots,
                                       chunk_minutes=args.chunk_minutes, head_sha=head_sha)
    for line in lines:
        print(f"{out.name}/{line}")
    print(f"{len(prog):,} dots, estimated {prog.estimated_time_s / 60:.1f} min in all")
    return 0


def _mesh(args):
    from pathlib import Path

    from .errors import InputError
    from .export import write_head_ply
    from .fileio import write_json
    from .landmarks import load_landmarks
    from .scan import load_scan
    from .surface import make_head, report_lines

    out = Path(args.out)
    if out.suffix.lower() != ".ply":
        raise InputError(f"{out}: the head surface is written as PLY; name it HEAD.ply")
    report_path = out.with_name(out.stem + "-report.json")
    if out.exists() and not args.overwrite:
        raise InputError(f"{out} exists; pass --overwrite to replace it")
    edge = config.REMESH_EDGE_MM if args.edge_mm is None else args.edge_mm
    lo, hi = config.REMESH_EDGE_RANGE_MM
    if not lo <= edge <= hi:
        raise InputError(f"--edge-mm {edge} is out of range; use {lo:g} to {hi:g} mm")
    scan = load_scan(args.scan, units=args.units, scale=args.scale)
    lm = load_landmarks(args.landmarks_path, scan.scale_to_mm) if args.landmarks_path else None
    head = make_head(scan, edge_mm=edge, landmarks=lm, progress=_progress(args))
    out.parent.mkdir(parents=True, exist_ok=True)
    write_head_ply(head, out)
    write_json(report_path, {"scan": Path(scan.path).name, "notes": head.notes, **head.report})
    for line in report_lines(head):
        print(line)
    print(f"wrote {out} and {report_path.name}")
    return 0


def _progress(args):
    """Where progress lines go: standard output beside the summary (standard error holds only the one error line),
    unless --quiet; never into a data file."""
    if getattr(args, "quiet", False):
        return lambda line: None
    return lambda line: print(f"scalp3d: {line}", flush=True)


def _cold_cache_notice(progress, warm_up=False):
    """Say that a first run compiles the kernels; with ``warm_up``, compile part of them in a second process
    (:mod:`scalp3d.warmup`: the needle's and the placement's, for the runs that place dots)."""
    from . import numba_cache_is_warm

    if not numba_cache_is_warm():
        progress("compiling kernels, first run only (about 10 s more)")
        if warm_up:
            from .warmup import start

            start()


def main(argv=None):
    args = build_parser().parse_args(argv)
    import warnings

    from .errors import Scalp3dError

    if not os.environ.get("SCALP3D_DEBUG"):
        warnings.simplefilter("ignore")  # library warnings mean nothing to a practitioner; errors are ours

    t0 = time.perf_counter()
    try:
        if args.command in ("demo", "plan", "mesh", "sample"):
            _cold_cache_notice(_progress(args), warm_up=args.command in ("demo", "plan"))
        if args.command == "verify":
            return _verify(args)
        if args.command == "sample":
            return _sample(args)
        if args.command == "export":
            return _export(args)
        if args.command == "mesh":
            return _mesh(args)
        if args.command == "case":
            if args.case_command == "new":
                _cold_cache_notice(_progress(args), warm_up=True)
            return _case(args)
        if args.command in ("preview", "view", "share", "design"):
            return {"preview": _preview, "view": _view, "share": _share, "design": _design}[args.command](args)
        from .pipeline import run

        if args.command == "demo":
            print("scalp3d demo: planning a whole treatment on the embedded sample head (FreeSurfer fsaverage)")
            run(args.out, sample=True, plan_path=args.plan_path, seed=args.seed, overwrite=args.overwrite,
                render=args.render, machine=args.machine, chunk_dots=args.chunk_dots,
                chunk_minutes=args.chunk_minutes, progress=_progress(args))
        else:
            run(args.out, scan_path=args.scan, plan_path=args.plan_path, units=args.units, scale=args.scale,
                seed=args.seed, landmarks_path=args.landmarks_path, overwrite=args.overwrite, render=args.render,
                machine=args.machine, chunk_dots=args.chunk_dots, chunk_minutes=args.chunk_minutes,
                progress=_progress(args))
        print(f"done in {time.perf_counter() - t0:.1f} s")
        return 0
    except Scalp3dError as exc:
        print(f"scalp3d: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except BrokenPipeError:  # output piped into a pager or head that closed early: the files are written
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("scalp3d: interrupted; no output was left half-written", file=sys.stderr)
        return 130
    except ImportError as exc:  # a system library a wheel needs (open3d's libusb) is missing: say which to install
        lib = str(exc).split(":")[0] if ".so" in str(exc) else None
        if lib is None or os.environ.get("SCALP3D_DEBUG"):
            raise
        pkg = " (Debian/Ubuntu: sudo apt-get install libusb-1.0-0)" if "libusb" in lib else ""
        print(f"scalp3d: error: a system library is missing: {lib}; install it{pkg} and run again", file=sys.stderr)
        return 2
    except Exception as exc:  # an internal error: one line, the traceback only on request
        if os.environ.get("SCALP3D_DEBUG"):
            raise
        print(f"scalp3d: internal error: {type(exc).__name__}: {exc} (set SCALP3D_DEBUG=1 for details; "
              "please report it)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
