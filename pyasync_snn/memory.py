"""Memory: refuse up front, in one line, work whose arrays cannot fit in this machine's memory
(instead of a NumPy ``MemoryError`` halfway through, or an allocation failure inside a kernel);
and reuse, per thread, the large scratch buffers that every call would otherwise take fresh from
the operating system."""
from __future__ import annotations

import os
import threading

import numpy as np

from .errors import UserError

_kept = threading.local()  # per thread: {(key, dtype): array} of reused_empty


def physical_memory() -> int | None:
    """Bytes of RAM in this machine, or None where the OS does not say."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def check_memory(n_bytes, what) -> None:
    """Raise :class:`UserError` if ``n_bytes`` (for ``what``) exceed the machine's RAM."""
    total = physical_memory()
    if total is not None and n_bytes > total:
        raise UserError(f"{what} would need {format_bytes(n_bytes)} of memory; this machine has "
                        f"{format_bytes(total)} (are the sizes in the file right?)")


def format_bytes(n) -> str:
    """``1.5 GB`` style (powers of 1024)."""
    n = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024


def reused_empty(key: str, n: int, dtype) -> np.ndarray:
    """An uninitialised array of ``n`` items of ``dtype`` that later calls from this thread with the
    same ``key`` get again (reallocated only to grow). For the large buffers a call fills and then
    drops, such as the simulator's event slots: as fresh memory on every call, each page the call
    touches is faulted in and zeroed by the operating system first (up to a quarter of a 64-sample
    simulation's time on the reference machine, ``docs/performance.md``). The caller must be done
    with it before this thread asks for ``key`` again. The largest array per key and thread stays
    allocated (its touched pages count in the resident memory)."""
    dtype = np.dtype(dtype)
    kept = _kept.__dict__
    array = kept.get((key, dtype))
    if array is None or len(array) < n:
        array = kept[key, dtype] = np.empty(n, dtype)
    return array[:n]
