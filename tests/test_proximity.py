"""scalp3d.proximity: closest points, distances and segment clearances against analytic answers and a brute-force
NumPy oracle (every point against every triangle with trimesh.triangles.closest_point, no acceleration structure).

The scene works in float32, so distances agree to about 1e-5 mm at these sizes; the bounds below are 1e-3 mm.
"""
import numpy as np
import pytest
import trimesh

from scalp3d.proximity import SurfaceQuery
from scalp3d.types import Head

R_MM = 50.0


@pytest.fixture(scope="module")
def sphere():
    s = trimesh.creation.icosphere(subdivisions=3, radius=R_MM)
    v, f = np.asarray(s.vertices), np.asarray(s.faces, dtype=np.int64)
    return s, SurfaceQuery(Head(v, f, v / R_MM))  # radial vertex normals


@pytest.fixture(scope="module")
def triangle():
    v = np.array([[0.0, 0.0, 0.0], [10.0, 0.0, 0.0], [0.0, 10.0, 0.0]])
    f = np.array([[0, 1, 2]])
    return SurfaceQuery(Head(v, f, np.tile([0.0, 0.0, 1.0], (3, 1))))


def _brute_force(mesh, points):
    """(distance (n,), closest point (n,3)): each point against every triangle."""
    tri = mesh.triangles
    p = np.repeat(points, len(tri), axis=0)
    c = trimesh.triangles.closest_point(np.tile(tri, (len(points), 1, 1)), p).reshape(len(points), len(tri), 3)
    d = np.linalg.norm(c - points[:, None], axis=2)
    j = d.argmin(axis=1)
    return d[np.arange(len(points)), j], c[np.arange(len(points)), j]


def _points_around(n, seed, r_min=20.0, r_max=80.0):
    rng = np.random.default_rng(seed)
    p = rng.normal(size=(n, 3))
    return p / np.linalg.norm(p, axis=1, keepdims=True) * rng.uniform(r_min, r_max, (n, 1))


def test_single_triangle(triangle):
    p = np.array([[2.0, 2.0, 5.0],     # above the inside: straight down
                  [2.0, 2.0, -3.0],    # below it: unsigned
                  [20.0, 0.0, 0.0],    # beyond a corner
                  [-3.0, -4.0, 0.0],   # beyond the corner at the origin, in the plane
                  [8.0, 8.0, 0.0]])    # beyond the hypotenuse: its midpoint (5, 5) is nearest
    d = triangle.distance(p)
    assert d == pytest.approx([5.0, 3.0, 10.0, 5.0, np.sqrt(18.0)], abs=1e-5)
    q, n, fid = triangle.closest(p)
    assert q == pytest.approx(np.array([[2, 2, 0], [2, 2, 0], [10, 0, 0], [0, 0, 0], [5, 5, 0]], float), abs=1e-5)
    assert np.allclose(n, [0.0, 0.0, 1.0]) and np.all(fid == 0)


def test_distance_and_closest_point_match_brute_force(sphere):
    mesh, q = sphere
    p = _points_around(100, seed=1)
    d_ref, c_ref = _brute_force(mesh, p)
    assert np.abs(q.distance(p) - d_ref).max() < 1e-3
    c, n, fid = q.closest(p)
    assert np.abs(c - c_ref).max() < 1e-3
    # the face id names a face the closest point lies on (ties on edges may name either neighbour)
    on_face = trimesh.triangles.closest_point(mesh.triangles[fid], c)
    assert np.abs(on_face - c).max() < 1e-3


def test_smooth_normal_is_the_blend_of_vertex_normals(sphere):
    """With radial vertex normals, the barycentric blend at a point c of a flat face is exactly c / |c|: radial,
    while the flat face's own normal is off by up to several degrees at this resolution."""
    mesh, q = sphere
    c, n, fid = q.closest(_points_around(100, seed=2))
    radial = c / np.linalg.norm(c, axis=1, keepdims=True)
    assert np.allclose(np.linalg.norm(n, axis=1), 1.0)
    assert np.degrees(np.arccos(np.clip((n * radial).sum(axis=1), -1, 1))).max() < 0.01
    facet = np.degrees(np.arccos(np.clip((mesh.face_normals[fid] * radial).sum(axis=1), -1, 1)))
    assert facet.max() > 1.0  # so the check above tells the blend from the facet


