"""scalp3d's placement against the peers' surface samplers, on the same mesh in the same process.

    python benchmarks/placement_vs_peers.py [--count 60000] [--repeat 3] [--exact-pymeshlab] [--scaling] [--joint]

The mesh is the benchmark cap of issue 3 (``ellipsoid_cap`` in tests/shapes.py). Every sampler's dots are judged by the
same figures (scalp3d.quality.spread_figures plus coverage p99 over 200k uniform surface points): rho, nn p1, nn CV,
coverage p99, all relative to d_max = sqrt(2A / (sqrt(3) N)) of the dots each returned. Times are medians of
``--repeat`` runs after a warm-up (JIT compiled). ``--scaling`` also prints scalp3d's time per dot from 5k to 500k
and its peak memory. Peers missing from the environment are skipped with a note (pip install '.[bench]').
``--joint`` prints instead the session figures of scalp3d alone for both ``session_mode`` values ("subsets", the
default, and "joint"): the union's figures, each session alone at its own d_max, the union of sessions 1-2 at its
d_max, and the time of place_dots (issue 3 bars: union rho >= 0.78, p1 >= 0.80, CV >= 0.03, coverage p99 <= 0.70,
every session alone rho >= 0.70).
"""
import argparse
import resource
import sys
import time
from pathlib import Path

import numpy as np

from scalp3d import kernels as K
from scalp3d.placement import place_dots, vertex_normals_of
from scalp3d.quality import spread_figures

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the benchmark cap is a test surface
from shapes import ellipsoid_cap  # noqa: E402


def coverage_p99(v, f, pts, dmax, seed=1, m=200_000):
    rng = np.random.default_rng(seed)
    areas = K.triangle_areas(v, f)
    faces = K.stratified_faces(np.cumsum(areas), rng.random(m))
    r1 = np.sqrt(rng.random(m))
    r2 = rng.random(m)
    q, _ = K.interpolate_on_faces(v, vertex_normals_of(v, f), f, faces,
                                  np.column_stack([1 - r1, r1 * (1 - r2), r1 * r2]))
    d, _ = K.nearest_distance(q, np.ascontiguousarray(pts, dtype=np.float64), dmax, False)
    return float(np.percentile(d, 99) / dmax)


def judge(v, f, pts, area):
    pts = np.ascontiguousarray(pts, dtype=np.float64)
    n = len(pts)
    dmax = np.sqrt(2 * area / (np.sqrt(3) * n))
    s = spread_figures(pts, np.full(n, dmax))
    s["coverage_p99"] = round(coverage_p99(v, f, pts, dmax), 4)
    return s


def peers(v, f, n, exact_pymeshlab):
    """name -> function() returning points (k,3)."""
    out = {}
    try:
        import open3d as o3d

        mesh = o3d.geometry.TriangleMesh(o3d.utility.Vector3dVector(v), o3d.utility.Vector3iVector(f))

        def run_o3d():
            o3d.utility.random.seed(0)
            return np.asarray(mesh.sample_points_poisson_disk(n).points)
        out["open3d sample_points_poisson_disk"] = run_o3d
    except ImportError:
        print("open3d not installed: skipped")
    try:
        import igl

        area = K.triangle_areas(v, f).sum()
        # calibrate igl's radius once so that it returns about n points
        r0 = 0.74 * np.sqrt(2 * area / (np.sqrt(3) * n))

        def run_igl():
            b, fi, p = igl.blue_noise(v, f.astype(np.int64), r0)
            return np.asarray(p)
        out["libigl blue_noise (radius calibrated)"] = run_igl
    except ImportError:
        print("libigl not installed: skipped")
    try:
        import point_cloud_utils as pcu

        def run_pcu():
            fi, bc = pcu.sample_mesh_poisson_disk(v, f.astype(np.int32), n, random_seed=0)
            return pcu.interpolate_barycentric_coords(f, fi, bc, v)
        out["point-cloud-utils sample_mesh_poisson_disk"] = run_pcu
    except ImportError:
        print("point-cloud-utils not installed: skipped")
    try:
        import pymeshlab

        def run_ml(exact=False):
            ms = pymeshlab.MeshSet()
            ms.add_mesh(pymeshlab.Mesh(v, f))
            ms.generate_sampling_poisson_disk(samplenum=n, exactnumflag=exact)
            return ms.current_mesh().vertex_matrix()
        out["pymeshlab generate_sampling_poisson_disk"] = run_ml
        if exact_pymeshlab:
            out["pymeshlab, exact count"] = lambda: run_ml(True)
    except ImportError:
        print("pymeshlab not installed: skipped")
    import trimesh

    tm = trimesh.Trimesh(v, f, process=False)
    out["trimesh sample_surface_even"] = lambda: np.asarray(trimesh.sample.sample_surface_even(tm, n, seed=0)[0])
    return out


