#!/usr/bin/env python
"""Performance benchmark of ``pyasync_snn.simulate``: SOP/s, events/s, peak memory, roofline.

Usage::

    python scripts/bench_simulate.py                 # full run (64 samples, best of 3)
    python scripts/bench_simulate.py --quick         # smoke test (4 samples, 1 repeat)
    python scripts/bench_simulate.py --samples 128 --out bench.md

Workloads (inputs are synthetic and deterministic, seeded, identical for every configuration):

- ``shd``: a 700-256-256-20 network (``Network.xavier(..., seed=0)``) on SHD-like input:
  100 timesteps, every (timestep, channel) spikes independently with probability 5%
  (uniform Bernoulli, about 3500 input events per sample).
- ``nmnist``: a 2312-128-10 network (``Network.xavier(..., seed=0)``) on N-MNIST-like input:
  34x34 pixels x 2 polarities = 2312 channels (channel = polarity*1156 + y*34 + x), 100
  timesteps, about 4000 input events per sample (density ~1.7%). The events are spatially
  clustered: each sample is a random "digit" of three thick strokes (~150 pixels) that moves
  along the three N-MNIST saccades (a triangle of 6-pixel sides, one side per third of the
  timesteps); each stroke pixel emits an event of random polarity at its current position
  with a fixed probability per timestep, chosen to give ~4000 events per sample.

Each workload runs under ``layered``, ``momentum`` with F = 1, 8, 64 and ``random`` with F = 8
(default momentum noise, seed 0, float32), on 1 thread and on all threads
(``numba.config.NUMBA_NUM_THREADS``).

Methodology
-----------
- Every configuration (workload, schedule, F, threads) runs in its own child process (this script
  re-invoked with ``--child``), so that its peak memory is its own. Before the children, one
  warm-up child runs every schedule once on one sample, so Numba's on-disk cache is populated and
  no child pays (or counts the memory of) LLVM compilation; it would only happen if the kernel
  source changed in between.
- In the child: build the network and the input batch, warm up with a 1-sample ``simulate`` call
  (loads the cached kernel), then time ``simulate(network, batch, schedule, F, seed=0,
  threads=...)`` on the whole batch with ``time.perf_counter``, best of ``--repeats``. The wall
  time is the whole public call: validation, sorting the input, allocating the event buffers,
  the parallel kernel, and compacting the trace. The simulation repeats alternate with the
  roofline runs (below), so both see similar background load.
- ``SOP/s`` = ``trace.metrics.sops.sum() / wall`` (synaptic operations: summed fan-out of the
  delivered spikes, input injection included); ``events/s`` = ``trace.n_events / wall``
  (delivered network spikes; input events are not counted).
- ``peak RSS`` = ``resource.getrusage(RUSAGE_SELF).ru_maxrss`` of the child, read right after the
  first full ``simulate`` call (before the roofline allocates anything; later repeats free the
  previous trace first, so they would not raise it). It includes everything in the process: the
  Python interpreter, numpy, numba/llvmlite and the loaded kernels, the Numba thread pool, the
  network and input batch, the event buffers ``simulate`` allocates (only pages actually touched
  count) and the returned trace. ``above warm-up`` is the peak minus the peak after the 1-sample
  warm-up, i.e. roughly what the full batch costs on top of the fixed overhead.
  ``trace B/event`` is the trace's own arrays (events, indptr, output counts, metrics) in bytes,
  divided by ``trace.n_events``.
- Roofline: ``_roofline_batch`` (defined below, ``@njit(cache=True, parallel=True)``) only adds
  weight rows into a membrane vector, ``v[d:d+n] += W_T[j]``, with ``W_T`` the same transposed,
  flattened float32 weights the kernel uses. For every sample it replays exactly as many row-adds
  per layer as that configuration delivered (input events into layer 1, spikes of layer l into
  layer l+1), with uniformly random presynaptic indices ``j`` and in random order, so it does the
  same number of SOPs with the same row-length mix. Samples are independent (``prange``, one
  membrane vector per sample, as in the simulator); the 1-thread roofline runs the same function
  with ``numba.set_num_threads(1)``, the all-threads roofline with all threads (a measured
  ``prange`` version, not 1-thread x threads). The inner loop runs on views indexed by the range
  variable, which LLVM vectorizes (AVX2). It is cheap, so it takes the best of at least 5 runs,
  spread over the repeats. ``fraction`` = configuration SOP/s / roofline SOP/s at the same
  thread count.
- For reference, the ``add_row loop`` column replays the same rows through the kernel's own
  ``steps.add_row`` called with global offsets, as the kernel calls it: the ceiling of the
  kernel's row-add code alone.
- Targets: ``momentum`` F=1 >= 20% of the roofline, ``layered`` >= 30%.
- The roofline's ``prange`` runs on Numba's OpenMP threads; they are told to wait passively
  (``OMP_WAIT_POLICY=PASSIVE``, unless set) so that after a roofline run they do not spin on the
  cores the simulation's threads use next (spinning cost 2-thread runs up to 30%). pyasync-snn
  itself does not use Numba's thread pool.

Numbers are indicative: other processes may share the machine.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before Numba starts its OpenMP threads

import numba  # noqa: E402
from numba import njit, prange  # noqa: E402

from pyasync_snn import EventBatch, Network, simulate  # noqa: E402
from pyasync_snn.kernels.steps import add_row  # noqa: E402

N_TIMESTEPS = 100
WORKLOADS = {
    "shd": dict(label="700-256-256-20 (SHD-like)", sizes=(700, 256, 256, 20)),
    "nmnist": dict(label="2312-128-10 (N-MNIST-like)", sizes=(2312, 128, 10)),
}
SCHEDULES = (("layered", 1), ("momentum", 1), ("momentum", 8), ("momentum", 64), ("random", 8))
TARGETS = {("momentum", 1): 0.20, ("layered", None): 0.30}  # minimum fraction of the roofline
SHD_DENSITY = 0.05
NMNIST_EVENTS = 4000
DATA_SEED = 1234
ROOFLINE_REPEATS = 5


# ---------------------------------------------------------------- synthetic inputs
def _batch(ids, timesteps, units, n_inputs) -> EventBatch:
    counts = [len(t) for t in timesteps]
    indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    return EventBatch(indptr, np.concatenate(timesteps), np.concatenate(units),
                      np.zeros(len(ids), np.int64), n_inputs, N_TIMESTEPS, np.asarray(ids))


def shd_like(n_samples: int, rng) -> EventBatch:
    """Uniform Bernoulli input: each (timestep, channel) spikes with probability 5%."""
    timesteps, units = [], []
    for _ in range(n_samples):
        t, c = np.nonzero(rng.random((N_TIMESTEPS, 700)) < SHD_DENSITY)
        timesteps.append(t)
        units.append(c)
    return _batch(range(n_samples), timesteps, units, 700)


def nmnist_like(n_samples: int, rng) -> EventBatch:
    """Spatially clustered input: a random 3-stroke shape moving along three saccades."""
    side, box = 34, 28
    # saccade path: (0,0) -> (6,3) -> (0,6) -> (0,0), one leg per third of the timesteps
    corners = np.array([[0, 0], [6, 3], [0, 6], [0, 0]], float)
    phase = np.linspace(0, 3, N_TIMESTEPS, endpoint=False)
    leg, frac = phase.astype(int), (phase % 1)[:, None]
    offsets = np.rint(corners[leg] + frac * (corners[leg + 1] - corners[leg])).astype(int)
    timesteps, units = [], []
    for _ in range(n_samples):
        strokes = []
        for _ in range(3):
            p0, p1 = rng.uniform(0, box - 2, 2), rng.uniform(0, box - 2, 2)
            line = p0 + np.linspace(0, 1, 48)[:, None] * (p1 - p0)
            strokes += [line, line + [1, 0], line + [0, 1]]  # about 2 pixels thick
        shape = np.unique(np.rint(np.concatenate(strokes)).astype(int), axis=0)  # (P, 2) as (y, x)
        p = min(1.0, NMNIST_EVENTS / (N_TIMESTEPS * len(shape)))
        t, k = np.nonzero(rng.random((N_TIMESTEPS, len(shape))) < p)
        yx = shape[k] + offsets[t]
        polarity = rng.integers(0, 2, len(t))
        timesteps.append(t)
        units.append(polarity * side * side + yx[:, 0] * side + yx[:, 1])
    return _batch(range(n_samples), timesteps, units, 2 * side * side)


def workload(name: str, n_samples: int):
    rng = np.random.default_rng(DATA_SEED)
    network = Network.xavier(WORKLOADS[name]["sizes"], seed=0)
    batch = shd_like(n_samples, rng) if name == "shd" else nmnist_like(n_samples, rng)
    return network, batch


# ---------------------------------------------------------------- roofline: row adds only
@njit(cache=True)
def _row_adds(w, start, length, dst, v):
    """``v[dst[k] : dst[k]+length[k]] += w[start[k] : start[k]+length[k]]`` for every k.

    Written on views indexed by the range variable, so LLVM vectorizes the inner loop (AVX2).
    """
    for k in range(len(start)):
        s, n, d = start[k], length[k], dst[k]
        vv, ww = v[d:d + n], w[s:s + n]
        for j in range(n):
            vv[j] += ww[j]


@njit(cache=True)
def _row_adds_kernel_idiom(w, start, length, dst, v):
    """The same row adds through the kernel's own ``steps.add_row`` (``count`` = 1).

    For reference only: it shows the ceiling of the kernel's current row-add code (which LLVM
    does not vectorize: signed global indices with wraparound, and an integer ``count`` factor).
    """
    for k in range(len(start)):
        add_row(v, dst[k], w, start[k], length[k], 1)


@njit(cache=True, parallel=True)
def _roofline_batch(w, indptr, start, length, dst, n_neurons, kernel_idiom):
    """Every sample's row adds into its own membrane vector (``prange`` over samples)."""
    n = len(indptr) - 1
    sums = np.zeros(n)
    for b in prange(n):
        v = np.zeros(n_neurons, dtype=w.dtype)
        lo, hi = indptr[b], indptr[b + 1]
        if kernel_idiom:
            _row_adds_kernel_idiom(w, start[lo:hi], length[lo:hi], dst[lo:hi], v)
        else:
            _row_adds(w, start[lo:hi], length[lo:hi], dst[lo:hi], v)
        sums[b] = v.sum()  # keeps the work observable
    return sums.sum()


