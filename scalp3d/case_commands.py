"""The ``scalp3d case`` commands on a patient's case file (:mod:`scalp3d.case`): make one from a first scan, show it and
its history, write a session's programs, mark a session done or done up to a dot.

Each command opens the case, does one change in one transaction (the store's) and prints what it did. A revision
re-plans the sessions not done around the dots done; a touch-up adds a session years later (re-hit or interleaved).
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from . import config
from .case import Case, ProgramFile, SessionState
from .errors import InputError


def case_new(case_path, scan_path, *, plan_path=None, units=None, scale=None, landmarks_path=None, log=print,
             progress=None):
    """Read the scan, make the head, plan every session and store it all as a new case (refused if the file
    exists). Returns the case's summary lines."""
    from .design import build_field, load_plan
    from .landmarks import load_landmarks, resolve_landmarks
    from .pipeline import plan_dots
    from .progress import Timer
    from .scan import load_scan
    from .surface import make_head

    case_path = Path(case_path)
    if case_path.exists():
        raise InputError(f"{case_path}: exists; a case is never overwritten: give a new file name")
    timer = Timer(progress)
    plan = load_plan(plan_path)
    with timer("load scan"):
        scan = load_scan(scan_path, units=units, scale=scale)
    given = load_landmarks(landmarks_path, scan.scale_to_mm) if landmarks_path else None
    with timer("surface"):
        head = make_head(scan, landmarks=given, progress=progress)
    with timer("landmarks"):
        lm = resolve_landmarks(head, given, "file")
    with timer("design"):
        field = build_field(head, lm, plan)
    dots, quality = plan_dots(head, field, plan, timer)
    with Case.create(case_path, scan_path=scan_path, head=head, landmarks=lm, plan=plan, dots=dots,
                     units=scan.units, scale_to_mm=scan.scale_to_mm, comment="first plan") as case:
        lines = show_lines(case)
    for w in quality["below_bars"]:
        lines.append(f"  WARNING: quality below the engine's bar: {w}")
    for line in lines:
        log(line)
    return lines


def show_lines(case) -> list:
    """``case show``: scans, revisions, sessions with their states and dot counts."""
    out = [f"case {case.path}"]
    for s in case.scans():
        out.append(f"  scan {s.id}: {s.name} ({s.role}, {s.size:,} bytes, {s.units}, added {s.added})")
    for r in case.revisions():
        out.append(f"  revision {r.number}: {r.dots:,} dots in {r.sessions} sessions, plan sha256 "
                   f"{r.plan_sha256[:16]} ({r.created}) {r.comment}")
    dots = case.dots()
    touch = {t.session: t for t in case.touch_ups()}
    for st in case.sessions():
        n = int(np.count_nonzero(dots.session == st.session))
        extra = f", done up to dot {st.last_dot}" if st.state == "in_progress" and st.last_dot is not None else ""
        t = touch.get(st.session)
        kind = "" if t is None else (" (touch-up: re-hit)" if t.mode == "rehit" else
                                     f" (touch-up: interleaved at {t.fraction:g} of the density)")
        out.append(f"  session {st.session}{kind}: {st.state.replace('_', ' ')}{extra}, {st.done_dots:,} of {n:,} "
                   "dots done")
    notes = case.notes()
    if notes:
        out.append(f"  {len(notes)} notes; the last: {notes[-1].text}")
    return out


def history_lines(case) -> list:
    """``case history``: every change, oldest first."""
    return [f"  {a.at}  {a.who}  {a.action}" + (f"  revision {a.revision}" if a.revision else "")
            + (f"  session {a.session}" if a.session else "") for a in case.history()]


