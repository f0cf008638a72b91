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
from .needle import Program

SESSION_SCHEMA = "scalp3d.session"
SESSION_SCHEMA_VERSION = 1
CSV_COLUMNS = ("id", "x", "y", "z", "nx", "ny", "nz", "session", "zone", "depth_mm", "needle", "shade", "dot_size_mm")


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


def gcode_text(prog: Program, *, n_sessions: int, plan_sha: str, part: str = "") -> str:
    """The session's program as LinuxCNC G-code, in the machine's frame and units."""
    out = io.StringIO()
    w = out.write
    mach = prog.machine
    inch = mach.units == "in"
    f_len = 1.0 / 25.4 if inch else 1.0
    mins = prog.estimated_time_s / 60.0
    w(f"(scalp3d {__version__} needle program)\n")
    w(f"(session {prog.session} of {n_sessions}{part}: {len(prog)} dots, shade {prog.shade})\n")
    w(f"(load cartridge {prog.needle[0]} with pigment {prog.shades[0]} before starting)\n")
    frame = "the scan's own axes scaled to mm" if np.allclose(mach.scan_to_machine, np.eye(4)) else \
        "the machine frame from the profile's registration"
    w(f"(units {'inch' if inch else 'mm'}; coordinates: {frame}; X Y Z = needle tip; "
      + ("A B = needle axis angles in degrees, axis = Ry of B times Rx of A applied to +Z)\n" if mach.rotary else
         "the needle axis is given per dot as a unit vector in its comment)\n"))
    w(f"(machine {mach.name}; standoff {_num(prog.standoff_mm, 2)} mm; clearance {_num(prog.clearance_mm, 2)} mm)\n")
    w(f"(plan sha256 {plan_sha})\n")
    w(f"(dots sha256 {dots_checksum(prog)}; first dot {prog.ids[0]}, last dot {prog.ids[-1]})\n")
    w(f"(estimated time {mins:.1f} min)\n")
    w(("G20" if inch else "G21") + " G90 G94 G17 G40 G49 G80\n")
    nd = config.ROUND_MM + (1 if inch else 0)
    na = config.ROUND_DEG
    fp = _num(prog.plunge_feed_mm_per_min * f_len, 1 + (2 if inch else 0))
    dw = _num(prog.dwell_s, 3)
    if mach.rotary:
        g0_fmt = f"G0 X%.{nd}f Y%.{nd}f Z%.{nd}f A%.{na}f B%.{na}f\n"
    else:
        g0_fmt = f"G0 X%.{nd}f Y%.{nd}f Z%.{nd}f\n"
    approach = _rounded(prog.approach * f_len, nd).tolist()
    tips = _rounded(prog.tips * f_len, nd).tolist()
    ab = _rounded(prog.angles_deg, na).tolist()
    axis = _rounded(prog.normals, 6).tolist()
    vias = _rounded(prog.via_points * f_len, nd).tolist()
    depth = _rounded(prog.depth_mm, 3).tolist()
    indptr = prog.via_indptr.tolist()
    ids = prog.ids.tolist()
    g1_fmt = f"G1 X%.{nd}f Y%.{nd}f Z%.{nd}f F{fp}\nG4 P{dw}\n"

    def g0(p, k):
        return g0_fmt % ((p[0], p[1], p[2], ab[k][0], ab[k][1]) if mach.rotary else (p[0], p[1], p[2]))

    for k in range(len(prog)):
        if indptr[k + 1] > indptr[k]:
            w("(lift: travel clear of the skin)\n")
            for p in vias[indptr[k]:indptr[k + 1]]:
                w(g0(p, k))
        if k > 0 and (prog.needle[k], prog.shades[k]) != (prog.needle[k - 1], prog.shades[k - 1]):
            w(f"(change: cartridge {prog.needle[k]}, pigment {prog.shades[k]}; resume when loaded)\nM0\n")
        vec = "" if mach.rotary else f" axis {axis[k][0]:.6f} {axis[k][1]:.6f} {axis[k][2]:.6f}"
        w(f"(dot {ids[k]} {prog.zone[k]} {prog.needle[k]} depth {depth[k]:.3f}{vec})\n")
        line = g0(approach[k], k)
        w(line)
        w(g1_fmt % tuple(tips[k]))
        w(line)
    w("(leave: lift clear of the head)\n")
    for p in _rounded(prog.exit_points * f_len, nd).tolist():
        w(g0(p, len(prog) - 1))
    w("M2\n")
    return out.getvalue()


def _rounded(a, nd):
    """``a`` rounded to ``nd`` decimals with negative zeros made positive (so text never shows -0.0000)."""
    return np.round(np.asarray(a, dtype=np.float64), nd) + 0.0


