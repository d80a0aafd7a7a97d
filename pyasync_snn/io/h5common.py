"""Plumbing shared by the HDF5 formats: atomic writes, checked opening, checked reads.

Every reader turns what can go wrong with a file (missing, not HDF5, truncated, another format,
a missing or malformed object) into a one-line :class:`UserError` that names the file.
"""
from __future__ import annotations

import contextlib
import os

import h5py
import numpy as np

from ..errors import UserError
from .atomic import atomic_path, one_line

FORMAT_VERSION = 1

# Array kinds a format may require, with a test on the dtype and a word for messages.
KINDS = {
    "int": (lambda dt: np.issubdtype(dt, np.integer), "an integer"),
    "float": (lambda dt: dt in (np.float32, np.float64), "a float32 or float64"),
    "real": (lambda dt: np.issubdtype(dt, np.integer) or np.issubdtype(dt, np.floating), "a numeric"),
    "bool": (lambda dt: dt == np.bool_, "a boolean"),
}

H5_READ_ERRORS = (OSError, KeyError, RuntimeError)

COMPRESS_MIN_SIZE = 4096  # arrays at least this large are chunked and gzip-compressed
CHUNK_ROWS = 1 << 16
GZIP = {"compression": "gzip", "compression_opts": 1, "shuffle": True}  # level 1: 2-6% larger than 4, written 18-32% faster


def short_repr(value, limit=60) -> str:
    if isinstance(value, np.generic):
        value = value.item()
    text = one_line(repr(value))
    return text if len(text) <= limit else text[:limit - 3] + "..."


@contextlib.contextmanager
def atomic_h5(path, fmt):
    """Write an HDF5 file atomically: yield a new file next to ``path``, rename it on success.

    The file carries the root attributes ``format = fmt`` and ``format_version``. If the block
    raises, or the disk refuses a write (full, or over a size limit), the temporary file is
    removed, ``path`` is left untouched and the error is one line. HDF5 writes through a
    :class:`_WriteGuard`, because HDF5 cannot close a file after a failed write (it crashes).
    """
    with atomic_path(path) as tmp:
        guard = _WriteGuard(tmp)
        try:
            with h5py.File(guard, "w", libver=("v110", "latest")) as f:
                f.attrs["format"] = fmt
                f.attrs["format_version"] = FORMAT_VERSION
                f.write_guard = guard
                yield f
        finally:
            guard.close()
        if guard.error is not None:
            raise guard.error  # atomic_path removes the file and reports it in one line


def check_write(f) -> None:
    """Stop a long write to a file of :func:`atomic_h5` early once the disk has refused it."""
    if f.write_guard.error is not None:
        raise f.write_guard.error


class _WriteGuard:
    """A new binary file for h5py's file-object driver whose writes never fail: the first
    ``OSError`` is kept in ``error`` and later writes are dropped (the file is discarded)."""

    def __init__(self, path):
        self.error = None
        self._file = open(path, "xb+", buffering=0)  # an OSError here: atomic_path reports it

    def write(self, data) -> int:
        view = memoryview(data).cast("B")
        start = self._file.tell()
        if self.error is None:
            try:
                done = 0
                while done < len(view):
                    done += self._file.write(view[done:])
                return len(view)
            except OSError as e:
                self.error = e
        self._file.seek(start + len(view))
        return len(view)

    def truncate(self, size=None):
        if self.error is None:
            try:
                return self._file.truncate(size)
            except OSError as e:
                self.error = e
        return size

    def seek(self, offset, whence=0):
        return self._file.seek(offset, whence)

    def tell(self):
        return self._file.tell()

    def read(self, size=-1):
        return self._file.read(size)

    def readinto(self, buffer):
        return self._file.readinto(buffer)

    def flush(self):
        pass

    def close(self):
        self._file.close()


