"""Needle programs: for one session, the order of the dots and every move of the needle, checked before anything
is written.

Per dot: rapid to the approach point (``standoff_mm`` out along the skin normal) with the rotary axes set, feed to the
dot's depth along the normal, dwell, rapid back to the approach point. Between dots the needle travels straight at the
stand-off; where that segment would come closer than ``clearance_mm`` to the skin, it is lifted: out along the normal,
across a safe shell around the head, and back down. Every point of every move is then checked against the head and the
machine's limits; a failed check raises :class:`SafetyError` and nothing is written.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from . import config
from .errors import InputError, SafetyError
from .machine import Machine
from .proximity import SurfaceQuery
from .types import Dots, Motion
from .warmup import in_stage


@dataclass(frozen=True)
class Visits:
    """One session's dots in the order the needle visits them, in the machine frame: what a program is built from.

    ids : (n,) int64; skin, normals : (n,3) float64 (mm, unit normals out of the skin); depth_mm : (n,) float64;
    zone, needle, shade : (n,) int64 indices into ``zone_names``, ``needle_names``, ``shade_names``.
    """

    session: int
    ids: np.ndarray
    skin: np.ndarray
    normals: np.ndarray
    depth_mm: np.ndarray
    zone: np.ndarray
    needle: np.ndarray
    shade: np.ndarray
    zone_names: tuple
    needle_names: tuple
    shade_names: tuple

    def __len__(self):
        return len(self.ids)

    def cut(self, a: int, b: int) -> "Visits":
        """Dots ``a`` to ``b`` (visit order), names kept."""
        return Visits(self.session, self.ids[a:b], self.skin[a:b], self.normals[a:b], self.depth_mm[a:b],
                      self.zone[a:b], self.needle[a:b], self.shade[a:b], self.zone_names, self.needle_names,
                      self.shade_names)

    @classmethod
    def from_labels(cls, session, ids, skin, normals, depth_mm, zone, needle, shade) -> "Visits":
        """From per-dot names (as a session's JSON holds them) instead of indices."""
        codes = [np.unique(np.asarray(x, dtype=str), return_inverse=True) for x in (zone, needle, shade)]
        return cls(int(session), np.asarray(ids, dtype=np.int64), np.asarray(skin, dtype=np.float64),
                   np.asarray(normals, dtype=np.float64), np.asarray(depth_mm, dtype=np.float64),
                   *(c[1].astype(np.int64).reshape(-1) for c in codes), *(tuple(c[0].tolist()) for c in codes))


@dataclass
class Program:
    """One session's needle program (mm, scan axes). Dots are in visit order.

    ``via`` holds the lift waypoints travelled before reaching each dot's approach point: the waypoints of dot k are
    ``via_points[via_indptr[k]:via_indptr[k+1]]`` (the first dot's are the way in from the safe shell).
    """

    session: int
    ids: np.ndarray
    skin: np.ndarray
    normals: np.ndarray
    tips: np.ndarray
    approach: np.ndarray
    depth_mm: np.ndarray
    angles_deg: np.ndarray
    via_indptr: np.ndarray
    via_points: np.ndarray
    exit_points: np.ndarray
    #: (n,) int64 indices into the names below, per dot in visit order
    zone: np.ndarray
    needle: np.ndarray
    shade: np.ndarray
    zone_names: tuple
    needle_names: tuple
    shade_names: tuple
    plunge_feed_mm_per_min: float
    travel_feed_mm_per_min: float
    dwell_s: float
    standoff_mm: float
    clearance_mm: float
    travel_mm: float = 0.0
    lifted: int = 0
    estimated_time_s: float = 0.0
    machine: Machine = field(default_factory=Machine)

    def __len__(self):
        return len(self.ids)

    def zone_of(self, k: int) -> str:
        return self.zone_names[self.zone[k]]

    def needle_of(self, k: int) -> str:
        return self.needle_names[self.needle[k]]

    def shade_of(self, k: int) -> str:
        return self.shade_names[self.shade[k]]

    @property
    def main_shade(self) -> str:
        """The session's shade: the most used one when zones set their own (on a tie, the first in sorted order)."""
        if not len(self.shade):
            return ""
        names, counts = np.unique(np.asarray(self.shade_names, dtype=str)[self.shade], return_counts=True)
        return str(names[np.argmax(counts)])

    @property
    def motion(self) -> Motion:
        return Motion(self.standoff_mm, self.clearance_mm, self.plunge_feed_mm_per_min, self.travel_feed_mm_per_min,
                      self.dwell_s)

    def visits(self) -> Visits:
        """The dots this program visits, in its order (machine frame)."""
        return Visits(self.session, self.ids, self.skin, self.normals, self.depth_mm, self.zone, self.needle,
                      self.shade, self.zone_names, self.needle_names, self.shade_names)


def axis_angles_deg(normals):
    """Rotary angles (A, B) in degrees that turn the tool axis +Z onto each unit ``normal``.

    The needle axis (from the tip back up the needle) is Ry(B) Rx(A) (0,0,1) = (cos A sin B, -sin A, cos A cos B).
    """
    n = np.asarray(normals, dtype=np.float64)
    a = -np.arcsin(np.clip(n[:, 1], -1.0, 1.0))
    b = np.arctan2(n[:, 0], n[:, 2])
    return np.degrees(np.column_stack([a, b]))


def axis_from_angles(angles_deg):
    """Inverse of :func:`axis_angles_deg`: unit needle axes (n,3)."""
    a = np.radians(angles_deg[:, 0])
    b = np.radians(angles_deg[:, 1])
    return np.column_stack([np.cos(a) * np.sin(b), -np.sin(a), np.cos(a) * np.cos(b)])


def _shell_route(p, n_p, q, n_q, centre, radius, lift_mm):
    """Waypoints from p (normal n_p) to q over a sphere (centre, radius): lift, out, along the great circle, in, down."""
    p_up = p + n_p * lift_mm
    q_up = q + n_q * lift_mm
    u = (p_up - centre) / np.linalg.norm(p_up - centre)
    w = (q_up - centre) / np.linalg.norm(q_up - centre)
    ang = math.acos(max(-1.0, min(1.0, float(u @ w))))
    steps = max(1, int(math.ceil(math.degrees(ang) / config.SHELL_ARC_STEP_DEG)))
    pts = [p_up]
    for k in range(steps + 1):
        t = k / steps
        if ang < 1e-9:
            d = u
        else:
            d = (math.sin((1 - t) * ang) * u + math.sin(t * ang) * w) / math.sin(ang)
        pts.append(centre + radius * d)
    pts.append(q_up)
    return np.array(pts)


@in_stage("neighbours")
@in_stage("tour")
def order_dots(points, zone=None, zone_order=None, block=None):
    """Visit order (n,) of dots (n,3): a nearest-neighbour tour improved by 2-opt and Or-opt (numba).

    With ``zone_order`` (zone labels, e.g. ["hairline", "front"]) the dots of each listed zone are toured in that order
    first, then the rest; each group is one open path, started from the end of the previous group. With ``block``
    (n,) int, the dots are first split by block number (ascending; e.g. one block per cartridge and pigment), and
    the zone order applies within each block.
    """
    from scalp3d import kernels as K

    pts = np.ascontiguousarray(points, dtype=np.float64)
    n = len(pts)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    blocks = [np.arange(n)] if block is None else [np.flatnonzero(np.asarray(block) == b)
                                                    for b in np.unique(block)]
    groups = []
    for members in blocks:
        if zone_order:
            zone_b = np.asarray(zone)[members]
            parts = [members[zone_b == z] for z in zone_order]
            parts.append(members[~np.isin(zone_b, list(zone_order))])
            groups += [g for g in parts if len(g)]
        else:
            groups.append(members)
    out = []
    last = None
    for g in groups:
        p = np.ascontiguousarray(pts[g])
        start = 0 if last is None else int(np.argmin(np.linalg.norm(p - last, axis=1)))
        cell = config.TOUR_CELL_MM
        if len(p) > 1:
            nn, _ = K.nearest_distance(p, p, cell, True)
            cell = max(2.0 * float(np.median(nn)), 1e-3)
        o = K.nearest_neighbour_tour(p, start, cell)
        if len(p) >= config.TOUR_NEIGHBOURS:
            nb = K.knn_lists(p, config.TOUR_NEIGHBOURS, cell)
            o = K.two_opt_or_opt(p, o, nb, config.TOUR_MOVES_PER_DOT * len(p))
            if last is not None and o[-1] == start and o[0] != start:
                o = o[::-1].copy()  # the free ends of the path: start near where the last group ended
        out.append(g[o])
        last = p[o[-1]]
    return np.concatenate(out)


def plan_session(dots: Dots, session: int, surface: SurfaceQuery, motion: Motion, machine: Machine | None = None,
                 zone_order=None) -> Program:
    """Order one session's dots and build its moves in the machine frame (``surface`` must be the head in that
    frame); every move is checked (see :func:`check_program`).

    dots : complete :class:`Dots` (scan axes, mm); session : 1-based; motion : the plan's ``needle.motion``;
    zone_order : zone names toured first, in this order. Raises :class:`SafetyError` on any unsafe move.
    """
    machine = machine or Machine()
    m = np.flatnonzero(dots.session == session)
    if not len(m):
        raise SafetyError(f"session {session} has no dots; nothing to program")
    pos = machine.to_machine(dots.positions[m])
    nrm = machine.rotate(dots.normals[m])
    # one cartridge and pigment at a time: each (needle, shade) pair is toured as a block, the most used first
    pairs = [f"{dots.needle_names[a]}\t{dots.shade_names[b]}" for a, b in zip(dots.needle[m], dots.shade[m])]
    names, counts = np.unique(pairs, return_counts=True)
    rank = {nm: r for r, nm in enumerate(names[np.lexsort((names, -counts))])}
    zone = np.array([dots.zone_names[i] for i in dots.zone[m]])
    order = order_dots(pos, zone, zone_order, block=np.array([rank[p] for p in pairs]))
    sel = m[order]
    visits = Visits(session, dots.ids[sel], pos[order], nrm[order], dots.depth_mm[sel], dots.zone[sel],
                    dots.needle[sel], dots.shade[sel], dots.zone_names, dots.needle_names, dots.shade_names)
    return build_program(visits, surface, motion, machine)


def build_program(visits: Visits, surface: SurfaceQuery, motion: Motion, machine: Machine) -> Program:
    """Moves for dots already in visit order (machine frame): approach, plunge, dwell, retract, lifted travel."""
    standoff, clearance = motion.standoff_mm, motion.clearance_mm
    pos, nrm, depth = visits.skin, visits.normals, visits.depth_mm
    tips = pos - nrm * depth[:, None]
    approach = pos + nrm * standoff
    verts = surface.head.vertices
    centre = 0.5 * (verts.min(axis=0) + verts.max(axis=0))
    radius = float(np.linalg.norm(verts - centre, axis=1).max()) + config.SAFE_SHELL_MARGIN_MM
    lift = config.SHELL_LIFT_MM
    # straight travel between consecutive approach points, lifted where it comes too close to the skin
    dmin = surface.segments_min_distance(approach[:-1], approach[1:], clearance * 0.5, below_mm=clearance)
    unsafe = np.flatnonzero(dmin < clearance) + 1
    via_lists = [[] for _ in range(len(pos))]
    # the way in: from the safe shell above the first dot, down to its lifted point
    up0 = approach[0] + nrm[0] * lift
    via_lists[0] = [centre + radius * (up0 - centre) / np.linalg.norm(up0 - centre), up0]
    for k in unsafe:
        via_lists[k] = list(_shell_route(approach[k - 1], nrm[k - 1], approach[k], nrm[k], centre, radius, lift))
    end_up = approach[-1] + nrm[-1] * lift
    exit_points = np.array([end_up, centre + radius * (end_up - centre) / np.linalg.norm(end_up - centre)])
    counts = np.array([len(v) for v in via_lists])
    via_indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    via_points = np.array([p for v in via_lists for p in v]).reshape(-1, 3)
    prog = Program(session=visits.session, ids=visits.ids, skin=pos, normals=nrm, tips=tips, approach=approach,
                   depth_mm=depth, angles_deg=axis_angles_deg(nrm), via_indptr=via_indptr, via_points=via_points,
                   exit_points=exit_points, zone=visits.zone, needle=visits.needle, shade=visits.shade,
                   zone_names=visits.zone_names, needle_names=visits.needle_names, shade_names=visits.shade_names,
                   plunge_feed_mm_per_min=motion.plunge_feed_mm_per_min,
                   travel_feed_mm_per_min=motion.travel_feed_mm_per_min, dwell_s=motion.dwell_s,
                   standoff_mm=standoff, clearance_mm=clearance, lifted=len(unsafe), machine=machine)
    dot_times = per_dot_seconds(prog)
    prog.travel_mm = float(np.linalg.norm(np.diff(travel_path(prog), axis=0), axis=1).sum())
    prog.estimated_time_s = float(dot_times.sum())
    check_program(prog, surface)
    return prog


def per_dot_seconds(prog: Program) -> np.ndarray:
    """Estimated seconds per dot (n,): travel to its approach point at the travel feed (rapid for lifts), plunge at
    the plunge feed, dwell, rapid retract; the way out is added to the last dot."""
    rapid = prog.machine.rapid_mm_per_min / 60.0
    travel = prog.travel_feed_mm_per_min / 60.0
    plunge = (prog.standoff_mm + prog.depth_mm) / (prog.plunge_feed_mm_per_min / 60.0)
    retract = (prog.standoff_mm + prog.depth_mm) / rapid
    out = plunge + retract + prog.dwell_s
    path, owner = _travel_points(prog)
    # each segment of the travel path belongs to the dot it leads to; a dot's travel runs from the previous dot's
    # approach point through its lift points (rapid when it has any, or for the first dot) to its own approach point
    seg = np.linalg.norm(np.diff(path, axis=0), axis=1)
    to_dot = owner[1:]
    inside = to_dot < len(prog)
    length = np.bincount(to_dot[inside], weights=seg[inside], minlength=len(prog))
    lifted = np.diff(prog.via_indptr) > 0
    lifted[0] = True
    out += length / np.where(lifted, rapid, travel)
    out[-1] += seg[~inside].sum() / rapid  # the way out
    return out


def split_program(prog: Program, surface: SurfaceQuery, *, chunk_dots=None, chunk_minutes=None):
    """Cut a session's program into consecutive parts of at most ``chunk_dots`` dots or ``chunk_minutes`` minutes,
    each a complete program (in from the safe shell, out to it), in the same dot order."""
    n = len(prog)
    if chunk_dots is not None:
        if chunk_dots < 1:
            raise InputError(f"chunks must hold at least 1 dot, not {chunk_dots}")
        cuts = list(range(0, n, int(chunk_dots)))
    elif chunk_minutes is not None:
        if chunk_minutes <= 0:
            raise InputError(f"chunks must last more than 0 minutes, not {chunk_minutes}")
        t = np.cumsum(per_dot_seconds(prog)) / 60.0
        cuts = [0]
        base = 0.0
        for k in range(n):
            if t[k] - base > chunk_minutes and k > cuts[-1]:
                cuts.append(k)
                base = t[k - 1]
    else:
        return [prog]
    bounds = cuts + [n]
    return [_slice(prog, surface, a, b) for a, b in zip(bounds[:-1], bounds[1:])]


def resume_program(prog: Program, surface: SurfaceQuery, from_id: int) -> Program:
    """The rest of a session's program from dot ``from_id`` on (after an interruption), in the same order."""
    where = np.flatnonzero(prog.ids == int(from_id))
    if len(where) == 0:
        raise InputError(f"dot {from_id} is not in session {prog.session}; give an id from its session-K.json")
    return _slice(prog, surface, int(where[0]), len(prog))


def _slice(prog: Program, surface: SurfaceQuery, a: int, b: int) -> Program:
    return build_program(prog.visits().cut(a, b), surface, prog.motion, prog.machine)


def travel_path(prog: Program) -> np.ndarray:
    """Every point the needle tip travels through outside the plunges, in order: (k,3)."""
    return _travel_points(prog)[0]


def _travel_points(prog: Program):
    """:func:`travel_path`'s points (k,3) and, per point, the dot it belongs to (k,) int64: each dot's lift points
    then its approach point, then the exit points (owned by ``len(prog)``)."""
    n = len(prog)
    counts = np.diff(prog.via_indptr)
    owner = np.concatenate([np.repeat(np.arange(n), counts + 1), np.full(len(prog.exit_points), n)])
    is_approach = np.zeros(len(owner), dtype=bool)
    is_approach[np.cumsum(counts + 1) - 1] = True
    path = np.empty((len(owner), 3))
    path[is_approach] = prog.approach
    path[np.flatnonzero(~is_approach)[:len(prog.via_points)]] = prog.via_points
    path[len(owner) - len(prog.exit_points):] = prog.exit_points
    return path, owner.astype(np.int64)


def check_program(prog: Program, surface: SurfaceQuery) -> None:
    """Refuse (SafetyError) any move that is not safe: depth, direction, travel near the skin, workspace, feeds."""
    mach = prog.machine
    s = f"session {prog.session}"
    lo, hi = mach.depth_range_mm
    bad = np.flatnonzero((prog.depth_mm < lo) | (prog.depth_mm > hi))
    if len(bad):
        k = bad[0]
        raise SafetyError(f"{s}: dot {prog.ids[k]} is {prog.depth_mm[k]:.2f} mm deep; the machine allows "
                          f"{lo:g}-{hi:g} mm: lower the depth in the plan")
    flo, fhi = mach.feed_range_mm_per_min
    for name, f in (("plunge", prog.plunge_feed_mm_per_min), ("travel", prog.travel_feed_mm_per_min)):
        if not flo <= f <= fhi:
            raise SafetyError(f"{s}: {name} feed {f:g} mm/min is outside the machine's {flo:g}-{fhi:g} mm/min")
    # plunge: the skin point lies on the skin, the needle moves along the normal there
    q, n, _ = surface.closest(prog.skin)
    off = np.linalg.norm(prog.skin - q, axis=1)
    bad = np.flatnonzero(off > config.PLUNGE_TOLERANCE_MM)
    if len(bad):
        k = bad[0]
        raise SafetyError(f"{s}: dot {prog.ids[k]} is {off[k]:.2f} mm off the skin; re-plan on this head")
    axis = axis_from_angles(prog.angles_deg)
    tilt = np.degrees(np.arccos(np.clip((axis * n).sum(axis=1), -1, 1)))
    bad = np.flatnonzero(tilt > mach.tilt_limit_deg)
    if len(bad):
        k = bad[0]
        raise SafetyError(f"{s}: dot {prog.ids[k]}: the needle is {tilt[k]:.1f} degrees off the skin normal; "
                          f"the limit is {mach.tilt_limit_deg:g}")
    if mach.rotary:
        for k, (name, rng) in enumerate((("A", mach.a_range_deg), ("B", mach.b_range_deg))):
            bad = np.flatnonzero((prog.angles_deg[:, k] < rng[0]) | (prog.angles_deg[:, k] > rng[1]))
            if len(bad):
                j = bad[0]
                raise SafetyError(f"{s}: dot {prog.ids[j]} needs {name} = {prog.angles_deg[j, k]:.1f} degrees; machine "
                                  f"'{mach.name}' allows {rng[0]:g} to {rng[1]:g}: register the head differently")
    unknown = sorted({prog.needle_names[i] for i in np.unique(prog.needle)} - set(mach.cartridges))
    if unknown:
        raise SafetyError(f"{s}: needle '{unknown[0]}' is not among machine '{mach.name}' cartridges "
                          f"({', '.join(mach.cartridges)}); change the plan's needle or the profile")
    # travel: every segment outside the plunges keeps the clearance
    path = travel_path(prog)
    dmin = surface.segments_min_distance(path[:-1], path[1:], prog.clearance_mm * 0.5,
                                         below_mm=prog.clearance_mm - config.GEOMETRY_TOLERANCE_MM)
    bad = np.flatnonzero(dmin < prog.clearance_mm - config.GEOMETRY_TOLERANCE_MM)
    if len(bad):
        k = bad[0]
        raise SafetyError(f"{s}: a travel move from {np.round(path[k], 2).tolist()} to "
                          f"{np.round(path[k + 1], 2).tolist()} comes {dmin[k]:.2f} mm from the skin; "
                          f"the clearance is {prog.clearance_mm:g} mm")
    wmin = np.asarray(mach.workspace_min_mm)
    wmax = np.asarray(mach.workspace_max_mm)
    for name, pts in (("tip", prog.tips), ("travel", path)):
        out = np.flatnonzero(((pts < wmin) | (pts > wmax)).any(axis=1))
        if len(out):
            raise SafetyError(f"{s}: a {name} point {np.round(pts[out[0]], 1).tolist()} lies outside the workspace "
                              f"of machine '{mach.name}'; move the head or use another machine profile")
