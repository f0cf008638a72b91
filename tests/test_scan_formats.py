"""Scan formats: every reader with and without colour, textures carried to vertex colours, normals kept, and every
kind of bad file refused with one exact line (never a traceback, a hang or a huge allocation)."""
import json
import re
import tracemalloc

import numpy as np
import pytest
import trimesh
from PIL import Image

from scalp3d.errors import InputError
from scalp3d.scan import load_scan

RED, BLUE = (255, 0, 0), (0, 0, 255)


@pytest.fixture(scope="module")
def head():
    """A head-sized ellipsoid (semi-axes 80, 95, 110 mm: 160 mm wide), 2,562 vertices."""
    m = trimesh.creation.icosphere(4)
    m.apply_scale([80.0, 95.0, 110.0])
    return m


def two_colours(v):
    """(n,3) uint8: red where x < 0, blue elsewhere."""
    return np.where((v[:, 0] < 0)[:, None], np.array(RED, np.uint8), np.array(BLUE, np.uint8)).astype(np.uint8)


def assert_two_colours(scan):
    assert scan.colors is not None and scan.colors.dtype == np.uint8 and scan.colors.shape == scan.vertices.shape
    left, right = scan.vertices[:, 0] < -1e-6, scan.vertices[:, 0] > 1e-6
    assert (scan.colors[left] == RED).all() and (scan.colors[right] == BLUE).all()


def one_line_error(path, message, **kw):
    """Load ``path``; it must fail with exactly ``message`` on one line."""
    with pytest.raises(InputError, match="^" + re.escape(message) + "$") as exc:
        load_scan(path, **kw)
    assert "\n" not in str(exc.value)
    return exc.value


def write_ply(path, v, faces=None, colors=None, normals=None, fmt="binary_little_endian", color_type="uchar",
              alpha=False, vertex_count=None):
    """A PLY written by hand, so every variant (endianness, float colours, alpha) can be made."""
    n = len(v)
    props = [("x", "f4"), ("y", "f4"), ("z", "f4")]
    cols = [v[:, 0], v[:, 1], v[:, 2]]
    if normals is not None:
        props += [("nx", "f4"), ("ny", "f4"), ("nz", "f4")]
        cols += [normals[:, 0], normals[:, 1], normals[:, 2]]
    if colors is not None:
        c = colors.astype(np.float64) / 255.0 if color_type == "float" else colors
        t = "f4" if color_type == "float" else "u1"
        props += [("red", t), ("green", t), ("blue", t)] + ([("alpha", t)] if alpha else [])
        cols += [c[:, 0], c[:, 1], c[:, 2]] + ([np.full(n, 1.0 if color_type == "float" else 255)] if alpha else [])
    names = {"f4": "float", "u1": "uchar"}
    header = ["ply", f"format {fmt} 1.0", "comment synthetic head", f"element vertex {vertex_count or n}"]
    header += [f"property {names[t]} {p}" for p, t in props]
    if faces is not None:
        header += [f"element face {len(faces)}", "property list uchar int vertex_indices"]
    header.append("end_header")
    out = ("\n".join(header) + "\n").encode()
    if fmt == "ascii":
        lines = [" ".join(f"{x:.6g}" if t == "f4" else str(int(x)) for x, (_, t) in zip(row, props))
                 for row in zip(*cols)]
        if faces is not None:
            lines += [f"{len(fc)} " + " ".join(map(str, fc)) for fc in faces]
        out += ("\n".join(lines) + "\n").encode()
    else:
        bo = "<" if fmt == "binary_little_endian" else ">"
        rec = np.empty(n, np.dtype([(p, bo + t) for p, t in props]))
        for (p, _), c in zip(props, cols):
            rec[p] = c
        out += rec.tobytes()
        if faces is not None:
            fr = np.empty(len(faces), np.dtype([("n", "u1"), ("i", bo + "i4", (faces.shape[1],))]))
            fr["n"], fr["i"] = faces.shape[1], faces
            out += fr.tobytes()
    path.write_bytes(out)
    return path


