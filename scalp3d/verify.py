"""Read an exported needle program back and check it against the head, trusting nothing about how it was made.

It needs nothing but the program and the head. In this order it checks:

1. the header: the program states its plan's and head's checksums, its dot count, the checksums of its dot ids and
   plunge tips, and its spacing floor (see :func:`scalp3d.export.gcode_text`); a missing or garbled header refuses;
2. the head, before any geometry: a program made for another head is refused in one line;
3. the plan, when its checksum is given (``scalp3d verify`` reads the ``plan.toml`` beside the program): a stale
   program from an earlier plan is refused in one line;
4. the structure: every dot comment has its plunge, every plunge its dwell at depth and its retract, no dot is
   plunged twice, and the count and checksums agree with the header;
5. the geometry: each tip's depth below the skin (the machine's bounds, the depth its comment states), the needle
   along the skin normal, the A B words (or the 3-axis comment's vector) along the plunge, no two tips closer than
   the spacing floor, every travel move clear of the skin, everything inside the workspace;
6. with the session JSON: its checksums agree with the header, every tip lies at its planned point, no planned dot
   is missing.

It must not share the planner's geometry, where a shared bug would hide: it has its own closest-point query
(:class:`Skin`, its own normals and inside/outside test on open3d's ray-casting scene) and its own reading of the A B
angles (:func:`needle_axis`, from the rotation matrices); it imports neither :mod:`scalp3d.proximity` nor
:mod:`scalp3d.needle`.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import config
from .checksums import head_checksum, ids_checksum, plan_checksum, tips_checksum
from .errors import InputError
from .machine import Machine

_WORD = re.compile(r"([A-Z])\s*([-+]?\d*\.?\d+)")
_DOT = re.compile(r"\(dot (\d+)\b([^)]*)\)")
_COMMENT = re.compile(r"\([^()]*\)")
_DEPTH = re.compile(r"\bdepth (\d*\.?\d+)")
_AXIS = re.compile(r"\baxis (\S+) (\S+) (\S+)")
_NUM = r"([-+]?\d*\.?\d+)"
#: the three line shapes scalp3d writes for every dot, read on a fast path that does exactly what the general reading
#: does for them (any other line, or any variation of these, goes the general way)
_FAST_G0 = re.compile(rf"G0 X{_NUM} Y{_NUM} Z{_NUM}(?: A{_NUM} B{_NUM})?")
_FAST_G1 = re.compile(rf"G1 X{_NUM} Y{_NUM} Z{_NUM} F{_NUM}")
_FAST_G4 = re.compile(rf"G4 P{_NUM}")
_SHA = r"([0-9a-f]{16})"
#: the header lines, each required exactly once among the comments before the first G-code line
_HEADER = {
    "plan": re.compile(r"^\(plan sha256 ([^\s()]+)\)$"),
    "head": re.compile(rf"^\(head sha256 {_SHA}\b[^()]*\)$"),
    "dots": re.compile(rf"^\(dots (\d+); ids sha256 {_SHA}; tips sha256 {_SHA}\b[^()]*\)$"),
    "floor": re.compile(r"^\(spacing floor (\d*\.?\d+) of the local spacing, never under (\d*\.?\d+) mm\b[^()]*\)$"),
    "machine": re.compile(r"^\(machine ([^()]*); standoff (\d*\.?\d+) mm; clearance (\d*\.?\d+) mm\)$"),
}
_HEADER_SHOWN = {"plan": "(plan sha256 ...)", "head": "(head sha256 ...)",
                 "dots": "(dots N; ids sha256 ...; tips sha256 ...)",
                 "floor": "(spacing floor F of the local spacing, never under M mm)",
                 "machine": "(machine NAME; standoff S mm; clearance C mm)"}


@dataclass
class Move:
    kind: str  # 'G0', 'G1', 'G4'
    xyz: np.ndarray
    ab: np.ndarray
    dot: int | None
    line: int
    dwell_s: float = 0.0
    words: tuple = ()  # G1: the X Y Z number strings as written
    note: int | None = None  # index of the dot comment it follows


@dataclass
class DotNote:
    """A ``(dot N ...)`` comment: the dot id, its line, the depth and (3-axis programs) the needle axis it states."""

    id: int
    line: int
    depth_mm: float | None
    axis: np.ndarray | None


@dataclass
class Parsed:
    moves: list
    notes: list
    header: dict  # key -> list of regex matches found among the leading comments
    malformed: list = field(default_factory=list)  # line numbers of unclosed or nested comments


@dataclass
class Report:
    path: str
    plunges: int = 0
    violations: list = field(default_factory=list)
    fatal: str | None = None  # a refusal that stops the check (header, head, plan): the whole verdict is one line

    @property
    def ok(self) -> bool:
        return not self.violations

    def refuse(self, reason: str) -> "Report":
        self.fatal = reason
        self.violations = [reason]
        return self

    def verdict(self) -> str:
        if self.fatal:
            return f"{self.path}: REFUSED: {self.fatal}"
        if self.ok:
            return f"{self.path}: OK, {self.plunges} plunges checked, no violation"
        return f"{self.path}: REFUSED, {len(self.violations)} violation(s) in {self.plunges} plunges"


def _read_text(path) -> str:
    path = Path(path)
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{path}: program not found; check the path") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a folder; give the session-K.ngc file") from None
    except UnicodeDecodeError:
        raise InputError(f"{path}: not a text G-code file; give the session-K.ngc scalp3d wrote") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot be read ({exc.strerror}); check the path and permissions") from None


def read_program(path) -> Parsed:
    """Moves, dot comments and header of a scalp3d G-code program (absolute mm, G0/G1/G4; G20 inches are converted).

    Unknown motion words raise :class:`InputError`."""
    path = Path(path)
    text = _read_text(path)
    pos = np.full(3, np.nan)
    ab = np.zeros(2)
    moves, notes, malformed = [], [], []
    header = {k: [] for k in _HEADER}
    in_header = True
    dot = None
    to_mm = 1.0
    for ln, raw in enumerate(text.splitlines(), start=1):
        if not in_header and raw[:1] == "G":
            note = len(notes) - 1 if notes else None
            fm = _FAST_G0.fullmatch(raw)
            if fm:
                x, y, z, a, b = fm.groups()
                pos[0] = float(x) * to_mm
                pos[1] = float(y) * to_mm
                pos[2] = float(z) * to_mm
                if a is not None:
                    ab[0] = float(a)
                    ab[1] = float(b)
                moves.append(Move("G0", pos.copy(), ab.copy(), dot, ln, note=note))
                continue
            fm = _FAST_G1.fullmatch(raw)
            if fm:
                x, y, z = fm.group(1, 2, 3)
                pos[0] = float(x) * to_mm
                pos[1] = float(y) * to_mm
                pos[2] = float(z) * to_mm
                moves.append(Move("G1", pos.copy(), ab.copy(), dot, ln, words=(x, y, z), note=note))
                continue
            fm = _FAST_G4.fullmatch(raw)
            if fm:
                moves.append(Move("G4", pos.copy(), ab.copy(), dot, ln, float(fm.group(1)), note=note))
                continue
        stripped = raw.strip()
        paren = "(" in raw
        m = _DOT.search(raw) if paren else None
        if m:
            dot = int(m.group(1))
            d = _DEPTH.search(m.group(2))
            a = _AXIS.search(m.group(2))
            try:
                axis = np.array([float(x) for x in a.groups()]) if a else None
            except ValueError:
                axis = None
            notes.append(DotNote(dot, ln, float(d.group(1)) if d else None, axis))
        line = _COMMENT.sub("", raw) if paren or ")" in raw else raw
        if ";" in line:
            line = line.split(";")[0]
        line = line.strip().upper()
        if "(" in line or ")" in line:
            malformed.append(ln)
            continue
        if not line:
            if in_header:
                for key, rx in _HEADER.items():
                    hm = rx.match(stripped)
                    if hm:
                        header[key].append(hm)
            continue
        in_header = False
        words = _WORD.findall(line)
        try:
            g = [float(v) for k, v in words if k == "G"]
        except ValueError:
            raise InputError(f"{path}:{ln}: a G word cannot be read; fix or re-export the program") from None
        vals = {k: float(v) for k, v in words if k != "G"}
        if 20 in g:
            to_mm = config.UNIT_TO_MM["in"]
        if 21 in g:
            to_mm = 1.0
        note = len(notes) - 1 if notes else None
        if 4 in g:
            moves.append(Move("G4", pos.copy(), ab.copy(), dot, ln, vals.get("P", 0.0), note=note))
            continue
        motion = [c for c in g if c in (0, 1)]
        if not motion:
            if any(k in vals for k in "XYZAB"):
                raise InputError(f"{path}:{ln}: axis words without G0/G1; scalp3d programs use explicit motion")
            continue
        for k, ax in enumerate("XYZ"):
            if ax in vals:
                pos[k] = vals[ax] * to_mm
        for k, ax in enumerate("AB"):
            if ax in vals:
                ab[k] = vals[ax]
        kind = "G0" if motion[-1] == 0 else "G1"
        written = dict(words)
        tip = tuple(written.get(ax, "") for ax in "XYZ") if kind == "G1" else ()
        moves.append(Move(kind, pos.copy(), ab.copy(), dot, ln, words=tip, note=note))
    return Parsed(moves, notes, header, malformed)


def needle_axis(angles_deg) -> np.ndarray:
    """Unit needle axes (n,3) (from the tip back up the needle) of rotary words ``angles_deg`` (n,2) = (A, B) in
    degrees, read from the machine's kinematics: the tool axis +Z turned by Rx(A) about X, then by Ry(B) about Y,
    axis = Ry(B) Rx(A) (0, 0, 1) (see :mod:`scalp3d.machine`).

    Written from the rotation matrices on purpose, independently of the planner's closed form.

    >>> np.round(needle_axis(np.array([[0.0, 90.0]])), 6).tolist()
    [[1.0, 0.0, 0.0]]
    """
    ang = np.radians(np.asarray(angles_deg, dtype=np.float64).reshape(-1, 2))
    n = len(ang)
    ca, sa = np.cos(ang[:, 0]), np.sin(ang[:, 0])
    cb, sb = np.cos(ang[:, 1]), np.sin(ang[:, 1])
    rx = np.zeros((n, 3, 3))
    rx[:, 0, 0] = 1.0
    rx[:, 1, 1], rx[:, 1, 2], rx[:, 2, 1], rx[:, 2, 2] = ca, -sa, sa, ca
    ry = np.zeros((n, 3, 3))
    ry[:, 1, 1] = 1.0
    ry[:, 0, 0], ry[:, 0, 2], ry[:, 2, 0], ry[:, 2, 2] = cb, sb, -sb, cb
    return np.einsum("nij,njk,k->ni", ry, rx, np.array([0.0, 0.0, 1.0]))


class Skin:
    """The verifier's own view of the head: closest points, smooth normals, inside/outside and distances (mm).

    Built from the triangles alone (vertices (n,3) float, faces (m,3) int) in the frame the program is written in;
    its normals are area-weighted vertex normals computed here, its side test uses the closest triangle's own
    plane. Queries run on open3d's ray-casting scene in float32 around the head's centre.
    """

    def __init__(self, vertices, faces):
        import open3d as o3d

        v = np.asarray(vertices, dtype=np.float64)
        f = np.asarray(faces, dtype=np.int64)
        if v.ndim != 2 or v.shape[1:] != (3,) or f.ndim != 2 or f.shape[1:] != (3,) or not len(f):
            raise InputError(f"the head must be a triangle mesh: vertices (n, 3) and faces (m, 3), not {v.shape} "
                             f"and {f.shape}")
        if f.min() < 0 or f.max() >= len(v):
            raise InputError("the head's faces refer to vertices it does not have; give the head.ply scalp3d wrote")
        self.vertices, self.faces = v, f
        tri = v[f]
        cross = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
        area2 = np.linalg.norm(cross, axis=1)
        self.face_normals = cross / np.maximum(area2, 1e-300)[:, None]
        # the skin normal the plan promises (README: "the needle runs along the smooth skin normal"): area-weighted
        # vertex normals, interpolated; computed here, not taken from the planner. (Angle weights were tried: on the
        # real head they differ from the area-weighted normal by up to 5.5 degrees on a few irregular triangles,
        # so the two estimates, not the needle, disagreed.)
        vn = np.zeros_like(v)
        for k in range(3):
            np.add.at(vn, f[:, k], cross)
        self.vertex_normals = vn / np.maximum(np.linalg.norm(vn, axis=1), 1e-300)[:, None]
        self.centre = 0.5 * (v.min(axis=0) + v.max(axis=0))
        self._o3d = o3d
        self.scene = o3d.t.geometry.RaycastingScene()
        self.scene.add_triangles(o3d.core.Tensor(np.ascontiguousarray(v - self.centre, dtype=np.float32)),
                                 o3d.core.Tensor(np.ascontiguousarray(f, dtype=np.uint32)))

    def _tensor(self, points):
        p = np.asarray(points, dtype=np.float64).reshape(-1, 3) - self.centre
        return self._o3d.core.Tensor(np.ascontiguousarray(p, dtype=np.float32))

    def closest(self, points):
        """For points (n,3): closest skin points (n,3), smooth unit normals there (n,3) and the signed side (n,):
        the distance along the closest triangle's own normal, negative below the skin."""
        p = np.asarray(points, dtype=np.float64).reshape(-1, 3)
        ans = self.scene.compute_closest_points(self._tensor(p))
        fid = ans["primitive_ids"].numpy().astype(np.int64)
        uv = ans["primitive_uvs"].numpy().astype(np.float64)
        bary = np.column_stack([1.0 - uv[:, 0] - uv[:, 1], uv[:, 0], uv[:, 1]])
        tri = self.faces[fid]
        q = (bary[:, :, None] * self.vertices[tri]).sum(axis=1)
        n = (bary[:, :, None] * self.vertex_normals[tri]).sum(axis=1)
        n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-300)
        side = ((p - q) * self.face_normals[fid]).sum(axis=1)
        return q, n, side

    def distance(self, points) -> np.ndarray:
        """Unsigned distance (n,) from points (n,3) to the skin."""
        p = np.asarray(points, dtype=np.float64).reshape(-1, 3)
        if not len(p):
            return np.zeros(0)
        return self.scene.compute_distance(self._tensor(p)).numpy().astype(np.float64)

    def segments_min_distance(self, starts, ends, step_mm, below_mm=None) -> np.ndarray:
        """Smallest distance to the skin along each segment (k,), sampled at most ``step_mm`` apart, ends included.

        With ``below_mm`` (the limit the caller checks): a segment whose end distances d_a, d_b alone prove it never
        comes under ``below_mm`` (a point moved by s changes its distance to the skin by at most s, so no point of a
        segment of length L is nearer than (d_a + d_b - L) / 2; LIPSCHITZ_MARGIN_MM more for the float32 queries)
        gets min(d_a, d_b), at or above the limit as its sampled minimum is; the others are sampled as without it."""
        a = np.asarray(starts, dtype=np.float64).reshape(-1, 3)
        b = np.asarray(ends, dtype=np.float64).reshape(-1, 3)
        out = np.full(len(a), np.inf)
        if not len(a):
            return out
        todo = np.arange(len(a))
        if below_mm is not None:
            d_a, d_b = np.split(self.distance(np.vstack([a, b])), 2)
            proven = (d_a + d_b - np.linalg.norm(b - a, axis=1)) * 0.5 >= below_mm + config.LIPSCHITZ_MARGIN_MM
            out[proven] = np.minimum(d_a[proven], d_b[proven])
            todo = np.flatnonzero(~proven)
            a, b = a[todo], b[todo]
            if not len(todo):
                return out
        steps = np.maximum(np.ceil(np.linalg.norm(b - a, axis=1) / step_mm).astype(np.int64), 1)
        seg = np.repeat(np.arange(len(a)), steps + 1)
        # np.linspace(0, 1, s + 1) of every segment at once (the same operations: j * (1 / s), the last exactly 1)
        first = np.concatenate([[0], np.cumsum(steps + 1)[:-1]])
        t = (np.arange(len(seg)) - first[seg]) * (1.0 / steps[seg].astype(np.float64))
        t[first + steps] = 1.0
        d = self.distance(a[seg] + t[:, None] * (b - a)[seg])
        sampled = np.full(len(a), np.inf)
        np.minimum.at(sampled, seg, d)
        out[todo] = sampled
        return out


