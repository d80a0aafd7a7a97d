"""Layer kinds, written once: ``dense`` and ``conv2d`` (``docs/formats.md``, "Layer kinds").

- **dense**: weight ``W`` of shape ``(n_out, n_in)``; a spike of input ``j`` delivers ``W[:, j]``.
- **conv2d**: weight ``K`` of shape ``(C_out, C_in, kH, kW)`` with a :class:`Conv2d` geometry
  (``in_shape = (C_in, H_in, W_in)``, ``stride``, zero ``padding``; no bias). Its output map is
  ``(C_out, H_out, W_out)``, ``H_out = (H_in + 2 pH - kH) // sH + 1`` (same for W). A spike of
  channel ``ci`` at ``(y, x)`` delivers ``K[co, ci, ky, kx]`` to every output ``(co, oy, ox)``
  whose window covers it: ``y = oy sH - pH + ky``, ``x = ox sW - pW + kx``. That set is its
  *footprint*: at most ``C_out ceil(kH/sH) ceil(kW/sW)`` targets.

Neurons of every layer are numbered in ``(channel, y, x)`` C order, so a dense layer after a conv
layer sees the map flattened as ``torch.flatten`` would. No dense matrix of a conv layer is ever
built: the kernels deliver through a *footprint table* (:func:`footprint_table`).

The spelling of a network (``model init --layers``, ``train --hidden``) is one comma-separated
token per layer (:func:`parse_layers`): ``2x34x34`` (an input shape ``CxHxW``; a plain ``n`` is
``n`` flat inputs), ``c8k3s2p1`` (a conv2d layer: 8 output channels, kernel 3, stride 2 (default
1), padding 1 (default 0); each number may be ``AxB`` for height x width), ``10`` (a dense layer).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
from numba import njit

from .errors import UserError
from .kernels.bundles import CONV2D, DENSE

KINDS = {"dense": DENSE, "conv2d": CONV2D}


@dataclass(frozen=True)
class Conv2d:
    """The geometry of a conv2d layer (its weight holds the rest: ``C_out``, ``kH``, ``kW``)."""

    in_shape: tuple   # (C_in, H_in, W_in)
    stride: tuple = (1, 1)
    padding: tuple = (0, 0)

    def __post_init__(self):
        for name, low, n in (("in_shape", 1, 3), ("stride", 1, 2), ("padding", 0, 2)):
            value = tuple(getattr(self, name))
            if len(value) != n or not all(isinstance(v, (int, np.integer)) and v >= low for v in value):
                raise UserError(f"conv2d {name} must be {n} integers >= {low}, got {value!r}")
            object.__setattr__(self, name, tuple(int(v) for v in value))

    def out_shape(self, kernel_shape) -> tuple:
        """``(C_out, H_out, W_out)`` for a weight of ``kernel_shape = (C_out, C_in, kH, kW)``;
        a one-line error if the kernel does not fit this geometry."""
        c_out, c_in, kh, kw = kernel_shape
        (ci, h, w), (sh, sw), (ph, pw) = self.in_shape, self.stride, self.padding
        if c_in != ci:
            raise UserError(f"conv2d weight has {c_in} input channels but in_shape {self.in_shape} has {ci}")
        if kh > h + 2 * ph or kw > w + 2 * pw:
            raise UserError(f"conv2d kernel {kh}x{kw} is larger than the padded input {h + 2 * ph}x{w + 2 * pw}")
        return c_out, (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1


def layer_shapes(weights, convs) -> list:
    """The shape of every layer's neurons, input first: ``(n,)`` for a dense one, ``(C, H, W)``
    for a conv map. Checks that shapes chain (a one-line error naming the layer)."""
    shapes = []
    for l, (w, conv) in enumerate(zip(weights, convs)):
        if conv is None:
            if w.ndim != 2:
                raise UserError(f"weight of dense layer {l} must be 2-D (n_out, n_in), got shape {w.shape}")
            n_in, out = w.shape[1], (w.shape[0],)
            in_shape = shapes[-1] if shapes else (n_in,)
            if int(np.prod(in_shape)) != n_in:
                mapped = f" (a {'x'.join(map(str, in_shape))} map)" if len(in_shape) == 3 else ""
                raise UserError(f"weight shapes do not chain: dense layer {l} expects {n_in} inputs but layer "
                                f"{l - 1} has {int(np.prod(in_shape))} outputs{mapped}")
        else:
            if w.ndim != 4:
                raise UserError(f"weight of conv2d layer {l} must be 4-D (C_out, C_in, kH, kW), got shape {w.shape}")
            in_shape, out = conv.in_shape, conv.out_shape(w.shape)
            if shapes and int(np.prod(shapes[-1])) != int(np.prod(in_shape)):
                raise UserError(f"weight shapes do not chain: conv2d layer {l} has in_shape "
                                f"{'x'.join(map(str, in_shape))} but layer {l - 1} has {int(np.prod(shapes[-1]))} outputs")
        if not shapes:
            shapes.append(tuple(in_shape))
        shapes.append(tuple(out))
    return shapes


def layer_kind(shape, conv) -> str:
    """A layer's kind and size for people: ``"conv 8x16x16"`` or ``"128"``."""
    return f"conv {'x'.join(map(str, shape))}" if conv is not None else str(shape[0])


