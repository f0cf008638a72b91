"""Tours, machine profiles (registration, 3-axis, inches, limits), chunks and resumes, checked by the verifier and
LinuxCNC's interpreter."""
import re
import shutil
import subprocess

import numpy as np
import pytest

from scalp3d import kernels as K
from scalp3d.errors import InputError, PlanError, SafetyError
from scalp3d.export import gcode_text, session_dict
from scalp3d.machine import Machine, load_machine, rigid_transform
from scalp3d.needle import order_dots, plan_session, resume_program, split_program
from scalp3d.placement import place_dots, vertex_normals_of
from scalp3d.proximity import SurfaceQuery
from scalp3d.types import Head
from scalp3d.verify import verify_program

from helpers import default_motion, with_settings
from shapes import ellipsoid_cap

SETTINGS = default_motion()
RS274 = shutil.which("rs274")
#: the head checksum the programs claim and are verified against (the head's identity is tested in test_verify.py)
H = "0123456789abcdef"


@pytest.fixture(scope="module")
def cap():
    v, f = ellipsoid_cap(40)
    head = Head(v, f, vertex_normals_of(v, f))
    dens = np.where(v[:, 2] > 30, 40.0, 0.0)
    dots = place_dots(v, f, density_per_cm2=dens, seed=1, vertex_normals=head.vertex_normals, sessions=(0.5, 1.0))
    dots = with_settings(dots, zone=(dots.positions[:, 1] > 0), zone_names=("crown", "hairline"))
    return head, dots


def two_nn_bound(p):
    nb = K.knn_lists(np.ascontiguousarray(p), 2, 2.0)
    return 0.5 * (np.linalg.norm(p - p[nb[:, 0]], axis=1) + np.linalg.norm(p - p[nb[:, 1]], axis=1)).sum()


def test_tour_is_short(cap):
    _, dots = cap
    p = np.ascontiguousarray(dots.positions)
    o = order_dots(p)
    assert np.array_equal(np.sort(o), np.arange(len(p)))
    nn = K.nearest_neighbour_tour(p, 0, 2.0)
    ours = K.path_length(p, o)
    assert ours < 0.9 * K.path_length(p, nn)
    assert ours < 1.10 * two_nn_bound(p)


def test_two_opt_against_brute_force_on_tiny_sets():
    import itertools

    rng = np.random.default_rng(3)
    for _ in range(5):
        p = rng.random((7, 3)) * 10
        best = min(K.path_length(p, np.array(perm)) for perm in itertools.permutations(range(7)))
        o = K.two_opt_or_opt(p, K.nearest_neighbour_tour(p, 0, 3.0), K.knn_lists(p, 6, 3.0), 1000)
        assert sorted(o) == list(range(7))
        assert K.path_length(p, o) <= 1.15 * best


def test_zone_order(cap):
    _, dots = cap
    zone = np.where(dots.zone == 1, "hairline", "crown")
    o = order_dots(dots.positions, zone, ["hairline"])
    z = zone[o]
    first_crown = np.argmax(z == "crown")
    assert (z[:first_crown] == "hairline").all() and (z[first_crown:] == "crown").all()


def _prog(cap, machine=None):
    head, dots = cap
    machine = machine or Machine()
    surface = SurfaceQuery(machine.head_in_machine_frame(head))
    return plan_session(dots, 1, surface, SETTINGS, machine), surface


def _check_written(prog, surface, tmp_path, name="p.ngc", rs274=True):
    path = tmp_path / name
    path.write_text(gcode_text(prog, n_sessions=2, plan_sha="x", head_sha=H))
    rep = verify_program(path, surface, session_json=session_dict(prog, n_sessions=2, plan_sha="x", head_sha=H),
                         machine=prog.machine, head_sha=H)
    assert rep.ok, rep.violations[:3]
    if rs274 and RS274:
        res = subprocess.run([RS274, "-g", str(path), str(tmp_path / "canon.txt")], capture_output=True, text=True,
                             timeout=120)
        assert res.returncode == 0, res.stdout[-300:]
        feeds = re.findall(r"STRAIGHT_FEED\(([^)]*)\)", (tmp_path / "canon.txt").read_text())
        got = np.array([[float(x) for x in f.split(",")[:3]] for f in feeds])
        scale = 25.4 if prog.machine.units == "in" else 1.0
        assert np.abs(got * scale - prog.tips).max() < 0.01 * (3 if scale > 1 else 1)
    return path.read_text()


def test_registration_moves_the_program(cap, tmp_path):
    head, _ = cap
    # a known rigid motion: the head sits rotated and shifted on the machine
    ang = np.radians(30)
    R = np.array([[np.cos(ang), -np.sin(ang), 0], [np.sin(ang), np.cos(ang), 0], [0, 0, 1]])
    t = np.array([200.0, -50.0, 300.0])
    scan_pts = head.vertices[[0, 500, 1500, 3000]]
    mach_pts = scan_pts @ R.T + t + np.random.default_rng(0).normal(0, 0.05, (4, 3))  # touched with 0.05 mm error
    toml = tmp_path / "m.toml"
    toml.write_text("name = \"bench\"\naxes = \"xyzab\"\n[registration]\n"
                    f"scan_mm = {scan_pts.tolist()}\nmachine_mm = {mach_pts.tolist()}\n")
    m = load_machine(toml)
    assert m.registration_rms_mm < 0.2
    prog, surface = _prog(cap, m)
    prog0, _ = _prog(cap)
    # dot by dot (the tour may visit them in another order in another frame: near-ties of a heuristic)
    same_ids = np.argsort(prog.ids), np.argsort(prog0.ids)
    assert np.array_equal(prog.ids[same_ids[0]], prog0.ids[same_ids[1]])
    assert np.allclose(prog.tips[same_ids[0]], prog0.tips[same_ids[1]] @ R.T + t, atol=0.3)
    _check_written(prog, surface, tmp_path)