def test_empty_and_single_point(sphere):
    _, q = sphere
    assert q.distance(np.zeros((0, 3))).shape == (0,)
    assert q.segments_min_distance(np.zeros((0, 3)), np.zeros((0, 3)), 1.0).shape == (0,)
    assert q.distance([0.0, 0.0, R_MM + 7.0]) == pytest.approx([7.0], abs=1e-3)  # a pole is a vertex


def test_segment_clearance(sphere):
    """A chord at height 55 mm over a 50 mm sphere clears it by 5 mm at its middle; sampled every step_mm it can
    only read more, by at most the clearance of a point half a step from the middle. The mesh is inscribed in the
    sphere: its surface lies between the faces' smallest distance from the centre (the inradius) and R, so distances
    to it exceed those to the sphere by at most the sag R - inradius."""
    mesh, q = sphere
    h = 55.0
    starts = np.array([[-30.0, 0.0, h], [0.0, 0.0, h + 20.0], [-30.0, 0.0, h]])
    ends = np.array([[31.0, 0.0, h], [0.0, 0.0, h + 10.0], [31.0, 0.0, h]])
    fine = q.segments_min_distance(starts[:2], ends[:2], 0.5)
    # the top of the sphere is a vertex: exact there
    assert fine == pytest.approx([h - R_MM, h + 10.0 - R_MM], abs=1e-3)
    step = 10.0
    coarse = q.segments_min_distance(starts[2:], ends[2:], step)[0]
    inradius = np.abs((mesh.face_normals * mesh.triangles[:, 0]).sum(axis=1)).min()
    worst = np.hypot(h, step / 2) - R_MM + (R_MM - inradius)
    assert h - R_MM - 1e-3 <= coarse <= worst + 1e-3  # the end points alone would read 12.6 mm
    # the same segment given twice (in one call) reads the same, each segment its own value
    both = q.segments_min_distance(starts, ends, 0.5)
    assert both[0] == pytest.approx(fine[0]) and both[1] == pytest.approx(fine[1]) and both[2] == pytest.approx(fine[0])


def test_segment_through_the_surface_reads_zero(sphere):
    _, q = sphere
    d = q.segments_min_distance([[0.0, 0.0, 0.0]], [[0.0, 0.0, 2 * R_MM]], 0.01)
    assert d[0] < 0.02  # sampled every 0.01 mm across the skin


def _travel_segments(rng, n=3000):
    """Short travels above a 50 mm sphere like a needle program's (1-3 mm long, 1-4 mm up), some dipping to the skin
    or through it, some long chords across the head."""
    a = rng.normal(size=(n, 3))
    a /= np.linalg.norm(a, axis=1, keepdims=True)
    step = rng.normal(size=(n, 3)) * rng.uniform(0.5, 2.0, (n, 1))
    b = a * R_MM + step
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    a = a * (R_MM + rng.uniform(1.0, 4.0, (n, 1)))
    b = b * (R_MM + rng.uniform(-0.5, 4.0, (n, 1)))
    b[: n // 20] = -a[: n // 20]  # through the head
    return a, b


def test_proven_clear_segments_decide_as_sampled_ones(sphere):
    """With ``below_mm`` a segment proven clear by its end distances is not sampled inside; whether a segment comes
    under the limit is decided exactly as by sampling it, and a proven one really stays above the limit (checked
    on 400 samples per segment)."""
    _mesh, q = sphere
    a, b = _travel_segments(np.random.default_rng(7))
    for limit in (0.5, 1.5, 2.999):
        sampled = q.segments_min_distance(a, b, limit * 0.5)
        fast = q.segments_min_distance(a, b, limit * 0.5, below_mm=limit)
        assert np.array_equal(fast < limit, sampled < limit)
        proven = fast != sampled
        assert 0 < proven.sum() < len(a)  # both kinds occur
        assert np.array_equal(fast[~proven], sampled[~proven])
        assert (fast[proven] >= limit).all()
        fine = q.segments_min_distance(a[proven], b[proven], 0.005)
        assert (fine >= limit).all()
