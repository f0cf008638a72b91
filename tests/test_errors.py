"""Errors that point at the fix (issue 11, point 8): one line naming the file, the quantity and the fix; exit 2 for
bad input, 3 only for a refused needle move or plan; a wrong unit fails on the head's size, never on a landmark."""
import json

import numpy as np
import pytest

from scalp3d import config
from scalp3d.cli import build_parser, main

from helpers import with_settings


def run_cli(capsys, *argv):
    """(exit code, stdout, stderr lines) of ``scalp3d ARGV`` run in this process."""
    capsys.readouterr()
    try:
        rc = main([str(a) for a in argv])
    except SystemExit as exc:  # argparse: --help (0) and usage errors (2)
        rc = exc.code
    out, err = capsys.readouterr()
    return rc, out, err.strip().splitlines()


def assert_one_line(rc, lines, code=2):
    assert rc == code, lines
    assert len(lines) == 1 and lines[0].startswith("scalp3d: error: "), lines
    assert "Traceback" not in lines[0] and "internal error" not in lines[0]


def make_small_plan_dir(d, n_dots=40, subdivisions=1):
    """A small planned folder like `scalp3d plan` writes, for `scalp3d export`: head.ply (the sample head, Loop-refined
    ``subdivisions`` times) and session-1/-2 .ngc/.json of ``n_dots`` dots on the top of the head (seeded)."""
    from scalp3d.design import ZONES, load_plan
    from scalp3d.export import write_head_ply
    from scalp3d.needle import plan_session
    from scalp3d.pipeline import write_session_programs
    from scalp3d.placement import place_dots
    from scalp3d.proximity import SurfaceQuery
    from scalp3d.sample import load_sample_head

    _, head, _ = load_sample_head(subdivisions)
    z = head.vertices[:, 2]
    dens = np.where(z > np.percentile(z, 85), 1.0, 0.0)
    dots = place_dots(head.vertices, head.faces, count=n_dots, density_per_cm2=dens, sessions=[0.5, 1.0], seed=0,
                      vertex_normals=head.vertex_normals)
    dots = with_settings(dots, zone=np.full(len(dots), ZONES.index("crown")), zone_names=ZONES)
    surface = SurfaceQuery(head)
    settings = load_plan().needle.motion
    d.mkdir(parents=True, exist_ok=True)
    write_head_ply(head, d / "head.ply")
    for k in (1, 2):
        prog = plan_session(dots, k, surface, settings)
        write_session_programs(prog, d, surface, n_sessions=2, plan_sha="0" * 16)
    return d


@pytest.fixture(scope="module")
def small_plan(tmp_path_factory):
    return make_small_plan_dir(tmp_path_factory.mktemp("small-plan") / "plan")


# ---------------------------------------------------------------------------------------------------------------------
# a wrong unit fails on size, with the --scale that fits
# ---------------------------------------------------------------------------------------------------------------------

def test_wrong_units_fail_on_size_with_the_scale_to_try(capsys, tmp_path, lee_path):
    rc, _, lines = run_cli(capsys, "plan", lee_path, "--units", "cm", "--out", tmp_path / "out", "--no-preview")
    print(lines[0])
    assert_one_line(rc, lines)
    assert lines[0] == (f"scalp3d: error: {lee_path}: with --units cm the head is 31.6 mm wide; heads are "
                        f"{config.HEAD_WIDTH_MIN_MM:.0f}-{config.HEAD_WIDTH_MAX_MM:.0f} mm; for this scan try --scale 54")
    assert not (tmp_path / "out").exists()  # refused before anything was written or any landmark was looked for


@pytest.mark.parametrize("given", [["--units", "mm"], ["--units", "m"], ["--scale", "10"]])
def test_every_given_unit_is_checked_on_size(capsys, tmp_path, lee_path, given):
    rc, _, lines = run_cli(capsys, "mesh", lee_path, *given, "--out", tmp_path / "head.ply")
    assert_one_line(rc, lines)
    assert f"with {' '.join(given)} the head is " in lines[0] and "for this scan try --scale 54" in lines[0]
    assert "landmark" not in lines[0] and "nasion" not in lines[0]


