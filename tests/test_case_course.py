"""A whole course in one case file (issue 14's check), on the sample head and on the real head, through the commands a
practitioner types: `case new`; session 1 interrupted, resumed and done; session 2 from a re-scan (the head moved by a
random rigid motion, 0.2 mm noise, another triangulation, the face missing) with every dot where the known motion puts
it; a revision of the last session around the done dots; a touch-up years later interleaved from another re-scan; and a
second touch-up re-hitting every dot. At every step no new dot lands under the spacing floor of a done one, the first
course meets the engine's quality bars, and the touch-up the bars a touch-up among fixed dots can reach."""
import json

import numpy as np
import pytest
from conftest import LEE_SCALE_MM, need_shared

from scalp3d import config
from scalp3d.cli import main


def rescan(ref, landmarks, path, seed):
    """Today's scan of the case's head written to ``path``: a random rigid motion (up to 25 degrees, 80 mm), 0.2 mm
    noise, another triangulation (decimated to 80 % of the faces: a fifth of the edges collapsed, the vertices
    around them moved) and no face below the brow.
    Returns the motion (R, t) taking the reference head's axes to today's."""
    import open3d as o3d
    from scipy.spatial.transform import Rotation

    from scalp3d.export import write_head_ply
    from scalp3d.meshes import vertex_normals_of
    from scalp3d.types import Head

    rng = np.random.default_rng(seed)
    R = Rotation.from_rotvec(rng.normal(size=3) / np.sqrt(3) * np.radians(rng.uniform(10, 25))).as_matrix()
    t = rng.uniform(-80, 80, 3)
    o, F = landmarks.frame()
    q = (ref.vertices - o) @ F.T
    keep = ~((q[:, 1] > 40.0) & (q[:, 2] < 10.0))
    # (decimated straight from the reference: subdividing it first made the same kind of new triangulation in 16 s a
    # scan instead of 1.6 s, a minute of each course)
    v, f = ref.vertices, ref.faces[keep[ref.faces].all(axis=1)]
    m = o3d.geometry.TriangleMesh(o3d.utility.Vector3dVector(v), o3d.utility.Vector3iVector(f))
    m = m.simplify_quadric_decimation(int(0.8 * int(keep[ref.faces].all(axis=1).sum())))
    m.remove_unreferenced_vertices()
    v, f = np.asarray(m.vertices), np.asarray(m.triangles)
    v = v @ R.T + t + rng.normal(0.0, 0.2, v.shape)
    write_head_ply(Head(v, f, vertex_normals_of(v, f)), path)
    return R, t


def run(*argv):
    quick = ["--no-preview"] if argv[0] in ("session", "touch-up") else []  # pictures: test_case_commands
    assert main(["case", *map(str, argv), *quick, "--quiet"]) == 0, argv


def written(folder, session):
    """The session JSON's dots: ids (k,) and skin points (k,3) in the order of the program."""
    js = json.loads((folder / f"session-{session}.json").read_text())["dots"]
    return np.array([x["id"] for x in js]), np.array([x["skin_mm"] for x in js])


def assert_where_the_motion_puts_them(case_dots, ids, got, R, t, source_ids=None):
    by_id = dict(zip(case_dots.ids.tolist(), range(len(case_dots))))
    want = case_dots.positions[[by_id[i] for i in (ids if source_ids is None else source_ids)]] @ R.T + t
    err = np.linalg.norm(got - want, axis=1)
    rms = float(np.sqrt(np.mean(err ** 2)))
    assert rms < 0.3 and err.max() < 1.0, (rms, float(err.max()))
    return rms, float(err.max())


def figures(case_path):
    """(dots, plan, head, spacing per dot (the plan's final density), done ids, touch-ups) of the case's latest
    revision."""
    from scalp3d.case import Case
    from scalp3d.design import build_field
    from scalp3d.placement import local_spacing_mm

    with Case.open(case_path) as c:
        dots, plan, head, lm, done, tus = c.dots(), c.plan(), c.head(), c.landmarks(), c.done_ids(), c.touch_ups()
    field = build_field(head, lm, plan)
    dens = (dots.bary * field.density_per_cm2[head.faces[dots.face_ids]]).sum(axis=1)
    return dots, plan, head, local_spacing_mm(dens, field.density_per_cm2.max()), done, tus


def assert_new_dots_clear_of_done(dots, spacing, done_ids, new):
    """No new dot closer than its pair's spacing floor to a done one (an independent KD-tree). Returns the closest
    new-to-done pair as a share of the smaller of its two spacings, as every pair is measured (the floor, rho): by
    the new dot's own, a new dot beside a done one in denser skin read short of the bar it keeps (0.546 on the real
    head's touch-up, where the engine holds 0.55 of the smaller)."""
    from scipy.spatial import cKDTree

    from scalp3d.spacing import floor_mm

    old = np.isin(dots.ids, done_ids)
    d, j = cKDTree(dots.positions[old]).query(dots.positions[new])
    fl = floor_mm(spacing[new], spacing[old][j])
    assert (d >= fl).all(), (float((d / fl).min()), int((d < fl).sum()))
    return float((d / np.minimum(spacing[new], spacing[old][j])).min())


def rho(points, spacing):
    from scalp3d.quality import spread_figures

    return spread_figures(points, spacing)["rho"]


