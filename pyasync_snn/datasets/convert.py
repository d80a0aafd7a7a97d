"""Converters from the raw files of real neuromorphic datasets to the dataset format, offline.

Three converters, one per raw format, all with the same machinery:

- :func:`convert_nmnist` -- N-MNIST ``.bin`` files in the official ``Train/<digit>/*.bin`` /
  ``Test/<digit>/*.bin`` layout (34 x 34 x 2 = 2312 channels, 10 classes);
- :func:`convert_shd` -- one SHD or SSC HDF5 file (700 channels, 20 or 35 classes);
- :func:`convert_dvsgesture` -- DVS Gesture AEDAT 3.1 recordings with their ``_labels.csv``
  (128 x 128 x 2 channels, 11 classes, one sample per labelled gesture).

**Streaming.** Samples are read one at a time (one ``.bin`` file, one slice of SHD samples, one
AEDAT recording), binned, buffered, and appended every :data:`CHUNK_SAMPLES` samples (or
:data:`CHUNK_EVENTS` events) to resizable, chunked, gzip-compressed HDF5 datasets. Memory is
bounded by one chunk of events plus O(number of samples) bookkeeping (labels, counts, per-sample
provenance), never by the dataset: converting the 60 000 N-MNIST training files holds at most
~1000 samples' events at a time.

**Atomicity.** Everything is written into a temporary file next to ``out`` inside
:func:`~pyasync_snn.io.h5common.atomic_h5`, renamed over ``out`` only when the whole conversion
succeeded. Any error (a corrupt file without ``skip_bad``, an interrupt) removes the temporary
file and leaves an existing ``out`` untouched: a partial dataset is never written.

**Binning** (:mod:`.binning`): an event at time ``t`` (µs from the sample's origin: 0 for N-MNIST
and SHD, the gesture's start for DVS Gesture) goes to timestep ``floor(t / W)``; with
``n_timesteps = T`` events at ``t >= T W`` are dropped (counted), never folded into the last bin.
With only ``W`` the number of bins is the largest bin needed over the whole set + 1. With only
``T`` the window is ``ceil((t_max + 1) / T)`` with ``t_max`` over the whole set, which needs a
first pass over the input (files are read twice; the progress total counts both passes).
All samples share one grid.

**Validation.** A problem with one input file (truncated, unreadable, coordinates outside the
sensor, no label, a malformed labels csv or AEDAT packet) raises a one-line :class:`UserError`
naming the file and stops the conversion; with ``skip_bad=True`` the file is skipped and listed in
the report (and in ``extra/skipped_files`` of the output). Non-monotonic timestamps are kept in
file order and counted (binning does not need sorted events). Empty files/gestures are kept as
empty samples (so sample ``i`` is still file ``i``) and counted.

Every converter returns a :class:`ConversionReport`; the output carries the same numbers as root
attributes (provenance) and per-sample provenance under ``extra/``.
"""
from __future__ import annotations

import json
import os
import re
import struct
import time
from dataclasses import dataclass, field

import h5py
import numpy as np

from ..errors import UserError
from ..io.dataset import FORMAT, RESERVED_ATTRS
from ..io.atomic import atomic_path, read_bytes
from ..io.h5common import (H5_READ_ERRORS, append_rows, atomic_h5, check_write, compact_int, growing_array,
                           one_line, write_array)
from . import nmnist
from .binning import bin_times
from .shd import open_shd

CONVERTER_VERSION = 1
CHUNK_SAMPLES = 1000          # samples buffered before an append
CHUNK_EVENTS = 2_000_000      # ... or events, whichever comes first
SHD_SLICE = 512               # SHD samples read per slice

NMNIST_CLASSES = 10
FIRST_SACCADE_US = 100_000    # first saccade: events with t < 100 ms (tonic's first_saccade_only)

SHD_CHANNELS = 700

DVS_SENSOR = 128
DVS_CLASSES = 11
AEDAT_HEADER_END = b"#!END-HEADER"
AEDAT_PACKET_HEADER = struct.Struct("<hhiiiiii")  # 28 bytes, little-endian
AEDAT_POLARITY_EVENT = 1
AEDAT_POLARITY_DTYPE = np.dtype([("data", "<u4"), ("ts", "<i4")])
SKIP_HINT = " (skip_bad=True / --skip-bad skips bad files)"


# ------------------------------------------------------------------------------------ the report

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
        name = {"nmnist": "N-MNIST", "shd": "SHD/SSC", "dvsgesture": "DVS Gesture"}[self.kind]
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


# -------------------------------------------------------------------------- shared machinery

def _positive(value, what):
    if value is None:
        return None
    if isinstance(value, bool) or int(value) != value or value < 1:
        raise UserError(f"{what} must be a positive integer, got {value!r}")
    return int(value)