def roofline_rows(network: Network, batch: EventBatch, trace, rng):
    """Row-add sequences with the same per-sample, per-layer counts as ``trace`` delivered."""
    net = network.kernel_arrays("float32")
    w, w_off, sizes, offsets = net.w, net.w_off, net.sizes, net.offsets
    n_samples, n_layers = len(batch), network.n_layers
    # rows of layer l (0 = input) per sample: input events, then spikes of non-output layers
    rows = [np.diff(batch.indptr)] + [trace.metrics.spikes_per_layer[:, l] for l in range(n_layers - 1)]
    sample, start, length, dst = [], [], [], []
    for l, count in enumerate(rows):
        n_pre, n_post, total = sizes[l], sizes[l + 1], int(count.sum())
        pre = rng.integers(0, n_pre, total)
        sample.append(np.repeat(np.arange(n_samples), count))
        start.append(w_off[l] + pre * n_post)
        length.append(np.full(total, n_post, np.int64))
        dst.append(np.full(total, offsets[l], np.int64))
    sample, start, length, dst = (np.concatenate(a) for a in (sample, start, length, dst))
    order = np.lexsort((rng.random(len(sample)), sample))  # by sample, random order within
    indptr = np.concatenate([[0], np.cumsum(np.bincount(sample, minlength=n_samples))])
    return (w, indptr.astype(np.int64), np.ascontiguousarray(start[order]),
            np.ascontiguousarray(length[order]), np.ascontiguousarray(dst[order]),
            int(offsets[-1])), int(length.sum())