def test_undetectable_units_suggest_a_scale_for_a_170_mm_head(capsys, tmp_path, lee_path):
    rc, _, lines = run_cli(capsys, "plan", lee_path, "--out", tmp_path / "out")
    print(lines[0])
    assert_one_line(rc, lines)
    assert "pass --units mm|cm|m|in or --scale" in lines[0]
    assert lines[0].endswith("(for this scan try --scale 54, a 170 mm wide head)")
    # and that scale indeed gives a head of about 170 mm
    from scalp3d.scan import head_width, load_scan

    assert head_width(load_scan(lee_path, scale=54).vertices) == pytest.approx(config.HEAD_WIDTH_TYPICAL_MM, rel=0.01)


# ---------------------------------------------------------------------------------------------------------------------
# command-line mistakes: one line, exit 2; --help still works
# ---------------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("argv,needle", [
    (["demo", "--seed", "abc"], "argument --seed: must be a whole-number seed from 0 to 2147483647, not 'abc'"),
    (["demo", "--seed", "-1"], "argument --seed"),
    (["plan", "x.ply", "--out", "o", "--scale", "nan"], "argument --scale"),
    (["plan", "x.ply", "--out", "o", "--units", "km"], "argument --units: invalid choice: 'km'"),
    (["plan", "x.ply"], "the following arguments are required: --out"),
    (["export", "d", "--session", "0"], "argument --session"),
    (["export", "d", "--session", "1", "--resume-from", "x"], "argument --resume-from"),
    (["demo", "--chunk-dots", "5", "--chunk-minutes", "2"], "not allowed with argument"),
    (["demo", "--chunk-minutes", "inf"], "argument --chunk-minutes"),
    (["sample", "m.ply", "--count", "0", "--out", "d.csv"], "argument --count"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
    ([], "the following arguments are required: command"),
    (["demo", "--bogus"], "unrecognized arguments: --bogus"),
])
def test_command_line_mistakes_get_one_line(capsys, argv, needle):
    rc, _, lines = run_cli(capsys, *argv)
    assert_one_line(rc, lines)
    assert needle in lines[0] and lines[0].endswith("--help`")


def test_help_still_works(capsys):
    for argv in (["--help"], ["plan", "--help"], ["export", "-h"]):
        rc, out, lines = run_cli(capsys, *argv)
        assert rc == 0 and out.startswith("usage: scalp3d") and not lines


# ---------------------------------------------------------------------------------------------------------------------
# exit codes: 2 for input, 3 only for a refused needle move
# ---------------------------------------------------------------------------------------------------------------------

def test_export_unknown_dot_is_an_input_error(capsys, small_plan):
    rc, _, lines = run_cli(capsys, "export", small_plan, "--session", "1", "--resume-from", "999999")
    assert_one_line(rc, lines, code=2)
    assert "dot 999999 is not in session 1" in lines[0] and "session-1.json" in lines[0]


def test_export_resume_and_chunks_still_work(capsys, small_plan):
    js = json.loads((small_plan / "session-1.json").read_text())
    second = js["dots"][1]["id"]
    rc, out, lines = run_cli(capsys, "export", small_plan, "--session", "1", "--resume-from", second,
                             "--chunk-dots", "5")
    assert rc == 0, lines
    assert f"session-1-from-{second}/session-1-part-1.ngc: OK" in out


def test_export_edited_session_json_is_refused_on_one_line(capsys, small_plan, tmp_path):
    import shutil

    d = tmp_path / "plan"
    shutil.copytree(small_plan, d)
    js = json.loads((d / "session-1.json").read_text())
    js["dots"][3]["normal"] = [0, 0, 0]
    (d / "session-1.json").write_text(json.dumps(js))
    rc, _, lines = run_cli(capsys, "export", d, "--session", "1")
    assert_one_line(rc, lines, code=2)
    assert f"dot {js['dots'][3]['id']}: 'normal' is zero" in lines[0]
    js["dots"][3]["normal"] = js["dots"][4]["normal"]
    js["dots"][3]["skin_mm"] = [c + 5.0 for c in js["dots"][3]["skin_mm"]]  # 5 mm off the skin: a refused move
    (d / "session-1.json").write_text(json.dumps(js))
    rc, _, lines = run_cli(capsys, "export", d, "--session", "1")
    assert_one_line(rc, lines, code=3)


def test_parser_types_reject_non_finite_numbers():
    ap = build_parser()
    for bad in (["demo", "--chunk-minutes", "nan"], ["mesh", "s.ply", "--out", "h.ply", "--edge-mm", "-inf"]):
        with pytest.raises(SystemExit) as exc:
            ap.parse_args(bad)
        assert exc.value.code == 2
