"""The embedded *temporal* dataset: Randman-style random manifolds of spike times (Zenke & Vogels
2021, "The remarkable robustness of surrogate gradient learning..."). It stands in for SHD: the
class is carried by *when* units spike, never by how often.

**Generation** (deterministic for a seed; one ``numpy.random.default_rng(seed)``, fixed order):

1. For each class ``k``, spike index ``i`` (0..2) and unit ``u`` (0..99), a random smooth function
   of an intrinsic coordinate ``x in [0, 1)^D`` (``D = 1``):
   ``f(x) = prod_d sum_{j=1..J} a_j / j**alpha * sin(2 pi (j x_d + phi_j))`` with ``J = 5``
   Fourier components, amplitudes ``a_j ~ U(0, 1)``, phases ``phi_j ~ U(0, 1)``, ``alpha = 2``
   (higher frequencies are weaker, so the manifold is smooth).
2. Each function is min-max scaled *per class* (per class, spike index and unit, over a grid of
   1024 points of ``[0, 1)``) to ``[0, 1)`` and multiplied by the duration (1 s): a spike time.
3. A sample of class ``k`` draws one intrinsic point ``x ~ U[0, 1)^D``; each unit spikes once per
   spike index at ``f_{k,i,u}(x)``, plus gaussian jitter (sd 3 ms), clipped into ``[0, 1 s)``.
   Every unit spikes exactly 3 times in every sample: counts are constant, the information is
   in the timing only.
4. The samples are written in the SHD layout with :func:`shd.write_shd` (times in seconds, with
   ``extra/keys`` class names and per-sample ``extra/intrinsic``), read back with
   :func:`shd.read_shd` in slices, and binned into 100 timesteps of 10 ms (:mod:`binning`; no
   event is dropped, two spikes of one unit in one bin count twice).
5. 100 samples per class, stratified split (per class, a seeded 20% to the test set).

Sizes: 100 inputs, 100 timesteps, 10 classes, 800 train / 200 test samples, 300 spikes per sample.
"""
from __future__ import annotations

import os
import tempfile

import numpy as np

from ..errors import UserError
from ..validate import integer
from . import shd
from .binning import Generated, bin_samples, stratified_split

DEFAULTS = {
    "n_classes": 10,
    "n_units": 100,
    "n_spikes": 3,
    "dim": 1,
    "alpha": 2.0,
    "n_fourier": 5,
    "duration_us": 1_000_000,
    "jitter_us": 3000.0,
    "n_per_class": 100,
    "step_us": 10_000,
    "n_timesteps": 100,
    "test_fraction": 0.2,
}
GRID = 1024
READ_CHUNK = 256


class Manifolds:
    """The random smooth functions of every (class, spike index, unit), with their per-class
    min-max scaling; :meth:`times` maps intrinsic points to spike times in [0, 1).

    ``sin(2 pi (j x + phi)) = sin(2 pi j x) cos(2 pi phi) + cos(2 pi j x) sin(2 pi phi)``, so each
    dimension's sum is one matrix product of a ``(points, 2J)`` basis with ``(2J, spikes * units)``
    coefficients.
    """

    def __init__(self, rng, n_classes, n_spikes, n_units, dim, n_fourier, alpha):
        shape = (n_classes, n_spikes, n_units, dim, n_fourier)
        self.shape = (n_spikes, n_units)
        amplitude = rng.random(shape) / np.arange(1, n_fourier + 1) ** alpha
        phase = 2 * np.pi * rng.random(shape)
        # coef[k, d]: (2J, spikes * units)
        coef = np.concatenate([amplitude * np.cos(phase), amplitude * np.sin(phase)], axis=-1)
        self.coef = coef.reshape(n_classes, n_spikes * n_units, dim, 2 * n_fourier).transpose(0, 2, 3, 1)
        self.freq = np.arange(1, n_fourier + 1, dtype=np.float64)
        side = max(4, int(round(GRID ** (1.0 / dim))))
        axes = np.meshgrid(*[(np.arange(side) + 0.5) / side] * dim, indexing="ij")
        grid = np.stack([a.ravel() for a in axes], axis=1)             # (P, D)
        values = np.stack([self.raw_class(k, grid) for k in range(n_classes)])  # (C, P, S, U)
        self.low, self.high = values.min(axis=1), values.max(axis=1)    # (C, spikes, units)

    def raw_class(self, k, x) -> np.ndarray:
        """Unscaled ``f`` of class ``k`` at points ``x (P, D)``: ``(P, spikes, units)``."""
        out = np.ones((len(x), self.coef.shape[-1]))
        for d in range(x.shape[1]):
            angle = 2 * np.pi * x[:, d:d + 1] * self.freq
            out *= np.concatenate([np.sin(angle), np.cos(angle)], axis=1) @ self.coef[k, d]
        return out.reshape(len(x), *self.shape)

    def times(self, label, x) -> np.ndarray:
        """Spike times scaled to ``[0, 1)`` (per class min-max over the grid) of samples with
        labels ``label (N,)`` at intrinsic points ``x (N, D)``: ``(N, spikes, units)``."""
        out = np.empty((len(label), *self.shape))
        for k in np.unique(label):
            rows = label == k
            low, high = self.low[k], self.high[k]
            out[rows] = (self.raw_class(k, x[rows]) - low) / (high - low + 1e-12)
        return np.clip(out, 0.0, 1.0 - 1e-9)


