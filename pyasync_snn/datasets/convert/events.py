"""Event arrays as tonic and similar tools hold them (NumPy structured arrays) to a dataset file.

**SOURCE**, one of two layouts:

- a ``.npz`` file holding every sample: arrays ``events_0 ... events_{N-1}`` (one structured
  array per sample) and ``labels`` (``(N,)`` integers >= 0); optionally ``sensor_size`` (tonic's
  ``sensor_size``: ``(W, H, P)`` for a camera, ``(N, 1, 1)`` for audio) and ``class_names``
  (``(C,)`` strings). Any other array is an error;
- a folder: one ``.npy`` file per sample (in the folder or below it) and ``labels.csv``, one line
  ``file,label`` per sample (the ``.npy`` path relative to the folder, ``/`` separated; a header
  line is optional). Samples are written in the csv's order; every ``.npy`` must be listed once.
  Files that are neither ``.npy`` nor ``labels.csv``, and hidden ones, are ignored.

**Events**, a 1-d structured array per sample (field order free, extra fields ignored):

- ``x, y, p, t`` -- an event camera, tonic's vision layout: channel
  ``p * W * H + y * W + x`` (:func:`..nmnist.channel_index`; with ``downsample = K`` the
  coordinates are ``x // K``, ``y // K`` on a ``ceil(W / K) x ceil(H / K)`` sensor), 2
  polarities (``p`` 0/1 or bool), ``2 W H`` inputs;
- ``t, x`` and optionally ``p``, no ``y`` -- audio, tonic's SHD/SSC layout ``(t, x, p)``:
  channel ``x // K`` over ``ceil(N / K)`` inputs. ``p`` carries nothing there (tonic sets it
  to 1 on every SHD event) and is ignored, but it must take a single value over the set.

``t`` is in microseconds: integers, or floats rounded to the nearest µs; with
``origin="zero"`` times count from 0 and must be >= 0, with ``origin="first"`` from each
sample's earliest event. Events need not be sorted (decreases are counted and kept in order).

The sensor size: ``sensor=(W, H)`` / ``n_channels=N`` if given, else the ``.npz``'s
``sensor_size``, else inferred from the events (largest ``x`` (and ``y``) + 1, noted in the
report). Classes: ``n_classes`` if given, else ``len(class_names)``, else the largest label + 1.
Binning, streaming and atomic output: :mod:`.pipeline`. The samples are read twice (the first
pass validates every sample and finds the sensor and the last event before anything is written),
one sample in memory at a time.
"""
from __future__ import annotations

import csv
import json
import os
import re
import time
import zipfile
import zlib

import numpy as np

from ...errors import UserError
from ...io.dataset import FORMAT
from ...io.atomic import one_line
from ...io.h5common import atomic_h5
from ...validate import integer
from .. import nmnist
from ..binning import grid
from .pipeline import (DEFAULT_WINDOW_US, ConversionReport, Stream, finish_report, tick,
                       window_from_t_max, write_provenance, write_strings)

LABELS_CSV = "labels.csv"
NPZ_OPTIONAL = ("sensor_size", "class_names")
ORIGINS = ("zero", "first")
CAMERA_FIELDS = ("x", "y", "p", "t")
AUDIO_FIELDS = ("t", "x")
LAYOUT_HINT = ("expected a .npz file (events_0 ... events_{N-1}, labels) or a folder of .npy "
               "files with labels.csv")
READ_ERRORS = (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error)
T_LIMIT = 2 ** 62  # µs; beyond this a float time does not round to an int64


# ---------------------------------------------------------------------------- the two layouts