# ---------------------------------------------------------------------------------------------------------------------
# formats
# ---------------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["binary_little_endian", "binary_big_endian", "ascii"])
@pytest.mark.parametrize("color_type", [None, "uchar", "float"])
@pytest.mark.parametrize("with_faces", [True, False])
def test_ply_variants(head, tmp_path, fmt, color_type, with_faces):
    v = np.asarray(head.vertices)
    colors = two_colours(v) if color_type else None
    p = write_ply(tmp_path / "h.ply", v, np.asarray(head.faces) if with_faces else None, colors, fmt=fmt,
                  color_type=color_type or "uchar", alpha=color_type == "uchar")
    s = load_scan(p, units="mm")
    assert np.allclose(s.vertices, v, atol=1e-3)
    assert s.is_point_cloud is not with_faces
    if with_faces:
        assert np.array_equal(s.faces, head.faces) and s.faces.dtype == np.int64
    if color_type:
        assert_two_colours(s)
    else:
        assert s.colors is None


def test_ply_point_cloud_keeps_normals_and_quads_are_split(head, tmp_path):
    v = np.asarray(head.vertices)
    nrm = np.asarray(head.vertex_normals)
    s = load_scan(write_ply(tmp_path / "c.ply", v, normals=nrm, colors=two_colours(v)), units="mm")
    assert s.is_point_cloud and s.normals is not None and np.allclose(s.normals, nrm, atol=1e-6)
    assert_two_colours(s)
    quads = np.c_[head.faces, head.faces[:, 0]]  # degenerate quads, but quads: each becomes two triangles
    s = load_scan(write_ply(tmp_path / "q.ply", v, quads), units="mm")
    assert s.faces.shape == (2 * len(quads), 3)


def test_ply_written_by_trimesh_and_open3d(head, tmp_path):
    import open3d as o3d

    m = head.copy()
    m.visual.vertex_colors = two_colours(np.asarray(m.vertices))
    m.export(tmp_path / "t.ply")
    assert_two_colours(load_scan(tmp_path / "t.ply", units="mm"))
    pc = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(np.asarray(head.vertices)))
    pc.colors = o3d.utility.Vector3dVector(two_colours(np.asarray(head.vertices)) / 255.0)
    pc.normals = o3d.utility.Vector3dVector(np.array(head.vertex_normals))
    for ascii_ in (False, True):
        o3d.io.write_point_cloud(str(tmp_path / "o.ply"), pc, write_ascii=ascii_)
        s = load_scan(tmp_path / "o.ply", units="mm")
        assert s.is_point_cloud and s.normals is not None
        assert_two_colours(s)


def textured(head):
    """The head with a two-colour 8x8 texture: u = 0.25 (red) where x < 0, u = 0.75 (blue) elsewhere."""
    v = np.asarray(head.vertices)
    uv = np.c_[np.where(v[:, 0] < 0, 0.25, 0.75), np.full(len(v), 0.5)]
    img = np.zeros((8, 8, 3), np.uint8)
    img[:, :4], img[:, 4:] = RED, BLUE
    vis = trimesh.visual.TextureVisuals(uv=uv, image=Image.fromarray(img))
    return trimesh.Trimesh(v, np.asarray(head.faces), visual=vis, process=False)


def test_obj_mtl_texture_to_vertex_colours(head, tmp_path):
    textured(head).export(tmp_path / "head.obj")
    assert {p.name for p in tmp_path.iterdir()} >= {"head.obj", "material.mtl", "material_0.png"}
    s = load_scan(tmp_path / "head.obj", units="mm")
    assert not s.is_point_cloud
    assert_two_colours(s)


def test_obj_missing_texture_loads_without_colours(head, tmp_path):
    textured(head).export(tmp_path / "head.obj")
    (tmp_path / "material_0.png").unlink()
    s = load_scan(tmp_path / "head.obj", units="mm")
    assert s.colors is None and len(s.faces) == len(head.faces)
    assert s.units_reason == "given: mm; no colours: material_0.png (named by the OBJ's material) is missing"


def test_obj_plain_and_vertex_coloured(head, tmp_path):
    head.export(tmp_path / "plain.obj")
    s = load_scan(tmp_path / "plain.obj", units="mm")
    assert s.colors is None and np.allclose(s.vertices, head.vertices, atol=1e-6)
    m = head.copy()
    m.visual.vertex_colors = two_colours(np.asarray(m.vertices))
    m.export(tmp_path / "vc.obj")
    assert_two_colours(load_scan(tmp_path / "vc.obj", units="mm"))


@pytest.mark.parametrize("kind", ["glb", "gltf"])
def test_gltf_texture_to_vertex_colours(head, tmp_path, kind):
    if kind == "glb":
        textured(head).export(tmp_path / "head.glb")
    else:
        for name, data in textured(head).export(file_type="gltf").items():
            (tmp_path / ("head.gltf" if name.endswith(".gltf") else name)).write_bytes(data)
    s = load_scan(tmp_path / f"head.{kind}", units="mm")
    assert not s.is_point_cloud and len(s.vertices) == len(head.vertices)
    assert_two_colours(s)


