"""Issue 6: from raw scans to clean head surfaces: repair, holes filled and marked, remeshing, decimation, the neck
cut, the report, the ``scalp3d mesh`` command, and the bar on a rebuilt real head."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import trimesh

from scalp3d import config
from scalp3d.surface import load_head, make_head
from scalp3d.types import Scan

AXES = np.array([80.0, 95.0, 110.0])  # a head-sized ellipsoid, mm


def ellipsoid(subdiv=5):
    s = trimesh.creation.icosphere(subdiv)
    return np.asarray(s.vertices) * AXES, np.asarray(s.faces, dtype=np.int64)


def ellipsoid_distance(p):
    """Distance (mm, accurate to well under 0.1 mm near the surface) from points to the ellipsoid."""
    g = np.linalg.norm(p / AXES, axis=1)
    grad = np.linalg.norm(p / AXES ** 2, axis=1)
    return np.abs(g - 1.0) / np.maximum(grad, 1e-12) * g  # first order, exact on the surface


def with_hole(v, f, centre, radius):
    keep = (np.linalg.norm(v[f].mean(axis=1) - centre, axis=1) > radius)
    return v, f[keep]


def test_mesh_is_repaired():
    v, f = ellipsoid(4)
    n = len(v)
    # duplicate vertices (a copy of the first 50 used by some faces), degenerate and duplicate faces, flipped winding,
    # a small floating piece and an edge shared by three faces
    v2 = np.vstack([v, v[:50]])
    f2 = f.copy()
    use = np.isin(f2[:, 0], np.arange(50))
    f2[use, 0] += n
    f2[::7] = f2[::7, ::-1]
    island = trimesh.creation.icosphere(1, radius=3.0).vertices + [0, 0, 200.0]
    isl_f = trimesh.creation.icosphere(1).faces + len(v2)
    v2 = np.vstack([v2, island, [[0.0, 0.0, 0.0]]])
    extra = len(v2) - 1
    f2 = np.vstack([f2, isl_f, [[1, 1, 2]], f2[:3], [[f[0, 0], f[0, 1], extra]]])
    head = make_head(Scan("broken.ply", v2, f2), crop=False)
    m = trimesh.Trimesh(head.vertices, head.faces, process=False)
    assert len(m.split(only_watertight=False)) == 1
    assert m.is_winding_consistent
    e = np.sort(m.edges, axis=1)
    _, counts = np.unique(e, axis=0, return_counts=True)
    assert counts.max() <= 2  # manifold edges
    assert (m.area_faces > 0).all()
    assert np.all(np.linalg.norm(head.vertices, axis=1) < 150.0)  # the island at z = 200 is gone
    # outward normals, about 1 mm edges
    c = head.vertices - head.vertices.mean(axis=0)
    assert ((c * head.vertex_normals).sum(axis=1) > 0).mean() > 0.99
    edges = np.linalg.norm(m.vertices[m.edges_unique[:, 0]] - m.vertices[m.edges_unique[:, 1]], axis=1)
    assert 0.8 < np.median(edges) < 1.25
    assert any("repaired" in n for n in head.notes)


def test_mesh_hole_is_filled_smoothly_and_marked():
    v, f = ellipsoid(5)
    top = np.array([0.0, 0.0, AXES[2]])
    v, f = with_hole(v, f, top, 20.0)
    head = make_head(Scan("holed.ply", v, f), crop=False)
    r = head.report
    assert len(r["holes_filled_cm2"]) == 1 and 9.0 < r["holes_filled_cm2"][0] < 14.0  # a 40 mm hole: 12.6 cm2
    assert head.filled.any()
    filled_pts = head.vertices[head.filled]
    assert np.linalg.norm(filled_pts - top, axis=1).max() < 25.0  # marked where the hole was, nowhere else
    # the fill continues the dome (thin plate) instead of a flat lid: within 0.5 mm of the true surface
    assert ellipsoid_distance(filled_pts).max() < 0.5
    m = trimesh.Trimesh(head.vertices, head.faces, process=False)
    assert m.is_watertight
    # deviation is judged on measured points only
    assert r["deviation_mm"]["p95"] < 0.1


def test_large_gap_is_left_open_and_reported():
    v, f = ellipsoid(4)
    v, f = with_hole(v, f, np.array([0.0, 0.0, -AXES[2]]), 75.0)  # the open neck: the longest border, kept open
    v, f = with_hole(v, f, np.array([0.0, 0.0, AXES[2]]), 62.0)  # a gap over HOLE_MAX_AREA_CM2
    v, f = with_hole(v, f, np.array([AXES[0], 0.0, 0.0]), 8.0)  # a small hole
    head = make_head(Scan("gappy.ply", v, f), crop=False, remesh=False)
    r = head.report
    assert len(r["holes_left_open_cm2"]) == 1 and r["holes_left_open_cm2"][0] > config.HOLE_MAX_AREA_CM2
    assert len(r["holes_filled_cm2"]) == 1 and r["holes_filled_cm2"][0] < 3.0
    from scalp3d.surface import report_lines

    text = "\n".join(report_lines(head))
    assert "holes left open" in text and "holes filled (marked, not measured): 1" in text


def test_dense_mesh_is_decimated(monkeypatch):
    v, f = ellipsoid(6)  # 81,920 faces
    monkeypatch.setattr(config, "DECIMATE_ABOVE_FACES", 40_000)
    head = make_head(Scan("dense.ply", v, f), crop=False, remesh=False)
    assert len(head.faces) <= 20_000 and any("decimated" in n for n in head.notes)
    assert np.abs(ellipsoid_distance(head.vertices)).max() < 0.3  # the shape is kept


def test_coloured_cloud_keeps_its_colours_and_deviation_is_reported():
    v, f = ellipsoid(6)
    rng = np.random.default_rng(0)
    pts = trimesh.Trimesh(v, f).sample(60_000, seed=0) + rng.normal(0, 0.2, (60_000, 3))
    colors = np.where(pts[:, 2:3] > 0, [[60, 40, 30]], [[230, 190, 170]]).astype(np.uint8)
    head = make_head(Scan("cloud.ply", pts, None, colors=colors), crop=False)
    top = head.vertices[:, 2] > 20
    bottom = head.vertices[:, 2] < -20
    assert np.all(head.colors[top] == [60, 40, 30]) and np.all(head.colors[bottom] == [230, 190, 170])
    d = head.report["deviation_mm"]
    assert d["p95"] < 0.5 and d["points"] > 10_000
    assert np.percentile(np.abs(ellipsoid_distance(head.vertices)), 95) < 0.3
    assert set(head.report["steps_s"]) >= {"outliers", "normals", "poisson", "remesh", "deviation"}


def test_mesh_command(tmp_path):
    v, f = ellipsoid(5)
    v, f = with_hole(v, f, np.array([0.0, 0.0, AXES[2]]), 15.0)
    scan = tmp_path / "scan.ply"
    scan.write_bytes(trimesh.exchange.ply.export_ply(trimesh.Trimesh(v / 10.0, f, process=False)))  # in cm
    out = tmp_path / "out" / "head.ply"
    cmd = [sys.executable, "-m", "scalp3d.cli", "mesh", str(scan), "--out", str(out)]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    assert "units:" in res.stdout and "holes filled (marked, not measured): 1" in res.stdout
    report = json.loads((tmp_path / "out" / "head-report.json").read_text())
    assert report["units"].startswith("detected: cm") or "cm" in report["units"]
    head = load_head(out)
    assert np.ptp(head.vertices[:, 2]) == pytest.approx(2 * AXES[2], abs=2.0)  # written in mm
    assert head.filled is not None and head.filled.sum() == report["filled_vertices"] > 0
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert again.returncode == 2 and "--overwrite" in again.stderr and "\n" not in again.stderr.strip()
    bad = subprocess.run(cmd[:-1] + [str(tmp_path / "head.obj")], capture_output=True, text=True, timeout=600)
    assert bad.returncode == 2 and "PLY" in bad.stderr


def test_same_scan_same_surface():
    v, f = ellipsoid(4)
    a = make_head(Scan("a.ply", v, f), crop=False)
    b = make_head(Scan("a.ply", v, f), crop=False)
    assert np.array_equal(a.vertices, b.vertices) and np.array_equal(a.faces, b.faces)


def test_rebuilt_real_head_meets_the_bar(lee_path):
    """Issue 6's bar on a cloud sampled from the real head: 0.2 mm noise, 1 % outliers, a 40 mm hole on the crown,
    the shoulders kept. The rebuilt scalp is within 0.5 mm of the true surface at the 95th percentile, the hole is
    filled and marked, the shoulders are gone."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from surface import lee_cloud, truth_deviation

    pts, mesh, top = lee_cloud(250_000, seed=3)
    head = make_head(Scan("lee-cloud.xyz", pts, None))
    (p50, p95), mx, _ = truth_deviation(head, mesh, scalp_above_y=62.0)  # the tragi are at y = 62 mm
    print(f"\nrebuilt scalp vs truth: median {p50:.3f} mm, p95 {p95:.3f} mm; report {head.report['deviation_mm']}")
    assert p95 <= 0.5
    # the crown hole: filled, marked, where it was
    near_top = np.linalg.norm(head.vertices - top, axis=1) < 12.0
    assert near_top.any() and head.filled[near_top].all()
    crown = [a for a in head.report["holes_filled_cm2"] if 4.0 < a < 13.0]
    assert crown, head.report["holes_filled_cm2"]
    # the shoulders (411 mm across at y = -60 mm and below) are gone: nothing wider than the head is left
    low = head.vertices[:, 1] < head.vertices[:, 1].min() + 20.0  # the lowest 20 mm left: the neck, not shoulders
    print(f"width left: {np.ptp(head.vertices[:, 0]):.0f} mm, in the lowest 20 mm {np.ptp(head.vertices[low, 0]):.0f}"
          f" mm (cut at y = {head.vertices[:, 1].min():.0f} mm)")
    assert np.ptp(head.vertices[:, 0]) < 200.0 and np.ptp(head.vertices[low, 0]) < 160.0
    assert head.report["neck_cut_mm"] is not None
    assert head.report["outliers_removed"] > 0.5 * 0.01 * 250_000