def _grid(time_window_us, n_timesteps, default_window=None):
    """``(window, n_bins, needs_t_max)`` after checking the arguments."""
    window = _positive(time_window_us, "time window (µs)")
    n_bins = _positive(n_timesteps, "number of timesteps")
    if window is None and n_bins is None:
        if default_window is None:
            raise UserError("give a time window (µs), a number of timesteps, or both")
        window = default_window
    return window, n_bins, window is None


def _first_pass(paths, sample_times, n_bins, skip_bad, report, bad, progress, total) -> tuple:
    """With only ``n_timesteps`` given, the window depends on the last event of the whole set:
    read every file once (``sample_times(path)`` -> its samples' timestamp arrays), collecting bad
    files into ``bad``. Returns ``(window, files done)``."""
    t_max = 0
    for done, path in enumerate(paths, start=1):
        try:
            times = sample_times(path)
        except UserError as e:
            _fail_or_skip(e, path, skip_bad, report)
            bad.add(path)
        else:
            t_max = max([t_max] + [int(t.max()) for t in times if len(t)])
        _tick(progress, done, total)
    return _window_from_t_max(t_max, n_bins), len(paths)


def _window_from_t_max(t_max, n_bins) -> int:
    """The rule of :func:`.binning.bin_times` with only ``n_timesteps``, over the whole set."""
    return max(1, -(-(int(t_max) + 1) // n_bins))


def _binning_label(window_given, n_bins):
    if window_given and n_bins:
        return "fixed window and number of timesteps"
    if window_given:
        return "fixed window, timesteps up to the last event of the set"
    return "number of timesteps, window from the last event of the set"


def _strings(group, key, values):
    group.create_dataset(key, data=np.array([str(v).encode("utf-8") for v in values], dtype=object),
                         dtype=h5py.string_dtype("utf-8"))


class _Stream:
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


def _write_provenance(f, report, window_given, n_bins, two_pass, extra) -> None:
    """Root attributes: the converter, the binning, the report's counts and ``extra``."""
    from .. import __version__  # late: the package may import this module while initialising
    attrs = {"converter": __name__, "converter_version": CONVERTER_VERSION,
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
        _strings(group, "skipped_files", [p for p, _ in report.skipped])
        _strings(group, "skipped_reasons", [r for _, r in report.skipped])


def _tick(progress, done, total):
    if progress is not None:
        progress(done, total)


def _fail_or_skip(error: UserError, path, skip_bad, report):
    """Re-raise ``error`` (naming ``path``) or record the file as skipped."""
    message = one_line(error)
    if path not in message:
        message = f"{path}: {message}"
    if not skip_bad:
        raise UserError(message + SKIP_HINT) from None
    report.skipped.append((path, message))


def _finish_report(report, stream, n_timesteps, counts, t_start):
    report.n_samples = len(counts)
    report.n_timesteps = n_timesteps
    report.n_events = stream.n_written
    report.n_dropped_window = stream.n_dropped
    report.n_empty_samples = int(np.count_nonzero(counts == 0))
    report.class_counts = np.bincount(np.asarray(stream.labels, dtype=np.int64),
                                      minlength=report.n_classes).tolist()
    report.seconds = time.perf_counter() - t_start


# ------------------------------------------------------------------------------------ N-MNIST

def list_nmnist(root, split="train") -> tuple:
    """``(labelled, unlabelled)``: ``[(path, digit)]`` of ``ROOT/Train/<digit>/*.bin`` (or
    ``Test``) sorted by digit then name, and the ``.bin`` paths that have no label (directly in
    the split folder or in a folder that is not a single digit). Hidden files (``.*``, e.g.
    macOS ``._*`` resource forks) and files not ending in ``.bin`` are ignored."""
    if split not in nmnist.SPLITS:
        raise UserError(f"split must be one of {sorted(nmnist.SPLITS)}, got {split!r}")
    base = os.path.join(os.fspath(root), nmnist.SPLITS[split])
    if not os.path.isdir(base):
        raise UserError(f"{base}: no such directory (expected the official layout "
                        f"{nmnist.SPLITS[split]}/<digit>/<id>.bin)")
    labelled, unlabelled = [], []
    for entry in sorted(os.listdir(base)):
        if entry.startswith("."):
            continue
        path = os.path.join(base, entry)
        if os.path.isdir(path):
            digit = int(entry) if re.fullmatch(r"[0-9]", entry) else None
            for name in sorted(os.listdir(path)):
                if name.startswith(".") or not name.endswith(".bin"):
                    continue
                if digit is None:
                    unlabelled.append(os.path.join(path, name))
                else:
                    labelled.append((os.path.join(path, name), digit))
        elif entry.endswith(".bin"):
            unlabelled.append(path)
    return labelled, unlabelled


def _nmnist_sample(path, downsample, first_saccade):
    """``(t_us, unit, n_read, n_decreases, n_saccade_dropped)`` of one ``.bin`` file."""
    ev = nmnist.read_bin(path)  # names the file on a truncated / unreadable file
    x, y, p, t = ev["x"], ev["y"], ev["polarity"], ev["t_us"]
    n_read = len(t)
    if n_read and (x.max() >= nmnist.SENSOR_WIDTH or y.max() >= nmnist.SENSOR_HEIGHT):
        bad = int(np.argmax((x >= nmnist.SENSOR_WIDTH) | (y >= nmnist.SENSOR_HEIGHT)))
        raise UserError(f"{path}: event {bad} at (x={int(x[bad])}, y={int(y[bad])}) is outside the "
                        f"{nmnist.SENSOR_WIDTH}x{nmnist.SENSOR_HEIGHT} N-MNIST sensor")
    decreases = nmnist.count_decreases(t)
    cut = 0
    if first_saccade:
        keep = t < FIRST_SACCADE_US
        cut = int(n_read - np.count_nonzero(keep))
        if cut:
            x, y, p, t = x[keep], y[keep], p[keep], t[keep]
    side = -(-nmnist.SENSOR_WIDTH // downsample)
    unit = nmnist.channel_index(x // downsample, y // downsample, p, side, side)
    return t, unit, n_read, decreases, cut


def convert_nmnist(root, out, split="train", time_window_us=10000, n_timesteps=None,
                   first_saccade=False, downsample=1, keep_time=False, skip_bad=False,
                   progress=None) -> ConversionReport:
    """Convert ``ROOT/Train/<digit>/*.bin`` (``split="train"``) or ``ROOT/Test/...`` to the
    dataset file ``out``; one sample per file, label = the digit folder.

    Channels ``p * S * S + (y // K) * S + (x // K)`` with ``K = downsample``,
    ``S = ceil(34 / K)`` (2312 for K = 1). ``first_saccade`` keeps events at ``t < 100 ms``.
    Binning: module docstring (default 10 ms windows, as many as the longest sample needs).
    ``keep_time`` stores ``events/time_us``. ``progress(done, total)`` is called after each file
    (``total`` = 2 x files when only ``n_timesteps`` is given: two passes).
    """
    t_start = time.perf_counter()
    downsample = _positive(downsample, "downsample factor")
    window, n_bins, two_pass = _grid(time_window_us, n_timesteps, default_window=10000)
    labelled, unlabelled = list_nmnist(root, split)
    source = os.path.abspath(os.fspath(root))
    report = ConversionReport("nmnist", source, os.fspath(out), split=split,
                              n_classes=NMNIST_CLASSES)
    for path in unlabelled:
        _fail_or_skip(UserError(f"{path}: no label: N-MNIST files must be in a digit folder "
                                f"{nmnist.SPLITS[split]}/<0-9>/"), path, skip_bad, report)
    if not labelled:
        raise UserError(f"{os.path.join(source, nmnist.SPLITS[split])}: no .bin files in the "
                        "digit folders <0-9>/")
    side = -(-nmnist.SENSOR_WIDTH // downsample)
    n_inputs = nmnist.N_POLARITIES * side * side
    total = len(labelled) * (2 if two_pass else 1)
    done = 0
    _tick(progress, done, total)
    bad = set()
    if two_pass:  # the window depends on the last event of the whole set
        window, done = _first_pass([path for path, _ in labelled],
                                   lambda path: [_nmnist_sample(path, downsample, first_saccade)[0]],
                                   n_bins, skip_bad, report, bad, progress, total)
    report.time_window_us, report.n_inputs = window, n_inputs
    files = []
    with atomic_h5(out, FORMAT) as f:
        stream = _Stream(f, n_inputs, window, n_bins, keep_time)
        for path, label in labelled:
            if path in bad:
                done += 1
                _tick(progress, done, total)
                continue
            try:
                t, unit, n_read, decreases, cut = _nmnist_sample(path, downsample, first_saccade)
            except UserError as e:
                _fail_or_skip(e, path, skip_bad, report)
            else:
                stream.add(t, unit, label)
                files.append(os.path.relpath(path, source))
                report.n_files += 1
                report.n_events_read += n_read
                report.n_dropped_saccade += cut
                report.n_decreases += decreases
                report.n_samples_nonmonotonic += decreases > 0
                if n_read == 0:
                    report.empty.append(path)
            done += 1
            _tick(progress, done, total)
        if not stream.labels:
            raise UserError(f"{source}: every .bin file of the {split} split was bad; nothing to write")
        n_timesteps_out, counts = stream.finish(NMNIST_CLASSES, f"nmnist-{split}")
        _finish_report(report, stream, n_timesteps_out, counts, t_start)
        extra = {"split": split, "first_saccade": bool(first_saccade),
                 "first_saccade_end_us": FIRST_SACCADE_US if first_saccade else 0,
                 "downsample": downsample, "sensor_width": side, "sensor_height": side,
                 "n_polarities": nmnist.N_POLARITIES,
                 "channel_order": "polarity * width * height + y * width + x",
                 "n_dropped_saccade": report.n_dropped_saccade}
        _write_provenance(f, report, time_window_us is not None, n_bins, two_pass, extra)
        _strings(f.require_group("extra"), "file", files)
    report.seconds = time.perf_counter() - t_start
    return report


# ----------------------------------------------------------------------------------- SHD / SSC

def _shd_attr_units(path):
    """The ``n_units`` attribute of the file's root or ``spikes`` group, or None."""
    try:
        with h5py.File(os.fspath(path), "r") as f:
            for obj in (f, f["spikes"]):
                if "n_units" in obj.attrs:
                    value = obj.attrs["n_units"]
                    if np.ndim(value) or not np.issubdtype(np.asarray(value).dtype, np.integer) \
                            or value < 1:
                        raise UserError(f"{path}: attribute n_units must be a positive integer, "
                                        f"found {value!r}")
                    return int(value)
    except H5_READ_ERRORS as e:
        raise UserError(f"{path}: cannot read attributes: {one_line(e)}") from None
    return None


def _shd_times_us(path, start, times):
    out = []
    for i, t in enumerate(times):
        if t.size and (not np.all(np.isfinite(t)) or t.min() < 0):
            raise UserError(f"{path}: sample {start + i} has negative or non-finite spike times")
        out.append(np.rint(t * 1e6).astype(np.int64))
    return out


def _jsonable(value):
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    value = np.asarray(value)
    return value.tolist() if value.dtype != object else [str(v) for v in value.ravel()]


def convert_shd(path, out, time_window_us=None, n_timesteps=None, downsample_units=1,
                progress=None, n_units=None, keep_time=False) -> ConversionReport:
    """Convert one SHD/SSC HDF5 file (``spikes/times`` in s, ``spikes/units``, ``labels``,
    ``extra/...``) to the dataset file ``out``, reading :data:`SHD_SLICE` samples at a time.

    Times are rounded to the nearest µs. Channels ``unit // downsample_units`` over
    ``ceil(n_units / downsample_units)`` inputs; ``n_units``: the argument, else the file's
    ``n_units`` attribute (root or ``spikes``), else 700 (SHD/SSC) when every unit is below 700,
    else the largest unit + 1. Classes: ``len(extra/keys)`` when present (20 SHD, 35 SSC), else
    the largest label + 1. ``extra/speaker`` is carried over as ``extra/speaker``; ``extra/keys``
    as the attribute ``class_names`` (JSON) and ``extra/meta_info/*`` as ``meta_info`` (JSON).
    Without a window or a number of timesteps, 10 ms windows. The file is read twice (a first
    pass finds the largest unit and time and validates); ``progress(done, total)`` counts samples
    over both passes.
    """
    t_start = time.perf_counter()
    downsample_units = _positive(downsample_units, "unit downsample factor")
    n_units = _positive(n_units, "number of units")
    window, n_bins, needs_t_max = _grid(time_window_us, n_timesteps, default_window=10000)
    name = os.fspath(path)
    source = os.path.abspath(name)
    report = ConversionReport("shd", source, os.fspath(out))
    with open_shd(name) as shd:
        n = len(shd)
        if n == 0:
            raise UserError(f"{name}: the file holds no samples")
        labels = shd.labels.astype(np.int64)
        if labels.min() < 0:
            raise UserError(f"{name}: negative labels")
        total, done = 2 * n, 0
        _tick(progress, done, total)
        # pass 1: validate, largest unit and time
        u_max, t_max, first = -1, 0, None
        for start in range(0, n, SHD_SLICE):
            part = shd.read(start, min(start + SHD_SLICE, n))
            if first is None:
                first = part
            for t, u in zip(_shd_times_us(name, start, part["times"]), part["units"]):
                if u.size:
                    if u.min() < 0:
                        raise UserError(f"{name}: negative unit in sample {start}..")
                    u_max = max(u_max, int(u.max()))
                    t_max = max(t_max, int(t.max()))
            done += len(part["labels"])
            _tick(progress, done, total)
        extra_in = first["extra"]
        keys = extra_in.get("keys")
        attr_units = _shd_attr_units(name)
        if n_units is not None:
            units_source = "argument"
        elif attr_units is not None:
            n_units, units_source = attr_units, "attribute n_units"
        elif u_max < SHD_CHANNELS:
            n_units, units_source = SHD_CHANNELS, f"default {SHD_CHANNELS} (SHD/SSC)"
        else:
            n_units, units_source = u_max + 1, "largest unit + 1"
            report.notes.append(f"units up to {u_max}: more than the {SHD_CHANNELS} SHD/SSC "
                                f"channels; using {n_units}")
        if u_max >= n_units:
            raise UserError(f"{name}: unit {u_max} outside the {n_units} channels ({units_source})")
        if keys is not None and len(keys):
            n_classes = len(keys)
            if labels.max() >= n_classes:
                raise UserError(f"{name}: label {labels.max()} but extra/keys names only "
                                f"{n_classes} classes")
        else:
            n_classes = int(labels.max()) + 1
        report.n_classes = n_classes
        if needs_t_max:
            window = _window_from_t_max(t_max, n_bins)
        n_inputs = -(-n_units // downsample_units)
        report.time_window_us, report.n_inputs = window, n_inputs
        per_sample = [k for k, v in extra_in.items()
                      if not isinstance(v, dict) and k != "keys" and np.ndim(v) >= 1
                      and len(v) == len(first["labels"]) and n > 0]
        speaker = "speaker" in per_sample and np.issubdtype(np.asarray(extra_in["speaker"]).dtype,
                                                            np.number)
        ignored = [k for k in per_sample if not (k == "speaker" and speaker)]
        if ignored:
            report.notes.append(f"per-sample extra/{', extra/'.join(ignored)} not carried over")
        speakers = []
        with atomic_h5(out, FORMAT) as f:
            stream = _Stream(f, n_inputs, window, n_bins, keep_time)
            for start in range(0, n, SHD_SLICE):
                part = shd.read(start, min(start + SHD_SLICE, n))
                times = _shd_times_us(name, start, part["times"])
                for i, (t, u, label) in enumerate(zip(times, part["units"], part["labels"])):
                    stream.add(t, u // downsample_units, label)
                    report.n_events_read += len(t)
                    d = nmnist.count_decreases(t)
                    report.n_decreases += d
                    report.n_samples_nonmonotonic += d > 0
                    if len(t) == 0:
                        report.empty.append(f"sample {start + i}")
                if speaker:
                    speakers.append(np.asarray(part["extra"]["speaker"]))
                done += len(part["labels"])
                _tick(progress, done, total)
            report.n_files = 1
            stem = os.path.splitext(os.path.basename(name))[0]
            n_timesteps_out, counts = stream.finish(n_classes, stem)
            _finish_report(report, stream, n_timesteps_out, counts, t_start)
            extra = {"downsample_units": downsample_units, "n_units": n_units,
                     "n_units_source": units_source}
            if keys is not None:
                extra["class_names"] = json.dumps([str(k) for k in keys])
            if isinstance(extra_in.get("meta_info"), dict):
                extra["meta_info"] = json.dumps(_jsonable(extra_in["meta_info"]))
            _write_provenance(f, report, time_window_us is not None, n_bins, needs_t_max, extra)
            if speaker:
                write_array(f.require_group("extra"), "speaker", np.concatenate(speakers))
    report.seconds = time.perf_counter() - t_start
    return report


# --------------------------------------------------------------------------------- DVS Gesture

def read_aedat31(path) -> dict:
    """Polarity events of an AEDAT 3.1 file: ``dict(x, y, polarity, t_us, n_invalid,
    n_packets)``; only valid events (bit 0 set) are returned, in file order.

    Header: ASCII lines starting with ``#``, the first ``#!AER-DAT3.x``, the last
    ``#!END-HEADER`` (``\\r\\n``). Then packets: a 28-byte little-endian header (eventType int16,
    eventSource int16, eventSize, eventTSOffset, eventTSOverflow, eventCapacity, eventNumber,
    eventValid int32) and ``eventNumber * eventSize`` bytes. Polarity packets (type 1) hold 8-byte
    events: ``uint32`` data (bit 0 valid, bit 1 polarity, bits 2-16 y, bits 17-31 x) and an
    ``int32`` timestamp; ``t = (eventTSOverflow << 31) | timestamp``. Other packet types are
    skipped. A truncated file or a malformed packet raises a :class:`UserError` naming the file.
    """
    name = os.fspath(path)
    raw = read_bytes(name, "an AEDAT file")
    pos, first = 0, True
    while True:
        nl = raw.find(b"\n", pos)
        if nl < 0:
            raise UserError(f"{name}: not an AEDAT 3.1 file: no '#!END-HEADER' line")
        line = raw[pos:nl + 1].rstrip(b"\r\n")
        if first:
            if not line.startswith(b"#!AER-DAT3."):
                raise UserError(f"{name}: not an AEDAT 3.x file (first line "
                                f"{line[:40].decode('latin-1')!r}, expected '#!AER-DAT3.1')")
            first = False
        elif not line.startswith(b"#"):
            raise UserError(f"{name}: header line at byte {pos} does not start with '#' and no "
                            "'#!END-HEADER' came before it")
        pos = nl + 1
        if line == AEDAT_HEADER_END:
            break
    chunks, n_packets, size = [], 0, len(raw)
    while pos < size:
        if size - pos < AEDAT_PACKET_HEADER.size:
            raise UserError(f"{name}: truncated AEDAT file: {size - pos} trailing bytes at byte "
                            f"{pos}, less than a {AEDAT_PACKET_HEADER.size}-byte packet header")
        etype, _, esize, _, overflow, _, number, _ = AEDAT_PACKET_HEADER.unpack_from(raw, pos)
        if esize <= 0 or number < 0 or overflow < 0:
            raise UserError(f"{name}: malformed packet header at byte {pos} (eventSize {esize}, "
                            f"eventNumber {number}, eventTSOverflow {overflow})")
        start = pos + AEDAT_PACKET_HEADER.size
        end = start + number * esize
        if end > size:
            raise UserError(f"{name}: truncated AEDAT file: the packet at byte {pos} needs "
                            f"{number * esize} bytes of events, {size - start} remain")
        if etype == AEDAT_POLARITY_EVENT:
            if esize != AEDAT_POLARITY_DTYPE.itemsize:
                raise UserError(f"{name}: polarity packet at byte {pos} has eventSize {esize}, "
                                f"expected {AEDAT_POLARITY_DTYPE.itemsize}")
            ev = np.frombuffer(raw, dtype=AEDAT_POLARITY_DTYPE, count=number, offset=start)
            chunks.append((ev, overflow))
        n_packets += 1
        pos = end
    if chunks:
        data = np.concatenate([ev["data"] for ev, _ in chunks])
        ts = np.concatenate([ev["ts"] for ev, _ in chunks]).astype(np.int64)
        high = np.repeat(np.array([o for _, o in chunks], dtype=np.int64),
                         [len(ev) for ev, _ in chunks])
    else:
        data, ts, high = (np.zeros(0, np.uint32), np.zeros(0, np.int64), np.zeros(0, np.int64))
    if ts.size and ts.min() < 0:
        raise UserError(f"{name}: negative event timestamp {int(ts.min())}")
    valid = (data & 1).astype(bool)
    data = data[valid]
    return {"x": ((data >> 17) & 0x7FFF).astype(np.int64),
            "y": ((data >> 2) & 0x7FFF).astype(np.int64),
            "polarity": ((data >> 1) & 1).astype(np.int8),
            "t_us": ((high << 31) | ts)[valid],
            "n_invalid": int(np.count_nonzero(~valid)), "n_packets": n_packets}


def _atomic_bytes(path, data):
    with atomic_path(path) as tmp:
        with open(tmp, "xb") as fh:
            fh.write(data)


def write_aedat31(path, x, y, polarity, t_us, valid=None, packet_events=4096,
                  other_packets=()) -> None:
    """Write polarity events as an AEDAT 3.1 file (the inverse of :func:`read_aedat31`; for
    tests and examples). Events go, in the given order, into polarity packets of at most
    ``packet_events`` events; a new packet starts wherever ``t >> 31`` (eventTSOverflow) changes.
    ``valid`` (bool per event, default all) sets bit 0. ``other_packets``: ``(eventType,
    eventSize, n_events, payload)`` packets written before the polarity packets (readers skip
    them)."""
    x, y, polarity, t_us = (np.asarray(a, dtype=np.int64) for a in (x, y, polarity, t_us))
    n = len(t_us)
    valid = np.ones(n, bool) if valid is None else np.asarray(valid, bool)
    if any(len(a) != n for a in (x, y, polarity, valid)):
        raise UserError("x, y, polarity, t_us and valid must have one entry per event")
    if n and (t_us.min() < 0 or x.min() < 0 or y.min() < 0 or x.max() > 0x7FFF or y.max() > 0x7FFF):
        raise UserError("timestamps must be >= 0 and coordinates in [0, 32767]")
    header = (b"#!AER-DAT3.1\r\n#Format: RAW\r\n#Source 1: DVS128\r\n"
              b"#Start-Time: 1970-01-01 00:00:00 (TZ+0000)\r\n" + AEDAT_HEADER_END + b"\r\n")
    parts = [header]
    for etype, esize, number, payload in other_packets:
        parts.append(AEDAT_PACKET_HEADER.pack(etype, 1, esize, 4, 0, number, number, number))
        parts.append(bytes(payload))
    overflow = t_us >> 31
    data = ((x << 17) | (y << 2) | ((polarity & 1) << 1) | valid.astype(np.int64)).astype("<u4")
    ts = (t_us & 0x7FFFFFFF).astype("<i4")
    cuts = np.flatnonzero(np.diff(overflow)) + 1 if n else np.zeros(0, int)
    bounds = [0, *cuts.tolist(), n]
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        for a in range(lo, hi, packet_events):
            b = min(a + packet_events, hi)
            ev = np.empty(b - a, AEDAT_POLARITY_DTYPE)
            ev["data"], ev["ts"] = data[a:b], ts[a:b]
            parts.append(AEDAT_PACKET_HEADER.pack(AEDAT_POLARITY_EVENT, 1, 8, 4, int(overflow[a]),
                                                  b - a, b - a, int(valid[a:b].sum())))
            parts.append(ev.tobytes())
    _atomic_bytes(path, b"".join(parts))


def read_gesture_labels(path) -> np.ndarray:
    """Rows ``(class, startTime_usec, endTime_usec)`` (int64) of a DVS Gesture ``_labels.csv``.

    An optional header line (non-numeric), blank lines ignored; classes must be 1..11 and
    ``end >= start``. Problems raise :class:`UserError` naming the file and line.
    """
    name = os.fspath(path)
    if not os.path.isfile(name):
        raise UserError(f"{name}: missing labels file (each recording X.aedat needs X_labels.csv)")
    rows = []
    try:
        with open(name, encoding="utf-8", errors="replace", newline=None) as fh:
            lines = fh.read().splitlines()
    except OSError as e:
        raise UserError(f"{name}: cannot read ({e.strerror or e})") from None
    for number, line in enumerate(lines, 1):
        text = line.strip()
        if not text:
            continue
        fields = [s.strip() for s in text.split(",")]
        if number == 1 and not fields[0].lstrip("-").isdigit():
            continue  # the header class,startTime_usec,endTime_usec
        if len(fields) != 3 or not all(re.fullmatch(r"-?\d+", s) for s in fields):
            raise UserError(f"{name}: line {number}: expected 'class,startTime_usec,endTime_usec' "
                            f"integers, found {text[:60]!r}")
        cls, start, end = map(int, fields)
        if not 1 <= cls <= DVS_CLASSES:
            raise UserError(f"{name}: line {number}: class {cls} outside 1..{DVS_CLASSES}")
        if start < 0 or end < start:
            raise UserError(f"{name}: line {number}: gesture ends ({end}) before it starts ({start})")
        rows.append((cls, start, end))
    return np.array(rows, dtype=np.int64).reshape(-1, 3)


def list_dvsgesture(root, split=None) -> list:
    """The ``.aedat`` recordings under ``root`` (recursively, sorted); with ``split`` ("train" or
    "test") only those named in ``trials_to_<split>.txt`` (found in ``root`` or below)."""
    root = os.fspath(root)
    if not os.path.isdir(root):
        raise UserError(f"{root}: no such directory")
    found, lists = [], {}
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        for f in sorted(files):
            if f.startswith("."):
                continue
            if f.endswith(".aedat"):
                found.append(os.path.join(folder, f))
            elif re.fullmatch(r"trials_to_(train|test)\.txt", f):
                lists.setdefault(f[10:-4], os.path.join(folder, f))
    if split is None:
        if not found:
            raise UserError(f"{root}: no .aedat recordings found")
        return found
    if split not in ("train", "test"):
        raise UserError(f"split must be 'train', 'test' or None, got {split!r}")
    if split not in lists:
        raise UserError(f"{root}: no trials_to_{split}.txt (the official split lists)")
    listing = lists[split]
    with open(listing, encoding="utf-8", errors="replace") as fh:
        names = [s.strip() for s in fh.read().splitlines() if s.strip()]
    base = os.path.dirname(listing)
    paths = [os.path.join(base, s) for s in names]
    if not paths:
        raise UserError(f"{listing}: lists no recordings")
    return paths


def _dvs_recording(path, downsample):
    """``(gestures, stats)``: per labelled gesture ``(t_rel_us, unit, label, start, end)``."""
    if not os.path.isfile(path):
        raise UserError(f"{path}: no such recording")
    labels_path = path[:-len(".aedat")] + "_labels.csv"
    if not os.path.isfile(labels_path):
        raise UserError(f"{path}: missing labels file {os.path.basename(labels_path)}")
    rows = read_gesture_labels(labels_path)
    ev = read_aedat31(path)
    x, y, p, t = ev["x"], ev["y"], ev["polarity"], ev["t_us"]
    if t.size and (x.max() >= DVS_SENSOR or y.max() >= DVS_SENSOR):
        bad = int(np.argmax((x >= DVS_SENSOR) | (y >= DVS_SENSOR)))
        raise UserError(f"{path}: event {bad} at (x={int(x[bad])}, y={int(y[bad])}) is outside the "
                        f"{DVS_SENSOR}x{DVS_SENSOR} sensor")
    side = -(-DVS_SENSOR // downsample)
    unit = nmnist.channel_index(x // downsample, y // downsample, p, side, side)
    gestures = []
    for cls, start, end in rows:
        inside = (t >= start) & (t < end)
        gestures.append((t[inside] - start, unit[inside], int(cls) - 1, int(start), int(end)))
    stats = {"n_read": len(t), "n_invalid": ev["n_invalid"],
             "decreases": nmnist.count_decreases(t)}
    return gestures, stats


def convert_dvsgesture(root, out, downsample=1, time_window_us=10000, n_timesteps=None,
                       skip_bad=False, progress=None, split=None,
                       keep_time=False) -> ConversionReport:
    """Convert the DVS Gesture recordings under ``root`` (AEDAT 3.1 ``*.aedat``, each with
    ``*_labels.csv``) to the dataset file ``out``: one sample per labelled gesture, events
    ``start <= t < end``, times relative to the gesture's start, label = csv class - 1 (0..10).

    Channels ``p * S * S + (y // K) * S + (x // K)``, ``S = ceil(128 / K)``, ``K = downsample``
    (32 x 32 x 2 for K = 4). ``split`` None converts every recording found; "train"/"test" those
    of ``trials_to_train.txt`` / ``trials_to_test.txt``. Memory holds one recording at a time.
    ``progress(done, total)`` after each recording (x 2 with only ``n_timesteps``).
    """
    t_start = time.perf_counter()
    downsample = _positive(downsample, "downsample factor")
    window, n_bins, two_pass = _grid(time_window_us, n_timesteps, default_window=10000)
    paths = list_dvsgesture(root, split)
    source = os.path.abspath(os.fspath(root))
    report = ConversionReport("dvsgesture", source, os.fspath(out), split=split,
                              n_classes=DVS_CLASSES)
    side = -(-DVS_SENSOR // downsample)
    n_inputs = 2 * side * side
    total = len(paths) * (2 if two_pass else 1)
    done, bad = 0, set()
    _tick(progress, done, total)
    if two_pass:
        window, done = _first_pass(paths, lambda path: [g[0] for g in _dvs_recording(path, downsample)[0]],
                                   n_bins, skip_bad, report, bad, progress, total)
    report.time_window_us, report.n_inputs = window, n_inputs
    recordings, starts, ends = [], [], []
    with atomic_h5(out, FORMAT) as f:
        stream = _Stream(f, n_inputs, window, n_bins, keep_time)
        for path in paths:
            if path not in bad:
                try:
                    gestures, stats = _dvs_recording(path, downsample)
                except UserError as e:
                    _fail_or_skip(e, path, skip_bad, report)
                else:
                    rel = os.path.relpath(path, source)
                    for t, unit, label, start, end in gestures:
                        stream.add(t, unit, label)
                        recordings.append(rel)
                        starts.append(start)
                        ends.append(end)
                        if len(t) == 0:
                            report.empty.append(f"{rel} [{start}, {end})")
                    report.n_files += 1
                    report.n_events_read += stats["n_read"]
                    report.n_invalid += stats["n_invalid"]
                    report.n_decreases += stats["decreases"]
                    report.n_samples_nonmonotonic += stats["decreases"] > 0
            done += 1
            _tick(progress, done, total)
        if not stream.labels:
            raise UserError(f"{source}: no labelled gesture to write (every recording bad or "
                            "without labels)")
        n_timesteps_out, counts = stream.finish(
            DVS_CLASSES, f"dvsgesture-{split}" if split else "dvsgesture")
        _finish_report(report, stream, n_timesteps_out, counts, t_start)
        extra = {"split": split or "all", "downsample": downsample, "sensor_width": side,
                 "sensor_height": side, "n_polarities": 2,
                 "channel_order": "polarity * width * height + y * width + x",
                 "label_offset": -1, "n_invalid": report.n_invalid}
        _write_provenance(f, report, time_window_us is not None, n_bins, two_pass, extra)
        group = f.require_group("extra")
        _strings(group, "recording", recordings)
        write_array(group, "start_us", np.asarray(starts, dtype=np.int64))
        write_array(group, "end_us", np.asarray(ends, dtype=np.int64))
    report.seconds = time.perf_counter() - t_start
    return report
