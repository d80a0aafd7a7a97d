#!/usr/bin/env python
"""End-to-end benchmark of ``pyasync-snn simulate`` on 1 thread, against the row-add limit.

Usage::

    python scripts/bench_end_to_end.py                        # 512 samples, momentum F=1, best of 3
    python scripts/bench_end_to_end.py --quick                # smoke test (16 samples, 1 repeat)
    python scripts/bench_end_to_end.py --schedule layered --out e2e.md

Workload: ``workload("shd", samples)`` of ``bench_simulate.py``, a 700-256-256-20 network on
SHD-like input (5% Bernoulli, 100 timesteps), float32, seed 0.

Methodology
-----------
- The model and the dataset are written to a temporary directory. One warm-up run of the CLI
  on 2 samples fills Numba's on-disk cache: compilation is not measured (only cache loading).
- Timed as subprocesses (``sys.executable -c "from pyasync_snn.cli import main; main()"``),
  wall clock, best of ``--repeats``: start-up (``--version``: interpreter + imports);
  ``simulate MODEL DATA --schedule S --group-size F --threads 1`` on 1 sample (fixed cost:
  start-up, kernel load, files), on all samples without ``--trace`` and with ``--trace T``.
- Timed in this process (``numba.set_num_threads(1)``): ``pyasync_snn.simulate(...,
  threads=1)`` on the whole batch (kernel + Python API; the CLI calls it per 256 samples),
  ``io.write_trace`` of its trace (HDF5 write) and ``io.open_dataset(DATA).take(0, n)``.
- SOPs = ``trace.metrics.sops.sum()`` (1 SOP = one weight added). Rooflines, 1 thread, with
  ``bench_simulate._roofline_batch`` (vectorized ``v[d:d+n] += W_T[j]``, float32):
  the 256-wide row-add limit replays ``SOPs / 256`` uniformly random 256-wide rows of the
  kernel's weights (layers 1 and 2), spread evenly over the samples; the mixed-row roofline
  replays exactly this configuration's per-sample, per-layer rows (``roofline_rows``).
  Repeats alternate between all measurements, so they see similar background load.
- Target (issue): end-to-end ``simulate`` at momentum F=1 >= 10% of the 256-wide limit.
"""
from __future__ import annotations

import os
import platform
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numba  # noqa: E402

from bench_simulate import (_roofline_batch, bench_parser, fmt_rate, parse_bench_args, publish,  # noqa: E402
                            roofline_rows, timed, workload)  # noqa: E402
from pyasync_snn import io, simulate  # noqa: E402

CLI = [sys.executable, "-c", "from pyasync_snn.cli import main; main()"]
TARGET = 0.10  # end-to-end fraction of the 256-wide limit, momentum F=1
WIDTH = 256


def run_cli(*args) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(CLI + [str(a) for a in args], capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout + proc.stderr)
        raise SystemExit(f"pyasync-snn {' '.join(map(str, args))} failed")
    return wall