@pytest.fixture(scope="module", params=["sample", "real"])
def scan(request, tmp_path_factory):
    d = tmp_path_factory.mktemp(f"course-{request.param}")
    if request.param == "sample":
        from scalp3d.export import write_head_ply
        from scalp3d.sample import load_sample_head

        _, head, _ = load_sample_head()
        write_head_ply(head, d / "scan.ply")
        return d, d / "scan.ply", ["--units", "mm"]
    return d, need_shared(), ["--scale", LEE_SCALE_MM]


def test_a_whole_course(scan):
    from scalp3d.case import Case

    d, scan_path, units = scan
    case = d / "p.case"
    run("new", case, "--scan", scan_path, *units)
    with Case.open(case) as c:
        ref, lm, first = c.head(), c.landmarks(), c.dots()
    assert len(first) > 30_000  # a real head at the default plan

    # session 1: interrupted a third of the way, resumed, done
    run("session", case, 1, "--out", d / "s1")
    ids, _ = written(d / "s1", 1)
    stop = len(ids) // 3
    run("done", case, 1, "--until-dot", ids[stop - 1])
    run("session", case, 1, "--out", d / "s1-rest")
    rest, _ = written(d / "s1-rest", 1)
    assert sorted(rest.tolist()) == sorted(ids[stop:].tolist())  # the rest, toured again from where it stopped
    run("done", case, 1)

    # session 2 from a re-scan: moved, noisy, retriangulated, no face
    R, t = rescan(ref, lm, d / "today-2.ply", seed=2)
    run("session", case, 2, "--out", d / "s2", "--scan", d / "today-2.ply", "--units", "mm")
    ids, got = written(d / "s2", 2)
    assert_where_the_motion_puts_them(first, ids, got, R, t)
    assert main(["verify", str(d / "s2" / "session-2.ngc"), "--head", str(d / "s2" / "head.ply"), "--case",
                 str(case)]) == 0
    run("done", case, 2)

    # a revision after the healed session 2: session 3 in a darker pigment, 0.1 mm deeper; the design is unchanged, so
    # no dot moves (the done ones never do): the same ids in the same places, the new settings on session 3
    (d / "darker.toml").write_text("[sessions]\nshades = [\"light\", \"medium\", \"darker\"]\n"
                                   f"[needle]\ndepth_mm = {config.DEPTH_MM + 0.1}\n")
    run("revise", case, "--plan", d / "darker.toml")
    dots, plan, head, spacing, done, _ = figures(case)
    by_id = dict(zip(first.ids.tolist(), range(len(first))))
    assert sorted(dots.ids.tolist()) == sorted(first.ids.tolist())
    assert np.array_equal(dots.positions, first.positions[[by_id[i] for i in dots.ids]])
    third = dots.session == 3
    assert set(np.array(dots.shade_names)[dots.shade[third]]) == {"darker"}
    assert np.allclose(dots.depth_mm[third & (dots.zone == dots.zone_names.index("crown"))], config.DEPTH_MM + 0.1)
    run("session", case, 3, "--out", d / "s3")
    run("done", case, 3)
    dots, plan, head, spacing, done, _ = figures(case)
    fr = np.diff(np.concatenate([[0.0], plan.sessions.fractions]))
    course = {"union": rho(dots.positions, spacing)}
    for k in (1, 2, 3):
        m = dots.session == k
        course[k] = rho(dots.positions[m], spacing[m] / np.sqrt(fr[k - 1]))
    assert course["union"] >= config.QUALITY_BAR_UNION_RHO, course
    assert min(course[k] for k in (1, 2, 3)) >= config.QUALITY_BAR_SESSION_RHO, course

    # years later: a touch-up interleaved from another re-scan
    R, t = rescan(ref, lm, d / "today-4.ply", seed=4)
    run("touch-up", case, "--scan", d / "today-4.ply", "--units", "mm", "--out", d / "t4")
    dots, plan, head, spacing, done, tus = figures(case)
    assert [(x.session, x.mode, x.fraction) for x in tus] == [(4, "interleave", config.TOUCH_UP_FRACTION)]
    new = dots.session == 4
    assert abs(new.sum() / len(done) - config.TOUCH_UP_FRACTION) < 0.01
    clear = assert_new_dots_clear_of_done(dots, spacing, done, new)
    share = 1.0 - plan.sessions.fractions[-2]
    touch = {"union": rho(dots.positions, spacing), "alone": rho(dots.positions[new], spacing[new] / np.sqrt(share)),
             "new to done": clear}
    assert min(touch.values()) >= config.QUALITY_BAR_TOUCH_UP_RHO, touch
    ids, got = written(d / "t4", 4)
    assert_where_the_motion_puts_them(dots, ids, got, R, t)
    assert main(["verify", str(d / "t4" / "session-4.ngc"), "--head", str(d / "t4" / "head.ply"), "--case",
                 str(case)]) == 0
    run("done", case, 4)

    # and another: every dot re-hit
    R, t = rescan(ref, lm, d / "today-5.ply", seed=5)
    run("touch-up", case, "--scan", d / "today-5.ply", "--units", "mm", "--out", d / "t5", "--mode", "rehit")
    with Case.open(case) as c:
        dots, tus, done = c.dots(), c.touch_ups(), c.done_ids()
    assert tus[-1].mode == "rehit" and set(tus[-1].rehit_of.tolist()) == set(done.tolist())
    ids, got = written(d / "t5", 5)
    source = dict(zip(dots.ids[dots.session == 5].tolist(), tus[-1].rehit_of.tolist()))
    assert_where_the_motion_puts_them(dots, ids, got, R, t, source_ids=[source[i] for i in ids])
    print(f"\n{scan_path.name}: {len(first):,} dots; first course {course}; touch-up {touch}")