class _Npz:
    """The ``.npz`` layout: samples ``events_<i>``, ``labels``, optional extras."""

    kind = "npz"

    def __init__(self, path):
        self.path = path
        try:
            data = np.load(path, allow_pickle=False)
        except READ_ERRORS as e:
            raise UserError(f"{path}: cannot read as a .npz file ({one_line(e) or type(e).__name__})") from None
        if not isinstance(data, np.lib.npyio.NpzFile):
            raise UserError(f"{path}: a single array, not a .npz archive; {LAYOUT_HINT}")
        self.npz = data
        try:
            self._index()
        except BaseException:
            data.close()
            raise

    def _index(self):
        keys = list(self.npz.files)
        if "labels" not in keys:
            raise UserError(f"{self.path}: no 'labels' array ({LAYOUT_HINT})")
        self.labels = _labels(self._array("labels"), f"{self.path}: labels")
        n = len(self.labels)
        found = {}
        for key in keys:
            m = re.fullmatch(r"events_(0|[1-9][0-9]*)", key)
            if m:
                found[int(m.group(1))] = key
            elif key != "labels" and key not in NPZ_OPTIONAL:
                raise UserError(f"{self.path}: unknown array {key!r}; the layout is events_0 ... "
                                f"events_{{N-1}}, labels and optionally {', '.join(NPZ_OPTIONAL)}")
        extra = sorted(i for i in found if i >= n)
        if extra:
            raise UserError(f"{self.path}: events_{extra[0]} has no label (labels has {n} entries: "
                            f"events_0 ... events_{n - 1} expected)")
        missing = [i for i in range(n) if i not in found]
        if missing:
            raise UserError(f"{self.path}: no events_{missing[0]}, but labels has {n} entries "
                            f"(events_0 ... events_{n - 1} expected)")
        self.sensor_size = _sensor_size(self._array("sensor_size"), self.path) \
            if "sensor_size" in keys else None
        self.class_names = _class_names(self._array("class_names"), self.path) \
            if "class_names" in keys else None
        self.names = [f"events_{i}" for i in range(n)]
        self.files = None
        self.n_files = 1

    def _array(self, key):
        try:
            return self.npz[key]
        except READ_ERRORS as e:
            raise UserError(f"{self.path}: cannot read {key} ({one_line(e) or type(e).__name__})") from None

    def where(self, i) -> str:
        return f"{self.path}: {self.names[i]}"

    def read(self, i):
        return self._array(self.names[i])

    def close(self):
        self.npz.close()


class _Folder:
    """The folder layout: one ``.npy`` per sample, labels in ``labels.csv``."""

    kind = "folder"

    def __init__(self, path):
        self.path = path
        csv_path = os.path.join(path, LABELS_CSV)
        if not os.path.isfile(csv_path):
            raise UserError(f"{path}: no {LABELS_CSV} (one line 'file,label' per .npy sample)")
        rows = _read_labels_csv(csv_path)
        if not rows:
            raise UserError(f"{csv_path}: lists no samples")
        on_disk = set(_npy_files(path))
        listed = set()
        for line, name, _ in rows:
            if name in listed:
                raise UserError(f"{csv_path}: line {line}: {name} is listed twice")
            if name not in on_disk:
                raise UserError(f"{csv_path}: line {line}: no such sample file {name}")
            listed.add(name)
        unlisted = sorted(on_disk - listed)
        if unlisted:
            raise UserError(f"{os.path.join(path, unlisted[0])}: not in {LABELS_CSV} (every .npy "
                            f"sample needs a label; {len(unlisted)} unlisted)")
        self.files = [name for _, name, _ in rows]
        self.labels = np.array([label for _, _, label in rows], dtype=np.int64)
        self.names = self.files
        self.sensor_size = self.class_names = None
        self.n_files = len(self.files)

    def where(self, i) -> str:
        return os.path.join(self.path, self.files[i])

    def read(self, i):
        name = self.where(i)
        try:
            return np.load(name, allow_pickle=False)
        except READ_ERRORS as e:
            raise UserError(f"{name}: cannot read as a .npy file ({one_line(e) or type(e).__name__})") from None

    def close(self):
        pass


def _open(source):
    name = os.fspath(source)
    if os.path.isdir(name):
        return _Folder(name)
    if not os.path.exists(name):
        raise UserError(f"{name}: no such file or folder")
    if not name.endswith(".npz"):
        raise UserError(f"{name}: not a .npz file or a folder; {LAYOUT_HINT}")
    return _Npz(name)


