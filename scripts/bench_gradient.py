"""Benchmark of the backward pass (unlayered backprop) against the forward it differentiates.

For the benchmark workloads of ``bench_simulate.py`` (``WORKLOADS``: 700-256-256-20 on SHD-like
input, 2312-128-10 and the N-MNIST conv stack 2x34x34,c8k3s2,c16k3s2p1,c32k3s2p1,10 on N-MNIST-like
input), under ``momentum`` F = 1, F = 8 and ``layered``, on 1 thread and on all threads
(``numba.config.NUMBA_NUM_THREADS``):

- forward time (``simulate``) and backward time (``loss_and_grad`` on the recorded trace, which
  includes its replay), best of ``--repeats``, after a warm-up;
- the backward's working memory per sample, computed from the buffers it allocates: the log of
  every check of the sample (13 bytes per check in float32) and the gradient blocks; and that
  memory per recorded event;
- the process's peak RSS (interpreter, Numba, data and traces included);
- the *work* the exact backward cannot avoid, against the forward's (``work ratio``): the forward
  does its SOPs (weights added); the backward replays them, adds a row of ``dW`` per input event
  and per real spike (the input's and each spike's fan-out) and computes ``sum_i W_ij m_i`` over
  the fan-out of every real spike *and of every silent check* of a hidden layer (its virtual
  spike, docs/algorithm.md). At sparse activity most checks are silent, so this ratio is large,
  and ``backward / forward`` in time is the work ratio times ``time per op``: the backward's
  seconds per unit of work over the forward's seconds per SOP;
- ``replay / backward`` (1 thread): the share of the backward spent replaying the forward to log
  its checks (``timestep_layout`` and ``replay_log`` per sample, as the backward runs them); the
  rest is the reverse sweep and the rows of ``dW_1``.

Usage: ``python scripts/bench_gradient.py [--samples 16] [--repeats 3] [--quick] [--out FILE]``.
"""
import resource
import sys
import time

import numpy as np

# bench_simulate first: it puts this checkout's pyasync_snn on sys.path
from bench_simulate import WORKLOADS, bench_parser, parse_bench_args, publish, thread_counts, workload
from pyasync_snn import simulate
from pyasync_snn.gradients import N_BLOCKS, log_capacity, loss_and_grad, replay_scratch
from pyasync_snn.kernels.bundles import Events, events_slice, queue_flag
from pyasync_snn.kernels.replay import replay_log, timestep_layout
from pyasync_snn.neurobench import fanouts
from pyasync_snn.trace import EVENT_FIELDS

SCHEDULES = (("momentum", 1), ("momentum", 8), ("layered", 1))


def best_time(fn, repeats):
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def working_memory(network, trace):
    """Bytes the backward allocates per sample (largest sample), from the kernel's buffer sizes:
    the check log (neuron int32, ``u`` and ``adj_s`` in the run's dtype, ``s``) and the event ->
    check index; plus the gradient blocks shared by the batch."""
    itemsize = np.dtype(trace.dtype).itemsize
    per_check = 4 + 2 * itemsize + 1
    most = max(int(c) * per_check + 8 * n for c, n in zip(trace.metrics.checks, np.diff(trace.indptr)))
    blocks = min(N_BLOCKS, len(trace))
    return most + blocks * sum(w.size for w in network.weights) * 8 / len(trace)


def replays(network, batch, trace):
    """Replay every sample of ``trace`` as the backward does (``timestep_layout`` and
    ``replay_log``, 1 thread); yields ``(b, neuron, fired, n_checks)`` of each sample's check log
    (in buffers the next sample reuses)."""
    net = network.kernel_arrays(trace.dtype)
    events = Events(*(getattr(trace, name) for name in EVENT_FIELDS))
    timestep, unit = batch.sorted_by_time()
    log, _ = replay_scratch(log_capacity(trace, network.n_neurons), net.w.dtype)  # as the backward's
    for b in range(len(batch)):
        i0, i1 = batch.indptr[b], batch.indptr[b + 1]
        ev = events_slice(events, trace.indptr[b], trace.indptr[b + 1])
        layout = timestep_layout(ev, timestep[i0:i1], batch.n_timesteps)
        (neuron, _, fired), step_ptr, _, status = replay_log(net, queue_flag(trace.input_queue), timestep[i0:i1],
                                                             unit[i0:i1], batch.n_timesteps, ev, *layout, log)
        assert status == 0
        yield b, neuron, fired, step_ptr[-1]


def work(network, batch, trace):
    """``(forward work, backward work)`` summed over the batch, in weights touched (see the module
    docstring). The checks come from the replay the backward itself runs."""
    fan = fanouts(network, trace.dtype).targets
    n_inputs = network.layer_sizes[0]
    _, unit = batch.sorted_by_time()
    backward = 0
    for b, neuron, fired, n_checks in replays(network, batch, trace):
        reach = fan[n_inputs + neuron[:n_checks]]
        backward += int(fan[unit[batch.indptr[b]:batch.indptr[b + 1]]].sum()) + \
            int(reach.sum() + reach[fired[:n_checks]].sum())
    forward = int(trace.metrics.sops.sum())
    return forward, forward + backward


def main():
    opts = parse_bench_args(bench_parser(__doc__, 16, 2))
    rows = ["| network | schedule | F | threads | events/sample | forward s | backward s | backward / forward "
            "| replay / backward | work ratio | time per op | backward memory / sample (MB) | bytes / event |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name in WORKLOADS:
        network, batch = workload(name, opts.samples)
        for schedule, f in SCHEDULES:
            simulate(network, batch.take(0, 1), schedule=schedule, group_size=f)  # warm-up (compile / load cache)
            loss_and_grad(network, batch.take(0, 1), schedule=schedule, group_size=f, detach_reset=True)
            for threads in thread_counts():
                t_fwd, trace = best_time(lambda: simulate(network, batch, schedule=schedule, group_size=f, seed=0,
                                                          threads=threads), opts.repeats)
                t_bwd, _ = best_time(lambda: loss_and_grad(network, batch, trace=trace, detach_reset=True,
                                                           threads=threads), opts.repeats)
                per_sample = working_memory(network, trace)
                events = trace.n_events / len(batch)
                ratio = np.divide(*work(network, batch, trace)[::-1])
                replay = "-"
                if threads == 1:
                    t_replay, _ = best_time(lambda: sum(1 for _ in replays(network, batch, trace)), opts.repeats)
                    replay = f"{t_replay / t_bwd:.0%}"
                rows.append(f"| {WORKLOADS[name]['label']} | {schedule} | {'-' if schedule == 'layered' else f} "
                            f"| {threads} | {events:.0f} | {t_fwd:.3f} | {t_bwd:.3f} | {t_bwd / t_fwd:.1f}x | {replay} "
                            f"| {ratio:.1f}x | {t_bwd / t_fwd / ratio:.2f} "
                            f"| {per_sample / 1e6:.2f} | {per_sample / max(events, 1):.0f} |")
                print(rows[-1], flush=True)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    table = "\n".join(rows) + f"\n\nPeak RSS of the benchmark process: {peak:.0f} MB; {opts.samples} samples.\n"
    publish(table, opts.out)


if __name__ == "__main__":
    sys.exit(main())
