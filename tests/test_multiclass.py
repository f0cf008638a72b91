"""Joint multi-class (session) relaxation: the kernel against a NumPy reference; place_dots(session_mode="joint")."""
import math

import numpy as np
import pytest

from scalp3d import kernels as K
from scalp3d.errors import InputError
from scalp3d.kernels.multiclass import (
    PAIR_ROW_CAP, DotState, Mesh, SweepStep, Targets, multiclass_sweep, pair_lists, session_scales,
)
from scalp3d.kernels.snap import vertex_faces
from scalp3d.placement import place_dots, spacing_for_density, vertex_normals_of
from scalp3d.quality import spread_figures

import naive
from helpers import faces_of, grid_mesh, multiclass_step
from shapes import ellipsoid_cap


def _plane_case(seed, n=160):
    """Dots on the plane z = 0 of :func:`helpers.grid_mesh`: four classes, varied spacings, the first ten on the
    other side of a fold (normals down: no interaction with the rest). Returns the generator for further draws."""
    rng = np.random.default_rng(seed)
    p = np.column_stack([rng.random(n) * 12 + 4, rng.random(n) * 12 + 4, np.zeros(n)])
    nrm = np.tile([0, 0, 1.0], (n, 1))
    nrm[:10] = [0, 0, -1.0]
    cls = rng.integers(0, 4, n)
    radius = 1.2 + rng.random(n) * 0.6
    scale = session_scales([0.3, 0.4, 0.3], 1.0, 0.85, 1.0, 0.97, fixed_class=True)
    return rng, p, nrm, cls, radius, scale


@pytest.mark.parametrize("reach", [0.0, 0.7, 6.0])  # 6 mm: rows overflow PAIR_ROW_CAP, the counting pass runs
def test_pair_lists_match_brute_force(reach):
    _, p, nrm, cls, radius, scale = _plane_case(4)
    ptr, idx = pair_lists(p, nrm, cls, radius, scale, reach, 0.0)
    d = np.linalg.norm(p[:, None] - p[None], axis=2)
    t = np.minimum(radius[:, None], radius[None]) * scale[cls[:, None], cls[None]] + reach
    want = (d < t) & (nrm @ nrm.T >= 0.0) & ~np.eye(len(p), dtype=bool)
    got = np.zeros_like(want)
    for i in range(len(p)):
        row = idx[ptr[i]:ptr[i + 1]]
        assert len(np.unique(row)) == len(row)
        got[i, row] = True
    assert np.array_equal(got, want) and np.array_equal(want, want.T)
    assert (reach < 6.0) or np.diff(ptr).max() > PAIR_ROW_CAP


def _brute_rows(p, nrm, cls, radius, scale, reach, cell):
    """Each row as the sweeps have always read it: the 27 cells of side ``cell`` around the point's, x-major, then
    the points of a cell by index."""
    c = np.floor((p - p.min(axis=0)) / cell).astype(np.int64)
    rows = []
    for i in range(len(p)):
        row = []
        for ox, oy, oz in np.ndindex(3, 3, 3):
            for j in np.flatnonzero((c == c[i] + np.array([ox - 1, oy - 1, oz - 1])).all(axis=1)):
                t = min(radius[i], radius[j]) * scale[cls[i], cls[j]] + reach
                if j != i and nrm[i] @ nrm[j] >= 0.0 and np.sum((p[i] - p[j]) ** 2) < t * t:
                    row.append(j)
        rows.append(row)
    return rows