def open_checked(path, fmt) -> h5py.File:
    """Open ``path`` read-only, checking it is an HDF5 file of format ``fmt`` and a known version."""
    name = os.fspath(path)
    if not os.path.exists(name):
        raise UserError(f"{name}: no such file")
    if os.path.isdir(name):
        raise UserError(f"{name}: is a directory, not a file")
    try:
        f = h5py.File(name, "r")
    except OSError as e:
        raise UserError(f"{name}: not a readable HDF5 file (corrupt or truncated?): {one_line(e)}") from None
    try:
        with in_file(f):
            _check_format(f, fmt)
    except BaseException:
        f.close()
        raise
    return f


def _check_format(f, fmt):
    if "format" not in f.attrs:
        raise UserError(f"not a {fmt} file: expected format '{fmt}', found no 'format' attribute")
    found = attr(f, "format")
    if found != fmt:
        raise UserError(f"wrong file format: expected '{fmt}', found {short_repr(found)}")
    version = attr(f, "format_version", int)
    if version < 1:
        raise UserError(f"invalid format_version {version}")
    if version > FORMAT_VERSION:
        raise UserError(f"format_version {version} is newer than this pyasync-snn supports "
                        f"({FORMAT_VERSION}); upgrade pyasync-snn")


@contextlib.contextmanager
def in_file(f):
    """Prefix every :class:`UserError` raised in the block with the file name; turn h5py read
    errors that escaped the helpers below into one as well."""
    try:
        yield
    except UserError as e:
        raise UserError(f"{f.filename}: {e}") from None
    except H5_READ_ERRORS as e:
        raise UserError(f"{f.filename}: cannot read file (corrupt?): {one_line(e)}") from None


def _decode(value):
    """h5py returns strings as ``str``, ``bytes`` or numpy strings; make them ``str``."""
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, np.str_):
        return str(value)
    return value


def attr(obj, key, kind=None):
    """Read required attribute ``key`` of a file/group/dataset; ``kind`` is ``str``, ``int``,
    ``float`` or ``None`` (anything). Numbers come back as Python ``int``/``float``."""
    where = f"attribute '{key}'" + ("" if obj.name == "/" else f" of '{obj.name.lstrip('/')}'")
    try:
        if key not in obj.attrs:
            raise UserError(f"missing {where}")
        value = _decode(obj.attrs[key])
    except H5_READ_ERRORS as e:
        raise UserError(f"cannot read {where}: {one_line(e)}") from None
    if kind is None:
        return value
    scalar = np.ndim(value) == 0 and not isinstance(value, (bool, np.bool_, str))
    ok = {
        str: isinstance(value, str),
        int: scalar and np.issubdtype(np.asarray(value).dtype, np.integer),
        float: scalar and (np.issubdtype(np.asarray(value).dtype, np.integer)
                           or np.issubdtype(np.asarray(value).dtype, np.floating)),
    }[kind]
    if not ok:
        word = {str: "a string", int: "an integer", float: "a number"}[kind]
        raise UserError(f"{where} must be {word}, found {short_repr(value)}")
    return kind(value)


def optional_attr(obj, key, kind=None, default=None):
    """Like :func:`attr` but returns ``default`` when the attribute is absent."""
    return attr(obj, key, kind) if key in obj.attrs else default


def check_kind(array, kind, what) -> None:
    """Raise if ``array`` is not of ``kind`` (a key of :data:`KINDS`)."""
    test, word = KINDS[kind]
    if not test(array.dtype):
        raise UserError(f"{what} must be {word} array, found dtype {array.dtype}")


def _member(f, key, cls, word, other):
    """The required member ``key`` of ``f``, which must be a ``cls`` (an h5py Dataset or Group)."""
    try:
        if key not in f:
            raise UserError(f"missing {word} '{key}'")
        member = f[key]
    except H5_READ_ERRORS as e:
        raise UserError(f"cannot read '{key}': {one_line(e)}") from None
    if not isinstance(member, cls):
        raise UserError(f"'{key}' must be a {word}, found a {other}")
    return member