def test_glb_without_colour(head, tmp_path):
    head.export(tmp_path / "plain.glb")
    s = load_scan(tmp_path / "plain.glb", units="mm")
    assert s.colors is None and len(s.faces) == len(head.faces)


@pytest.mark.parametrize("file_type", ["stl", "stl_ascii"])
def test_stl(head, tmp_path, file_type):
    (tmp_path / "h.stl").write_bytes(head.export(file_type=file_type).encode()
                                     if file_type == "stl_ascii" else head.export(file_type="stl"))
    s = load_scan(tmp_path / "h.stl", units="mm")
    assert len(s.faces) == len(head.faces) and s.colors is None
    assert abs(np.ptp(s.vertices, axis=0) - np.ptp(head.vertices, axis=0)).max() < 1e-3


def test_off_plain_and_coloured(head, tmp_path):
    head.export(tmp_path / "h.off")
    s = load_scan(tmp_path / "h.off", units="mm")
    assert s.colors is None and np.array_equal(s.faces, head.faces)
    v, c = np.asarray(head.vertices), two_colours(np.asarray(head.vertices))
    lines = ["COFF", "# a comment", f"{len(v)} {len(head.faces)} 0"]
    lines += [f"{a:.6f} {b:.6f} {d:.6f} {r} {g} {bl} 255" for (a, b, d), (r, g, bl) in zip(v, c)]
    lines += [f"3 {i} {j} {k}" for i, j, k in head.faces]
    (tmp_path / "c.off").write_text("\n".join(lines) + "\n")
    s = load_scan(tmp_path / "c.off", units="mm")
    assert np.array_equal(s.faces, head.faces)
    assert_two_colours(s)


@pytest.mark.parametrize("data", ["ascii", "binary", "binary_compressed"])
def test_pcd(head, tmp_path, data):
    import open3d as o3d

    v = np.asarray(head.vertices)
    pc = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(v))
    opts = {"write_ascii": data == "ascii", "compressed": data == "binary_compressed"}
    o3d.io.write_point_cloud(str(tmp_path / "plain.pcd"), pc, **opts)
    assert f"DATA {data}" in (tmp_path / "plain.pcd").read_bytes()[:400].decode("latin-1")
    s = load_scan(tmp_path / "plain.pcd", units="mm")
    assert s.is_point_cloud and s.colors is None and s.normals is None and np.allclose(s.vertices, v, atol=1e-3)
    pc.colors = o3d.utility.Vector3dVector(two_colours(v) / 255.0)
    pc.normals = o3d.utility.Vector3dVector(np.array(head.vertex_normals))
    o3d.io.write_point_cloud(str(tmp_path / "col.pcd"), pc, **opts)
    s = load_scan(tmp_path / "col.pcd", units="mm")
    assert s.normals is not None and np.allclose(s.normals, head.vertex_normals, atol=1e-5)
    assert_two_colours(s)


def test_pcd_organised_cloud_drops_unmeasured_pixels(head, tmp_path):
    v = np.asarray(head.vertices, np.float32)
    grid = np.full((2 * 1300, 3), np.nan, np.float32)  # 2 rows of 1300 pixels, 38 without a measurement
    grid[: len(v)] = v
    hdr = ("# .PCD v0.7\nVERSION 0.7\nFIELDS x y z\nSIZE 4 4 4\nTYPE F F F\nCOUNT 1 1 1\nWIDTH 1300\nHEIGHT 2\n"
           "VIEWPOINT 0 0 0 1 0 0 0\nPOINTS 2600\nDATA binary\n")
    (tmp_path / "o.pcd").write_bytes(hdr.encode() + grid.tobytes())
    s = load_scan(tmp_path / "o.pcd", units="mm")
    assert len(s.vertices) == len(v)
    assert s.units_reason == "given: mm; dropped 38 points without a measurement (NaN) from the organised cloud"


@pytest.mark.parametrize("columns", ["xyz", "xyz rgb", "xyz n", "xyz rgb n", "xyz n rgb", "xyz i"])
def test_xyz_columns(head, tmp_path, columns):
    v = np.asarray(head.vertices)
    blocks = {"xyz": v, "rgb": two_colours(v), "n": np.asarray(head.vertex_normals),
              "i": np.arange(len(v))[:, None] % 7}
    data = np.hstack([blocks[k] for k in columns.split()])
    np.savetxt(tmp_path / "h.xyz", data, fmt="%.6f")
    s = load_scan(tmp_path / "h.xyz", units="mm")
    assert s.is_point_cloud and np.allclose(s.vertices, v, atol=1e-5)
    assert (s.normals is not None) == ("n" in columns)
    if "rgb" in columns:
        assert_two_colours(s)
    else:
        assert s.colors is None


