"""Issue 11: the spacing floor on every plan, a plan refused rather than hoped for, the quality bars, outputs never
stale or clobbered, files with the user's umask, the example plans doing what they say."""
import json
import os
import stat
from importlib import resources

import numpy as np
import pytest

from scalp3d import config
from scalp3d.cli import main
from scalp3d.design import ZONES, build_field, load_plan
from scalp3d.geodesic import HeadGeodesics
from scalp3d.kernels.multiclass import floor_offenders
from scalp3d.landmarks import resolve_landmarks
from scalp3d.placement import local_spacing_mm, place_dots, spacing_for_density
from scalp3d.quality import placement_quality
from scalp3d.sample import load_sample_head
from scalp3d.spacing import check_floor, close_pairs, floor_mm

EXAMPLES = sorted(p.name for p in resources.files("scalp3d.plans").iterdir() if p.name.endswith(".toml"))
NOTHING_ELSE = "".join(f"[zones.{z}]\ndensity_per_cm2 = 0.0\n" for z in ("hairline", "front", "mid", "crown", "sides",
                                                                        "back"))
MOLE = [23.5, -21.1, 94.4]  # on the sample head's crown
STRIP = [[-48.7, -102.8, -0.9], [-23.5, -117.4, 0.4], [1.2, -122.4, 0.9], [23.7, -119.3, -0.7], [48.5, -106.2, -1.3]]


@pytest.fixture(scope="module")
def sample():
    _, head, fid = load_sample_head()
    return head, resolve_landmarks(head, fid, "fiducials"), HeadGeodesics(head.vertices, head.faces)


def planned(sample, tmp_path, text=None, name=None, seed=0, fixed=None):
    """Field and dots of a plan (TOML text or a shipped example) on the sample head, with each dot's local spacing."""
    head, lm, g = sample
    if name is not None:
        plan = load_plan(resources.files("scalp3d.plans") / name, {"seed": seed})
    else:
        path = tmp_path / "plan.toml"
        path.write_text(text)
        plan = load_plan(path, {"seed": seed})
    field = build_field(head, lm, plan, geodesic=g)
    fr = plan.sessions.fractions
    dots = place_dots(head.vertices, head.faces, density_per_cm2=field.density_per_cm2, sessions=fr, seed=seed,
                      vertex_normals=head.vertex_normals, fixed=fixed)
    dens = (dots.bary * field.density_per_cm2[head.faces[dots.face_ids]]).sum(axis=1)
    return field, dots, local_spacing_mm(dens, field.density_per_cm2.max()), fr


def assert_floor_holds(dots, spacing, fr, extra=None):
    breaches = check_floor(dots.positions, spacing, dots.session, fr)
    assert not breaches, [(b.scope, b.dist[:5], b.floor[:5]) for b in breaches]
    nn = np.sort(np.linalg.norm(dots.positions[:, None] - dots.positions[None], axis=2), axis=1)[:, 1] \
        if len(dots) < 3000 else None
    if nn is not None:  # brute force, independent of any tree
        assert nn.min() >= config.SPACING_FLOOR_MIN_MM


# --- the floor itself ---------------------------------------------------------------------------------------------

def test_floor_definition():
    assert floor_mm(1.07, 3.0) == pytest.approx(0.535)  # half the smaller spacing
    assert floor_mm(0.5, 0.5) == config.SPACING_FLOOR_MIN_MM  # never under the minimum
    # a margin feathered to zero: the spacing is taken at no less than a tenth of the peak density
    assert local_spacing_mm(0.01, 80.0) == pytest.approx(spacing_for_density(8.0))
    assert local_spacing_mm(80.0, 80.0) == pytest.approx(spacing_for_density(80.0))


