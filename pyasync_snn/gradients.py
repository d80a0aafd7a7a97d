"""Python API over the backward kernel: ``loss_and_grad`` (unlayered backprop)."""
from __future__ import annotations

import numpy as np

from .compiling import announced
from .errors import UserError
from .events import EventBatch
from .kernels import backward
from .kernels.bundles import Events, queue_flag
from .kernels.surrogates import LOSSES, SURROGATES
from .memory import check_memory, reused_empty
from .network import Network
from .parallel import for_each_chunk, use_threads
from .simulate import simulate
from .trace import EVENT_FIELDS, Trace
from .validate import choice

N_BLOCKS = 8  # gradient partial sums; fixed, so the reduction order never depends on threads


def loss_and_grad(network: Network, batch: EventBatch, *, trace: Trace | None = None, loss: str = "rate",
                  surrogate: str = "atan", surrogate_param: float | None = None, band: float = 0.0,
                  threads: int | None = None, gradient: str = "exact", detach_reset: bool = False,
                  **simulate_kwargs):
    """Mean loss over ``batch`` and its gradient w.r.t. every ``W_l`` (a list shaped like the weights).

    The gradient is the exact derivative of the recorded computation (``trace``), with the
    Heaviside's derivative replaced by the ``surrogate`` and silent checks treated as zero-valued
    virtual spikes (see ``kernels/backward.py``). Without ``trace``, the batch is simulated first
    with ``simulate_kwargs`` (schedule, group_size, seed, ...). ``band > 0`` skips the surrogate of
    checks with ``|v - theta| > band`` (faster, approximate); 0 is exact. ``gradient`` picks the
    graph: ``"exact"`` (virtual spikes, ``docs/semantics.md``, "Gradient") or ``"reference"`` (the
    published work's queue-entry sums); ``detach_reset`` treats the reset as a constant (see ``docs/algorithm.md``).
    The adjoints are computed in the trace's dtype.
    Raises :class:`UserError` if the trace does not replay on this network and batch.
    """
    if trace is None:
        trace = simulate(network, batch, threads=threads, **simulate_kwargs)
    _check_match(network, batch, trace)
    choice("loss", loss, LOSSES)
    choice("surrogate", surrogate, SURROGATES)
    code, default_param = SURROGATES[surrogate]
    param = default_param if surrogate_param is None else float(surrogate_param)
    if not (np.isfinite(param) and param > 0):
        raise UserError(f"surrogate parameter must be a positive number, got {param}")
    choice("gradient mode", gradient, backward.GRADIENT_MODES)
    if not (np.isfinite(band) and band >= 0):
        raise UserError(f"surrogate band must be >= 0, got {band}")
    use_threads(threads)

    net = network.kernel_arrays(trace.dtype, backward=True)
    events = Events(*(getattr(trace, name) for name in EVENT_FIELDS))
    grad = (code, param, float(band), backward.GRADIENT_MODES[gradient], bool(detach_reset))
    timestep, unit = batch.sorted_by_time()
    n = len(batch)
    n_blocks = min(N_BLOCKS, max(n, 1))
    # a dense layer 1 fed by injection: its rows (most of the weights) are summed over the whole
    # batch at once, channel by channel, from each sample's input adjoints (backward.input_rows)
    by_rows = network.convs[0] is None and not trace.input_queue
    blocks_from = int(net.sizes[0] * net.sizes[1]) if by_rows else 0  # dW_1 comes first in net.w
    if by_rows:
        check_memory(n * batch.n_timesteps * net.sizes[1] * net.w.itemsize, "the input adjoints of the gradient")
    adj_in = np.empty((n if by_rows else 0, batch.n_timesteps, net.sizes[1]), dtype=net.w.dtype)
    dw_blocks = np.empty((n_blocks, len(net.w)))
    dw = np.empty(len(net.w))
    losses = np.zeros(n)
    status = np.zeros(n, dtype=np.int64)
    capacity = log_capacity(trace, network.n_neurons)
    with announced(backward.loss_and_grad_blocks, "gradient"):
        for_each_chunk(lambda lo, hi: backward.loss_and_grad_blocks(
            net, queue_flag(trace.input_queue), batch.indptr, timestep, unit, batch.labels, batch.n_timesteps,
            trace.indptr, events, LOSSES[loss], grad, dw_blocks, blocks_from, adj_in, losses, status,
            replay_scratch(capacity, net.w.dtype), lo, hi), n_blocks, per_thread=n_blocks)
    for_each_chunk(lambda lo, hi: backward.sum_blocks(dw_blocks, dw, blocks_from + lo, blocks_from + hi),
                   len(dw) - blocks_from)
    if by_rows:
        rows, key_ptr = backward.input_rows_order(batch.indptr, timestep, unit, batch.n_timesteps, batch.n_inputs,
                                                  n_blocks)
        adj_rows = adj_in.reshape(-1, net.sizes[1])
        for_each_chunk(lambda lo, hi: backward.input_rows(rows, key_ptr, adj_rows, batch.n_timesteps, n_blocks, dw,
                                                          lo, hi), batch.n_inputs)
    bad = np.nonzero(status != backward.OK)[0]
    if len(bad):
        b = bad[0]
        raise UserError(f"the trace does not replay on this model and data: sample {b} differs at "
                        f"timestep {status[b] - 1} (a different model, data, or dtype?)")
    with np.errstate(over="ignore", invalid="ignore"):  # reported below, in one line
        dw /= max(n, 1)
    if not (np.all(np.isfinite(dw)) and np.all(np.isfinite(losses))):
        if trace.dtype == "float32" and not detach_reset and np.all(np.isfinite(losses)):
            raise UserError("the gradient overflowed float32: at small F the differentiated reset compounds "
                            "over many checks (docs/algorithm.md; use --detach-reset or --dtype float64), "
                            "or the weights are far too large")
        raise UserError(f"the loss or its gradient overflowed to inf or NaN in {trace.dtype} (weights "
                        "far too large: training diverged, try a smaller learning rate; or a damaged model)")
    grads = network.unflatten(dw)
    return float(losses.mean()) if n else 0.0, grads


