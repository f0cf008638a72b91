"""`scalp3d case` on the sample head: a case made from a scan, a session written, interrupted, resumed and done, the
state and history shown, refusals in one line, a session from a re-scan, a revision. (The whole course with touch-ups:
test_case_course.py.)"""
import json

import numpy as np
import pytest

from scalp3d.cli import main


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    from scalp3d.export import write_head_ply
    from scalp3d.sample import load_sample_head

    d = tmp_path_factory.mktemp("case")
    _, head, _ = load_sample_head()
    write_head_ply(head, d / "scan.ply")
    (d / "light.toml").write_text("[density]\ncore_per_cm2 = 20.0\nhairline_per_cm2 = 15.0\n")
    assert main(["case", "new", str(d / "p.case"), "--scan", str(d / "scan.ply"), "--units", "mm", "--plan",
                 str(d / "light.toml"), "--quiet"]) == 0
    return d


def _out(capsys):
    return capsys.readouterr().out


def test_a_session_interrupted_resumed_and_done(course, capsys):
    case = course / "p.case"
    capsys.readouterr()
    assert main(["case", "show", str(case)]) == 0
    shown = _out(capsys)
    assert "revision 1:" in shown and "session 1: planned" in shown and "session 3: planned" in shown
    # session 1: written, then interrupted after its 25th dot
    assert main(["case", "session", str(case), "1", "--out", str(course / "s1"), "--no-preview", "--quiet"]) == 0
    first = json.loads((course / "s1" / "session-1.json").read_text())["dots"]
    n = len(first)
    stop = first[24]["id"]
    assert main(["case", "done", str(case), "1", "--until-dot", str(stop)]) == 0
    assert f"done up to dot {stop}" in _out(capsys)
    # resumed: the rest only, none of the done ones
    assert main(["case", "session", str(case), "1", "--out", str(course / "s1b"), "--no-preview", "--quiet"]) == 0
    rest = json.loads((course / "s1b" / "session-1.json").read_text())["dots"]
    done = {x["id"] for x in first[:25]}
    assert len(rest) == n - 25 and not done & {x["id"] for x in rest}
    assert main(["case", "done", str(case), "1"]) == 0
    assert main(["case", "show", str(case)]) == 0
    assert "session 1: done" in _out(capsys)
    # refusals: one line, exit 2
    for argv, words in ((["session", str(case), "1", "--out", str(course / "s1c")], "is done"),
                        (["done", str(case), "1"], "already done"),
                        (["session", str(case), "9", "--out", str(course / "s9")], "no session 9"),
                        (["new", str(case), "--scan", str(course / "scan.ply")], "never overwritten"),
                        (["show", str(course / "scan.ply")], "scan.ply")):
        capsys.readouterr()
        assert main(["case", *argv, "--quiet"]) == 2, argv
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and words in err[0], (argv, err)
    assert not (course / "s1c").exists() and not (course / "s9").exists()
    assert main(["case", "history", str(case)]) == 0
    hist = _out(capsys)
    actions = [line.split()[2] for line in hist.strip().splitlines()]
    assert actions[:5] == ["create", "programs", "done", "programs", "done"], actions


def test_the_programs_verify_and_the_dots_are_the_case_s(course):
    """The programs written from the case verify against its head, and their dots are the case's revision 1."""
    from scalp3d.case import Case

    d = course / "s2"
    assert main(["case", "session", str(course / "p.case"), "2", "--out", str(d), "--quiet"]) == 0
    with Case.open(course / "p.case") as case:
        dots = case.dots()
        head = case.head()
    # the patient's pictures of the plan come with the programs
    pictures = sorted(p.name for p in d.glob("*.png"))
    assert {"preview.png", "preview-sessions.png", "preview-before-after.png", "design.png"} <= set(pictures), pictures
    js = json.loads((d / "session-2.json").read_text())
    ids = np.array([x["id"] for x in js["dots"]])
    assert set(ids) == set(dots.ids[dots.session == 2].tolist())
    from scalp3d.export import write_head_ply

    write_head_ply(head, d / "head.ply")
    assert main(["verify", str(d / "session-2.ngc"), "--head", str(d / "head.ply")]) == 0


