"""The verifier on a lone program: it refuses every tampering it can see from the program and the head alone, in one
clear line where the whole program is wrong (another head, another plan), and it shares no geometry with the planner.

Programs are built on an icosphere with :func:`scalp3d.needle.build_program` (no placement), so each test runs in
well under a second.
"""
import ast
import re
from pathlib import Path

import numpy as np
import pytest

import scalp3d.verify as verify_mod
from scalp3d import cli, config
from scalp3d.checksums import head_checksum, plan_checksum
from scalp3d.export import gcode_text, session_dict, write_head_ply
from scalp3d.machine import Machine
from scalp3d.needle import Visits, axis_angles_deg, axis_from_angles, build_program
from scalp3d.placement import vertex_normals_of
from scalp3d.proximity import SurfaceQuery
from scalp3d.surface import load_head
from scalp3d.types import Head
from scalp3d.verify import Skin, needle_axis, verify_program

from helpers import default_motion

SETTINGS = default_motion()
PLAN = "seed = 1\n"
PLAN_SHA = plan_checksum(PLAN)
BLOCK = re.compile(r"\(dot (\d+) [^)]*\)\nG0[^\n]*\nG1[^\n]*\nG4[^\n]*\nG0[^\n]*\n")


def _sphere_head(radius):
    import trimesh

    s = trimesh.creation.icosphere(4, radius=radius)
    v, f = np.asarray(s.vertices), np.asarray(s.faces, dtype=np.int64)
    return Head(v, f, vertex_normals_of(v, f))


def _program(head, surface, dirs, ids=None, depth=0.6):
    """A session on ``head`` with one dot where each direction (k,3) from the centre meets the skin."""
    d = np.asarray(dirs, dtype=np.float64)
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    q, n, _ = surface.closest(d * np.linalg.norm(head.vertices, axis=1).max())
    k = len(q)
    ids = np.arange(100, 100 + k) if ids is None else np.asarray(ids)
    visits = Visits.from_labels(1, ids, q, n, np.full(k, depth), ["core"] * k, ["0603-1RL"] * k, ["light"] * k)
    return build_program(visits, surface, SETTINGS, Machine())


@pytest.fixture(scope="module")
def case():
    head = _sphere_head(80.0)
    surface = SurfaceQuery(head)
    t = np.linspace(-0.25, 0.25, 6)
    dirs = np.array([[a, b, 1.0] for a in t for b in t])
    prog = _program(head, surface, dirs)
    return head, surface, prog


def _text(prog, head):
    return gcode_text(prog, n_sessions=1, plan_sha=PLAN_SHA, head_sha=head_checksum(head.vertices))


def _json(prog, head):
    return session_dict(prog, n_sessions=1, plan_sha=PLAN_SHA, head_sha=head_checksum(head.vertices))


def _check(tmp_path, text, head, **kw):
    p = tmp_path / "session-1.ngc"
    p.write_text(text)
    return verify_program(p, head, **kw)


def _has(rep, *words):
    return any(all(w in v for w in words) for v in rep.violations)


# --- the untouched program ---------------------------------------------------------------------------------------

def test_untouched_program_alone_verifies(case, tmp_path):
    head, _, prog = case
    rep = _check(tmp_path, _text(prog, head), head)
    assert rep.ok, rep.violations[:3]
    assert rep.plunges == len(prog)


def test_untouched_program_with_its_json_verifies(case, tmp_path):
    head, _, prog = case
    rep = _check(tmp_path, _text(prog, head), head, session_json=_json(prog, head), plan_sha=PLAN_SHA)
    assert rep.ok, rep.violations[:3]


def test_header_states_what_the_program_holds(case):
    head, _, prog = case
    text = _text(prog, head)
    header = text[:text.index("G21")]
    assert f"(head sha256 {head_checksum(head.vertices)};" in header
    assert f"(plan sha256 {PLAN_SHA})" in header
    assert re.search(rf"^\(dots {len(prog)}; ids sha256 [0-9a-f]{{16}}; tips sha256 [0-9a-f]{{16}};", header, re.M)
    assert (f"(spacing floor {config.SPACING_FLOOR_FRACTION:g} of the local spacing, never under "
            f"{config.SPACING_FLOOR_MIN_MM:g} mm)") in header
    for line in text.splitlines():  # rs274: comments never nest
        assert line.count("(") == line.count(")") <= 1


# --- tampering the lone program ----------------------------------------------------------------------------------

def test_refuses_a_deleted_plunge_line(case, tmp_path):
    head, _, prog = case
    text = re.sub(r"^G1 [^\n]*\n", "", _text(prog, head), count=1, flags=re.M)
    rep = _check(tmp_path, text, head)
    assert not rep.ok
    assert _has(rep, f"dot {prog.ids[0]} has a comment but no plunge")
    assert _has(rep, "the header states")


