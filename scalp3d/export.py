"""Writers for everything a plan produces: needle programs (G-code, JSON), the dot table (CSV), the head (PLY).

All coordinates are millimetres in the input scan's own axes. Every file is written atomically. Numbers are
formatted with fixed decimals so that the same plan and seed give byte-identical files.

G-code (LinuxCNC dialect): X Y Z are the needle tip's position, A B the rotary angles of the needle axis
(see :func:`scalp3d.needle.axis_angles_deg`). Per dot: ``G0`` to the approach point with A B set, ``G1`` to depth at
the plunge feed, ``G4 P<s>`` dwell, ``G0`` back to the approach point. Comments never nest parentheses.
"""
from __future__ import annotations

import hashlib
import io

import numpy as np

from . import __version__, config
from .fileio import write_json, write_text
from .needle import Program

SESSION_SCHEMA = "scalp3d.session"
SESSION_SCHEMA_VERSION = 1
CSV_COLUMNS = ("id", "x", "y", "z", "nx", "ny", "nz", "session", "zone", "depth_mm", "needle", "shade")


def _num(x, nd=config.ROUND_MM):
    s = f"{x:.{nd}f}"
    if s.startswith("-") and float(s) == 0.0:
        s = s[1:]
    return s


def dots_checksum(prog: Program) -> str:
    """sha256 of the session's dot ids, skin points and depths (as written), first 16 hex digits."""
    h = hashlib.sha256()
    for i, p, d in zip(prog.ids, prog.skin, prog.depth_mm):
        h.update(f"{i},{_num(p[0])},{_num(p[1])},{_num(p[2])},{_num(d)};".encode())
    return h.hexdigest()[:16]


def gcode_text(prog: Program, *, n_sessions: int, plan_sha: str) -> str:
    """The session's program as LinuxCNC G-code."""
    out = io.StringIO()
    w = out.write
    mins = prog.estimated_time_s / 60.0
    w(f"(scalp3d {__version__} needle program)\n")
    w(f"(session {prog.session} of {n_sessions}: {len(prog)} dots, shade {prog.shade})\n")
    w("(units mm; coordinates: the scan's own axes scaled to mm; X Y Z = needle tip; "
      "A B = needle axis angles in degrees, axis = Ry of B times Rx of A applied to +Z)\n")
    w(f"(machine {prog.machine.name}; standoff {_num(prog.standoff_mm, 2)} mm; "
      f"clearance {_num(prog.clearance_mm, 2)} mm)\n")
    w(f"(plan sha256 {plan_sha})\n")
    w(f"(dots sha256 {dots_checksum(prog)})\n")
    w(f"(estimated time {mins:.1f} min)\n")
    w("G21 G90 G94 G17 G40 G49 G80\n")
    fp = _num(prog.plunge_feed_mm_per_min, 1)

    def g0(p, ab):
        w(f"G0 X{_num(p[0])} Y{_num(p[1])} Z{_num(p[2])} A{_num(ab[0], config.ROUND_DEG)} "
          f"B{_num(ab[1], config.ROUND_DEG)}\n")

    for k in range(len(prog)):
        ab = prog.angles_deg[k]
        vias = prog.via_points[prog.via_indptr[k]:prog.via_indptr[k + 1]]
        if len(vias):
            w("(lift: travel clear of the skin)\n")
            for p in vias:
                g0(p, ab)
        w(f"(dot {prog.ids[k]} {prog.zone[k]} {prog.needle[k]} depth {_num(prog.depth_mm[k], 3)})\n")
        g0(prog.approach[k], ab)
        t = prog.tips[k]
        w(f"G1 X{_num(t[0])} Y{_num(t[1])} Z{_num(t[2])} F{fp}\n")
        w(f"G4 P{_num(prog.dwell_s, 3)}\n")
        g0(prog.approach[k], ab)
    w("(leave: lift clear of the head)\n")
    for p in prog.exit_points:
        g0(p, prog.angles_deg[-1])
    w("M2\n")
    return out.getvalue()


