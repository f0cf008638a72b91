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
import math

import numpy as np

from . import __version__, config
from .checksums import ids_checksum, tips_checksum
from .needle import Program, Visits
from .types import Dots, Motion
from .errors import one_line as _one_line

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


def _c(text) -> str:
    """Free text for a G-code comment: parentheses would end or nest the comment, so they become brackets."""
    return str(text).replace("(", "[").replace(")", "]")


def _tip_words(prog: Program):
    """The plunge tips as the G1 lines write them: one (x, y, z) triple of number strings per dot (machine units)."""
    inch = prog.machine.units == "in"
    nd = config.ROUND_MM + (1 if inch else 0)
    tips = _rounded(prog.tips * (1.0 / 25.4 if inch else 1.0), nd).tolist()
    return [tuple(f"{c:.{nd}f}" for c in t) for t in tips]


def program_checksums(prog: Program) -> dict:
    """What a program claims to hold, as its header and session JSON state it: ``count``, ``ids_sha256`` (dot ids in
    plunge order) and ``tips_sha256`` (plunge tips as written), see :mod:`scalp3d.checksums`."""
    return {"count": len(prog), "ids_sha256": ids_checksum(prog.ids.tolist()),
            "tips_sha256": tips_checksum(_tip_words(prog))}


def gcode_text(prog: Program, *, n_sessions: int, plan_sha: str, head_sha: str, part: str = "", case_tag: str = "") \
        -> str:
    """The session's program as LinuxCNC G-code, in the machine's frame and units.

    The header comments state what the program is: its plan's checksum (``plan sha256``), the checksum of the head it
    was planned on (``head sha256``, :func:`scalp3d.checksums.head_checksum` of head.ply's vertices), its dot count and
    the checksums of its dot ids and plunge tips, and the spacing floor it was checked against. ``scalp3d verify``
    reads them back (:func:`scalp3d.verify.verify_program`)."""
    out = io.StringIO()
    w = out.write
    mach = prog.machine
    inch = mach.units == "in"
    f_len = 1.0 / 25.4 if inch else 1.0
    mins = prog.estimated_time_s / 60.0
    tip_words = _tip_words(prog)
    sums = program_checksums(prog)
    w(f"(scalp3d {__version__} needle program)\n")
    w(f"(session {prog.session} of {n_sessions}{part}: {len(prog)} dots, shade {_c(prog.main_shade)})\n")
    w(f"(load cartridge {_c(prog.needle_of(0))} with pigment {_c(prog.shade_of(0))} before starting)\n")
    frame = "the scan's own axes scaled to mm" if np.allclose(mach.scan_to_machine, np.eye(4)) else \
        "the machine frame from the profile's registration"
    w(f"(units {'inch' if inch else 'mm'}; coordinates: {frame}; X Y Z = needle tip; "
      + ("A B = needle axis angles in degrees, axis = Ry of B times Rx of A applied to +Z)\n" if mach.rotary else
         "the needle axis is given per dot as a unit vector in its comment)\n"))
    w(f"(machine {_c(mach.name)}; standoff {_num(prog.standoff_mm, 2)} mm; "
      f"clearance {_num(prog.clearance_mm, 2)} mm)\n")
    w(f"(plan sha256 {_c(plan_sha)})\n")
    if case_tag:  # written from a patient's case: its id, the plan revision and the session (scalp3d verify --case)
        w(f"(case {_c(case_tag)})\n")
    w(f"(head sha256 {head_sha}; the vertices of the head.ply it was planned on)\n")
    w(f"(dots {sums['count']}; ids sha256 {sums['ids_sha256']}; tips sha256 {sums['tips_sha256']}; "
      f"first dot {prog.ids[0]}, last dot {prog.ids[-1]})\n")
    w(f"(spacing floor {config.SPACING_FLOOR_FRACTION:g} of the local spacing, never under "
      f"{config.SPACING_FLOOR_MIN_MM:g} mm)\n")
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
    ab = _rounded(prog.angles_deg, na).tolist()
    axis = _rounded(prog.normals, 6).tolist()
    vias = _rounded(prog.via_points * f_len, nd).tolist()
    depth = _rounded(prog.depth_mm, 3).tolist()
    indptr = prog.via_indptr.tolist()
    ids = prog.ids.tolist()

    def g0(p, k):
        return g0_fmt % ((p[0], p[1], p[2], ab[k][0], ab[k][1]) if mach.rotary else (p[0], p[1], p[2]))

    for k in range(len(prog)):
        if indptr[k + 1] > indptr[k]:
            w("(lift: travel clear of the skin)\n")
            for p in vias[indptr[k]:indptr[k + 1]]:
                w(g0(p, k))
        if k > 0 and (prog.needle[k], prog.shade[k]) != (prog.needle[k - 1], prog.shade[k - 1]):
            w(f"(change: cartridge {_c(prog.needle_of(k))}, pigment {_c(prog.shade_of(k))}; resume when loaded)\nM0\n")
        vec = "" if mach.rotary else f" axis {axis[k][0]:.6f} {axis[k][1]:.6f} {axis[k][2]:.6f}"
        w(f"(dot {ids[k]} {_c(prog.zone_of(k))} {_c(prog.needle_of(k))} depth {depth[k]:.3f}{vec})\n")
        line = g0(approach[k], k)
        w(line)
        x, y, z = tip_words[k]
        w(f"G1 X{x} Y{y} Z{z} F{fp}\nG4 P{dw}\n")
        w(line)
    w("(leave: lift clear of the head)\n")
    for p in _rounded(prog.exit_points * f_len, nd).tolist():
        w(g0(p, len(prog) - 1))
    w("M2\n")
    return out.getvalue()