def session_dict(prog: Program, *, n_sessions: int, plan_sha: str) -> dict:
    """The session as a JSON-ready dict (schema ``scalp3d.session`` version 1, documented in the README)."""
    skin = _rounded(prog.skin, config.ROUND_MM).tolist()
    nrm = _rounded(prog.normals, 6).tolist()
    tips = _rounded(prog.tips, config.ROUND_MM).tolist()
    appr = _rounded(prog.approach, config.ROUND_MM).tolist()
    ang = _rounded(prog.angles_deg, config.ROUND_DEG).tolist()
    depth = _rounded(prog.depth_mm, 3).tolist()
    vias = _rounded(prog.via_points, config.ROUND_MM).tolist()
    indptr = prog.via_indptr.tolist()
    dots = [{"order": k + 1, "id": i, "skin_mm": skin[k], "normal": nrm[k], "tip_mm": tips[k],
             "approach_mm": appr[k], "angles_deg": ang[k], "depth_mm": depth[k], "zone": prog.zone[k],
             "needle": prog.needle[k], "shade": prog.shades[k], "lift_before_mm": vias[indptr[k]:indptr[k + 1]]}
            for k, i in enumerate(prog.ids.tolist())]
    return {
        "schema": SESSION_SCHEMA,
        "schema_version": SESSION_SCHEMA_VERSION,
        "generator": f"scalp3d {__version__}",
        "units": "mm",
        "frame": "scan axes scaled to mm" if np.allclose(prog.machine.scan_to_machine, np.eye(4))
        else "machine frame (see machine.scan_to_machine)",
        "session": prog.session,
        "sessions": n_sessions,
        "plan_sha256": plan_sha,
        "dots_sha256": dots_checksum(prog),
        "machine": prog.machine.summary(),
        "settings": {
            "standoff_mm": prog.standoff_mm, "clearance_mm": prog.clearance_mm,
            "plunge_feed_mm_per_min": prog.plunge_feed_mm_per_min,
            "travel_feed_mm_per_min": prog.travel_feed_mm_per_min, "dwell_s": prog.dwell_s,
        },
        "count": len(prog),
        "travel_mm": round(prog.travel_mm, 1),
        "lifted_travels": prog.lifted,
        "estimated_time_s": round(prog.estimated_time_s, 1),
        "exit_mm": _rounded(prog.exit_points, config.ROUND_MM).tolist(),
        "dots": dots,
    }


def program_from_session(js: dict, machine, where="session JSON"):
    """Rebuild the ordered dot arrays of a written session (for chunks and resumes): a dict of arrays."""
    from .errors import InputError

    if js.get("schema") != SESSION_SCHEMA or js.get("schema_version") != SESSION_SCHEMA_VERSION:
        raise InputError(f"{where}: not a scalp3d session file (schema {SESSION_SCHEMA} v{SESSION_SCHEMA_VERSION})")
    d = js["dots"]
    return {"session": int(js["session"]), "ids": np.array([x["id"] for x in d], dtype=np.int64),
            "skin": np.array([x["skin_mm"] for x in d]), "normals": np.array([x["normal"] for x in d]),
            "depth": np.array([x["depth_mm"] for x in d]), "zone": [x["zone"] for x in d],
            "needle": [x["needle"] for x in d], "shade": [x["shade"] for x in d], "settings": js["settings"]}


def dots_csv_text(dots, zone_names, needle_names, shades) -> str:
    """One row per dot: id, x, y, z, nx, ny, nz, session, zone, depth_mm, needle, shade, dot_size_mm.

    ``shades``: one per session, used where ``dots.shade`` (one per dot) is not set."""
    out = io.StringIO()
    out.write(",".join(CSV_COLUMNS) + "\n")
    nd = config.ROUND_MM
    fmt = f"%d,%.{nd}f,%.{nd}f,%.{nd}f,%.6f,%.6f,%.6f,%d,%s,%.3f,%s,%s,%.3f\n"
    pos = _rounded(dots.positions, nd).tolist()
    nrm = _rounded(dots.normals, 6).tolist()
    depth = _rounded(dots.depth_mm, 3).tolist()
    shade = [shades[s - 1] for s in dots.session.tolist()] if dots.shade is None else list(dots.shade)
    size = (np.full(len(dots), np.nan) if dots.dot_size_mm is None else _rounded(dots.dot_size_mm, 3)).tolist()
    for k, (i, s) in enumerate(zip(dots.ids.tolist(), dots.session.tolist())):
        out.write(fmt % (i, *pos[k], *nrm[k], s, zone_names[dots.zone[k]], depth[k],
                         needle_names[dots.needle[k]], shade[k], size[k]))
    return out.getvalue()


def sample_csv_text(dots) -> str:
    """Dots of the placement engine alone: id, x, y, z, nx, ny, nz, session."""
    out = io.StringIO()
    out.write("id,x,y,z,nx,ny,nz,session\n")
    nd = config.ROUND_MM
    fmt = f"%d,%.{nd}f,%.{nd}f,%.{nd}f,%.6f,%.6f,%.6f,%d\n"
    pos = _rounded(dots.positions, nd).tolist()
    nrm = _rounded(dots.normals, 6).tolist()
    for k, (i, s) in enumerate(zip(dots.ids.tolist(), dots.session.tolist())):
        out.write(fmt % (i, *pos[k], *nrm[k], s))
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
    if getattr(head, "colors", None) is not None:
        mesh.visual.vertex_colors = np.column_stack([head.colors, np.full(len(head.colors), 255, np.uint8)])
    attrs = getattr(head, "filled", None) is not None and bool(np.any(head.filled))
    if attrs:
        mesh.vertex_attributes["filled"] = np.asarray(head.filled, dtype=np.uint8)
    write_bytes(path, trimesh.exchange.ply.export_ply(mesh, encoding="binary", include_attributes=attrs))