def layer_names(kinds) -> list:
    """What people call each non-input layer, given each one's :func:`layer_kind` (``""`` if not
    known): counted from 1 (the layer of ``W_{l+1}``; the code counts from 0), with its kind, and
    the last one marked as the output: ``["layer 1 (conv 8x16x16)", ..., "layer 4 (10, output)"]``."""
    names = []
    for l, kind in enumerate(kinds):
        notes = [note for note in (kind, "output" if l == len(kinds) - 1 else "") if note]
        names.append(f"layer {l + 1}" + (f" ({', '.join(notes)})" if notes else ""))
    return names


# ---------------------------------------------------------------- the spelling of a network
_NUMBER = r"(\d+(?:x\d+)?)"
_CONV = re.compile(rf"c(\d+)k{_NUMBER}(?:s{_NUMBER})?(?:p{_NUMBER})?")
_SHAPE = re.compile(r"(\d+)x(\d+)x(\d+)")


def _pair(text, default):
    if text is None:
        return default
    a, _, b = text.partition("x")
    return int(a), int(b or a)


def parse_layer(token: str):
    """One token: an ``int`` (dense size), a ``(C, H, W)`` tuple (input shape) or a conv spec
    ``("conv2d", C_out, (kH, kW), (sH, sW), (pH, pW))``. An item already parsed is returned as is."""
    if isinstance(token, tuple) or (isinstance(token, (int, np.integer)) and not isinstance(token, bool)):
        token = spell(token)
    text = str(token).strip().lower()
    if text.isdigit():
        if int(text) < 1:
            raise UserError(f"layer sizes must be positive integers, got {token!r}")
        return int(text)
    m = _SHAPE.fullmatch(text)
    if m and min(map(int, m.groups())) >= 1:
        return tuple(int(g) for g in m.groups())
    m = _CONV.fullmatch(text)
    if m:
        c_out, kernel, stride, padding = int(m[1]), _pair(m[2], None), _pair(m[3], (1, 1)), _pair(m[4], (0, 0))
        if c_out < 1 or min(kernel) < 1:
            raise UserError(f"layer {token!r}: channels and kernel size must be >= 1")
        if min(stride) < 1:
            raise UserError(f"layer {token!r}: the stride must be >= 1")
        return ("conv2d", c_out, kernel, stride, padding)
    raise UserError(f"cannot read layer {token!r}: write a size (128), an input shape (2x34x34) or a conv "
                    "layer (c8k3s2p1: 8 channels, kernel 3, stride 2, padding 1)")


def is_shape(item) -> bool:
    """Whether a :func:`parse_layer` item is an input shape ``(C, H, W)``."""
    return isinstance(item, tuple) and not isinstance(item[0], str)


def parse_layers(spec) -> list:
    """A comma-separated spelling (or a list of tokens) as a list of :func:`parse_layer` items.
    An input shape may only come first."""
    tokens = [t for t in spec.split(",")] if isinstance(spec, str) else list(spec)
    layers = [parse_layer(t) for t in tokens if str(t).strip()]
    if any(is_shape(item) for item in layers[1:]):
        raise UserError(f"an input shape (CxHxW) may only come first, in {spec!r}")
    return layers


def spell(item) -> str:
    """The token of one :func:`parse_layer` item (its inverse)."""
    if isinstance(item, int):
        return str(item)
    if is_shape(item):
        return "x".join(map(str, item))
    _, c_out, kernel, stride, padding = item
    pair = lambda p: str(p[0]) if p[0] == p[1] else f"{p[0]}x{p[1]}"
    return f"c{c_out}k{pair(kernel)}" + (f"s{pair(stride)}" if stride != (1, 1) else "") + \
        (f"p{pair(padding)}" if padding != (0, 0) else "")


