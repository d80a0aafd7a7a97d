"""The network: weights, threshold and decay of a feed-forward LIF stack. Nothing else.

Layer ``l = 1..L`` is dense (weights ``W_l`` of shape ``(n_l, n_{l-1})``) or conv2d (a kernel
``(C_out, C_in, kH, kW)`` and its geometry, ``layers.py``); no bias. ``n_0`` is the number of
input channels. Non-input neurons are numbered globally, layer-major: layer 1 is ``0..n_1-1``,
layer 2 follows, and so on (the id stored in traces); within a conv map in ``(c, y, x)`` order.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from .errors import UserError
from .kernels.bundles import BLOCK, Net
from .layers import (CONV2D, DENSE, footprint_table, init_layers, layer_kind, layer_names, layer_shapes, parse_layers,
                     spell)
from .parallel import for_each_chunk

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
    convs: tuple = ()  # per layer: a layers.Conv2d geometry, or None (dense); () = all dense

    def __post_init__(self):
        weights = tuple(np.asarray(w) for w in self.weights)
        convs = tuple(self.convs) or (None,) * len(weights)
        object.__setattr__(self, "weights", weights)
        object.__setattr__(self, "convs", convs)
        object.__setattr__(self, "threshold", float(self.threshold))
        object.__setattr__(self, "beta", float(self.beta))
        validate_weights(weights)
        if len(convs) != len(weights):
            raise UserError(f"{len(convs)} layer geometries for {len(weights)} weights")
        object.__setattr__(self, "_shapes", tuple(layer_shapes(weights, convs)))
        object.__setattr__(self, "_kernel_cache", {})  # dtype -> Net (see kernel_arrays)
        object.__setattr__(self, "_cacheable", all(not w.flags.writeable and w.flags.owndata for w in weights))
        if not (np.isfinite(self.threshold) and self.threshold > 0):
            raise UserError(f"threshold must be a positive number, got {self.threshold}")
        if not (0 < self.beta <= 1):
            raise UserError(f"beta must lie in (0, 1], got {self.beta}")

    @classmethod
    def xavier(cls, layers, seed=0, threshold=DEFAULT_THRESHOLD, beta=DEFAULT_BETA):
        """Xavier-uniform weights for a spelling (``layers.parse_layers``: ``[700, 128, 20]``,
        ``"2x34x34,c8k3s2,10"``): ``U(-r, r)``, ``r = sqrt(6 / (fan_in + fan_out))`` per kind."""
        weights, convs = init_layers(parse_layers(layers), seed)
        return cls(weights, threshold, beta, convs)

    def to_nir(self, dt: float):
        """This network as a ``nir.NIRGraph`` with time step ``dt`` seconds (``io/nir_graph.py``)."""
        from .io.nir_graph import to_nir
        return to_nir(self, dt)

    @classmethod
    def from_nir(cls, graph, dt: float) -> "Network":
        """The network of a ``nir.NIRGraph`` (or a NIR file's path) with time step ``dt`` seconds;
        a one-line :class:`UserError` for anything this model cannot represent."""
        from .io.nir_graph import from_nir, read_nir
        return read_nir(graph, dt) if isinstance(graph, (str, bytes, os.PathLike)) else from_nir(graph, dt)

    def with_weights(self, weights) -> "Network":
        """The same network (kinds, geometry, threshold, beta) with other weights."""
        return Network(tuple(weights), self.threshold, self.beta, self.convs)

    @property
    def layer_shapes(self) -> tuple:
        """The shape of each layer's neurons, input first: ``(n,)`` or a map ``(C, H, W)``."""
        return self._shapes

    @property
    def layer_sizes(self) -> tuple:
        """``(n_0, n_1, ..., n_L)``: input channels, then neurons per layer."""
        return tuple(int(np.prod(s)) for s in self._shapes)

    def layer_names(self) -> list:
        """What people call each non-input layer (:func:`~.layers.layer_names`)."""
        return layer_names([layer_kind(shape, conv) for shape, conv in zip(self._shapes[1:], self.convs)])

    def spelling(self) -> str:
        """The network in the spelling of ``model init --layers``: ``2x34x34,c8k3s2,10``."""
        items = [self._shapes[0] if len(self._shapes[0]) == 3 else self._shapes[0][0]]
        for w, conv in zip(self.weights, self.convs):
            items.append(w.shape[0] if conv is None else
                         ("conv2d", w.shape[0], w.shape[2:], conv.stride, conv.padding))
        return ",".join(spell(item) for item in items)

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
        return self.with_weights(w.astype(dtype) for w in self.weights)

    def kernel_arrays(self, dtype, backward=False) -> Net:
        """The network as the kernels take it, in ``dtype``: a :class:`~.kernels.bundles.Net`.
        ``w`` holds each layer's block at ``w_off[l]``: ``W_l^T`` flattened for a dense layer (the
        row of presynaptic ``j`` is contiguous), the kernel flattened for a conv layer (delivered
        through its footprint table). ``w_rows`` (every ``W_l`` row-major, the kernel again for a
        conv layer) is only for the backward pass: empty unless ``backward``.

        Kept for later calls when every weight array is read-only and owns its memory (as the
        optimizer's are, ``optim.Adam``): then nothing can change the weights behind the cache.
        (A training step simulates and differentiates the same network: one layout, not two.)"""
        key = np.dtype(dtype).str
        cached = self._kernel_cache.get(key)
        if cached is None:
            self.check_dtype(dtype)
            cached = self._layout(dtype)
            if self._cacheable:
                self._kernel_cache[key] = cached
        if backward and not len(cached.w_rows):
            cached = cached._replace(w_rows=self._flat(dtype, transposed=False))
            if self._cacheable:
                self._kernel_cache[key] = cached
        return cached

    def _flat(self, dtype, transposed) -> np.ndarray:
        """Every layer's weights in one flat array of ``dtype`` at the offsets ``w_off`` (dense
        layers as ``W_l^T`` if ``transposed``), written in place (no concatenation copy)."""
        flat = np.empty(sum(wl.size for wl in self.weights), dtype=dtype)
        start = 0
        for wl, conv in zip(self.weights, self.convs):
            block = wl.T if transposed and conv is None else wl
            flat[start:start + wl.size].reshape(block.shape)[...] = block
            start += wl.size
        return flat

    def _layout(self, dtype) -> Net:
        """:meth:`kernel_arrays` without ``w_rows``, built."""
        w = self._flat(dtype, transposed=True)
        w_off = np.concatenate([[0], np.cumsum([wl.size for wl in self.weights])[:-1]]).astype(np.int64)
        sizes = np.asarray(self.layer_sizes, dtype=np.int64)
        offsets = self.layer_offsets()
        kind = np.array([DENSE if conv is None else CONV2D for conv in self.convs], dtype=np.int64)
        # footprint tables, indexed by presynaptic index: input channel c, then n_0 + neuron id
        first_pre = presynaptic_offsets(sizes)
        fan_ptr = np.zeros(first_pre[-1] + 1, dtype=np.int64)
        targets, weights = [np.empty(0, np.uint32)], [np.empty(0, np.uint64)]
        for l, conv in enumerate(self.convs):
            if conv is None:
                continue
            ptr, target, weight = footprint_table(conv, self.weights[l].shape, w_off[l])
            base = sum(len(t) for t in targets)
            fan_ptr[first_pre[l] + 1:first_pre[l] + len(ptr)] = base + ptr[1:]
            targets.append(target)
            weights.append(weight)
        fan_ptr = np.maximum.accumulate(fan_ptr)  # empty footprints for dense layers' inputs
        block_off = np.concatenate([[0], np.cumsum(-(-sizes[1:] // BLOCK))]).astype(np.int64)
        float_t = np.dtype(dtype).type
        fan_weight = np.concatenate(weights)
        return Net(w, w[:0], w_off, sizes, offsets, layer_of(sizes), float_t(self.threshold), float_t(self.beta),
                   kind, fan_ptr, np.concatenate(targets), fan_weight, w[fan_weight], block_off,
                   True if any(conv is not None for conv in self.convs) else None)

    def unflatten(self, flat) -> list:
        """The inverse of ``kernel_arrays().w``'s layout for a flat gradient: ``[dL/dW_l]``, each
        shaped like ``W_l`` (float64)."""
        grads, start = [], 0
        for wl, conv in zip(self.weights, self.convs):
            block = np.asarray(flat[start:start + wl.size], dtype=np.float64)
            source = block.reshape(wl.shape) if conv is not None else block.reshape(wl.shape[::-1]).T
            grad = np.empty(wl.shape)

            def copy_rows(lo, hi, grad=grad, source=source):
                np.copyto(grad[lo:hi], source[lo:hi])

            if wl.size >= 1 << 16:  # on threads (NumPy's copy releases the GIL): a transposed W_1 takes ms
                for_each_chunk(copy_rows, len(grad))
            else:
                copy_rows(0, len(grad))
            grads.append(grad)
            start += wl.size
        return grads


def layer_offsets(layer_sizes) -> np.ndarray:
    """``offsets[l]`` is the first global id of layer ``l`` (layers counted from 0, the first
    non-input layer, as everywhere in the code); ``offsets[L]`` is the number of neurons."""
    return np.concatenate([[0], np.cumsum(layer_sizes[1:])]).astype(np.int64)


def presynaptic_offsets(layer_sizes) -> np.ndarray:
    """``first[l]``: the presynaptic index of input 0 of layer ``l`` (counted from 0), the index the
    footprint tables use (input channel ``c``: ``c``; neuron ``i``: ``n_0 + i``, as
    ``kernels.steps.presynaptic_index``); ``first[L]`` is the number of presynaptic indices."""
    return np.concatenate([[0], np.cumsum(layer_sizes)]).astype(np.int64)


def layer_of(layer_sizes) -> np.ndarray:
    """``layer_of[i]``: the layer of neuron ``i``, counted from 0 (people read it as layer ``l+1``,
    the layer of ``W_{l+1}``)."""
    sizes = np.asarray(layer_sizes[1:], dtype=np.int64)
    return np.repeat(np.arange(len(sizes), dtype=np.int64), sizes)


def event_layers(layer_sizes, neurons) -> np.ndarray:
    """The layer of each event's neuron, counted from 0; -1 for a queued input (id ``-1 - c``)."""
    neurons = np.asarray(neurons)
    return np.where(neurons < 0, -1, layer_of(layer_sizes)[np.maximum(neurons, 0)])


def validate_weights(weights) -> None:
    """Weights must be non-empty finite float arrays (their shapes are checked against the layer
    kinds by ``layers.layer_shapes``)."""
    if len(weights) == 0:
        raise UserError("a network needs at least one weight matrix")
    for l, w in enumerate(weights):
        if w.ndim not in (2, 4) or min(w.shape) < 1:
            raise UserError(f"weight of layer {l} must be a non-empty 2-D (dense) or 4-D (conv2d) array, "
                            f"got shape {w.shape}")
        if not np.issubdtype(w.dtype, np.floating):
            raise UserError(f"weight of layer {l} must be float32 or float64, got {w.dtype}")
        if not np.all(np.isfinite(w)):
            raise UserError(f"weight of layer {l} contains NaN or Inf")
