"""The dataset file (``format = "pyasync-snn/dataset"``): input spikes in the ragged (CSR) layout.

``labels (N,)``, ``events/indptr (N+1,)`` int64, ``events/timestep (E,)`` and ``events/unit (E,)``;
root attributes ``n_inputs``, ``n_timesteps``, ``n_classes``. Optional: ``events/time_us (E,)``,
a root attribute ``name`` and further provenance attributes. The reader loads ``labels`` and
``indptr`` only; event arrays are read one batch at a time.
"""
from __future__ import annotations

import numpy as np

from ..errors import UserError
from ..events import EventBatch, check_sizes, sample_indices
from .h5common import (atomic_h5, attr, check_indptr, check_range, compact_int, dataset,
                       in_file, open_checked, optional_attr, read, read_slice, write_array)

FORMAT = "pyasync-snn/dataset"
SIZE_ATTRS = ("n_inputs", "n_timesteps", "n_classes")
RESERVED_ATTRS = {"format", "format_version", "name", *SIZE_ATTRS}


def _check_labels(labels, n_classes) -> None:
    check_range(labels, 0, n_classes, "labels")


def write_dataset(path, batch: EventBatch, n_classes, name=None, time_us=None, attrs=None) -> None:
    """Write the samples of ``batch`` to ``path`` atomically.

    ``time_us`` (optional, ``(E,)``) keeps the original timestamps; ``attrs`` are extra root
    attributes (provenance). ``timestep``/``unit``/``labels`` use the smallest integer type
    that holds their range; large arrays are gzip-compressed.
    """
    n_classes = int(n_classes)
    check_sizes(n_inputs=batch.n_inputs, n_timesteps=batch.n_timesteps, n_classes=n_classes)
    _check_labels(batch.labels, n_classes)
    if time_us is not None and len(time_us) != len(batch.timestep):
        raise UserError(f"time_us has {len(time_us)} entries for {len(batch.timestep)} events")
    clash = RESERVED_ATTRS.intersection(attrs or {})
    if clash:
        raise UserError(f"provenance attributes may not use reserved names {sorted(clash)}")
    with atomic_h5(path, FORMAT) as f:
        f.attrs.update({"n_inputs": int(batch.n_inputs), "n_timesteps": int(batch.n_timesteps),
                        "n_classes": n_classes, **(attrs or {})})
        if name is not None:
            f.attrs["name"] = str(name)
        write_array(f, "labels", batch.labels.astype(compact_int(n_classes - 1)))
        events = f.create_group("events")
        write_array(events, "indptr", batch.indptr.astype(np.int64))
        write_array(events, "timestep", batch.timestep.astype(compact_int(batch.n_timesteps - 1)))
        write_array(events, "unit", batch.unit.astype(compact_int(batch.n_inputs - 1)))
        if time_us is not None:
            write_array(events, "time_us", time_us)


def _plain(value):
    """An attribute as Python/NumPy data: strings decoded, NumPy scalars as Python numbers."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.generic):
        return value.item()
    return value


class DatasetFile:
    """An open dataset file. ``labels`` and ``indptr`` are in memory; events are read by batch.

    Use as a context manager, or call :meth:`close`.
    """

    def __init__(self, path):
        self._file = f = open_checked(path, FORMAT)
        try:
            with in_file(f):
                self._sizes = {key: attr(f, key, int) for key in SIZE_ATTRS}
                check_sizes(**self._sizes)
                self._name = optional_attr(f, "name", str)
                self._attrs = {key: _plain(f.attrs[key]) for key in sorted(f.attrs) if key not in RESERVED_ATTRS}
                self._has_time = "events/time_us" in f
                self._labels = read(f, "labels", kind="int", ndim=1)
                self._labels.flags.writeable = False
                self._indptr = read(f, "events/indptr", kind="int", ndim=1).astype(np.int64)
                self._timestep = dataset(f, "events/timestep", kind="int", ndim=1)
                self._unit = dataset(f, "events/unit", kind="int", ndim=1)
                n_events = len(self._timestep)
                if len(self._unit) != n_events:
                    raise UserError(f"events/unit has {len(self._unit)} entries "
                                    f"but events/timestep has {n_events}")
                check_indptr(self._indptr, len(self._labels), n_events)
                _check_labels(self._labels, self.n_classes)
        except BaseException:
            f.close()
            raise

    def __len__(self) -> int:
        return len(self._labels)

    n_inputs = property(lambda self: self._sizes["n_inputs"])
    n_timesteps = property(lambda self: self._sizes["n_timesteps"])
    n_classes = property(lambda self: self._sizes["n_classes"])
    name = property(lambda self: self._name, doc="The optional ``name`` attribute, or None.")
    labels = property(lambda self: self._labels, doc="Labels of all samples (read-only).")
    attrs = property(lambda self: dict(self._attrs),
                     doc="The provenance: every root attribute but the format's own (a new dict).")
    has_time_us = property(lambda self: self._has_time, doc="Whether ``events/time_us`` is stored.")

    @property
    def events_per_sample(self) -> np.ndarray:
        return np.diff(self._indptr)

    @property
    def n_events(self) -> int:
        return int(self._indptr[-1])

    def take(self, start, stop) -> EventBatch:
        """Samples ``start..stop-1`` as an :class:`EventBatch` (``sample_ids = start..stop-1``)."""
        start, stop = int(start), int(stop)
        if not 0 <= start <= stop <= len(self):
            raise UserError(f"{self._file.filename}: sample range {start}:{stop} "
                            f"outside 0:{len(self)}")
        lo, hi = self._indptr[start], self._indptr[stop]
        with in_file(self._file):
            timestep = read_slice(self._timestep, slice(lo, hi))
            unit = read_slice(self._unit, slice(lo, hi))
            try:
                return EventBatch(self._indptr[start:stop + 1] - lo, timestep, unit,
                                  self._labels[start:stop], self.n_inputs, self.n_timesteps,
                                  sample_ids=np.arange(start, stop))
            except UserError as e:
                raise UserError(f"samples {start}:{stop}: {e}") from None

    def select(self, indices) -> EventBatch:
        """Samples ``indices`` (dataset indices, in that order, repeats allowed) as one batch, like
        :meth:`EventBatch.select`; each run of consecutive indices is read with one slice."""
        indices = sample_indices(indices, len(self))
        order = np.argsort(indices, kind="stable")
        ordered = indices[order]
        runs = np.split(ordered, np.nonzero(np.diff(ordered) != 1)[0] + 1) if len(ordered) else []
        joined = EventBatch.concatenate([self.take(r[0], r[-1] + 1) for r in runs],
                                        self.n_inputs, self.n_timesteps)
        return joined.select(np.argsort(order))  # back from sorted to the order asked for

    def check_events(self, batch_size=4096) -> None:
        """Read and validate every event (ranges, readable chunks and checksums)."""
        for _ in self.iter_batches(batch_size):
            pass

    def iter_batches(self, batch_size):
        """Yield consecutive batches of at most ``batch_size`` samples."""
        batch_size = int(batch_size)
        if batch_size < 1:
            raise UserError(f"batch size must be a positive integer, got {batch_size}")
        for start in range(0, len(self), batch_size):
            yield self.take(start, min(start + batch_size, len(self)))

    def close(self) -> None:
        self._file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def open_dataset(path) -> DatasetFile:
    """Open and validate the dataset file ``path`` (see :class:`DatasetFile`)."""
    return DatasetFile(path)
