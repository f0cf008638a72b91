"""The first run's second compiling process (scalp3d.warmup, issue 15 point 4): it runs the run's own kernels on
small inputs, and is started only when the kernel cache is cold and not asked to stay off."""
import numpy as np


def test_compile_kernels_runs_the_runs_kernels():
    from scalp3d import kernels as K
    from scalp3d.kernels import multiclass, tour
    from scalp3d.warmup import compile_kernels

    compile_kernels()
    for fn in (tour.nearest_neighbour_tour, tour.knn_lists, tour.two_opt_or_opt, multiclass.multiclass_sweep,
               multiclass.pair_lists, multiclass.floor_offenders, K.conflict_graph, K.eliminate):
        assert fn.signatures, fn  # compiled (or loaded from the cache) for at least one signature
    # the tour's signatures are those the needle programs call
    p = np.ascontiguousarray(np.random.default_rng(1).random((50, 3)))
    before = len(tour.knn_lists.signatures)
    from scalp3d.needle import order_dots

    order_dots(p * 40.0)
    assert len(tour.knn_lists.signatures) == before


def test_start_only_when_cold(monkeypatch):
    import scalp3d
    from scalp3d import warmup

    monkeypatch.setattr(scalp3d, "numba_cache_is_warm", lambda: True)
    assert warmup.start() is None
    monkeypatch.setattr(scalp3d, "numba_cache_is_warm", lambda: False)
    monkeypatch.setenv("SCALP3D_NO_WARMUP", "1")
    assert warmup.start() is None