@pytest.mark.parametrize("spread", [False, True])
def test_pair_lists_rows_in_scan_order(spread):
    """Rows in a fixed order (the sweeps sum their pushes in it: the same order, the same bits): cells x-major, points
    by index within a cell. ``spread``: two clusters a kilometre apart, where the dense grid takes larger cells (the
    same pairs, in the order of those cells)."""
    from scalp3d.kernels.grid import dense_cell

    _, p, nrm, cls, radius, scale = _plane_case(7)
    if spread:
        p[80:, 0] += 1e6
    ptr, idx = pair_lists(p, nrm, cls, radius, scale, 0.7, 0.0)
    cell = radius.max() * scale.max() + 0.7
    assert (dense_cell(p, cell) > cell) == spread
    want = _brute_rows(p, nrm, cls, radius, scale, 0.7, dense_cell(p, cell))
    for i in range(len(p)):
        assert idx[ptr[i]:ptr[i + 1]].tolist() == want[i], i
    assert sum(map(len, want)) > 4 * len(p)


@pytest.mark.parametrize("reach", [0.7, 6.0])
def test_pair_lists_of_some_rows(reach):
    """Rows asked for are the full lists' rows, the others empty (the joint relaxation leaves fixed dots' rows out);
    a sweep on them moves every movable dot exactly as on the full lists."""
    rng, p, nrm, cls, radius, scale = _plane_case(6)
    rows = rng.random(len(p)) > 0.4
    full_ptr, full_idx = pair_lists(p, nrm, cls, radius, scale, reach, 0.0)
    ptr, idx = pair_lists(p, nrm, cls, radius, scale, reach, 0.0, rows=rows)
    for i in range(len(p)):
        want = full_idx[full_ptr[i]:full_ptr[i + 1]] if rows[i] else np.zeros(0, np.int64)
        assert np.array_equal(idx[ptr[i]:ptr[i + 1]], want)
    assert (~rows).any() and (np.diff(full_ptr)[~rows] > 0).any()  # rows left out that the full lists fill
    v, f = grid_mesh()
    vn = vertex_normals_of(v, f)
    vf = vertex_faces(len(v), f)
    nrm[:] = [0, 0, 1.0]
    full_ptr, full_idx = pair_lists(p, nrm, cls, radius, scale, reach, 0.0)
    ptr, idx = pair_lists(p, nrm, cls, radius, scale, reach, 0.0, rows=rows)
    state = DotState(p, nrm, faces_of(p), np.full((len(p), 3), 1 / 3))
    args = (rows, Targets(cls, radius, scale), SweepStep(0.0, 0.6, 0.3))
    mesh = Mesh(v, vn, f, vf[0], vf[1], np.ones(len(f), bool))
    a = multiclass_sweep(state, *args, (full_ptr, full_idx), mesh)
    b = multiclass_sweep(state, *args, (ptr, idx), mesh)
    for x, y in zip(a, b):
        assert np.array_equal(x, y)
    assert a[5] > 20  # dots did move


def test_sweeping_only_the_rows_to_sweep_changes_nothing():
    """After a sweep, the next one computed only on :func:`rows_to_sweep`'s rows (a violation, or a moved dot among
    theirs) gives exactly what computing every row gives, and leaves most rows out where the dots are even."""
    from scalp3d.kernels.multiclass import rows_to_sweep

    v, f = grid_mesh(41, 1.0)
    vn = vertex_normals_of(v, f)
    vf = vertex_faces(len(v), f)
    rng = np.random.default_rng(8)
    # an even lattice 1.0 mm apart, targets 0.9 mm: no violation, but for a few dots pushed together
    x, y = np.meshgrid(np.arange(3, 37) + 0.3, np.arange(3, 37) + 0.4)
    p = np.column_stack([x.ravel(), y.ravel(), np.zeros(x.size)])
    p[rng.choice(len(p), 12, replace=False), :2] += rng.uniform(-0.4, 0.4, (12, 2))
    n = len(p)
    nrm = np.tile([0, 0, 1.0], (n, 1))
    cls = rng.integers(0, 2, n)
    radius = np.ones(n)
    scale = np.full((2, 2), 0.9)
    movable = rng.random(n) > 0.1
    mesh = Mesh(v, vn, f, vf[0], vf[1], np.ones(len(f), bool))
    lists = pair_lists(p, nrm, cls, radius, scale, 0.5, 0.0)
    targets, step = Targets(cls, radius, scale), SweepStep(0.0, 1.0, 0.3)
    violated = np.empty(n)
    first = multiclass_sweep(DotState(p, nrm, faces_of(p), np.full((n, 3), 1 / 3)), movable, targets, step, lists,
                             mesh, worst_rows=violated)
    changed = (first[0] != p).any(axis=1)
    assert 0 < changed.sum() < 40 and (violated > 0).sum() < 60
    state = DotState(*first[:4])
    active = rows_to_sweep(violated, changed, *lists)
    full = multiclass_sweep(state, movable, targets, step, lists, mesh)
    part = multiclass_sweep(state, movable, targets, step, lists, mesh, active=active)
    for a, b in zip(full, part):
        assert np.array_equal(a, b)
    assert full[5] > 0 and active.sum() < 0.2 * n  # dots did move, and most rows were left out
    # the rows left out had no violation: computed anyway, they stay as they are
    rows = np.empty(n)
    multiclass_sweep(state, movable, targets, step, lists, mesh, worst_rows=rows)
    assert (rows[~active] == 0).all()