def test_pts_count_line_and_intensity(head, tmp_path):
    v = np.asarray(head.vertices)
    rows = np.hstack([v, np.full((len(v), 1), -1200.0), two_colours(v)])
    (tmp_path / "h.pts").write_text(f"{len(v)}\n" + "\n".join(" ".join(f"{x:g}" for x in r) for r in rows) + "\n")
    s = load_scan(tmp_path / "h.pts", units="mm")
    assert len(s.vertices) == len(v)
    assert_two_colours(s)


def test_units_detected_on_the_ellipsoid(head, tmp_path):
    m = head.copy()
    m.apply_scale(0.001)
    m.export(tmp_path / "m.ply")
    s = load_scan(tmp_path / "m.ply")
    assert s.units == "m" and np.allclose(s.vertices, head.vertices, atol=1e-3)


# ---------------------------------------------------------------------------------------------------------------------
# bad files
# ---------------------------------------------------------------------------------------------------------------------

def test_empty_and_unknown_extension(tmp_path):
    (tmp_path / "e.ply").write_bytes(b"")
    one_line_error(tmp_path / "e.ply", f"{tmp_path / 'e.ply'}: the file is empty; re-export the scan")
    (tmp_path / "h.fbx").write_bytes(b"whatever")
    one_line_error(tmp_path / "h.fbx", f"{tmp_path / 'h.fbx'}: unknown scan format '.fbx'; use one of .glb, .gltf, "
                                       f".obj, .off, .pcd, .ply, .pts, .stl, .txt, .xyz")


@pytest.mark.parametrize("fmt,need", [("binary_little_endian", "12,000,000,000,000 bytes of data"),
                                      ("ascii", "at least 6,000,000,000,000 bytes of text")])
def test_ply_header_promising_a_trillion_vertices_allocates_nothing(tmp_path, fmt, need):
    p = tmp_path / "huge.ply"
    body = np.zeros((200, 3), np.float32).tobytes() if fmt != "ascii" else b"0 0 0\n" * 200
    hdr = f"ply\nformat {fmt} 1.0\nelement vertex 1000000000000\nproperty float x\nproperty float y\n" \
          f"property float z\nend_header\n"
    p.write_bytes(hdr.encode() + body)
    tracemalloc.start()
    try:
        one_line_error(p, f"{p}: cannot be read as a PLY scan: the header promises 1,000,000,000,000 vertices "
                          f"({need}) but the file holds only {len(body):,} bytes after its header; the file is "
                          f"truncated or its header is wrong; re-export the scan")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4e6  # nothing the size of the promise was allocated (no test asserts wall-clock time)