def case_session(case_path, session: int, out_dir, *, machine=None, overwrite=False, scan=None, units=None,
                 scale=None, landmarks=None, preview=True, log=print, progress=None):
    """Write session ``session``'s programs (the dots of the latest revision not yet done), its JSON and its dots.csv
    into ``out_dir`` (staged, swapped in whole) and record them in the case. Without ``scan`` they are in the
    reference scan's axes; with today's ``scan`` it is registered to the reference head
    (:func:`scalp3d.registration.register`), the dots are carried onto today's skin, and everything written is in
    today's scan's own axes (mm), with ``registration.json`` and today's ``head.ply`` beside the programs. With
    ``preview``, the patient's pictures of the plan (the revision's every session, healed) go beside the programs
    (``preview.png``, ``preview-sessions.png``...)."""
    from .machine import load_machine

    machine = load_machine(machine)
    out_dir = _new_folder(out_dir, overwrite)
    with Case.open(case_path, write=True) as case:
        st = _open_session(case, case_path, session)
        today = _registered_today(case, scan, units, scale, progress, landmarks) if scan is not None else None
        lines = _write_session(case, st, out_dir, machine, today, scan, units, preview=preview)
    for line in lines:
        log(line)
    return lines


def _new_folder(out_dir, overwrite) -> Path:
    out_dir = Path(out_dir)
    if out_dir.exists() and not overwrite:
        raise InputError(f"{out_dir}: exists; give a new folder or --overwrite to replace it")
    return out_dir


def _open_session(case, case_path, session):
    """The state of a session that still has dots to tattoo (refused otherwise)."""
    states = {s.session: s for s in case.sessions()}
    if session not in states:
        raise InputError(f"{case_path}: has no session {session}; it has sessions {', '.join(map(str, states))}")
    st = states[session]
    if st.state in ("done", "abandoned"):
        raise InputError(f"{case_path}: session {session} is {st.state}; nothing is left to tattoo in it")
    return st


def _registered_today(case, scan, units, scale, progress, landmarks_path=None):
    """(today's head, the registration of the case's head to it) from today's scan (refused in one line when it does
    not register); ``landmarks_path``: today's landmarks (a JSON in today's scan's unit), for the coarse alignment and
    the neck cut when the scan's own cannot be estimated (no face)."""
    from .landmarks import load_landmarks, resolve_landmarks
    from .reading.units import check_same_head
    from .registration import register
    from .scan import load_scan
    from .surface import rescan_head

    given = units is not None or scale is not None
    # a given unit is checked against the patient's own head (the case's), not against heads in general: the general
    # check orients the scan by its face, which a re-scan may lack (a faceless real head measured 411 mm wide)
    loaded = load_scan(scan, units=units, scale=scale, head=not given)
    if given:
        check_same_head(scan, loaded.vertices, case.head().vertices, loaded.scale_to_mm,
                        f"--units {units}" if scale is None else f"--scale {scale:g}")
    given = load_landmarks(landmarks_path, loaded.scale_to_mm) if landmarks_path else None
    today = rescan_head(loaded, landmarks=given, progress=progress)
    today_lm = resolve_landmarks(today, given, "file") if given else None
    return today, register(today, case.head(), today_landmarks=today_lm, reference_landmarks=case.landmarks(),
                           progress=progress)