def _rounded(a, nd):
    """``a`` rounded to ``nd`` decimals with negative zeros made positive (so text never shows -0.0000)."""
    return np.round(np.asarray(a, dtype=np.float64), nd) + 0.0


def session_dict(prog: Program, *, n_sessions: int, plan_sha: str, head_sha: str, case_tag: str = "") -> dict:
    """The session as a JSON-ready dict (schema ``scalp3d.session`` version 1, documented in the README).

    ``head_sha256``, ``ids_sha256`` and ``tips_sha256`` repeat what the program's header states (see
    :func:`gcode_text`); ``scalp3d verify`` checks that the two agree."""
    skin = _rounded(prog.skin, config.ROUND_MM).tolist()
    nrm = _rounded(prog.normals, 6).tolist()
    tips = _rounded(prog.tips, config.ROUND_MM).tolist()
    appr = _rounded(prog.approach, config.ROUND_MM).tolist()
    ang = _rounded(prog.angles_deg, config.ROUND_DEG).tolist()
    depth = _rounded(prog.depth_mm, 3).tolist()
    vias = _rounded(prog.via_points, config.ROUND_MM).tolist()
    indptr = prog.via_indptr.tolist()
    sums = program_checksums(prog)
    dots = [{"order": k + 1, "id": i, "skin_mm": skin[k], "normal": nrm[k], "tip_mm": tips[k],
             "approach_mm": appr[k], "angles_deg": ang[k], "depth_mm": depth[k], "zone": prog.zone_of(k),
             "needle": prog.needle_of(k), "shade": prog.shade_of(k), "lift_before_mm": vias[indptr[k]:indptr[k + 1]]}
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
        "head_sha256": head_sha,
        **({"case": case_tag} if case_tag else {}),
        "dots_sha256": dots_checksum(prog),
        "ids_sha256": sums["ids_sha256"],
        "tips_sha256": sums["tips_sha256"],
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


#: settings a session JSON must carry for a re-export, with their allowed ranges (the plan's)
_SESSION_SETTINGS = {"standoff_mm": config.STANDOFF_RANGE_MM, "clearance_mm": config.CLEARANCE_RANGE_MM,
                     "plunge_feed_mm_per_min": config.FEED_RANGE_MM_PER_MIN,
                     "travel_feed_mm_per_min": config.FEED_RANGE_MM_PER_MIN, "dwell_s": config.DWELL_RANGE_S}


def _is_number(x) -> bool:
    if not isinstance(x, (int, float)) or isinstance(x, bool):
        return False
    try:
        return math.isfinite(x)
    except OverflowError:  # an int too large for a float
        return False


def _shown(x, n=40) -> str:
    """repr of a value read from a file, cut to ``n`` characters."""
    r = repr(x)
    return r if len(r) <= n else r[:n - 3] + "..."


def _is_whole(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


@_one_line
def program_from_session(js: dict, machine, where="session JSON"):
    """Rebuild a written session (for chunks and resumes): a dict with ``session``, ``sessions``, ``plan_sha256``,
    ``visits`` (:class:`scalp3d.needle.Visits`, the dots in the file's order) and ``motion``
    (:class:`scalp3d.types.Motion`).

    Every field used is checked first (an edited or damaged file gets one line naming the dot and the key, never a
    crash): ids whole and unique, ``skin_mm`` and ``normal`` three finite numbers (the normal not zero),
    ``depth_mm`` a finite number, ``zone``/``needle``/``shade`` text, ``settings`` within the plan's ranges.
    The normals are returned unit length."""
    from .errors import InputError

    fix = "re-run scalp3d plan or restore the file it wrote"
    if not isinstance(js, dict) or js.get("schema") != SESSION_SCHEMA \
            or js.get("schema_version") != SESSION_SCHEMA_VERSION:
        raise InputError(f"{where}: not a scalp3d session file (schema {SESSION_SCHEMA} v{SESSION_SCHEMA_VERSION})")

    def bad(what):
        raise InputError(f"{where}: {what}; {fix}")

    session, sessions = js.get("session"), js.get("sessions")
    if not _is_whole(session) or not _is_whole(sessions) or not 1 <= session <= sessions:
        bad(f"'session' and 'sessions' must be whole numbers with 1 <= session <= sessions, not "
            f"{_shown(session)} and {_shown(sessions)}")
    if not isinstance(js.get("plan_sha256"), str):
        bad("'plan_sha256' is missing or not text")
    st = js.get("settings")
    if not isinstance(st, dict):
        bad("'settings' is missing or not an object")
    settings = {}
    for key, (lo, hi) in _SESSION_SETTINGS.items():
        val = st.get(key)
        if not _is_number(val) or not lo <= val <= hi:
            bad(f"'settings.{key}' must be a number from {lo:g} to {hi:g}, not {_shown(val)}")
        settings[key] = float(val)
    d = js.get("dots")
    if not isinstance(d, list) or not d:
        bad("'dots' is missing, empty or not a list")
    ids, skin, nrm, depth, zone, needle, shade = [], [], [], [], [], [], []
    for k, x in enumerate(d, start=1):
        if not isinstance(x, dict):
            bad(f"dot {k} of 'dots' is not an object")
        name = f"dot {_shown(x.get('id'))} (number {k} in 'dots')"
        if not _is_whole(x.get("id")) or not 0 <= x["id"] < 2**63:
            bad(f"{name}: 'id' must be a whole number of at least 0")
        for key, out in (("skin_mm", skin), ("normal", nrm)):
            v = x.get(key)
            if not isinstance(v, list) or len(v) != 3 or not all(_is_number(c) for c in v):
                bad(f"{name}: '{key}' must be three finite numbers [x, y, z], not {_shown(v)}")
            out.append([float(c) for c in v])
        if not _is_number(x.get("depth_mm")):
            bad(f"{name}: 'depth_mm' must be a finite number, not {_shown(x.get('depth_mm'))}")
        for key, out in (("zone", zone), ("needle", needle), ("shade", shade)):
            v = x.get(key)
            if not isinstance(v, str) or not v or len(v) > 200 or any(c in "()" or not c.isprintable() for c in v):
                bad(f"{name}: '{key}' must be a short line of text without parentheses, not {_shown(v)}")
            out.append(x[key])
        ids.append(x["id"])
        depth.append(float(x["depth_mm"]))
    ids = np.array(ids, dtype=np.int64)
    uniq, counts = np.unique(ids, return_counts=True)
    if (counts > 1).any():
        bad(f"dot {int(uniq[np.argmax(counts > 1)])} is listed {int(counts.max())} times")
    nrm = np.array(nrm, dtype=np.float64)
    length = np.linalg.norm(nrm, axis=1)
    if (length < 1e-6).any():
        k = int(np.argmax(length < 1e-6))
        bad(f"dot {int(ids[k])}: 'normal' is zero; the needle needs a direction")
    visits = Visits.from_labels(session, ids, np.array(skin, dtype=np.float64), nrm / length[:, None],
                                np.array(depth, dtype=np.float64), zone, needle, shade)
    return {"session": int(session), "sessions": int(sessions), "plan_sha256": js["plan_sha256"], "visits": visits,
            "motion": Motion(**settings)}


def dots_csv_text(dots: Dots) -> str:
    """One row per dot: id, x, y, z, nx, ny, nz, session, zone, depth_mm, needle, shade, dot_size_mm."""
    out = io.StringIO()
    out.write(",".join(CSV_COLUMNS) + "\n")
    nd = config.ROUND_MM
    fmt = f"%d,%.{nd}f,%.{nd}f,%.{nd}f,%.6f,%.6f,%.6f,%d,%s,%.3f,%s,%s,%.3f\n"
    pos = _rounded(dots.positions, nd).tolist()
    nrm = _rounded(dots.normals, 6).tolist()
    depth = _rounded(dots.depth_mm, 3).tolist()
    size = _rounded(dots.dot_size_mm, 3).tolist()
    zone, needle, shade = (np.asarray(names, dtype=object)[codes] for names, codes in (
        (dots.zone_names, dots.zone), (dots.needle_names, dots.needle), (dots.shade_names, dots.shade)))
    for k, (i, s) in enumerate(zip(dots.ids.tolist(), dots.session.tolist())):
        out.write(fmt % (i, *pos[k], *nrm[k], s, zone[k], depth[k], needle[k], shade[k], size[k]))
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


@_one_line
def read_dots_csv(path):
    """Read a dots.csv back: dict of column -> numpy array (numbers) or list (text).

    Needs a header with id, x, y, z (the columns of ``dots.csv`` or ``scalp3d sample``); every row must have the
    header's number of fields and the number columns finite numbers, else one :class:`InputError` line names the
    line and the column."""
    from .errors import InputError

    import csv

    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:  # a byte-order mark (spreadsheets) is fine
            rows = [r for r in csv.reader(fh) if r]
    except FileNotFoundError:
        raise InputError(f"{path}: dots file not found; check the path") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a folder; give the dots CSV file inside it") from None
    except (UnicodeDecodeError, csv.Error, OSError) as exc:
        raise InputError(f"{path}: cannot be read as a dots CSV ({str(exc).splitlines()[0][:80]}); "
                         "give the dots.csv scalp3d wrote") from None
    head = [h.strip() for h in rows[0]] if rows else []
    if tuple(head[:4]) != ("id", "x", "y", "z"):
        raise InputError(f"{path}: not a scalp3d dots.csv (first line must be {','.join(CSV_COLUMNS)})")
    if len(set(head)) != len(head):
        raise InputError(f"{path}: the first line names a column twice; give the dots.csv scalp3d wrote")
    for n, r in enumerate(rows[1:], start=2):
        if len(r) != len(head):
            raise InputError(f"{path}: line {n} has {len(r)} fields, the first line names {len(head)}; fix that "
                             "line")
    out = {}
    for i, h in enumerate(head):
        vals = [r[i] for r in rows[1:]]
        if h in ("zone", "needle", "shade"):
            out[h] = vals
            continue
        try:
            arr = np.array(vals, dtype=np.float64)
        except ValueError:
            arr = None
        if h in ("id", "session") and arr is not None:
            ok = np.isfinite(arr) & (arr == np.round(arr)) & (np.abs(arr) < 2**62)
        else:
            ok = np.isfinite(arr) if arr is not None else None
        if arr is None or not ok.all():
            k = next(j for j, v in enumerate(vals) if not _csv_value_ok(v, h in ("id", "session"))) \
                if arr is None else int(np.argmin(ok))
            kind = "a whole number" if h in ("id", "session") else "a finite number"
            raise InputError(f"{path}: line {k + 2}, column '{h}': {vals[k][:30]!r} is not {kind}; fix the file")
        out[h] = arr.astype(np.int64) if h in ("id", "session") else arr
    return out


def _csv_value_ok(text, whole) -> bool:
    try:
        v = float(text)
    except ValueError:
        return False
    return bool(np.isfinite(v)) and (not whole or v == round(v))


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