def session_dict(prog: Program, *, n_sessions: int, plan_sha: str) -> dict:
    """The session as a JSON-ready dict (schema ``scalp3d.session`` version 1, documented in the README)."""
    dots = []
    for k in range(len(prog)):
        dots.append({
            "order": k + 1,
            "id": int(prog.ids[k]),
            "skin_mm": [float(_num(c)) for c in prog.skin[k]],
            "normal": [float(_num(c, 6)) for c in prog.normals[k]],
            "tip_mm": [float(_num(c)) for c in prog.tips[k]],
            "approach_mm": [float(_num(c)) for c in prog.approach[k]],
            "angles_deg": [float(_num(c, config.ROUND_DEG)) for c in prog.angles_deg[k]],
            "depth_mm": float(_num(prog.depth_mm[k], 3)),
            "zone": prog.zone[k],
            "needle": prog.needle[k],
            "shade": prog.shade,
            "lift_before_mm": [[float(_num(c)) for c in p]
                               for p in prog.via_points[prog.via_indptr[k]:prog.via_indptr[k + 1]]],
        })
    return {
        "schema": SESSION_SCHEMA,
        "schema_version": SESSION_SCHEMA_VERSION,
        "generator": f"scalp3d {__version__}",
        "units": "mm",
        "frame": "scan axes scaled to mm",
        "session": prog.session,
        "sessions": n_sessions,
        "plan_sha256": plan_sha,
        "dots_sha256": dots_checksum(prog),
        "machine": prog.machine.name,
        "settings": {
            "standoff_mm": prog.standoff_mm, "clearance_mm": prog.clearance_mm,
            "plunge_feed_mm_per_min": prog.plunge_feed_mm_per_min,
            "travel_feed_mm_per_min": prog.travel_feed_mm_per_min, "dwell_s": prog.dwell_s,
        },
        "count": len(prog),
        "travel_mm": round(prog.travel_mm, 1),
        "lifted_travels": prog.lifted,
        "estimated_time_s": round(prog.estimated_time_s, 1),
        "exit_mm": [[float(_num(c)) for c in p] for p in prog.exit_points],
        "dots": dots,
    }


def write_session(prog: Program, out_dir, *, n_sessions: int, plan_sha: str):
    """Write ``session-K.ngc`` and ``session-K.json``; return their paths."""
    from pathlib import Path

    out_dir = Path(out_dir)
    ngc = out_dir / f"session-{prog.session}.ngc"
    js = out_dir / f"session-{prog.session}.json"
    write_text(ngc, gcode_text(prog, n_sessions=n_sessions, plan_sha=plan_sha))
    write_json(js, session_dict(prog, n_sessions=n_sessions, plan_sha=plan_sha))
    return ngc, js


def dots_csv_text(dots, zone_names, needle_names, shades) -> str:
    """One row per dot: id, x, y, z, nx, ny, nz, session, zone, depth_mm, needle, shade."""
    out = io.StringIO()
    out.write(",".join(CSV_COLUMNS) + "\n")
    for k in range(len(dots)):
        p = dots.positions[k]
        n = dots.normals[k]
        s = int(dots.session[k])
        out.write(f"{dots.ids[k]},{_num(p[0])},{_num(p[1])},{_num(p[2])},{_num(n[0], 6)},{_num(n[1], 6)},"
                  f"{_num(n[2], 6)},{s},{zone_names[dots.zone[k]]},{_num(dots.depth_mm[k], 3)},"
                  f"{needle_names[dots.needle[k]]},{shades[s - 1]}\n")
    return out.getvalue()


def read_dots_csv(path):
    """Read a dots.csv back: dict of column -> numpy array (numbers) or list (text)."""
    from .errors import InputError

    import csv

    try:
        with open(path, newline="", encoding="utf-8") as fh:
            rows = list(csv.reader(fh))
    except FileNotFoundError:
        raise InputError(f"{path}: dots file not found; check the path") from None
    if not rows or tuple(rows[0][:3]) != ("id", "x", "y"):
        raise InputError(f"{path}: not a scalp3d dots.csv (first line must be {','.join(CSV_COLUMNS)})")
    head = rows[0]
    cols = {h: [r[i] for r in rows[1:]] for i, h in enumerate(head)}
    out = {}
    try:
        for h, vals in cols.items():
            if h in ("zone", "needle", "shade"):
                out[h] = vals
            elif h in ("id", "session"):
                out[h] = np.array(vals, dtype=np.int64)
            else:
                out[h] = np.array(vals, dtype=np.float64)
    except ValueError as exc:
        raise InputError(f"{path}: a number in column '{h}' cannot be read ({exc}); fix the file") from None
    return out


def write_head_ply(head, path) -> None:
    """The head surface as binary PLY (mm, scan axes), written atomically."""
    import trimesh

    from .fileio import write_bytes

    mesh = trimesh.Trimesh(vertices=head.vertices, faces=head.faces, process=False)
    write_bytes(path, trimesh.exchange.ply.export_ply(mesh, encoding="binary", include_attributes=False))
