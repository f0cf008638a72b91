"""End to end: the demo on the embedded sample head and `plan` on the real head; outputs agree with each other."""
import csv
import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

from conftest import LEE_SCALE_MM
from scalp3d.pipeline import run

OUT_FILES = ["summary.json", "dots.csv", "head.ply", "landmarks.json", "plan.toml",
             "session-1.ngc", "session-2.ngc", "session-3.ngc", "session-1.json", "session-2.json", "session-3.json"]


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    run(out, sample=True, render=True, overwrite=True, log=lambda *a: None)
    return out


def test_demo_writes_everything(demo_dir):
    for name in OUT_FILES + ["preview.png"]:
        assert (demo_dir / name).exists(), name
        assert (demo_dir / name).stat().st_size > 0, name
    leftovers = [p.name for p in demo_dir.iterdir() if p.name.startswith(".")]
    assert leftovers == []  # no temporary files left behind


def test_demo_outputs_agree(demo_dir):
    summary = json.loads((demo_dir / "summary.json").read_text())
    with open(demo_dir / "dots.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == summary["dots_total"]
    assert 40_000 < summary["dots_total"] < 80_000  # a full head: 50k-70k dots at these densities
    assert 450 < summary["treated_area_cm2"] < 800
    ids = [int(r["id"]) for r in rows]
    assert len(set(ids)) == len(ids)
    for k in (1, 2, 3):
        ngc = (demo_dir / f"session-{k}.ngc").read_text()
        js = json.loads((demo_dir / f"session-{k}.json").read_text())
        plunges = re.findall(r"^G1 ", ngc, flags=re.M)
        csv_ids = {int(r["id"]) for r in rows if int(r["session"]) == k}
        assert len(plunges) == js["count"] == len(js["dots"]) == len(csv_ids)
        assert {d["id"] for d in js["dots"]} == csv_ids
        assert js["schema"] == "scalp3d.session" and js["schema_version"] == 1
        assert summary["sessions"][k - 1]["dots"] == len(csv_ids)
    # 30 / 70 / 100 % of the final count, cumulatively
    cum = [s["cumulative_dots"] / summary["dots_total"] for s in summary["sessions"]]
    assert np.allclose(cum, [0.3, 0.7, 1.0], atol=0.01)


def test_sessions_spread_over_whole_area(demo_dir):
    with open(demo_dir / "dots.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    for zone in ("mid", "crown", "back", "sides"):
        per = [sum(1 for r in rows if r["zone"] == zone and r["session"] == str(k)) for k in (1, 2, 3)]
        total = sum(per)
        assert total > 500
        assert abs(per[0] / total - 0.3) < 0.05 and abs(per[1] / total - 0.4) < 0.05, (zone, per)


def test_density_per_zone_matches_plan(demo_dir):
    summary = json.loads((demo_dir / "summary.json").read_text())
    for name, z in summary["zones"].items():
        if z["area_cm2"] > 20:
            assert abs(z["realised_per_cm2"] / z["planned_per_cm2"] - 1) < 0.05, (name, z)
    hair = summary["zones"]["hairline"]["planned_per_cm2"]
    assert hair < summary["zones"]["crown"]["planned_per_cm2"]  # sparser toward the hairline


def test_quality_figures_present(demo_dir):
    q = json.loads((demo_dir / "summary.json").read_text())["quality"]
    u = q["union"]
    assert u["rho"] > 0.6 and u["nn_p1"] > 0.65 and 0.03 < u["nn_cv"] < 0.15 and u["coverage_p99"] < 0.8
    for s in q["cumulative"]:
        assert s["rho"] > 0.55


def test_plunges_land_on_skin_plus_depth(demo_dir):
    """Every G1 tip is within 0.2 mm of the skin point moved by the depth along the normal (from dots.csv)."""
    with open(demo_dir / "dots.csv", newline="") as fh:
        rows = {int(r["id"]): r for r in csv.DictReader(fh)}
    for k in (1, 2, 3):
        text = (demo_dir / f"session-{k}.ngc").read_text()
        for dot, x, y, z in re.findall(r"\(dot (\d+) [^)]*\)\nG0 [^\n]*\nG1 X(\S+) Y(\S+) Z(\S+)", text):
            r = rows[int(dot)]
            skin = np.array([float(r["x"]), float(r["y"]), float(r["z"])])
            n = np.array([float(r["nx"]), float(r["ny"]), float(r["nz"])])
            want = skin - n * float(r["depth_mm"])
            assert np.linalg.norm(np.array([float(x), float(y), float(z)]) - want) < 0.2


@pytest.mark.skipif(shutil.which("rs274") is None, reason="LinuxCNC's rs274 is not installed "
                    "(apt-get install -y --no-install-recommends linuxcnc-uspace); .ci/run installs it")
def test_linuxcnc_interpreter_accepts_and_matches(demo_dir, tmp_path):
    js = json.loads((demo_dir / "session-1.json").read_text())
    out = tmp_path / "canon.txt"
    res = subprocess.run(["rs274", "-g", str(demo_dir / "session-1.ngc"), str(out)], capture_output=True,
                         text=True, timeout=300)
    assert res.returncode == 0, res.stdout[-500:] + res.stderr[-500:]
    feeds = re.findall(r"STRAIGHT_FEED\(([^)]*)\)", out.read_text())
    assert len(feeds) == js["count"]
    for d, f in zip(js["dots"], feeds):
        xyz = np.array([float(v) for v in f.split(",")[:3]])
        assert np.linalg.norm(xyz - np.array(d["tip_mm"])) < 0.01


def test_same_seed_same_bytes_any_thread_count(demo_dir, tmp_path):
    """A second run in a fresh process with one numba thread writes byte-identical files."""
    env = dict(os.environ, NUMBA_NUM_THREADS="1")
    res = subprocess.run([sys.executable, "-m", "scalp3d.cli", "demo", "--out", str(tmp_path / "again"),
                          "--no-preview"], capture_output=True, text=True, env=env, timeout=600)
    assert res.returncode == 0, res.stderr
    for name in OUT_FILES:
        assert (tmp_path / "again" / name).read_bytes() == (demo_dir / name).read_bytes(), name


def test_other_seed_other_dots(tmp_path):
    from scalp3d.pipeline import run as run_plan

    s = run_plan(tmp_path / "s1", sample=True, seed=1, render=False, log=lambda *a: None)
    first = (tmp_path / "s1" / "dots.csv").read_text().splitlines()[1:50]
    s0 = run_plan(tmp_path / "s0", sample=True, seed=0, render=False, log=lambda *a: None)
    assert first != (tmp_path / "s0" / "dots.csv").read_text().splitlines()[1:50]
    assert abs(s["dots_total"] - s0["dots_total"]) < 0.01 * s0["dots_total"]


def test_real_head_with_scale(lee_path, tmp_path):
    summary = run(tmp_path / "lee", scan_path=lee_path, scale=LEE_SCALE_MM, render=False, log=lambda *a: None)
    assert summary["dots_total"] > 20_000
    for name, z in summary["zones"].items():  # the realised density per zone matches the plan on a real head too
        if z["area_cm2"] > 20:
            assert abs(z["realised_per_cm2"] / z["planned_per_cm2"] - 1) < 0.05, (name, z)
    lm = json.loads((tmp_path / "lee" / "landmarks.json").read_text())
    # the scan is Y up, face towards +Z: nasion in front of and above the tragi
    mid = (np.array(lm["lpa"]) + np.array(lm["rpa"])) / 2
    assert lm["nasion"][2] - mid[2] > 60 and abs(lm["nasion"][1] - mid[1]) < 40
    assert abs(np.linalg.norm(np.array(lm["lpa"]) - np.array(lm["rpa"])) - 150) < 30
    # coordinates stay in the scan's axes, scaled to mm (never rotated)
    import trimesh

    raw = trimesh.load(str(lee_path), force="mesh")
    raw.vertices = raw.vertices * LEE_SCALE_MM
    head = trimesh.load(str(tmp_path / "lee" / "head.ply"))
    import open3d as o3d

    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(o3d.core.Tensor(np.asarray(raw.vertices, np.float32)),
                        o3d.core.Tensor(np.asarray(raw.faces, np.uint32)))
    dist = scene.compute_distance(o3d.core.Tensor(np.asarray(head.vertices[::50], np.float32))).numpy()
    assert np.percentile(dist, 99) < 0.5  # the head overlays the scan, scaled, never moved
    assert abs(head.bounds[1][1] - raw.bounds[1][1]) < 2.0  # the top of the head (Y up) is where it was
    assert np.ptp(head.vertices[:, 0]) < 0.5 * np.ptp(raw.vertices[:, 0])  # the shoulders are cut away


def test_existing_plan_is_not_overwritten(tmp_path, lee_path):
    (tmp_path / "summary.json").write_text('{"scan": "patient.ply"}')
    for args in (["plan", str(lee_path), "--scale", "48"], ["demo", "--no-preview"]):
        res = subprocess.run([sys.executable, "-m", "scalp3d.cli", *args, "--out", str(tmp_path)],
                             capture_output=True, text=True)
        assert res.returncode == 2 and "--overwrite" in res.stderr
        assert (tmp_path / "summary.json").read_text() == '{"scan": "patient.ply"}'


def test_demo_replaces_an_earlier_demo(demo_dir, tmp_path):
    out = tmp_path / "d"
    shutil.copytree(demo_dir, out)
    assert (out / "preview.png").exists()  # the earlier demo was rendered; this one is not
    logged = []
    summary = run(out, sample=True, render=False, log=logged.append)  # no --overwrite needed over a demo
    # replaced whole: exactly the new demo's files (the earlier pictures gone), the earlier demo not kept as
    # d.previous-N, no temporary folder left beside it
    assert sorted(p.name for p in out.iterdir()) == sorted(OUT_FILES)
    assert [p.name for p in tmp_path.iterdir()] == ["d"]
    assert not any("kept as" in line for line in logged)
    # the same sample head, plan and seed: the same dots and programs
    for name in ("dots.csv", "session-1.ngc"):
        assert (out / name).read_bytes() == (demo_dir / name).read_bytes(), name
    assert json.loads((out / "summary.json").read_text())["dots_total"] == summary["dots_total"]


def _small_summary():
    return {"treated_area_cm2": 512.345, "dots_total": 51234, "seed": 7,
            "sessions": [{"session": 1, "dots": 15370, "cumulative_dots": 15370, "cumulative_fraction": 0.3,
                          "shade": "light", "estimated_time_min": 42.26, "lifted_travels": 12},
                         {"session": 2, "dots": 35864, "cumulative_dots": 51234, "cumulative_fraction": 1.0,
                          "shade": "medium", "estimated_time_min": 98.04, "lifted_travels": 3}],
            "design": {"mode": "bald", "mid_frontal_above_glabella_mm": 79.6},
            "zones": {"hairline": {"area_cm2": 40.04, "dots": 2100, "planned_per_cm2": 52.5, "realised_per_cm2": 52.44},
                      "crown": {"area_cm2": 120.0, "dots": 12000, "planned_per_cm2": 100.0, "realised_per_cm2": 99.96},
                      "front": {"area_cm2": 0.02, "dots": 3, "planned_per_cm2": 79.8, "realised_per_cm2": 171.9}},
            "quality": {"union": {"rho": 0.8123, "nn_p1": 0.8345, "nn_cv": 0.0712, "coverage_p99": 0.91,
                                  "spectrum_peak": 1.5, "spectrum_low": 0.02},
                        "cumulative": [{"through_session": 1, "rho": 0.75, "nn_p1": 0.77, "nn_cv": 0.09},
                                       {"through_session": 2, "rho": 0.8123, "nn_p1": 0.8345, "nn_cv": 0.0712}],
                        "sessions": [{"session": 1, "rho": 0.75, "nn_p1": 0.77},
                                     {"session": 2, "rho": 0.74, "nn_p1": 0.76}]},
            "verification": ["session 1: 15,370 plunges, OK", "session 2: 35,864 plunges, OK"]}


def test_summary_table_lines():
    from scalp3d.pipeline import summary_table

    lines = summary_table(_small_summary(), "out")
    assert lines == [
        "treated area 512.3 cm2, 51,234 dots in 2 sessions (seed 7)",
        "  session     dots  cumulative  share  shade        time  lifts",
        "  1         15,370      15,370    30%  light    42.3 min     12",
        "  2         35,864      51,234   100%  medium   98.0 min      3",
        "  design: mode bald, hairline 80 mm above the glabella along the skin",
        "  zone       area cm2    dots  planned/cm2  realised/cm2",
        "  hairline       40.0   2,100         52.5          52.4",
        "  crown         120.0  12,000        100.0         100.0",
        "  front           0.0       3         79.8             -  (a sliver: too small to measure)",
        "  quality, all dots: rho 0.81, nn p1 0.83, nn CV 0.071, coverage p99 0.91 (of the local d_max); spectrum peak "
        "1.50, low-frequency power 0.02",
        "  after session 1: rho 0.75, nn p1 0.77, nn CV 0.090; session 1 alone: rho 0.75, nn p1 0.77",
        "  after session 2: rho 0.81, nn p1 0.83, nn CV 0.071; session 2 alone: rho 0.74, nn p1 0.76",
        "  verified session 1: 15,370 plunges, OK",
        "  verified session 2: 35,864 plunges, OK",
        "wrote out/: session-K.ngc/.json, dots.csv, head.ply, landmarks.json, plan.toml, summary.json"]


def test_summary_table_warnings_hair_and_images():
    from scalp3d.pipeline import summary_table

    s = _small_summary()
    s["design"] = {"mode": "density", "mid_frontal_above_glabella_mm": None, "unmeasured_treated_cm2": 2.34,
                   "existing_hair": {"area_with_hair_cm2": 61.06, "dots_not_added": 3050,
                                     "share_of_dots_not_added": 0.056}}
    s["quality"]["below_bars"] = ["rho 0.70 < 0.72", "nn p1 0.60 < 0.65"]
    lines = summary_table(s, "out", images=["somewhere/preview.png", "somewhere/design.png"])
    assert not any("design: mode" in line for line in lines)  # no hairline figure, no design line
    assert ("  WARNING: 2.3 cm2 of the treated area was a hole in the scan (filled, not measured): no dots there; "
            "rescan that part to treat it") in lines
    assert ("  existing hair (from the scan's colour): 61.1 cm2 covered, 3,050 dots not added (6%)") in lines
    bar = "  WARNING: quality below the engine's bar: "
    warned = [line[len(bar):].split(";")[0] for line in lines if line.startswith(bar)]
    assert warned == ["rho 0.70 < 0.72", "nn p1 0.60 < 0.65"]
    assert lines[-1].endswith("summary.json, preview.png, design.png")