def test_sweep_on_reused_lists_equals_a_fresh_sweep():
    """Lists built with a reach, after the dots moved less than half of it, give the fresh sweep's result (up to the
    order in which the pushes are summed)."""
    v, f = grid_mesh()
    vn = vertex_normals_of(v, f)
    rng, p, nrm, cls, radius, scale = _plane_case(5)
    nrm[:] = [0, 0, 1.0]
    n = len(p)
    movable = rng.random(n) > 0.2
    vf = vertex_faces(len(v), f)
    ok = np.ones(len(f), bool)
    ptr, idx = pair_lists(p, nrm, cls, radius, scale, 1.0, 0.0)
    q = p.copy()
    q[:, :2] += rng.uniform(-0.2, 0.2, (n, 2))  # every move < reach / 2
    fq = faces_of(q)
    bq = np.full((n, 3), 1 / 3)
    a = multiclass_step(q, nrm, fq, bq, movable, cls, radius, scale, 0.0, 0.6, 0.3, v, vn, f, vf[0], vf[1], ok)
    b = multiclass_sweep(DotState(q, nrm, fq, bq), movable, Targets(cls, radius, scale), SweepStep(0.0, 0.6, 0.3),
                         (ptr, idx), Mesh(v, vn, f, vf[0], vf[1], ok))
    for x, y in zip(a, b):
        assert np.allclose(x, y, rtol=0, atol=1e-12)
    assert np.array_equal(a[2], b[2]) and a[5] == b[5] > 20  # same faces; dots did move


def test_session_scales():
    s = session_scales([0.3, 0.4, 0.3], 1.0, 0.75, 0.82, 0.75, first_two_floor=0.82, fixed_class=True)
    assert s.shape == (4, 4) and np.allclose(s, s.T)
    assert np.isclose(s[0, 0], 0.75 / math.sqrt(0.3)) and np.isclose(s[1, 1], 0.75 / math.sqrt(0.4))
    assert np.isclose(s[0, 1], max(0.82, 0.75 / math.sqrt(0.7))) and s[0, 2] == s[1, 2] == s[3, 0] == 0.82
    # with fixed dots the sessions share the new dots only: their own spacing is wider
    assert np.isclose(session_scales([0.5, 0.5], 0.5, 0.85)[0, 0], 0.85 / math.sqrt(0.25))


