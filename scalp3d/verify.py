"""Read an exported needle program back and check every move against the head, independently of how it was made.

Checks: each plunge's depth below the skin (within the machine's bounds and, when the session JSON is given, within
0.2 mm of the planned tip), the needle along the skin normal (tilt limit), the A B words matching the plunge direction,
every travel move clear of the skin, everything inside the workspace, and the dot ids complete and unique.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import config
from .errors import InputError
from .machine import Machine
from .needle import axis_from_angles
from .proximity import SurfaceQuery

_WORD = re.compile(r"([A-Z])\s*([-+]?\d*\.?\d+)")
_DOT = re.compile(r"\(dot (\d+)\b")


@dataclass
class Move:
    kind: str  # 'G0', 'G1', 'G4'
    xyz: np.ndarray
    ab: np.ndarray
    dot: int | None
    line: int
    dwell_s: float = 0.0


@dataclass
class Report:
    path: str
    plunges: int = 0
    violations: list = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.violations

    def verdict(self) -> str:
        if self.ok:
            return f"{self.path}: OK, {self.plunges} plunges checked, no violation"
        return f"{self.path}: REFUSED, {len(self.violations)} violation(s) in {self.plunges} plunges"


def parse_gcode(path):
    """Moves of a scalp3d G-code program (absolute mm, G0/G1/G4). Unknown motion words raise InputError."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{path}: program not found; check the path") from None
    except UnicodeDecodeError:
        raise InputError(f"{path}: not a text G-code file") from None
    pos = np.full(3, np.nan)
    ab = np.zeros(2)
    moves = []
    dot = None
    to_mm = 1.0
    for ln, raw in enumerate(text.splitlines(), start=1):
        m = _DOT.search(raw)
        if m:
            dot = int(m.group(1))
        line = re.sub(r"\([^)]*\)", "", raw).split(";")[0].strip().upper()
        if not line:
            continue
        words = _WORD.findall(line)
        g = [float(v) for k, v in words if k == "G"]
        vals = {k: float(v) for k, v in words if k != "G"}
        if 20 in g:
            to_mm = 25.4
        if 21 in g:
            to_mm = 1.0
        if 4 in g:
            moves.append(Move("G4", pos.copy(), ab.copy(), dot, ln, vals.get("P", 0.0)))
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
        moves.append(Move("G0" if motion[-1] == 0 else "G1", pos.copy(), ab.copy(), dot, ln))
    return moves