_SKINS: list = []  # [(head object, Skin)]: the last few heads verified, so a pipeline's sessions build one query


def skin_of(head) -> Skin:
    """The verifier's :class:`Skin` of ``head``: a Skin, anything with ``vertices`` and ``faces`` (a Head), or an
    object holding one as ``.head`` (only its triangles are used)."""
    if isinstance(head, Skin):
        return head
    h = getattr(head, "head", head)
    for obj, skin in _SKINS:
        if obj is h:
            return skin
    skin = Skin(h.vertices, h.faces)
    _SKINS.insert(0, (h, skin))
    del _SKINS[2:]
    return skin


def _header(parsed: Parsed):
    """The header's values, or the one-line reason it is missing or garbled."""
    out = {}
    for key, found in parsed.header.items():
        if len(found) != 1:
            what = "has no" if not found else f"has {len(found)}"
            return None, (f"the header {what} {_HEADER_SHOWN[key]} line: not a complete scalp3d program; re-export "
                          "it with scalp3d")
        out[key] = found[0].groups()
    return {"plan": out["plan"][0], "head": out["head"][0], "count": int(out["dots"][0]),
            "ids": out["dots"][1], "tips": out["dots"][2], "floor_fraction": float(out["floor"][0]),
            "floor_min_mm": float(out["floor"][1]), "machine": out["machine"][0],
            "standoff_mm": float(out["machine"][1]), "clearance_mm": float(out["machine"][2])}, None


