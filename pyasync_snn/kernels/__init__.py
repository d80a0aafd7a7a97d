"""Numba kernels over plain arrays. Nothing here knows about files, options or Python objects.

:data:`NO_REFCOUNT` are the ``njit`` options of the per-sample hot kernels. They are compiled
without Numba's runtime (NRT): they allocate nothing (their scratch arrays come from the caller,
which keeps every array alive for the call), so the views they take and the arrays their inlined
helpers receive need no reference counts. With NRT each of those costs an atomic increment and
decrement, which took 45% of a forward step at F = 1 (``docs/performance.md``). ``_nrt`` is
Numba's own option for this (NRT on is the default).
"""
NO_REFCOUNT = dict(cache=True, _nrt=False)
