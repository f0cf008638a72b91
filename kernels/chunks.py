"""Parallel loops as chunks of a serial kernel on a thread pool.

A ``prange`` loop costs numba's parallel compiler several seconds per kernel on a first run (the parfor passes and a
second compilation of the loop body as a gufunc: the joint sweep compiled in 10.9 s with ``parallel=True``, 5.8 s
without). The heavy loops are therefore written as serial ``@njit(nogil=True)`` kernels over a range ``[lo, hi)``
(``_nrt=False`` where they allocate nothing: numba's reference counting of the arrays a loop body touches halved the
serial sweep's speed) and run here on a few threads at once: numba releases the GIL inside them, so the chunks run in parallel, as a
``prange`` would. Every chunk writes only its own rows, so the result does not depend on the number of threads or of
chunks. The thread count is numba's (``numba.get_num_threads()``, ``NUMBA_NUM_THREADS``).
"""
import os
import threading
from concurrent.futures import ThreadPoolExecutor, wait

import numba

#: chunks per thread: one contiguous range each, as numba's static prange schedule (2, 4 or 8 smaller chunks each ran
#: the joint sweep 5-15 % slower: every chunk is one more call unpacking a dozen arrays)
CHUNKS_PER_THREAD = 1
#: below this many rows per chunk the work is done in one call on the calling thread
MIN_CHUNK = 512

_pool = None
_pool_lock = threading.Lock()


def _forget_pool() -> None:
    # a forked child has none of the parent's threads: it starts a pool of its own on first use
    global _pool, _pool_lock
    _pool = None
    _pool_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)


def _executor() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=numba.config.NUMBA_NUM_THREADS,
                                       thread_name_prefix="scalp3d-kernel")
        return _pool


def run_chunks(n: int, kernel, *args, min_chunk: int = MIN_CHUNK) -> None:
    """Call ``kernel(lo, hi, *args)`` over ``[0, n)`` in chunks, on ``numba.get_num_threads()`` threads.

    ``kernel`` is a ``@njit(nogil=True)`` function whose rows are independent (each writes its own rows of its
    outputs). Exceptions raised in a chunk are raised here.

    Examples
    --------
    >>> import numpy as np
    >>> from numba import njit
    >>> @njit(nogil=True)
    ... def square(lo, hi, a, out):
    ...     for i in range(lo, hi):
    ...         out[i] = a[i] * a[i]
    >>> a = np.arange(5.0); out = np.empty(5)
    >>> run_chunks(5, square, a, out); out.tolist()
    [0.0, 1.0, 4.0, 9.0, 16.0]
    """
    threads = numba.get_num_threads()
    chunks = min(threads * CHUNKS_PER_THREAD, n // max(min_chunk, 1))
    if threads <= 1 or chunks <= 1:
        kernel(0, n, *args)
        return
    bounds = [n * k // chunks for k in range(chunks + 1)]
    pool = _executor()
    # the calling thread takes its share too, the first chunks go to the pool
    futures = [pool.submit(kernel, bounds[k], bounds[k + 1], *args) for k in range(chunks - 1)]
    try:
        kernel(bounds[chunks - 1], bounds[chunks], *args)
    finally:
        wait(futures)
    for f in futures:
        f.result()
