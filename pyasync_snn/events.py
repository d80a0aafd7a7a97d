"""Input spikes of a batch of samples, in the ragged (CSR) layout of the dataset format.

Sample ``b`` owns events ``indptr[b]:indptr[b+1]``; event ``e`` is one input spike on channel
``unit[e]`` at timestep ``timestep[e]``. A repeated ``(timestep, unit)`` pair counts twice, so the
input of sample ``b`` is the count matrix ``x[t, c]``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import UserError
from .kernels.inputs import sort_by_time
from .parallel import for_each_chunk

MAX_SIZE = 2**31 - 1  # sizes and indices are int32 in the kernels


def check_sizes(**sizes) -> None:
    """Each size (``n_inputs=...``, ``n_timesteps=...``, ``n_classes=...``) must lie in [1, 2^31)."""
    for name, size in sizes.items():
        if not 0 < size <= MAX_SIZE:
            raise UserError(f"{name} must lie in [1, 2^31), got {size}")


def sample_indices(indices, n) -> np.ndarray:
    """``indices`` as an int64 array of sample indices, each in ``[0, n)``."""
    indices = np.asarray(indices, dtype=np.int64).ravel()
    if len(indices) and (indices.min() < 0 or indices.max() >= n):
        raise UserError(f"sample indices must lie in [0, {n}), found {indices.min()}..{indices.max()}")
    return indices


@dataclass(frozen=True)
class EventBatch:
    """Input spikes of ``B`` samples: ``indptr (B+1,)``, ``timestep (E,)``, ``unit (E,)``.

    ``labels (B,)`` are the class labels and ``sample_ids (B,)`` the samples' indices in their
    dataset (they seed each sample's random stream, so a sample's result does not depend on the
    batch it ran in).
    """

    indptr: np.ndarray
    timestep: np.ndarray
    unit: np.ndarray
    labels: np.ndarray
    n_inputs: int
    n_timesteps: int
    sample_ids: np.ndarray = None

    def __post_init__(self):
        for name in ("indptr", "timestep", "unit", "labels"):  # int64 first: range checks before narrowing
            object.__setattr__(self, name, np.ascontiguousarray(getattr(self, name), dtype=np.int64))
        if self.sample_ids is None:
            object.__setattr__(self, "sample_ids", np.arange(len(self.labels), dtype=np.int64))
        object.__setattr__(self, "sample_ids", np.ascontiguousarray(self.sample_ids, dtype=np.int64))
        self.validate()
        for name in ("timestep", "unit"):  # the kernels' width; validate() bounded them by n_* < 2^31
            object.__setattr__(self, name, getattr(self, name).astype(np.int32))

    def __len__(self) -> int:
        return len(self.indptr) - 1

    def validate(self) -> None:
        """Check shapes and ranges; raise :class:`UserError` naming the problem."""
        n, e = len(self), len(self.timestep)
        check_sizes(n_inputs=self.n_inputs, n_timesteps=self.n_timesteps)
        if self.indptr.ndim != 1 or len(self.indptr) < 1 or self.indptr[0] != 0 or self.indptr[-1] != e:
            raise UserError(f"events/indptr must start at 0 and end at the number of events ({e})")
        if np.any(np.diff(self.indptr) < 0):
            raise UserError("events/indptr must be non-decreasing")
        if len(self.unit) != e:
            raise UserError(f"events/unit has {len(self.unit)} entries but events/timestep has {e}")
        if len(self.labels) != n or len(self.sample_ids) != n:
            raise UserError(f"labels has {len(self.labels)} entries for {n} samples")
        if e and (self.unit.min() < 0 or self.unit.max() >= self.n_inputs):
            raise UserError(f"events/unit out of range: values must lie in [0, {self.n_inputs})")
        if e and (self.timestep.min() < 0 or self.timestep.max() >= self.n_timesteps):
            raise UserError(f"events/timestep out of range: values must lie in [0, {self.n_timesteps})")

    def sorted_by_time(self) -> tuple:
        """``(timestep, unit)`` with each sample's events sorted by timestep, then unit (computed
        once per batch: a training step simulates and differentiates the same batch)."""
        if "_sorted" not in self.__dict__:
            timestep, unit = np.empty_like(self.timestep), np.empty_like(self.unit)
            for_each_chunk(lambda lo, hi: sort_by_time(self.indptr, self.timestep, self.unit, self.n_inputs,
                                                       self.n_timesteps, timestep, unit, lo, hi), len(self))
            object.__setattr__(self, "_sorted", (timestep, unit))
        return self._sorted

    def take(self, start: int, stop: int) -> "EventBatch":
        """Samples ``start:stop`` as a batch of their own (events copied, ids kept)."""
        e0, e1 = self.indptr[start], self.indptr[stop]
        return EventBatch(self.indptr[start:stop + 1] - e0, self.timestep[e0:e1], self.unit[e0:e1],
                          self.labels[start:stop], self.n_inputs, self.n_timesteps,
                          self.sample_ids[start:stop])

    def select(self, indices) -> "EventBatch":
        """The samples at positions ``indices``, in that order (repeats allowed), as a batch of
        their own (events copied, ids kept)."""
        indices = sample_indices(indices, len(self))
        counts = self.indptr[indices + 1] - self.indptr[indices]
        indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        pos = np.repeat(self.indptr[indices] - indptr[:-1], counts) + np.arange(indptr[-1])
        return EventBatch(indptr, self.timestep[pos], self.unit[pos], self.labels[indices],
                          self.n_inputs, self.n_timesteps, self.sample_ids[indices])

    @classmethod
    def concatenate(cls, parts, n_inputs, n_timesteps) -> "EventBatch":
        """The batches ``parts`` (of ``n_inputs`` channels and ``n_timesteps`` steps) one after
        the other as one batch, ids kept; no parts give an empty batch."""
        if not parts:
            return cls(np.zeros(1, np.int64), np.zeros(0), np.zeros(0), np.zeros(0), n_inputs,
                       n_timesteps, np.zeros(0, np.int64))
        starts = np.concatenate([[0], np.cumsum([p.indptr[-1] for p in parts])[:-1]])
        indptr = np.concatenate([[0]] + [p.indptr[1:] + s for p, s in zip(parts, starts)])
        cat = lambda name: np.concatenate([getattr(p, name) for p in parts])  # noqa: E731
        return cls(indptr, cat("timestep"), cat("unit"), cat("labels"), n_inputs, n_timesteps,
                   cat("sample_ids"))

    def drop(self, p: float, rng: np.random.Generator) -> "EventBatch":
        """Delete each input spike independently with probability ``p``: one ``rng.random()``
        draw per event, in event order. ``p = 0`` returns the batch itself and draws nothing."""
        if p == 0:
            return self
        keep = rng.random(len(self.timestep)) >= p
        sample = np.repeat(np.arange(len(self)), np.diff(self.indptr))
        counts = np.bincount(sample[keep], minlength=len(self))
        return EventBatch(np.concatenate([[0], np.cumsum(counts)]), self.timestep[keep],
                          self.unit[keep], self.labels, self.n_inputs, self.n_timesteps,
                          self.sample_ids)

    def dense(self, b: int) -> np.ndarray:
        """The count matrix ``x[t, c]`` of sample ``b`` (for tests and small examples)."""
        x = np.zeros((self.n_timesteps, self.n_inputs), dtype=np.int64)
        s = slice(self.indptr[b], self.indptr[b + 1])
        np.add.at(x, (self.timestep[s], self.unit[s]), 1)
        return x

    @classmethod
    def from_dense(cls, x, labels=None) -> "EventBatch":
        """Build a batch from count arrays ``x[b, t, c]`` (non-negative integers)."""
        x = np.asarray(x)
        if x.ndim != 3:
            raise UserError(f"dense input must have shape (samples, timesteps, channels), got {x.shape}")
        if np.any(x < 0):
            raise UserError("input spike counts must be non-negative")
        b, t, c = np.nonzero(x)
        reps = x[b, t, c].astype(np.int64)
        b, t, c = np.repeat(b, reps), np.repeat(t, reps), np.repeat(c, reps)
        indptr = np.concatenate([[0], np.cumsum(np.bincount(b, minlength=x.shape[0]))])
        labels = np.zeros(x.shape[0], dtype=np.int64) if labels is None else labels
        return cls(indptr, t, c, labels, x.shape[2], x.shape[1])
