"""place_dots on the CPU and on the GPU side by side, on the benchmark cap (issue 15, point 5).

    python benchmarks/gpu.py [--sizes 60000 200000 1000000] [--repeat 1] [--emulate-ulps]

The mesh is the benchmark cap of issue 3 (``ellipsoid_cap`` in tests/shapes.py, as benchmarks/placement_vs_peers.py
uses it); each size is a ``count`` of dots in 3 sessions (the default joint mode). For each size the script times
``place_dots(..., backend="cpu")`` and, only on a real CUDA GPU (``numba.cuda.is_available()`` with the simulator
off), ``backend="cuda"``: the first call of the process at that size (for the first size it includes loading the
CPU kernels from numba's cache, and compiling the CUDA kernels) and then the median of ``--repeat`` warm calls, with
the ratio CPU / GPU of the warm times. Where the GPU ran, it also prints how far its dots are from the CPU's: the
same count and session sizes, the share of GPU dots within ``PLACEMENT_ATOL_MM`` (and within 0.01 mm) of a CPU dot,
and the union's rho of each (a GPU may round a few ulps differently: see scalp3d.kernels.cuda). Without a GPU it
prints the CPU figures and says the GPU was not measured: the simulator is never timed as a GPU.

``--emulate-ulps`` adds, on the CPU, what a GPU's rounding may do to a plan: the CPU kernels that have CUDA twins run
with their float outputs moved by up to 2 ulp, and the plan is compared with the plain CPU plan as above. It is an
emulation on the CPU, printed as such, never a GPU figure.
"""
import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

from scalp3d import kernels as K
from scalp3d import placement
from scalp3d.kernels.cuda import PLACEMENT_ATOL_MM
from scalp3d.placement import place_dots, vertex_normals_of
from scalp3d.quality import spread_figures

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the benchmark cap is a test surface
from shapes import ellipsoid_cap  # noqa: E402

SIZES = (60_000, 200_000, 1_000_000)
#: a GPU dot this close to a CPU dot counts as "the same place, to the eye" (the needle is 0.3-0.5 mm)
NEAR_MM = 0.01


def gpu_here():
    """(name of the CUDA GPU, None) when one can be timed, else (None, why not)."""
    try:
        from numba import cuda
    except ImportError as exc:
        return None, f"numba.cuda cannot be imported ({exc}; pip install numba-cuda), not measured"
    from scalp3d.kernels import cuda as kc

    if kc.simulated():
        return None, "NUMBA_ENABLE_CUDASIM=1 (numba's simulator, not a GPU), not measured"
    if not kc.gpu_present():
        return None, "no CUDA device on this machine, not measured"
    name = cuda.get_current_device().name
    return (name.decode() if isinstance(name, bytes) else str(name)), None


def first_and_warm(fn, repeat):
    """(seconds of the first call, median seconds of ``repeat`` more calls, the last result)."""
    t = time.perf_counter()
    res = fn()
    first = time.perf_counter() - t
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        res = fn()
        times.append(time.perf_counter() - t)
    return first, float(np.median(times)), res


def rho(dots, area):
    n = len(dots)
    return spread_figures(dots.positions, np.full(n, np.sqrt(2 * area / (np.sqrt(3) * n))))["rho"]


def agreement(other, cpu, area):
    """One line: how far ``other``'s dots are from the CPU's (as sets: a dot's nearest CPU dot)."""
    from scipy.spatial import cKDTree

    sizes = [np.bincount(d.session).tolist() for d in (other, cpu)]
    d, _ = cKDTree(cpu.positions).query(other.positions)
    return (f"count {'=' if len(other) == len(cpu) else '!='}, sessions {'=' if sizes[0] == sizes[1] else '!='}; "
            f"{(d <= PLACEMENT_ATOL_MM).mean():.1%} within {PLACEMENT_ATOL_MM:g} mm, {(d <= NEAR_MM).mean():.1%} "
            f"within {NEAR_MM} mm (max {d.max():.2f} mm); rho {rho(other, area):.3f} vs CPU {rho(cpu, area):.3f}")


def ulp_kernels(seed=0):
    """The CPU kernels with CUDA twins, their float outputs moved by up to 2 ulp (placement._Kernels)."""
    from scalp3d.kernels.elimination import conflict_graph
    from scalp3d.kernels.multiclass import multiclass_sweep
    from scalp3d.kernels.snap import snap_points

    rng = np.random.default_rng(seed)

    def wiggle(a):
        return a + rng.integers(-2, 3, a.shape) * np.spacing(a)

    def graph(*args):
        indptr, indices, weights = conflict_graph(*args)
        return indptr, indices, wiggle(weights)

    def sweep(dots, *args):
        p, n, f, b, worst, moved = multiclass_sweep(dots, *args)
        changed = (p != dots.points).any(axis=1)[:, None]  # a dot that did not move is a copy on the GPU too
        return np.where(changed, wiggle(p), p), n, f, np.where(changed, wiggle(b), b), worst, moved

    def snap(*args):
        x, f, b = snap_points(*args)
        return wiggle(x), f, wiggle(b)

    return placement._Kernels(graph, sweep, snap)


def emulated(v, f, vn, n, cpu, area):
    """The plan with the CPU kernels' outputs moved by up to 2 ulp, against the plain CPU plan."""
    plain = placement._kernels_for
    placement._kernels_for = lambda backend: ulp_kernels()
    try:
        other = place_dots(v, f, count=n, seed=0, vertex_normals=vn)
    finally:
        placement._kernels_for = plain
    return agreement(other, cpu, area)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=SIZES, help="dot counts (default: 60k, 200k, 1M)")
    ap.add_argument("--repeat", type=int, default=1, help="warm calls per size and backend (median)")
    ap.add_argument("--emulate-ulps", action="store_true", help="on the CPU: what a GPU's rounding may change")
    a = ap.parse_args()
    v, f = ellipsoid_cap()
    area = float(K.triangle_areas(v, f).sum())
    vn = vertex_normals_of(v, f)
    gpu, why_not = gpu_here()
    threads = os.environ.get("NUMBA_NUM_THREADS", os.cpu_count())
    print(f"cap: {len(f):,} triangles, {area:,.0f} mm2; place_dots, 3 sessions, joint; CPU: {threads} threads; "
          f"GPU: {gpu or why_not}")
    print(f"{'dots':>10}{'CPU first s':>13}{'CPU warm s':>12}{'GPU first s':>13}{'GPU warm s':>12}{'CPU/GPU':>9}")
    for n in a.sizes:
        def run(backend):
            return place_dots(v, f, count=n, seed=0, vertex_normals=vn, backend=backend)

        c_first, c_warm, cpu = first_and_warm(lambda: run("cpu"), a.repeat)
        if gpu:
            g_first, g_warm, other = first_and_warm(lambda: run("cuda"), a.repeat)
            print(f"{n:>10,}{c_first:>13.2f}{c_warm:>12.2f}{g_first:>13.2f}{g_warm:>12.2f}{c_warm / g_warm:>8.1f}x")
            print(f"{'':>10}GPU against CPU: {agreement(other, cpu, area)}")
        else:
            print(f"{n:>10,}{c_first:>13.2f}{c_warm:>12.2f}{'-':>13}{'-':>12}{'-':>9}")
        if a.emulate_ulps:
            print(f"{'':>10}CPU, kernels' outputs moved by up to 2 ulp (an emulation, not a GPU): "
                  f"{emulated(v, f, vn, n, cpu, area)}")
    if not gpu:
        print(f"GPU: {why_not}")


if __name__ == "__main__":
    main()