def test_a_session_from_todays_scan_lands_where_the_motion_puts_the_dots(course, capsys):
    """Today's scan: the head moved by a rigid motion (20 degrees, 60 mm), the face cut away, from a finer scanner
    (0.5 mm edges: kept as scanned, not remeshed) with 0.2 mm noise (today's skin is smoothed before programs are made
    on it: unsmoothed, the verifier refuses plunges 10 degrees off its normal). Session 3 written from it:
    registration.json, today's head.ply, programs that verify against it, every dot within 0.3 mm RMS (1 mm max) of
    where the known motion puts the case's dot."""
    import trimesh
    from scipy.spatial.transform import Rotation

    from scalp3d.case import Case
    from scalp3d.export import write_head_ply
    from scalp3d.meshes import vertex_normals_of
    from scalp3d.types import Head

    with Case.open(course / "p.case") as case:
        ref, lm, dots = case.head(), case.landmarks(), case.dots()
    rng = np.random.default_rng(5)
    R = Rotation.from_euler("zyx", [20.0, -8.0, 5.0], degrees=True).as_matrix()
    t = np.array([60.0, -25.0, 40.0])
    o, F = lm.frame()
    q = (ref.vertices - o) @ F.T
    keep_v = ~((q[:, 1] > 40.0) & (q[:, 2] < 10.0))  # no face below the brow
    f = ref.faces[keep_v[ref.faces].all(axis=1)]
    used = np.unique(f)
    remap = np.full(len(ref.vertices), -1)
    remap[used] = np.arange(len(used))
    v, f = trimesh.remesh.subdivide(ref.vertices[used], remap[f])  # a finer scanner: 0.5 mm edges, not remeshed
    v = v @ R.T + t + rng.normal(0.0, 0.2, v.shape)
    write_head_ply(Head(v, f, vertex_normals_of(v, f)), course / "today.ply")
    d = course / "s3"
    capsys.readouterr()
    assert main(["case", "session", str(course / "p.case"), "3", "--out", str(d), "--scan", str(course / "today.ply"),
                 "--units", "mm", "--no-preview", "--quiet"]) == 0
    assert "registered to today's scan" in capsys.readouterr().out
    reg = json.loads((d / "registration.json").read_text())
    assert reg["rms_mm"] < 0.5 and reg["overlap"] > 0.8
    js = json.loads((d / "session-3.json").read_text())["dots"]
    got = np.array([x["skin_mm"] for x in js])
    want_by_id = dict(zip(dots.ids.tolist(), (dots.positions @ R.T + t).tolist()))
    want = np.array([want_by_id[x["id"]] for x in js])
    err = np.linalg.norm(got - want, axis=1)
    assert np.sqrt(np.mean(err ** 2)) < 0.3 and err.max() < 1.0, (np.sqrt(np.mean(err ** 2)), err.max())
    assert main(["verify", str(d / "session-3.ngc"), "--head", str(d / "head.ply")]) == 0
    from scalp3d.surface import load_head

    assert len(load_head(d / "head.ply").faces) > 2 * len(ref.faces)  # kept as scanned (0.5 mm), not remeshed
    with Case.open(course / "p.case") as case:
        assert any(s.role == "rescan" for s in case.scans())


