"""N-MNIST: the official ``Train/<digit>/*.bin`` / ``Test/<digit>/*.bin`` folders (the ``.bin``
format: :mod:`...nmnist`) to a dataset file; 34 x 34 x 2 = 2312 channels, 10 classes."""
from __future__ import annotations

import os
import time

import numpy as np

from ...errors import UserError
from ...io.dataset import FORMAT
from ...io.h5common import atomic_h5
from ...validate import integer
from .. import nmnist
from ..binning import grid
from .pipeline import (DEFAULT_WINDOW_US, ConversionReport, Stream, camera_channels, fail_or_skip,
                       finish_report, scan, write_provenance, write_strings)

NMNIST_CLASSES = 10
FIRST_SACCADE_US = 100_000    # first saccade: events with t < 100 ms (tonic's first_saccade_only)


def _sample(path, downsample, first_saccade):
    """``(t_us, unit, n_read, n_decreases, n_saccade_dropped)`` of one ``.bin`` file."""
    ev = nmnist.read_bin(path)  # names the file on a truncated / unreadable file
    t = ev["t_us"]
    n_read = len(t)
    unit = camera_channels(path, ev, nmnist.SENSOR_WIDTH, downsample, "N-MNIST ")
    decreases = nmnist.count_decreases(t)
    cut = 0
    if first_saccade:
        keep = t < FIRST_SACCADE_US
        cut = int(n_read - np.count_nonzero(keep))
        if cut:
            t, unit = t[keep], unit[keep]
    return t, unit, n_read, decreases, cut


def convert_nmnist(root, out, split="train", time_window_us=DEFAULT_WINDOW_US, n_timesteps=None,
                   first_saccade=False, downsample=1, keep_time=False, skip_bad=False,
                   progress=None) -> ConversionReport:
    """Convert ``ROOT/Train/<digit>/*.bin`` (``split="train"``) or ``ROOT/Test/...`` to the
    dataset file ``out``; one sample per file, label = the digit folder.

    Channels ``p * S * S + (y // K) * S + (x // K)`` with ``K = downsample``,
    ``S = ceil(34 / K)`` (2312 for K = 1). ``first_saccade`` keeps events at ``t < 100 ms``.
    Binning: :mod:`.pipeline` (default 10 ms windows, as many as the longest sample needs).
    ``keep_time`` stores ``events/time_us``. ``progress(done, total)`` is called after each file
    (``total`` = 2 x files when only ``n_timesteps`` is given: two passes).
    """
    t_start = time.perf_counter()
    downsample = integer("downsample factor", downsample, 1, "a positive integer")
    window, n_bins = grid(time_window_us, n_timesteps, DEFAULT_WINDOW_US)
    two_pass = window is None  # the window depends on the last event of the whole set: 2 passes
    labelled, unlabelled = nmnist.list_split(root, split)
    source = os.path.abspath(os.fspath(root))
    report = ConversionReport("nmnist", source, os.fspath(out), split=split,
                              n_classes=NMNIST_CLASSES)
    for path in unlabelled:
        fail_or_skip(UserError(f"{path}: no label: N-MNIST files must be in a digit folder "
                               f"{nmnist.SPLITS[split]}/<0-9>/"), path, skip_bad, report)
    if not labelled:
        raise UserError(f"{os.path.join(source, nmnist.SPLITS[split])}: no .bin files in the "
                        "digit folders <0-9>/")
    side = -(-nmnist.SENSOR_WIDTH // downsample)
    n_inputs = nmnist.N_POLARITIES * side * side
    labels = dict(labelled)
    window, files_read = scan(list(labels), lambda path: _sample(path, downsample, first_saccade),
                              lambda sample: [sample[0]], window, n_bins, skip_bad, report, progress)
    report.time_window_us, report.n_inputs = window, n_inputs
    files = []
    with atomic_h5(out, FORMAT) as f:
        stream = Stream(f, n_inputs, window, n_bins, keep_time)
        for path, (t, unit, n_read, decreases, cut) in files_read:
            stream.add(t, unit, labels[path])
            files.append(os.path.relpath(path, source))
            report.n_files += 1
            report.n_events_read += n_read
            report.n_dropped_saccade += cut
            report.n_decreases += decreases
            report.n_samples_nonmonotonic += decreases > 0
            if n_read == 0:
                report.empty.append(path)
        if not stream.labels:
            raise UserError(f"{source}: every .bin file of the {split} split was bad; nothing to write")
        n_timesteps_out, counts = stream.finish(NMNIST_CLASSES, f"nmnist-{split}")
        finish_report(report, stream, n_timesteps_out, counts, t_start)
        extra = {"split": split, "first_saccade": bool(first_saccade),
                 "first_saccade_end_us": FIRST_SACCADE_US if first_saccade else 0,
                 "downsample": downsample, "sensor_width": side, "sensor_height": side,
                 "n_polarities": nmnist.N_POLARITIES,
                 "channel_order": "polarity * width * height + y * width + x",
                 "n_dropped_saccade": report.n_dropped_saccade}
        write_provenance(f, report, time_window_us is not None, n_bins, two_pass, extra)
        write_strings(f.require_group("extra"), "file", files)
    report.seconds = time.perf_counter() - t_start
    return report
