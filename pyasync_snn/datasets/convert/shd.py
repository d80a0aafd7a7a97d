"""SHD / SSC: one HDF5 file of the Spiking Heidelberg Datasets (the layout: :mod:`...shd`) to a
dataset file; 700 channels, 20 (SHD) or 35 (SSC) classes."""
from __future__ import annotations

import json
import os
import time

import h5py
import numpy as np

from ...errors import UserError
from ...io.dataset import FORMAT
from ...io.h5common import H5_READ_ERRORS, atomic_h5, one_line, write_array
from ...validate import integer
from .. import nmnist
from ..binning import grid
from ..shd import open_shd
from .pipeline import (DEFAULT_WINDOW_US, ConversionReport, Stream, finish_report, tick,
                       window_from_t_max, write_provenance)

SHD_SLICE = 512               # SHD samples read per slice
SHD_CHANNELS = 700


def _attr_units(path):
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


def _times_us(path, start, times):
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
    downsample_units = integer("unit downsample factor", downsample_units, 1, "a positive integer")
    if n_units is not None:
        n_units = integer("number of units", n_units, 1, "a positive integer")
    window, n_bins = grid(time_window_us, n_timesteps, DEFAULT_WINDOW_US)
    needs_t_max = window is None
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
        tick(progress, done, total)
        # pass 1: validate, largest unit and time
        u_max, t_max, first = -1, 0, None
        for start in range(0, n, SHD_SLICE):
            part = shd.read(start, min(start + SHD_SLICE, n))
            if first is None:
                first = part
            for t, u in zip(_times_us(name, start, part["times"]), part["units"]):
                if u.size:
                    if u.min() < 0:
                        raise UserError(f"{name}: negative unit in sample {start}..")
                    u_max = max(u_max, int(u.max()))
                    t_max = max(t_max, int(t.max()))
            done += len(part["labels"])
            tick(progress, done, total)
        extra_in = first["extra"]
        keys = extra_in.get("keys")
        attr_units = _attr_units(name)
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
            window = window_from_t_max(t_max, n_bins)
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
            stream = Stream(f, n_inputs, window, n_bins, keep_time)
            for start in range(0, n, SHD_SLICE):
                part = shd.read(start, min(start + SHD_SLICE, n))
                times = _times_us(name, start, part["times"])
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
                tick(progress, done, total)
            report.n_files = 1
            stem = os.path.splitext(os.path.basename(name))[0]
            n_timesteps_out, counts = stream.finish(n_classes, stem)
            finish_report(report, stream, n_timesteps_out, counts, t_start)
            extra = {"downsample_units": downsample_units, "n_units": n_units,
                     "n_units_source": units_source}
            if keys is not None:
                extra["class_names"] = json.dumps([str(k) for k in keys])
            if isinstance(extra_in.get("meta_info"), dict):
                extra["meta_info"] = json.dumps(_jsonable(extra_in["meta_info"]))
            write_provenance(f, report, time_window_us is not None, n_bins, needs_t_max, extra)
            if speaker:
                write_array(f.require_group("extra"), "speaker", np.concatenate(speakers))
    report.seconds = time.perf_counter() - t_start
    return report