def _planned_dots(js) -> dict:
    """The session JSON's dots: id -> [skin x y z, normal x y z, depth] (7,) in mm; a damaged entry is an
    :class:`InputError` naming it."""
    dots = js.get("dots")
    if not isinstance(dots, list):
        raise InputError("session JSON: 'dots' is missing or not a list; give the session-K.json scalp3d wrote")
    out = {}
    for k, d in enumerate(dots, start=1):
        try:
            row = np.array([*d["skin_mm"], *d["normal"], d["depth_mm"]], dtype=np.float64)
            if row.shape != (7,) or not np.isfinite(row).all() or isinstance(d["id"], bool):
                raise ValueError
            out[int(d["id"])] = row
        except (KeyError, TypeError, ValueError):
            raise InputError(f"session JSON: dot number {k} in 'dots' lacks a whole 'id', three numbers in 'skin_mm' "
                             "and 'normal' or a 'depth_mm'; give the session-K.json scalp3d wrote") from None
    return out


@dataclass
class _Plunges:
    """The program's plunges (k of them), in program order: each G1 move with the point it starts from."""

    moves: list  # the G1 moves (k,) of :class:`Move`
    starts: np.ndarray  # (k,3) mm: the approach point each plunge starts from
    tips: np.ndarray  # (k,3) mm: where each plunge ends
    dots: list  # (k,): the dot id of each plunge's comment, or None
    seen: dict  # dot id (or None) -> the lines plunging it

    @property
    def tags(self) -> list:
        return [f"line {m.line}: dot {m.dot}" for m in self.moves]


