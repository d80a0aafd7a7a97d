"""The official N-MNIST ``.bin`` event format (Orchard et al. 2015), read and written with numpy.

**Record.** Each event is 5 bytes = 40 bits, big-endian, no header:

====== ======= =========================================================
bits    field   meaning
====== ======= =========================================================
39-32   x       column, 0..255 (N-MNIST: 0..33)
31-24   y       row, 0..255 (N-MNIST: 0..33); ``y == 240`` is reserved
23      p       polarity: 1 = ON (brightness increase), 0 = OFF
22-0    ts      timestamp in microseconds, 23 bits (0 .. 2**23 - 1 = 8.39 s)
====== ======= =========================================================

**Timestamp overflow.** We follow the convention of the dataset authors' reference reader
(``eventvision.py`` of gorchard/event-Python, copied by tonic and most loaders): a record whose
``y`` byte is 240 is not an event but an *overflow marker*. Every marker adds ``2**13`` µs
(:data:`OVERFLOW_INCREMENT`) to the timestamp of every later record, and markers are removed from
the output. Decoding is vectorized: ``t_us = ts + 2**13 * (number of markers before the record)``.
Nothing else is unwrapped: a timestamp that decreases is returned as it is (real N-MNIST files are
shorter than 2**23 µs and contain no markers; :func:`count_decreases` counts decreases for callers
that want to report them). We do *not* guess wraps from decreasing timestamps, because that would
silently reorder genuinely out-of-order events.

:func:`write_bin` writes timestamps ``< 2**23`` directly. Larger timestamps are written with
``overflow="markers"`` (the default) by inserting the fewest markers that bring every stored field
into 23 bits, so that :func:`read_bin` (and the reference reader) recover them exactly; with
``overflow="error"`` they are refused. Timestamps that decrease by more than what the markers
already emitted allow cannot be encoded and raise :class:`UserError`.

**Channels.** Everywhere in pyasync-snn an event ``(x, y, p)`` of a ``width x height`` sensor is
input channel ``p * width * height + y * width + x`` (:func:`channel_index`): polarity-major, like
tonic's ``(P, H, W)`` frames flattened; the N-MNIST sensor is 34 x 34 x 2 = 2312 channels.
"""
from __future__ import annotations

import os
import re

import numpy as np

from ..errors import UserError
from ..io.atomic import atomic_path, read_bytes

SENSOR_WIDTH = 34
SENSOR_HEIGHT = 34
N_POLARITIES = 2
EVENT_BYTES = 5
TIMESTAMP_BITS = 23
TIMESTAMP_LIMIT = 1 << TIMESTAMP_BITS  # 8_388_608 µs
OVERFLOW_Y = 240
OVERFLOW_INCREMENT = 1 << 13  # µs added by each overflow marker (reference reader convention)
SPLITS = {"train": "Train", "test": "Test"}


def decode(raw: bytes | np.ndarray, name="<buffer>") -> dict:
    """Decode the bytes of a ``.bin`` file (see the module docstring); ``name`` labels errors."""
    data = np.frombuffer(raw, dtype=np.uint8) if isinstance(raw, (bytes, bytearray, memoryview)) \
        else np.asarray(raw, dtype=np.uint8)
    if data.size % EVENT_BYTES:
        raise UserError(f"{name}: truncated N-MNIST file: {data.size} bytes is not a multiple of "
                        f"{EVENT_BYTES} (the event size); {data.size % EVENT_BYTES} trailing byte(s)")
    rec = data.reshape(-1, EVENT_BYTES)
    y = rec[:, 1]
    marker = y == OVERFLOW_Y
    ts = ((rec[:, 2].astype(np.int64) & 0x7F) << 16) | (rec[:, 3].astype(np.int64) << 8) | rec[:, 4]
    if marker.any():
        ts = ts + OVERFLOW_INCREMENT * np.cumsum(marker, dtype=np.int64)
        keep = ~marker
        rec, ts, y = rec[keep], ts[keep], y[keep]
    return {"x": rec[:, 0].astype(np.int16), "y": y.astype(np.int16),
            "polarity": (rec[:, 2] >> 7).astype(np.int8), "t_us": ts}


def read_bin(path) -> dict:
    """Events of one ``.bin`` file: ``dict(x, y, polarity, t_us)`` (int16, int16, int8, int64).

    Overflow markers are applied and removed (module docstring). A missing or unreadable file, or
    one whose size is not a multiple of 5 bytes, raises :class:`UserError` naming the file.
    """
    name = os.fspath(path)
    raw = read_bytes(name, "an N-MNIST .bin file")
    return decode(raw, name)