def test_refuses_a_deleted_dot(case, tmp_path):
    head, _, prog = case
    text = _text(prog, head)
    m = list(BLOCK.finditer(text))[5]
    rep = _check(tmp_path, text[:m.start()] + text[m.end():], head)
    assert _has(rep, f"states {len(prog)} dots; the program plunges {len(prog) - 1}")
    assert _has(rep, "ids sha256")


def test_refuses_a_dwell_off_depth(case, tmp_path):
    head, _, prog = case
    # the dwell moved after the retract: the needle waits at the approach point, not at depth
    text = re.sub(r"^(G1 [^\n]*\n)(G4 [^\n]*\n)(G0 [^\n]*\n)", r"\1\3\2", _text(prog, head), count=1, flags=re.M)
    rep = _check(tmp_path, text, head)
    assert _has(rep, "a dwell (G4) not at depth")
    assert _has(rep, f"dot {prog.ids[0]}: no dwell (G4) at depth after the plunge")


def test_refuses_a_tip_not_at_its_stated_depth(case, tmp_path):
    head, _, prog = case
    text = _text(prog, head)
    m = re.search(r"^G1 X(\S+) Y(\S+) Z(\S+) ", text, flags=re.M)
    tip = np.array([float(m.group(i)) for i in (1, 2, 3)]) - 0.9 * prog.normals[0]  # 1.5 mm deep, within 0.2-2
    new = "G1 X%.4f Y%.4f Z%.4f " % tuple(tip)
    rep = _check(tmp_path, text[:m.start()] + new + text[m.end():], head)
    assert _has(rep, f"dot {prog.ids[0]}: the tip ends 1.50 mm below the skin, its comment says depth 0.600")
    assert _has(rep, "plunge tips' sha256")


def test_refuses_a_dot_plunged_twice(case, tmp_path):
    head, _, prog = case
    text = _text(prog, head)
    m = BLOCK.search(text)
    rep = _check(tmp_path, text[:m.end()] + m.group(0) + text[m.end():], head)
    assert _has(rep, f"dot {prog.ids[0]} is plunged 2 times")
    assert _has(rep, "the header states")


@pytest.mark.parametrize("field", ["count", "ids", "tips"])
def test_refuses_a_tampered_header(case, tmp_path, field):
    head, _, prog = case
    text = _text(prog, head)
    m = re.search(r"^\(dots (\d+); ids sha256 ([0-9a-f]{16}); tips sha256 ([0-9a-f]{16});", text, flags=re.M)
    k = {"count": 1, "ids": 2, "tips": 3}[field]
    old = m.group(k)
    new = str(int(old) + 1) if field == "count" else ("0" if old[0] != "0" else "1") + old[1:]
    line = m.group(0)[:m.start(k) - m.start()] + new + m.group(0)[m.end(k) - m.start():]
    rep = _check(tmp_path, text[:m.start()] + line + text[m.end():], head)
    assert not rep.ok and rep.fatal is None
    assert _has(rep, {"count": "the header states", "ids": "ids sha256", "tips": "tips' sha256"}[field])


@pytest.mark.parametrize("line", ["head sha256", "dots ", "plan sha256", "spacing floor"])
def test_refuses_a_missing_or_garbled_header(case, tmp_path, line):
    head, _, prog = case
    text = _text(prog, head)
    gone = re.sub(rf"^\({line}[^\n]*\n", "", text, count=1, flags=re.M)
    rep = _check(tmp_path, gone, head)
    assert rep.violations == [rep.fatal] and "the header has no" in rep.fatal
    garbled = re.sub(rf"^\(({line}[^\n]*)\)\n", r"(\1\n", text, count=1, flags=re.M)
    assert not _check(tmp_path, garbled, head).ok


def test_refuses_two_plunges_closer_than_the_floor(case, tmp_path):
    head, surface, _ = case
    t = np.linspace(-0.25, 0.25, 4)
    dirs = [[a, b, 1.0] for a in t for b in t]
    dirs.append([t[1] + 0.2 / 80.0, t[1], 1.0])  # about 0.2 mm from the dot at (t1, t1)
    prog = _program(head, surface, dirs)
    rep = _check(tmp_path, _text(prog, head), head)
    assert rep.violations and all("under the spacing floor of 0.4 mm" in v for v in rep.violations)
    a, b = re.search(r"dots (\d+) and (\d+)", rep.violations[0]).groups()
    assert {int(a), int(b)} == {int(prog.ids[-1]), 105}


