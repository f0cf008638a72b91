"""The CUDA kernels in scalp3d.kernels.cuda against the CPU kernels and the naive references, on numba's simulator.

conftest.py puts NUMBA_ENABLE_CUDASIM=1 in the environment before numba is imported. numba reads it into
``numba.config.ENABLE_CUDASIM`` when numba is imported (numba-cuda's own config is an alias of numba's), and
``numba.cuda`` picks the simulator or the driver from that value when it is first imported. So if numba was imported
before conftest ran (a plugin, ``-p``), the value is refreshed here; only once ``numba.cuda`` itself has been imported
without the simulator is it too late, and then the tests run on a real GPU if there is one, or are skipped saying why.
The inputs stay at a few hundred elements and THREADS_PER_BLOCK / MAX_BLOCKS are patched small: the simulator runs
every thread as a Python thread.
"""
import os
import subprocess
import sys
import textwrap

import numba
import numpy as np
import pytest

ASKED_NOT_TO_SIMULATE = os.environ.get("NUMBA_ENABLE_CUDASIM") == "0"
CUDA_IMPORTED_EARLIER = "numba.cuda" in sys.modules
if not CUDA_IMPORTED_EARLIER and not ASKED_NOT_TO_SIMULATE:
    os.environ["NUMBA_ENABLE_CUDASIM"] = "1"
    numba.config.ENABLE_CUDASIM = 1  # stale if numba was imported before conftest.py set the variable

from numba import cuda  # noqa: E402

import naive  # noqa: E402
import scalp3d.kernels.cuda as kcuda  # noqa: E402
from scalp3d.kernels import interpolate_on_faces, nearest_distance, triangle_areas  # noqa: E402
from scalp3d.kernels.multiclass import (  # noqa: E402
    DotState, Mesh, SweepStep, Targets, multiclass_sweep, pair_lists, session_scales,
)
from scalp3d.kernels.snap import vertex_faces  # noqa: E402

SIMULATOR = cuda.jit.__module__.startswith("numba.cuda.simulator")
USABLE = SIMULATOR or cuda.is_available()
if ASKED_NOT_TO_SIMULATE:
    WHY_NOT = "NUMBA_ENABLE_CUDASIM=0 is set and there is no CUDA GPU; run with NUMBA_ENABLE_CUDASIM=1"
else:
    WHY_NOT = ("numba.cuda was imported without the simulator before this test module (before conftest.py set "
               "NUMBA_ENABLE_CUDASIM=1?) and there is no CUDA GPU; run with NUMBA_ENABLE_CUDASIM=1 in the environment")
needs_cuda = pytest.mark.skipif(not USABLE, reason=WHY_NOT)
# on the simulator the kernels run the same float64 operations in the same order as the CPU kernels; a GPU may fuse
# multiply-adds, so allow a few ulps
RTOL = 1e-12


