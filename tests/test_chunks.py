"""kernels.chunks.run_chunks: every row done exactly once, whatever the thread count and the sizes; errors raised to
the caller; a forked child gets a pool of its own."""
import os
import signal
import time

import numba
import numpy as np
import pytest
from numba import njit

from scalp3d.kernels.chunks import run_chunks


@njit(nogil=True, cache=False)
def _mark(lo, hi, hits, owner):
    for i in range(lo, hi):
        hits[i] += 1
        owner[i] = lo


@njit(nogil=True, cache=False)
def _fail_at(lo, hi, bad):
    for i in range(lo, hi):
        if i == bad:
            raise ValueError("row failed")


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("n,min_chunk", [(0, 512), (1, 512), (511, 512), (1024, 512), (100_003, 512), (7, 1)])
def test_every_row_once(threads, n, min_chunk):
    before = numba.get_num_threads()
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    try:
        hits = np.zeros(n, dtype=np.int64)
        owner = np.full(n, -1, dtype=np.int64)
        run_chunks(n, _mark, hits, owner, min_chunk=min_chunk)
    finally:
        numba.set_num_threads(before)
    assert (hits == 1).all()
    # contiguous ranges, in order: as many as the threads at most
    starts = np.unique(owner)
    assert len(starts) <= max(1, min(threads, numba.config.NUMBA_NUM_THREADS))
    assert (np.diff(owner) >= 0).all()


def test_an_error_in_a_chunk_reaches_the_caller():
    with pytest.raises(ValueError, match="row failed"):
        run_chunks(10_000, _fail_at, 1234)  # the first chunk: on a pool thread when there are two
    with pytest.raises(ValueError, match="row failed"):
        run_chunks(10_000, _fail_at, 9_999)  # the last: on the calling thread


def test_callers_on_several_threads_at_once():
    """Chunks asked for by several threads at once (a design window placing while a script runs): every caller's rows
    done exactly once (a caller that finds the workers busy runs its rows itself)."""
    import threading

    results, errors = [], []

    def caller(seed):
        try:
            for k in range(200):
                n = 2_000 + 37 * ((seed * 31 + k) % 50)
                hits = np.zeros(n, dtype=np.int64)
                run_chunks(n, _mark, hits, np.zeros(n, dtype=np.int64))
                results.append(bool((hits == 1).all()))
        except BaseException as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=caller, args=(s,), daemon=True) for s in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60.0)
    assert not errors and len(results) == 800 and all(results)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork is POSIX")
def test_a_forked_child_runs_chunks():
    hits = np.zeros(5000, dtype=np.int64)
    run_chunks(5000, _mark, hits, np.zeros(5000, dtype=np.int64))  # the parent's pool exists now
    pid = os.fork()
    if pid == 0:  # the child: its own pool, the same rows
        try:
            h = np.zeros(5000, dtype=np.int64)
            run_chunks(5000, _mark, h, np.zeros(5000, dtype=np.int64))
            os._exit(0 if (h == 1).all() else 1)
        except BaseException:
            os._exit(2)
    deadline = time.monotonic() + 60.0
    while True:  # a child stuck on the parent's dead pool threads fails the test instead of hanging it
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            pytest.fail("the forked child hung in run_chunks")
        time.sleep(0.05)
    assert os.waitstatus_to_exitcode(status) == 0
