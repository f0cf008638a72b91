"""Small shared pieces of the tests: a flat grid mesh, a run in a fresh process with a given thread count, and one
sweep of the joint relaxation with lists built for it alone."""
import os
import subprocess
import sys

import numpy as np


def faces_of(p):
    """Face of :func:`grid_mesh` (20 x 20 unit cells, two triangles each) under each point of the plane z = 0."""
    ix = np.floor(p[:, 0]).astype(int)
    iy = np.floor(p[:, 1]).astype(int)
    return (iy * 20 + ix) * 2 + ((p[:, 1] - iy) > (p[:, 0] - ix))


def grid_mesh(n=21, h=1.0):
    """A flat n x n grid of vertices h mm apart in the z = 0 plane, two triangles per square."""
    x, y = np.meshgrid(np.arange(n) * h, np.arange(n) * h)
    v = np.column_stack([x.ravel(), y.ravel(), np.zeros(n * n)])
    idx = np.arange(n * n).reshape(n, n)
    f = []
    for i in range(n - 1):
        for j in range(n - 1):
            a, b, c, d = idx[i, j], idx[i, j + 1], idx[i + 1, j], idx[i + 1, j + 1]
            f += [(a, b, d), (a, d, c)]
    return v, np.array(f, dtype=np.int64)


def arrays_with_threads(code, out_dir, threads=("1", "2")):
    """Run ``code`` (which saves one array to the path in sys.argv[1]) in a fresh process per numba thread count;
    returns the arrays. The tests folder is on the process's path, as under pytest (``code`` may import ``shapes``)."""
    outs = []
    path = os.pathsep.join(filter(None, [os.path.dirname(os.path.abspath(__file__)), os.environ.get("PYTHONPATH")]))
    for t in threads:
        out = out_dir / f"t{t}.npy"
        env = dict(os.environ, NUMBA_NUM_THREADS=t, PYTHONPATH=path)
        subprocess.run([sys.executable, "-c", code, str(out)], check=True, env=env, timeout=600)
        outs.append(np.load(out))
    return outs


def multiclass_step(points, normals, face_ids, bary, movable, cls, radius, scale, fold_cos, omega, max_step,
                    vertices, vertex_normals, faces, vf_indptr, vf_indices, face_ok):
    """One Jacobi sweep of the joint multi-class relaxation
    (:func:`scalp3d.kernels.multiclass.multiclass_sweep`) with neighbour lists built for this sweep alone (reach 0:
    only the pairs within their targets): the sweep's groups given as flat arguments, without the lists; the sweep's
    returns."""
    from scalp3d.kernels.multiclass import DotState, Mesh, SweepStep, Targets, multiclass_sweep, pair_lists

    lists = pair_lists(points, normals, cls, radius, scale, 0.0, fold_cos)
    return multiclass_sweep(DotState(points, normals, face_ids, bary), movable, Targets(cls, radius, scale),
                            SweepStep(fold_cos, omega, max_step), lists,
                            Mesh(vertices, vertex_normals, faces, vf_indptr, vf_indices, face_ok))


def with_settings(placed, zone=None, needle=None, shade=None, depth_mm=0.6, *, zone_names=("core",),
                  needle_names=("0603-1RL",), shade_names=("light",), dot_size_mm=0.6):
    """Complete :class:`scalp3d.types.Dots` from a placement with settings given directly (no design field): each of
    zone, needle, shade an (n,) index array or None for all 0; depth and dot size a number or an (n,) array."""
    from scalp3d.types import Dots

    n = len(placed)

    def codes(x):
        return np.zeros(n, np.int64) if x is None else np.asarray(x, dtype=np.int64)

    return Dots(**placed.geometry(), zone=codes(zone), depth_mm=np.broadcast_to(np.float64(depth_mm), (n,)).copy(),
                needle=codes(needle), shade=codes(shade),
                dot_size_mm=np.broadcast_to(np.float64(dot_size_mm), (n,)).copy(), zone_names=tuple(zone_names),
                needle_names=tuple(needle_names), shade_names=tuple(shade_names))


#: the plan's default motion, as the tests use it
def default_motion():
    from scalp3d.types import Motion

    return Motion(standoff_mm=3.0, clearance_mm=1.5, plunge_feed_mm_per_min=1200.0, travel_feed_mm_per_min=6000.0,
                  dwell_s=0.05)