def verify_program(path, head, *, session_json: dict | None = None, machine: Machine | None = None,
                   head_sha: str | None = None, plan_sha: str | None = None,
                   clearance_mm: float | None = None) -> Report:
    """Check the program at ``path`` against ``head`` (in the machine frame, see :func:`skin_of`).

    ``head_sha``: :func:`scalp3d.checksums.head_checksum` of the head.ply the program is checked against (scan axes);
    when omitted it is computed from ``head`` itself, which is only possible with an identity scan -> machine
    transform. ``plan_sha``: the checksum of the plan the program must belong to (e.g. the plan.toml beside it).
    ``session_json``: the session's dict (session-K.json), for the per-dot comparison with the plan.
    Returns a :class:`Report`; an unreadable program raises :class:`InputError`.
    """
    machine = machine or Machine()
    rep = Report(str(path))
    parsed = read_program(path)
    hdr, why = _header(parsed)
    if why:
        return rep.refuse(why)
    why = _wrong_head_or_plan(hdr, head, machine, head_sha, plan_sha)
    if why:
        return rep.refuse(why)
    V = rep.violations
    plunges = _check_structure(parsed, hdr, V)
    rep.plunges = len(plunges.moves)
    if not plunges.moves:
        V.append("no plunge (G1) in the program")
        return rep
    skin = skin_of(head)
    _check_plunges(plunges, parsed.notes, skin, machine, V)
    _check_spacing_floor(plunges, hdr, V)
    if session_json is not None:
        _check_session(plunges, session_json, hdr, skin, V)
    clearance = _clearance(clearance_mm, session_json, hdr)
    moves = _move_arrays(parsed.moves)
    _check_travel(moves, skin, clearance, V)
    _check_workspace(moves, machine, V)
    return rep


