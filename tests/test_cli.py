"""The command line: one-line errors with a non-zero exit, never a traceback."""
import re
import subprocess
import sys

import pytest



def scalp3d(*args):
    return subprocess.run([sys.executable, "-m", "scalp3d.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=300)


@pytest.mark.parametrize("content", [b"", b"ply\nformat ascii 1.0\nelement vertex 5\nend_header\n1 2 3\n",
                                     b"solid x\nfacet normal 0 0 1\nouter loop\nvertex 1 2\n"])
def test_bad_scans(tmp_path, content):
    p = tmp_path / ("bad.stl" if content.startswith(b"solid") else "bad.ply")
    p.write_bytes(content)
    r = scalp3d("plan", p, "--out", tmp_path / "out")
    assert r.returncode != 0
    assert "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("scalp3d: error:") and "bad." in lines[0]
    assert not (tmp_path / "out" / "summary.json").exists()


def test_units_error_asks_for_units(tmp_path, lee_path):
    r = scalp3d("plan", lee_path, "--out", tmp_path / "out")
    assert r.returncode == 2
    assert "--units" in r.stderr and "--scale" in r.stderr and "lee-perry-smith.obj" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_bad_plan(tmp_path):
    plan = tmp_path / "p.toml"
    plan.write_text("[needle]\ndepth_mm = 5\n")
    r = scalp3d("demo", "--out", tmp_path / "out", "--plan", plan, "--no-preview")
    assert r.returncode == 2 and "needle.depth_mm" in r.stderr and "Traceback" not in r.stderr


def test_verify_command(tmp_path):
    out = tmp_path / "out"
    r = scalp3d("demo", "--out", out, "--no-preview")
    assert r.returncode == 0, r.stderr
    ok = scalp3d("verify", out / "session-1.ngc", "--head", out / "head.ply")
    assert ok.returncode == 0 and "OK" in ok.stdout
    text = (out / "session-2.ngc").read_text().replace("M2\n", "G0 X0 Y0 Z0\nM2\n")
    (out / "session-2.ngc").write_text(text)
    bad = scalp3d("verify", out / "session-2.ngc", "--head", out / "head.ply")
    assert bad.returncode == 1 and "REFUSED" in bad.stdout and "travel move" in bad.stdout
    # the .ngc alone (as copied to the controller) against the real pipeline's head.ply and plan.toml
    (out / "session-1.json").unlink()
    alone = scalp3d("verify", out / "session-1.ngc", "--head", out / "head.ply")
    assert alone.returncode == 0 and "OK" in alone.stdout, alone.stdout[-300:]
    (out / "plan.toml").write_text((out / "plan.toml").read_text() + "\n")  # re-planned: session-1.ngc is stale
    stale = scalp3d("verify", out / "session-1.ngc", "--head", out / "head.ply")
    assert stale.returncode == 1 and len(stale.stdout.strip().splitlines()) == 1
    assert "the plan.toml beside it is" in stale.stdout


def test_export_chunks_and_resume(tmp_path):
    import json

    out = tmp_path / "out"
    r = scalp3d("demo", "--out", out, "--no-preview", "--machine", "generic-3axis")
    assert r.returncode == 0, r.stderr
    js = json.loads((out / "session-3.json").read_text())
    from_id = js["dots"][1000]["id"]
    r = scalp3d("export", out, "--session", "3", "--resume-from", from_id, "--chunk-dots", "5000", "--machine",
                "generic-3axis")
    assert r.returncode == 0, r.stderr
    folder = out / f"session-3-from-{from_id}"
    parts = sorted(folder.glob("session-3-part-*.ngc"))
    assert len(parts) == -(-(js["count"] - 1000) // 5000)
    ids = []
    for p in parts:
        ids += [int(x) for x in re.findall(r"^\(dot (\d+) ", p.read_text(), flags=re.M)]
    assert ids == [d["id"] for d in js["dots"][1000:]]
    # a profile other than the one planned for is refused
    bad = scalp3d("export", out, "--session", "3", "--resume-from", from_id, "--machine", tmp_path / "nope.toml")
    assert bad.returncode == 2 and "machine profile not found" in bad.stderr


def test_sample_prints_its_figures_and_writes_its_columns(tmp_path, capsys):
    """`scalp3d sample` on a 40 mm icosphere: the printed area, count, d_max and spread figures against NumPy and
    scipy (area from cross products, nearest neighbours from a k-d tree on the written CSV), the CSV's columns and
    rows, and the 30/70/100 % sessions."""
    import csv

    import numpy as np
    import trimesh
    from scipy.spatial import cKDTree

    from scalp3d.cli import main

    radius, n = 40.0, 600
    sphere = trimesh.creation.icosphere(4, radius=radius)
    mesh = tmp_path / "sphere.ply"
    sphere.export(mesh)
    out = tmp_path / "dots.csv"
    assert main(["sample", str(mesh), "--count", str(n), "--units", "mm", "--seed", "5", "--out", str(out),
                 "--quiet"]) == 0  # no progress lines: the figures alone
    printed = capsys.readouterr().out.splitlines()

    with open(out, newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        rows = np.array([[float(x) for x in r] for r in reader])
    assert header == ["id", "x", "y", "z", "nx", "ny", "nz", "session"]
    assert rows.shape == (n, 8)
    ids, p, nrm, session = rows[:, 0], rows[:, 1:4], rows[:, 4:7], rows[:, 7].astype(int)
    assert len(np.unique(ids)) == n and np.all(ids == np.round(ids))
    r = np.linalg.norm(p, axis=1)
    assert np.all((r > 0.99 * radius) & (r <= radius + 1e-3))  # on the inscribed mesh
    assert np.allclose(np.linalg.norm(nrm, axis=1), 1.0, atol=1e-5)
    assert np.all((nrm * p / r[:, None]).sum(axis=1) > 0.99)  # outward, about radial
    assert np.bincount(session).tolist() == [0, 180, 240, 180]  # 30 / 70 / 100 % of 600

    v, f = sphere.vertices, sphere.faces
    area_mm2 = 0.5 * np.linalg.norm(np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]]), axis=1).sum()
    head = re.fullmatch(r"sphere\.ply: ([\d,.]+) cm2, units given: mm; (\d+) dots in [\d.]+ s -> (.+)", printed[0])
    assert head, printed[0]
    assert float(head.group(1)) == pytest.approx(area_mm2 / 100, abs=0.05)
    assert int(head.group(2)) == n and head.group(3) == str(out)

    def figures(points, dmax):
        nn = cKDTree(points).query(points, k=2)[0][:, 1] / dmax
        return nn.min(), np.percentile(nn, 1), nn.std() / nn.mean()

    dmax = np.sqrt(2.0 / (np.sqrt(3.0) * n / area_mm2))  # hexagonal packing at the mean density
    new = re.fullmatch(r"  new dots: rho ([\d.]+), nn p1 ([\d.]+), nn CV ([\d.]+) \(of d_max ([\d.]+) mm\)", printed[1])
    assert new, printed[1]
    assert float(new.group(4)) == pytest.approx(dmax, abs=1e-3)
    # the CSV's coordinates are rounded to 1e-4 mm: the figures agree to about 1e-4 of d_max, printed to 1e-3
    assert [float(x) for x in new.group(1, 2, 3)] == pytest.approx(figures(p, dmax), abs=2e-3)
    fr = np.cumsum([180, 240, 180]) / n
    for k in (1, 2, 3):
        line = re.fullmatch(rf"  session {k}: (\d+) dots, alone rho ([\d.]+); sessions 1-{k}: rho ([\d.]+), "
                            r"nn p1 ([\d.]+)", printed[1 + k])
        assert line, printed[1 + k]
        assert int(line.group(1)) == (session == k).sum()
        share = fr[k - 1] - (fr[k - 2] if k > 1 else 0.0)
        assert float(line.group(2)) == pytest.approx(figures(p[session == k], dmax / np.sqrt(share))[0], abs=2e-3)
        cum = figures(p[session <= k], dmax / np.sqrt(fr[k - 1]))
        assert [float(line.group(3)), float(line.group(4))] == pytest.approx(cum[:2], abs=2e-3)
    assert len(printed) == 5