@pytest.fixture(autouse=True, scope="module")
def long_thread_slices():
    """The simulator runs each GPU thread as a Python thread, and its main thread polls them in a busy loop. With
    Python's default switch interval (5 ms) they handed the GIL to one another so often that one simulated conflict
    graph took anywhere from 0.5 to 110 s, run after run; with 50 ms slices it takes 1-1.7 s every time."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(0.05)
    yield
    sys.setswitchinterval(before)


@pytest.fixture(autouse=True)
def small_launches(monkeypatch):
    """Few blocks: the grid-stride loops go round several times (32 threads a block: with 4, the simulator's polling
    of a block's threads took most of the time)."""
    monkeypatch.setattr(kcuda, "THREADS_PER_BLOCK", 32)
    monkeypatch.setattr(kcuda, "MAX_BLOCKS", 2)


@pytest.fixture(scope="module")
def icosphere():
    import trimesh

    mesh = trimesh.creation.icosphere(subdivisions=2, radius=10.0)
    vertices = np.ascontiguousarray(mesh.vertices, dtype=np.float64)
    faces = np.ascontiguousarray(mesh.faces, dtype=np.int64)
    normals = vertices / np.linalg.norm(vertices, axis=1)[:, None]
    return vertices, normals, faces


def test_the_simulator_is_in_use():
    # The kernels below must really run on the simulator, not be skipped: whenever numba.cuda was still to be imported
    # here and nobody asked for NUMBA_ENABLE_CUDASIM=0, the simulator must have been switched on.
    if ASKED_NOT_TO_SIMULATE:
        pytest.skip("NUMBA_ENABLE_CUDASIM=0 is set")
    if CUDA_IMPORTED_EARLIER and not SIMULATOR:
        pytest.skip(WHY_NOT)
    assert SIMULATOR, "numba.cuda was imported after NUMBA_ENABLE_CUDASIM=1 was set, yet without the simulator"
    assert numba.config.ENABLE_CUDASIM
    assert cuda.is_available()
    assert type(cuda.to_device(np.zeros(1))).__module__.startswith("numba.cuda.simulator")


# ------------------------------------------------------------------------------------------------------ triangle areas

@needs_cuda
def test_triangle_areas_cuda_single_triangle():
    tri = [[0.0, 0.0, 0.0], [3.0, 0.0, 0.0], [0.0, 4.0, 0.0]]
    areas = kcuda.triangle_areas_cuda(tri, [[0, 1, 2]])  # lists are converted by the wrapper
    assert areas.shape == (1,) and areas.dtype == np.float64
    np.testing.assert_allclose(areas, [6.0], rtol=RTOL)


@needs_cuda
def test_triangle_areas_cuda_matches_cpu_and_naive(icosphere):
    vertices, _, faces = icosphere
    faces = faces[:200]
    # degenerate faces: a repeated corner and a collapsed one; a Fortran-ordered int32 copy to exercise the wrapper
    faces = np.vstack([faces, [[0, 0, 1], [5, 5, 5]]]).astype(np.int32)
    got = kcuda.triangle_areas_cuda(np.asfortranarray(vertices), np.asfortranarray(faces))
    cpu = triangle_areas(vertices, faces.astype(np.int64))
    np.testing.assert_allclose(got, cpu, rtol=RTOL)
    np.testing.assert_allclose(got, naive.triangle_areas(vertices, faces), rtol=RTOL)
    np.testing.assert_array_equal(got[-2:], 0.0)
    assert (got[:-2] > 0).all()  # every face was written, though 8 threads cover 202 faces


@needs_cuda
def test_triangle_areas_cuda_no_faces():
    assert kcuda.triangle_areas_cuda(np.zeros((3, 3)), np.zeros((0, 3), dtype=np.int64)).shape == (0,)


# ------------------------------------------------------------------------------------------------ interpolate on faces

@needs_cuda
def test_interpolate_on_faces_cuda_matches_cpu_and_naive(icosphere):
    vertices, normals, faces = icosphere
    rng = np.random.default_rng(0)
    k = 150
    face_ids = rng.integers(0, len(faces), k)
    bary = rng.dirichlet([1.0, 1.0, 1.0], k)
    bary[0] = [1.0, 0.0, 0.0]
    pts, nrm = kcuda.interpolate_on_faces_cuda(vertices, normals, faces, face_ids, bary)
    cpu_pts, cpu_nrm = interpolate_on_faces(vertices, normals, faces, face_ids, bary)
    ref_pts, ref_nrm = naive.interpolate_on_faces(vertices, normals, faces, face_ids, bary)
    assert pts.shape == nrm.shape == (k, 3) and pts.dtype == nrm.dtype == np.float64
    np.testing.assert_allclose(pts, cpu_pts, rtol=RTOL, atol=1e-13)
    np.testing.assert_allclose(nrm, cpu_nrm, rtol=RTOL, atol=1e-13)
    np.testing.assert_allclose(pts, ref_pts, rtol=RTOL, atol=1e-12)
    np.testing.assert_allclose(nrm, ref_nrm, rtol=RTOL, atol=1e-12)
    np.testing.assert_array_equal(pts[0], vertices[faces[face_ids[0], 0]])


@needs_cuda
def test_interpolate_on_faces_cuda_zero_normal_and_degenerate_face():
    vertices = np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [1.0, 1.0, 0.0]])
    vertex_normals = np.array([[0.0, 0.0, 1.0], [0.0, 0.0, -1.0], [0.0, 0.0, 1.0], [0.0, 0.0, 1.0]])
    faces = np.array([[0, 1, 2], [3, 3, 3]])
    face_ids = np.array([0, 0, 1])
    bary = np.array([[0.5, 0.5, 0.0], [0.2, 0.3, 0.5], [0.2, 0.3, 0.5]])
    pts, nrm = kcuda.interpolate_on_faces_cuda(vertices, vertex_normals, faces, face_ids, bary)
    cpu_pts, cpu_nrm = interpolate_on_faces(vertices, vertex_normals, faces, face_ids, bary)
    assert np.isfinite(nrm).all()
    np.testing.assert_array_equal(nrm[0], 0.0)
    np.testing.assert_allclose(pts, cpu_pts, rtol=RTOL, atol=1e-15)
    np.testing.assert_allclose(nrm, cpu_nrm, rtol=RTOL, atol=1e-15)


