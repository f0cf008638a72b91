"""scalp3d.geodesic: heat-method distances along the surface against an independent answer, the arc length on a sphere.

On a sphere of radius R the distance along the surface from the north pole to a point at polar angle theta is
R * theta. An icosphere's vertices lie on that sphere, so its geodesics approach R * theta as the mesh is refined.

Tolerance, and why: the heat method with t = h^2 (Crane, Weischedel and Wardetzky 2013; h the mean edge length)
smooths the distance near the source by a fraction of an edge, and its normalised gradient carries a small bias that
grows with distance (measured here: about 0.14 h next to the source and below 1 % of R * theta at the antipode, on
subdivisions 4 and 5). So the bound is 0.25 h + 1.5 % of R * theta: a tenth of a millimetre to a millimetre and a half
on this 50 mm sphere. The straight line through the sphere (the chord, 2 R sin(theta / 2)) misses that bound by
several millimetres over most of the sphere, as does a distance in the wrong unit.
"""
import numpy as np
import pytest
import trimesh

from scalp3d.geodesic import GeodesicSolver, HeadGeodesics

R_MM = 50.0


def _sphere(subdivisions):
    s = trimesh.creation.icosphere(subdivisions=subdivisions, radius=R_MM)
    return np.asarray(s.vertices), np.asarray(s.faces, dtype=np.int64), float(s.edges_unique_length.mean())


def _arc_from(v, k):
    """R * theta: the exact distance along the sphere from vertex k to every vertex."""
    cos = np.clip(v @ v[k] / (R_MM * R_MM), -1.0, 1.0)
    return R_MM * np.arccos(cos)


def _tolerance(h, exact):
    return 0.25 * h + 0.015 * exact


@pytest.fixture(scope="module")
def sphere4():
    v, f, h = _sphere(4)
    return v, f, h, HeadGeodesics(v, f)


@pytest.mark.parametrize("subdivisions", [4, 5])
def test_distance_from_the_pole_is_the_arc_length(subdivisions):
    v, f, h = _sphere(subdivisions)
    pole = int(np.argmax(v[:, 2]))
    d = HeadGeodesics(v, f).distance([pole])
    exact = _arc_from(v, pole)
    err = d - exact
    assert d.shape == (len(v),) and d.dtype == np.float64
    assert d[pole] == 0.0
    assert np.all(np.abs(err) <= _tolerance(h, exact)), f"worst error {np.abs(err).max():.2f} mm (h {h:.2f} mm)"
    # the antipode is half a great circle away, pi R along the skin (2 R through the head)
    assert d[int(np.argmin(v[:, 2]))] == pytest.approx(np.pi * R_MM, rel=0.015)


def test_not_the_straight_line(sphere4):
    v, f, h, g = sphere4
    pole = int(np.argmax(v[:, 2]))
    d = g.distance([pole])
    equator = np.abs(v[:, 2]) < 1.0
    chord = np.linalg.norm(v - v[pole], axis=1)
    # on the equator: pi R / 2 = 78.5 mm along the skin, R sqrt(2) = 70.7 mm through the head
    assert np.all(np.abs(d[equator] - np.pi * R_MM / 2) < 2.0)
    assert np.all(d[equator] - chord[equator] > 5.0)


def test_any_source_and_symmetry(sphere4):
    v, f, h, g = sphere4
    rng = np.random.default_rng(7)
    a, b = rng.choice(len(v), 2, replace=False)
    da, db = g.distance([a]), g.distance(b)  # a scalar source is taken too
    exact = _arc_from(v, a)
    assert np.all(np.abs(da - exact) <= _tolerance(h, exact))
    assert da[b] == pytest.approx(db[a], abs=0.25 * h)  # d(a, b) = d(b, a)


def test_several_sources_give_the_nearest(sphere4):
    v, f, h, g = sphere4
    north, south = int(np.argmax(v[:, 2])), int(np.argmin(v[:, 2]))
    both = g.distance([north, south])
    nearest = np.minimum(_arc_from(v, north), _arc_from(v, south))
    assert both[north] == 0.0 and both[south] == 0.0
    assert np.all(np.abs(both - nearest) <= _tolerance(h, nearest))
    assert both.max() == pytest.approx(np.pi * R_MM / 2, rel=0.03)  # the equator is the farthest


