"""The shared validators of user-given values: each returns the value in its clean type or raises a
one-line :class:`UserError` that names it. Every module checks options through these."""
from __future__ import annotations

import math

import numpy as np

from .errors import UserError


def integer(name, value, low, what=None, high=None):
    """An integer (or an integral float) in ``[low, high]``; ``what`` words the expectation."""
    what = what or f"an integer >= {low}"
    ok = (isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))) or (
        isinstance(value, (float, np.floating)) and float(value).is_integer())
    if not ok or value < low or (high is not None and value > high):
        raise UserError(f"{name} must be {what}, got {value!r}")
    return int(value)


def real(name, value, low=None, high=None, open_low=False):
    """A finite number in ``[low, high)`` (``(low, high)`` with ``open_low``)."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise UserError(f"{name} must be a number, got {value!r}") from None
    if isinstance(value, bool) or not math.isfinite(x) or (low is not None and (x < low or (open_low and x == low))) \
            or (high is not None and x >= high):
        lo = "" if low is None else ("> " if open_low else ">= ") + f"{low:g}"
        hi = "" if high is None else f"< {high:g}"
        raise UserError(f"{name} must be a finite number {' and '.join(p for p in (lo, hi) if p)}, got {value!r}")
    return x


def choice(name, value, choices):
    """One of ``choices`` (a sequence or a dict's keys)."""
    if value not in choices:
        raise UserError(f"unknown {name} {value!r}; choose one of {', '.join(choices)}")
    return value