def test_cloud_surface_is_the_same_whatever_the_thread_count(tmp_path):
    """The same cloud gives the same surface with one thread or two (open3d, numba and BLAS threads)."""
    v, f = ellipsoid(5)
    pts = trimesh.Trimesh(v, f).sample(40_000, seed=1) + np.random.default_rng(1).normal(0, 0.2, (40_000, 3))
    np.save(tmp_path / "pts.npy", pts)
    code = ("import hashlib, sys, numpy as np\n"
            "from scalp3d.surface import make_head\nfrom scalp3d.types import Scan\n"
            f"h = make_head(Scan('c.xyz', np.load(r'{tmp_path / 'pts.npy'}'), None), crop=False)\n"
            "print(hashlib.sha256(h.vertices.tobytes() + h.faces.tobytes() + h.filled.tobytes()).hexdigest())\n")
    import os

    out = []
    for threads in ("1", "2"):
        env = dict(os.environ, OMP_NUM_THREADS=threads, NUMBA_NUM_THREADS=threads, OPENBLAS_NUM_THREADS=threads)
        res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=600)
        assert res.returncode == 0, res.stderr[-500:]
        out.append(res.stdout.strip().splitlines()[-1])
    assert out[0] == out[1]


def test_background_and_stray_pieces_are_removed(lee_path):
    """A wall behind the head and a stray blob beside it (a phone scan of a seated patient) are cut away."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from surface import lee_cloud

    pts, mesh, top = lee_cloud(120_000, seed=4)
    rng = np.random.default_rng(1)
    wall = np.column_stack([rng.uniform(-300, 300, 40_000), rng.uniform(-200, 250, 40_000),
                            -250.0 + rng.normal(0, 0.3, 40_000)])  # the face looks along +z
    blob = rng.normal([250.0, 100.0, 0.0], 5.0, (3000, 3))
    head = make_head(Scan("seated.xyz", np.vstack([pts, wall, blob]), None))
    assert head.vertices[:, 2].min() > -130.0  # the back of the head is at z = -124 mm; the wall at -250 is gone
    assert head.vertices[:, 0].max() < 120.0  # the blob at x = 250 is gone
    assert head.report["neck_cut_mm"] is not None
    assert head.report["deviation_mm"]["p95"] < 0.5  # judged on the head's own points
    assert any("background" in n for n in head.notes)