def timed(fn):
    t0 = time.perf_counter()
    result = fn()
    return time.perf_counter() - t0, result


def max_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


# ---------------------------------------------------------------- one configuration (child)
def run_config(cfg: dict) -> dict:
    network, batch = workload(cfg["workload"], cfg["samples"])
    schedule, group_size, threads, repeats = cfg["schedule"], cfg["F"], cfg["threads"], cfg["repeats"]

    def run():
        return simulate(network, batch, schedule=schedule, group_size=group_size, seed=0, threads=threads)

    # warm-up: load (or compile) the kernel; the peak RSS so far is the fixed overhead
    warmup_s, _ = timed(lambda: simulate(network, batch.take(0, 1), schedule=schedule, group_size=group_size,
                                         seed=0, threads=threads))
    rss_warm = max_rss_mb()
    wall, trace = timed(run)
    rss_peak = max_rss_mb()  # peak of one full call, before the roofline allocates anything

    sops, n_events = int(trace.metrics.sops.sum()), trace.n_events
    trace_bytes = sum(a.nbytes for a in vars(trace).values() if isinstance(a, np.ndarray))
    trace_bytes += sum(a.nbytes for a in vars(trace.metrics).values() if isinstance(a, np.ndarray))
    args, roof_sops = roofline_rows(network, batch, trace, np.random.default_rng(DATA_SEED + 1))
    assert roof_sops == sops, (roof_sops, sops)  # same work as the simulation
    del trace

    numba.set_num_threads(threads)
    small = (args[0], args[1][:2]) + args[2:]
    _roofline_batch(*small, False)  # warm-up
    _roofline_batch(*small, True)
    # Alternate simulation and roofline repeats so both see the same background load; the
    # roofline is cheap, so it gets several runs per repeat. Best time of each is kept.
    walls, roof_walls, idiom_walls = [wall], [], []
    per_repeat = -(-ROOFLINE_REPEATS // repeats)
    for r in range(repeats):
        if r > 0:
            walls.append(timed(run)[0])  # the previous trace is already freed
        for _ in range(per_repeat):
            roof_walls.append(timed(lambda: _roofline_batch(*args, False))[0])
            idiom_walls.append(timed(lambda: _roofline_batch(*args, True))[0])
    wall = min(walls)
    return dict(cfg, wall=wall, sops=sops, events=n_events,
                sop_s=sops / wall, events_s=n_events / wall,
                roof_sop_s=roof_sops / min(roof_walls), idiom_sop_s=roof_sops / min(idiom_walls),
                rss_peak_mb=rss_peak, rss_warm_mb=rss_warm, warmup_s=warmup_s,
                trace_bytes_per_event=trace_bytes / max(n_events, 1))


def warm_cache() -> None:
    """Compile (or load) every kernel specialisation once so the measured children only load."""
    for name in WORKLOADS:
        network, batch = workload(name, 1)
        for schedule, group_size in SCHEDULES:
            trace = simulate(network, batch, schedule=schedule, group_size=group_size, seed=0)
        args, _ = roofline_rows(network, batch, trace, np.random.default_rng(0))
        _roofline_batch(*args, False)
        _roofline_batch(*args, True)


def in_child(payload: str):
    """Run this script again in a fresh interpreter; return its result (the last stdout line)."""
    proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", payload],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout + proc.stderr)
        raise SystemExit(f"child failed: {payload}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------- report
def fmt_rate(x: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if x >= scale * 0.9995:  # so that 999.96e6 prints as 1 G, not 1e+03 M
            return f"{x / scale:.3g} {unit}"
    return f"{x:.3g}"


def target_of(r: dict):
    for (schedule, group_size), fraction in TARGETS.items():
        if r["schedule"] == schedule and group_size in (None, r["F"]):
            return fraction
    return None


def report(results: list, opts) -> str:
    lines = [
        "# pyasync_snn simulate benchmark",
        "",
        f"- machine: {platform.machine()}, {os.cpu_count()} CPUs, numba {numba.__version__}, "
        f"NUMBA_NUM_THREADS={numba.config.NUMBA_NUM_THREADS}, python {platform.python_version()}",
        f"- {opts.samples} samples x {N_TIMESTEPS} timesteps per workload, float32, best of "
        f"{opts.repeats}; wall time = whole `simulate()` call",
        f"- load average (1 min) before / after: {opts.load_before:.2f} / {os.getloadavg()[0]:.2f} "
        f"(other processes share the machine: numbers are indicative)",
        "- targets: `momentum` F=1 >= 20% of roofline, `layered` >= 30% of roofline",
        "",
        "| network | schedule | F | threads | SOP/s | events/s | roofline SOP/s | fraction of roofline "
        "| target | peak RSS MB | above warm-up MB | trace B/event | SOPs/sample | events/sample "
        "| `add_row` loop SOP/s |",
        "|---|---|---|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        fraction = r["sop_s"] / r["roof_sop_s"]
        target = target_of(r)
        verdict = "" if target is None else f"{'met' if fraction >= target else 'MISSED'} (>= {target:.0%})"
        n = r["samples"]
        lines.append(
            f"| {WORKLOADS[r['workload']]['label']} | {r['schedule']} "
            f"| {'-' if r['schedule'] == 'layered' else r['F']} | {r['threads']} "
            f"| {fmt_rate(r['sop_s'])} | {fmt_rate(r['events_s'])} | {fmt_rate(r['roof_sop_s'])} "
            f"| {fraction:.1%} | {verdict} | {r['rss_peak_mb']:.0f} "
            f"| {r['rss_peak_mb'] - r['rss_warm_mb']:.0f} | {r['trace_bytes_per_event']:.1f} "
            f"| {r['sops'] / n:.3g} | {r['events'] / n:.0f} | {fmt_rate(r['idiom_sop_s'])} |")
    base = min(r["rss_warm_mb"] for r in results)
    lines += [
        "",
        f"Peak RSS is the whole child process (interpreter + numpy + numba/llvmlite + loaded kernels "
        f"+ thread pool + inputs + simulate's buffers + trace); after the 1-sample warm-up it is "
        f"already >= {base:.0f} MB. Roofline: row adds only (`v[d:d+n] += W_T[j]`, float32, a loop "
        f"LLVM vectorizes), same per-sample per-layer row counts, random presynaptic rows, prange "
        f"over samples (one membrane vector each), measured at each thread count. `add_row` loop: "
        f"the same row adds through the kernel's own `steps.add_row`, for reference. "
        f"Events = delivered network spikes (inputs not counted).",
    ]
    return "\n".join(lines) + "\n"


def bench_parser(doc: str, samples: int, quick_samples: int) -> argparse.ArgumentParser:
    """The options every benchmark shares: --quick, --samples, --repeats, --out."""
    parser = argparse.ArgumentParser(description=doc.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help=f"smoke test: {quick_samples} samples, 1 repeat")
    parser.add_argument("--samples", type=int, help=f"samples (default {samples}, quick {quick_samples})")
    parser.add_argument("--repeats", type=int, help="timed repeats, best kept (default 3, quick 1)")
    parser.add_argument("--out", help="also write the Markdown report to this file")
    parser.set_defaults(sample_defaults=(samples, quick_samples))
    return parser


def parse_bench_args(parser: argparse.ArgumentParser):
    """Parse, then fill --samples and --repeats from --quick and note the load average."""
    opts = parser.parse_args()
    samples, quick_samples = opts.sample_defaults
    opts.samples = opts.samples or (quick_samples if opts.quick else samples)
    opts.repeats = opts.repeats or (1 if opts.quick else 3)
    opts.load_before = os.getloadavg()[0]
    return opts


def publish(text: str, out) -> None:
    """Print the Markdown report, and write it to ``out`` when given."""
    print(text)
    if out:
        with open(out, "w") as f:
            f.write(text)


def main():
    parser = bench_parser(__doc__, 64, 4)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--warm-cache", action="store_true", help=argparse.SUPPRESS)
    opts = parse_bench_args(parser)

    if opts.warm_cache:
        warm_cache()
        print("{}")
        return
    if opts.child:
        print(json.dumps(run_config(json.loads(opts.child))))
        return

    thread_counts = sorted({1, numba.config.NUMBA_NUM_THREADS})

    subprocess.run([sys.executable, os.path.abspath(__file__), "--warm-cache"], check=True,
                   stdout=subprocess.DEVNULL)
    results = []
    for name in WORKLOADS:
        for schedule, group_size in SCHEDULES:
            for threads in thread_counts:
                cfg = dict(workload=name, schedule=schedule, F=group_size, threads=threads,
                           samples=opts.samples, repeats=opts.repeats)
                r = in_child(json.dumps(cfg))
                print(f"  {name} {schedule} F={group_size} threads={threads}: "
                      f"{fmt_rate(r['sop_s'])}SOP/s, {r['sop_s'] / r['roof_sop_s']:.1%} of roofline",
                      file=sys.stderr, flush=True)
                results.append(r)
    publish(report(results, opts), opts.out)


if __name__ == "__main__":
    main()
