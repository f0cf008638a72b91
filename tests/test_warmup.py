"""The first run's second compiling process (scalp3d.warmup, issue 15 point 4): it runs the run's own kernels on
small inputs, and is started only when the kernel cache is cold and not asked to stay off."""
import os
import sys
import time

import numpy as np
import pytest


def test_compile_kernels_runs_the_runs_kernels():
    from scalp3d import kernels as K
    from scalp3d.kernels import elimination, multiclass, tour
    from scalp3d.warmup import compile_kernels

    compile_kernels()
    for fn in (tour.nearest_neighbour_tour, tour._knn_rows, tour.two_opt_or_opt, multiclass._sweep_rows,
               multiclass._pair_rows, multiclass._floor_offender_rows, elimination._conflict_rows, K.eliminate):
        assert fn.signatures, fn  # compiled (or loaded from the cache) for at least one signature
    # the tour's signatures are those the needle programs call
    p = np.ascontiguousarray(np.random.default_rng(1).random((50, 3)))
    before = len(tour._knn_rows.signatures)
    from scalp3d.needle import order_dots

    order_dots(p * 40.0)
    assert len(tour._knn_rows.signatures) == before


def test_start_only_when_cold(monkeypatch):
    import scalp3d
    from scalp3d import warmup

    monkeypatch.setattr(scalp3d, "numba_cache_is_warm", lambda: True)
    assert warmup.start() is None
    monkeypatch.setattr(scalp3d, "numba_cache_is_warm", lambda: False)
    monkeypatch.setenv("SCALP3D_NO_WARMUP", "1")
    assert warmup.start() is None


def test_the_run_compiles_nothing_the_second_process_compiled(tmp_path):
    """After the second process's stages, a whole run (a small scar plan through ``scalp3d demo --no-preview``)
    adds no signature to any kernel they compiled: the run loads each from the cache instead of compiling it again
    (a read-only array would make numba compile a second version); and every kernel and helper has one version (a
    literal argument, or a prange loop's unsigned index passed on, made numba compile helpers two to four times: 15 s
    of a cold run). In a fresh process, so that no other test's calls count."""
    import subprocess
    import sys

    from test_install import PLAN

    (tmp_path / "small.toml").write_text(PLAN)
    code = f"""
import numba
from scalp3d import warmup
from scalp3d.cli import main
import scalp3d.kernels as K
from scalp3d.kernels import elimination, geometry, grid, multiclass, nearest, sampling, snap, spectrum, tour
mods = (elimination, geometry, grid, multiclass, nearest, sampling, snap, spectrum, tour)
def sigs():
    return {{(m.__name__, k): set(map(str, v.signatures)) for m in mods for k, v in vars(m).items()
            if isinstance(v, numba.core.registry.CPUDispatcher)}}
warmup.compile_kernels()
before = sigs()
assert sum(map(len, before.values())) >= 12, before
assert main(["demo", "--out", r"{tmp_path / 'out'}", "--plan", r"{tmp_path / 'small.toml'}", "--no-preview",
             "--quiet"]) == 0
after = sigs()
new = {{k: after[k] - before[k] for k in before if before[k] and after[k] - before[k]}}
assert not new, new
# and one version of each: no helper compiled again for a literal argument or prange's unsigned index
twice = {{k: v for k, v in after.items() if len(v) > 1}}
assert not twice, twice
print("compiled once:", sorted(k[1] for k in before if before[k]))
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=900,
                       env={**os.environ, "SCALP3D_NO_WARMUP": "1"})
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]


class _Running:
    """A stand-in for the second process: alive until told."""

    def __init__(self):
        self.alive = True

    def poll(self):
        return None if self.alive else 0


def _hold(path, seconds):
    """A process holding the lock file ``path`` for ``seconds`` (the second process compiling a stage)."""
    import subprocess
    import sys

    code = ("import fcntl, os, sys, time\nfd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)\n"
            "fcntl.flock(fd, fcntl.LOCK_EX)\nprint('held', flush=True)\ntime.sleep(float(sys.argv[2]))\n")
    p = subprocess.Popen([sys.executable, "-c", code, str(path), str(seconds)], stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "held"
    return p


@pytest.mark.skipif(sys.platform == "win32", reason="stage locks use fcntl (POSIX)")
def test_the_run_waits_for_a_stage_being_compiled_and_compiles_another_meanwhile(tmp_path, monkeypatch):
    from scalp3d import warmup

    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(warmup, "_second", _Running())
    monkeypatch.setattr(warmup, "_held", set())
    monkeypatch.setattr(warmup, "_finished", set())
    ahead = []
    monkeypatch.setattr(warmup, "_compile_stage", lambda name, inputs: ahead.append(name))
    monkeypatch.setattr(warmup, "_inputs", lambda: None)
    holder = _hold(warmup._lock_path("relax"), 1.5)
    try:
        assert warmup._try_stage("relax") is None  # the second process skips a stage another holds
        t = time.perf_counter()
        with warmup.stage("relax"):
            waited = time.perf_counter() - t
            assert warmup._try_stage("relax") is None  # held by the run now
            with warmup.stage("relax"):  # nested: nothing more to lock
                pass
    finally:
        holder.wait()
    assert waited > 1.0, waited  # it waited for the holder to finish the stage
    # and meanwhile compiled the short stages nobody had taken, each once, in order
    assert ahead == [s for s in warmup.STAGES_AHEAD if s != "relax"] == ["quality", "neighbours", "placement"], ahead
    fd = warmup._try_stage("relax")  # released
    assert fd is not None
    os.close(fd)


@pytest.mark.skipif(sys.platform == "win32", reason="stage locks use fcntl (POSIX)")
def test_a_dead_second_process_never_holds_the_run(tmp_path, monkeypatch):
    from scalp3d import warmup

    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path))
    dead = _Running()
    dead.alive = False
    monkeypatch.setattr(warmup, "_second", dead)
    monkeypatch.setattr(warmup, "_held", set())
    monkeypatch.setattr(warmup, "_finished", set("relax tour quality placement".split()))
    holder = _hold(warmup._lock_path("tour"), 30)
    try:
        t = time.perf_counter()
        with warmup.stage("tour"):
            pass
        assert time.perf_counter() - t < 5.0
    finally:
        holder.kill()
        holder.wait()


def test_stages_lock_nothing_without_a_second_process(tmp_path, monkeypatch):
    from scalp3d import warmup

    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(warmup, "_second", None)
    with warmup.stage("relax"):
        pass
    assert not list(tmp_path.iterdir())  # not even a lock file


def test_the_cache_is_warm_only_with_this_copys_kernels(tmp_path, monkeypatch):
    """Another installed copy's kernels (a regular install beside the editable one: the README's two commands in
    order) leave this copy's cache cold: its first run still gets the second compiling process."""
    from pathlib import Path

    import scalp3d
    from scalp3d.kernels import multiclass

    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path))
    assert not scalp3d.numba_cache_is_warm()
    other = tmp_path / ("kernels_" + "0" * 40)
    other.mkdir()
    (other / "multiclass._sweep_rows-1.py311.nbi").write_bytes(b"")
    assert not scalp3d.numba_cache_is_warm()
    own = tmp_path / Path(multiclass._sweep_rows._cache._cache_path).name  # the folder numba uses for this copy
    own.mkdir()
    (own / "multiclass._sweep_rows-1.py311.nbi").write_bytes(b"")
    assert scalp3d.numba_cache_is_warm()
