"""The HDF5 layout of the Spiking Heidelberg Digits (SHD) and Spiking Speech Commands (SSC) files.

A file holds ``N`` samples:

=================== ================================== ===========================================
object              type                               meaning
=================== ================================== ===========================================
``spikes/times``    ``(N,)`` variable-length float     spike times of each sample, in seconds
``spikes/units``    ``(N,)`` variable-length integer   channel of each spike (SHD/SSC: 0..699)
``labels``          ``(N,)`` integer                   class of each sample
``extra/speaker``   ``(N,)`` integer, optional         speaker of each sample
``extra/keys``      ``(n_classes,)`` string, optional  the name of each class
``extra/...``       optional                           anything else (e.g. ``extra/meta_info/*``)
=================== ================================== ===========================================

The original files carry no ``format`` attribute, and neither do the files :func:`write_shd`
writes (so they look exactly like the originals). :func:`read_shd` reads a slice of samples at a
time; it never loads the ragged arrays whole.

In ``extra``, datasets at the top level whose first dimension is ``N`` (other than ``keys``) are
*per-sample* and are sliced with the samples; ``keys`` and everything in subgroups (such as
``meta_info``) is file-level metadata and is returned whole.
"""
from __future__ import annotations

import os

import h5py
import numpy as np

from ..errors import UserError
from ..io.h5common import H5_READ_ERRORS, atomic_h5, one_line

METADATA_KEYS = ("keys",)


def write_shd(path, times_list, units_list, labels, extra=None, times_dtype=np.float64,
              units_dtype=np.uint16) -> None:
    """Write samples in the SHD layout to ``path``, atomically (temporary file, then rename).

    ``times_list[i]`` (seconds) and ``units_list[i]`` are the spikes of sample ``i``; ``labels``
    its class. ``extra`` maps names to arrays (or strings lists, or nested dicts, written as
    groups) stored under ``extra/``. The original SHD files use ``float16`` times and ``uint16``
    units; ``float64`` times (the default here) keep microseconds exact.
    """
    n = len(labels)
    if len(times_list) != n or len(units_list) != n:
        raise UserError(f"{len(times_list)} time arrays and {len(units_list)} unit arrays "
                        f"for {n} labels")
    labels = np.asarray(labels)
    if labels.ndim != 1 or (n and (not np.issubdtype(labels.dtype, np.integer) or labels.min() < 0)):
        raise UserError("labels must be a 1-d array of non-negative integers")
    times_dtype, units_dtype = np.dtype(times_dtype), np.dtype(units_dtype)
    times = np.empty(n, dtype=object)
    units = np.empty(n, dtype=object)
    for i, (t, u) in enumerate(zip(times_list, units_list)):
        t, u = np.asarray(t), np.asarray(u)
        if t.ndim != 1 or u.shape != t.shape:
            raise UserError(f"sample {i}: times {t.shape} and units {u.shape} must be 1-d and "
                            "of the same length")
        if u.size and (u.min() < 0 or u.max() > np.iinfo(units_dtype).max):
            raise UserError(f"sample {i}: units out of the range of {units_dtype}")
        if t.size and not np.all(np.isfinite(t)):
            raise UserError(f"sample {i}: spike times must be finite")
        times[i] = t.astype(times_dtype)
        units[i] = u.astype(units_dtype)
    with atomic_h5(path, "shd") as f:
        # The originals have no format attributes: keep the layout identical.
        del f.attrs["format"], f.attrs["format_version"]
        spikes = f.create_group("spikes")
        spikes.create_dataset("times", data=times, dtype=h5py.vlen_dtype(times_dtype))
        spikes.create_dataset("units", data=units, dtype=h5py.vlen_dtype(units_dtype))
        f.create_dataset("labels", data=labels.astype(np.uint16 if n == 0 or labels.max() < 65536
                                                      else np.int64))
        if extra:
            _write_group(f.create_group("extra"), extra)


def _write_group(group, items):
    for key, value in items.items():
        if isinstance(value, dict):
            _write_group(group.create_group(key), value)
            continue
        value = np.asarray(value)
        if value.dtype.kind in "US" or value.dtype == object:
            group.create_dataset(key, data=np.array([str(v).encode("utf-8") for v in value.ravel()],
                                                    dtype=object).reshape(value.shape),
                                 dtype=h5py.string_dtype("utf-8"))
        else:
            group.create_dataset(key, data=value)