def test_bad_registration_and_profiles(tmp_path):
    p = tmp_path / "m.toml"
    pts = [[0, 0, 0], [100, 0, 0], [0, 100, 0]]
    p.write_text(f"[registration]\nscan_mm = {pts}\nmachine_mm = {[[0, 0, 0], [100, 0, 0], [0, 130, 0]]}\n")
    with pytest.raises(PlanError, match=r"disagree by .*\(point 3 is"):
        load_machine(p)
    p.write_text(f"[registration]\nscan_mm = {pts[:2]}\nmachine_mm = {pts[:2]}\n")
    with pytest.raises(PlanError, match="three or more"):
        load_machine(p)
    p.write_text("axes = \"xyzabc\"\n")
    with pytest.raises(PlanError, match="'axes' must be"):
        load_machine(p)
    p.write_text("[limits]\ndepht_mm = [0.2, 1.0]\n")
    with pytest.raises(PlanError, match="did you mean 'limits.depth_mm'"):
        load_machine(p)
    with pytest.raises(PlanError, match="generic-3axis, generic-5axis"):
        load_machine("no-such-machine")


def test_rigid_transform_exact():
    rng = np.random.default_rng(2)
    src = rng.random((6, 3)) * 100
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    q *= np.sign(np.linalg.det(q))
    T, rms, _ = rigid_transform(src, src @ q.T + [1, 2, 3])
    assert rms < 1e-9 and np.allclose(T[:3, :3], q)


def test_three_axis_program(cap, tmp_path):
    prog, surface = _prog(cap, load_machine("generic-3axis"))
    text = _check_written(prog, surface, tmp_path)
    assert not re.search(r"^G[01] .*[AB]-?\d", text, flags=re.M)
    assert re.search(r"\(dot \d+ \w+ 0603-1RL depth 0.600 axis -?\d\.\d{6} -?\d\.\d{6} -?\d\.\d{6}\)", text)


def test_inch_machine(cap, tmp_path):
    m = load_machine("generic-5axis")
    m.units = "in"
    prog, surface = _prog(cap, m)
    text = _check_written(prog, surface, tmp_path)
    assert "G20 G90" in text


def test_limits_refuse(cap):
    m = Machine(a_range_deg=(-10.0, 10.0))
    with pytest.raises(SafetyError, match="needs A = .* allows -10 to 10"):
        _prog(cap, m)
    m = Machine(cartridges={"0803-1RL": 0.25})
    with pytest.raises(SafetyError, match="needle '0603-1RL' is not among"):
        _prog(cap, m)


def test_chunks_and_resume(cap, tmp_path):
    prog, surface = _prog(cap)
    parts = split_program(prog, surface, chunk_dots=300)
    assert [len(p) for p in parts[:-1]] == [300] * (len(parts) - 1)
    assert np.array_equal(np.concatenate([p.ids for p in parts]), prog.ids)
    for j, part in enumerate(parts[:2]):
        _check_written(part, surface, tmp_path, f"part{j}.ngc")
    by_time = split_program(prog, surface, chunk_minutes=1.0)
    assert len(by_time) > 1 and all(p.estimated_time_s <= 60.0 + 5.0 for p in by_time[:-1])
    rest = resume_program(prog, surface, prog.ids[123])
    assert np.array_equal(rest.ids, prog.ids[123:])
    _check_written(rest, surface, tmp_path, "rest.ngc")
    with pytest.raises(InputError, match="is not in session"):
        resume_program(prog, surface, 10 ** 9)


def test_cartridge_and_pigment_changes_pause(cap, tmp_path):
    """Zones with their own needle or shade: each (needle, shade) block is toured once, with an M0 pause between."""
    head, dots = cap
    machine = Machine()
    surface = SurfaceQuery(machine.head_in_machine_frame(head))
    m = dots.session == 1
    d = dots.subset(m)
    halves = d.positions[:, 0] > np.median(d.positions[:, 0])  # two halves
    shades = d.positions[:, 1] > np.median(d.positions[:, 1])  # light, medium
    d = with_settings(d, zone=halves, needle=halves, shade=shades, zone_names=("crown", "hairline"),
                      needle_names=("0603-1RL", "0803-1RL"), shade_names=("light", "medium"))
    prog = plan_session(d, 1, surface, SETTINGS, machine)
    pairs = list(zip(prog.needle, prog.shade))
    changes = sum(1 for a, b in zip(pairs, pairs[1:]) if a != b)
    assert changes == 3  # four blocks, each toured in one go
    text = _check_written(prog, surface, tmp_path)
    assert text.count("M0\n") == 3 and text.count("(change: cartridge") == 3
    assert "(load cartridge" in text
    js = session_dict(prog, n_sessions=2, plan_sha="x", head_sha=H)
    assert [x["shade"] for x in js["dots"]] == [prog.shade_of(k) for k in range(len(prog))]
    # a split part keeps each dot's shade
    from scalp3d.needle import split_program

    parts = split_program(prog, surface, chunk_dots=len(prog) // 2 + 1)
    assert np.array_equal(np.concatenate([p.shade for p in parts]), prog.shade)