def _write_session(case, st, out_dir, machine, today, scan, units, new=None, preview=False):
    """Write session ``st``'s dots not yet done (on today's head when ``today`` = (head, registration) is given) and
    record the programs, and today's scan, in the case. Returns the lines to print.

    ``new`` = (plan, dots of the session, all the revision's dots, store) writes a session of a revision not stored
    yet: ``store()`` stores it (returns its number) once every program is verified, before the folder is swapped in,
    so a refused program leaves the case unchanged. ``preview``: the pictures of the revision (every session, healed,
    on the case's head) beside the programs (``preview.png``, ``preview-sessions.png``...)."""
    from .checksums import head_checksum
    from .design import plan_to_toml
    from .export import dots_csv_text, write_head_ply
    from .fileio import staged_dir, write_json, write_text
    from .needle import plan_session
    from .pipeline import write_session_programs
    from .proximity import SurfaceQuery

    session = st.session
    head = case.head()
    if new is None:
        plan, dots = case.plan(), case.dots()
        todo = dots.subset((dots.session == session) & ~np.isin(dots.ids, case.done_ids()))
        revision = case.revisions()[-1].number
    else:
        plan, todo, dots, store = new
        revision = case.revisions()[-1].number + 1  # the case is ours (write lock) until it is stored
    reg = scan_id = None
    if today is not None:
        head, reg = today
        todo = _carried(todo, reg, head)
    plan_text = plan_to_toml(plan)
    plan_sha = hashlib.sha256(plan_text.encode()).hexdigest()[:16]
    surface = SurfaceQuery(machine.head_in_machine_frame(head))
    prog = plan_session(todo, session, surface, plan.needle.motion, machine=machine,
                        zone_order=plan.needle.zone_order)
    tag = f"{case.case_id} revision {revision} session {session}"
    head_sha = head_checksum(head.vertices)
    with staged_dir(out_dir, keep_previous=False) as stage:
        verdicts = write_session_programs(prog, stage.path, surface, n_sessions=max(len(plan.sessions), session),
                                          plan_sha=plan_sha, head_sha=head_sha, case_tag=tag)
        write_text(stage.path / "dots.csv", dots_csv_text(todo))
        write_text(stage.path / "plan.toml", plan_text)
        if reg is not None:
            write_json(stage.path / "registration.json", reg.to_dict())
            write_head_ply(head, stage.path / "head.ply")
        if preview:
            from .design import build_field
            from .pipeline import render_pictures

            ref, lm = case.head(), case.landmarks()
            render_pictures(ref, lm, plan, build_field(ref, lm, plan), dots, stage.path)
        if new is not None and store() != revision:
            raise RuntimeError("the case's revision changed under its write lock")
    if scan is not None:
        scan_id = case.add_scan(scan, units=units or "mm", comment=f"re-scan for session {session}")
    ngc = out_dir / f"session-{session}.ngc"
    checksum = hashlib.sha256(ngc.read_bytes()).hexdigest()
    frame = {"axes": "today's scan" if reg else "reference scan", "head_sha256": head_sha,
             "reference_to_scan": (reg.transform if reg else np.eye(4)).tolist(),
             "scan_to_machine": machine.scan_to_machine.tolist()}
    case.record_programs(session, [ProgramFile(ngc.name, checksum, prog.ids)], frame=frame,
                         registration=reg.to_dict() if reg else None, residual_mm=reg.rms_mm if reg else None,
                         scan_id=scan_id)
    lines = [f"session {session}: {len(prog):,} dots to do" + (f" (continuing after dot {st.last_dot})"
                                                               if st.last_dot is not None else "")]
    if reg is not None:
        lines.append(f"  registered to today's scan: RMS {reg.rms_mm:.2f} mm, p95 {reg.p95_mm:.2f} mm, overlap "
                     f"{reg.overlap:.0%}")
    return lines + [f"  {v}" for v in verdicts] + [f"wrote {out_dir}/"]


def _carried(todo, reg, today):
    """The dots carried onto today's head by the registration (positions, normals, faces and barycentric
    coordinates on today's head; settings unchanged)."""
    from dataclasses import replace

    from .registration import carry_points

    pos, _, fid, bar = carry_points(todo.positions, todo.normals, reg, today)
    # the needle goes along the skin normal the verifier checks: today's vertex normals interpolated in the face
    nrm = np.einsum("ij,ijk->ik", bar, today.vertex_normals[today.faces[fid]])
    nrm /= np.linalg.norm(nrm, axis=1, keepdims=True)
    return replace(todo, positions=pos, normals=nrm, face_ids=fid, bary=bar)


def case_done(case_path, session: int, *, until_dot=None, log=print):
    """Mark a session done, or done up to a dot when it was interrupted (the next ``case session`` continues after
    it)."""
    with Case.open(case_path, write=True) as case:
        st = case.mark_done(session, until_dot=until_dot)
    line = (f"session {session}: done" if st.state == "done" else
            f"session {session}: done up to dot {st.last_dot} ({st.done_dots:,} dots on the skin)")
    log(line)
    return line