def _wrong_head_or_plan(hdr, head, machine, head_sha, plan_sha) -> str | None:
    """The one-line refusal when the program was made for another head (checked first, before any geometry) or,
    with ``plan_sha``, for another plan; None when both are this program's."""
    if head_sha is None:
        if not np.array_equal(machine.scan_to_machine, np.eye(4)):
            raise ValueError("verify_program: pass head_sha (head_checksum of the head.ply's vertices): the head "
                             "given is in a registered machine frame")
        h = getattr(head, "head", head)
        head_sha = head_checksum(h.vertices)
    if hdr["head"] != head_sha:
        return (f"made for head sha {hdr['head']}, this head is {head_sha}: verify it against the head.ply it was "
                "planned on")
    if plan_sha is not None and hdr["plan"] != plan_sha:
        return (f"made for plan sha {hdr['plan']}, the plan.toml beside it is {plan_sha}: a program left from "
                "another plan; re-export or delete it")
    return None


def _check_structure(parsed: Parsed, hdr: dict, V: list) -> _Plunges:
    """The program's structure, violations appended to ``V``: no malformed comment; every plunge follows the dot
    comment -> approach G0 -> G1 plunge -> G4 dwell at depth -> G0 back to the approach point pattern; every dot
    comment has its plunge and no dot is plunged twice; the count, ids and tips checksums agree with the header.
    Returns the plunges found."""
    moves, notes = parsed.moves, parsed.notes
    for ln in parsed.malformed:
        V.append(f"line {ln}: an unclosed or nested comment (LinuxCNC refuses it): the program was edited")
    tol = config.GEOMETRY_TOLERANCE_MM
    plunges = []  # (move index, start xyz)
    per_note = np.zeros(len(notes), dtype=np.int64)
    for i, mv in enumerate(moves):
        if mv.kind == "G1":
            start = moves[i - 1].xyz if i > 0 else np.full(3, np.nan)
            if any(map(math.isnan, start.tolist())):  # (scalar tests: this loop runs once per dot)
                V.append(f"line {mv.line}: a plunge with no known start point")
                continue
            plunges.append((i, start))
            if mv.note is not None:
                per_note[mv.note] += 1
            nxt = moves[i + 1] if i + 1 < len(moves) else None
            nxt2 = moves[i + 2] if i + 2 < len(moves) else None
            if nxt is None or nxt.kind != "G4":
                V.append(f"line {mv.line}: dot {mv.dot}: no dwell (G4) at depth after the plunge")
            elif nxt2 is None or nxt2.kind != "G0" or math.dist(nxt2.xyz, start) > tol:
                V.append(f"line {mv.line}: dot {mv.dot}: the plunge and dwell are not followed by a retract to its "
                         "approach point")
        elif mv.kind == "G4" and (i == 0 or moves[i - 1].kind != "G1"):
            V.append(f"line {mv.line}: a dwell (G4) not at depth: the needle is not at a plunge tip"
                     + (f" (after dot {mv.dot}'s comment)" if mv.dot is not None else ""))
    for k in np.flatnonzero(per_note == 0):
        V.append(f"line {notes[k].line}: dot {notes[k].id} has a comment but no plunge (G1): a removed line?")
    p_moves = [moves[i] for i, _ in plunges]
    p_dot = [m.dot for m in p_moves]
    seen = {}
    for m in p_moves:
        seen.setdefault(m.dot, []).append(m.line)
    for dot, lines in seen.items():
        if dot is None:
            V.append(f"line {lines[0]}: a plunge with no (dot N) comment")
        elif len(lines) > 1:
            V.append(f"dot {dot} is plunged {len(lines)} times (lines {', '.join(map(str, lines[:5]))})")
    if len(plunges) != hdr["count"] or len(notes) != hdr["count"]:
        V.append(f"the header states {hdr['count']} dots; the program plunges {len(plunges)} and names "
                 f"{len(notes)}")
    ids_sha = ids_checksum([-1 if d is None else d for d in p_dot])
    if ids_sha != hdr["ids"]:
        V.append(f"the plunged dots' ids sha256 is {ids_sha}, the header states {hdr['ids']}: dots were removed, "
                 "added or reordered")
    tips_sha = tips_checksum([m.words for m in p_moves])
    if tips_sha != hdr["tips"]:
        V.append(f"the plunge tips' sha256 is {tips_sha}, the header states {hdr['tips']}: a plunge was edited")
    starts = np.array([s for _, s in plunges])
    tips = np.array([m.xyz for m in p_moves])
    return _Plunges(p_moves, starts, tips, p_dot, seen)


