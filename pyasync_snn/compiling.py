"""Saying so when a kernel compiles.

The first call of a Numba kernel on a machine (or after an upgrade) compiles it with LLVM, which
takes seconds; Numba then caches it on disk and later runs load it at once. :func:`announced`
wraps a first call: if the kernel is still compiling after :data:`NOTICE_AFTER` seconds, every
listener (the CLI adds one that prints to stderr) gets a one-line notice. The library itself
prints nothing.
"""
from __future__ import annotations

import threading
from contextlib import contextmanager

NOTICE_AFTER = 1.0  # seconds; loading a cached kernel takes well under that
listeners = []      # callables taking the notice (a str)


@contextmanager
def announced(kernel, what: str):
    """Run the body; tell the listeners if ``kernel`` (a Numba dispatcher) is still being compiled
    :data:`NOTICE_AFTER` seconds into it (it has no compiled or cached version loaded yet)."""
    if kernel.overloads or not listeners:
        yield
        return

    def notice():
        if not kernel.overloads:
            for listener in listeners:
                listener(f"compiling the {what} kernels (once per machine and version; 5-20 s)...")

    timer = threading.Timer(NOTICE_AFTER, notice)
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()