def case_refusal(program, head_path, case_path) -> str | None:
    """Why a program must not be used for this case (one line), or None: it names no case, another case, an older
    plan revision than the case's latest, or was made for a head that is neither the case's nor a re-scan's it
    recorded programs for; ``head_path`` must be that head."""
    import re

    from .checksums import head_checksum
    from .surface import load_head

    program = Path(program)
    try:
        with open(program, encoding="utf-8", errors="replace") as fh:
            lines = [next(fh, "") for _ in range(40)]
    except OSError as exc:
        raise InputError(f"{program}: cannot be read ({exc.strerror or exc}); check the path") from None
    found = [m for m in (re.match(r"^\(case ([0-9a-f]{16}) revision (\d+) session (\d+)\)$", x.strip())
                         for x in lines) if m]
    head_line = [m for m in (re.match(r"^\(head sha256 ([0-9a-f]+)", x.strip()) for x in lines) if m]
    with Case.open(case_path) as case:
        cid, latest = case.case_id, case.revisions()[-1].number
        heads = {case.head_checksum()} | {ps.frame.get("head_sha256") for ps in case.program_sets()}
    if not found:
        return f"{program.name}: names no case; it was not written by scalp3d case session for {Path(case_path).name}"
    pid, rev, ses = found[0].group(1), int(found[0].group(2)), int(found[0].group(3))
    if pid != cid:
        return f"{program.name}: was written for another case ({pid}), not {Path(case_path).name} ({cid})"
    if rev != latest:
        return (f"{program.name}: was made from plan revision {rev}; the case is at revision {latest}: write session "
                f"{ses} again with scalp3d case session")
    sha = head_line[0].group(1) if head_line else None
    if sha not in heads:
        return f"{program.name}: was made for a head ({sha}) this case has no programs for; it is not this patient's"
    if head_checksum(load_head(head_path).vertices) != sha:
        return f"{program.name}: {Path(head_path).name} is not the head it was made for; give the head.ply beside it"
    return None


def case_revise(case_path, plan_path, *, comment="", log=print, progress=None):
    """A new plan revision for the sessions not yet done, around the dots already done (fixed: they stay exactly
    where they are, with their ids and settings). A revision that changes settings only (shades, depth, needle: the
    density, the zones, the sessions' fractions and the seed as before) moves no dot: the dots not done keep their
    ids and places and take the new settings; a design change with the sessions' split and the seed as before keeps
    the dots not done farther than the seam from the change and places the others again around them; a new split or
    seed re-places every dot not done. The new plan must keep the number of sessions. Returns the revision's
    number."""
    from .design import build_field, dots_with_settings, load_plan
    from .placement import local_spacing_mm
    from .spacing import refuse_close_dots

    plan = load_plan(plan_path)
    with Case.open(case_path, write=True) as case:
        old_plan, head, lm = case.plan(), case.head(), case.landmarks()
        d = _revisable(case, case_path, plan, old_plan, plan_path)
        done, latest = case.done_dots(), case.dots()
        field = build_field(head, lm, plan)
        undone = latest.subset((latest.session > d) & ~np.isin(latest.ids, done.ids))
        same_split = (plan.sessions.fractions == old_plan.sessions.fractions and plan.seed == old_plan.seed)
        old_field = build_field(head, lm, old_plan)
        keep = _unchanged_design(old_field, field, undone, same_split)
        if keep.all() and len(keep):  # settings only: every dot stays, the new settings on those not done
            new = dots_with_settings(undone, head, field)
            lead = f"{len(new):,} dots not done kept in place (the design is unchanged), with the new settings"
        elif same_split and len(undone):  # only the dots not done near the change are placed again
            new, kept = _placed_near_change(case, head, old_field, field, plan, d, done, undone)
            lead = (f"{kept:,} dots not done kept in place, {len(new) - kept:,} placed again near the design's "
                    "change")
        else:
            new = dots_with_settings(_placed(case, head, field, plan, d, done), head, field)
            lead = f"{len(new):,} new dots"
        dots = _joined(done, new)
        dens = (dots.bary * field.density_per_cm2[head.faces[dots.face_ids]]).sum(axis=1)
        refuse_close_dots(dots, local_spacing_mm(dens, field.density_per_cm2.max()), plan.sessions.fractions,
                          source=f"revision of {Path(case_path).name}", done=np.isin(dots.ids, done.ids))
        n = case.add_revision(plan, dots, comment or f"revised from {Path(plan_path).name}")
    k = len(plan.sessions)
    lines = [f"revision {n}: {len(done):,} dots already done kept, {lead} in "
             + (f"session {k}" if d + 1 == k else f"sessions {d + 1}-{k}")]
    outside = int(np.count_nonzero(dens[:len(done)] <= 0)) if len(done) else 0
    if outside:
        lines.append(f"  note: {outside:,} done dots lie outside the new plan's treated area (they stay on the skin)")
    for line in lines:
        log(line)
    return n