@needs_cuda
def test_interpolate_on_faces_cuda_no_points(icosphere):
    vertices, normals, faces = icosphere
    pts, nrm = kcuda.interpolate_on_faces_cuda(vertices, normals, faces, np.zeros(0, np.int64), np.zeros((0, 3)))
    assert pts.shape == nrm.shape == (0, 3)


# --------------------------------------------------------------------------------------------------- nearest distance

@needs_cuda
@pytest.mark.parametrize("exclude_self", [False, True])
def test_nearest_distance_cuda_matches_cpu_and_naive(exclude_self):
    rng = np.random.default_rng(1)
    points = rng.random((150, 3))
    queries = points if exclude_self else rng.random((100, 3)) * 1.4 - 0.2
    dist, index = kcuda.nearest_distance_cuda(queries, points, 0.1, exclude_self)
    cpu_dist, cpu_index = nearest_distance(queries, points, 0.1, exclude_self)
    ref_dist, ref_index = naive.nearest_distance(queries, points, 0.1, exclude_self)
    assert dist.dtype == np.float64 and index.dtype == np.int64
    np.testing.assert_array_equal(index, cpu_index)
    np.testing.assert_array_equal(index, ref_index)
    np.testing.assert_allclose(dist, cpu_dist, rtol=RTOL)
    np.testing.assert_allclose(dist, ref_dist, rtol=RTOL)
    if exclude_self:
        assert (index != np.arange(len(points))).all()


@needs_cuda
@pytest.mark.parametrize("shape", ["plane", "sphere"])
def test_multiclass_sweep_cuda_matches_cpu(icosphere, shape):
    """The sweep's CUDA twin against the CPU kernel: pushes across sessions, fixed dots, a fold, moves that leave their
    face (the mesh walk), a forbidden face; the same new dots, violation and count."""
    from scalp3d.placement import vertex_normals_of

    rng = np.random.default_rng(7)
    n = 120
    if shape == "plane":
        import trimesh

        grid = trimesh.creation.box(extents=(12.0, 12.0, 0.1)).subdivide().subdivide().subdivide()
        v = np.ascontiguousarray(grid.vertices, dtype=np.float64)
        f = np.ascontiguousarray(grid.faces, dtype=np.int64)
        top = np.flatnonzero(v[f].mean(axis=1)[:, 2] > 0.0)
    else:
        v, _, f = icosphere
        top = np.arange(len(f))
    vn = vertex_normals_of(v, f)
    fid = rng.choice(top, n)
    bary = rng.dirichlet(np.ones(3), n)
    tri = v[f[fid]]
    p = np.einsum("ij,ijk->ik", bary, tri)
    nrm = np.einsum("ij,ijk->ik", bary, vn[f[fid]])
    nrm /= np.linalg.norm(nrm, axis=1)[:, None]
    nrm[:5] *= -1.0  # across a fold: no interaction with the rest
    movable = rng.random(n) > 0.15
    cls = rng.integers(0, 4, n)
    radius = np.full(n, 2.5 if shape == "plane" else 3.0) * (0.9 + 0.2 * rng.random(n))
    scale = session_scales([0.3, 0.4, 0.3], 1.0, 0.85, 1.0, 0.97, fixed_class=True)
    ok = np.ones(len(f), bool)
    ok[fid[7]] = False
    vf = vertex_faces(len(v), f)
    lists = pair_lists(p, nrm, cls, radius, scale, 0.5, 0.0)
    args = (DotState(p, nrm, fid, bary), movable, Targets(cls, radius, scale), SweepStep(0.0, 0.7, 0.3), lists,
            Mesh(v, vn, f, vf[0], vf[1], ok))
    cpu = multiclass_sweep(*args)
    gpu = kcuda.multiclass_sweep_cuda(*args)
    for a, b in zip(cpu[:4], gpu[:4]):
        np.testing.assert_allclose(b, a, rtol=RTOL, atol=1e-12)
    np.testing.assert_array_equal(gpu[2], cpu[2])
    assert np.isclose(gpu[4], cpu[4], rtol=RTOL) and gpu[4] > 0.05 and gpu[5] == cpu[5] > 20
    assert (gpu[2] != fid).sum() > 5  # some dots walked onto another face


