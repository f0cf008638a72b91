"""Needle tours on blue-noise dots: scalp3d's tour against fast-tsp and the lower bound no tour can beat.

    python benchmarks/tour.py [--sizes 5000 20000 60000] [--fast-tsp-seconds 10]

For each size, dots are placed on the benchmark cap (one session). Printed per size: our open-path length and time
(nearest neighbour + 2-opt/Or-opt, numba, warm), fast-tsp's length given the time budget (up to 10,000 dots: it needs
the full integer distance matrix; the open path is solved as a cycle through a free dummy node), the lower bound
(half the distances to each dot's two nearest neighbours, summed) and the ratios.
"""
import argparse
import sys
import time
from pathlib import Path

import numpy as np

from scalp3d import kernels as K
from scalp3d.needle import order_dots
from scalp3d.placement import place_dots

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the benchmark cap is a test surface
from shapes import ellipsoid_cap  # noqa: E402


def bound(p):
    nb = K.knn_lists(p, 2, 2.0)
    return 0.5 * (np.linalg.norm(p - p[nb[:, 0]], axis=1) + np.linalg.norm(p - p[nb[:, 1]], axis=1)).sum()


def fast_tsp_path(p, seconds):
    import fast_tsp

    n = len(p)
    d = np.zeros((n + 1, n + 1), dtype=np.int64)
    d[:n, :n] = np.rint(np.linalg.norm(p[:, None] - p[None], axis=2) * 100).astype(np.int64)  # 10 micrometres: fast-tsp takes distances up to 65,535
    t = time.perf_counter()
    tour = fast_tsp.find_tour(d.tolist(), seconds)
    el = time.perf_counter() - t
    k = tour.index(n)
    order = np.array(tour[k + 1:] + tour[:k])
    return K.path_length(p, order), el


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[5000, 20000, 60000])
    ap.add_argument("--fast-tsp-seconds", type=float, default=10.0)
    a = ap.parse_args()
    v, f = ellipsoid_cap()
    warm = np.ascontiguousarray(place_dots(v, f, count=500, seed=9, sessions=1).positions)
    order_dots(warm)
    print(f"{'dots':>7}{'ours mm':>11}{'time s':>8}{'fast-tsp mm':>13}{'its time':>9}{'bound mm':>11}"
          f"{'ours/bound':>11}{'ours/fast-tsp':>14}{'NN/bound':>9}")
    for n in a.sizes:
        p = np.ascontiguousarray(place_dots(v, f, count=n, seed=0, sessions=1).positions)
        t = time.perf_counter()
        o = order_dots(p)
        el = time.perf_counter() - t
        ours = K.path_length(p, o)
        lb = bound(p)
        nn = K.path_length(p, K.nearest_neighbour_tour(p, 0, 2.0))
        if n <= 10000:
            try:
                ft, ft_t = fast_tsp_path(p, a.fast_tsp_seconds)
                ft_s, ft_r, ft_ts = f"{ft:13.0f}", f"{ours / ft:14.3f}", f"{ft_t:9.1f}"
            except ImportError:
                ft_s, ft_r, ft_ts = f"{'(not installed)':>13}", f"{'-':>14}", f"{'-':>9}"
        else:
            ft_s, ft_r, ft_ts = f"{'(too big)':>13}", f"{'-':>14}", f"{'-':>9}"
        print(f"{n:>7}{ours:>11.0f}{el:>8.2f}{ft_s}{ft_ts}{lb:>11.0f}{ours / lb:>11.3f}{ft_r}{nn / lb:>9.3f}")


if __name__ == "__main__":
    main()
