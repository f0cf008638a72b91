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

import numba

#: chunks per thread: one contiguous range each, as numba's static prange schedule (2, 4 or 8 smaller chunks each ran
#: the joint sweep 5-15 % slower: every chunk is one more call unpacking a dozen arrays)
CHUNKS_PER_THREAD = 1
#: below this many rows per chunk the work is done in one call on the calling thread
MIN_CHUNK = 512


class _Worker:
    """A thread that runs one chunk at a time, handed over by two locks: ``go`` released by the caller when a chunk
    is in ``job``, ``done`` released by the worker when it has run (a ThreadPoolExecutor's futures and conditions
    cost about 65 us a call, this about 20: a design change calls the kernels some 350 times)."""

    def __init__(self):
        self.go = threading.Lock()
        self.go.acquire()
        self.done = threading.Lock()
        self.done.acquire()
        self.job = None
        self.error = None
        threading.Thread(target=self._loop, name="scalp3d-kernel", daemon=True).start()

    def _loop(self):
        while True:
            self.go.acquire()
            kernel, args = self.job
            try:
                kernel(*args)
            except BaseException as e:  # raised again on the calling thread
                self.error = e
            self.job = None
            self.done.release()

    def start(self, kernel, args):
        self.job, self.error = (kernel, args), None
        self.go.release()

    def wait(self):
        """Wait for the chunk; its exception, if it raised one."""
        self.done.acquire()
        return self.error


_workers: list = []
_create_lock = threading.Lock()
_busy = threading.Lock()  # held while the workers run one caller's chunks


def _forget_workers() -> None:
    # a forked child has none of the parent's threads: it starts workers of its own on first use
    global _create_lock, _busy
    _workers.clear()
    _create_lock = threading.Lock()
    _busy = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_workers)


def _helpers(count: int) -> list:
    with _create_lock:
        while len(_workers) < count:
            _workers.append(_Worker())
        return _workers[:count]


def run_chunks(n: int, kernel, *args, min_chunk: int = MIN_CHUNK) -> None:
    """Call ``kernel(lo, hi, *args)`` over ``[0, n)`` in chunks, on ``numba.get_num_threads()`` threads.

    ``kernel`` is a ``@njit(nogil=True)`` function whose rows are independent (each writes its own rows of its
    outputs). Exceptions raised in a chunk are raised here. A call made while another thread's chunks are running
    runs its rows in one call on its own thread (the same result: rows are independent).

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
    if threads <= 1 or chunks <= 1 or not _busy.acquire(blocking=False):
        kernel(0, n, *args)
        return
    try:
        bounds = [n * k // chunks for k in range(chunks + 1)]
        helpers = _helpers(chunks - 1)
        # the first chunks go to the workers, the calling thread takes the last
        for k, w in enumerate(helpers):
            w.start(kernel, (bounds[k], bounds[k + 1]) + args)
        try:
            kernel(bounds[chunks - 1], bounds[chunks], *args)
        finally:
            errors = [w.wait() for w in helpers]
        for e in errors:
            if e is not None:
                raise e
    finally:
        _busy.release()