@needs_cuda
def test_nearest_distance_cuda_ties_go_to_the_smaller_index():
    g = np.arange(4) * 0.5
    points = np.stack(np.meshgrid(g, g, g, indexing="ij"), axis=-1).reshape(-1, 3)
    points = points[np.random.default_rng(2).permutation(len(points))]
    dist, index = kcuda.nearest_distance_cuda(points, points, 0.5, True)
    np.testing.assert_array_equal(dist, 0.5)
    np.testing.assert_array_equal(index, nearest_distance(np.ascontiguousarray(points), points.copy(), 0.5, True)[1])
    np.testing.assert_array_equal(index, naive.nearest_distance(points, points, 0.5, True)[1])
    dup = np.vstack([points, points[:5]])
    dist, index = kcuda.nearest_distance_cuda(points[:5], dup, 0.5, False)
    np.testing.assert_array_equal(dist, 0.0)
    np.testing.assert_array_equal(index, np.arange(5))


# ------------------------------------------------------------------------------------------------------ without a GPU

def run_python(code, **env):
    """Run ``code`` in a fresh interpreter (numba reads its settings at import) and return its stdout."""
    full_env = {**os.environ, **env}
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=full_env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_no_gpu_and_no_simulator_raises_a_clear_error():
    out = run_python("""
        import numpy as np
        import scalp3d.kernels.cuda as kcuda  # the import itself must work
        from numba import cuda
        if cuda.is_available():
            print("GPU")
        else:
            for call in (lambda: kcuda.triangle_areas_cuda(np.zeros((3, 3)), [[0, 1, 2]]),
                         lambda: kcuda.interpolate_on_faces_cuda(np.zeros((3, 3)), np.zeros((3, 3)), [[0, 1, 2]],
                                                                 [0], [[1.0, 0.0, 0.0]]),
                         lambda: kcuda.nearest_distance_cuda(np.zeros((1, 3)), np.zeros((2, 3)), 1.0, False)):
                try:
                    call()
                except RuntimeError as exc:
                    print(exc)
                else:
                    print("no error")
    """, NUMBA_ENABLE_CUDASIM="0")
    if out == "GPU":
        pytest.skip("this machine has a CUDA GPU: the no-GPU error cannot happen")
    lines = out.splitlines()
    assert len(lines) == 3, out
    for line in lines:
        assert "no CUDA GPU was found" in line
        assert "CPU kernels" in line and "NUMBA_ENABLE_CUDASIM=1" in line


def test_numba_cuda_missing_raises_a_clear_error():
    out = run_python("""
        import sys
        sys.modules["numba.cuda"] = None  # as if numba-cuda were not installed
        import numpy as np
        import scalp3d.kernels.cuda as kcuda
        try:
            kcuda.triangle_areas_cuda(np.zeros((3, 3)), [[0, 1, 2]])
        except RuntimeError as exc:
            print(exc)
    """)
    assert len(out.splitlines()) == 1, out
    assert out.startswith("no CUDA GPU was found") and "NUMBA_ENABLE_CUDASIM=1" in out
    assert "numba.cuda cannot be imported" in out


def test_importing_the_kernels_does_not_import_cuda():
    out = run_python("""
        import sys
        import scalp3d.kernels
        print("scalp3d.kernels.cuda" in sys.modules)
    """)
    assert out == "False"


# ------------------------------------------------------------------------------------------------------- texture bake