def verify_program(path, surface: SurfaceQuery, *, session_json: dict | None = None,
                   machine: Machine | None = None, clearance_mm: float | None = None) -> Report:
    """Check every move of the program at ``path`` against the head behind ``surface``."""
    machine = machine or Machine()
    rep = Report(str(path))
    moves = parse_gcode(path)
    V = rep.violations
    clearance = clearance_mm if clearance_mm is not None else (
        session_json["settings"]["clearance_mm"] if session_json else config.CLEARANCE_MM)
    plan = {}
    if session_json is not None:
        plan = {d["id"]: d for d in session_json["dots"]}
    seen = {}
    travel_a, travel_b, travel_line = [], [], []
    plunge_from, plunge_to, plunge_dot, plunge_ab, plunge_line = [], [], [], [], []
    prev = None
    for i, mv in enumerate(moves):
        if mv.kind == "G1":
            if prev is None or np.isnan(prev.xyz).any():
                V.append(f"line {mv.line}: a plunge with no known start point")
                continue
            plunge_from.append(prev.xyz)
            plunge_to.append(mv.xyz)
            plunge_dot.append(mv.dot)
            plunge_ab.append(mv.ab)
            plunge_line.append(mv.line)
            seen.setdefault(mv.dot, []).append(mv.line)
            nxt = moves[i + 1] if i + 1 < len(moves) else None
            nxt2 = moves[i + 2] if i + 2 < len(moves) else None
            if nxt is None or nxt.kind != "G4" or nxt2 is None or nxt2.kind != "G0" \
                    or np.linalg.norm(nxt2.xyz - prev.xyz) > 1e-3:
                V.append(f"line {mv.line}: dot {mv.dot}: the plunge is not followed by a dwell and a retract "
                         "to its approach point")
        elif mv.kind == "G0":
            if prev is not None and not np.isnan(prev.xyz).any():
                is_retract = prev.kind == "G4"
                if not is_retract:
                    travel_a.append(prev.xyz)
                    travel_b.append(mv.xyz)
                    travel_line.append(mv.line)
        if mv.kind != "G4" or prev is None:
            prev = mv
        else:
            prev = Move("G4", prev.xyz, prev.ab, prev.dot, mv.line)
    rep.plunges = len(plunge_to)
    if not plunge_to:
        V.append("no plunge (G1) in the program")
        return rep
    p0 = np.array(plunge_from)
    p1 = np.array(plunge_to)
    direction = p0 - p1
    length = np.linalg.norm(direction, axis=1)
    axis = direction / np.maximum(length[:, None], 1e-12)
    # the skin point: where the plunge line crosses the surface, found from the tip's closest point
    q, n, _ = surface.closest(p1)
    depth = np.linalg.norm(p1 - q, axis=1)
    inside = ((q - p1) * n).sum(axis=1) > 0  # the tip lies below the skin
    lo, hi = machine.depth_range_mm
    tilt = np.degrees(np.arccos(np.clip((axis * n).sum(axis=1), -1, 1)))
    ab_axis = axis_from_angles(np.array(plunge_ab))
    ab_err = np.degrees(np.arccos(np.clip((ab_axis * axis).sum(axis=1), -1, 1)))
    for k in range(len(p1)):
        tag = f"line {plunge_line[k]}: dot {plunge_dot[k]}"
        if not inside[k] or depth[k] < lo - 1e-6 or depth[k] > hi + 1e-6:
            where = "below" if inside[k] else "ABOVE"
            V.append(f"{tag}: the tip ends {depth[k]:.2f} mm {where} the skin; allowed {lo:g}-{hi:g} mm below")
        if tilt[k] > machine.tilt_limit_deg:
            V.append(f"{tag}: the plunge is {tilt[k]:.1f} degrees off the skin normal (limit "
                     f"{machine.tilt_limit_deg:g})")
        if machine.rotary and ab_err[k] > 0.5:
            V.append(f"{tag}: the A B angles point {ab_err[k]:.1f} degrees away from the plunge direction")
        if plan and plunge_dot[k] not in plan:
            V.append(f"{tag}: this dot is not in the plan")
    if plan:
        known = [k for k in range(len(p1)) if plunge_dot[k] in plan]
        if known:
            dd = [plan[plunge_dot[k]] for k in known]
            skin = np.array([d["skin_mm"] for d in dd])
            nrm = np.array([d["normal"] for d in dd])
            want = skin - nrm * np.array([d["depth_mm"] for d in dd])[:, None]
            err = np.linalg.norm(p1[known] - want, axis=1)
            sk_off = surface.distance(skin)
            for j, k in enumerate(known):
                tag = f"line {plunge_line[k]}: dot {plunge_dot[k]}"
                if err[j] > config.PLUNGE_TOLERANCE_MM:
                    V.append(f"{tag}: the tip is {err[j]:.2f} mm from the planned point (skin + depth along the "
                             "normal)")
                if sk_off[j] > config.PLUNGE_TOLERANCE_MM:
                    V.append(f"{tag}: the planned skin point is {sk_off[j]:.2f} mm off the head surface")
    # travel
    if travel_a:
        dmin = surface.segments_min_distance(np.array(travel_a), np.array(travel_b), clearance * 0.5)
        for k in np.flatnonzero(dmin < clearance - 1e-3):
            V.append(f"line {travel_line[k]}: a travel move comes {dmin[k]:.2f} mm from the skin "
                     f"(clearance {clearance:g} mm)")
    # workspace
    allpts = np.array([m.xyz for m in moves if not np.isnan(m.xyz).any()])
    wmin = np.asarray(machine.workspace_min_mm)
    wmax = np.asarray(machine.workspace_max_mm)
    out = np.flatnonzero(((allpts < wmin) | (allpts > wmax)).any(axis=1))
    for k in out[:20]:
        V.append(f"point {np.round(allpts[k], 1).tolist()} lies outside the workspace of '{machine.name}'")
    # ids
    for dot, lines in seen.items():
        if dot is None:
            V.append(f"line {lines[0]}: a plunge with no (dot N) comment")
        elif len(lines) > 1:
            V.append(f"dot {dot} is plunged {len(lines)} times (lines {', '.join(map(str, lines[:5]))})")
    if plan:
        missing = sorted(set(plan) - set(seen))
        if missing:
            V.append(f"{len(missing)} planned dot(s) missing from the program, first: "
                     f"{', '.join(map(str, missing[:5]))}")
    return rep
