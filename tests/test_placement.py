"""place_dots: counts, density fields, sessions, fixed dots, folds, holes, degenerate input, determinism."""
import numpy as np
import pytest

from scalp3d.errors import InputError
from scalp3d.placement import place_dots, spacing_for_density, vertex_normals_of
from scalp3d.quality import spread_figures
from scalp3d import kernels as K

from helpers import arrays_with_threads
from shapes import ellipsoid_cap


@pytest.fixture(scope="module")
def cap():
    v, f = ellipsoid_cap(60)  # 35k triangles, 556 cm2
    return v, f, vertex_normals_of(v, f), float(K.triangle_areas(v, f).sum())


def nn_ratio(p, dmax):
    return spread_figures(p, np.full(len(p), dmax))


def test_exact_count_and_quality(cap):
    v, f, vn, area = cap
    d = place_dots(v, f, count=10000, seed=0, vertex_normals=vn)
    assert len(d) == 10000 and len(np.unique(d.ids)) == 10000
    dmax = float(spacing_for_density(10000 / area * 100))
    u = nn_ratio(d.positions, dmax)
    assert u["rho"] >= 0.75 and u["nn_p1"] >= 0.78 and u["nn_cv"] >= 0.03
    # on the surface, unit normals
    assert np.allclose(np.linalg.norm(d.normals, axis=1), 1.0)
    r = np.linalg.norm(d.positions / np.array([95.0, 80.0, 110.0]), axis=1)
    assert np.abs(r - 1).max() < 1e-3


def test_sessions_spread_on_their_own(cap):
    v, f, vn, area = cap
    d = place_dots(v, f, count=10000, seed=2, vertex_normals=vn, sessions=(0.3, 0.7, 1.0))
    assert np.bincount(d.session).tolist() == [0, 3000, 4000, 3000]
    dmax = float(spacing_for_density(10000 / area * 100))
    s1 = nn_ratio(d.positions[d.session == 1], dmax / np.sqrt(0.3))
    c2 = nn_ratio(d.positions[d.session <= 2], dmax / np.sqrt(0.7))
    s3 = nn_ratio(d.positions[d.session == 3], dmax / np.sqrt(0.3))
    assert s1["rho"] > 0.6 and c2["rho"] > 0.6 and s3["rho"] > 0.55
    # each session covers the whole cap: every octant has its share
    for k in (1, 2, 3):
        p = d.positions[d.session == k]
        octant = (p[:, 0] > 0) * 1 + (p[:, 1] > 0) * 2
        share = np.bincount(octant, minlength=4) / len(p)
        assert np.all(np.abs(share - 0.25) < 0.04), (k, share)


def test_three_zone_field_with_band(cap):
    v, f, vn, area = cap
    # 30 / 60 / 100 per cm2 by height, 20 mm bands between
    z = v[:, 2]
    dens = np.interp(z, [0, 30, 50, 70, 90, 200], [30, 30, 60, 60, 100, 100])
    d = place_dots(v, f, density_per_cm2=dens, seed=1, vertex_normals=vn)
    areas = K.triangle_areas(v, f)
    fz = v[f][:, :, 2].mean(axis=1)
    dz = d.positions[:, 2]
    planned_face = areas * dens[f].mean(axis=1) / 100
    for lo, hi in ((0, 30), (50, 70), (90, 200)):
        m = (fz >= lo) & (fz < hi)
        got = ((dz >= lo) & (dz < hi)).sum()
        want = planned_face[m].sum()
        assert abs(got / want - 1) < 0.05, (lo, hi, got, want)


@pytest.mark.parametrize("session_mode", ["joint", "subsets"])
def test_zero_density_hole_gets_no_dot(cap, session_mode):
    v, f, vn, area = cap
    hole = np.linalg.norm(v[:, :2], axis=1) < 25  # a disc at the top
    dens = np.where(hole, 0.0, 50.0)
    d = place_dots(v, f, density_per_cm2=dens, seed=0, vertex_normals=vn, session_mode=session_mode)
    open_face = ~(dens[f] <= 0).any(axis=1)
    assert open_face[d.face_ids].all()
    assert np.linalg.norm(d.positions[:, :2], axis=1).min() > 23


def test_fixed_dots_interleave(cap):
    v, f, vn, area = cap
    old = place_dots(v, f, density_per_cm2=30.0, seed=5, vertex_normals=vn, sessions=1)
    new = place_dots(v, f, density_per_cm2=70.0, seed=6, vertex_normals=vn, fixed=old.positions, sessions=2)
    total = len(old) + len(new)
    assert abs(total / (area / 100 * 70.0) - 1) < 0.02  # the final density counts the old dots
    dmax = float(spacing_for_density(total / area * 100))
    d, _ = K.nearest_distance(np.ascontiguousarray(new.positions), np.ascontiguousarray(old.positions), dmax, False)
    assert d.min() > 0.5 * dmax  # never on or next to an old dot
    both = np.vstack([old.positions, new.positions])
    assert nn_ratio(both, dmax)["rho"] > 0.5