def _check_plunges(pl: _Plunges, notes: list, skin: Skin, machine: Machine, V: list) -> None:
    """Each plunge's geometry, violations appended to ``V``: the tip below the skin within the machine's depth range
    (mm) and at the depth its comment states, the plunge within the tilt limit (degrees) of the smooth skin normal,
    and the A B words (5-axis) or the comment's axis (3-axis) along the plunge."""
    tol = config.GEOMETRY_TOLERANCE_MM
    p1, p_moves, tag = pl.tips, pl.moves, pl.tags
    direction = pl.starts - p1
    axis = direction / np.maximum(np.linalg.norm(direction, axis=1)[:, None], 1e-12)  # (k,3) unit, tip -> back up
    q, n, side = skin.closest(p1)
    depth = np.linalg.norm(p1 - q, axis=1)
    inside = side < 0
    lo, hi = machine.depth_range_mm
    tilt = np.degrees(np.arccos(np.clip((axis * n).sum(axis=1), -1, 1)))
    if machine.rotary:
        stated = needle_axis(np.array([m.ab for m in p_moves]))
        what = "the A B angles point"
    else:
        stated = np.array([notes[m.note].axis if m.note is not None and notes[m.note].axis is not None
                           else np.full(3, np.nan) for m in p_moves])
        what = "the axis in its comment points"
    stated_err = np.degrees(np.arccos(np.clip((stated * axis).sum(axis=1), -1, 1)))
    for k in range(len(p1)):
        if not inside[k] or depth[k] < lo - tol or depth[k] > hi + tol:
            where = "below" if inside[k] else "ABOVE"
            V.append(f"{tag[k]}: the tip ends {depth[k]:.2f} mm {where} the skin; allowed {lo:g}-{hi:g} mm below")
        note = notes[p_moves[k].note] if p_moves[k].note is not None else None
        if note is not None and note.depth_mm is not None and inside[k] \
                and abs(depth[k] - note.depth_mm) > config.PLUNGE_TOLERANCE_MM:
            V.append(f"{tag[k]}: the tip ends {depth[k]:.2f} mm below the skin, its comment says depth "
                     f"{note.depth_mm:.3f}")
        if tilt[k] > machine.tilt_limit_deg:
            V.append(f"{tag[k]}: the plunge is {tilt[k]:.1f} degrees off the skin normal (limit "
                     f"{machine.tilt_limit_deg:g})")
        if not stated_err[k] <= config.AXIS_TOLERANCE_DEG:
            V.append(f"{tag[k]}: {what} {stated_err[k]:.1f} degrees away from the plunge direction"
                     if np.isfinite(stated_err[k]) else f"{tag[k]}: its comment gives no needle axis")


