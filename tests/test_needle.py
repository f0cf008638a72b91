"""Needle programs: moves that must be refused are refused, by the planner's checks and by the verifier."""
import copy
import re

import numpy as np
import pytest

from scalp3d.errors import SafetyError
from scalp3d.export import gcode_text, session_dict
from scalp3d.needle import Machine, axis_angles_deg, axis_from_angles, check_program, plan_session
from scalp3d.placement import place_dots, vertex_normals_of
from scalp3d.proximity import SurfaceQuery
from scalp3d.types import Head
from scalp3d.verify import verify_program

from helpers import default_motion, with_settings

#: the head checksum the programs claim and are verified against (the head's identity is tested in test_verify.py)
H = "0123456789abcdef"


@pytest.fixture(scope="module")
def setup():
    import trimesh

    s = trimesh.creation.icosphere(5, radius=80.0)
    v, f = np.asarray(s.vertices), np.asarray(s.faces, dtype=np.int64)
    head = Head(v, f, vertex_normals_of(v, f))
    dens = np.where(v[:, 2] > 20, 30.0, 0.0)
    dots = place_dots(v, f, density_per_cm2=dens, sessions=(0.5, 1.0), seed=3, vertex_normals=head.vertex_normals)
    dots = with_settings(dots)
    settings = default_motion()
    surface = SurfaceQuery(head)
    prog = plan_session(dots, 1, surface, settings)
    return head, dots, surface, settings, prog


def _write(tmp_path, prog, text=None):
    p = tmp_path / "s.ngc"
    p.write_text(text if text is not None else gcode_text(prog, n_sessions=2, plan_sha="x", head_sha=H))
    return p


def test_angles_round_trip():
    n = np.random.default_rng(0).normal(size=(100, 3))
    n /= np.linalg.norm(n, axis=1, keepdims=True)
    assert np.allclose(axis_from_angles(axis_angles_deg(n)), n, atol=1e-12)


def test_clean_program_verifies(setup, tmp_path):
    *_, surface, settings, prog = setup
    js = session_dict(prog, n_sessions=2, plan_sha="x", head_sha=H)
    rep = verify_program(_write(tmp_path, prog), surface, session_json=js, head_sha=H)
    assert rep.ok, rep.violations[:3]
    assert rep.plunges == len(prog)


def test_jumps_across_the_head_are_lifted(setup, tmp_path):
    head, _, surface, settings, _ = setup
    v, f = head.vertices, head.faces
    # two patches on opposite sides: the tour must cross the head between them
    dens = np.where(np.abs(v[:, 0]) > 60, 30.0, 0.0)
    dots = place_dots(v, f, density_per_cm2=dens, sessions=1, seed=4, vertex_normals=head.vertex_normals)
    dots = with_settings(dots)
    prog = plan_session(dots, 1, surface, settings)
    assert prog.lifted >= 1
    k = np.flatnonzero(np.diff(prog.via_indptr)[1:] > 0)[0] + 1  # the first lifted travel
    vias = prog.via_points[prog.via_indptr[k]:prog.via_indptr[k + 1]]
    assert surface.distance(vias).min() > 15.0  # well clear of the skin
    rep = verify_program(_write(tmp_path, prog), surface, session_json=session_dict(prog, n_sessions=1,
                                                                                      plan_sha="x", head_sha=H),
                         head_sha=H)
    assert rep.ok, rep.violations[:3]


def _planted(setup, tmp_path, edit):
    *_, surface, settings, prog = setup
    js = session_dict(prog, n_sessions=2, plan_sha="x", head_sha=H)
    text = gcode_text(prog, n_sessions=2, plan_sha="x", head_sha=H)
    text, js = edit(text, js)
    return verify_program(_write(tmp_path, prog, text), surface, session_json=js, head_sha=H)


def _move_first_plunge(text, delta):
    m = re.search(r"^G1 X(\S+) Y(\S+) Z(\S+) (F\S+)$", text, flags=re.M)
    x, y, z = (float(m.group(i)) for i in (1, 2, 3))
    new = f"G1 X{x + delta[0]:.4f} Y{y + delta[1]:.4f} Z{z + delta[2]:.4f} {m.group(4)}"
    return text[:m.start()] + new + text[m.end():]


def test_refuses_plunge_off_the_skin(setup, tmp_path):
    prog = setup[4]
    n = prog.normals[0]
    rep = _planted(setup, tmp_path, lambda t, j: (_move_first_plunge(t, 0.5 * n), j))
    assert not rep.ok and any("from the planned point" in v for v in rep.violations)


def test_refuses_plunge_too_deep(setup, tmp_path):
    prog = setup[4]
    n = prog.normals[0]
    rep = _planted(setup, tmp_path, lambda t, j: (_move_first_plunge(t, -2.4 * n), j))
    assert not rep.ok and any("allowed 0.2-2 mm below" in v for v in rep.violations)


def test_refuses_travel_through_the_head(setup, tmp_path):
    def edit(t, j):
        return t.replace("M2\n", "G0 X0 Y0 Z0 A0 B0\nG0 X0 Y0 Z200 A0 B0\nM2\n"), j

    rep = _planted(setup, tmp_path, edit)
    assert any("travel move comes" in v for v in rep.violations)