def test_close_pairs_match_brute_force():
    rng = np.random.default_rng(4)
    p = rng.random((600, 3)) * [30, 30, 0.5]
    sp = 0.8 + rng.random(600) * 2.0
    i, j, d, fl = close_pairs(p, sp)
    dist = np.linalg.norm(p[:, None] - p[None], axis=2)
    want = dist < floor_mm(sp[:, None], sp[None])
    want = {(a, b) for a, b in zip(*np.nonzero(np.triu(want, 1)))}
    assert {(a, b) for a, b in zip(i.tolist(), j.tolist())} == want and len(want) > 10
    assert np.all(np.diff(d) >= 0) and np.allclose(fl, floor_mm(sp[i], sp[j]))


def test_floor_offenders_match_brute_force():
    rng = np.random.default_rng(5)
    old = rng.random((300, 3)) * [12, 12, 0]
    new = old + rng.normal(0, 0.3, old.shape) * [1, 1, 0]
    moved = rng.random(300) < 0.7
    new[~moved] = old[~moved]
    cls = rng.integers(0, 3, 300)
    radius = 1.0 + rng.random(300)
    fscale = np.array([[1.0, 1.0, 1.0], [1.0, 2.0, 1.0], [1.0, 1.0, 1.0]])
    dn = np.linalg.norm(new[:, None] - new[None], axis=2)
    do = np.linalg.norm(old[:, None] - old[None], axis=2)
    ptr = np.arange(0, 300 * 299 + 1, 299, dtype=np.int64)  # everyone lists everyone
    idx = np.array([j for i in range(300) for j in range(300) if j != i], dtype=np.int64)
    got = floor_offenders(old, new, moved, cls, radius, fscale, 0.5, 0.4, ptr, idx)
    fl = np.maximum(0.5 * np.minimum(radius[:, None], radius[None]) * fscale[cls[:, None], cls[None]], 0.4)
    bad = (dn < fl) & (dn < do)
    np.fill_diagonal(bad, False)
    want = moved & bad.any(axis=1)
    assert np.array_equal(got, want) and want.sum() > 5


# --- the engine keeps it on every kind of plan ----------------------------------------------------------------------

@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fut_scar_ends_keep_the_floor(sample, tmp_path, seed):
    """The shipped FUT plan put dots 0.11-0.39 mm apart at the ends of the strip (the joint relaxation's runaway in
    the feathered margin); every pair now keeps its floor, on the union and each session alone."""
    _, dots, spacing, fr = planned(sample, tmp_path, name="fut-scar.toml", seed=seed)
    assert_floor_holds(dots, spacing, fr)