class SHDFile:
    """An open SHD/SSC file; :meth:`read` returns a slice of samples. Context manager."""

    def __init__(self, path):
        self.path = name = os.fspath(path)
        if not os.path.exists(name):
            raise UserError(f"{name}: no such file")
        try:
            self._file = h5py.File(name, "r")
        except OSError as e:
            raise UserError(f"{name}: not a readable HDF5 file (corrupt or truncated?): "
                            f"{one_line(e)}") from None
        try:
            self._times = self._get("spikes/times")
            self._units = self._get("spikes/units")
            labels = self._get("labels")
            self._labels = self._load(labels, slice(None))
            n = len(self._labels)
            if self._labels.ndim != 1 or not np.issubdtype(self._labels.dtype, np.integer):
                raise UserError(f"{name}: 'labels' must be a 1-d integer array")
            if len(self._times) != n or len(self._units) != n:
                raise UserError(f"{name}: spikes/times has {len(self._times)} samples, spikes/units "
                                f"{len(self._units)}, labels {n}; they must agree")
        except BaseException:
            self._file.close()
            raise

    def _get(self, key):
        try:
            if key not in self._file:
                raise UserError(f"{self.path}: missing dataset '{key}' (not an SHD/SSC file?)")
            d = self._file[key]
        except H5_READ_ERRORS as e:
            raise UserError(f"{self.path}: cannot read '{key}': {one_line(e)}") from None
        if not isinstance(d, h5py.Dataset):
            raise UserError(f"{self.path}: '{key}' must be a dataset")
        return d

    def _load(self, d, index):
        try:
            return np.asarray(d[index])
        except H5_READ_ERRORS as e:
            raise UserError(f"{self.path}: cannot read '{d.name}' (corrupt?): {one_line(e)}") from None

    def __len__(self):
        return len(self._labels)

    @property
    def labels(self) -> np.ndarray:
        return self._labels

    def extra_keys(self) -> list:
        """Names (paths under ``extra/``) of every dataset in ``extra``."""
        if "extra" not in self._file:
            return []
        names = []
        self._file["extra"].visititems(
            lambda k, obj: names.append(k) if isinstance(obj, h5py.Dataset) else None)
        return sorted(names)

    def read(self, start=0, stop=None) -> dict:
        """Samples ``start:stop``: ``dict(times, units, labels, extra)``.

        ``times`` and ``units`` are lists of arrays (seconds as float64, units as int64),
        ``labels`` an int64 array, ``extra`` a dict: per-sample arrays sliced, metadata whole
        (module docstring), strings decoded, subgroups as nested dicts.
        """
        n = len(self)
        stop = n if stop is None else int(stop)
        start = int(start)
        if not 0 <= start <= stop <= n:
            raise UserError(f"{self.path}: sample range {start}:{stop} outside 0:{n}")
        sl = slice(start, stop)
        times = [np.asarray(t, dtype=np.float64) for t in self._load(self._times, sl)]
        units = [np.asarray(u, dtype=np.int64) for u in self._load(self._units, sl)]
        for i, (t, u) in enumerate(zip(times, units)):
            if len(t) != len(u):
                raise UserError(f"{self.path}: sample {start + i} has {len(t)} times but "
                                f"{len(u)} units")
        extra = {}
        if "extra" in self._file:
            extra = self._read_extra(self._file["extra"], sl, n, top=True)
        return {"times": times, "units": units, "labels": self._labels[sl].astype(np.int64),
                "extra": extra}

    def _read_extra(self, group, sl, n, top):
        out = {}
        for key, obj in group.items():
            if isinstance(obj, h5py.Group):
                out[key] = self._read_extra(obj, slice(None), n, top=False)
                continue
            per_sample = top and key not in METADATA_KEYS and obj.ndim >= 1 and obj.shape[0] == n
            value = self._load(obj, sl if per_sample else slice(None))
            if value.dtype == object or value.dtype.kind == "S":
                value = np.array([v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)
                                  for v in value.ravel()], dtype=object).reshape(value.shape)
            out[key] = value
        return out

    def close(self):
        self._file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def open_shd(path) -> SHDFile:
    """Open an SHD/SSC file for reading slices of samples (:class:`SHDFile`)."""
    return SHDFile(path)


def read_shd(path, start=0, stop=None) -> dict:
    """Samples ``start:stop`` of the SHD/SSC file ``path`` (see :meth:`SHDFile.read`)."""
    with SHDFile(path) as f:
        return f.read(start, stop)