def test_programs_are_bound_to_their_case(course, capsys):
    """verify --case: a program of this case passes; the same program checked against another case (same patient,
    same scan, another case file), and a program not written from a case, are refused in one line."""
    from scalp3d.export import write_head_ply
    from scalp3d.case import Case

    d = course / "s2b"
    assert main(["case", "session", str(course / "p.case"), "2", "--out", str(d), "--no-preview", "--quiet"]) == 0
    with Case.open(course / "p.case") as case:
        write_head_ply(case.head(), d / "head.ply")
    text = (d / "session-2.ngc").read_text()
    assert "(case " in text and " revision 1 session 2)" in text
    capsys.readouterr()
    assert main(["verify", str(d / "session-2.ngc"), "--head", str(d / "head.ply"), "--case",
                 str(course / "p.case")]) == 0
    assert main(["case", "new", str(course / "other.case"), "--scan", str(course / "scan.ply"), "--units", "mm",
                 "--plan", str(course / "light.toml"), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["verify", str(d / "session-2.ngc"), "--head", str(d / "head.ply"), "--case",
                 str(course / "other.case")]) == 1
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and "another case" in out[0]
    (d / "plain.ngc").write_text("\n".join(x for x in text.splitlines() if not x.startswith("(case ")) + "\n")
    assert main(["verify", str(d / "plain.ngc"), "--head", str(d / "head.ply"), "--case",
                 str(course / "p.case")]) == 1
    assert "names no case" in capsys.readouterr().out


def test_a_revision_keeps_every_done_dot_and_outdates_older_programs(course, capsys):
    """case revise with a lower hairline: revision 2 keeps session 1's dots bit for bit, places new dots only in
    sessions 2 and 3, no pair under the floor (the command refuses otherwise); a session-2 program of revision 1 is
    refused by verify --case."""
    from scalp3d.case import Case
    from scalp3d.spacing import check_floor
    from scalp3d.placement import local_spacing_mm

    with Case.open(course / "p.case") as case:
        before, planned = case.done_dots(), case.dots()
    (course / "lower.toml").write_text("[density]\ncore_per_cm2 = 20.0\nhairline_per_cm2 = 15.0\n"
                                       "[hairline]\nheight_above_glabella_mm = 72.0\n")
    capsys.readouterr()
    assert main(["case", "revise", str(course / "p.case"), "--plan", str(course / "lower.toml"), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "revision 2" in out
    with Case.open(course / "p.case") as case:
        after, dots, plan = case.done_dots(), case.dots(), case.plan()
        assert [r.number for r in case.revisions()] == [1, 2]
    order = np.argsort(after.ids)
    ref = np.argsort(before.ids)
    for k in ("ids", "positions", "normals", "face_ids", "bary", "session", "depth_mm", "dot_size_mm"):
        assert np.array_equal(getattr(after, k)[order], getattr(before, k)[ref]), k
    new = ~np.isin(dots.ids, before.ids)
    assert set(np.unique(dots.session[new]).tolist()) == {2, 3}
    # the dots not done away from the change keep their ids, places and sessions; only those near it are new
    assert "placed again near the design's change" in out
    was = {int(i): k for k, i in enumerate(planned.ids)}
    stayed = np.array([int(i) in was for i in dots.ids]) & new
    assert 0.3 < stayed.sum() / new.sum() < 0.99, stayed.mean()
    rows = [was[int(i)] for i in dots.ids[stayed]]
    assert np.array_equal(dots.positions[stayed], planned.positions[rows])
    assert np.array_equal(dots.session[stayed], planned.session[rows])
    assert dots.ids[new].min() > max(before.ids.max(), 0)
    assert plan.hairline.height_above_glabella_mm == 72.0
    # the union against the floor, as an independent check of the command's own refusal
    from scalp3d.design import build_field

    with Case.open(course / "p.case") as case:
        head, lm = case.head(), case.landmarks()
    field = build_field(head, lm, plan)
    dens = (dots.bary * field.density_per_cm2[head.faces[dots.face_ids]]).sum(axis=1)
    assert not check_floor(dots.positions, local_spacing_mm(dens, field.density_per_cm2.max()), dots.session,
                           plan.sessions.fractions)
    # a program written from revision 1 is now out of date for this case
    from scalp3d.export import write_head_ply

    write_head_ply(head, course / "s2" / "head.ply")
    capsys.readouterr()
    assert main(["verify", str(course / "s2b" / "session-2.ngc"), "--head", str(course / "s2b" / "head.ply"),
                 "--case", str(course / "p.case")]) == 1
    assert "revision 1; the case is at revision 2" in capsys.readouterr().out


def test_touch_up_refusals_in_one_line(course, capsys):
    """A touch-up is refused before any work, the case and the folder untouched: a fraction out of range, a fraction
    for a re-hit, a course not finished; and a fraction that would take the densest area past the helmet limit."""
    from scalp3d.case_commands import _touch_up_plan
    from scalp3d.design import load_plan
    from scalp3d.errors import InputError

    case = course / "p.case"
    before = case.read_bytes()
    for extra, words in ((["--fraction", "0.9"], "0.05 to 0.6"), (["--mode", "rehit", "--fraction", "0.2"],
                                                                  "is for --mode interleave"),
                         ([], "follows a finished course")):
        capsys.readouterr()
        assert main(["case", "touch-up", str(case), "--scan", str(course / "scan.ply"), "--units", "mm", "--out",
                     str(course / "tu"), *extra, "--quiet"]) == 2, extra
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and words in err[0], (extra, err)
    assert not (course / "tu").exists() and case.read_bytes() == before
    dense = load_plan(overrides={"density": {"core_per_cm2": 140.0}})
    with pytest.raises(InputError, match=r"from 140 to 175 dots/cm2, above 160 .*--fraction under 0.14"):
        _touch_up_plan(dense, 0.25, "p.case")
    grown = _touch_up_plan(load_plan(), 0.25, "p.case")
    assert grown.density.core_per_cm2 == pytest.approx(load_plan().density.core_per_cm2 * 1.25)
    assert grown.sessions.fractions == (0.24, 0.56, 0.8, 1.0) and grown.sessions.shades[-1] == "dark"
