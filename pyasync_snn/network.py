"""The network: weights, threshold and decay of a feed-forward LIF stack. Nothing else.

Layer ``l = 1..L`` has weights ``W_l`` of shape ``(n_l, n_{l-1})`` and no bias; ``n_0`` is the
number of input channels. Non-input neurons are numbered globally, layer-major: layer 1 is
``0..n_1-1``, layer 2 follows, and so on (the id stored in traces).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import UserError
from .kernels.bundles import Net

DEFAULT_THRESHOLD = 0.3
DEFAULT_BETA = 0.9


@dataclass(frozen=True)
class Network:
    """A feed-forward LIF network.

    Each timestep ``v <- beta * v``; a neuron that receives current ``a`` does
    ``v <- v + a`` and fires when ``v > threshold``, resetting to zero.
    """

    weights: tuple
    threshold: float = DEFAULT_THRESHOLD
    beta: float = DEFAULT_BETA

    def __post_init__(self):
        weights = tuple(np.asarray(w) for w in self.weights)
        object.__setattr__(self, "weights", weights)
        object.__setattr__(self, "threshold", float(self.threshold))
        object.__setattr__(self, "beta", float(self.beta))
        validate_weights(weights)
        if not (np.isfinite(self.threshold) and self.threshold > 0):
            raise UserError(f"threshold must be a positive number, got {self.threshold}")
        if not (0 < self.beta <= 1):
            raise UserError(f"beta must lie in (0, 1], got {self.beta}")

    @classmethod
    def xavier(cls, layer_sizes, seed=0, threshold=DEFAULT_THRESHOLD, beta=DEFAULT_BETA):
        """Xavier-uniform weights: ``W_l ~ U(-r, r)``, ``r = sqrt(6 / (n_{l-1} + n_l))``."""
        sizes = [int(n) for n in layer_sizes]
        if len(sizes) < 2 or min(sizes) < 1:
            raise UserError(f"layer sizes need an input and at least one layer, all >= 1; got {sizes}")
        rng = np.random.default_rng(seed)
        weights = []
        for n_in, n_out in zip(sizes[:-1], sizes[1:]):
            r = np.sqrt(6.0 / (n_in + n_out))
            weights.append(rng.uniform(-r, r, size=(n_out, n_in)))
        return cls(tuple(weights), threshold, beta)

    @property
    def layer_sizes(self) -> tuple:
        """``(n_0, n_1, ..., n_L)``: input channels, then neurons per layer."""
        return (self.weights[0].shape[1],) + tuple(w.shape[0] for w in self.weights)

    @property
    def n_layers(self) -> int:
        return len(self.weights)

    @property
    def n_neurons(self) -> int:
        """Number of non-input neurons (global ids ``0..n_neurons-1``)."""
        return int(sum(self.layer_sizes[1:]))

    @property
    def n_outputs(self) -> int:
        return self.layer_sizes[-1]

    def check_fits(self, n_inputs, n_classes=None, what="the data") -> None:
        """Data must have this network's input channels and at most as many classes as outputs."""
        if n_inputs != self.layer_sizes[0]:
            raise UserError(f"{what} has {n_inputs} input channels but the model expects {self.layer_sizes[0]}")
        if n_classes is not None and n_classes > self.n_outputs:
            raise UserError(f"{what} has {n_classes} classes but the model has {self.n_outputs} outputs")

    def check_recorded_on(self, layer_sizes) -> None:
        """A trace recorded on a network of ``layer_sizes`` replays only on one of the same sizes."""
        if tuple(layer_sizes) != tuple(self.layer_sizes):
            raise UserError(f"the trace was recorded on a {'-'.join(map(str, layer_sizes))} network, "
                            f"the model is {'-'.join(map(str, self.layer_sizes))}")

    def check_labels(self, labels) -> None:
        """Labels must index an output neuron: the loss kernels read ``counts[label]``."""
        labels = np.asarray(labels)
        if len(labels) and (labels.min() < 0 or labels.max() >= self.n_outputs):
            raise UserError(f"labels must lie in [0, {self.n_outputs}) for a network with "
                            f"{self.n_outputs} outputs, found {labels.min()}..{labels.max()}")

    def layer_offsets(self) -> np.ndarray:
        """See :func:`layer_offsets`."""
        return layer_offsets(self.layer_sizes)

    def check_dtype(self, dtype) -> None:
        """The weights and threshold must be representable in ``dtype`` (no overflow to inf)."""
        limit = float(np.finfo(dtype).max)
        if all(w.dtype.itemsize <= np.dtype(dtype).itemsize for w in self.weights) and self.threshold <= limit:
            return  # finite weights (checked at construction) keep their values in a float as wide
        largest = max(max(float(w.max()), -float(w.min())) for w in self.weights)  # no |w| temporary
        if largest > limit or self.threshold > limit:
            raise UserError(f"weights up to {max(largest, self.threshold):.3g} do not fit {np.dtype(dtype).name} "
                            f"(largest {limit:.3g}); run in float64")

    def astype(self, dtype) -> "Network":
        self.check_dtype(dtype)
        return Network(tuple(w.astype(dtype) for w in self.weights), self.threshold, self.beta)

    def kernel_arrays(self, dtype, backward=False) -> Net:
        """The network as the kernels take it, in ``dtype``: a :class:`~.kernels.bundles.Net`
        (``w``: every ``W_l^T`` flattened, ``w_rows``: every ``W_l``, their offsets ``w_off``,
        layer sizes, first global id per layer, ``layer_of`` each neuron's layer from 0, theta, beta).
        ``w_rows`` is only for the backward pass: empty unless ``backward``.
        """
        self.check_dtype(dtype)
        w = np.concatenate([np.ascontiguousarray(wl.T, dtype=dtype).ravel() for wl in self.weights])
        w_rows = (np.concatenate([np.ascontiguousarray(wl, dtype=dtype).ravel() for wl in self.weights])
                  if backward else w[:0])
        w_off = np.concatenate([[0], np.cumsum([wl.size for wl in self.weights])[:-1]]).astype(np.int64)
        sizes = np.asarray(self.layer_sizes, dtype=np.int64)
        float_t = np.dtype(dtype).type
        return Net(w, w_rows, w_off, sizes, self.layer_offsets(), layer_of(sizes), float_t(self.threshold),
                   float_t(self.beta))

    def unflatten(self, flat) -> list:
        """The inverse of ``kernel_arrays().w``'s layout for a flat gradient: ``[dL/dW_l]``, each
        shaped like ``W_l`` (float64)."""
        grads, start = [], 0
        for wl in self.weights:
            n_out, n_in = wl.shape
            grads.append(np.asarray(flat[start:start + wl.size], dtype=np.float64).reshape(n_in, n_out).T.copy())
            start += wl.size
        return grads