def _revisable(case, case_path, plan, old_plan, plan_path) -> int:
    """How many sessions are finished (done or abandoned, the first ones); refuses a revision that cannot be made."""
    if len(plan.sessions) != len(old_plan.sessions):
        raise InputError(f"{plan_path}: has {len(plan.sessions)} sessions; the case has {len(old_plan.sessions)}: "
                         "a revision keeps the number of sessions")
    if case.touch_ups():
        raise InputError(f"{case_path}: has a touch-up (session {case.touch_ups()[0].session}); a revision "
                         "re-plans a course's sessions not yet done, and this course is finished")
    states = {s.session: s.state for s in case.sessions()}
    finished = [k for k, s in sorted(states.items()) if s in ("done", "abandoned")]
    d = len(finished)
    if finished != list(range(1, d + 1)):
        raise InputError(f"{case_path}: sessions {finished} are done but not the ones before them; a revision "
                         "re-plans the sessions after the last one done")
    if d == len(plan.sessions):
        raise InputError(f"{case_path}: every session is done or abandoned; plan a touch-up instead")
    return d


def _unchanged_design(old_field, field, undone, same_split):
    """Which of the ``undone`` dots to keep (k,) bool: all of them when the design's density and zones are unchanged
    everywhere and the sessions are split as before, none otherwise (a changed design keeps them only away from the
    change: :func:`_placed_near_change`)."""
    peak = max(float(field.density_per_cm2.max()), float(old_field.density_per_cm2.max()), 1e-9)
    same = same_split and not ((np.abs(field.density_per_cm2 - old_field.density_per_cm2) > 1e-9 * peak).any()
                               or (field.zone != old_field.zone).any())
    return np.full(len(undone), same, dtype=bool)


def rest_fractions(fractions, finished: int) -> tuple:
    """The cumulative fractions of a course's sessions after the first ``finished``, among themselves (what a
    revision places: the done sessions' dots are fixed)."""
    from .types import check_fractions

    fr = np.asarray(fractions, dtype=np.float64)
    start = fr[finished - 1] if finished else 0.0
    return check_fractions(((fr[finished:] - start) / (1.0 - start)).round(12).tolist(),
                           what="the sessions left to plan")


def _placed_near_change(case, head, old_field, field, plan, d, done, undone):
    """The dots of sessions ``d + 1`` on after a design change (complete Dots) and how many of ``undone`` were kept:
    those farther than the seam from any change keep their ids and places, the others are placed again around them
    and the done dots (:func:`scalp3d.placement.replace_where_changed` with the done dots pinned), new ids from the
    case's next."""
    from .design import dots_with_settings
    from .placement import replace_where_changed
    from .types import Placement

    rest = rest_fractions(plan.sessions.fractions, d)
    both = Placement(*(np.concatenate([getattr(done, k), getattr(undone, k)]) for k in
                       ("positions", "normals", "face_ids", "session", "ids", "bary")))
    pinned = np.arange(len(both)) < len(done)
    placed, keep = replace_where_changed(head.vertices, head.faces, both, old_field.density_per_cm2,
                                         field.density_per_cm2, sessions=rest, seed=plan.seed,
                                         vertex_normals=head.vertex_normals, pinned=pinned, first_session=d + 1,
                                         first_id=case.next_dot_id())
    mine = ~np.isin(placed.ids, done.ids)
    return dots_with_settings(placed.subset(mine), head, field), int(keep[len(done):].sum())


def _placed(case, head, field, plan, d, done):
    """The new dots of sessions ``d + 1`` on (a Placement, ids from the case's next), around the done dots."""
    from .placement import place_dots

    rest = rest_fractions(plan.sessions.fractions, d)
    placed = place_dots(head.vertices, head.faces, density_per_cm2=field.density_per_cm2, sessions=rest,
                        seed=plan.seed, vertex_normals=head.vertex_normals, fixed=done.positions if len(done) else None)
    return _renumbered(placed, first_id=case.next_dot_id(), first_session=d + 1)


def _renumbered(placed, *, first_id, first_session):
    """A placement's ids from ``first_id`` on and its sessions shifted to start at ``first_session``."""
    from dataclasses import replace

    return replace(placed, ids=np.arange(first_id, first_id + len(placed), dtype=np.int64),
                   session=placed.session + (first_session - 1))