def generate(seed=0, n_per_class=None, workdir=None, **overrides) -> Generated:
    """Generate the temporal dataset (module docstring) for ``seed``.

    ``n_per_class`` overrides the number of samples per class (default 100); ``overrides`` change
    entries of :data:`DEFAULTS`. ``workdir`` holds the temporary SHD file (removed afterwards).
    """
    unknown = set(overrides) - set(DEFAULTS)
    if unknown:
        raise UserError(f"unknown temporal parameters {sorted(unknown)}; known: {sorted(DEFAULTS)}")
    p = {**DEFAULTS, **overrides}
    if n_per_class is not None:
        p["n_per_class"] = n_per_class
    for key in ("n_classes", "n_units", "n_spikes", "dim", "n_fourier", "n_per_class",
                "duration_us", "step_us", "n_timesteps"):
        integer(key, p[key], 1, "a positive integer")
    n_classes, n_units, n_spikes = p["n_classes"], p["n_units"], p["n_spikes"]
    duration = int(p["duration_us"])
    rng = np.random.default_rng(seed)
    manifolds = Manifolds(rng, n_classes, n_spikes, n_units, p["dim"], p["n_fourier"], p["alpha"])
    labels = np.repeat(np.arange(n_classes), p["n_per_class"])
    n = len(labels)
    x = rng.random((n, p["dim"]))
    scaled = manifolds.times(labels, x)                                  # (N, spikes, units)
    t_us = scaled * duration + rng.normal(0.0, p["jitter_us"], scaled.shape)
    t_us = np.clip(np.round(t_us), 0, duration - 1).astype(np.int64).reshape(n, -1)
    units = np.broadcast_to(np.arange(n_units), (n, n_spikes, n_units)).reshape(n, -1)
    order = np.argsort(t_us * n_units + units, axis=1, kind="stable")  # by time, then unit
    t_us = np.take_along_axis(t_us, order, axis=1)
    units = np.take_along_axis(units, order, axis=1)
    train_idx, test_idx = stratified_split(labels, p["test_fraction"], rng)

    keys = np.array([f"class {k}" for k in range(n_classes)])
    with tempfile.TemporaryDirectory(prefix="pyasync-snn-temporal-", dir=workdir) as root:
        splits = {}
        for split, order_idx in (("train", train_idx), ("test", test_idx)):
            path = os.path.join(root, f"temporal_{split}.h5")
            shd.write_shd(path, list(t_us[order_idx] * 1e-6), list(units[order_idx]),
                          labels[order_idx], extra={"keys": keys, "intrinsic": x[order_idx]})
            times, unit_lists, read_labels = [], [], []
            with shd.open_shd(path) as f:
                for start in range(0, len(f), READ_CHUNK):
                    chunk = f.read(start, min(start + READ_CHUNK, len(f)))
                    times.extend(np.round(t * 1e6).astype(np.int64) for t in chunk["times"])
                    unit_lists.extend(chunk["units"])
                    read_labels.append(chunk["labels"])
            batch, time_us, dropped = bin_samples(times, unit_lists, np.concatenate(read_labels),
                                                  n_units, p["step_us"], p["n_timesteps"])
            if dropped:
                raise AssertionError(f"{dropped} spikes fell outside the {p['n_timesteps']} bins")
            splits[split] = (batch, time_us)

    stats = {split: {"spikes_per_unit": n_spikes} for split in splits}
    return Generated(splits["train"][0], splits["test"][0], splits["train"][1], splits["test"][1],
                     n_classes, parameters=p, stats=stats)