def test_refuses_another_head_in_one_line(case, tmp_path):
    head, _, prog = case
    other = _sphere_head(81.0)
    rep = _check(tmp_path, _text(prog, head), other)
    mine, theirs = head_checksum(head.vertices), head_checksum(other.vertices)
    assert rep.violations == [rep.fatal]
    assert f"made for head sha {mine}, this head is {theirs}" in rep.fatal
    assert len(rep.verdict().splitlines()) == 1


def test_refuses_a_json_of_another_program(case, tmp_path):
    head, _, prog = case
    js = _json(prog, head)
    tips = js["tips_sha256"]
    js["tips_sha256"] = "0" * 16
    rep = _check(tmp_path, _text(prog, head), head, session_json=js)
    assert rep.violations == [f"session JSON: 'tips_sha256' is '{'0' * 16}', the program's header states "
                              f"'{tips}': not this program's JSON"]


# --- the command line: the .ngc alone, the head, the plan.toml beside it -----------------------------------------

@pytest.fixture()
def folder(case, tmp_path):
    head, _, prog = case
    write_head_ply(head, tmp_path / "head.ply")
    (tmp_path / "session-1.ngc").write_text(_text(prog, head))
    (tmp_path / "plan.toml").write_text(PLAN)
    return tmp_path


def _cli(capsys, *args):
    code = cli.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out.strip().splitlines(), err.strip().splitlines()


def test_cli_program_alone_verifies(folder, capsys):
    code, out, _ = _cli(capsys, "verify", folder / "session-1.ngc", "--head", folder / "head.ply")
    assert code == 0 and len(out) == 1 and "OK" in out[0]


def test_cli_refuses_a_stale_program_from_another_plan(folder, capsys):
    (folder / "plan.toml").write_text("seed = 2\n")  # re-planned; session-1.ngc is left from the old plan
    code, out, _ = _cli(capsys, "verify", folder / "session-1.ngc", "--head", folder / "head.ply")
    assert code == 1
    assert out == [f"{folder / 'session-1.ngc'}: REFUSED: made for plan sha {PLAN_SHA}, the plan.toml beside it is "
                   f"{plan_checksum('seed = 2' + chr(10))}: a program left from another plan; re-export or delete it"]


def test_cli_refuses_another_head_in_one_line(folder, capsys):
    write_head_ply(_sphere_head(81.0), folder / "other.ply")
    code, out, _ = _cli(capsys, "verify", folder / "session-1.ngc", "--head", folder / "other.ply")
    assert code == 1 and len(out) == 1
    assert re.search(r"REFUSED: made for head sha [0-9a-f]{16}, this head is [0-9a-f]{16}", out[0])


def test_cli_bad_inputs_exit_2(folder, capsys):
    code, _, err = _cli(capsys, "verify", folder / "session-1.ngc", "--head", folder / "nope.ply")
    assert code == 2 and len(err) == 1 and "nope.ply" in err[0]
    code, _, err = _cli(capsys, "verify", folder / "nope.ngc", "--head", folder / "head.ply")
    assert code == 2 and len(err) == 1 and "program not found" in err[0]
    (folder / "bin.ngc").write_bytes(b"\xff\xfe\x00G1")
    code, _, err = _cli(capsys, "verify", folder / "bin.ngc", "--head", folder / "head.ply")
    assert code == 2 and len(err) == 1 and "not a text G-code file" in err[0]
    (folder / "session-1.json").write_text("{not json")
    code, _, err = _cli(capsys, "verify", folder / "session-1.ngc", "--head", folder / "head.ply")
    assert code == 2 and len(err) == 1 and "session-1.json" in err[0]


def test_head_checksum_survives_head_ply(case, tmp_path):
    head = case[0]
    moved = Head(head.vertices * 1.0000001 + 0.123456789, head.faces, head.vertex_normals)
    write_head_ply(moved, tmp_path / "head.ply")
    back = load_head(tmp_path / "head.ply")
    assert not np.array_equal(back.vertices, moved.vertices)  # float32 in the file
    assert head_checksum(back.vertices) == head_checksum(moved.vertices)


# --- independence from the planner -------------------------------------------------------------------------------