CASES = {
    "thin-bent-strip": f"{NOTHING_ELSE}[[scars]]\npolyline_mm = {STRIP[:3] + [[10.0, -118.0, 25.0]]}\nwidth_mm = 0.3\n"
                       "density_per_cm2 = 100.0\nmargin_mm = 3.0\n",
    "no-margin-strip": f"{NOTHING_ELSE}[[scars]]\npolyline_mm = {STRIP}\nwidth_mm = 1.0\ndensity_per_cm2 = 120.0\n"
                       "margin_mm = 0.0\n",
    "fue-cluster": f"{NOTHING_ELSE}[[scars]]\npoints_mm = "
                   + str([[MOLE[0] + 3.0 * a, MOLE[1] + 3.0 * b, MOLE[2]] for a in range(-2, 2) for b in range(-1, 2)])
                   + "\nwidth_mm = 1.0\ndensity_per_cm2 = 100.0\nmargin_mm = 2.0\n",
    "a-few-dozen-dots": f"{NOTHING_ELSE}[[scars]]\npoints_mm = [{MOLE}]\nwidth_mm = 6.0\ndensity_per_cm2 = 60.0\n"
                        "margin_mm = 1.0\n",
    "steps-between-zones": "[density]\ncore_per_cm2 = 100.0\n[zones.crown]\ndensity_per_cm2 = 160.0\n"
                           "[zones.mid]\ndensity_per_cm2 = 10.0\n" + "".join(
                               f"[zones.{z}]\ndensity_per_cm2 = 0.0\n" for z in ("hairline", "front", "sides", "back")),
    "reserved-in-the-band": "[hairline]\nheight_above_glabella_mm = 90.0\n[[reserved]]\ncenter_mm = CENTRE\n"
                            "radius_mm = 4.0\n" + "".join(f"[zones.{z}]\ndensity_per_cm2 = 0.0\n"
                                                          for z in ("mid", "crown", "sides", "back")),
    "density-mode-feather": "mode = \"density\"\n[density]\ncore_per_cm2 = 60.0\n[sessions]\nfractions = [0.2, 0.5, "
                            "0.8, 1.0]\nshades = [\"light\", \"light\", \"medium\", \"dark\"]\n" + "".join(
                                f"[zones.{z}]\ndensity_per_cm2 = 0.0\n" for z in ("mid", "sides", "back")),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_floor_holds_off_the_happy_path(sample, tmp_path, case):
    text = CASES[case]
    if "CENTRE" in text:  # a reserved region inside the transition band, at the midline
        head, lm, g = sample
        f = build_field(head, lm, load_plan(overrides={"hairline": {"height_above_glabella_mm": 90.0}}), geodesic=g)
        band = np.flatnonzero((f.zone == ZONES.index("hairline")) & (f.density_per_cm2 > 50)
                              & (f.density_per_cm2 < 70) & (np.abs(head.vertices[:, 0]) < 5))
        text = text.replace("CENTRE", str(head.vertices[band[0]].round(2).tolist()))
    field, dots, spacing, fr = planned(sample, tmp_path, text)
    assert len(dots) > 0
    if case == "a-few-dozen-dots":
        assert 12 <= len(dots) <= 100
    assert_floor_holds(dots, spacing, fr)


def test_floor_holds_around_fixed_dots(sample, tmp_path):
    """New dots around dots already tattooed (a later plan): new-new and new-old pairs keep the floor."""
    _, old, _, _ = planned(sample, tmp_path, name="crown-only.toml", seed=3)
    old_pos = old.positions[old.session == 1]
    field, new, spacing, fr = planned(sample, tmp_path, name="crown-only.toml", seed=4, fixed=old_pos)
    assert_floor_holds(new, spacing, fr)
    from scipy.spatial import cKDTree

    d, k = cKDTree(old_pos).query(new.positions)
    assert np.all(d >= floor_mm(spacing, spacing))


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_plan_keeps_the_floor_and_the_bars(sample, tmp_path, name):
    head = sample[0]
    field, dots, spacing, fr = planned(sample, tmp_path, name=name)
    assert_floor_holds(dots, spacing, fr)
    q = placement_quality(head, field, dots, fr, coverage_samples=20_000)
    assert len(dots) >= config.QUALITY_BAR_MIN_DOTS
    assert q["union"]["rho"] >= config.QUALITY_BAR_UNION_RHO, q["union"]
    assert min(s["rho"] for s in q["sessions"]) >= config.QUALITY_BAR_SESSION_RHO, q["sessions"]


def test_example_plans_do_what_they_say(sample):
    head, lm, g = sample
    fields = {n: build_field(head, lm, load_plan(resources.files("scalp3d.plans") / n), geodesic=g) for n in
              ("alopecia-areata.toml", "diffuse-thinning.toml")}
    for name, f in fields.items():  # evenly, no designed sparse hairline band
        inside = f.density_per_cm2 > 0
        assert not np.any(f.zone[inside] == ZONES.index("hairline")), name
    aa = fields["alopecia-areata.toml"]
    core = aa.density_per_cm2[aa.density_per_cm2 > 0]
    # the whole scalp at one density, but for the 10 mm feather at its edge (from half the core density)
    assert np.mean(core == 90.0) > 0.8 and core.min() >= 45.0 - 1e-9


# --- refuse, don't hope ---------------------------------------------------------------------------------------------

def test_a_plan_under_the_floor_is_refused_and_nothing_is_written(monkeypatch, tmp_path, capsys):
    """Dots under the floor (here forced: one dot moved 0.1 mm beside another) stop the run with exit 3 before any
    program is written, naming the dots, where they are and what to change; no folder is left behind."""
    import scalp3d.pipeline as pipeline

    real = pipeline.place_dots

    def too_close(*args, **kwargs):
        d = real(*args, **kwargs)
        d.positions[1] = d.positions[0] + 0.1 * np.cross(d.normals[0], [1.0, 0, 0]) / np.linalg.norm(
            np.cross(d.normals[0], [1.0, 0, 0]))
        return d

    monkeypatch.setattr(pipeline, "place_dots", too_close)
    plan = tmp_path / "scar.toml"
    plan.write_text((resources.files("scalp3d.plans") / "fut-scar.toml").read_text())
    rc = main(["demo", "--out", str(tmp_path / "out"), "--plan", str(plan), "--no-preview", "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 3 and len(err) == 1
    assert "refused" in err[0] and "dots 1 and 2 0.10 mm apart" in err[0] and "zone" in err[0]
    assert "lower the density" in err[0] and "nothing was written" in err[0]
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out*"))


def test_quality_warnings():
    from scalp3d.pipeline import quality_warnings

    q = {"union": {"rho": 0.6}, "sessions": [{"session": 1, "rho": 0.7}, {"session": 2, "rho": 0.5}]}
    w = quality_warnings(q, 500)
    assert len(w) == 2 and "all dots: rho 0.60" in w[0] and "session 2 alone: rho 0.50" in w[1]
    assert quality_warnings(q, 150) == []  # a few dozen dots have no meaningful rho
    assert quality_warnings({"union": {"rho": 0.8}, "sessions": [{"session": 1, "rho": 0.7}]}, 500) == []


# --- outputs never stale, never clobbered ---------------------------------------------------------------------------

def _crown_plan(tmp_path, fractions):
    p = tmp_path / f"crown-{len(fractions)}.toml"
    shades = ["light", "medium", "dark"][:len(fractions)]
    p.write_text(f"{NOTHING_ELSE.replace('[zones.crown]', '[zones.ignored]')}[density]\ncore_per_cm2 = 40.0\n"
                 .replace("[zones.ignored]\ndensity_per_cm2 = 0.0\n", "")
                 + f"[sessions]\nfractions = {fractions}\nshades = {json.dumps(shades)}\n")
    return p


def test_replan_leaves_exactly_the_new_plan(tmp_path, capsys):
    """A 2-session plan over a 3-session one: no session-3 left behind; with --overwrite the old plan is kept as
    DIR.previous-1; without it the run is refused and the plan untouched; a refused re-plan changes nothing."""
    out = tmp_path / "plan"
    three, two = _crown_plan(tmp_path, [0.3, 0.7, 1.0]), _crown_plan(tmp_path, [0.5, 1.0])
    assert main(["demo", "--out", str(out), "--plan", str(three), "--no-preview", "--quiet"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert "below_bars" in summary["quality"] and (out / "session-3.ngc").exists()
    # a plan of another scan (not the demo's own): needs --overwrite
    summary["scan"] = "someone.ply"
    (out / "summary.json").write_text(json.dumps(summary))
    before = sorted(p.name for p in out.iterdir())
    capsys.readouterr()
    assert main(["demo", "--out", str(out), "--plan", str(two), "--no-preview", "--quiet"]) == 2
    assert "--overwrite" in capsys.readouterr().err and sorted(p.name for p in out.iterdir()) == before
    assert main(["demo", "--out", str(out), "--plan", str(two), "--no-preview", "--quiet", "--overwrite"]) == 0
    names = {p.name for p in out.iterdir()}
    assert "session-2.ngc" in names and not any(n.startswith("session-3") for n in names)
    assert (tmp_path / "plan.previous-1" / "session-3.ngc").exists()
    # the demo replaces its own earlier demo (README), keeping nothing
    assert main(["demo", "--out", str(out), "--plan", str(three), "--no-preview", "--quiet"]) == 0
    assert (out / "session-3.ngc").exists() and not (tmp_path / "plan.previous-2").exists()
    assert not list(tmp_path.glob(".plan*"))  # no temporary folder left
    # a re-export in fewer chunks leaves none of the earlier chunks
    n1 = json.loads((out / "session-1.json").read_text())["count"]
    assert main(["export", str(out), "--session", "1", "--chunk-dots", str(n1 // 4 + 1)]) == 0
    assert (out / "session-1-chunks" / "session-1-part-4.ngc").exists()
    assert main(["export", str(out), "--session", "1", "--chunk-dots", str(n1 // 2 + 1)]) == 0
    assert sorted(p.name for p in (out / "session-1-chunks").glob("*.ngc")) == ["session-1-part-1.ngc",
                                                                              "session-1-part-2.ngc"]


def test_a_folder_of_other_files_is_refused(tmp_path, capsys):
    out = tmp_path / "photos"
    out.mkdir()
    (out / "patient.jpg").write_bytes(b"x")
    assert main(["demo", "--out", str(out), "--no-preview", "--quiet"]) == 2
    assert "other files" in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == ["patient.jpg"]


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_files_get_the_users_umask(tmp_path, umask):
    from scalp3d.fileio import staged_dir, write_text

    old = os.umask(umask)
    try:
        with staged_dir(tmp_path / "out", keep_previous=False) as stage:
            write_text(stage.path / "a.txt", "x")
        write_text(tmp_path / "b.txt", "y")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "out" / "a.txt").stat().st_mode) == 0o666 & ~umask
    assert stat.S_IMODE((tmp_path / "b.txt").stat().st_mode) == 0o666 & ~umask
    assert stat.S_IMODE((tmp_path / "out").stat().st_mode) == 0o777 & ~umask


def test_sample_refuses_to_clobber(tmp_path, capsys, monkeypatch):
    import trimesh

    mesh = tmp_path / "sphere.ply"
    trimesh.creation.icosphere(4, radius=40.0).export(mesh)  # any mesh: a given unit is taken as it is
    out = tmp_path / "dots.csv"
    out.write_text("id,x,y,z\n1,0,0,0\n")
    assert main(["sample", str(mesh), "--count", "500", "--units", "mm", "--out", str(out), "--quiet"]) == 2
    assert "--overwrite" in capsys.readouterr().err and out.read_text() == "id,x,y,z\n1,0,0,0\n"
    assert main(["sample", str(mesh), "--count", "500", "--units", "mm", "--out", str(out), "--quiet",
                 "--overwrite"]) == 0
    assert len(out.read_text().splitlines()) == 501
    # dots under the floor are refused (exit 3), not written
    import scalp3d.placement as placement

    real = placement.place_dots

    def too_close(*args, **kwargs):
        d = real(*args, **kwargs)
        d.positions[1] = d.positions[0]
        return d

    monkeypatch.setattr(placement, "place_dots", too_close)
    capsys.readouterr()
    assert main(["sample", str(mesh), "--count", "500", "--units", "mm", "--out", str(tmp_path / "x.csv"),
                 "--quiet"]) == 3
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "refused" in err[0] and "dots 1 and 2 0.00 mm apart" in err[0]
    assert not (tmp_path / "x.csv").exists()


def test_version(capsys):
    import scalp3d

    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.strip() == f"scalp3d {scalp3d.__version__}"


def test_numba_cache_is_per_user_not_in_the_package():
    import numba

    import scalp3d
    import scalp3d.kernels

    cache = numba.config.CACHE_DIR
    assert cache and cache == scalp3d.numba_cache_dir()
    assert not os.path.realpath(cache).startswith(os.path.realpath(os.path.dirname(scalp3d.kernels.__file__)))
    assert not os.path.realpath(cache).startswith(os.path.realpath(os.path.dirname(scalp3d.__file__)))
