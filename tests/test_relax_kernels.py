"""Mesh snapping and the plain relaxation pass against slow NumPy references."""
import numpy as np

from scalp3d.kernels.snap import closest_xyz, snap_xyz, vertex_faces
from scalp3d.placement import vertex_normals_of

import naive
from helpers import faces_of, grid_mesh, multiclass_step


def brute_closest(p, a, b, c, n=400):
    # dense barycentric sampling of the triangle
    u, v = np.meshgrid(np.linspace(0, 1, n), np.linspace(0, 1, n))
    m = u + v <= 1
    u, v = u[m], v[m]
    pts = a + np.outer(u, b - a) + np.outer(v, c - a)
    return pts[np.argmin(np.linalg.norm(pts - p, axis=1))]


def test_closest_xyz_matches_brute_force():
    rng = np.random.default_rng(0)
    for _ in range(60):
        a, b, c = rng.normal(size=(3, 3))
        p = rng.normal(size=3) * 2
        x, y, z, u, v, w = closest_xyz(*p, *a, *b, *c)
        q = np.array([x, y, z])
        ref = brute_closest(p, a, b, c)
        assert np.linalg.norm(q - p) <= np.linalg.norm(ref - p) + 1e-9
        assert np.linalg.norm(q - ref) < 0.02 * max(1, np.linalg.norm(b - a))
        assert np.allclose(u * a + v * b + w * c, q) and min(u, v, w) >= -1e-12 and abs(u + v + w - 1) < 1e-12


def test_plain_pass_matches_naive_on_a_plane():
    """The light relaxation's pass: the multi-class sweep with omega 1."""
    v, f = grid_mesh()
    vn = vertex_normals_of(v, f)
    rng = np.random.default_rng(1)
    n = 150
    p = np.column_stack([rng.random(n) * 14 + 3, rng.random(n) * 14 + 3, np.zeros(n)])
    fid = faces_of(p)
    nrm = np.tile([0, 0, 1.0], (n, 1))
    movable = rng.random(n) > 0.2
    cls = rng.integers(0, 2, n)
    radius = 1.0 + rng.random(n) * 0.5
    scale = np.array([[0.8, 0.7], [0.7, 1.1]])
    vf = vertex_faces(len(v), f)
    got, gn, gf, gb, _, moved = multiclass_step(p, nrm, fid, np.full((n, 3), 1 / 3), movable, cls, radius, scale,
                                                0.0, 1.0, 0.3, v, vn, f, vf[0], vf[1], np.ones(len(f), bool))
    want, _ = naive.multiclass_step_on_plane(p, nrm, movable, cls, radius, scale, 0.0, 1.0, 0.3)
    assert np.allclose(got, want, atol=1e-9)
    assert np.array_equal(got[~movable], p[~movable])
    # faces and barycentric coordinates describe the new points
    pts = (gb[:, :, None] * v[f[gf]]).sum(axis=1)
    moved_rows = (got != p).any(axis=1)
    assert moved_rows.sum() > 50 and np.allclose(pts[moved_rows], got[moved_rows], atol=1e-9)


def test_snap_walks_to_the_right_face():
    v, f = grid_mesh()
    vf = vertex_faces(len(v), f)
    q = np.array([5.3, 7.8, 0.4])
    start = (6 * 20 + 4) * 2  # a few faces away: the walk crosses them
    x, y, z, face, *bary = snap_xyz(*q, start, v, f, vf[0], vf[1])
    pt, bary = np.array([x, y, z]), np.array(bary)
    assert np.allclose(pt, [5.3, 7.8, 0.0])
    assert np.allclose((bary[:, None] * v[f[face]]).sum(axis=0), pt)


def test_relax_keeps_off_zero_density_faces():
    v, f = grid_mesh()
    vn = vertex_normals_of(v, f)
    ok = v[f][:, :, 0].max(axis=1) <= 10  # only the left half may hold dots
    p = np.array([[9.9, 5.2, 0.0], [9.5, 5.2, 0.0]])
    fid = np.array([(5 * 20 + 9) * 2, (5 * 20 + 9) * 2])
    vf = vertex_faces(len(v), f)
    got, *_ = multiclass_step(p, np.tile([0, 0, 1.0], (2, 1)), fid, np.full((2, 3), 1 / 3), np.ones(2, bool),
                              np.zeros(2, np.int64), np.ones(2), np.ones((1, 1)), 0.0, 1.0, 0.5, v, vn, f, vf[0],
                              vf[1], ok)
    assert got[0, 0] <= 10.0 + 1e-12  # the dot pushed right stays on the allowed side
