"""From timestamped events to the dataset format's integer timesteps (and a stratified split).

**The rule.** With a window ``W`` (µs) and an origin ``t0`` (µs, default 0), an event at time
``t`` goes to timestep ``floor((t - t0) / W)``: bin ``k`` is the half-open interval
``[t0 + k W, t0 + (k + 1) W)``. With ``n_timesteps = T`` the grid has exactly ``T`` bins, and an
event at ``t >= t0 + T W`` (beyond the last bin) or ``t < t0`` is **dropped**; nothing is folded
into the last bin. Every event keeps its own identity: two events of one unit in one bin give the
``(timestep, unit)`` pair twice, which the dataset format counts as an input count of 2.

Given only ``n_timesteps``, the window is ``ceil((t_max - t0 + 1) / T)`` µs over the events passed
(so the last event lands in the last bin or earlier and nothing is dropped); given only
``time_window_us``, the number of bins is open-ended (``floor((t_max - t0) / W) + 1``).

**Compared with tonic's** ``ToFrame(time_window=W)``: tonic anchors the grid at each sample's
*first event* (``t0 = t[0]``) rather than at a fixed origin, makes as many frames as the
recording needs (a variable number per sample), and with its default ``include_incomplete=False``
drops the trailing partial frame (events after the last complete window); with
``include_incomplete=True`` it keeps that partial frame. We use a fixed origin (0 µs by default)
and a fixed number of bins for every sample, so all samples share one time axis; events past the
last bin are dropped just as tonic drops its incomplete frame, while a trailing partial bin that
lies inside the ``T`` bins is kept.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import UserError
from ..events import EventBatch
from ..validate import integer


def grid(time_window_us=None, n_timesteps=None, default_window=None) -> tuple:
    """``(window, n_bins)``: the window (µs) and number of timesteps given (positive integers or
    None); with neither, ``default_window`` (if not None) and no fixed number of timesteps."""
    window, n_bins = (None if value is None else integer(what, value, 1, "a positive integer")
                      for what, value in (("time window (µs)", time_window_us),
                                          ("number of timesteps", n_timesteps)))
    if window is None and n_bins is None:
        if default_window is None:
            raise UserError("give a time window (µs), a number of timesteps, or both")
        window = default_window
    return window, n_bins


def bin_times(t_us, time_window_us=None, n_timesteps=None, t0_us=0) -> tuple:
    """``(timestep, keep)``: ``keep`` (bool, one per event) marks the events inside the grid,
    ``timestep`` (int64) holds the bin of each kept event. See the module docstring for the rule.

    Give ``time_window_us``, ``n_timesteps`` or both.
    """
    window, n_bins = grid(time_window_us, n_timesteps)
    t = np.asarray(t_us)
    if t.ndim != 1:
        raise UserError(f"timestamps must be a 1-d array, found shape {t.shape}")
    if not (np.issubdtype(t.dtype, np.integer) or np.issubdtype(t.dtype, np.floating)):
        raise UserError(f"timestamps must be numbers, found dtype {t.dtype}")
    if t.size and np.issubdtype(t.dtype, np.floating) and not np.all(np.isfinite(t)):
        raise UserError("timestamps must be finite")
    rel = t - t0_us
    after = rel >= 0
    if window is None:
        t_max = rel[after].max() if after.any() else 0
        window = max(1, int(np.ceil((float(t_max) + 1) / n_bins)))
    if np.issubdtype(rel.dtype, np.integer):
        step = rel.astype(np.int64) // window
    else:
        step = np.floor(rel / window).astype(np.int64)
    keep = after if n_bins is None else after & (step < n_bins)
    return step[keep], keep


def bin_samples(times_us, units, labels, n_inputs, time_window_us=None, n_timesteps=None,
                t0_us=0) -> tuple:
    """Bin per-sample events into an :class:`EventBatch`.

    ``times_us[i]`` and ``units[i]`` are the events of sample ``i`` (any order; kept in that
    order). All samples share one grid (``t0_us``, the window, ``n_timesteps``; with only a
    window, ``n_timesteps`` is the largest bin needed + 1). Returns ``(batch, time_us, n_dropped)``
    with the original timestamps of the kept events and the number of dropped ones.
    """
    n = len(labels)
    if len(times_us) != n or len(units) != n:
        raise UserError(f"{len(times_us)} time arrays and {len(units)} unit arrays for {n} labels")
    counts = np.array([len(t) for t in times_us], dtype=np.int64)
    if any(len(u) != c for u, c in zip(units, counts)):
        raise UserError("every sample needs as many units as timestamps")
    t_all = np.concatenate(times_us) if n else np.zeros(0, dtype=np.int64)
    u_all = np.concatenate(units).astype(np.int64) if n else np.zeros(0, dtype=np.int64)
    if n_timesteps is None and time_window_us is not None:
        step, keep = bin_times(t_all, time_window_us, None, t0_us)
        n_timesteps = int(step.max()) + 1 if step.size else 1
    elif n_timesteps is not None and time_window_us is None:
        # one window for the whole set (not per sample), so all samples share a time axis
        step, keep = bin_times(t_all, None, n_timesteps, t0_us)
    else:
        step, keep = bin_times(t_all, time_window_us, n_timesteps, t0_us)
    sample = np.repeat(np.arange(n), counts)[keep]
    kept_counts = np.bincount(sample, minlength=n)
    indptr = np.concatenate([[0], np.cumsum(kept_counts)]).astype(np.int64)
    batch = EventBatch(indptr, step, u_all[keep], np.asarray(labels), int(n_inputs), int(n_timesteps))
    return batch, t_all[keep], int(len(t_all) - keep.sum())


def stratified_split(labels, test_fraction, rng, n_per_class=None) -> tuple:
    """``(train_idx, test_idx)``: per class a seeded permutation (optionally cut to its first
    ``n_per_class``), the first ``round(test_fraction * n)`` to test; each split then shuffled."""
    train, test = [], []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        if n_per_class is not None:
            idx = idx[:n_per_class]
        n_test = int(round(test_fraction * len(idx)))
        test.append(idx[:n_test])
        train.append(idx[n_test:])
    train, test = np.concatenate(train), np.concatenate(test)
    return rng.permutation(train), rng.permutation(test)


@dataclass
class Generated:
    """A generated dataset: the two splits, their original timestamps, the generator's
    parameters, and ``stats[split]``: measured statistics stored as provenance attributes."""

    train: EventBatch
    test: EventBatch
    train_time_us: np.ndarray
    test_time_us: np.ndarray
    n_classes: int
    parameters: dict = field(default_factory=dict)
    stats: dict = field(default_factory=dict)