def _joined(a, b):
    """Two complete Dots as one, b's setting names kept and a's indices mapped onto them (names a lacks added)."""
    from dataclasses import replace

    from .types import Dots

    if len(a) == 0:
        return b
    names = {}
    for key in ("zone", "needle", "shade"):
        nb = list(getattr(b, f"{key}_names"))
        na = list(getattr(a, f"{key}_names"))
        for nm in na:
            if nm not in nb:
                nb.append(nm)
        names[key] = (nb, np.array([nb.index(nm) for nm in na], dtype=np.int64))
    a2 = replace(a, zone=names["zone"][1][a.zone], needle=names["needle"][1][a.needle],
                 shade=names["shade"][1][a.shade], zone_names=tuple(names["zone"][0]),
                 needle_names=tuple(names["needle"][0]), shade_names=tuple(names["shade"][0]))
    b2 = replace(b, zone_names=a2.zone_names, needle_names=a2.needle_names, shade_names=a2.shade_names)
    fields = ("positions", "normals", "face_ids", "session", "ids", "bary", "zone", "depth_mm", "needle", "shade",
              "dot_size_mm")
    return Dots(**{k: np.concatenate([getattr(a2, k), getattr(b2, k)]) for k in fields},
                zone_names=a2.zone_names, needle_names=a2.needle_names, shade_names=a2.shade_names)


def case_touch_up(case_path, scan, out_dir, *, mode="interleave", fraction=None, machine=None, overwrite=False,
                  units=None, scale=None, landmarks=None, comment="", preview=True, log=print, progress=None):
    """A touch-up years after the course: a new session (a new plan revision), written at once from today's scan
    like :func:`case_session`. ``mode`` "rehit" re-hits every done dot's position (new dot ids, the same place and
    settings on the skin); "interleave" adds new dots at ``fraction`` of the density (default
    ``config.TOUCH_UP_FRACTION``) spread among themselves and between all the old ones, no closer than the spacing
    floor to any of them (the plan's densities rise by that fraction). Today's scan is registered first: nothing is
    stored when it does not register or the plan cannot be made safe."""
    from .machine import load_machine

    if mode not in ("rehit", "interleave"):
        raise InputError(f"touch-up mode {mode!r}: use rehit or interleave")
    lo, hi = config.TOUCH_UP_FRACTION_RANGE
    if mode == "rehit" and fraction is not None:
        raise InputError("--fraction is for --mode interleave; a re-hit tattoos every done dot's position again")
    if fraction is None:
        fraction = config.TOUCH_UP_FRACTION
    if not lo <= fraction <= hi:
        raise InputError(f"--fraction {fraction:g}: a touch-up adds {lo:g} to {hi:g} of the density; give one "
                         "in that range")
    machine = load_machine(machine)
    out_dir = _new_folder(out_dir, overwrite)
    with Case.open(case_path, write=True) as case:
        states = case.sessions()
        busy = [s for s in states if s.state in ("planned", "in_progress")]
        if busy:
            raise InputError(f"{case_path}: session {busy[0].session} is {busy[0].state.replace('_', ' ')}; a "
                             "touch-up follows a finished course: finish it (scalp3d case session / case done) first")
        done = case.done_dots()
        if len(done) == 0:
            raise InputError(f"{case_path}: no dot is done yet; there is nothing to touch up")
        today = _registered_today(case, scan, units, scale, progress, landmarks)
        k = max(s.session for s in states) + 1
        if k > config.MAX_SESSIONS:
            raise InputError(f"{case_path}: already has {k - 1} sessions; a case holds at most {config.MAX_SESSIONS}")
        if mode == "rehit":
            plan, new, record = _rehit(case, done, k)
        else:
            plan, new, record = _interleave(case, case_path, done, k, fraction)
        why = comment or (f"touch-up: re-hit of {len(done):,} dots" if mode == "rehit" else
                          f"touch-up: {len(new):,} dots interleaved at {fraction:g} of the density")
        st = SessionState(k, "planned", None, 0, "", None, None, None, None)

        every = _joined(done, new)

        def store():
            return case.add_revision(plan, every, why, touch_up=record)

        lines = _write_session(case, st, out_dir, machine, today, scan, units, new=(plan, new, every, store),
                               preview=preview)
        lines.insert(0, f"revision {case.revisions()[-1].number}: touch-up session {k} ({mode}), {len(new):,} dots")
    for line in lines:
        log(line)
    return lines


