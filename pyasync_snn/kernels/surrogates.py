"""Surrogate derivatives of the Heaviside step, and the losses on output spike counts.

A threshold check emits ``s = H(v - theta)``; backward, ``dH/dx`` is replaced by a surrogate:

- ``atan`` (``alpha``, default 2):      ``(alpha/2) / (1 + (pi alpha x / 2)^2)``
- ``fast-sigmoid`` (``k``, default 25): ``1 / (1 + k |x|)^2``

To add a surrogate: give it the next code below, a branch in :func:`surrogate_grad`, and an entry
``name: (code, default parameter)`` in :data:`SURROGATES`. Nothing else changes.
"""
import numpy as np
from numba import njit

ATAN, FAST_SIGMOID = 0, 1
SURROGATES = {"atan": (ATAN, 2.0), "fast-sigmoid": (FAST_SIGMOID, 25.0)}

RATE, COUNT = 0, 1
LOSSES = {"rate": RATE, "count": COUNT}


@njit(cache=True, inline="always")
def surrogate_grad(code, x, param):
    """The surrogate ``dH/dx`` at ``x = v - theta``."""
    if code == ATAN:
        z = np.pi * param * x / 2.0
        return (param / 2.0) / (1.0 + z * z)
    d = 1.0 + param * abs(x)
    return 1.0 / (d * d)


@njit(cache=True, inline="always")
def surrogate_grads(code, u, theta, param, band, h):
    """``h[c] = surrogate_grad(code, u[c] - theta, param)`` for a run of checks, 0 where ``band > 0``
    and ``|u[c] - theta| > band``. Branch-free in ``c``, so LLVM vectorizes it."""
    for c in range(len(u)):
        x = u[c] - theta
        g = surrogate_grad(code, x, param)
        h[c] = 0.0 if band > 0 and abs(x) > band else g


@njit(cache=True)
def _cross_entropy(z, label, dz, scale):
    """``CE(softmax(z), y) = logsumexp(z) - z[y]``; adds ``scale * (softmax(z) - onehot(y))`` to dz.
    (Scalar loops throughout: array expressions would compile shape checks and their messages.)"""
    top = z[0]
    for o in range(len(z)):
        top = max(top, z[o])
    total = 0.0
    for o in range(len(z)):
        total += np.exp(z[o] - top)
    for o in range(len(z)):
        dz[o] += scale * (np.exp(z[o] - top) / total - (1.0 if o == label else 0.0))
    return top + np.log(total) - z[label]


@njit(cache=True)
def loss_and_dcounts(counts, label, loss, dcounts):
    """Loss of one sample from its per-timestep output counts ``counts[t, o]``; fills
    ``dcounts[t, o] = dLoss / dc_t[o]``.

    ``rate``: ``mean_t CE(softmax(c_t), y)``; ``count``: ``CE(softmax(sum_t c_t), y)``.
    """
    n_timesteps, n_out = counts.shape
    dcounts[:, :] = 0.0
    if loss == RATE:
        value = 0.0
        for t in range(n_timesteps):
            value += _cross_entropy(counts[t], label, dcounts[t], 1.0 / n_timesteps)
        return value / n_timesteps
    total = np.zeros(n_out)
    for t in range(n_timesteps):
        for o in range(n_out):
            total[o] += counts[t, o]
    value = _cross_entropy(total, label, dcounts[0], 1.0)
    for t in range(1, n_timesteps):
        for o in range(n_out):
            dcounts[t, o] = dcounts[0, o]
    return value


@njit(cache=True)
def counts_per_timestep(ev_neuron, ev_timestep, out_lo, n_out, n_timesteps):
    """``c_t[o]``: spikes of output neuron ``o`` in timestep ``t``, from one sample's events."""
    counts = np.zeros((n_timesteps, n_out))
    for e in range(len(ev_neuron)):
        if ev_neuron[e] >= out_lo:
            counts[ev_timestep[e], ev_neuron[e] - out_lo] += 1.0
    return counts


@njit(cache=True)
def trace_losses(ev_indptr, ev_neuron, ev_timestep, out_lo, n_out, n_timesteps, labels, loss):
    """The loss of every sample of a trace (no gradient): the forward half of the backward kernel."""
    losses = np.empty(len(labels))
    for b in range(len(labels)):
        e0, e1 = ev_indptr[b], ev_indptr[b + 1]
        counts = counts_per_timestep(ev_neuron[e0:e1], ev_timestep[e0:e1], out_lo, n_out, n_timesteps)
        losses[b] = loss_and_dcounts(counts, labels[b], loss, np.empty_like(counts))
    return losses