def _read_labels_csv(path) -> list:
    """``[(line, file, label)]`` of ``labels.csv``; a first line whose label is not an integer
    is a header; blank lines are ignored."""
    try:
        with open(path, encoding="utf-8", errors="replace", newline="") as fh:
            lines = list(csv.reader(fh))
    except OSError as e:
        raise UserError(f"{path}: cannot read ({e.strerror or e})") from None
    rows = []
    for number, fields in enumerate(lines, 1):
        fields = [f.strip() for f in fields]
        if not any(fields):
            continue
        if number == 1 and len(fields) == 2 and not re.fullmatch(r"-?\d+", fields[1]):
            continue  # header, e.g. file,label
        if len(fields) != 2 or not re.fullmatch(r"\d+", fields[1]):
            raise UserError(f"{path}: line {number}: expected 'file,label' with a label integer "
                            f">= 0, found {','.join(fields)[:60]!r}")
        name = fields[0].replace("\\", "/")
        parts = name.split("/")
        if not name.endswith(".npy") or name.startswith("/") or ".." in parts or "" in parts:
            raise UserError(f"{path}: line {number}: {fields[0]!r} is not a .npy path relative to "
                            "the folder")
        rows.append((number, "/".join(p for p in parts if p != "."), int(fields[1])))
    return rows


def _npy_files(root) -> list:
    """The ``.npy`` files under ``root`` (paths relative to it, ``/`` separated), hidden ones
    and hidden folders skipped."""
    found = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        rel = os.path.relpath(folder, root)
        for f in sorted(files):
            if f.endswith(".npy") and not f.startswith("."):
                found.append(f if rel == "." else f"{rel}/{f}".replace(os.sep, "/"))
    return found


def _labels(array, where) -> np.ndarray:
    if array.ndim != 1 or not np.issubdtype(array.dtype, np.integer):
        raise UserError(f"{where}: expected a 1-d array of integers, found {_describe(array)}")
    if len(array) == 0:
        raise UserError(f"{where}: no samples (an empty labels array)")
    if array.min() < 0:
        raise UserError(f"{where}: labels must be >= 0, found {int(array.min())}")
    return array.astype(np.int64)


def _sensor_size(array, path) -> tuple:
    """tonic's ``sensor_size``: 2 or 3 positive integers."""
    if array.ndim != 1 or len(array) not in (2, 3) or not np.issubdtype(array.dtype, np.integer) \
            or array.min() < 1:
        raise UserError(f"{path}: sensor_size must be 2 or 3 positive integers (tonic's (W, H, P)), "
                        f"found {array.tolist() if array.size <= 4 else _describe(array)}")
    return tuple(int(v) for v in array)


def _class_names(array, path) -> list:
    if array.ndim != 1 or array.dtype.kind not in "US":
        raise UserError(f"{path}: class_names must be a 1-d array of strings, found {_describe(array)}")
    return [v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in array.tolist()]


def _describe(array) -> str:
    return f"dtype {array.dtype} and shape {array.shape}"


# ------------------------------------------------------------------------------- one sample

