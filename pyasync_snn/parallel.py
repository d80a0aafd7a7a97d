"""Samples in parallel on Python threads.

The batch kernels are ``@njit(nogil=True)`` over a range of samples, so plain Python threads run
them side by side. Each thread takes the next chunk of samples when it finishes the last one
(dynamic scheduling: samples of unequal length do not leave a core idle), and no kernel needs
Numba's ``parallel=True``, whose compilation cost more than the kernels themselves.

The thread count lies in ``[1, numba.config.NUMBA_NUM_THREADS]`` (the ``NUMBA_NUM_THREADS``
environment variable, default: every core) and defaults to its maximum. It is kept here, not in
Numba's ``set_num_threads``: that would start Numba's own thread pool, which no kernel uses, and
take a process-wide lock on every call.
"""
from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numba

from .errors import UserError

_threads = [numba.config.NUMBA_NUM_THREADS]  # the count in use (a list: set by use_threads)
_helpers = []  # the ThreadPoolExecutor of _pool, once started
_HELPER_NAME = "pyasync-snn-helper"
os.register_at_fork(after_in_child=_helpers.clear)  # a forked child has none of the parent's threads


def use_threads(threads) -> int:
    """Set the thread count (``None``: leave it as it is); return the count now in use."""
    if threads is not None:
        if isinstance(threads, bool) or int(threads) != threads or \
                not 1 <= threads <= numba.config.NUMBA_NUM_THREADS:
            raise UserError(f"threads must lie in [1, {numba.config.NUMBA_NUM_THREADS}], got {threads}")
        _threads[0] = int(threads)
    return _threads[0]


def for_each_chunk(run_chunk, n_items: int, threads: int | None = None, per_thread: int = 4) -> None:
    """Call ``run_chunk(lo, hi)`` over ``0..n_items`` in chunks, on ``threads`` threads (for this
    call only; default: the count in use, :func:`use_threads`), about ``per_thread`` chunks each,
    taken in order as threads become free. ``run_chunk`` must release the GIL (a ``nogil``
    kernel, or a NumPy copy) for the threads to overlap; the chunks must be independent. The first
    exception raised in a thread is raised here."""
    n_threads = min(_threads[0] if threads is None else threads, max(n_items, 1))
    if threading.current_thread().name.startswith(_HELPER_NAME):
        n_threads = 1  # called from a helper itself: waiting for the other helpers could deadlock
    if n_threads == 1:
        if n_items:
            run_chunk(0, n_items)
        return
    size = max(1, -(-n_items // (n_threads * per_thread)))
    starts = iter(range(0, n_items, size))
    take = threading.Lock()
    errors = []

    def worker():
        while not errors:
            with take:
                lo = next(starts, None)
            if lo is None:
                return
            try:
                run_chunk(lo, min(n_items, lo + size))
            except BaseException as e:  # re-raised in the calling thread
                errors.append(e)

    helpers = [_pool().submit(worker) for _ in range(n_threads - 1)]
    worker()
    for helper in helpers:
        helper.result()
    if errors:
        raise errors[0]


def _pool() -> ThreadPoolExecutor:
    """The helper threads, started once per process (starting threads on every call cost about
    0.1 ms each, a tenth of a small batch's kernel time); one less than the most threads allowed:
    the calling thread is the last worker."""
    if not _helpers:
        _helpers.append(ThreadPoolExecutor(max(1, numba.config.NUMBA_NUM_THREADS - 1),
                                           thread_name_prefix=_HELPER_NAME))
    return _helpers[0]