def _check_spacing_floor(pl: _Plunges, hdr: dict, V: list) -> None:
    """No two tips of different dots closer than the spacing floor (mm; the header's, never under the engine's
    minimum), violations appended to ``V``, closest pairs first. A KD-tree, never all pairs."""
    from scipy.spatial import cKDTree

    p1, p_dot, p_moves = pl.tips, pl.dots, pl.moves
    floor = max(config.SPACING_FLOOR_MIN_MM, hdr["floor_min_mm"])
    pairs = cKDTree(p1).query_pairs(floor - 1e-9, output_type="ndarray")
    if len(pairs):
        dist = np.linalg.norm(p1[pairs[:, 0]] - p1[pairs[:, 1]], axis=1)
        for k in np.argsort(dist, kind="stable"):
            a, b = pairs[k]
            if p_dot[a] != p_dot[b]:
                V.append(f"dots {p_dot[a]} and {p_dot[b]} (lines {p_moves[a].line}, {p_moves[b].line}): tips "
                         f"{dist[k]:.2f} mm apart, under the spacing floor of {floor:g} mm")


def _check_session(pl: _Plunges, js: dict, hdr: dict, skin: Skin, V: list) -> None:
    """The session JSON against the program, violations appended to ``V``: its checksums and count are the header's,
    every plunged dot is in the plan, each tip lies at its planned point (skin point + depth along the normal, mm)
    on the head's surface, and no planned dot is missing."""
    p1, p_dot, tag = pl.tips, pl.dots, pl.tags
    for key, mine in (("plan_sha256", hdr["plan"]), ("head_sha256", hdr["head"]), ("ids_sha256", hdr["ids"]),
                      ("tips_sha256", hdr["tips"]), ("count", hdr["count"])):
        if js.get(key) != mine:
            V.append(f"session JSON: '{key}' is {js.get(key)!r}, the program's header states {mine!r}: not "
                     "this program's JSON")
    plan = _planned_dots(js)
    for k in range(len(p1)):
        if p_dot[k] not in plan:
            V.append(f"{tag[k]}: this dot is not in the plan")
    known = [k for k in range(len(p1)) if p_dot[k] in plan]
    if known:
        dd = np.array([plan[p_dot[k]] for k in known])
        skin_pts = dd[:, :3]
        want = skin_pts - dd[:, 3:6] * dd[:, 6:7]
        err = np.linalg.norm(p1[known] - want, axis=1)
        sk_off = skin.distance(skin_pts)
        for j, k in enumerate(known):
            if err[j] > config.PLUNGE_TOLERANCE_MM:
                V.append(f"{tag[k]}: the tip is {err[j]:.2f} mm from the planned point (skin + depth along the "
                         "normal)")
            if sk_off[j] > config.PLUNGE_TOLERANCE_MM:
                V.append(f"{tag[k]}: the planned skin point is {sk_off[j]:.2f} mm off the head surface")
    missing = sorted(set(plan) - set(pl.seen))
    if missing:
        V.append(f"{len(missing)} planned dot(s) missing from the program, first: "
                 f"{', '.join(map(str, missing[:5]))}")


def _clearance(clearance_mm, session_json, hdr) -> float:
    """The travel clearance (mm) to check: the one given, else the session JSON's setting, else the header's."""
    if clearance_mm is not None:
        return clearance_mm
    if session_json is not None and isinstance(session_json.get("settings"), dict) \
            and isinstance(session_json["settings"].get("clearance_mm"), (int, float)):
        return float(session_json["settings"]["clearance_mm"])
    return hdr["clearance_mm"]


