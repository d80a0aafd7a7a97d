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
- ``conv``: the published N-MNIST conv stack, ``Network.xavier("2x34x34,c8k3s2,c16k3s2p1,c32k3s2p1,10",
  seed=0)`` (2312 inputs -> conv 8x16x16 -> conv 16x8x8 -> conv 32x4x4 -> dense 10), on the same
  N-MNIST-like input as ``nmnist`` (the channel numbering above is the ``(c, y, x)`` order of the
  2x34x34 input map). A spike into a conv layer delivers to its footprint (at most
  ``C_out ceil(k/s)^2`` targets) through the footprint table of ``Network.kernel_arrays``.

The dense workloads run under ``layered``, ``momentum`` with F = 1, 8, 64 and ``random`` with
F = 8, the conv workload under ``layered`` and ``momentum`` F = 1, 8 (default momentum noise,
seed 0, float32), each on 1 thread and on all threads (``numba.config.NUMBA_NUM_THREADS``).

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
- Conv layers: a spike into a conv layer adds a footprint, not a row, so the roofline replays
  those deliveries with ``_roofline_footprint_batch`` (``@njit(cache=True, parallel=True)``):
  ``acc[d + fan_target[p]] += fan_w[p]`` for every ``p`` of the footprint, over the very
  footprint tables the kernel uses (``Network.kernel_arrays``), as many spikes per sample and layer
  as the configuration delivered, uniformly random presynaptic indices in random order, one
  membrane vector per sample, ``prange`` over samples. (Random footprints need not add up to the
  simulation's SOPs, as random rows do: the roofline is a rate, adds per second.) Deliveries
  into dense layers still go through ``_roofline_batch``; a network's roofline time is the sum
  of its two parts' best times. ``footprint adds/s`` is the footprint part's own rate: the
  hardware limit of that access pattern (weights read in table order, a scatter into the
  membranes).
- For reference, the ``add_row`` / ``add_footprint`` loop column replays the same rows and
  footprints through the kernel's own ``steps.add_row`` and ``steps.add_footprint`` (which also
  marks each target's block for the receive pass), called with global offsets, as the kernel
  calls them: the ceiling of the kernel's delivery code alone.
- Targets: ``momentum`` F=1 >= 20% of the roofline, ``layered`` >= 30%; the conv workload's
  SOP/s at least that of each dense workload under the same schedule, F and threads (``vs dense``).
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
from pyasync_snn.network import presynaptic_offsets  # noqa: E402
from pyasync_snn.kernels.steps import add_footprint, add_row  # noqa: E402

N_TIMESTEPS = 100
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


# layers: the spelling of Network.xavier; schedules: (schedule, F) pairs run (default SCHEDULES);
# vs_dense: the dense workloads whose SOP/s this one must reach (same schedule, F and threads)
WORKLOADS = {
    "shd": dict(label="700-256-256-20 (SHD-like)", layers=(700, 256, 256, 20), inputs=shd_like),
    "nmnist": dict(label="2312-128-10 (N-MNIST-like)", layers=(2312, 128, 10), inputs=nmnist_like),
    "conv": dict(label="2x34x34,c8k3s2,c16k3s2p1,c32k3s2p1,10 (N-MNIST conv)",
                 layers="2x34x34,c8k3s2,c16k3s2p1,c32k3s2p1,10", inputs=nmnist_like,
                 schedules=(("layered", 1), ("momentum", 1), ("momentum", 8)), vs_dense=("shd", "nmnist")),
}


def schedules_of(name: str):
    return WORKLOADS[name].get("schedules", SCHEDULES)


def workload(name: str, n_samples: int):
    rng = np.random.default_rng(DATA_SEED)
    network = Network.xavier(WORKLOADS[name]["layers"], seed=0)
    return network, WORKLOADS[name]["inputs"](n_samples, rng)


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


def delivered(batch: EventBatch, trace) -> list:
    """Spikes delivered into layer ``l`` per sample: input events into layer 0, then the spikes
    of every non-output layer into the next."""
    spikes = trace.metrics.spikes_per_layer
    return [np.diff(batch.indptr)] + [spikes[:, l] for l in range(spikes.shape[1] - 1)]


def roofline_rows(network: Network, batch: EventBatch, trace, rng):
    """Row-add sequences with the same per-sample, per-layer counts as ``trace`` delivered into
    dense layers (conv layers receive footprints: :func:`roofline_footprints`)."""
    net = network.kernel_arrays("float32")
    w, w_off, sizes, offsets = net.w, net.w_off, net.sizes, net.offsets
    n_samples = len(batch)
    sample, start, length, dst = ([np.empty(0, np.int64)] for _ in range(4))
    for l, count in enumerate(delivered(batch, trace)):
        if network.convs[l] is not None:
            continue
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


# ---------------------------------------------------------------- roofline: footprint adds only
@njit(cache=True)
def _footprint_adds(fan_w, fan_target, p0, p1, dst, v):
    """``v[dst[k] + fan_target[p]] += fan_w[p]`` for ``p`` in ``p0[k]:p1[k]``, every k: a conv
    layer's footprint adds (the weights read in table order, a scatter into the membranes),
    nothing else. Indexed with unsigned integers, so Numba emits no negative-index wraparound
    (with signed ones the loop runs 1.6x slower, on instructions that only fix up indices)."""
    for k in range(len(p0)):
        d = np.uint64(dst[k])
        for p in range(np.uint64(p0[k]), np.uint64(p1[k])):
            v[d + np.uint64(fan_target[p])] += fan_w[p]


@njit(cache=True)
def _footprint_adds_kernel_idiom(fan_w, fan_target, p0, p1, dst, block, v, dirty):
    """The same footprint adds through the kernel's own ``steps.add_footprint`` (``count`` = 1),
    which also marks each target's block in ``dirty`` for the receive pass. For reference only."""
    for k in range(len(p0)):
        add_footprint(v[dst[k]:], fan_target[p0[k]:p1[k]], fan_w[p0[k]:p1[k]], 1, dirty[block[k]:])


@njit(cache=True, parallel=True)
def _roofline_footprint_batch(fan_w, fan_target, indptr, p0, p1, dst, block, n_neurons, n_blocks, kernel_idiom):
    """Every sample's footprint adds into its own membrane vector (``prange`` over samples)."""
    n = len(indptr) - 1
    sums = np.zeros(n)
    for b in prange(n):
        v = np.zeros(n_neurons, dtype=fan_w.dtype)
        lo, hi = indptr[b], indptr[b + 1]
        if kernel_idiom:
            dirty = np.zeros(n_blocks, np.bool_)
            _footprint_adds_kernel_idiom(fan_w, fan_target, p0[lo:hi], p1[lo:hi], dst[lo:hi], block[lo:hi], v, dirty)
        else:
            _footprint_adds(fan_w, fan_target, p0[lo:hi], p1[lo:hi], dst[lo:hi], v)
        sums[b] = v.sum()  # keeps the work observable
    return sums.sum()


def roofline_footprints(network: Network, batch: EventBatch, trace, rng):
    """Footprint-add sequences over the kernel's own footprint tables, as many spikes per sample
    and conv layer as ``trace`` delivered, from uniformly random presynaptic indices, in random
    order within a sample: ``(_roofline_footprint_batch arguments, adds)``, or ``(None, 0)`` for
    a network without conv layers."""
    net = network.kernel_arrays("float32")
    convs = [l for l, conv in enumerate(network.convs) if conv is not None]
    if not convs:
        return None, 0
    n_samples, counts = len(batch), delivered(batch, trace)
    first_pre = presynaptic_offsets(net.sizes)  # footprint index of each layer's input 0
    sample, pre, dst, block = [], [], [], []
    for l in convs:
        total = int(counts[l].sum())
        sample.append(np.repeat(np.arange(n_samples), counts[l]))
        pre.append(first_pre[l] + rng.integers(0, net.sizes[l], total))
        dst.append(np.full(total, net.offsets[l], np.int64))
        block.append(np.full(total, net.block_off[l], np.int64))
    sample, pre, dst, block = (np.concatenate(a) for a in (sample, pre, dst, block))
    order = np.lexsort((rng.random(len(sample)), sample))  # by sample, random order within
    indptr = np.concatenate([[0], np.cumsum(np.bincount(sample, minlength=n_samples))]).astype(np.int64)
    p0, p1 = net.fan_ptr[pre[order]], net.fan_ptr[pre[order] + 1]
    return (net.fan_w, net.fan_target, indptr, p0, p1, np.ascontiguousarray(dst[order]),
            np.ascontiguousarray(block[order]), int(net.offsets[-1]), int(net.block_off[-1])), int((p1 - p0).sum())


def roofline_parts(network: Network, batch: EventBatch, trace):
    """The roofline of a configuration as ``[(kernel, arguments)]`` (row adds into dense layers,
    then footprint adds into conv layers, if any), with the adds of each part."""
    rows, row_sops = roofline_rows(network, batch, trace, np.random.default_rng(DATA_SEED + 1))
    feet, foot_sops = roofline_footprints(network, batch, trace, np.random.default_rng(DATA_SEED + 2))
    parts = [(_roofline_batch, rows)] + ([(_roofline_footprint_batch, feet)] if feet is not None else [])
    return parts, [row_sops, foot_sops][:len(parts)]


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
    parts, part_sops = roofline_parts(network, batch, trace)
    if len(parts) == 1:
        assert part_sops[0] == sops, (part_sops, sops)  # same work as the simulation
    roof_sops = sum(part_sops)  # random footprints: about, not exactly, the simulation's SOPs
    del trace

    numba.set_num_threads(threads)
    for kernel, args in parts:  # warm-up
        kernel(*args, False)
        kernel(*args, True)
    # Alternate simulation and roofline repeats so both see the same background load; the
    # roofline is cheap, so it gets several runs per repeat. Best time of each part is kept.
    walls, best = [wall], {}
    per_repeat = -(-ROOFLINE_REPEATS // repeats)
    for r in range(repeats):
        if r > 0:
            walls.append(timed(run)[0])  # the previous trace is already freed
        for _ in range(per_repeat):
            for part, (kernel, args) in enumerate(parts):
                for idiom in (False, True):
                    best[part, idiom] = min(best.get((part, idiom), np.inf), timed(lambda: kernel(*args, idiom))[0])
    wall = min(walls)
    roof_wall, idiom_wall = (sum(best[part, idiom] for part in range(len(parts))) for idiom in (False, True))
    return dict(cfg, wall=wall, sops=sops, events=n_events,
                sop_s=sops / wall, events_s=n_events / wall,
                roof_sop_s=roof_sops / roof_wall, idiom_sop_s=roof_sops / idiom_wall,
                footprint_adds_s=part_sops[1] / best[1, False] if len(parts) > 1 else None,
                rss_peak_mb=rss_peak, rss_warm_mb=rss_warm, warmup_s=warmup_s,
                trace_bytes_per_event=trace_bytes / max(n_events, 1))


def warm_cache() -> None:
    """Compile (or load) every kernel specialisation once so the measured children only load."""
    for name in WORKLOADS:
        network, batch = workload(name, 1)
        for schedule, group_size in schedules_of(name):
            trace = simulate(network, batch, schedule=schedule, group_size=group_size, seed=0)
        for kernel, args in roofline_parts(network, batch, trace)[0]:
            kernel(*args, False)
            kernel(*args, True)


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


def verdict(r: dict, results: list) -> str:
    """The roofline target's verdict, and for a workload with ``vs_dense`` its SOP/s over each of
    those dense workloads' under the same schedule, F and threads (>= 1x: met)."""
    fraction, target = r["sop_s"] / r["roof_sop_s"], target_of(r)
    parts = [] if target is None else [f"{'met' if fraction >= target else 'MISSED'} (>= {target:.0%})"]
    same = {d["workload"]: d for d in results
            if (d["schedule"], d["F"], d["threads"]) == (r["schedule"], r["F"], r["threads"])}
    ratios = [(name, r["sop_s"] / same[name]["sop_s"]) for name in WORKLOADS[r["workload"]].get("vs_dense", ())
              if name in same]
    if ratios:
        met = all(x >= 1 for _, x in ratios)
        parts.append(f"vs dense: {'met' if met else 'MISSED'} ("
                     + ", ".join(f"{x:.2f}x {name}" for name, x in ratios) + ")")
    return "; ".join(parts)


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
        "- targets: `momentum` F=1 >= 20% of roofline, `layered` >= 30% of roofline; the conv "
        "network's SOP/s >= each dense network's (same schedule, F, threads)",
        "",
        "| network | schedule | F | threads | SOP/s | events/s | roofline SOP/s | fraction of roofline "
        "| target | peak RSS MB | above warm-up MB | trace B/event | SOPs/sample | events/sample "
        "| `add_row` / `add_footprint` loop SOP/s | footprint adds/s |",
        "|---|---|---|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        fraction = r["sop_s"] / r["roof_sop_s"]
        footprint = "-" if r["footprint_adds_s"] is None else fmt_rate(r["footprint_adds_s"])
        n = r["samples"]
        lines.append(
            f"| {WORKLOADS[r['workload']]['label']} | {r['schedule']} "
            f"| {'-' if r['schedule'] == 'layered' else r['F']} | {r['threads']} "
            f"| {fmt_rate(r['sop_s'])} | {fmt_rate(r['events_s'])} | {fmt_rate(r['roof_sop_s'])} "
            f"| {fraction:.1%} | {verdict(r, results)} | {r['rss_peak_mb']:.0f} "
            f"| {r['rss_peak_mb'] - r['rss_warm_mb']:.0f} | {r['trace_bytes_per_event']:.1f} "
            f"| {r['sops'] / n:.3g} | {r['events'] / n:.0f} | {fmt_rate(r['idiom_sop_s'])} | {footprint} |")
    base = min(r["rss_warm_mb"] for r in results)
    lines += [
        "",
        f"Peak RSS is the whole child process (interpreter + numpy + numba/llvmlite + loaded kernels "
        f"+ thread pool + inputs + simulate's buffers + trace); after the 1-sample warm-up it is "
        f"already >= {base:.0f} MB. Roofline: row adds only (`v[d:d+n] += W_T[j]`, float32, a loop "
        f"LLVM vectorizes), same per-sample per-layer row counts, random presynaptic rows, prange "
        f"over samples (one membrane vector each), measured at each thread count; deliveries into "
        f"conv layers are footprint adds (`v[d + fan_target[p]] += fan_w[p]` over the "
        f"kernel's footprint tables, random presynaptic indices, same per-sample per-layer spike "
        f"counts), whose own rate is `footprint adds/s`. `add_row` / `add_footprint` loop: the same "
        f"adds through the kernel's own `steps.add_row` and `steps.add_footprint`, for reference. "
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


def thread_counts() -> list:
    """The thread counts every benchmark runs: 1 and all (``numba.config.NUMBA_NUM_THREADS``)."""
    return sorted({1, numba.config.NUMBA_NUM_THREADS})


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

    subprocess.run([sys.executable, os.path.abspath(__file__), "--warm-cache"], check=True,
                   stdout=subprocess.DEVNULL)
    results = []
    for name in WORKLOADS:
        for schedule, group_size in schedules_of(name):
            for threads in thread_counts():
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