def test_multiclass_step_matches_naive_on_a_plane():
    v, f = grid_mesh()
    vn = vertex_normals_of(v, f)
    rng, p, nrm, cls, radius, scale = _plane_case(3)
    n = len(p)
    fid = faces_of(p)
    movable = rng.random(n) > 0.2
    vf = vertex_faces(len(v), f)
    got, gn, gf, gb, worst, moved = multiclass_step(p, nrm, fid, np.full((n, 3), 1 / 3), movable, cls, radius, scale,
                                                    0.0, 0.6, 0.3, v, vn, f, vf[0], vf[1], np.ones(len(f), bool))
    want, want_worst = naive.multiclass_step_on_plane(p, nrm, movable, cls, radius, scale, 0.0, 0.6, 0.3)
    assert np.allclose(got, want, atol=1e-9)
    assert np.isclose(worst, want_worst) and worst > 0.1
    assert np.array_equal(got[~movable], p[~movable]) and moved == (got != p).any(axis=1).sum() > 50
    # faces and barycentric coordinates describe the new points; normals stay those of the plane
    rows = (got != p).any(axis=1)
    pts = (gb[:, :, None] * v[f[gf]]).sum(axis=1)
    assert np.allclose(pts[rows], got[rows], atol=1e-9) and np.array_equal(gf[rows], faces_of(got[rows]))
    assert np.allclose(gn[rows], [0, 0, 1])


def test_fixed_dots_never_move_and_dots_stay_off_closed_faces():
    v, f = grid_mesh()
    vn = vertex_normals_of(v, f)
    ok = v[f][:, :, 0].max(axis=1) <= 10  # only the left half may hold dots
    rng = np.random.default_rng(4)
    n = 120
    p = np.column_stack([rng.random(n) * 5 + 4.99, rng.random(n) * 8 + 6, np.zeros(n)])
    p[:, 0] = np.minimum(p[:, 0], 9.9)
    fid = faces_of(p)
    movable = np.arange(n) % 4 != 0
    cls = np.where(movable, np.arange(n) % 3, 3)
    scale = session_scales([0.3, 0.4, 0.3], 1.0, 0.85, 1.0, 0.97, fixed_class=True)
    vf = vertex_faces(len(v), f)
    q, nq, fq, bq = p, np.tile([0, 0, 1.0], (n, 1)), fid, np.full((n, 3), 1 / 3)
    for _ in range(40):
        q, nq, fq, bq, worst, moved = multiclass_step(q, nq, fq, bq, movable, cls, np.full(n, 1.0), scale, 0.0, 0.5,
                                                      0.3, v, vn, f, vf[0], vf[1], ok)
    assert np.array_equal(q[~movable], p[~movable])
    assert ok[fq].all() and q[:, 0].max() <= 10.0 + 1e-12
    assert (q[movable] != p[movable]).any(axis=1).mean() > 0.5


def test_a_pair_pressed_against_a_closed_edge_slides_along_it():
    # two dots at the edge of the faces that may hold dots (x <= 10), too close, their pair direction pointing out
    # of that half: the part of each step across the edge is dropped and they slide apart along it (before, a step
    # that left the open faces was refused whole and such a pair stayed under its target for good)
    v, f = grid_mesh()
    vn = vertex_normals_of(v, f)
    ok = v[f][:, :, 0].max(axis=1) <= 10
    p = np.array([[9.95, 10.2, 0.0], [9.55, 10.6, 0.0]])
    fid = faces_of(p)
    vf = vertex_faces(len(v), f)
    n = len(p)
    q, nq, fq, bq = p, np.tile([0, 0, 1.0], (n, 1)), fid, np.full((n, 3), 1 / 3)
    for _ in range(12):
        q, nq, fq, bq, worst, moved = multiclass_step(q, nq, fq, bq, np.ones(n, bool), np.zeros(n, np.int64),
                                                      np.full(n, 1.5), np.ones((1, 1)), 0.0, 1.0, 0.3, v, vn, f,
                                                      vf[0], vf[1], ok)
    assert ok[fq].all() and q[:, 0].max() <= 10.0 + 1e-12
    assert np.linalg.norm(q[0] - q[1]) > 0.97 * 1.5, q  # started 0.57 mm apart, target 1.5 mm