def encode(x, y, polarity, t_us, overflow="markers") -> bytes:
    """The bytes of a ``.bin`` file holding these events (see :func:`write_bin`)."""
    if overflow not in ("markers", "error"):
        raise UserError(f"overflow must be 'markers' or 'error', got {overflow!r}")
    x, y, polarity, t_us = (np.asarray(a) for a in (x, y, polarity, t_us))
    n = len(t_us)
    for what, a in (("x", x), ("y", y), ("polarity", polarity), ("t_us", t_us)):
        if a.ndim != 1 or len(a) != n:
            raise UserError(f"{what} must be a 1-d array of {n} events, found shape {a.shape}")
        if n and not np.issubdtype(a.dtype, np.integer) and not np.issubdtype(a.dtype, np.bool_):
            raise UserError(f"{what} must hold integers, found dtype {a.dtype}")
    x, y, polarity, t_us = (a.astype(np.int64) for a in (x, y, polarity, t_us))
    if n:
        if x.min() < 0 or x.max() > 255 or y.min() < 0 or y.max() > 255:
            raise UserError("x and y must lie in [0, 255] (one byte each)")
        if np.any(y == OVERFLOW_Y):
            raise UserError(f"y = {OVERFLOW_Y} is reserved for overflow markers and cannot be written")
        if polarity.min() < 0 or polarity.max() > 1:
            raise UserError("polarity must be 0 (OFF) or 1 (ON)")
        if t_us.min() < 0:
            raise UserError("timestamps must be non-negative")
    # markers needed before each event: the fewest, non-decreasing along the file
    need = np.maximum(0, -(-(t_us - (TIMESTAMP_LIMIT - 1)) // OVERFLOW_INCREMENT))
    markers = np.maximum.accumulate(need) if n else need
    if n and markers[-1] > 0:
        if overflow == "error":
            raise UserError(f"timestamp {int(t_us.max())} µs does not fit the 23-bit field "
                            f"(limit {TIMESTAMP_LIMIT - 1} µs) and overflow='error'")
    ts = t_us - markers * OVERFLOW_INCREMENT
    if n and ts.min() < 0:
        bad = int(np.argmin(ts))
        raise UserError(f"event {bad} (t = {int(t_us[bad])} µs) comes after an event more than "
                        f"{OVERFLOW_INCREMENT} µs past the 23-bit limit; such decreasing timestamps "
                        "cannot be encoded with overflow markers")
    n_markers = np.diff(np.concatenate([[0], markers])) if n else markers
    rows = np.zeros((n + int(n_markers.sum()), EVENT_BYTES), dtype=np.uint8)
    # position of each event once its preceding markers are inserted
    pos = np.arange(n) + markers
    rows[:, 1] = OVERFLOW_Y  # every row that is not an event is a marker (x = p = ts = 0)
    rows[pos, 0] = x
    rows[pos, 1] = y
    rows[pos, 2] = (polarity << 7) | (ts >> 16)
    rows[pos, 3] = (ts >> 8) & 0xFF
    rows[pos, 4] = ts & 0xFF
    return rows.tobytes()


def write_bin(path, x, y, polarity, t_us, overflow="markers", durable=True) -> None:
    """Write events to ``path`` in the N-MNIST ``.bin`` format, atomically (temp file + rename).

    ``overflow="markers"`` encodes timestamps ``>= 2**23`` µs with overflow markers (module
    docstring); ``"error"`` refuses them. ``durable=False`` skips the fsync (scratch files).
    """
    data = encode(x, y, polarity, t_us, overflow)
    with atomic_path(path, durable=durable) as tmp:
        with open(tmp, "xb") as fh:
            fh.write(data)


def count_decreases(t_us) -> int:
    """How many events have a timestamp smaller than their predecessor's (non-monotonic)."""
    t_us = np.asarray(t_us)
    return int(np.count_nonzero(np.diff(t_us) < 0)) if len(t_us) > 1 else 0


def channel_index(x, y, polarity, width=SENSOR_WIDTH, height=SENSOR_HEIGHT) -> np.ndarray:
    """Input channel of each event: ``polarity * width * height + y * width + x`` (int64).

    Polarity-major (tonic's ``(P, H, W)`` frame flattened). Coordinates outside the sensor or a
    polarity other than 0/1 raise :class:`UserError`.
    """
    x, y, polarity = (np.asarray(a, dtype=np.int64) for a in (x, y, polarity))
    if x.size:
        if x.min() < 0 or x.max() >= width or y.min() < 0 or y.max() >= height:
            raise UserError(f"event coordinates outside the {width}x{height} sensor: "
                            f"x in {x.min()}..{x.max()}, y in {y.min()}..{y.max()}")
        if polarity.min() < 0 or polarity.max() > 1:
            raise UserError("polarity must be 0 or 1")
    return polarity * (width * height) + y * width + x


def channel_coordinates(unit, width=SENSOR_WIDTH, height=SENSOR_HEIGHT) -> tuple:
    """The inverse of :func:`channel_index`: ``(x, y, polarity)`` of each channel."""
    unit = np.asarray(unit, dtype=np.int64)
    polarity, rest = np.divmod(unit, width * height)
    y, x = np.divmod(rest, width)
    return x, y, polarity


def list_split(root, split="train") -> tuple:
    """``(labelled, unlabelled)``: ``[(path, digit)]`` of ``ROOT/Train/<digit>/*.bin`` (or
    ``Test``) sorted by digit then name, and the ``.bin`` paths that have no label (directly in
    the split folder or in a folder that is not a single digit). Hidden files (``.*``, e.g.
    macOS ``._*`` resource forks) and files not ending in ``.bin`` are ignored. Raises
    :class:`UserError` when the split folder is missing."""
    if split not in SPLITS:
        raise UserError(f"split must be one of {sorted(SPLITS)}, got {split!r}")
    base = os.path.join(os.fspath(root), SPLITS[split])
    if not os.path.isdir(base):
        raise UserError(f"{base}: no such directory (expected the official layout "
                        f"{SPLITS[split]}/<digit>/<id>.bin)")
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
