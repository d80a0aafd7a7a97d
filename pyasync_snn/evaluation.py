"""Evaluation: a network run over a whole dataset under one schedule, summarised.

``docs/training.md`` ("``evaluate``") is the user-level description; the metrics are those of
``docs/semantics.md``.
"""
from __future__ import annotations

import math
import os

import numpy as np

from .errors import UserError
from .io.dataset import open_dataset
from .kernels.surrogates import LOSSES, trace_losses
from .network import Network
from .neurobench import effective_synops, fanouts, summarise
from .simulate import simulate
from .trace import Metrics, Trace
from .validate import choice, integer

EVAL_BATCH_SIZE = 256
DEFAULT_LOSS = "count"  # of training, and of the loss that evaluation reports
EVAL_DTYPE = "float32"  # evaluation runs in simulate's default precision


def loss_from_trace(network: Network, trace: Trace, labels, loss: str = DEFAULT_LOSS) -> np.ndarray:
    """Per-sample loss of a recorded run, without the backward pass (the same kernel code as
    :func:`~pyasync_snn.gradients.loss_and_grad` uses for its loss)."""
    choice("loss", loss, LOSSES)
    network.check_labels(labels)
    out_lo = int(network.layer_offsets()[-2])
    return trace_losses(trace.indptr, trace.neuron, trace.timestep, out_lo, network.n_outputs,
                        trace.n_timesteps, np.asarray(labels, dtype=np.int64), LOSSES[loss])


def evaluate(network: Network, dataset_path, *, schedule: str, group_size: int, seed: int = 0,
             stop_on_output: int | None = None, batch_size: int = EVAL_BATCH_SIZE, loss: str = DEFAULT_LOSS,
             threads: int | None = None, stop_scope: str = "sample", input_queue: bool = False) -> dict:
    """Simulate every sample of the dataset file under ``schedule``/``group_size``; summarise.

    Returns :meth:`Metrics.summary` over all samples (``accuracy``, ``first_spike_accuracy``,
    ``spikes_per_sample``, ``sops_per_sample``, ``steps_to_first_output``,
    ``spikes_to_first_output``, ...) plus ``loss``, the mean per-sample ``loss`` (see
    :func:`loss_from_trace`), and the NeuroBench metrics of :mod:`pyasync_snn.neurobench`
    (``synaptic_operations``: a dict of ``Effective_MACs``, ``Effective_ACs`` and ``Dense`` per
    sample; ``activation_sparsity``, ``connection_sparsity``, ``footprint`` in bytes,
    ``parameter_count``; the run is in float32). ``stop_on_output`` and ``stop_scope`` are passed to :func:`simulate`
    only when a delay is given (stop that many forward steps after the first output spike of the
    sample, or of each timestep). Under a stop, ``loss`` is NaN: the trace holds only delivered
    spikes, so the per-timestep output counts of the loss are not known (the accuracies and
    latencies count every spike that fired, from the kernel's own counters). The result does not
    depend on ``batch_size`` or ``threads``: each sample's random stream is seeded from
    ``(seed, its index in the file)``. ``input_queue``: inputs compete for the F slots (:func:`simulate`).
    """
    with open_dataset(dataset_path) as data:
        network.check_fits(data.n_inputs, data.n_classes, os.fspath(dataset_path))
        return evaluate_source(network, data, schedule, group_size, seed, stop_on_output, batch_size, loss,
                               threads, stop_scope, input_queue)


def evaluate_source(network, source, schedule, group_size, seed=0, stop_on_output=None,
                    batch_size=EVAL_BATCH_SIZE, loss=DEFAULT_LOSS, threads=None, stop_scope="sample",
                    input_queue=False, neurobench=True) -> dict:
    """:func:`evaluate` of an open :class:`~pyasync_snn.io.DatasetFile` or an :class:`EventBatch`;
    without the NeuroBench metrics when not ``neurobench`` (training's per-epoch test passes)."""
    batch_size = integer("batch size", batch_size, 1)
    choice("loss", loss, LOSSES)
    if len(source) == 0:
        raise UserError("the dataset has no samples to evaluate")
    extra = {} if stop_on_output is None else {"stop_on_output": stop_on_output, "stop_scope": stop_scope}
    metrics, losses, effective = [], [], []
    fan = fanouts(network, EVAL_DTYPE) if neurobench else None
    for start in range(0, len(source), batch_size):
        stop = min(start + batch_size, len(source))
        batch = source.take(start, stop)
        trace = simulate(network, batch, schedule=schedule, group_size=group_size, seed=seed, threads=threads,
                         input_queue=input_queue, dtype=EVAL_DTYPE, **extra)
        metrics.append(trace.metrics)
        if neurobench:
            effective.append(effective_synops(network, trace, batch, fan))
        if stop_on_output is None:
            losses.append(loss_from_trace(network, trace, batch.labels, loss))
    m = Metrics.concatenate(metrics)
    summary = m.summary()
    summary["loss"] = float(np.concatenate(losses).mean()) if losses else math.nan
    if neurobench:
        acs, macs = (np.concatenate(a) for a in zip(*effective))
        summary.update(summarise(network, m.spikes_per_layer, acs, macs, source.n_timesteps, EVAL_DTYPE))
    return summary