def bake_inputs(seed=3):
    """A 48x48 texture (texel about 0.05 mm) and 36 dots: a cluster of overlapping ones, dots across the two CPU row
    bands (32 rows each), sheared and stretched metrics, no halo, part opacity, and dots at and over the border.
    (No degenerate metric: band_lists would overflow an int cast on it; the CUDA twin's skip is tested alone.)"""
    rng = np.random.default_rng(seed)
    n = 36
    xy = rng.random((n, 2)) * 48.0
    xy[:14] = [20.0, 30.0] + rng.normal(0.0, 2.5, (14, 2))  # a cluster across the band boundary at row 32
    xy[14] = [0.3, 47.6]  # corner: most of its footprint outside the texture
    xy[15] = [47.9, 10.0]  # right border
    xy[16] = [25.0, -2.0]  # centre above the texture: only its lower rim is inside
    xy[17] = [-20.0, 20.0]  # wholly outside: adds nothing
    texel2 = 0.05 ** 2
    stretch = 0.6 + 0.9 * rng.random((n, 2))
    shear = rng.uniform(-0.4, 0.4, n) * np.sqrt(stretch[:, 0] * stretch[:, 1])
    metric = texel2 * np.column_stack([stretch[:, 0], shear, stretch[:, 1]])
    radius = 0.1 + 0.25 * rng.random(n)
    halo = np.full(n, 0.05)
    halo[19:22] = 0.0  # hard discs
    opacity = np.where(rng.random(n) < 0.3, 0.6, 1.0)
    trans = rng.random((n, 3))
    return np.zeros((48, 48, 3), np.float32), xy, metric, radius, halo, opacity, trans


def cpu_bake(log_t, xy, metric, radius, halo, opacity, trans):
    from scalp3d.kernels.bake import band_lists, bake_dots

    out = log_t.copy()
    start, items = band_lists(xy, metric, radius + 3.0 * halo, out.shape[0])
    bake_dots(out, xy, metric, radius, halo, opacity, trans, start, items)
    return out


@needs_cuda
def test_bake_dots_cuda_matches_cpu():
    """One dot per thread with atomic additions gives the CPU's texture (band lists, dots in order) within
    BAKE_ATOL in log transmittance, in place, on overlapping dots and dots on the border."""
    args = bake_inputs()
    cpu = cpu_bake(*args)
    log_t = args[0].copy()
    log_t[5, 5] = -0.25  # a texture already holding a state: the dots add to it
    cpu[5, 5] += -0.25
    got = kcuda.bake_dots_cuda(log_t, *args[1:])
    assert got is log_t and got.dtype == np.float32  # float32 C-contiguous: updated in place, as the CPU kernel does
    np.testing.assert_allclose(got, cpu, rtol=0, atol=kcuda.BAKE_ATOL)
    # the comparison has substance: dots overlap, the border dots left ink, texels darkened through many dots
    xy, metric, radius, halo = args[1:5]
    covers = np.zeros((48, 48), int)
    for i in range(len(xy)):
        one = cpu_bake(args[0], xy[i:i + 1], metric[i:i + 1], radius[i:i + 1], halo[i:i + 1], args[5][i:i + 1],
                       args[6][i:i + 1])
        covers += one[..., 0] < 0
    assert covers.max() >= 4 and (covers >= 2).sum() > 50
    assert got[47, 0].min() < -0.01 and got[10, 47].min() < -0.01 and got[0, 25].min() < -0.001
    assert got.min() < -2.0


@needs_cuda
def test_bake_dots_cuda_wrapper_converts_and_handles_nothing_to_do():
    log_t, xy, metric, radius, halo, opacity, trans = bake_inputs(seed=4)
    cpu = cpu_bake(log_t, xy, metric, radius, halo, opacity, trans)
    # a float64 texture and lists: a new float32 array comes back, the input is left alone
    start = np.zeros((48, 48, 3))
    got = kcuda.bake_dots_cuda(start, xy.tolist(), metric, radius, halo, opacity, trans)
    assert got.dtype == np.float32 and got.shape == (48, 48, 3) and not start.any()
    np.testing.assert_allclose(got, cpu, rtol=0, atol=kcuda.BAKE_ATOL)
    # no dots: the texture unchanged
    same = kcuda.bake_dots_cuda(cpu.copy(), np.zeros((0, 2)), np.zeros((0, 3)), np.zeros(0), np.zeros(0),
                                np.zeros(0), np.zeros((0, 3)))
    np.testing.assert_array_equal(same, cpu)
    # a degenerate metric (det = 0) is skipped, as by the CPU kernel
    flat = kcuda.bake_dots_cuda(cpu.copy(), [[24.0, 24.0]], [[0.0025, 0.0025, 0.0025]], [0.3], [0.05], [1.0],
                                [[0.0, 0.0, 0.0]])
    np.testing.assert_array_equal(flat, cpu)


