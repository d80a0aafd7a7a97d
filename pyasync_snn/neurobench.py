"""NeuroBench metrics of an evaluation, mapped onto this simulator (``docs/semantics.md``,
"NeuroBench metrics").

The names, keys and normalisations are NeuroBench's (``neurobench.metrics``: the workload metrics
``synaptic_operations`` and ``activation_sparsity``, the static metrics ``connection_sparsity``,
``footprint`` and ``parameter_count``). Notation: ``n_0`` input channels, ``n_l`` neurons of
layer ``l = 1..L`` (``N = n_1 + ... + n_L`` non-input neurons), ``T`` timesteps per sample, ``B``
samples. A *presynaptic index* ``p`` is an input channel ``c`` (``p = c``) or a non-input neuron
with global id ``i`` (``p = n_0 + i``), as in the kernel's footprint tables.

- ``synaptic_operations``: a dict, per sample averaged over the ``B`` samples (NeuroBench divides
  its totals by the number of samples):

  - ``Effective_ACs``: ``sum`` over delivered items with a binary activation (a network spike, or
    an input channel sending a count of 1) of ``nonzero(p)``, the targets of ``p`` reached through
    a **non-zero** weight (a dense column's non-zero entries, a conv footprint's non-zero taps);
  - ``Effective_MACs``: the same over input items with a count ``n > 1`` (the kernel adds
    ``n * w`` in one multiply-accumulate per target);
  - ``Dense``: ``T * sum_p targets(p)``: every connection used once per timestep, zero
    activations and zero weights included (``n_{l-1} * n_l`` per dense layer, the in-bounds
    taps of every output position of a conv layer), whatever ran.

  ``targets(p)`` is what ``Metrics.sops`` counts per spike: with no zero weight and no repeated
  input pair, ``Effective_ACs`` equals ``sops`` (checked: :func:`effective_synops` recomputes the
  kernel's ``sops`` from the same items and refuses a mismatch).
- ``activation_sparsity``: ``1 - S / (B * N * T)`` with ``S`` the network spikes fired (every
  non-input layer, output included; dropped spikes of an early stop count, they fired). Without
  refractory dropout (evaluation has none) a neuron fires at most once per timestep, so ``S`` is
  the number of non-zero activations of NeuroBench's ratio. The ratio of totals over all samples
  equals the mean of the per-sample ratios (every sample has ``N * T`` activations).
- ``connection_sparsity``: the fraction of weights (dense matrices and conv kernels, element by
  element, in the run's dtype) equal to zero. Static.
- ``parameter_count``: the number of weights (the trained parameters; no biases). Static.
- ``footprint``: bytes of the parameters and fixed neuron constants in the run's dtype:
  ``(parameter_count + 2) * itemsize`` (the weights, one threshold, one beta). Per-inference state
  (membranes, refractory flags, the queue) is not counted. Static.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .network import Network, presynaptic_offsets

KEYS = ("synaptic_operations", "activation_sparsity", "connection_sparsity", "footprint", "parameter_count")
SYNOPS_KEYS = ("Effective_MACs", "Effective_ACs", "Dense")


def flat(metrics: dict) -> dict:
    """``metrics`` (:func:`summarise`'s keys) with ``synaptic_operations`` spread into
    ``synaptic_operations_Effective_ACs``, ...: the columns of the study's ``results.csv``."""
    out = {k: v for k, v in metrics.items() if k != "synaptic_operations"}
    out.update({f"synaptic_operations_{k}": v for k, v in metrics["synaptic_operations"].items()})
    return out


FLAT_KEYS = tuple(f"synaptic_operations_{k}" for k in SYNOPS_KEYS) + KEYS[1:]


@dataclass(frozen=True)
class Fanout:
    """Per presynaptic index: ``targets`` (neurons a spike of it reaches, the kernel's SOPs per
    spike; 0 for output neurons) and ``nonzero`` (those reached through a non-zero weight)."""

    targets: np.ndarray
    nonzero: np.ndarray


def fanouts(network: Network, dtype="float32") -> Fanout:
    """The :class:`Fanout` of ``network`` run in ``dtype`` (a weight that rounds to zero in it is zero)."""
    sizes = network.layer_sizes
    first = presynaptic_offsets(sizes)
    targets = np.zeros(first[-1], np.int64)
    nonzero = np.zeros(first[-1], np.int64)
    net = network.kernel_arrays(dtype) if any(c is not None for c in network.convs) else None
    for l, (w, conv) in enumerate(zip(network.weights, network.convs)):
        lo, hi = first[l], first[l + 1]
        if conv is None:
            targets[lo:hi] = w.shape[0]
            nonzero[lo:hi] = np.count_nonzero(np.asarray(w, dtype=dtype), axis=0)
        else:
            ptr = net.fan_ptr[lo:hi + 1]
            nz = np.concatenate([[0], np.cumsum(net.fan_w != 0)])
            targets[lo:hi] = np.diff(ptr)
            nonzero[lo:hi] = np.diff(nz[ptr])
    return Fanout(targets, nonzero)


def parameter_count(network: Network) -> int:
    """The number of weights."""
    return int(sum(w.size for w in network.weights))


def footprint(network: Network, dtype="float32") -> int:
    """Bytes of the weights, the threshold and beta in ``dtype``."""
    return (parameter_count(network) + 2) * np.dtype(dtype).itemsize


def connection_sparsity(network: Network, dtype="float32") -> float:
    """Zero weights (in ``dtype``) over all weights."""
    zeros = sum(w.size - np.count_nonzero(np.asarray(w, dtype=dtype)) for w in network.weights)
    return zeros / parameter_count(network)


def dense_synops(network: Network, n_timesteps: int, fan: Fanout | None = None) -> int:
    """``Dense`` per sample: ``T`` times every connection (the sum of all targets)."""
    fan = fan or fanouts(network)
    return int(n_timesteps) * int(fan.targets.sum())


def activation_sparsity(spikes_per_layer, n_neurons: int, n_timesteps: int) -> float:
    """``1 - spikes / (samples * n_neurons * n_timesteps)``; ``spikes_per_layer`` is ``(B, L)``."""
    spikes_per_layer = np.asarray(spikes_per_layer)
    total = len(spikes_per_layer) * int(n_neurons) * int(n_timesteps)
    return float(1 - spikes_per_layer.sum() / total) if total else float("nan")


def _per_sample(sample, values, n):
    return np.bincount(sample, weights=values, minlength=n).astype(np.int64) if len(sample) else np.zeros(n, np.int64)


def effective_synops(network: Network, trace, inputs, fan: Fanout | None = None) -> tuple:
    """``(effective_acs, effective_macs)``, per sample ``(B,)`` int64, of a recorded run.

    Network spikes are the trace's delivered events (an early stop's dropped spikes are not
    there, and carry no SOPs). Input items: the trace's queued inputs (``input_queue``: id
    ``-1 - c``, count ``v_pre``), else the ``(timestep, channel)`` pairs of ``inputs`` (the run's
    :class:`~pyasync_snn.events.EventBatch`) with their repeat counts, in the timesteps that ran: a
    sample-scoped stop ends the sample early, and the timesteps that ran are the prefix whose
    input SOPs (count x targets) add up to the kernel's ``sops`` less the network spikes' SOPs.
    Raises ``RuntimeError`` when no prefix does (or, with queued inputs, when the recomputed
    SOPs differ from the kernel's): the tables would not be the kernel's.
    """
    fan = fan or fanouts(network, trace.dtype)
    n0, b = network.layer_sizes[0], len(trace)
    sample = np.repeat(np.arange(b), np.diff(trace.indptr))
    neuron = np.asarray(trace.neuron, dtype=np.int64)
    spiking = neuron >= 0
    p = n0 + neuron[spiking]
    acs = _per_sample(sample[spiking], fan.nonzero[p], b)
    sops = _per_sample(sample[spiking], fan.targets[p], b)
    kernel_sops = np.asarray(trace.metrics.sops, dtype=np.int64)
    if trace.input_queue:
        queued = ~spiking
        c, count, s = -1 - neuron[queued], np.rint(trace.v_pre[queued]).astype(np.int64), sample[queued]
    else:
        t_count = int(trace.n_timesteps)
        s_in = np.repeat(np.arange(b), np.diff(inputs.indptr))
        key = (s_in * t_count + inputs.timestep.astype(np.int64)) * n0 + inputs.unit.astype(np.int64)
        key, count = np.unique(key, return_counts=True)
        s, rest = np.divmod(key, t_count * n0)
        t, c = np.divmod(rest, n0)
        cumulative = np.zeros((b, t_count + 1), np.int64)  # input SOPs of timesteps < r, at r
        np.add.at(cumulative, (s, t + 1), count * fan.targets[c])
        cumulative = np.cumsum(cumulative, axis=1)
        match = cumulative == (kernel_sops - sops)[:, None]
        if not match.any(axis=1).all():
            raise RuntimeError("the input SOPs of no prefix of timesteps match the kernel's count")
        ran = match.argmax(axis=1)  # timesteps whose inputs were delivered (first matching prefix)
        keep = t < ran[s]
        c, count, s = c[keep], count[keep], s[keep]
    sops = sops + _per_sample(s, count * fan.targets[c], b)
    if not np.array_equal(sops, kernel_sops):
        raise RuntimeError("the synaptic operations recomputed from the trace differ from the kernel's")
    single = count == 1
    acs = acs + _per_sample(s[single], fan.nonzero[c[single]], b)
    macs = _per_sample(s[~single], fan.nonzero[c[~single]], b)
    return acs, macs


def summarise(network: Network, spikes_per_layer, effective_acs, effective_macs, n_timesteps: int,
              dtype="float32", fan: Fanout | None = None) -> dict:
    """The NeuroBench metrics (:data:`KEYS`) of an evaluation: per-sample arrays of all its
    samples (``spikes_per_layer (B, L)``, ``effective_acs``/``effective_macs (B,)``; ``None``
    for unknown, then NaN) and the network it ran, in ``dtype`` (``fan``: its :func:`fanouts`)."""
    fan = fan or fanouts(network, dtype)
    n = max(len(spikes_per_layer), 1)
    mean = lambda a: float("nan") if a is None else float(np.sum(a) / n)  # noqa: E731
    return {
        "synaptic_operations": {"Effective_MACs": mean(effective_macs), "Effective_ACs": mean(effective_acs),
                                "Dense": float(dense_synops(network, n_timesteps, fan))},
        "activation_sparsity": activation_sparsity(spikes_per_layer, network.n_neurons, n_timesteps),
        "connection_sparsity": connection_sparsity(network, dtype),
        "footprint": footprint(network, dtype),
        "parameter_count": parameter_count(network),
    }
