"""Refuse up front, in one line, work whose arrays cannot fit in this machine's memory (instead of
a NumPy ``MemoryError`` halfway through, or an allocation failure inside a kernel)."""
from __future__ import annotations

import os

from .errors import UserError


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