def test_ply_truncated(head, tmp_path):
    v, f = np.asarray(head.vertices), np.asarray(head.faces)
    p = write_ply(tmp_path / "b.ply", v, f)
    data = p.read_bytes()
    p.write_bytes(data[: len(data) - 13 * len(f) // 2])  # half the faces are missing
    one_line_error(p, f"{p}: cannot be read as a PLY scan: truncated: the header promises 5,120 faces but the file "
                      f"holds 2,560 rows of them; re-export the scan")
    p.write_bytes(data[:2000])  # most vertices missing
    one_line_error(p, f"{p}: cannot be read as a PLY scan: the header promises 2,562 vertices (30,744 bytes of data) "
                      f"but the file holds only {2000 - data.index(b'end_header') - 11:,} bytes after its header; "
                      f"the file is truncated or its header is wrong; re-export the scan")
    a = write_ply(tmp_path / "a.ply", v, f, fmt="ascii")
    lines = a.read_bytes().splitlines(keepends=True)
    n_header = next(i for i, ln in enumerate(lines) if ln.startswith(b"end_header")) + 1
    a.write_bytes(b"".join(lines[:n_header + 2000]))
    one_line_error(a, f"{a}: cannot be read as a PLY scan: truncated: the header promises 2,562 vertices but the "
                      f"file holds 2,000 lines of them; re-export the scan")


def test_ply_bad_header_and_faces(head, tmp_path):
    p = tmp_path / "b.ply"
    p.write_bytes(b"ply\nformat ascii 1.0\nelement vertex 3\nproperty float q\nend_header\n1\n2\n3\n")
    one_line_error(p, f"{p}: cannot be read as a PLY scan: the vertex element has no x, y and z properties; "
                      f"re-export the scan")
    p.write_bytes(b"ply\nformat binary 1.0\nelement vertex 3\nend_header\n")
    one_line_error(p, f"{p}: cannot be read as a PLY scan: the header's format is 'binary', not ascii or "
                      f"binary_little/big_endian; re-export the scan")
    p.write_bytes(b"ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\n")
    one_line_error(p, f"{p}: cannot be read as a PLY scan: no 'end_header' in its first 64 KB; re-export the scan")
    f = np.asarray(head.faces).copy()
    f[7, 1] = 9999
    write_ply(p, np.asarray(head.vertices), f)
    one_line_error(p, f"{p}: a face refers to vertex 9,999 but the file has 2,562 vertices (0-based); "
                      f"re-export the scan")


def test_nan_points_dropped_under_one_percent_refused_above(head, tmp_path):
    v = np.asarray(head.vertices).copy()
    v[[3, 50]] = np.nan
    v[70, 2] = np.inf
    s = load_scan(write_ply(tmp_path / "few.ply", v, np.asarray(head.faces)), units="mm")
    assert len(s.vertices) == len(v) - 3 and s.faces.max() < len(s.vertices)
    assert s.units_reason == "given: mm; dropped 3 points with NaN or infinite coordinates"
    v[:100] = np.nan
    p = write_ply(tmp_path / "many.ply", v)
    one_line_error(p, f"{p}: 100 of 2,562 points have NaN or infinite coordinates (3.9 %, at least 1 % is refused); "
                      f"fix the export", units="mm")


def test_flat_and_too_few(tmp_path):
    rng = np.random.default_rng(0)
    flat = rng.random((500, 3)) * 100
    flat[:, 2] = 0.3 * flat[:, 0] - 0.2 * flat[:, 1]  # a tilted plane, not along an axis
    np.savetxt(tmp_path / "flat.xyz", flat)
    one_line_error(tmp_path / "flat.xyz", f"{tmp_path / 'flat.xyz'}: not a head: all points lie on a plane; "
                                          f"give a 3D scan of the head")
    np.savetxt(tmp_path / "ten.xyz", rng.random((10, 3)))
    one_line_error(tmp_path / "ten.xyz", f"{tmp_path / 'ten.xyz'}: only 10 valid points: too few points for a head "
                                         f"scan (at least 100 are needed); re-export the scan")


def test_content_not_matching_the_extension(head, tmp_path):
    head.export(tmp_path / "real.glb")
    p = tmp_path / "fake.ply"
    p.write_bytes((tmp_path / "real.glb").read_bytes())
    one_line_error(p, f"{p}: is not a PLY file: its content looks like GLB data; rename it to .glb or re-export "
                      f"the scan")
    p = tmp_path / "fake.obj"
    p.write_bytes(b"\x00\x01garbage" * 50)
    one_line_error(p, f"{p}: is not an OBJ file: its content looks like binary data; re-export the scan")
    p = tmp_path / "fake.xyz"
    Image.new("RGB", (4, 4)).save(p, format="PNG")
    one_line_error(p, f"{p}: is not a text point cloud (x y z per line): its content looks like PNG image; "
                      f"re-export the scan")
    p = tmp_path / "fake.pcd"
    write_ply(p, np.asarray(head.vertices))
    one_line_error(p, f"{p}: is not a PCD file: its content looks like PLY data; rename it to .ply or re-export "
                      f"the scan")
    p = tmp_path / "fake.off"
    p.write_text("hello world\n")
    one_line_error(p, f"{p}: is not an OFF file: it does not start like one; re-export the scan")


def test_pcd_bad_headers(head, tmp_path):
    v = np.asarray(head.vertices, np.float32)
    base = "VERSION 0.7\nFIELDS x y z\nSIZE 4 4 4\nTYPE F F F\nCOUNT 1 1 1\nWIDTH {w}\nHEIGHT 1\nPOINTS {n}\nDATA {d}\n"
    p = tmp_path / "b.pcd"
    p.write_bytes(base.format(w=100, n=len(v), d="binary").encode() + v.tobytes())
    one_line_error(p, f"{p}: cannot be read as a PCD scan: the header says POINTS 2,562 but WIDTH x HEIGHT is "
                      f"100 x 1; re-export the scan")
    p.write_bytes(base.format(w=len(v), n=len(v), d="binary").encode() + v[:1000].tobytes())
    one_line_error(p, f"{p}: cannot be read as a PCD scan: the header promises 2,562 points (30,744 bytes) but the "
                      f"file holds only 12,000 bytes after its header; the file is truncated or its header is wrong; "
                      f"re-export the scan")
    n = 10 ** 12
    p.write_bytes(base.format(w=n, n=n, d="ascii").encode() + b"0 0 0\n" * 10)
    one_line_error(p, f"{p}: cannot be read as a PCD scan: the header promises 1,000,000,000,000 points (at least "
                      f"6,000,000,000,000 bytes of text) but the file holds only 60 bytes after its header; the file "
                      f"is truncated or its header is wrong; re-export the scan")
    text = "\n".join(" ".join(f"{x:g}" for x in r) for r in v[:2000])
    p.write_bytes(base.format(w=len(v), n=len(v), d="ascii").encode() + text.encode())
    one_line_error(p, f"{p}: cannot be read as a PCD scan: truncated: the header promises 2,562 points but the file "
                      f"holds 2,000 lines of them; re-export the scan")


def test_text_bad_counts_and_lines(head, tmp_path):
    v = np.asarray(head.vertices)
    p = tmp_path / "b.pts"
    p.write_text(f"{len(v) + 10}\n" + "\n".join(f"{a:g} {b:g} {c:g}" for a, b, c in v) + "\n")
    one_line_error(p, f"{p}: cannot be read as a text point cloud (x y z per line) scan: truncated: the count line "
                      f"promises 2,572 points but the file holds 2,562; fix the count line or re-export the points")
    p.write_text("1000000000000\n1 2 3\n")
    one_line_error(p, f"{p}: cannot be read as a text point cloud (x y z per line) scan: the count line promises "
                      f"1,000,000,000,000 points but the file holds only 20 bytes; the file is truncated or its count "
                      f"is wrong; re-export the scan")
    p = tmp_path / "b.xyz"
    p.write_text("1 2 3\n4 5 6\n7 8\n")
    one_line_error(p, f"{p}: cannot be read as a text point cloud (x y z per line) scan: line 3 has a different "
                      f"number of values than the first; fix that line or re-export the points")


def test_off_stl_glb_truncated(head, tmp_path):
    head.export(tmp_path / "h.off")
    lines = (tmp_path / "h.off").read_text().splitlines()
    p = tmp_path / "t.off"
    p.write_text("\n".join(lines[:2 + 2562 + 100]) + "\n")
    one_line_error(p, f"{p}: cannot be read as an OFF scan: truncated: the header promises 5,120 faces but the file "
                      f"holds 100 lines of them; re-export the scan")
    p.write_text("OFF\n1000000000000 2 0\n0 0 0\n")
    one_line_error(p, f"{p}: cannot be read as an OFF scan: the header promises 1,000,000,000,000 vertices and 2 faces "
                      f"(at least 6,000,000,000,016 bytes of text) but the file holds only 28 bytes; the file is "
                      f"truncated or its header is wrong; re-export the scan")
    data = head.export(file_type="stl")
    p = tmp_path / "t.stl"
    p.write_bytes(data[:1000])
    one_line_error(p, f"{p}: cannot be read as an STL scan: the binary header promises 5,120 triangles (256,084 bytes) "
                      f"but the file holds 1,000 bytes; the file is truncated or not an STL; re-export the scan")
    text = head.export(file_type="stl_ascii")
    p.write_text(text[: len(text) // 2])
    one_line_error(p, f"{p}: cannot be read as an STL scan: truncated: the ASCII file does not end with 'endsolid'; "
                      f"re-export the scan")
    glb = head.export(file_type="glb")
    p = tmp_path / "t.glb"
    p.write_bytes(glb[:5000])
    one_line_error(p, f"{p}: cannot be read as a GLB scan: truncated: the header says {len(glb):,} bytes but the file "
                      f"holds 5,000; re-export the scan")
    for name, data in head.export(file_type="gltf").items():
        if name.endswith(".gltf"):
            (tmp_path / "t.gltf").write_bytes(data)
    uri = json.loads((tmp_path / "t.gltf").read_text())["buffers"][0]["uri"]
    one_line_error(tmp_path / "t.gltf", f"{tmp_path / 't.gltf'}: cannot be read as a glTF scan: its buffer file "
                                        f"'{uri}' is missing; copy it beside the .gltf file")