def test_bake_dots_cuda_without_gpu_raises_a_clear_error():
    out = run_python("""
        import numpy as np
        import scalp3d.kernels.cuda as kcuda
        from numba import cuda
        if cuda.is_available():
            print("GPU")
        else:
            try:
                kcuda.bake_dots_cuda(np.zeros((4, 4, 3), np.float32), np.zeros((1, 2)), np.ones((1, 3)), np.ones(1),
                                     np.ones(1), np.ones(1), np.ones((1, 3)))
            except RuntimeError as exc:
                print(exc)
            else:
                print("no error")
    """, NUMBA_ENABLE_CUDASIM="0")
    if out == "GPU":
        pytest.skip("this machine has a CUDA GPU: the no-GPU error cannot happen")
    assert out.startswith("no CUDA GPU was found") and "NUMBA_ENABLE_CUDASIM=1" in out, out


# ------------------------------------------------------------------------------------- sample elimination and the snap

def scalp_points(n=220, seed=7):
    """Points on a sphere of radius 10 mm with radii of 1.5-3.5 mm: duplicates (clamped at r_min) and flipped
    normals (the other side of a fold), as tests/test_kernels.py's conflict graph input."""
    rng = np.random.default_rng(seed)
    normals = rng.normal(size=(n, 3))
    normals /= np.linalg.norm(normals, axis=1)[:, None]
    points = normals * 10.0
    points[n - 20:n - 15] = points[:5]
    normals[n - 20:n - 15] = normals[:5]
    normals[n - 10:] *= -1.0
    return points, normals, rng.uniform(1.5, 3.5, n)


@needs_cuda
@pytest.mark.parametrize("alpha, rmin_factor, fold_cos", [(8.0, 0.3, 0.5), (2.0, 0.0, -1.0)])
def test_conflict_graph_cuda_matches_cpu_and_naive(alpha, rmin_factor, fold_cos):
    """The same CSR rows in the same order as the CPU kernel (the removal that follows depends on that order), the
    same weights, and the naive all-pairs graph's pairs."""
    from scalp3d.kernels import conflict_graph, eliminate

    points, normals, radius = scalp_points()
    cpu = conflict_graph(points, normals, radius, alpha, rmin_factor, fold_cos)
    gpu = kcuda.conflict_graph_cuda(points.tolist(), np.asfortranarray(normals), radius, alpha, rmin_factor,
                                    fold_cos)
    assert gpu[0].dtype == gpu[1].dtype == np.int64 and gpu[2].dtype == np.float64
    np.testing.assert_array_equal(gpu[0], cpu[0])
    np.testing.assert_array_equal(gpu[1], cpu[1])
    np.testing.assert_allclose(gpu[2], cpu[2], rtol=kcuda.KERNEL_RTOL, atol=0)
    assert len(gpu[1]) > 2 * len(points)  # rows with several conflicts each
    ref = naive.conflict_graph(points, normals, radius, alpha, rmin_factor, fold_cos)
    np.testing.assert_array_equal(gpu[0], ref[0])
    for i in range(len(points)):
        row = slice(gpu[0][i], gpu[0][i + 1])
        got = dict(zip(gpu[1][row], gpu[2][row]))
        want = dict(zip(ref[1][row], ref[2][row]))
        assert got.keys() == want.keys(), f"row {i}"
        np.testing.assert_allclose([got[j] for j in want], list(want.values()), rtol=1e-12, err_msg=f"row {i}")
    # the removal on the CPU, fed the twin's graph, keeps the same points
    removable = np.ones(len(points), bool)
    removable[:10] = False
    np.testing.assert_array_equal(eliminate(*gpu, removable, 120)[1], eliminate(*cpu, removable, 120)[1])


@needs_cuda
def test_conflict_graph_cuda_no_points_and_no_conflicts():
    indptr, indices, weights = kcuda.conflict_graph_cuda(np.zeros((0, 3)), np.zeros((0, 3)), np.zeros(0), 8.0, 0.3,
                                                         0.5)
    assert list(indptr) == [0] and indices.shape == weights.shape == (0,)
    # two close points on either side of a fold, and a far one: no conflict, every row empty
    p = np.array([[0.0, 0.0, 0.0], [0.1, 0.0, 0.0], [9.0, 0.0, 0.0]])
    n = np.array([[0.0, 0.0, 1.0], [0.0, 0.0, -1.0], [0.0, 0.0, 1.0]])
    indptr, indices, weights = kcuda.conflict_graph_cuda(p, n, np.ones(3), 8.0, 0.3, 0.0)
    assert list(indptr) == [0, 0, 0, 0] and len(indices) == len(weights) == 0


