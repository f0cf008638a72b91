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
    only the pairs within their targets); same arguments and returns as the sweep, without the lists."""
    from scalp3d.kernels.multiclass import multiclass_sweep, pair_lists

    ptr, idx = pair_lists(points, normals, cls, radius, scale, 0.0, fold_cos)
    return multiclass_sweep(points, normals, face_ids, bary, movable, cls, radius, scale, fold_cos, omega, max_step,
                            ptr, idx, vertices, vertex_normals, faces, vf_indptr, vf_indices, face_ok)
