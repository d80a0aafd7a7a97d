"""The AEDAT 3.1 event format (iniVation's jAER/DV files; DVS Gesture's ``.aedat`` recordings),
read and written with numpy: :func:`read_aedat31` and its inverse :func:`write_aedat31`.
The DVS Gesture converter (:mod:`.convert.dvsgesture`) reads it; docs/datasets.md describes the
layout."""
from __future__ import annotations

import os
import struct

import numpy as np

from ..errors import UserError
from ..io.atomic import atomic_path, read_bytes

HEADER_END = b"#!END-HEADER"
PACKET_HEADER = struct.Struct("<hhiiiiii")  # 28 bytes, little-endian
POLARITY_EVENT = 1
POLARITY_DTYPE = np.dtype([("data", "<u4"), ("ts", "<i4")])


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
        if line == HEADER_END:
            break
    chunks, n_packets, size = [], 0, len(raw)
    while pos < size:
        if size - pos < PACKET_HEADER.size:
            raise UserError(f"{name}: truncated AEDAT file: {size - pos} trailing bytes at byte "
                            f"{pos}, less than a {PACKET_HEADER.size}-byte packet header")
        etype, _, esize, _, overflow, _, number, _ = PACKET_HEADER.unpack_from(raw, pos)
        if esize <= 0 or number < 0 or overflow < 0:
            raise UserError(f"{name}: malformed packet header at byte {pos} (eventSize {esize}, "
                            f"eventNumber {number}, eventTSOverflow {overflow})")
        start = pos + PACKET_HEADER.size
        end = start + number * esize
        if end > size:
            raise UserError(f"{name}: truncated AEDAT file: the packet at byte {pos} needs "
                            f"{number * esize} bytes of events, {size - start} remain")
        if etype == POLARITY_EVENT:
            if esize != POLARITY_DTYPE.itemsize:
                raise UserError(f"{name}: polarity packet at byte {pos} has eventSize {esize}, "
                                f"expected {POLARITY_DTYPE.itemsize}")
            ev = np.frombuffer(raw, dtype=POLARITY_DTYPE, count=number, offset=start)
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
              b"#Start-Time: 1970-01-01 00:00:00 (TZ+0000)\r\n" + HEADER_END + b"\r\n")
    parts = [header]
    for etype, esize, number, payload in other_packets:
        parts.append(PACKET_HEADER.pack(etype, 1, esize, 4, 0, number, number, number))
        parts.append(bytes(payload))
    overflow = t_us >> 31
    data = ((x << 17) | (y << 2) | ((polarity & 1) << 1) | valid.astype(np.int64)).astype("<u4")
    ts = (t_us & 0x7FFFFFFF).astype("<i4")
    cuts = np.flatnonzero(np.diff(overflow)) + 1 if n else np.zeros(0, int)
    bounds = [0, *cuts.tolist(), n]
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        for a in range(lo, hi, packet_events):
            b = min(a + packet_events, hi)
            ev = np.empty(b - a, POLARITY_DTYPE)
            ev["data"], ev["ts"] = data[a:b], ts[a:b]
            parts.append(PACKET_HEADER.pack(POLARITY_EVENT, 1, 8, 4, int(overflow[a]),
                                                  b - a, b - a, int(valid[a:b].sum())))
            parts.append(ev.tobytes())
    with atomic_path(path) as tmp:
        with open(tmp, "xb") as fh:
            fh.write(b"".join(parts))