def test_the_verifier_imports_no_planner_geometry():
    tree = ast.parse(Path(verify_mod.__file__).read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            names.add(node.module or "")
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
    assert not names & {"proximity", "needle", "placement", "scalp3d.proximity", "scalp3d.needle",
                        "SurfaceQuery", "axis_from_angles", "axis_angles_deg", "vertex_normals_of"}


def test_ab_reading_agrees_with_the_planner_on_random_angles():
    rng = np.random.default_rng(11)
    ab = np.column_stack([rng.uniform(-180, 180, 500), rng.uniform(-180, 180, 500)])
    assert np.allclose(needle_axis(ab), axis_from_angles(ab), atol=1e-12)
    n = rng.normal(size=(500, 3))
    n /= np.linalg.norm(n, axis=1, keepdims=True)
    assert np.allclose(needle_axis(axis_angles_deg(n)), n, atol=1e-12)
    from scipy.spatial.transform import Rotation

    third = Rotation.from_euler("YX", ab[:, ::-1], degrees=True).apply([0.0, 0.0, 1.0])  # intrinsic: Ry(B) Rx(A)
    assert np.allclose(needle_axis(ab), third, atol=1e-12)


def test_own_skin_query_agrees_with_the_planners(case):
    head, surface, _ = case
    rng = np.random.default_rng(5)
    d = rng.normal(size=(300, 3))
    p = d / np.linalg.norm(d, axis=1, keepdims=True) * rng.uniform(70, 90, (300, 1))
    skin = Skin(head.vertices, head.faces)
    q, n, side = skin.closest(p)
    q2, n2, _ = surface.closest(p)
    assert np.abs(np.linalg.norm(p - q, axis=1) - np.linalg.norm(p - q2, axis=1)).max() < 1e-4
    assert np.degrees(np.arccos(np.clip((n * n2).sum(axis=1), -1, 1))).max() < 1.0
    assert ((side < 0) == (np.linalg.norm(p, axis=1) < np.linalg.norm(q, axis=1))).all()


def test_cli_damaged_session_json_exit_2(folder, capsys):
    (folder / "session-1.json").write_text('{"dots": [{"id": 1, "skin_mm": [0, 0]}]}')
    code, _, err = _cli(capsys, "verify", folder / "session-1.ngc", "--head", folder / "head.ply")
    assert code == 2 and len(err) == 1 and "dot number 1" in err[0]


def test_the_fast_reading_of_the_usual_lines_reads_what_the_general_one_does(case, tmp_path):
    """The reader takes scalp3d's own G0/G1/G4 dot lines on a fast path; the same program with every code line
    written a little differently (a trailing space: the general reading) must read the same, move for move, in mm
    and in inches (G20), with and without the A B words."""
    head, _surface, prog = case
    text = _text(prog, head)
    three_axis = re.sub(r" A[-+0-9.]+ B[-+0-9.]+", "", text)
    inches = text.replace("G21 ", "G20 ", 1)
    for body in (text, three_axis, inches):
        general = "\n".join(ln + " " if ln[:1] == "G" else ln for ln in body.splitlines())
        (tmp_path / "fast.ngc").write_text(body)
        (tmp_path / "general.ngc").write_text(general)
        fast, slow = verify_mod.read_program(tmp_path / "fast.ngc"), verify_mod.read_program(tmp_path / "general.ngc")
        assert len(fast.moves) == len(slow.moves) > 100
        for m, n in zip(fast.moves, slow.moves):
            assert (m.kind, m.dot, m.line, m.dwell_s, m.words, m.note) == (n.kind, n.dot, n.line, n.dwell_s, n.words,
                                                                           n.note)
            assert np.array_equal(m.xyz, n.xyz, equal_nan=True) and np.array_equal(m.ab, n.ab)
        assert [(a.id, a.line, a.depth_mm) for a in fast.notes] == [(a.id, a.line, a.depth_mm) for a in slow.notes]


def test_the_verifiers_proven_clear_segments_decide_as_sampled_ones():
    """The verifier's own segment check: with the limit given, segments proven clear by their end distances are not
    sampled inside, and every segment is judged under or over the limit exactly as when sampled."""
    head = _sphere_head(50.0)
    skin = Skin(head.vertices, head.faces)
    rng = np.random.default_rng(11)
    a = rng.normal(size=(2000, 3))
    a /= np.linalg.norm(a, axis=1, keepdims=True)
    b = a * 50.0 + rng.normal(size=(2000, 3)) * 1.5
    b = b / np.linalg.norm(b, axis=1, keepdims=True) * (50.0 + rng.uniform(-0.5, 4.0, (2000, 1)))
    a = a * (50.0 + rng.uniform(1.0, 4.0, (2000, 1)))
    b[:100] = -a[:100]
    for limit in (0.5, 1.499):
        sampled = skin.segments_min_distance(a, b, limit * 0.5)
        fast = skin.segments_min_distance(a, b, limit * 0.5, below_mm=limit)
        assert np.array_equal(fast < limit, sampled < limit)
        proven = fast != sampled
        assert 0 < proven.sum() < len(a)
        assert (fast[proven] >= limit).all()
        assert (skin.segments_min_distance(a[proven], b[proven], 0.005) >= limit).all()