def dataset(f, key, kind=None, ndim=None) -> h5py.Dataset:
    """The required dataset ``key`` (not loaded), checked for dtype kind and number of dims."""
    d = _member(f, key, h5py.Dataset, "dataset", "group")
    if kind is not None:
        check_kind(d, kind, f"dataset '{key}'")
    if ndim is not None and d.ndim != ndim:
        raise UserError(f"dataset '{key}' must have {ndim} dimension(s), found shape {d.shape}")
    return d


def read(f, key, kind=None, ndim=None) -> np.ndarray:
    """Load the required dataset ``key`` whole (for small arrays)."""
    return read_slice(dataset(f, key, kind, ndim), slice(None))


def read_slice(d: h5py.Dataset, index) -> np.ndarray:
    """``d[index]`` with read errors (a corrupt chunk) turned into a :class:`UserError`."""
    try:
        return np.asarray(d[index])
    except H5_READ_ERRORS as e:
        raise UserError(f"cannot read dataset '{d.name.lstrip('/')}' (corrupt?): {one_line(e)}") from None


def group(f, key) -> h5py.Group:
    """The required group ``key``."""
    return _member(f, key, h5py.Group, "group", "dataset")


def write_array(parent, key, data) -> h5py.Dataset:
    """Store ``data`` under ``key`` with a Fletcher-32 checksum (HDF5 verifies it on every read,
    so a flipped byte is an error, not a number); large arrays are chunked along the first axis
    and gzipped."""
    data = np.asarray(data)
    if data.ndim == 0 or data.size == 0:
        return parent.create_dataset(key, data=data)  # nothing to checksum (and no chunks)
    if data.size < COMPRESS_MIN_SIZE:
        return parent.create_dataset(key, data=data, fletcher32=True)
    chunks = (min(len(data), CHUNK_ROWS),) + data.shape[1:] if data.ndim == 1 else True
    return parent.create_dataset(key, data=data, chunks=chunks, fletcher32=True, **GZIP)


def growing_array(parent, key, dtype, row_shape=()) -> h5py.Dataset:
    """An empty array under ``key`` that :func:`append_rows` grows along its first axis
    (chunked, gzipped, Fletcher-32 checksummed)."""
    rows = max(1, CHUNK_ROWS // int(np.prod(row_shape, dtype=np.int64)))
    return parent.create_dataset(key, shape=(0,) + tuple(row_shape), maxshape=(None,) + tuple(row_shape),
                                 dtype=dtype, chunks=(rows,) + tuple(row_shape), fletcher32=True, **GZIP)


def append_rows(dataset, values) -> None:
    """Append ``values`` along the first axis of a :func:`growing_array`."""
    n = dataset.shape[0]
    if len(values):
        dataset.resize(n + len(values), axis=0)
        dataset[n:] = values


def compact_int(bound):
    """The smallest of int16/int32/int64 that holds values in ``[0, bound]``."""
    for dtype in (np.int16, np.int32):
        if bound <= np.iinfo(dtype).max:
            return dtype
    return np.int64


def check_indptr(indptr, n, n_events, what="events/indptr") -> None:
    """A CSR row pointer for ``n`` rows over ``n_events``: 0, non-decreasing, ends at the total."""
    if indptr.ndim != 1 or len(indptr) != n + 1:
        raise UserError(f"{what} must have {n + 1} entries (samples + 1), found shape {indptr.shape}")
    if indptr[0] != 0 or indptr[-1] != n_events:
        raise UserError(f"{what} must start at 0 and end at the number of events ({n_events}), "
                        f"found {indptr[0]}..{indptr[-1]}")
    if np.any(np.diff(indptr) < 0):
        raise UserError(f"{what} must be non-decreasing")


def check_range(values, low, high, what) -> None:
    """All ``values`` lie in ``[low, high)``."""
    if len(values) and (values.min() < low or values.max() >= high):
        raise UserError(f"{what} out of range: values must lie in [{low}, {high}), "
                        f"found {values.min()}..{values.max()}")