def _move_arrays(moves: list):
    """The moves as arrays: kind (m,) '<U2' ('G0', 'G1', 'G4'), xyz (m,3) float (nan where not yet known), line
    (m,) int."""
    kind = np.array([mv.kind for mv in moves], dtype="<U2")
    xyz = np.array([mv.xyz for mv in moves], dtype=np.float64).reshape(-1, 3)
    line = np.array([mv.line for mv in moves], dtype=np.int64)
    return kind, xyz, line


def _check_travel(moves: tuple, skin: Skin, clearance: float, V: list) -> None:
    """Every G0 that is not a retract from a dwell keeps ``clearance`` (mm) from the skin along its whole segment
    (sampled every half clearance), violations appended to ``V``. ``moves``: :func:`_move_arrays`'s."""
    tol = config.GEOMETRY_TOLERANCE_MM
    kind, xyz, line = moves
    # move i (from 1 on): a G0 from a known point that is not the retract after a G1 plunge and its G4 dwell
    g0 = kind[1:] == "G0"
    known = ~np.isnan(xyz[:-1]).any(axis=1)
    retract = (kind[:-1] == "G4") & np.concatenate([[False], kind[:-2] == "G1"])[:len(kind) - 1]
    travel = np.flatnonzero(g0 & known & ~retract) + 1  # the retract, out along the plunge, is checked with it
    travel_a, travel_b, travel_line = xyz[travel - 1], xyz[travel], line[travel]
    if len(travel):
        dmin = skin.segments_min_distance(travel_a, travel_b, clearance * 0.5, below_mm=clearance - tol)
        for k in np.flatnonzero(dmin < clearance - tol):
            V.append(f"line {travel_line[k]}: a travel move comes {dmin[k]:.2f} mm from the skin "
                     f"(clearance {clearance:g} mm)")


def _check_workspace(moves: tuple, machine: Machine, V: list) -> None:
    """Every known point of the program inside the machine's workspace (mm); the first 20 outside are appended to
    ``V``. ``moves``: :func:`_move_arrays`'s."""
    xyz = moves[1]
    allpts = xyz[~np.isnan(xyz).any(axis=1)]
    wmin = np.asarray(machine.workspace_min_mm)
    wmax = np.asarray(machine.workspace_max_mm)
    out = np.flatnonzero(((allpts < wmin) | (allpts > wmax)).any(axis=1))
    for k in out[:20]:
        V.append(f"point {np.round(allpts[k], 1).tolist()} lies outside the workspace of '{machine.name}'")


def verify_file(program, head_path, *, plan_json=None, machine=None) -> Report:
    """``scalp3d verify``: check ``program`` (session-K.ngc) against ``head_path`` (head.ply) alone.

    Also uses, when present: the session JSON (``plan_json``, else ``session-K.json`` beside the program) and the
    ``plan.toml`` beside the program (its checksum must be the program's). ``machine``: a profile name, TOML path or
    :class:`Machine` (default: the shipped profile the header names, else generic-5axis). Unreadable or missing
    files raise :class:`InputError` (exit 2)."""
    from .fileio import read_json
    from .machine import load_machine
    from .surface import load_head

    program = Path(program)
    parsed = read_program(program)  # an unreadable program is an input error before the head is read
    js_path = Path(plan_json) if plan_json else program.with_suffix(".json")
    js = None
    if plan_json or js_path.exists():
        js = read_json(js_path, "session JSON")
        if not isinstance(js, dict):
            raise InputError(f"{js_path}: not a scalp3d session JSON (an object); give the session-K.json it wrote")
    plan_sha = None
    plan_toml = program.parent / "plan.toml"
    if plan_toml.is_file():
        try:
            plan_sha = plan_checksum(plan_toml.read_bytes())
        except OSError as exc:
            raise InputError(f"{plan_toml}: cannot be read ({exc.strerror})") from None
    if machine is None and len(parsed.header["machine"]) == 1:
        # a program for a shipped profile names it: use it (a custom profile must be given with --machine)
        from importlib import resources

        name = parsed.header["machine"][0].group(1)
        if re.fullmatch(r"[A-Za-z0-9_-]+", name) and (resources.files("scalp3d.machines") / f"{name}.toml").is_file():
            machine = name
    mach = machine if isinstance(machine, Machine) else load_machine(machine)
    if not Path(head_path).is_file():
        raise InputError(f"{head_path}: head not found; give the head.ply written with the program")
    head = load_head(head_path)
    return verify_program(program, mach.head_in_machine_frame(head), session_json=js, machine=mach,
                          head_sha=head_checksum(head.vertices), plan_sha=plan_sha)
