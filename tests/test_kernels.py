"""The CPU kernels in scalp3d.kernels against their slow NumPy twins in tests/naive.py, plus invariants.

Inputs are small and seeded: a single triangle, an icosphere, random point sets, lattices (many exact ties), degenerate
(zero-area) faces. Integer outputs must match exactly; floats to a few ulps.
"""
import math

import numpy as np
import pytest
import trimesh

import naive
from scalp3d.kernels import (
    build_grid, conflict_graph, eliminate, interpolate_on_faces, nearest_distance, nearest_neighbour_tour,
    path_length, skin_distance, stratified_faces, triangle_areas,
)

RTOL = 1e-12


# ------------------------------------------------------------------------------------------------------------- inputs

def random_rotation(rng):
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    return q * np.sign(np.diag(r))


@pytest.fixture(scope="module")
def icosphere():
    """320 faces on a sphere of radius 10 (mm), with exact radial vertex normals."""
    mesh = trimesh.creation.icosphere(subdivisions=2, radius=10.0)
    vertices = np.ascontiguousarray(mesh.vertices, dtype=np.float64)
    faces = np.ascontiguousarray(mesh.faces, dtype=np.int64)
    normals = vertices / np.linalg.norm(vertices, axis=1)[:, None]
    return vertices, normals, faces, float(mesh.area)


def with_degenerate_faces(vertices, faces):
    """Append a repeated-corner face and a collinear face (both of area exactly 0)."""
    extra = np.array([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0], [2.0, 2.0, 2.0]])
    n = len(vertices)
    vertices = np.vstack([vertices, extra])
    bad = np.array([[0, 0, 1], [n, n + 1, n + 2], [5, 5, 5]], dtype=np.int64)
    return vertices, np.vstack([faces, bad])


def sphere_points(rng, n, radius):
    d = rng.normal(size=(n, 3))
    d /= np.linalg.norm(d, axis=1)[:, None]
    return np.ascontiguousarray(radius * d), np.ascontiguousarray(d)


def lattice(k, spacing=1.0):
    g = np.arange(k, dtype=np.float64) * spacing
    return np.ascontiguousarray(np.stack(np.meshgrid(g, g, g, indexing="ij"), axis=-1).reshape(-1, 3))


def csr_rows(indptr, indices, weights):
    """Rows as {column: weight} dicts, independent of the order inside a row."""
    rows = []
    for i in range(len(indptr) - 1):
        cols = indices[indptr[i]:indptr[i + 1]]
        assert len(set(cols.tolist())) == len(cols), f"row {i} lists a neighbour twice"
        rows.append(dict(zip(cols.tolist(), weights[indptr[i]:indptr[i + 1]].tolist())))
    return rows


# ----------------------------------------------------------------------------------------------------------- geometry

def test_triangle_areas_single_triangle():
    rng = np.random.default_rng(0)
    tri = np.array([[0.0, 0.0, 0.0], [3.0, 0.0, 0.0], [0.0, 4.0, 0.0]]) @ random_rotation(rng).T + [5.0, -2.0, 7.0]
    faces = np.array([[0, 1, 2]], dtype=np.int64)
    areas = triangle_areas(np.ascontiguousarray(tri), faces)
    assert areas.shape == (1,) and areas.dtype == np.float64
    np.testing.assert_allclose(areas, [6.0], rtol=1e-12)
    np.testing.assert_allclose(areas, naive.triangle_areas(tri, faces), rtol=RTOL)
    # orientation does not matter
    np.testing.assert_allclose(triangle_areas(np.ascontiguousarray(tri), faces[:, ::-1].copy()), areas, rtol=RTOL)


def test_triangle_areas_icosphere_matches_naive_and_trimesh(icosphere):
    vertices, _, faces, area = icosphere
    areas = triangle_areas(vertices, faces)
    np.testing.assert_allclose(areas, naive.triangle_areas(vertices, faces), rtol=RTOL)
    np.testing.assert_allclose(areas.sum(), area, rtol=1e-12)
    assert (areas > 0).all()