@needs_cuda
def test_snap_points_cuda_matches_cpu(icosphere):
    """Points pushed off the sphere and started from faces near and far: the same closest points, faces and
    barycentric coordinates as the CPU kernel, on the mesh."""
    from scalp3d.kernels.snap import snap_points

    vertices, _, faces = icosphere
    rng = np.random.default_rng(5)
    k = 160
    start = rng.integers(0, len(faces), k)
    bary = rng.dirichlet(np.ones(3), k)
    q = np.einsum("ij,ijk->ik", bary, vertices[faces[start]])
    q += rng.normal(0.0, 1.5, q.shape)  # off the surface and off the start face (edges about 3 mm)
    q[:3] = vertices[faces[start[:3], 0]]  # exactly on a corner
    vf = vertex_faces(len(vertices), faces)
    cpu = snap_points(q, start, vertices, faces, *vf)
    gpu = kcuda.snap_points_cuda(q, start.astype(np.int32), vertices, faces, *vf)
    np.testing.assert_array_equal(gpu[1], cpu[1])
    np.testing.assert_allclose(gpu[0], cpu[0], rtol=kcuda.KERNEL_RTOL, atol=1e-12)
    np.testing.assert_allclose(gpu[2], cpu[2], rtol=kcuda.KERNEL_RTOL, atol=1e-12)
    assert (gpu[1] != start).sum() > k // 3  # many walked to another face
    on_face = np.einsum("ij,ijk->ik", gpu[2], vertices[faces[gpu[1]]])
    np.testing.assert_allclose(on_face, gpu[0], atol=1e-9)
    np.testing.assert_allclose(gpu[2].sum(axis=1), 1.0, atol=1e-12)
    assert (gpu[2] >= -1e-12).all()
    empty = kcuda.snap_points_cuda(np.zeros((0, 3)), np.zeros(0, np.int64), vertices, faces, *vf)
    assert empty[0].shape == (0, 3) and empty[1].shape == (0,) and empty[2].shape == (0, 3)


# --------------------------------------------------------------------------------------- place_dots(backend=...)

def assert_same_dots(gpu, cpu):
    """backend="cuda" against backend="cpu": the stated tolerance (kcuda.PLACEMENT_ATOL_MM) on positions, the rest
    equal."""
    assert len(gpu) == len(cpu) > 0
    np.testing.assert_array_equal(gpu.session, cpu.session)
    np.testing.assert_array_equal(gpu.ids, cpu.ids)
    np.testing.assert_array_equal(gpu.face_ids, cpu.face_ids)
    np.testing.assert_allclose(gpu.positions, cpu.positions, rtol=0, atol=kcuda.PLACEMENT_ATOL_MM)
    np.testing.assert_allclose(gpu.bary, cpu.bary, rtol=0, atol=1e-9)
    np.testing.assert_allclose(gpu.normals, cpu.normals, rtol=0, atol=1e-9)


@pytest.fixture(scope="module")
def ball():
    """An icosphere of radius 50 mm (1,280 faces)."""
    import trimesh

    mesh = trimesh.creation.icosphere(subdivisions=3, radius=50.0)
    return np.asarray(mesh.vertices), np.asarray(mesh.faces)


@needs_cuda
def test_place_dots_cuda_matches_cpu_joint(ball):
    """The whole placement with its CUDA twins (conflict graph, relaxation and joint sweeps) on the simulator: the
    CPU's dots, sessions and ids, within the stated tolerance."""
    from scalp3d.placement import place_dots

    v, f = ball
    kw = dict(count=150, sessions=3, seed=3, session_mode="joint")
    cpu = place_dots(v, f, backend="cpu", **kw)
    gpu = place_dots(v, f, backend="cuda", **kw)
    assert_same_dots(gpu, cpu)
    assert set(np.unique(gpu.session)) == {1, 2, 3}
    # and the twins really ran: the CPU result differs from a plain elimination without relaxation
    raw = place_dots(v, f, backend="cpu", relax_passes=0, session_mode="subsets", count=150, sessions=3, seed=3)
    assert np.abs(raw.positions - cpu.positions).max() > 0.1


