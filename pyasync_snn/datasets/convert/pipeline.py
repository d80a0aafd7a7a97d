"""The conversion pipeline the three converters share. Its behaviour for users (binning choices,
validation and ``skip_bad``, streaming, atomic output) is in docs/datasets.md, "Converting real
datasets"; here is where each part lives:

- :class:`Stream` bins samples on one grid shared by all (:func:`..binning.bin_times`; times in µs
  from the sample's origin) and appends them every :data:`CHUNK_SAMPLES` samples or
  :data:`CHUNK_EVENTS` events to resizable, chunked, gzip-compressed datasets of an output opened
  in :func:`~pyasync_snn.io.h5common.atomic_h5` (a temporary file renamed over ``out`` only on
  success). Memory: one chunk of events plus O(samples) bookkeeping, never the dataset.
- :func:`scan` reads the input files one at a time, twice when only ``n_timesteps`` is given (the
  window then depends on the last event of the whole set); :func:`read_files` stops at a bad file
  with a one-line error naming it, or skips and lists it with ``skip_bad``.
- :class:`ConversionReport` counts what happened; :func:`write_provenance` writes the same numbers
  as root attributes.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import h5py
import numpy as np

from ...errors import UserError
from ...io.dataset import RESERVED_ATTRS
from ...io.h5common import append_rows, check_write, compact_int, growing_array, one_line, write_array
from ..binning import bin_times
from ..nmnist import channel_index

CONVERTER_VERSION = 1
CHUNK_SAMPLES = 1000          # samples buffered before an append
CHUNK_EVENTS = 2_000_000      # ... or events, whichever comes first
DEFAULT_WINDOW_US = 10_000    # without a window or a number of timesteps
SKIP_HINT = " (skip_bad=True / --skip-bad skips bad files)"


@dataclass
class ConversionReport:
    """What a conversion did. ``summary()`` is a human-readable multi-line text."""

    kind: str                     # "nmnist", "shd" or "dvsgesture"
    source: str                   # the input root / file (absolute)
    out: str
    split: str | None = None
    n_samples: int = 0
    n_inputs: int = 0
    n_timesteps: int = 0
    n_classes: int = 0
    time_window_us: int = 0
    n_files: int = 0              # input files converted (N-MNIST: = samples; DVS: recordings)
    n_events_read: int = 0        # events decoded (valid polarity events for DVS)
    n_events: int = 0             # events written
    n_dropped_window: int = 0     # events past the last bin
    n_dropped_saccade: int = 0    # N-MNIST first_saccade: events at t >= 100 ms
    n_invalid: int = 0            # DVS: events whose validity bit is 0 (dropped)
    n_decreases: int = 0          # timestamps smaller than their predecessor's (kept)
    n_samples_nonmonotonic: int = 0  # samples (DVS: recordings) with at least one decrease
    empty: list = field(default_factory=list)    # inputs with no event at all (kept, empty)
    n_empty_samples: int = 0      # samples with no event written (empty input or all dropped)
    skipped: list = field(default_factory=list)  # [(path, reason)] with skip_bad
    class_counts: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    seconds: float = 0.0

    def as_dict(self) -> dict:
        return {k: (list(map(list, v)) if k == "skipped" else v) for k, v in self.__dict__.items()}

    def summary(self) -> str:
        name = {"nmnist": "N-MNIST", "shd": "SHD/SSC", "dvsgesture": "DVS Gesture", "events": "event arrays"}[self.kind]
        lines = [f"{name}{' ' + self.split if self.split else ''}: {self.n_samples} samples, "
                 f"{self.n_classes} classes, {self.n_inputs} inputs, {self.n_timesteps} timesteps "
                 f"of {self.time_window_us} µs -> {self.out}"]
        dropped = [f"{self.n_dropped_window} past the last bin"]
        if self.kind == "nmnist":
            dropped.append(f"{self.n_dropped_saccade} after the first saccade")
        if self.kind == "dvsgesture":
            dropped.append(f"{self.n_invalid} invalid")
        lines.append(f"events: {self.n_events_read} read, {self.n_events} written "
                     f"({', '.join(dropped)})")
        lines.append(f"non-monotonic timestamps: {self.n_decreases} decreases in "
                     f"{self.n_samples_nonmonotonic} {'recordings' if self.kind == 'dvsgesture' else 'samples'}"
                     " (kept in file order)")
        lines.append(f"empty: {len(self.empty)} inputs without events, {self.n_empty_samples} "
                     "samples without events written (kept as empty samples)")
        lines.append(f"skipped: {len(self.skipped)} bad files")
        for path, reason in self.skipped[:10]:
            lines.append(f"  {reason}")
        if len(self.skipped) > 10:
            lines.append(f"  ... and {len(self.skipped) - 10} more (extra/skipped_files)")
        lines.append("per class: " + " ".join(f"{i}:{c}" for i, c in enumerate(self.class_counts)))
        lines.extend(f"note: {n}" for n in self.notes)
        rate = self.n_files / self.seconds if self.seconds > 0 else float("inf")
        ev_rate = self.n_events_read / self.seconds if self.seconds > 0 else float("inf")
        lines.append(f"{self.n_files} files in {self.seconds:.2f} s ({rate:.0f} files/s, "
                     f"{ev_rate / 1e6:.2f} M events/s)")
        return "\n".join(lines)


class Stream:
    """Bins samples on one shared grid and appends them to the ``events/`` datasets of an open
    output file; keeps labels and per-sample counts (small) until :meth:`finish`."""

    def __init__(self, f, n_inputs, window, n_bins, keep_time):
        self.f, self.n_inputs, self.window, self.n_bins = f, int(n_inputs), window, n_bins
        events = f.create_group("events")
        # the timestep range is known up front only when n_timesteps is
        self.step_dtype = compact_int(n_bins - 1) if n_bins else np.int32
        self.d_step = growing_array(events, "timestep", self.step_dtype)
        self.d_unit = growing_array(events, "unit", compact_int(self.n_inputs - 1))
        self.d_time = growing_array(events, "time_us", np.int64) if keep_time else None
        self.counts, self.labels = [], []
        self._t, self._u, self._buffered = [], [], 0
        self.max_step = -1
        self.n_dropped = self.n_written = 0

    def add(self, t_us, unit, label):
        self._t.append(np.asarray(t_us, dtype=np.int64))
        self._u.append(np.asarray(unit, dtype=np.int64))
        self.labels.append(int(label))
        self._buffered += len(t_us)
        if len(self._t) >= CHUNK_SAMPLES or self._buffered >= CHUNK_EVENTS:
            self.flush()

    def flush(self):
        if not self._t:
            return
        counts = np.fromiter((len(t) for t in self._t), dtype=np.int64, count=len(self._t))
        t = np.concatenate(self._t)
        u = np.concatenate(self._u)
        self._t, self._u, self._buffered = [], [], 0
        step, keep = bin_times(t, self.window, self.n_bins)
        if step.size:
            top = int(step.max())
            if top > np.iinfo(self.step_dtype).max:
                raise UserError(f"timestep {top} does not fit the output (window {self.window} µs "
                                "is far too small for these recordings)")
            self.max_step = max(self.max_step, top)
        sample = np.repeat(np.arange(len(counts)), counts)[keep]
        self.counts.append(np.bincount(sample, minlength=len(counts)))
        self.n_dropped += int(len(t) - step.size)
        self.n_written += int(step.size)
        check_write(self.f)
        append_rows(self.d_step, step.astype(self.step_dtype))
        append_rows(self.d_unit, u[keep].astype(self.d_unit.dtype))
        if self.d_time is not None:
            append_rows(self.d_time, t[keep])

    def finish(self, n_classes, name) -> tuple:
        """Write labels, ``indptr`` and the size attributes; return ``(n_timesteps, counts)``."""
        self.flush()
        counts = np.concatenate(self.counts) if self.counts else np.zeros(0, np.int64)
        labels = np.asarray(self.labels, dtype=np.int64)
        if not len(labels):
            raise UserError("no samples to write")
        if labels.min() < 0 or labels.max() >= n_classes:
            raise UserError(f"labels out of range: {labels.min()}..{labels.max()} for {n_classes} classes")
        n_timesteps = self.n_bins or max(self.max_step + 1, 1)
        f = self.f
        write_array(f, "labels", labels.astype(compact_int(n_classes - 1)))
        write_array(f["events"], "indptr", np.concatenate([[0], np.cumsum(counts)]).astype(np.int64))
        f.attrs.update({"n_inputs": self.n_inputs, "n_timesteps": int(n_timesteps),
                        "n_classes": int(n_classes), "name": str(name)})
        return int(n_timesteps), counts


def read_files(paths, read, skip_bad, report, progress, done, total, bad=()):
    """Yield ``(path, read(path))`` for each path not in ``bad``; a :class:`UserError` of
    ``read`` stops the conversion or, with ``skip_bad``, records the file as skipped. Ticks
    ``progress`` after each path (once the caller has handled it)."""
    for path in paths:
        if path not in bad:
            try:
                result = read(path)
            except UserError as e:
                fail_or_skip(e, path, skip_bad, report)
            else:
                yield path, result
        done += 1
        tick(progress, done, total)


def scan(paths, read, sample_times, window, n_bins, skip_bad, report, progress) -> tuple:
    """``(window, files)``: ``files`` yields ``(path, read(path))`` of each good file
    (:func:`read_files`). A ``window`` of None (only ``n_timesteps`` given) depends on the last
    event of the whole set: a first pass reads every file once (``sample_times(read(path))`` are
    its samples' timestamp arrays) and ``progress`` counts both passes."""
    total = len(paths) * (2 if window is None else 1)
    tick(progress, 0, total)
    good = set(paths)
    if window is None:
        t_max, good = 0, set()
        for path, result in read_files(paths, read, skip_bad, report, progress, 0, total):
            t_max = max([t_max] + [int(t.max()) for t in sample_times(result) if len(t)])
            good.add(path)
        window = window_from_t_max(t_max, n_bins)
    return window, read_files(paths, read, skip_bad, report, progress, total - len(paths), total,
                              set(paths) - good)


def window_from_t_max(t_max, n_bins) -> int:
    """The rule of :func:`..binning.bin_times` with only ``n_timesteps``, over the whole set."""
    return max(1, -(-(int(t_max) + 1) // n_bins))


def _binning_label(window_given, n_bins):
    if window_given and n_bins:
        return "fixed window and number of timesteps"
    if window_given:
        return "fixed window, timesteps up to the last event of the set"
    return "number of timesteps, window from the last event of the set"


def write_strings(group, key, values):
    group.create_dataset(key, data=np.array([str(v).encode("utf-8") for v in values], dtype=object),
                         dtype=h5py.string_dtype("utf-8"))


def write_provenance(f, report, window_given, n_bins, two_pass, extra) -> None:
    """Root attributes: the converter, the binning, the report's counts and ``extra``."""
    from ... import __version__  # late: the package may import this module while initialising
    attrs = {"converter": __package__, "converter_version": CONVERTER_VERSION,
             "pyasync_snn_version": __version__, "dataset": report.kind, "source": report.source,
             "time_window_us": int(report.time_window_us), "t0_us": 0,
             "binning": _binning_label(window_given, n_bins), "two_pass": bool(two_pass),
             "n_files": report.n_files, "n_events_read": report.n_events_read,
             "n_dropped_window": report.n_dropped_window, "n_decreases": report.n_decreases,
             "n_samples_nonmonotonic": report.n_samples_nonmonotonic,
             "n_empty_inputs": len(report.empty), "n_empty_samples": report.n_empty_samples,
             "n_skipped": len(report.skipped)}
    attrs.update(extra)
    clash = RESERVED_ATTRS.intersection(attrs)
    assert not clash, clash
    for key, value in attrs.items():
        f.attrs[key] = value
    if report.skipped:
        group = f.require_group("extra")
        write_strings(group, "skipped_files", [p for p, _ in report.skipped])
        write_strings(group, "skipped_reasons", [r for _, r in report.skipped])


def camera_channels(path, events, size, downsample, sensor="") -> np.ndarray:
    """The channels of ``events`` (``x``, ``y``, ``polarity``) of a ``size x size`` event camera
    seen ``downsample``-fold coarser per side; an event outside the sensor is an error naming
    ``path``, the event and the ``sensor``."""
    x, y = events["x"], events["y"]
    if len(x) and (x.max() >= size or y.max() >= size):
        bad = int(np.argmax((x >= size) | (y >= size)))
        raise UserError(f"{path}: event {bad} at (x={int(x[bad])}, y={int(y[bad])}) is outside the "
                        f"{size}x{size} {sensor}sensor")
    side = -(-size // downsample)
    return channel_index(x // downsample, y // downsample, events["polarity"], side, side)


def tick(progress, done, total):
    if progress is not None:
        progress(done, total)


def fail_or_skip(error: UserError, path, skip_bad, report):
    """Re-raise ``error`` (naming ``path``) or record the file as skipped."""
    message = one_line(error)
    if path not in message:
        message = f"{path}: {message}"
    if not skip_bad:
        raise UserError(message + SKIP_HINT) from None
    report.skipped.append((path, message))


def finish_report(report, stream, n_timesteps, counts, t_start):
    report.n_samples = len(counts)
    report.n_timesteps = n_timesteps
    report.n_events = stream.n_written
    report.n_dropped_window = stream.n_dropped
    report.n_empty_samples = int(np.count_nonzero(counts == 0))
    report.class_counts = np.bincount(np.asarray(stream.labels, dtype=np.int64),
                                      minlength=report.n_classes).tolist()
    report.seconds = time.perf_counter() - t_start
