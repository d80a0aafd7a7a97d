"""Python API over the forward kernel: validate once, run batches in parallel, return a Trace."""
from __future__ import annotations

from dataclasses import asdict

import numpy as np

from .compiling import announced
from .errors import UserError
from .events import EventBatch
from .kernels import forward, steps
from .kernels.bundles import Events, Run, SampleOut, compact_events, queue_flag
from .memory import check_memory, reused_empty
from .network import Network
from .parallel import for_each_chunk, use_threads
from .trace import (DEFAULT_MOMENTUM_NOISE, EVENT_FIELDS, SCHEDULE_NAMES, STOP_SCOPES, Metrics, RunSettings,
                    Trace)

SCHEDULES = dict(zip(SCHEDULE_NAMES, (forward.LAYERED, forward.RANDOM, forward.MOMENTUM)))
SCOPES = dict(zip(STOP_SCOPES, (steps.STOP_SAMPLE, steps.STOP_TIMESTEP)))
NEVER_STOP = -1  # the kernels' stop_on_output when there is no early stop (None in Python)
EVENT_BUDGET = 1 << 22      # event-buffer slots allocated per kernel call (about 100 MB)
FIRST_CAPACITY = 1 << 16    # per-sample event slots tried first; grows by 4x on overflow


def simulate(network: Network, batch: EventBatch, *, schedule: str = "momentum", group_size: int = 1,
             seed: int = 0, momentum_noise: float = DEFAULT_MOMENTUM_NOISE,
             refractory_dropout: float = 0.0, dtype: str = "float32", threads: int | None = None,
             stop_on_output: int | None = None, stop_scope: str = "sample", input_queue: bool = False) -> Trace:
    """Simulate every sample of ``batch`` asynchronously under ``schedule``; record the trace.

    ``group_size`` is F, the number of pending spikes delivered per forward step
    (``trace.UNBOUNDED`` = 0 means all of them; ignored by ``layered``). ``momentum_noise`` is
    lambda, the tie-breaking noise of ``momentum`` (0 = deterministic, ties to the lower id).
    ``refractory_dropout`` is the probability that a spike leaves its neuron non-refractory.
    Each sample's random stream is seeded from ``(seed, batch.sample_ids[b])``, so results do not
    depend on the number of ``threads`` or on batching. ``stop_on_output = D`` stops
    ``D`` forward steps after the first output spike (a decision with early exit): with
    ``stop_scope = "sample"`` the whole sample ends then; with ``"timestep"`` each timestep ends
    ``D`` steps after its own first output spike and the next one starts normally. Spikes still
    pending at a stop are never delivered, so such a trace is for evaluation, not for gradients.
    ``input_queue``: the input spikes of a timestep enter the pending queue (one item per channel,
    weighted by its count) and compete with network spikes for the F slots, instead of being
    delivered at once at step 0 (``docs/semantics.md``, "Inputs in the queue").
    """
    if not isinstance(network, Network):
        raise UserError("network must be a pyasync_snn.Network")
    network.check_fits(batch.n_inputs)
    settings = RunSettings(schedule, group_size, seed, momentum_noise, refractory_dropout, dtype,
                           stop_on_output, stop_scope, input_queue)
    use_threads(threads)
    net = network.kernel_arrays(dtype)
    bound = (network.n_neurons + input_queue * batch.n_inputs) * batch.n_timesteps  # events per sample, no dropout
    capacity = max(1, min(bound, FIRST_CAPACITY))
    parts, start = [], 0
    while start < len(batch) or not parts:
        stop = min(len(batch), start + max(1, EVENT_BUDGET // capacity))
        chunk = batch if (start, stop) == (0, len(batch)) else batch.take(start, stop)
        part = _run_kernel(net, chunk, settings, network, capacity)
        if part is None:  # a sample overflowed its buffer: retry this chunk with more room
            capacity *= 4
            continue
        parts.append(part)
        start = stop
    trace = Trace.concatenate(parts)
    if not np.all(np.isfinite(trace.v_pre)):
        raise UserError(f"membrane potentials overflowed to inf or NaN in {dtype} "
                        "(weights far too large; check the model, or run in float64)")
    return trace


def kernel_stop(stop_on_output) -> int:
    """``stop_on_output`` as the kernels take it: :data:`NEVER_STOP` for ``None``."""
    return NEVER_STOP if stop_on_output is None else int(stop_on_output)


def _run_kernel(net, batch, settings: RunSettings, network: Network, capacity):
    """One call of the batch kernel; the compacted Trace, or None if a buffer overflowed."""
    n, n_layers, n_timesteps = len(batch), len(net.sizes) - 1, batch.n_timesteps
    slots = n * capacity
    check_memory(slots * (5 * 4 + net.w.dtype.itemsize) + n * n_timesteps * 3 * 4,
                 f"simulating {n} samples of {n_timesteps} timesteps ({capacity} event slots each)")
    timestep, unit = batch.sorted_by_time()  # (after the memory check: it allocates per timestep)

    def slots_of(dtype, name):  # the same memory on every call of this thread: copied out below
        return reused_empty(f"event slots: {name}", slots, dtype)

    ev = Events(neuron=slots_of(np.int32, "neuron"), timestep=slots_of(np.int32, "timestep"),
                fired=slots_of(np.int32, "fired"), emitted=slots_of(np.int32, "emitted"),
                vpre=slots_of(net.w.dtype, "vpre"), refractory=slots_of(np.bool_, "refractory"))
    out = SampleOut(output_counts=np.zeros((n, net.sizes[-1]), np.int32),
                    spikes_per_layer=np.zeros((n, n_layers), np.int64),
                    steps_per_timestep=np.zeros((n, n_timesteps), np.int32),
                    scalars=np.zeros((n, forward.N_SCALARS), np.int64),
                    timestep_spikes_to_output=np.zeros((n, n_timesteps), np.int32),
                    timestep_spikes_to_correct=np.zeros((n, n_timesteps), np.int32))
    n_events = np.zeros(n, np.int64)
    run = Run(schedule=SCHEDULES[settings.schedule], group_size=settings.group_size or np.iinfo(np.int64).max,
              momentum_noise=settings.momentum_noise, dropout=settings.refractory_dropout,
              stop_on_output=kernel_stop(settings.stop_on_output),
              stop_scope=SCOPES[settings.stop_scope], input_queue=queue_flag(settings.input_queue))
    with announced(forward.simulate_chunk, "simulation"):
        for_each_chunk(lambda lo, hi: forward.simulate_chunk(
            net, run, batch.indptr, timestep, unit, batch.labels, batch.sample_ids, n_timesteps,
            settings.seed, capacity, ev, out, n_events, lo, hi, forward.new_scratch(net, capacity)), n)
    if np.any(n_events == forward.OVERFLOW):
        return None
    indptr = np.concatenate([[0], np.cumsum(n_events)]).astype(np.int64)
    events = Events(*(np.empty(indptr[-1], a.dtype) for a in ev))
    for_each_chunk(lambda lo, hi: compact_events(ev, capacity, indptr, events, lo, hi), n)
    scalars, steps = out.scalars, out.steps_per_timestep
    metrics = Metrics(
        labels=batch.labels.copy(), spikes_per_layer=out.spikes_per_layer, sops=scalars[:, forward.SOPS],
        steps_per_timestep=steps,
        steps_to_first_output=scalars[:, forward.STEPS_TO_FIRST_OUTPUT],
        spikes_to_first_output=scalars[:, forward.SPIKES_TO_FIRST_OUTPUT],
        steps_to_first_correct=scalars[:, forward.STEPS_TO_FIRST_CORRECT],
        spikes_to_first_correct=scalars[:, forward.SPIKES_TO_FIRST_CORRECT],
        count_prediction=np.argmax(out.output_counts, axis=1),
        first_spike_prediction=scalars[:, forward.FIRST_SPIKE_PREDICTION],
        timestep_spikes_to_output=out.timestep_spikes_to_output,
        timestep_spikes_to_correct=out.timestep_spikes_to_correct, checks=scalars[:, forward.CHECKS])
    return Trace(**asdict(settings), n_timesteps=n_timesteps, layer_sizes=tuple(network.layer_sizes),
                 network=network.spelling(), output_counts=out.output_counts,
                 indptr=indptr, metrics=metrics, **dict(zip(EVENT_FIELDS, events)))