def _events(array, where, origin) -> dict:
    """The columns of one sample as int64 arrays: ``kind`` ("camera"/"audio"), ``t`` (µs from
    the origin), ``x``, and ``y``, ``p`` (camera) or ``p`` / None (audio); ``n_decreases``,
    ``float_t``. Every problem is a one-line :class:`UserError` naming ``where``."""
    fields = array.dtype.names if isinstance(array, np.ndarray) else None
    if not fields:
        found = _describe(array) if isinstance(array, np.ndarray) else type(array).__name__
        raise UserError(f"{where}: not a structured array: found {found}; expected fields x, y, p, t "
                        "(camera, tonic's layout) or t, x[, p] (audio)")
    kind, need = ("camera", CAMERA_FIELDS) if "y" in fields else ("audio", AUDIO_FIELDS)
    missing = [f for f in need if f not in fields]
    if missing:
        raise UserError(f"{where}: no field {', '.join(missing)} (fields: {', '.join(fields)}); "
                        "expected x, y, p, t (camera, tonic's layout) or t, x[, p] (audio)")
    if array.ndim != 1:
        raise UserError(f"{where}: events must be a 1-d array, found shape {array.shape}")
    names = need + (("p",) if kind == "audio" and "p" in fields else ())
    col = {}
    for f in names:
        a = array[f]
        dt = a.dtype
        ok = np.issubdtype(dt, np.integer) or (f == "p" and dt == np.bool_) \
            or (f == "t" and np.issubdtype(dt, np.floating))
        if a.ndim != 1 or not ok:
            want = {"t": "integers or floats (µs)", "p": "integers 0/1 or bool"}.get(f, "integers")
            raise UserError(f"{where}: field {f} has dtype {dt}{a.shape[1:] or ''}; expected {want}")
        col[f] = a
    t = col["t"]
    float_t = bool(np.issubdtype(t.dtype, np.floating))
    if float_t:
        if t.size and not (np.all(np.isfinite(t)) and np.abs(t).max() < T_LIMIT):
            bad = int(np.argmax(~np.isfinite(t) | (np.abs(t) >= T_LIMIT)))
            raise UserError(f"{where}: event {bad} has time t = {float(t[bad])}, not a finite "
                              "number of µs")
        t = np.rint(t)
    t = t.astype(np.int64)
    out = {"kind": kind, "float_t": float_t, "n_decreases": nmnist.count_decreases(t)}
    for f in ("x", "y"):
        if f in col:
            v = col[f].astype(np.int64)
            if v.size and v.min() < 0:
                bad = int(np.argmax(v < 0))
                raise UserError(f"{where}: event {bad} has {f} = {v[bad]} < 0")
            out[f] = v
    p = col.get("p")
    if kind == "camera":
        p = p.astype(np.int64)
        if p.size and (p.min() < 0 or p.max() > 1):
            bad = int(np.argmax((p < 0) | (p > 1)))
            raise UserError(f"{where}: event {bad} has polarity p = {p[bad]}; expected 0 (OFF) or 1 "
                            "(ON) (map -1/1 polarities with p = p > 0)")
    out["p"] = p
    if origin == "first":
        if t.size:
            t = t - t.min()
    elif t.size and t.min() < 0:
        bad = int(np.argmax(t < 0))
        raise UserError(f"{where}: event {bad} has a negative time t = {t[bad]} µs (origin='zero'; "
                        "--origin first counts from each sample's first event)")
    out["t"] = t
    return out


def _outside(where, ev, width, height, what) -> None:
    """A one-line error at the first event outside a ``width x height`` sensor (``height`` None:
    ``width`` channels)."""
    x = ev["x"]
    if height is None:
        if x.size and x.max() >= width:
            bad = int(np.argmax(x >= width))
            raise UserError(f"{where}: event {bad} at channel x = {x[bad]} is outside the {width} "
                            f"channels (size {what})")
        return
    y = ev["y"]
    if x.size and (x.max() >= width or y.max() >= height):
        bad = int(np.argmax((x >= width) | (y >= height)))
        raise UserError(f"{where}: event {bad} at (x={x[bad]}, y={y[bad]}) is outside the "
                        f"{width}x{height} sensor (size {what})")


# ------------------------------------------------------------------------------- the converter

def convert_events(source, out, sensor=None, n_channels=None, time_window_us=DEFAULT_WINDOW_US,
                   n_timesteps=None, downsample=1, n_classes=None, origin="zero", keep_time=False,
                   progress=None) -> ConversionReport:
    """Convert the event arrays of ``source`` (a ``.npz`` file or a folder of ``.npy`` files with
    ``labels.csv``; layouts and fields: the module docstring) to the dataset file ``out``.

    ``sensor = (W, H)`` for camera events (``x, y, p, t``), ``n_channels = N`` for audio events
    (``t, x[, p]``); without them the ``.npz``'s ``sensor_size``, else the largest coordinate + 1.
    ``downsample = K`` merges ``K x K`` pixels (camera) or ``K`` channels (audio). ``n_classes``
    fixes the number of classes (default: ``len(class_names)``, else the largest label + 1).
    ``origin`` "zero" bins times from 0, "first" from each sample's earliest event. Binning
    (``time_window_us``, ``n_timesteps``, ``keep_time``): as for the other converters. Every
    sample is validated before the output is created; ``progress(done, total)`` counts samples
    over both passes.
    """
    t_start = time.perf_counter()
    downsample = integer("downsample factor", downsample, 1, "a positive integer")
    window, n_bins = grid(time_window_us, n_timesteps, DEFAULT_WINDOW_US)
    needs_t_max = window is None
    if origin not in ORIGINS:
        raise UserError(f"origin must be one of {', '.join(ORIGINS)}, got {origin!r}")
    if sensor is not None:
        if n_channels is not None:
            raise UserError("give the sensor size (camera events) or the number of channels "
                            "(audio events), not both")
        if not isinstance(sensor, (tuple, list)) or len(sensor) != 2:
            raise UserError(f"sensor must be (width, height), got {sensor!r}")
        sensor = tuple(integer(f"sensor {w}", v, 1, "a positive integer")
                       for w, v in zip(("width", "height"), sensor))
    if n_channels is not None:
        n_channels = integer("number of channels", n_channels, 1, "a positive integer")
    if n_classes is not None:
        n_classes = integer("number of classes", n_classes, 1, "a positive integer")
    name = os.fspath(source)
    src = _open(name)
    try:
        return _convert(src, out, sensor, n_channels, window, n_bins, needs_t_max,
                        time_window_us is not None, downsample, n_classes, origin, keep_time,
                        progress, t_start)
    finally:
        src.close()