def session_figures(v, f, pts, session, area):
    """Union figures (judge) plus rho of each session alone and of the union of sessions 1-2, each at its own d_max."""
    out = judge(v, f, pts, area)
    groups = [(f"s{k}", session == k) for k in np.unique(session)]
    if len(groups) >= 3:
        groups.append(("s12", session <= 2))
    for name, m in groups:
        n = int(m.sum())
        out[name] = spread_figures(pts[m], np.full(n, np.sqrt(2 * area / (np.sqrt(3) * n))))["rho"]
    return out


def joint_table(v, f, vn, area, count, repeat):
    print(f"{'session_mode':<14}{'time s':>8}{'rho':>7}{'nn p1':>7}{'nn CV':>7}{'cov p99':>8}"
          f"{'s1':>7}{'s2':>7}{'s3':>7}{'s1+2':>7}")
    for mode in ("subsets", "joint"):
        t, d = timed(lambda: place_dots(v, f, count=count, seed=0, vertex_normals=vn, session_mode=mode), repeat)
        q = session_figures(v, f, d.positions, d.session, area)
        print(f"{mode:<14}{t:>8.2f}{q['rho']:>7.3f}{q['nn_p1']:>7.3f}{q['nn_cv']:>7.3f}{q['coverage_p99']:>8.3f}"
              + "".join(f"{q[k]:>7.3f}" if k in q else f"{'-':>7}" for k in ("s1", "s2", "s3", "s12")))


def timed(fn, repeat):
    fn()  # warm-up
    times, res = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        res = fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times)), res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=60000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--exact-pymeshlab", action="store_true")
    ap.add_argument("--scaling", action="store_true")
    ap.add_argument("--joint", action="store_true", help="session figures of session_mode subsets vs joint only")
    a = ap.parse_args()
    v, f = ellipsoid_cap()
    area = float(K.triangle_areas(v, f).sum())
    vn = vertex_normals_of(v, f)
    print(f"cap: {len(f):,} triangles, {area:,.0f} mm2; {a.count:,} dots asked; median of {a.repeat}")
    if a.joint:
        joint_table(v, f, vn, area, a.count, a.repeat)
        return
    ours = lambda: place_dots(v, f, count=a.count, seed=0, vertex_normals=vn)  # noqa: E731
    t_ours, d = timed(ours, a.repeat)
    rows = [("scalp3d place_dots (3 sessions)", t_ours, len(d), judge(v, f, d.positions, area))]
    for name, fn in peers(v, f, a.count, a.exact_pymeshlab).items():
        t, p = timed(fn, a.repeat)
        rows.append((name, t, len(p), judge(v, f, p, area)))
    print(f"{'sampler':<46}{'time s':>8}{'vs ours':>9}{'dots':>9}{'rho':>7}{'nn p1':>7}{'nn CV':>7}{'cov p99':>8}")
    for name, t, n, q in rows:
        print(f"{name:<46}{t:>8.2f}{t / t_ours:>8.1f}x{n:>9,}{q['rho']:>7.3f}{q['nn_p1']:>7.3f}{q['nn_cv']:>7.3f}"
              f"{q['coverage_p99']:>8.3f}")
    if a.scaling:
        print("\nscalp3d time per dot (warm):")
        for n in (5_000, 20_000, 60_000, 200_000, 500_000):
            t, d = timed(lambda: place_dots(v, f, count=n, seed=0, vertex_normals=vn), 1)
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            print(f"  {n:>8,} dots: {t:6.2f} s, {t / n * 1e6:6.1f} us/dot, process peak RSS so far {peak:,.0f} MB")


if __name__ == "__main__":
    main()