def test_triangle_areas_degenerate_faces_are_zero(icosphere):
    vertices, faces = with_degenerate_faces(icosphere[0], icosphere[2])
    areas = triangle_areas(vertices, faces)
    np.testing.assert_array_equal(areas[-3:], 0.0)
    np.testing.assert_allclose(areas, naive.triangle_areas(vertices, faces), rtol=RTOL, atol=0)


def test_triangle_areas_no_faces():
    assert triangle_areas(np.zeros((3, 3)), np.zeros((0, 3), dtype=np.int64)).shape == (0,)


def test_interpolate_on_faces_matches_naive(icosphere):
    vertices, normals, faces, _ = icosphere
    rng = np.random.default_rng(1)
    k = 300
    face_ids = rng.integers(0, len(faces), k)
    bary = rng.dirichlet([1.0, 1.0, 1.0], k)
    bary[:3] = np.eye(3)  # the three corners of a face
    face_ids[:3] = 7
    pts, nrm = interpolate_on_faces(vertices, normals, faces, face_ids, bary)
    ref_pts, ref_nrm = naive.interpolate_on_faces(vertices, normals, faces, face_ids, bary)
    np.testing.assert_allclose(pts, ref_pts, rtol=RTOL, atol=1e-12)
    np.testing.assert_allclose(nrm, ref_nrm, rtol=RTOL, atol=1e-12)
    np.testing.assert_allclose(np.linalg.norm(nrm, axis=1), 1.0, rtol=1e-12)
    np.testing.assert_array_equal(pts[:3], vertices[faces[7]])
    # inside the sphere (chords), and the normal points outward
    assert (np.linalg.norm(pts, axis=1) <= 10.0 + 1e-9).all()
    assert (np.einsum("ij,ij->i", pts, nrm) > 0).all()


def test_interpolate_on_faces_zero_normal_and_degenerate_face():
    vertices = np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [1.0, 1.0, 0.0]])
    vertex_normals = np.array([[0.0, 0.0, 1.0], [0.0, 0.0, -1.0], [0.0, 0.0, 1.0], [0.0, 0.0, 1.0]])
    faces = np.array([[0, 1, 2], [3, 3, 3]], dtype=np.int64)
    face_ids = np.array([0, 0, 1], dtype=np.int64)
    bary = np.array([[0.5, 0.5, 0.0], [0.2, 0.3, 0.5], [0.2, 0.3, 0.5]])
    pts, nrm = interpolate_on_faces(vertices, vertex_normals, faces, face_ids, bary)
    ref_pts, ref_nrm = naive.interpolate_on_faces(vertices, vertex_normals, faces, face_ids, bary)
    assert np.isfinite(nrm).all()
    np.testing.assert_array_equal(nrm[0], 0.0)  # opposite normals cancel: left at zero, not NaN
    np.testing.assert_allclose(nrm[1], [0.0, 0.0, 1.0], rtol=RTOL)
    np.testing.assert_allclose(pts[2], vertices[3], rtol=RTOL)  # a collapsed face is its one vertex
    np.testing.assert_allclose(pts, ref_pts, rtol=RTOL, atol=1e-15)
    np.testing.assert_allclose(nrm, ref_nrm, rtol=RTOL, atol=1e-15)


def test_vertex_neighbours_two_triangles_and_a_lone_vertex():
    from scalp3d.kernels.geometry import vertex_neighbours

    indptr, indices = vertex_neighbours(5, np.array([[0, 1, 2], [2, 1, 3]]))
    got = [indices[indptr[i]:indptr[i + 1]].tolist() for i in range(5)]
    assert got == [[1, 2], [0, 2, 3], [0, 1, 3], [1, 2], []]