@pytest.fixture(scope="module")
def cap():
    v, f = ellipsoid_cap(60)  # 35k triangles, 556 cm2
    return v, f, vertex_normals_of(v, f), float(K.triangle_areas(v, f).sum())


def rho_of(p, area):
    return spread_figures(p, np.full(len(p), math.sqrt(2 * area / (math.sqrt(3) * len(p)))))


@pytest.fixture(scope="module")
def both_modes(cap):
    v, f, vn, area = cap
    return {mode: place_dots(v, f, count=5000, seed=3, vertex_normals=vn, session_mode=mode)
            for mode in ("subsets", "joint")}


def test_joint_mode_spreads_every_session(cap, both_modes):
    v, f, vn, area = cap
    sub, joint = both_modes["subsets"], both_modes["joint"]
    assert np.bincount(joint.session).tolist() == [0, 1500, 2000, 1500]
    assert np.array_equal(np.sort(joint.ids), np.arange(1, 5001))
    u = rho_of(joint.positions, area)
    assert u["rho"] >= 0.75 and u["nn_p1"] >= 0.78 and u["nn_cv"] >= 0.03
    for k in (1, 2, 3):
        a = rho_of(sub.positions[sub.session == k], area)["rho"]
        b = rho_of(joint.positions[joint.session == k], area)["rho"]
        assert b > a and b >= 0.70, (k, a, b)
    assert rho_of(joint.positions[joint.session <= 2], area)["rho"] >= 0.70
    # on the surface, unit normals, faces and barycentric coordinates consistent
    assert np.allclose(np.linalg.norm(joint.normals, axis=1), 1.0)
    r = np.linalg.norm(joint.positions / np.array([95.0, 80.0, 110.0]), axis=1)
    assert np.abs(r - 1).max() < 1e-3
    assert np.allclose((joint.bary[:, :, None] * v[f[joint.face_ids]]).sum(axis=1), joint.positions, atol=1e-9)


def test_joint_mode_with_fixed_dots(cap):
    v, f, vn, area = cap
    old = place_dots(v, f, density_per_cm2=4.0, seed=5, vertex_normals=vn, sessions=1)
    out = {mode: place_dots(v, f, density_per_cm2=10.0, seed=6, vertex_normals=vn, fixed=old.positions,
                            session_mode=mode) for mode in ("subsets", "joint")}
    new = out["joint"]
    total = len(old) + len(new)
    assert abs(total / (area / 100 * 10.0) - 1) < 0.02
    counts = np.round(np.array([0.3, 0.7, 1.0]) * len(new)).astype(int)
    assert np.bincount(new.session).tolist() == [0, *np.diff(np.concatenate([[0], counts]))]
    dmax = float(spacing_for_density(total / area * 100))
    d, _ = K.nearest_distance(np.ascontiguousarray(new.positions), np.ascontiguousarray(old.positions), dmax, False)
    assert d.min() > 0.6 * dmax  # never on or next to an old dot
    # frozen old dots leave holes that cannot take every target (the projection lowers them: ~0.81 here); still,
    # the union and the worst session are better spread than with subsets
    worst = {}
    for mode, dots in out.items():
        worst[mode] = min(rho_of(dots.positions[dots.session == k], area)["rho"] for k in (1, 2, 3))
    assert worst["joint"] > worst["subsets"] + 0.1 and worst["joint"] > 0.6
    assert rho_of(np.vstack([old.positions, new.positions]), area)["rho"] > 0.6


def test_joint_mode_two_sessions_and_bad_mode(cap):
    v, f, vn, area = cap
    d = place_dots(v, f, count=1500, seed=1, vertex_normals=vn, sessions=2, session_mode="joint")
    assert np.bincount(d.session).tolist() == [0, 750, 750]
    for k in (1, 2):
        assert rho_of(d.positions[d.session == k], area)["rho"] >= 0.70
    with pytest.raises(InputError, match="session_mode"):
        place_dots(v, f, count=10, session_mode="together")