def _fold(gap_mm):
    """A thin closed slab 40 x 40 mm, ``gap_mm`` thick: two skins facing away from each other."""
    import trimesh

    box = trimesh.creation.box(extents=(40.0, 40.0, gap_mm))
    v, f = trimesh.remesh.subdivide_to_size(box.vertices, box.faces, max_edge=1.0, max_iter=20)
    return np.asarray(v), np.asarray(f, dtype=np.int64)


def test_fold_sides_do_not_block_each_other():
    v, f = _fold(0.5)
    vn = vertex_normals_of(v, f)
    d = place_dots(v, f, density_per_cm2=100.0, seed=0, vertex_normals=vn)
    top = d.positions[:, 2] > 0.2
    bottom = d.positions[:, 2] < -0.2
    # both skins get their full density although they are only 0.5 mm apart
    assert abs(top.sum() / 1600 - 1) < 0.08 and abs(bottom.sum() / 1600 - 1) < 0.08
    dmax = float(spacing_for_density(100.0))
    assert nn_ratio(d.positions[top], dmax)["rho"] > 0.75  # 0.64 when the two skins block each other


def test_single_triangle_and_degenerate_faces():
    v = np.array([[0, 0, 0], [10, 0, 0], [0, 10, 0], [5, 5, 0], [5, 5, 0.0]])
    f = np.array([[0, 1, 2], [3, 4, 3], [1, 3, 4]])  # two zero-area faces
    d = place_dots(v, f, count=40, seed=0, sessions=1)
    assert len(d) == 40 and np.all(d.face_ids == 0)
    assert (d.positions[:, :2] >= -1e-9).all() and (d.positions[:, :2].sum(axis=1) <= 10 + 1e-9).all()


@pytest.mark.parametrize("kwargs,match", [
    (dict(), "count= or density_per_cm2="),
    (dict(count=-1), "count must be"),
    (dict(density_per_cm2=-5.0), ">= 0"),
    (dict(count=10, sessions=(0.5, 0.4, 1.0)), "rise strictly"),
])
def test_bad_arguments(kwargs, match):
    v = np.array([[0, 0, 0], [10, 0, 0], [0, 10, 0.0]])
    with pytest.raises(InputError, match=match):
        place_dots(v, np.array([[0, 1, 2]]), **kwargs)


def test_same_seed_same_dots_any_thread_count(tmp_path):
    # the default session mode: joint relaxation, neighbour lists, guarded passes
    code = ("import numpy as np, sys; from shapes import ellipsoid_cap; "
            "from scalp3d.placement import place_dots; v, f = ellipsoid_cap(40); "
            "d = place_dots(v, f, count=4000, seed=7); "
            "np.save(sys.argv[1], np.column_stack([d.positions, d.normals, d.session, d.face_ids, d.bary]))")
    outs = arrays_with_threads(code, tmp_path)
    assert outs[0].tobytes() == outs[1].tobytes()
    v, f = ellipsoid_cap(40)
    other = place_dots(v, f, count=4000, seed=8)
    assert not np.array_equal(other.positions, outs[0][:, :3])


def test_new_dots_never_sit_under_the_floor_of_fixed_ones():
    """Interleaving 30 % more dots among 10,000 already on the skin (a touch-up): the relaxation's floor guard once
    left a few new dots 0.1 mm from fixed ones (a dot that starts under the floor cannot move); no new dot is now
    within its pair's floor of a fixed one."""
    from scipy.spatial import cKDTree

    from scalp3d import config
    from scalp3d.placement import local_spacing_mm
    from scalp3d.sample import load_sample_head

    _, head, _ = load_sample_head()
    z = head.vertices[:, 2]
    dens = np.where(z > np.percentile(z, 55), 100.0, 0.0)
    old = place_dots(head.vertices, head.faces, density_per_cm2=dens, sessions=1, seed=3,
                     vertex_normals=head.vertex_normals)
    new = place_dots(head.vertices, head.faces, density_per_cm2=dens * 1.3, sessions=1, seed=4,
                     vertex_normals=head.vertex_normals, fixed=old.positions)
    assert 0.2 < len(new) / len(old) < 0.35
    d, _ = cKDTree(old.positions).query(new.positions)
    spacing = local_spacing_mm(np.full(len(new), 130.0), 130.0)
    floor = np.maximum(config.SPACING_FLOOR_FRACTION * spacing, config.SPACING_FLOOR_MIN_MM)
    assert (d >= floor).all(), (d.min(), floor.min())
