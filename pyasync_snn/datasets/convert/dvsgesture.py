"""DVS Gesture: AEDAT 3.1 recordings (the format: :mod:`...aedat`) with their ``_labels.csv`` to a
dataset file; 128 x 128 x 2 channels (fewer with ``downsample``), 11 classes, one sample per
labelled gesture."""
from __future__ import annotations

import os
import re
import time

import numpy as np

from ...errors import UserError
from ...io.dataset import FORMAT
from ...io.h5common import atomic_h5, write_array
from ...validate import integer
from .. import nmnist
from ..aedat import read_aedat31
from ..binning import grid
from .pipeline import (DEFAULT_WINDOW_US, ConversionReport, Stream, camera_channels, finish_report, scan,
                       write_provenance, write_strings)

DVS_SENSOR = 128
DVS_CLASSES = 11


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


def _recording(path, downsample):
    """``(gestures, stats)``: per labelled gesture ``(t_rel_us, unit, label, start, end)``."""
    if not os.path.isfile(path):
        raise UserError(f"{path}: no such recording")
    labels_path = path[:-len(".aedat")] + "_labels.csv"
    if not os.path.isfile(labels_path):
        raise UserError(f"{path}: missing labels file {os.path.basename(labels_path)}")
    rows = read_gesture_labels(labels_path)
    ev = read_aedat31(path)
    t = ev["t_us"]
    unit = camera_channels(path, ev, DVS_SENSOR, downsample)
    gestures = []
    for cls, start, end in rows:
        inside = (t >= start) & (t < end)
        gestures.append((t[inside] - start, unit[inside], int(cls) - 1, int(start), int(end)))
    stats = {"n_read": len(t), "n_invalid": ev["n_invalid"],
             "decreases": nmnist.count_decreases(t)}
    return gestures, stats


def convert_dvsgesture(root, out, downsample=1, time_window_us=DEFAULT_WINDOW_US, n_timesteps=None,
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
    downsample = integer("downsample factor", downsample, 1, "a positive integer")
    window, n_bins = grid(time_window_us, n_timesteps, DEFAULT_WINDOW_US)
    two_pass = window is None  # the window depends on the last event of the whole set: 2 passes
    paths = list_dvsgesture(root, split)
    source = os.path.abspath(os.fspath(root))
    report = ConversionReport("dvsgesture", source, os.fspath(out), split=split,
                              n_classes=DVS_CLASSES)
    side = -(-DVS_SENSOR // downsample)
    n_inputs = 2 * side * side
    window, recordings_read = scan(paths, lambda path: _recording(path, downsample),
                                   lambda recording: [g[0] for g in recording[0]], window, n_bins,
                                   skip_bad, report, progress)
    report.time_window_us, report.n_inputs = window, n_inputs
    recordings, starts, ends = [], [], []
    with atomic_h5(out, FORMAT) as f:
        stream = Stream(f, n_inputs, window, n_bins, keep_time)
        for path, (gestures, stats) in recordings_read:
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
        if not stream.labels:
            raise UserError(f"{source}: no labelled gesture to write (every recording bad or "
                            "without labels)")
        n_timesteps_out, counts = stream.finish(
            DVS_CLASSES, f"dvsgesture-{split}" if split else "dvsgesture")
        finish_report(report, stream, n_timesteps_out, counts, t_start)
        extra = {"split": split or "all", "downsample": downsample, "sensor_width": side,
                 "sensor_height": side, "n_polarities": 2,
                 "channel_order": "polarity * width * height + y * width + x",
                 "label_offset": -1, "n_invalid": report.n_invalid}
        write_provenance(f, report, time_window_us is not None, n_bins, two_pass, extra)
        group = f.require_group("extra")
        write_strings(group, "recording", recordings)
        write_array(group, "start_us", np.asarray(starts, dtype=np.int64))
        write_array(group, "end_us", np.asarray(ends, dtype=np.int64))
    report.seconds = time.perf_counter() - t_start
    return report
