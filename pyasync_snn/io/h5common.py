"""Plumbing shared by the HDF5 formats: atomic writes, checked opening, checked reads.

Every reader turns what can go wrong with a file (missing, not HDF5, truncated, another format,
a missing or malformed object) into a one-line :class:`UserError` that names the file.
"""
from __future__ import annotations

import contextlib
import os
import re

import h5py
import numpy as np

from ..errors import UserError
from .atomic import atomic_path

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


def one_line(text) -> str:
    """``text`` with all runs of whitespace (newlines included) collapsed to one space."""
    return re.sub(r"\s+", " ", str(text)).strip()


def short_repr(value, limit=60) -> str:
    if isinstance(value, np.generic):
        value = value.item()
    text = one_line(repr(value))
    return text if len(text) <= limit else text[:limit - 3] + "..."


@contextlib.contextmanager
def atomic_h5(path, fmt):
    """Write an HDF5 file atomically: yield a new file next to ``path``, rename it on success.

    The file carries the root attributes ``format = fmt`` and ``format_version``. If the block
    raises, the temporary file is removed and ``path`` is left untouched.
    """
    with atomic_path(path) as tmp:
        try:
            f = h5py.File(tmp, "x")
        except OSError as e:
            raise UserError(f"{os.fspath(path)}: cannot write ({one_line(e)})") from None
        with f:
            f.attrs["format"] = fmt
            f.attrs["format_version"] = FORMAT_VERSION
            yield f


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
    """Store ``data`` under ``key``; large arrays are chunked along the first axis and gzipped."""
    data = np.asarray(data)
    if data.size < COMPRESS_MIN_SIZE:
        return parent.create_dataset(key, data=data)
    chunks = (min(len(data), CHUNK_ROWS),) + data.shape[1:] if data.ndim == 1 else True
    return parent.create_dataset(key, data=data, chunks=chunks, compression="gzip",
                                 compression_opts=4, shuffle=True)


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