def log_capacity(trace: Trace, n_neurons: int) -> int:
    """Room for the longest check log the replay of a sample of ``trace`` writes
    (``kernels.replay.replay_log``): its checks (``Metrics.checks``) plus the margin the replay
    keeps, a receive pass over every neuron per step of its busiest timestep. 0 for a trace
    that did not count its checks (older files): the log is then allocated per sample."""
    checks, steps = trace.metrics.checks, trace.metrics.steps_per_timestep
    if checks is None or not len(checks):
        return 0
    capacity = max(0, int(np.max(checks + n_neurons * (steps.max(axis=1, initial=0) + 2))))
    check_memory(capacity * (4 + 1 + 2 * 8) * use_threads(None), "the check logs of the replay")  # per thread
    return capacity


def replay_scratch(capacity: int, dtype):
    """This thread's buffers for the check log of a replay and its adjoints (``(log, adj_s)`` of
    ``kernels.backward.loss_and_grad_sample``), ``capacity`` long: the same memory for every
    sample and every call (``memory.reused_empty``), so that a long log is not faulted in from
    the operating system for each sample."""
    log = (reused_empty("replay log: neuron", capacity, np.int32), reused_empty("replay log: u", capacity, dtype),
           reused_empty("replay log: s", capacity, np.bool_))
    return log, reused_empty("replay log: adjoint of s", capacity, dtype)


def dataset_loss_and_grad(network: Network, dataset, *, trace: Trace, batch_size: int, **options):
    """Mean loss and gradient over every sample of an open dataset file (``io.DatasetFile``) and
    its ``trace``, read ``batch_size`` samples at a time (memory: one batch): the mean over batches
    weighted by their sizes. ``options`` are those of :func:`loss_and_grad`."""
    if len(dataset) != len(trace):
        raise UserError(f"the trace has {len(trace)} samples, the data has {len(dataset)}")
    total, grads = 0.0, [np.zeros(w.shape) for w in network.weights]
    for batch in dataset.iter_batches(batch_size):
        lo, hi = batch.sample_ids[0], batch.sample_ids[-1] + 1
        value, part = loss_and_grad(network, batch, trace=trace.take(lo, hi), **options)
        total += value * len(batch)
        grads = [g + p * len(batch) for g, p in zip(grads, part)]
    return total / len(trace), [g / len(trace) for g in grads]


def gradient_norms(grads) -> list:
    """The L2 norm of each layer's gradient. (``einsum``, not ``np.linalg.norm``: a BLAS call
    wakes OpenBLAS's threads, which then spin on the cores the kernels' threads need; that cost
    a training step on 2 threads more than half its time.)"""
    return [float(np.sqrt(np.einsum("i,i->", g.ravel(), g.ravel()))) for g in grads]


def _check_match(network, batch, trace):
    """Shapes and sizes of the trace must be those of the network and the batch."""
    if trace.stop_on_output is not None:
        raise UserError("the trace was recorded with stop-on-output (spikes left undelivered); "
                        "record it without --stop-on-output to compute gradients")
    network.check_recorded_on(trace.layer_sizes)
    network.check_fits(batch.n_inputs)
    network.check_labels(batch.labels)
    if len(trace) != len(batch):
        raise UserError(f"the trace has {len(trace)} samples, the data has {len(batch)}")
    if trace.n_timesteps != batch.n_timesteps:
        raise UserError(f"the trace has {trace.n_timesteps} timesteps, the data has {batch.n_timesteps}")