@pytest.mark.parametrize("scale", [0.1, 10.0])
def test_distances_scale_with_the_mesh(scale):
    """The same sphere in other units gives the same distances in those units (to 0.2 %)."""
    v, f, _ = _sphere(3)
    d1 = GeodesicSolver(v, f).distance([0])
    ds = GeodesicSolver(scale * v, f).distance([0])
    assert np.allclose(ds, scale * d1, rtol=2e-3, atol=1e-6 * scale)


@pytest.mark.xfail(strict=True, reason="bug: the Poisson step's regulariser eps = 1e-8 * mean vertex area (mm2) is "
                   "added to the unitless cotangent Laplacian, so it grows with the mesh's scale: a 5 m sphere's "
                   "distances come out 10 % short (harmless at head scale with 1 mm triangles)")
def test_distances_scale_with_the_mesh_at_large_scale():
    v, f, _ = _sphere(3)
    d1 = GeodesicSolver(v, f).distance([0])
    ds = GeodesicSolver(100.0 * v, f).distance([0])
    assert np.allclose(ds, 100.0 * d1, rtol=2e-3)


def test_dense_mesh_is_simplified_and_carried_back():
    """Above max_faces the heat method runs on a vertex-clustered copy and each vertex takes its nearest clustered
    vertex's distance: errors are of the order of a cell (voxel_mm; measured up to 1.5 cells), so the bound is two."""
    v, f, _ = _sphere(4)
    voxel = 4.0
    g = HeadGeodesics(v, f, max_faces=len(f) - 1, voxel_mm=voxel)
    assert len(g.solver.f) < len(f)  # it did simplify
    pole = int(np.argmax(v[:, 2]))
    d = g.distance([pole])
    exact = _arc_from(v, pole)
    assert d.shape == (len(v),)
    assert np.all(np.abs(d - exact) <= 2 * voxel + 0.015 * exact), np.abs(d - exact).max()


def test_the_solver_of_a_mesh_is_kept_for_the_next_design():
    """HeadGeodesics.of: the same mesh (the same bytes) gets the same solver back, another mesh its own; only the
    last config.GEODESIC_CACHE meshes are kept; distances are those of a solver built afresh."""
    import trimesh

    from scalp3d import config

    meshes = [trimesh.creation.icosphere(3, radius=r) for r in (50.0, 60.0, 70.0)]
    a = HeadGeodesics.of(meshes[0].vertices, meshes[0].faces)
    assert HeadGeodesics.of(meshes[0].vertices.copy(), meshes[0].faces.copy()) is a
    b = HeadGeodesics.of(meshes[1].vertices, meshes[1].faces)
    assert b is not a
    assert np.array_equal(a.distance([0]), HeadGeodesics(meshes[0].vertices, meshes[0].faces).distance([0]))
    for m in meshes[1:]:
        HeadGeodesics.of(m.vertices, m.faces)
    assert config.GEODESIC_CACHE == 2
    assert HeadGeodesics.of(meshes[0].vertices, meshes[0].faces) is not a  # pushed out by the two after it


def test_a_line_of_sources_gives_the_distance_to_the_line(sphere4):
    """Sources along a line (a scar, a hairline's edge): an arc of the equator from 60 degrees west to 60 east. A
    point within 50 degrees of its middle lies R * |latitude| from it along its meridian. The heat method leaves each
    source its own offset (the arc's ends above its middle); levelled by the highest, the distances near the line
    were all zero out to 3 mm on the sample head's scar and short by as much beyond, so that a 3 mm scar was treated
    9 mm wide. Levelled by the nearest sources' own offsets, they keep the sphere's tolerance."""
    v, f, h, g = sphere4
    lat = np.arcsin(np.clip(v[:, 2] / R_MM, -1.0, 1.0))
    lon = np.degrees(np.arctan2(v[:, 1], v[:, 0]))
    line = np.flatnonzero((np.abs(v[:, 2]) < 0.5 * h) & (np.abs(lon) <= 60.0))
    assert len(line) > 10
    d = g.distance(line)
    exact = R_MM * np.abs(lat)
    near = (np.abs(lon) < 50.0) & (exact < 20.0)
    assert near.sum() > 200 and np.all(d[line] == 0.0)
    err = d[near] - exact[near]
    # (the sources themselves sit up to half an edge off the equator: that much more slack)
    assert np.all(np.abs(err) <= _tolerance(h, exact[near]) + 0.5 * h), f"worst error {np.abs(err).max():.2f} mm"
