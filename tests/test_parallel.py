"""Chunks on threads (parallel.py), the compile notice (compiling.py) and the buffers a thread
reuses (memory.py)."""
import time

import numba
import numpy as np
import pytest

from pyasync_snn import UserError, compiling
from pyasync_snn.memory import reused_empty
from pyasync_snn.parallel import for_each_chunk, use_threads


@pytest.mark.parametrize("n_items", [0, 1, 7, 100])
def test_every_item_is_run_exactly_once(n_items):
    seen = np.zeros(n_items, dtype=int)
    for_each_chunk(lambda lo, hi: np.add.at(seen, np.arange(lo, hi), 1), n_items,
                   threads=numba.config.NUMBA_NUM_THREADS)
    assert np.all(seen == 1)


def test_an_error_in_a_thread_reaches_the_caller():
    def chunk(lo, hi):
        if lo <= 5 < hi:
            raise ValueError("item 5")
    with pytest.raises(ValueError, match="item 5"):
        for_each_chunk(chunk, 20, threads=numba.config.NUMBA_NUM_THREADS)


def test_helper_threads_are_started_once_and_reused():
    import threading
    for_each_chunk(lambda lo, hi: None, 10, threads=numba.config.NUMBA_NUM_THREADS)
    before = threading.active_count()
    for _ in range(20):
        for_each_chunk(lambda lo, hi: time.sleep(0.001), 10, threads=numba.config.NUMBA_NUM_THREADS)
    assert threading.active_count() == before


def test_a_thread_count_given_to_one_call_is_not_kept():
    use_threads(numba.config.NUMBA_NUM_THREADS)
    for_each_chunk(lambda lo, hi: None, 10, threads=1)
    assert use_threads(None) == numba.config.NUMBA_NUM_THREADS


def test_a_chunk_may_itself_run_chunks():
    # from inside a helper thread, waiting for the (busy) helpers would deadlock: it runs serially
    seen = np.zeros((6, 5), dtype=int)

    def outer(lo, hi):
        for i in range(lo, hi):
            for_each_chunk(lambda a, b: np.add.at(seen[i], np.arange(a, b), 1), 5,
                           threads=numba.config.NUMBA_NUM_THREADS)
    for_each_chunk(outer, 6, threads=numba.config.NUMBA_NUM_THREADS, per_thread=1)
    assert np.all(seen == 1)


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs os.fork")
def test_a_forked_child_gets_its_own_helpers():
    import multiprocessing
    for_each_chunk(lambda lo, hi: None, 10, threads=numba.config.NUMBA_NUM_THREADS)  # helpers started
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_count_in_child, args=(queue,))
    child.start()
    child.join(60)
    assert child.exitcode == 0 and queue.get(timeout=5) == 50


def _count_in_child(queue):
    seen = np.zeros(50, dtype=int)
    for_each_chunk(lambda lo, hi: np.add.at(seen, np.arange(lo, hi), 1), 50, threads=numba.config.NUMBA_NUM_THREADS)
    queue.put(int(seen.sum()))


def test_thread_counts_are_validated():
    with pytest.raises(UserError, match="threads"):
        use_threads(0)
    with pytest.raises(UserError, match="threads"):
        use_threads(numba.config.NUMBA_NUM_THREADS + 1)
    assert use_threads(1) == 1
    use_threads(numba.config.NUMBA_NUM_THREADS)


class _Kernel:
    """A stand-in for a Numba dispatcher: no version loaded until ``overloads`` fills."""
    def __init__(self, loaded):
        self.overloads = {"sig": None} if loaded else {}


def test_a_slow_first_call_is_announced_once(monkeypatch):
    heard = []
    monkeypatch.setattr(compiling, "NOTICE_AFTER", 0.05)
    monkeypatch.setattr(compiling, "listeners", [heard.append])
    kernel = _Kernel(loaded=False)
    with compiling.announced(kernel, "test"):
        time.sleep(0.3)
    assert len(heard) == 1 and "compiling the test kernels" in heard[0]
    with compiling.announced(_Kernel(loaded=True), "test"):  # loaded: nothing to say
        time.sleep(0.3)
    with compiling.announced(_Kernel(loaded=False), "test"):  # fast: nothing to say
        pass
    time.sleep(0.1)
    assert len(heard) == 1


def test_a_thread_gets_the_same_buffer_again_and_other_threads_their_own():
    import threading
    a = reused_empty("test buffer", 100, np.int32)
    assert a.shape == (100,) and a.dtype == np.int32
    assert np.shares_memory(a, reused_empty("test buffer", 60, np.int32))  # smaller: the same memory
    assert not np.shares_memory(a, reused_empty("other test buffer", 100, np.int32))
    assert not np.shares_memory(a, reused_empty("test buffer", 100, np.float64))
    grown = reused_empty("test buffer", 1000, np.int32)  # larger: reallocated, then kept
    assert len(grown) == 1000 and np.shares_memory(grown, reused_empty("test buffer", 10, np.int32))
    theirs = []
    thread = threading.Thread(target=lambda: theirs.append(reused_empty("test buffer", 10, np.int32)))
    thread.start()
    thread.join()
    assert not np.shares_memory(grown, theirs[0])