@needs_cuda
def test_place_dots_cuda_matches_cpu_around_fixed_dots(ball):
    """Around kept dots of their own sessions (a local re-placement: the fixed dots are snapped onto the mesh by the
    snap's twin) and in a region: the CPU's dots within the stated tolerance."""
    from scalp3d.placement import place_dots

    v, f = ball
    first = place_dots(v, f, count=120, sessions=2, seed=1, backend="cpu")
    keep = first.positions[:, 2] < 0.0
    kw = dict(count=60, density_per_cm2=np.where(v[:, 2] > 0, 1.5, 1.0), sessions=2, seed=2,
              fixed=first.positions[keep], fixed_session=first.session[keep], region=v[:, 2] > -5.0)
    cpu = place_dots(v, f, backend="cpu", **kw)
    gpu = place_dots(v, f, backend="cuda", **kw)
    assert_same_dots(gpu, cpu)
    assert keep.sum() > 30


def test_place_dots_auto_takes_the_cpu_on_the_simulator(ball, monkeypatch):
    """"auto" never counts the simulator as a GPU: with NUMBA_ENABLE_CUDASIM=1 (this module) it runs the CPU kernels,
    whose every twin is made to fail here."""
    from scalp3d import placement
    from scalp3d.kernels.elimination import conflict_graph
    from scalp3d.kernels.multiclass import multiclass_sweep
    from scalp3d.kernels.snap import snap_points

    if not SIMULATOR and cuda.is_available():
        pytest.skip("a real CUDA GPU is here: auto takes it")
    assert not kcuda.gpu_present()
    assert placement._kernels_for("auto") == (conflict_graph, multiclass_sweep, snap_points)
    assert placement._kernels_for("cpu") == (conflict_graph, multiclass_sweep, snap_points)

    def no(*_args):
        raise AssertionError("a CUDA twin ran under backend='auto' without a GPU")

    for name in ("conflict_graph_cuda", "multiclass_sweep_cuda", "snap_points_cuda"):
        monkeypatch.setattr(kcuda, name, no)
    v, f = ball
    dots = placement.place_dots(v, f, count=80, seed=0)  # the default is "auto"
    np.testing.assert_array_equal(dots.positions, placement.place_dots(v, f, count=80, seed=0,
                                                                       backend="cpu").positions)
    with pytest.raises(AssertionError, match="CUDA twin"):
        placement.place_dots(v, f, count=80, seed=0, backend="cuda")


def test_place_dots_unknown_backend_is_refused(ball):
    from scalp3d.errors import InputError
    from scalp3d.placement import place_dots

    v, f = ball
    for bad in ("gpu", "CUDA", None):
        with pytest.raises(InputError, match="backend must be 'auto', 'cpu' or 'cuda'") as info:
            place_dots(v, f, count=10, backend=bad)
        assert isinstance(info.value, ValueError)


def test_place_dots_cuda_without_gpu_or_simulator_names_the_fix():
    out = run_python("""
        import trimesh
        from numba import cuda
        from scalp3d.errors import MissingDependencyError
        from scalp3d.placement import place_dots
        s = trimesh.creation.icosphere(2, radius=50.0)
        if cuda.is_available():
            print("GPU")
        else:
            try:
                place_dots(s.vertices, s.faces, count=10, backend="cuda")
            except MissingDependencyError as exc:
                print(isinstance(exc, ValueError), exc)
            else:
                print("no error")
            print(len(place_dots(s.vertices, s.faces, count=10)))  # auto: the CPU
    """, NUMBA_ENABLE_CUDASIM="0")
    if out == "GPU":
        pytest.skip("this machine has a CUDA GPU: the no-GPU error cannot happen")
    first, second = out.splitlines()
    assert first.startswith("True backend='cuda': no CUDA GPU was found"), out
    assert "NUMBA_ENABLE_CUDASIM=1" in first and "backend='cpu'" in first
    assert second == "10"


def test_place_dots_on_the_cpu_does_not_import_cuda():
    out = run_python("""
        import sys
        import trimesh
        from scalp3d.placement import place_dots
        s = trimesh.creation.icosphere(2, radius=50.0)
        place_dots(s.vertices, s.faces, count=10, backend="cpu")
        print("numba.cuda" in sys.modules)
    """)
    assert out == "False"