def test_refuses_missing_and_duplicated_dots(setup, tmp_path):
    def drop(t, j):
        block = re.search(r"\(dot \d+ [^)]*\)\nG0[^\n]*\nG1[^\n]*\nG4[^\n]*\nG0[^\n]*\n", t)
        return t[:block.start()] + t[block.end():], j

    rep = _planted(setup, tmp_path, drop)
    assert any("missing from the program" in v for v in rep.violations)

    def dup(t, j):
        block = re.search(r"\(dot \d+ [^)]*\)\nG0[^\n]*\nG1[^\n]*\nG4[^\n]*\nG0[^\n]*\n", t)
        return t[:block.end()] + block.group(0) + t[block.end():], j

    rep = _planted(setup, tmp_path, dup)
    assert any("plunged 2 times" in v for v in rep.violations)


def test_refuses_outside_workspace(setup, tmp_path):
    *_, surface, settings, prog = setup
    small = Machine(name="small", workspace_min_mm=(-50, -50, -50), workspace_max_mm=(50, 50, 50))
    rep = verify_program(_write(tmp_path, prog), surface, machine=small, head_sha=H)
    assert any("outside the workspace of 'small'" in v for v in rep.violations)
    bad = copy.copy(prog)
    bad.machine = small
    with pytest.raises(SafetyError, match="outside the workspace"):
        check_program(bad, surface)


def test_planner_refuses_bad_depth_and_tilt(setup):
    *_, surface, settings, prog = setup
    deep = copy.copy(prog)
    deep.depth_mm = prog.depth_mm.copy()
    deep.depth_mm[3] = 3.0
    with pytest.raises(SafetyError, match="3.00 mm deep"):
        check_program(deep, surface)
    tilted = copy.copy(prog)
    tilted.angles_deg = prog.angles_deg.copy()
    tilted.angles_deg[5, 0] += 12.0
    with pytest.raises(SafetyError, match="degrees off the skin normal"):
        check_program(tilted, surface)
    off = copy.copy(prog)
    off.skin = prog.skin.copy()
    off.skin[2] += prog.normals[2] * 0.5
    with pytest.raises(SafetyError, match="off the skin"):
        check_program(off, surface)


def test_planner_refuses_travel_through_head(setup):
    *_, surface, settings, prog = setup
    bad = copy.copy(prog)
    bad.exit_points = np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 200.0]])
    with pytest.raises(SafetyError, match="comes .* from the skin"):
        check_program(bad, surface)


def test_per_dot_seconds_by_hand():
    """Three dots with feeds, distances and dwell chosen so each time is a hand sum:
    rapid 3000 mm/min = 50 mm/s, travel 1200 mm/min = 20 mm/s, plunge 600 mm/min = 10 mm/s, standoff 3 mm, dwell 0.1 s.
    Dot 1: in from the shell (30 mm rapid: 0.6 s), plunge 3.5 mm (0.35 s), dwell, retract 3.5 mm rapid (0.07 s).
    Dot 2: 5 mm straight travel at the travel feed (0.25 s), plunge 3.6 mm (0.36 s), dwell, retract (0.072 s).
    Dot 3: a lift over two waypoints, 20 + 10 + 20 mm at rapid (1.0 s), plunge 3.7 mm (0.37 s), dwell, retract
    (0.074 s), and the way out, 30 mm at rapid (0.6 s)."""
    from scalp3d.needle import Program, per_dot_seconds

    approach = np.array([[0.0, 0.0, 10.0], [3.0, 4.0, 10.0], [9.0, 12.0, 10.0]])
    via = np.array([[0.0, 0.0, 40.0],                       # dot 1's way in
                    [3.0, 4.0, 30.0], [9.0, 12.0, 30.0]])   # dot 3's lift
    normals = np.tile([0.0, 0.0, 1.0], (3, 1))
    prog = Program(session=1, ids=np.array([1, 2, 3]), skin=approach - [0, 0, 3], normals=normals,
                   tips=approach - [0, 0, 3.6], approach=approach, depth_mm=np.array([0.5, 0.6, 0.7]),
                   angles_deg=np.zeros((3, 2)), via_indptr=np.array([0, 1, 1, 3]), via_points=via,
                   exit_points=np.array([[9.0, 12.0, 40.0]]), zone=np.zeros(3, np.int64),
                   needle=np.zeros(3, np.int64), shade=np.zeros(3, np.int64), zone_names=("core",),
                   needle_names=("0603-1RL",), shade_names=("light",), plunge_feed_mm_per_min=600.0,
                   travel_feed_mm_per_min=1200.0, dwell_s=0.1,
                   standoff_mm=3.0, clearance_mm=1.5, machine=Machine(rapid_mm_per_min=3000.0))
    expected = [0.6 + 0.35 + 0.1 + 0.07,
                0.25 + 0.36 + 0.1 + 0.072,
                1.0 + 0.37 + 0.1 + 0.074 + 0.6]
    assert per_dot_seconds(prog) == pytest.approx(expected, abs=1e-12)


def test_per_dot_seconds_sum_to_the_session_estimate(setup):
    from scalp3d.needle import per_dot_seconds

    prog = setup[4]
    t = per_dot_seconds(prog)
    assert t.shape == (len(prog),) and np.all(t > 0)
    # no dot takes less than its plunge, dwell and retract
    assert np.all(t >= (prog.standoff_mm + prog.depth_mm) / (prog.plunge_feed_mm_per_min / 60) + prog.dwell_s)
    assert t.sum() == pytest.approx(prog.estimated_time_s, rel=1e-9)