def test_vertex_neighbours_icosphere_valences(icosphere):
    from scalp3d.kernels.geometry import vertex_neighbours

    vertices, _, faces, _ = icosphere
    indptr, indices = vertex_neighbours(len(vertices), faces)
    want = [set() for _ in vertices]
    for a, b, c in faces.tolist():
        want[a] |= {b, c}
        want[b] |= {a, c}
        want[c] |= {a, b}
    assert [indices[indptr[i]:indptr[i + 1]].tolist() for i in range(len(vertices))] == [sorted(s) for s in want]
    assert sorted(set(np.diff(indptr).tolist())) == [5, 6]  # 12 valence-5 vertices, the rest valence 6


# ----------------------------------------------------------------------------------------------------------- sampling

@pytest.mark.parametrize("seed", [0, 1, 2])
def test_stratified_faces_matches_naive(seed):
    rng = np.random.default_rng(seed)
    m = 60
    w = rng.random(m)
    w[rng.random(m) < 0.3] = 0.0  # zero-area (or zero-density) faces
    w[:3] = 0.0
    w[-4:] = 0.0
    cumulative = np.cumsum(w)
    M = 400
    u = rng.random(M)
    faces = stratified_faces(cumulative, u)
    np.testing.assert_array_equal(faces, naive.stratified_faces(cumulative, u))
    assert faces.dtype == np.int64
    assert (np.diff(faces) >= 0).all()
    assert (w[faces] > 0).all(), "a zero-weight face was chosen"
    # stratified: every face gets its share of the M samples to within 2
    counts = np.bincount(faces, minlength=m)
    assert (np.abs(counts - M * w / w.sum()) < 2).all()


def test_stratified_faces_single_face_and_extreme_jitter():
    np.testing.assert_array_equal(stratified_faces(np.array([2.5]), np.full(5, 0.999999)), 0)
    # regression: with u just below 1, (k + u) / M * total rounds up to the total and the walk used to run on to the
    # trailing zero-weight face 4
    cumulative = np.array([0.0, 1.0, 1.0, 3.0, 3.0])
    for u in (np.zeros(8), np.nextafter(np.ones(8), 0.0)):
        faces = stratified_faces(cumulative, u)
        np.testing.assert_array_equal(faces, naive.stratified_faces(cumulative, u))
        assert set(faces.tolist()) <= {1, 3}


# --------------------------------------------------------------------------------------------------------------- grid

@pytest.mark.parametrize("n, cell", [(0, 1.0), (1, 1.0), (7, 0.3), (200, 0.15), (200, 5.0)])
def test_build_grid_matches_naive(n, cell):
    rng = np.random.default_rng(n)
    points = np.ascontiguousarray(rng.normal(size=(n, 3)))
    got = build_grid(points, cell)
    ref = naive.build_grid(points, cell)
    for name, a, b in zip(("origin", "cells", "start", "order", "mask"), got, ref):
        np.testing.assert_array_equal(a, b, err_msg=name)
    origin, cells, start, order, mask = got
    assert mask + 1 >= 2 * n and (mask + 1) & mask == 0  # a power of two at least 2n
    assert sorted(order.tolist()) == list(range(n))
    for i in range(n):
        lo = origin + cells[i] * cell
        assert (lo <= points[i] + 1e-12).all() and (points[i] < lo + cell + 1e-12).all()
        b = naive.cell_hash(*cells[i], mask)
        assert i in order[start[b]:start[b + 1]]


