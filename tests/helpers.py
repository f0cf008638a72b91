"""Small shared pieces of the tests: a flat grid mesh and a run in a fresh process with a given thread count."""
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
    returns the arrays."""
    outs = []
    for t in threads:
        out = out_dir / f"t{t}.npy"
        env = dict(os.environ, NUMBA_NUM_THREADS=t)
        subprocess.run([sys.executable, "-c", code, str(out)], check=True, env=env, timeout=600)
        outs.append(np.load(out))
    return outs
