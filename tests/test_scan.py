"""Loading scans: formats, units detection and refusal, bad files."""
import numpy as np
import pytest
import trimesh

from conftest import LEE_SCALE_MM
from scalp3d.errors import InputError, UnitsError
from scalp3d.scan import head_width, load_scan
from scalp3d.sample import load_sample_head


@pytest.fixture(scope="module")
def sample_mesh():
    scan, _, _ = load_sample_head(subdivisions=0)
    return trimesh.Trimesh(scan.vertices, scan.faces, process=False)  # in mm


def test_real_head_has_no_plausible_unit(lee_path):
    with pytest.raises(UnitsError, match=r"--units mm\|cm\|m\|in or --scale"):
        load_scan(lee_path)


def test_real_head_with_scale_or_units(lee_path):
    s = load_scan(lee_path, scale=LEE_SCALE_MM)
    assert 140 <= head_width(s.vertices) <= 190
    # a given unit is checked on size first: a wrong one fails there, with the --scale that fits, never later
    with pytest.raises(UnitsError, match=r": with --units cm the head is 31\.6 mm wide; heads are 140-220 mm; "
                                         r"for this scan try --scale 54$"):
        load_scan(lee_path, units="cm")


@pytest.mark.parametrize("unit,factor", [("mm", 1.0), ("cm", 0.1), ("m", 0.001), ("in", 1 / 25.4)])
def test_units_detected(sample_mesh, tmp_path, unit, factor):
    m = sample_mesh.copy()
    m.apply_scale(factor)
    path = tmp_path / f"head_{unit}.ply"
    m.export(path)
    s = load_scan(path)
    assert s.units == unit
    assert np.allclose(s.vertices, sample_mesh.vertices, atol=1e-3 * max(1.0, 1 / factor))


@pytest.mark.parametrize("ext", ["ply", "obj", "stl", "off", "glb"])
def test_mesh_formats(sample_mesh, tmp_path, ext):
    path = tmp_path / f"head.{ext}"
    sample_mesh.export(path)
    s = load_scan(path)
    assert s.units == "mm" and not s.is_point_cloud
    assert abs(np.ptp(s.vertices, axis=0) - np.ptp(sample_mesh.vertices, axis=0)).max() < 0.01


def test_point_cloud_formats(sample_mesh, tmp_path):
    pts, _ = trimesh.sample.sample_surface(sample_mesh, 20000, seed=0)
    np.savetxt(tmp_path / "head.xyz", pts)
    trimesh.PointCloud(pts).export(tmp_path / "cloud.ply")
    import open3d as o3d

    o3d.io.write_point_cloud(str(tmp_path / "head.pcd"), o3d.geometry.PointCloud(o3d.utility.Vector3dVector(pts)))
    for name in ("head.xyz", "cloud.ply", "head.pcd"):
        s = load_scan(tmp_path / name)
        assert s.is_point_cloud and s.units == "mm" and len(s.vertices) == 20000, name


def test_point_cloud_is_meshed(sample_mesh, tmp_path):
    from scalp3d.surface import make_head

    pts, _ = trimesh.sample.sample_surface(sample_mesh, 60000, seed=1)
    np.savetxt(tmp_path / "head.xyz", pts)
    head = make_head(load_scan(tmp_path / "head.xyz"))
    # the rebuilt surface lies on the original one
    from scalp3d.proximity import SurfaceQuery
    from scalp3d.types import Head

    truth = SurfaceQuery(Head(np.asarray(sample_mesh.vertices), np.asarray(sample_mesh.faces), np.zeros((1, 3))))
    d = truth.distance(head.vertices)
    assert np.percentile(d, 95) < 1.5


@pytest.mark.parametrize("content,match", [
    (b"", "empty"),
    (b"ply\nformat ascii 1.0\nelement vertex 1000\nproperty float x\nend_header\n1 2\n", "cannot be read|points"),
    (b"\x00\x01garbage" * 50, "cannot be read|points|no mesh|is not a PLY file"),
])
def test_bad_files_get_one_line_errors(tmp_path, content, match):
    p = tmp_path / "bad.ply"
    p.write_bytes(content)
    with pytest.raises(InputError, match=match) as exc:
        load_scan(p)
    assert "\n" not in str(exc.value) and "bad.ply" in str(exc.value)


def test_missing_unknown_flat_and_tiny(tmp_path):
    with pytest.raises(InputError, match="not found"):
        load_scan(tmp_path / "nope.ply")
    (tmp_path / "x.abc").write_text("1 2 3\n")
    with pytest.raises(InputError, match="unknown scan format"):
        load_scan(tmp_path / "x.abc")
    flat = np.random.default_rng(0).random((500, 3)) * 100
    flat[:, 2] = 0
    np.savetxt(tmp_path / "flat.xyz", flat)
    with pytest.raises(InputError, match="plane"):
        load_scan(tmp_path / "flat.xyz", units="mm")
    np.savetxt(tmp_path / "ten.xyz", np.random.default_rng(0).random((10, 3)))
    with pytest.raises(InputError, match="only 10"):
        load_scan(tmp_path / "ten.xyz")
    np.savetxt(tmp_path / "ok.xyz", np.random.default_rng(0).random((500, 3)))
    with pytest.raises(UnitsError, match="positive"):
        load_scan(tmp_path / "ok.xyz", scale=-1.0)