def layer_offsets(layer_sizes) -> np.ndarray:
    """``offsets[l]`` is the first global id of layer ``l`` (layers counted from 0, the first
    non-input layer, as everywhere in the code); ``offsets[L]`` is the number of neurons."""
    return np.concatenate([[0], np.cumsum(layer_sizes[1:])]).astype(np.int64)


def layer_of(layer_sizes) -> np.ndarray:
    """``layer_of[i]``: the layer of neuron ``i``, counted from 0 (people read it as layer ``l+1``,
    the layer of ``W_{l+1}``)."""
    sizes = np.asarray(layer_sizes[1:], dtype=np.int64)
    return np.repeat(np.arange(len(sizes), dtype=np.int64), sizes)


def validate_weights(weights) -> None:
    """Weights must be finite 2-D float arrays whose shapes chain ``(n_l, n_{l-1})``."""
    if len(weights) == 0:
        raise UserError("a network needs at least one weight matrix")
    for l, w in enumerate(weights):
        if w.ndim != 2 or min(w.shape) < 1:
            raise UserError(f"weight of layer {l} must be a non-empty 2-D array, got shape {w.shape}")
        if not np.issubdtype(w.dtype, np.floating):
            raise UserError(f"weight of layer {l} must be float32 or float64, got {w.dtype}")
        if not np.all(np.isfinite(w)):
            raise UserError(f"weight of layer {l} contains NaN or Inf")
        if l > 0 and w.shape[1] != weights[l - 1].shape[0]:
            raise UserError(
                f"weight shapes do not chain: layer {l - 1} has {weights[l - 1].shape[0]} outputs "
                f"but layer {l} expects {w.shape[1]} inputs")