def rows_256(network, n_samples: int, sops: int, rng):
    """``_roofline_batch`` arguments: ``sops / 256`` random 256-wide rows, even over samples."""
    net = network.kernel_arrays("float32")
    layers = [l for l in range(network.n_layers) if net.sizes[l + 1] == WIDTH]
    n_rows = np.full(n_samples, sops // WIDTH // n_samples, np.int64)
    n_rows[: sops // WIDTH % n_samples] += 1
    total = int(n_rows.sum())
    first = np.cumsum([0] + [int(net.sizes[l]) for l in layers])  # first row of each layer
    row = rng.integers(0, first[-1], total)  # uniform over all 256-wide rows
    k = np.searchsorted(first, row, side="right") - 1
    start = np.asarray(net.w_off)[layers][k] + (row - first[k]) * WIDTH
    dst = np.asarray(net.offsets)[layers][k]
    indptr = np.concatenate([[0], np.cumsum(n_rows)]).astype(np.int64)
    return (net.w, indptr, start.astype(np.int64), np.full(total, WIDTH, np.int64),
            dst.astype(np.int64), int(net.offsets[-1])), total * WIDTH


def measure(opts, tmp: str) -> dict:
    network, batch = workload("shd", opts.samples)
    model, data, trace_file = (os.path.join(tmp, f) for f in ("model.h5", "data.h5", "trace.h5"))
    io.write_model(model, network)
    io.write_dataset(data, batch, 20, name="shd-like")
    io.write_dataset(os.path.join(tmp, "one.h5"), batch.take(0, 1), 20)
    io.write_dataset(os.path.join(tmp, "warm.h5"), batch.take(0, min(2, len(batch))), 20)
    sim = ["simulate", model, data, "--schedule", opts.schedule, "--group-size", opts.group_size,
           "--threads", 1]
    run_cli(*sim[:2], os.path.join(tmp, "warm.h5"), *sim[3:], "--trace", os.path.join(tmp, "w.h5"))

    numba.set_num_threads(1)

    def simulate_all():
        return simulate(network, batch, schedule=opts.schedule, group_size=opts.group_size, seed=0, threads=1)

    def read_all():
        with io.open_dataset(data) as f:
            return f.take(0, len(f))

    simulate(network, batch.take(0, 1), schedule=opts.schedule, group_size=opts.group_size, seed=0, threads=1)
    trace = simulate_all()
    sops = int(trace.metrics.sops.sum())
    rng = np.random.default_rng(1235)
    mixed, mixed_sops = roofline_rows(network, batch, trace, rng)
    wide, wide_sops = rows_256(network, len(batch), sops, rng)
    for args in (mixed, wide):  # load the roofline kernel
        _roofline_batch(*(args[:1] + (args[1][:2],) + args[2:]), False)

    best = {}

    def keep(name, wall):
        best[name] = min(best.get(name, np.inf), wall)

    for r in range(opts.repeats):
        keep("start-up", run_cli("--version"))
        keep("fixed", run_cli(*sim[:2], os.path.join(tmp, "one.h5"), *sim[3:]))
        keep("cli", run_cli(*sim))
        keep("cli trace", run_cli(*sim, "--trace", os.path.join(tmp, f"t{r}.h5")))
        keep("read", timed(read_all)[0])
        del trace
        wall, trace = timed(simulate_all)
        keep("simulate", wall)
        keep("write", timed(lambda: io.write_trace(os.path.join(tmp, f"p{r}.h5"), trace))[0])
        for _ in range(2):
            keep("mixed", timed(lambda: _roofline_batch(*mixed, False))[0])
            keep("wide", timed(lambda: _roofline_batch(*wide, False))[0])
    return dict(best, sops=sops, mixed_sop_s=mixed_sops / best["mixed"], wide_sop_s=wide_sops / best["wide"],
                events=trace.n_events)


def report(m: dict, opts) -> str:
    sops, wide, mixed = m["sops"], m["wide_sop_s"], m["mixed_sop_s"]
    label = opts.schedule if opts.schedule == "layered" else f"{opts.schedule} F={opts.group_size}"
    rows = [
        ("start-up (`pyasync-snn --version`)", m["start-up"], False),
        ("fixed cost (`simulate` on 1 sample)", m["fixed"], False),
        ("read dataset (in process)", m["read"], False),
        ("write trace, HDF5 (in process)", m["write"], False),
        ("**end-to-end, no trace**", m["cli"], True),
        ("end-to-end, no trace, minus start-up", m["cli"] - m["start-up"], True),
        ("end-to-end, no trace, minus fixed cost", m["cli"] - m["fixed"], True),
        ("**end-to-end, `--trace`**", m["cli trace"], True),
        ("end-to-end, `--trace`, minus start-up and HDF5 write", m["cli trace"] - m["start-up"] - m["write"], True),
        ("in-process `simulate()` (kernel + Python API)", m["simulate"], True),
        (f"{WIDTH}-wide row-add limit (same SOPs)", sops / wide, True),
        ("mixed-row roofline (this configuration)", sops / mixed, True),
    ]
    fraction = sops / m["cli"] / wide
    lines = [
        f"# pyasync-snn simulate end to end: {label}, 1 thread",
        "",
        f"- 700-256-256-20 on SHD-like input, {opts.samples} samples x 100 timesteps, float32, best of "
        f"{opts.repeats}; {sops / opts.samples:.3g} SOPs and {m['events'] / opts.samples:.0f} events per sample",
        f"- machine: {platform.machine()}, {os.cpu_count()} CPUs, numba {numba.__version__}, python "
        f"{platform.python_version()}; load average (1 min) before / after: {opts.load_before:.2f} / "
        f"{os.getloadavg()[0]:.2f} (numbers are indicative)",
        "- Numba's cache was warmed first: no compilation is measured (cached kernels are loaded)",
        "",
        f"| item | seconds | SOP/s | of {WIDTH}-wide limit | of mixed-row roofline |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, wall, rated in rows:
        rate = sops / wall if rated and wall > 0 else None
        cells = ["-"] * 3 if rate is None else [fmt_rate(rate), f"{rate / wide:.1%}", f"{rate / mixed:.1%}"]
        lines.append(f"| {name} | {wall:.3f} | " + " | ".join(cells) + " |")
    verdict = "met" if fraction >= TARGET else "MISSED"
    lines += ["", f"End-to-end (no trace) = {fraction:.1%} of the {WIDTH}-wide row-add limit: target "
              f">= {TARGET:.0%} at momentum F=1 {verdict if (opts.schedule, opts.group_size) == ('momentum', 1) else '(n/a here)'}."]
    return "\n".join(lines) + "\n"


def main():
    parser = bench_parser(__doc__, 512, 16)
    parser.add_argument("--schedule", default="momentum", help="schedule (default momentum)")
    parser.add_argument("--group-size", type=int, default=1, help="F (default 1)")
    opts = parse_bench_args(parser)
    with tempfile.TemporaryDirectory(prefix="bench_e2e_") as tmp:
        publish(report(measure(opts, tmp), opts), opts.out)


if __name__ == "__main__":
    main()