def _plan(layers) -> list:
    """Each layer of a spelling whose first item is the input (a size or a shape), as
    ``(weight shape, conv geometry or None, fan_in, fan_out, output shape)``."""
    if len(layers) < 2:
        raise UserError(f"a network needs an input and at least one layer, got {len(layers)} item(s)")
    first = layers[0]
    if not (isinstance(first, int) or is_shape(first)):
        raise UserError("the first item must be the input: a size (700) or an input shape (2x34x34)")
    shape = (first,) if isinstance(first, int) else tuple(first)
    plan = []
    for l, item in enumerate(layers[1:]):
        if isinstance(item, int):
            n_in = int(np.prod(shape))
            size, conv, fan_in, fan_out = (item, n_in), None, n_in, item
        else:
            _, c_out, (kh, kw), stride, padding = item
            if len(shape) != 3:
                raise UserError(f"conv layer {spell(item)} (layer {l + 1}) needs a CxHxW map before it: "
                                f"start with the input shape, e.g. 2x34x34, not {'x'.join(map(str, shape))}")
            conv = Conv2d(shape, stride, padding)
            size, fan_in, fan_out = (c_out, shape[0], kh, kw), shape[0] * kh * kw, c_out * kh * kw
        shape = (item,) if conv is None else conv.out_shape(size)
        plan.append((size, conv, fan_in, fan_out, shape))
    return plan


def init_layers(layers, seed=0) -> tuple:
    """Weights and geometries for a spelling whose first item is the input (a size or a shape):
    Xavier-uniform per kind, ``U(-r, r)`` with ``r = sqrt(6 / (fan_in + fan_out))``, the fans
    ``(n_in, n_out)`` of a dense layer and ``(C_in kH kW, C_out kH kW)`` of a conv layer (as
    ``torch.nn.init.xavier_uniform_`` counts them). Returns ``(weights, convs)``."""
    rng = np.random.default_rng(seed)
    weights, convs = [], []
    for size, conv, fan_in, fan_out, _ in _plan(layers):
        r = np.sqrt(6.0 / (fan_in + fan_out))
        weights.append(rng.uniform(-r, r, size=size))
        convs.append(conv)
    return tuple(weights), tuple(convs)


def spelled_layer_kinds(spelling) -> list:
    """:func:`layer_kind` of every non-input layer of a network spelling (``Network.spelling``)."""
    return [layer_kind(shape, conv) for _, conv, _, _, shape in _plan(parse_layers(spelling))]


# ---------------------------------------------------------------- the footprint table
@njit(cache=True)
def _fill_footprints(in_shape, kernel_shape, stride, padding, out_shape, w_start, ptr, target, weight):
    """Fill ``ptr`` (``n_in + 1``), ``target`` and ``weight`` for one conv layer: the footprint of
    input ``j = (ci, y, x)`` is ``ptr[j]:ptr[j+1]``, output positions ascending within a channel."""
    c_in, h_in, w_in = in_shape
    c_out, _, kh, kw = kernel_shape
    sh, sw = stride
    ph, pw = padding
    _, h_out, w_out = out_shape
    n = 0
    j = 0
    for ci in range(c_in):
        for y in range(h_in):
            for x in range(w_in):
                ptr[j] = n
                for co in range(c_out):
                    for oy in range(h_out):
                        ky = y + ph - oy * sh
                        if ky < 0 or ky >= kh:
                            continue
                        for ox in range(w_out):
                            kx = x + pw - ox * sw
                            if kx < 0 or kx >= kw:
                                continue
                            target[n] = (co * h_out + oy) * w_out + ox
                            weight[n] = w_start + ((co * c_in + ci) * kh + ky) * kw + kx
                            n += 1
                j += 1
    ptr[j] = n
    return n


def footprint_table(conv: Conv2d, kernel_shape, w_start):
    """The sparse weight operator of a conv layer as a table: ``(ptr, target, weight)``, where the
    footprint of input neuron ``j`` is ``target[ptr[j]:ptr[j+1]]`` (neuron indices within the
    output layer, uint32) with weights ``w[weight[...]]`` (indices into the kernels' flat weight
    array, whose block for this layer starts at ``w_start``; uint64)."""
    out_shape = conv.out_shape(kernel_shape)
    n_in = int(np.prod(conv.in_shape))
    (sh, sw), (kh, kw) = conv.stride, kernel_shape[2:]
    bound = n_in * kernel_shape[0] * (-(-kh // sh)) * (-(-kw // sw))
    ptr = np.empty(n_in + 1, np.int64)
    target = np.empty(bound, np.uint32)
    weight = np.empty(bound, np.uint64)
    n = _fill_footprints(np.array(conv.in_shape, np.int64), np.array(kernel_shape, np.int64),
                         np.array(conv.stride, np.int64), np.array(conv.padding, np.int64),
                         np.array(out_shape, np.int64), int(w_start), ptr, target, weight)
    return ptr, target[:n].copy(), weight[:n].copy()