def _convert(src, out, sensor, n_channels, window, n_bins, needs_t_max, window_given, downsample,
             n_classes, origin, keep_time, progress, t_start):
    source = os.path.abspath(src.path)
    report = ConversionReport("events", source, os.fspath(out))
    labels = src.labels
    n = len(labels)
    class_source = "given"
    if n_classes is None:
        if src.class_names is not None:
            n_classes, class_source = len(src.class_names), "class_names"
        else:
            n_classes, class_source = int(labels.max()) + 1, "largest label + 1"
            report.notes.append(f"{n_classes} classes: the largest label + 1 (give the number of "
                                "classes so that train and test files agree)")
    if src.class_names is not None and len(src.class_names) != n_classes:
        raise UserError(f"{src.path}: class_names lists {len(src.class_names)} classes, but "
                        f"{n_classes} were given")
    if labels.max() >= n_classes:
        bad = int(np.argmax(labels >= n_classes))
        raise UserError(f"{src.where(bad)}: label {labels[bad]} outside 0..{n_classes - 1} "
                        f"({n_classes} classes: {class_source})")
    total, done = 2 * n, 0
    tick(progress, done, total)

    # pass 1: validate every sample; the kind, the sensor, the last event
    kind, size, size_source = None, None, None
    x_max = y_max = t_max = -1
    p_value, p_where = None, None
    n_float = 0
    for i in range(n):
        where = src.where(i)
        ev = _events(src.read(i), where, origin)
        if kind is None:
            kind = ev["kind"]
            size, size_source = _known_size(kind, sensor, n_channels, src)
        elif ev["kind"] != kind:
            raise UserError(f"{where}: {ev['kind']} events (fields {_fields(ev['kind'])}) but "
                            f"{src.where(0)} holds {kind} events")
        if size is not None:
            _outside(where, ev, size[0], size[1] if kind == "camera" else None, size_source)
        if ev["x"].size:
            x_max = max(x_max, int(ev["x"].max()))
            if kind == "camera":
                y_max = max(y_max, int(ev["y"].max()))
            t_max = max(t_max, int(ev["t"].max()))
        if kind == "audio" and ev["p"] is not None and ev["p"].size:
            values = np.unique(ev["p"])
            if p_value is None:
                p_value, p_where = values[0], where
            other = values[values != p_value]
            if other.size:
                raise UserError(f"{where}: audio events with polarity p = {other[0]}, but "
                                f"{p_where} has p = {p_value}: audio channels are x only; merge or "
                                "split the polarities first")
        n_float += ev["float_t"]
        done += 1
        tick(progress, done, total)
    if size is None:  # inferred from the events
        if x_max < 0:
            raise UserError(f"{src.path}: no events at all: cannot infer the sensor size; give it "
                            f"({'--sensor WxH' if kind == 'camera' else '--channels N'})")
        size = (x_max + 1, y_max + 1) if kind == "camera" else (x_max + 1, None)
        size_source = "inferred from the events (largest coordinate + 1)"
        report.notes.append(f"sensor size inferred from the events: "
                            f"{_size_text(kind, size)} (give it so that train and test files agree)")
    if n_float:
        report.notes.append(f"{n_float} samples have floating-point times: rounded to the nearest µs")
    if needs_t_max:
        window = window_from_t_max(max(t_max, 0), n_bins)
    if kind == "camera":
        width, height = (-(-s // downsample) for s in size)
        n_inputs = nmnist.N_POLARITIES * width * height
    else:
        n_inputs = -(-size[0] // downsample)
    report.n_classes = n_classes
    report.time_window_us, report.n_inputs = window, n_inputs

    # pass 2: bin and write
    with atomic_h5(out, FORMAT) as f:
        stream = Stream(f, n_inputs, window, n_bins, keep_time)
        for i in range(n):
            where = src.where(i)
            ev = _events(src.read(i), where, origin)
            if kind == "camera":
                unit = nmnist.channel_index(ev["x"] // downsample, ev["y"] // downsample, ev["p"],
                                            width, height)
            else:
                unit = ev["x"] // downsample
            stream.add(ev["t"], unit, labels[i])
            report.n_events_read += len(ev["t"])
            report.n_decreases += ev["n_decreases"]
            report.n_samples_nonmonotonic += ev["n_decreases"] > 0
            if len(ev["t"]) == 0:
                report.empty.append(where)
            done += 1
            tick(progress, done, total)
        report.n_files = src.n_files
        stem = os.path.splitext(os.path.basename(os.path.normpath(src.path)))[0]
        n_timesteps_out, counts = stream.finish(n_classes, stem)
        finish_report(report, stream, n_timesteps_out, counts, t_start)
        extra = {"layout": src.kind, "event_kind": kind, "time_origin": origin,
                 "downsample": downsample, "n_classes_source": class_source,
                 "n_float_time_samples": n_float}
        if kind == "camera":
            extra.update({"sensor_width": width, "sensor_height": height,
                          "n_polarities": nmnist.N_POLARITIES,
                          "channel_order": "polarity * width * height + y * width + x",
                          "sensor_size": f"{size[0]}x{size[1]}", "sensor_source": size_source})
        else:
            extra.update({"n_units": size[0], "n_units_source": size_source,
                          "channel_order": "x"})
        if src.class_names is not None:
            extra["class_names"] = json.dumps(src.class_names)
        write_provenance(f, report, window_given, n_bins, needs_t_max, extra)
        if src.files is not None:
            write_strings(f.require_group("extra"), "file", src.files)
    report.seconds = time.perf_counter() - t_start
    return report


def _known_size(kind, sensor, n_channels, src) -> tuple:
    """``(size, source)`` known before reading the events: ``(W, H)`` or ``(N, None)``; or
    ``(None, None)`` when it must be inferred."""
    if kind == "camera":
        if n_channels is not None:
            raise UserError(f"{src.where(0)}: camera events (fields x, y, p, t): give the sensor "
                            "size (--sensor WxH), not a number of channels")
        if sensor is not None:
            return sensor, "given"
        s = src.sensor_size
        if s is not None:
            if len(s) == 3 and s[2] > 2:
                raise UserError(f"{src.path}: sensor_size {s}: {s[2]} polarities; camera events have "
                                "1 or 2")
            return (s[0], s[1]), "from the file's sensor_size"
        return None, None
    if sensor is not None:
        raise UserError(f"{src.where(0)}: audio events (fields t, x[, p], no y): give the number of "
                        "channels (--channels N), not a sensor size")
    if n_channels is not None:
        return (n_channels, None), "given"
    s = src.sensor_size
    if s is not None:
        if any(v != 1 for v in s[1:]):
            raise UserError(f"{src.path}: sensor_size {s} is a camera's, but the events have no y "
                            "field (audio: (N, 1, 1))")
        return (s[0], None), "from the file's sensor_size"
    return None, None


def _fields(kind) -> str:
    return "x, y, p, t" if kind == "camera" else "t, x[, p]"


def _size_text(kind, size) -> str:
    return f"{size[0]}x{size[1]}" if kind == "camera" else f"{size[0]} channels"