def _rehit(case, done, k):
    """(plan, new dots, touch-up record) of a re-hit: every done dot again, same place and settings, new ids, in
    session ``k``; the plan is unchanged (the final density is the same)."""
    from dataclasses import replace

    order = np.argsort(done.ids, kind="stable")
    new = replace(done.subset(order), ids=np.arange(case.next_dot_id(), case.next_dot_id() + len(done),
                                                    dtype=np.int64), session=np.full(len(done), k, np.int64))
    return case.plan(), new, {"session": k, "mode": "rehit", "fraction": None, "rehit_of": done.ids[order]}


def _interleave(case, case_path, done, k, fraction):
    """(plan, new dots, touch-up record) of an interleaved touch-up: the plan's densities raised by ``fraction``
    (refused above ``config.DENSITY_MAX_PER_CM2``), a session ``k`` added with the last session's shade, and
    ``fraction`` x the done dots placed around them (fixed), refused unless the union and every session alone keep the
    spacing floor."""
    from .design import build_field, dots_with_settings
    from .placement import local_spacing_mm, place_dots
    from .spacing import refuse_close_dots

    plan, head, lm = _touch_up_plan(case.plan(), fraction, case_path), case.head(), case.landmarks()
    field = build_field(head, lm, plan)
    placed = place_dots(head.vertices, head.faces, density_per_cm2=field.density_per_cm2,
                        count=int(round(fraction * len(done))), sessions=1, seed=plan.seed + k,
                        vertex_normals=head.vertex_normals, fixed=done.positions)
    placed = _renumbered(placed, first_id=case.next_dot_id(), first_session=k)
    new = dots_with_settings(placed, head, field)
    dots = _joined(done, new)
    dens = (dots.bary * field.density_per_cm2[head.faces[dots.face_ids]]).sum(axis=1)
    refuse_close_dots(dots, local_spacing_mm(dens, field.density_per_cm2.max()), plan.sessions.fractions,
                      source=f"touch-up of {Path(case_path).name}", done=np.isin(dots.ids, done.ids))
    return plan, new, {"session": k, "mode": "interleave", "fraction": float(fraction), "rehit_of": ()}


def _touch_up_plan(plan, fraction, case_path):
    """The plan after a touch-up adding ``fraction`` of the density: every density times (1 + fraction), the
    sessions' fractions shrunk to make room for one more session at the end, with the last session's shade (and
    each zone's last shade override)."""
    from .types import Plan

    d = plan.to_dict()
    grow = 1.0 + float(fraction)
    dens = d["density"]
    peak = max([dens["core_per_cm2"]] + [z.get("density_per_cm2") or 0.0 for z in d["zones"].values()]
               + [s["density_per_cm2"] for s in d["scars"]])
    if peak * grow > config.DENSITY_MAX_PER_CM2:
        raise InputError(f"{case_path}: a touch-up at {fraction:g} of the density takes the plan's densest area from "
                         f"{peak:g} to {peak * grow:g} dots/cm2, above {config.DENSITY_MAX_PER_CM2:g} where dots merge "
                         f"(the helmet look); give a --fraction under {config.DENSITY_MAX_PER_CM2 / peak - 1:.2f} "
                         "or --mode rehit")
    dens["core_per_cm2"] *= grow
    dens["hairline_per_cm2"] *= grow
    for z in d["zones"].values():
        if z.get("density_per_cm2") is not None:
            z["density_per_cm2"] *= grow
        if z.get("shades") is not None:
            z["shades"] = [*z["shades"], z["shades"][-1]]
    for s in d["scars"]:
        s["density_per_cm2"] *= grow
    ses = d["sessions"]
    ses["fractions"] = [round(x / grow, 12) for x in ses["fractions"]] + [1.0]
    ses["shades"] = [*ses["shades"], ses["shades"][-1]]
    return Plan.from_dict(d)