@pytest.mark.parametrize("ring, shell_only", [(1, False), (0, True), (1, True), (2, True)])
def test_cube_cell_spans_exactly_one_cell(ring, shell_only):
    """Every cell of the cube around every point is one contiguous run of exactly its points, in index order, even
    where cells share a hash bucket (a table of 2n buckets for 300 clustered points has many collisions)."""
    from scalp3d.kernels.grid import cube_cell

    rng = np.random.default_rng(11)
    points = np.ascontiguousarray(rng.normal(size=(300, 3)) * [3.0, 3.0, 0.5])
    origin, cells, start, order, mask = build_grid(points, 0.7)
    w = 2 * ring + 1
    collisions = 0
    for b in range(mask + 1):
        collisions += len({tuple(cells[j]) for j in order[start[b]:start[b + 1]]}) > 1
    assert collisions > 0
    for i in range(0, 300, 7):
        for t in range(w ** 3):
            off = np.array([t // (w * w), (t // w) % w, t % w]) - ring
            lo, hi = cube_cell(t, ring, shell_only, *cells[i], cells, start, order, mask)
            want = np.flatnonzero((cells == cells[i] + off).all(axis=1))
            if shell_only and np.abs(off).max() != ring:
                want = want[:0]
            assert order[lo:hi].tolist() == want.tolist()


# ------------------------------------------------------------------------------------------------------------ nearest

@pytest.mark.parametrize("cell", [0.004, 0.05, 0.3, 10.0])
def test_nearest_distance_matches_naive(cell):
    rng = np.random.default_rng(3)
    points = np.ascontiguousarray(rng.random((250, 3)))
    queries = np.ascontiguousarray(rng.random((120, 3)) * 1.4 - 0.2)  # some outside the points' box
    dist, index = nearest_distance(queries, points, cell, False)
    ref_dist, ref_index = naive.nearest_distance(queries, points, cell, False)
    np.testing.assert_array_equal(index, ref_index)
    np.testing.assert_allclose(dist, ref_dist, rtol=RTOL)
    d, i = nearest_distance(points, points, cell, True)
    rd, ri = naive.nearest_distance(points, points, cell, True)
    np.testing.assert_array_equal(i, ri)
    np.testing.assert_allclose(d, rd, rtol=RTOL)
    assert (i != np.arange(len(points))).all()


def test_nearest_distance_ties_go_to_the_smaller_index():
    points = lattice(4, 0.5)
    rng = np.random.default_rng(4)
    perm = rng.permutation(len(points))
    points = np.ascontiguousarray(points[perm])
    for cell in (0.5, 0.2):
        dist, index = nearest_distance(points, points, cell, True)
        ref_dist, ref_index = naive.nearest_distance(points, points, cell, True)
        np.testing.assert_array_equal(dist, 0.5)
        np.testing.assert_array_equal(index, ref_index)
    # duplicated points: the copy with the smaller index wins, at distance 0
    dup = np.ascontiguousarray(np.vstack([points, points[:5]]))
    dist, index = nearest_distance(points[:5], dup, 0.5, False)
    np.testing.assert_array_equal(dist, 0.0)
    np.testing.assert_array_equal(index, np.arange(5))


def test_nearest_distance_far_queries_fall_back_to_brute_force():
    rng = np.random.default_rng(5)
    points = np.ascontiguousarray(rng.random((50, 3)))
    queries = np.array([[40.0, 0.0, 0.0], [-3.0, 7.0, 2.0], [0.5, 0.5, -30.0]])
    dist, index = nearest_distance(queries, points, 0.1, False)
    ref_dist, ref_index = naive.nearest_distance(queries, points, 0.1, False)
    np.testing.assert_array_equal(index, ref_index)
    np.testing.assert_allclose(dist, ref_dist, rtol=RTOL)


# -------------------------------------------------------------------------------------------------------- elimination

@pytest.mark.parametrize("radius", [0.5, 10.0, 80.0])
def test_skin_distance_on_a_circle_is_the_arc(radius):
    rng = np.random.default_rng(6)
    for _ in range(20):
        rot = random_rotation(rng)
        centre = rng.normal(size=3) * 5
        a, t = rng.uniform(0, 2 * math.pi), rng.uniform(1e-4, 3.0)
        n1 = rot @ [math.cos(a), math.sin(a), 0.0]
        n2 = rot @ [math.cos(a + t), math.sin(a + t), 0.0]
        p, q = centre + radius * n1, centre + radius * n2
        d = skin_distance(p, q, n1, n2)
        assert d == pytest.approx(radius * t, rel=1e-7)
        assert d == pytest.approx(naive.skin_distance(p, q, n1, n2), rel=1e-12)
        assert skin_distance(q, p, n2, n1) == pytest.approx(d, rel=1e-14)  # symmetric


def test_skin_distance_flat_and_coincident():
    n = np.array([0.0, 0.0, 1.0])
    p, q = np.array([1.0, 2.0, 3.0]), np.array([4.0, 6.0, 3.0])
    assert skin_distance(p, q, n, n) == 5.0  # same normal, chord in the tangent plane
    assert skin_distance(p, p, n, -n) == 0.0
    # a bump: normals tilted towards each other make the path longer than the chord
    n1 = np.array([-0.3, 0.0, 1.0]) / math.hypot(0.3, 1.0)
    n2 = np.array([0.3, 0.0, 1.0]) / math.hypot(0.3, 1.0)
    a, b = np.zeros(3), np.array([1.0, 0.0, 0.0])
    assert skin_distance(a, b, n1, n2) > 1.0
    assert skin_distance(a, b, n1, n2) == pytest.approx(naive.skin_distance(a, b, n1, n2), rel=1e-12)


@pytest.fixture(scope="module")
def scalp_points():
    """220 points on a sphere of radius 10 mm with variable radii; a few duplicates and a few flipped normals."""
    rng = np.random.default_rng(7)
    points, normals = sphere_points(rng, 220, 10.0)
    points[200:205] = points[0:5]
    normals[200:205] = normals[0:5]
    normals[210:] *= -1.0  # the other side of a fold
    radius = rng.uniform(1.5, 3.5, len(points))
    return points, normals, radius


@pytest.mark.parametrize("alpha, rmin_factor, fold_cos", [(8.0, 0.3, 0.5), (2.0, 0.0, -1.0), (8.0, 0.9, 0.9)])
def test_conflict_graph_matches_naive(scalp_points, alpha, rmin_factor, fold_cos):
    points, normals, radius = scalp_points
    got = conflict_graph(points, normals, radius, alpha, rmin_factor, fold_cos)
    ref = naive.conflict_graph(points, normals, radius, alpha, rmin_factor, fold_cos)
    np.testing.assert_array_equal(got[0], ref[0])  # same count per row
    rows, ref_rows = csr_rows(*got), csr_rows(*ref)
    assert sum(len(r) for r in rows) > len(points)  # the input has conflicts worth testing
    for i, (row, ref_row) in enumerate(zip(rows, ref_rows)):
        assert row.keys() == ref_row.keys(), f"row {i}"
        np.testing.assert_allclose([row[j] for j in ref_row], list(ref_row.values()), rtol=1e-12, err_msg=f"row {i}")


def test_conflict_graph_rows_in_scan_order(scalp_points):
    """Each row in a fixed order (the elimination sums and subtracts its weights in it: the same order, the same
    bits): the 27 cells of the largest radius around the point's, x-major, then the points of a cell by index."""
    points, normals, radius = scalp_points
    indptr, indices, _ = conflict_graph(points, normals, radius, 8.0, 0.3, 0.5)
    cells = np.floor((points - points.min(axis=0)) / radius.max()).astype(np.int64)
    for i in range(len(points)):
        want = [j for off in np.ndindex(3, 3, 3)
                for j in np.flatnonzero((cells == cells[i] + np.array(off) - 1).all(axis=1))
                if j != i and naive.pair_weight(i, j, points, normals, radius, 8.0, 0.3, 0.5) > 0.0]
        assert indices[indptr[i]:indptr[i + 1]].tolist() == want, i


def test_conflict_graph_rows_longer_than_their_slots_match_naive():
    """Rows of more conflicts than the one pass keeps (CONFLICT_ROW_CAP) are scanned again, and the arrays grow past
    their first guess (8 entries a point): the same graph as the naive one."""
    from scalp3d.kernels.elimination import CONFLICT_ROW_CAP

    rng = np.random.default_rng(11)
    points, normals = sphere_points(rng, 300, 10.0)
    radius = rng.uniform(2.0, 9.0, len(points))
    got = conflict_graph(points, normals, radius, 8.0, 0.3, 0.0)
    ref = naive.conflict_graph(points, normals, radius, 8.0, 0.3, 0.0)
    lengths = np.diff(ref[0])
    assert (lengths > CONFLICT_ROW_CAP).any() and (lengths <= CONFLICT_ROW_CAP).any() and lengths.mean() > 8
    np.testing.assert_array_equal(got[0], ref[0])
    for i, (row, ref_row) in enumerate(zip(csr_rows(*got), csr_rows(*ref))):
        assert row.keys() == ref_row.keys(), f"row {i}"
        # (rtol 1e-9: a weight (1 - d/r)^8 with d/r near 1 multiplies the distance's last-bit differences)
        np.testing.assert_allclose([row[j] for j in ref_row], list(ref_row.values()), rtol=1e-9, err_msg=f"row {i}")


def test_conflict_graph_over_several_blocks_matches_the_pair_rule():
    """More points than one block of rows (CONFLICT_BLOCK), some rows overflowing their slots: the graph holds
    exactly the pairs the naive rule gives (candidates from a KD-tree, each weighed by naive.pair_weight)."""
    from scipy.spatial import cKDTree

    from scalp3d.kernels.elimination import CONFLICT_BLOCK

    rng = np.random.default_rng(12)
    n = CONFLICT_BLOCK + 7000
    points, normals = sphere_points(rng, n, 100.0)
    radius = rng.uniform(1.5, 2.5, n)
    big = rng.choice(n, 60, replace=False)
    radius[big] = 30.0  # rows of about 250 conflicts
    indptr, indices, weights = conflict_graph(points, normals, radius, 8.0, 0.3, 0.0)
    tree = cKDTree(points)
    pairs = {tuple(p) for p in tree.query_pairs(2.5)}  # a pair conflicts within the mean of its radii
    pairs |= {(min(i, j), max(i, j)) for i, near in zip(big, tree.query_ball_point(points[big], 30.0)) for j in near
              if j != i}
    want = []
    for i, j in pairs:
        w = naive.pair_weight(i, j, points, normals, radius, 8.0, 0.3, 0.0)
        if w > 0.0:
            want += [(i, j, w), (j, i, w)]
    want = np.array(sorted(want))
    rows = np.repeat(np.arange(n), np.diff(indptr))
    order = np.lexsort((indices, rows))
    assert np.diff(indptr).max() > 200 and len(want) > 2 * n
    np.testing.assert_array_equal(rows[order], want[:, 0].astype(np.int64))
    np.testing.assert_array_equal(indices[order], want[:, 1].astype(np.int64))
    np.testing.assert_allclose(weights[order], want[:, 2], rtol=1e-9)


def test_conflict_graph_is_symmetric_and_respects_folds(scalp_points):
    points, normals, radius = scalp_points
    rows = csr_rows(*conflict_graph(points, normals, radius, 8.0, 0.3, 0.5))
    for i, row in enumerate(rows):
        assert i not in row
        for j, w in row.items():
            assert rows[j].get(i) == w, f"weight({i},{j}) != weight({j},{i})"
            assert 0.0 < w <= (1.0 - 0.3) ** 8.0
            assert normals[i] @ normals[j] >= 0.5
    assert all(rows[200 + k][k] == pytest.approx(0.7 ** 8) for k in range(5))  # duplicates: clamped at rmin
    # two close points on either side of a fold never conflict, however close
    p = np.array([[0.0, 0.0, 0.0], [0.1, 0.0, 0.0]])
    n = np.array([[0.0, 0.0, 1.0], [0.0, 0.0, -1.0]])
    indptr, indices, weights = conflict_graph(p, n, np.ones(2), 8.0, 0.3, 0.0)
    assert len(indices) == 0 and list(indptr) == [0, 0, 0]


def dyadic_graph(rng, n, p_edge):
    """Random symmetric CSR graph whose weights are multiples of 1/8: every sum and difference is exact."""
    upper = np.triu(rng.random((n, n)) < p_edge, 1)
    w = np.where(upper, rng.integers(1, 9, (n, n)) / 8.0, 0.0)
    w = w + w.T
    indptr = np.zeros(n + 1, dtype=np.int64)
    indices, weights = [], []
    for i in range(n):
        cols = np.nonzero(w[i])[0]
        cols = cols[rng.permutation(len(cols))]  # kernels do not promise sorted rows
        indices.extend(cols.tolist())
        weights.extend(w[i, cols].tolist())
        indptr[i + 1] = len(indices)
    return indptr, np.array(indices, dtype=np.int64), np.array(weights)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_eliminate_matches_naive_exactly_on_dyadic_weights(seed):
    # exact arithmetic and many tied weights: the order of removal must be identical, ties to the larger index
    rng = np.random.default_rng(seed)
    n = 60
    graph = dyadic_graph(rng, n, 0.12)
    removable = rng.random(n) > 0.15
    for target in (0, 10, 30, 59, n, n + 5):
        keep, removed = eliminate(*graph, removable, target)
        ref_keep, ref_removed = naive.eliminate(*graph, removable, target)
        np.testing.assert_array_equal(removed, ref_removed, err_msg=f"target {target}")
        np.testing.assert_array_equal(keep, ref_keep, err_msg=f"target {target}")


def test_eliminate_ties_go_to_the_larger_index():
    # three isolated pairs of equal weight, and two lone points: the lone ones (weight 0) go last, larger index first
    indptr = np.array([0, 1, 2, 3, 4, 4, 4, 5, 6], dtype=np.int64)
    indices = np.array([1, 0, 3, 2, 7, 6], dtype=np.int64)
    weights = np.full(6, 0.5)
    keep, removed = eliminate(indptr, indices, weights, np.ones(8, dtype=np.bool_), 0)
    np.testing.assert_array_equal(removed, [7, 3, 1, 6, 5, 4, 2, 0])
    np.testing.assert_array_equal(removed, naive.eliminate(indptr, indices, weights, np.ones(8, dtype=bool), 0)[1])


def from_scratch_weights(indptr, indices, weights, alive):
    return np.array([sum(weights[k] for k in range(indptr[i], indptr[i + 1]) if alive[indices[k]])
                     for i in range(len(indptr) - 1)])


def replay_is_greedy(indptr, indices, weights, removable, removed, tol):
    """Every removal took a live removable point whose from-scratch weight is the largest, to within ``tol``."""
    alive = np.ones(len(indptr) - 1, dtype=bool)
    for step, top in enumerate(removed):
        assert alive[top] and removable[top], f"step {step}: point {top} cannot be removed"
        weight = from_scratch_weights(indptr, indices, weights, alive)
        best = weight[alive & removable].max()
        assert weight[top] >= best - tol, f"step {step}: removed weight {weight[top]} while {best} was left"
        alive[top] = False


def first_near_tie(indptr, indices, weights, removable, removed, tol):
    """First step of ``removed`` at which the two heaviest live removable points weigh the same to within ``tol``."""
    alive = np.ones(len(indptr) - 1, dtype=bool)
    for step, top in enumerate(removed):
        weight = np.sort(from_scratch_weights(indptr, indices, weights, alive)[alive & removable])
        if len(weight) > 1 and weight[-1] - weight[-2] <= tol:
            return step
        alive[top] = False
    return len(removed)


@pytest.mark.parametrize("target", [0, 60, 150])
def test_eliminate_on_a_real_conflict_graph(scalp_points, target):
    points, normals, radius = scalp_points
    graph = conflict_graph(points, normals, radius, 8.0, 0.3, 0.5)
    n = len(points)
    removable = np.ones(n, dtype=np.bool_)
    removable[::9] = False  # dots already done in an earlier session
    keep, removed = eliminate(*graph, removable, target)
    ref_keep, ref_removed = naive.eliminate(*graph, removable, target)
    n_fixed = int((~removable).sum())
    assert keep.sum() == ref_keep.sum() == max(target, n_fixed)
    assert len(removed) == len(ref_removed) == n - max(target, n_fixed)
    # The kernel keeps running weights by subtraction, so they carry rounding residue, and exactly tied weights (an
    # isolated pair: w_ij == w_ji) are ordered by that residue rather than by index. So the whole order is checked
    # against the greedy rule to a tolerance, and must match the naive order exactly up to the first near-tie.
    replay_is_greedy(*graph, removable, removed, tol=1e-12)
    tie = first_near_tie(*graph, removable, ref_removed, tol=1e-12)
    assert tie >= min(30, len(removed)), "the input should have a long stretch without ties"
    np.testing.assert_array_equal(removed[:tie], ref_removed[:tie])


@pytest.mark.parametrize("seed", [0, 1])
def test_eliminate_invariants(seed):
    rng = np.random.default_rng(seed)
    n = 80
    graph = dyadic_graph(rng, n, 0.1)
    removable = rng.random(n) > 0.3
    n_fixed = int((~removable).sum())
    for target in (0, n_fixed - 3, n_fixed, 50, n, 2 * n):
        keep, removed = eliminate(*graph, removable, target)
        assert keep.dtype == np.bool_ and removed.dtype == np.int64
        assert keep.sum() == min(n, max(target, n_fixed)), f"target {target}"
        assert keep[~removable].all(), "a fixed point was removed"
        assert len(set(removed.tolist())) == len(removed) == n - keep.sum()
        assert not keep[removed].any()


# --------------------------------------------------------------------------------------------------------------- tour

@pytest.mark.parametrize("cell", [0.01, 0.08, 0.3, 5.0])
@pytest.mark.parametrize("start_index", [0, 137])
def test_nearest_neighbour_tour_matches_naive(cell, start_index):
    rng = np.random.default_rng(8)
    points = np.ascontiguousarray(rng.random((180, 3)) * [1.0, 1.0, 0.2])
    order = nearest_neighbour_tour(points, start_index, cell)
    np.testing.assert_array_equal(order, naive.nearest_neighbour_tour(points, start_index, cell))
    assert order[0] == start_index
    assert order.dtype == np.int64 and sorted(order.tolist()) == list(range(len(points)))


def test_nearest_neighbour_tour_on_a_lattice_breaks_ties_by_index():
    rng = np.random.default_rng(9)
    points = lattice(5, 0.4)
    points = np.ascontiguousarray(points[rng.permutation(len(points))])
    for cell in (0.4, 0.15):
        order = nearest_neighbour_tour(points, 3, cell)
        np.testing.assert_array_equal(order, naive.nearest_neighbour_tour(points, 3, cell))
        assert sorted(order.tolist()) == list(range(len(points)))


def test_nearest_neighbour_tour_small_and_clustered():
    assert nearest_neighbour_tour(np.zeros((0, 3)), 0, 1.0).shape == (0,)
    np.testing.assert_array_equal(nearest_neighbour_tour(np.ones((1, 3)), 0, 1.0), [0])
    # two far clusters and duplicates: the tour must jump between them through the brute-force fallback
    rng = np.random.default_rng(10)
    points = np.vstack([rng.random((30, 3)), rng.random((30, 3)) + 50.0, np.zeros((3, 3))])
    points = np.ascontiguousarray(points)
    order = nearest_neighbour_tour(points, 40, 0.2)
    np.testing.assert_array_equal(order, naive.nearest_neighbour_tour(points, 40, 0.2))
    assert sorted(order.tolist()) == list(range(len(points)))


def test_path_length_matches_naive():
    square = np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [1.0, 1.0, 0.0], [0.0, 1.0, 0.0]])
    assert path_length(square, np.arange(4)) == 3.0
    assert path_length(square, np.array([0, 2], dtype=np.int64)) == pytest.approx(math.sqrt(2.0), rel=1e-15)
    assert path_length(square, np.array([2], dtype=np.int64)) == 0.0
    rng = np.random.default_rng(11)
    points = np.ascontiguousarray(rng.normal(size=(100, 3)))
    order = rng.permutation(100)
    assert path_length(points, order) == pytest.approx(naive.path_length(points, order), rel=1e-12)
    # the greedy tour is shorter than a random order
    tour = nearest_neighbour_tour(points, 0, 0.5)
    assert path_length(points, tour) < path_length(points, order)
