"""Model exchange through NIR, the Neuromorphic Intermediate Representation (``docs/interop.md``).

NIR describes a network in continuous time. Its ``LIF`` node is ``tau dv/dt = (v_leak - v) + r I``,
a spike when ``v > v_threshold``, then ``v <- v_reset``. This model is the forward-Euler step of
that equation with step ``dt`` and ``v_leak = v_reset = 0`` (the convention snnTorch uses when it
writes ``tau = dt / (1 - beta)``)::

    v <- beta v + (r dt / tau) I,   beta = 1 - dt / tau

so the decay is ``beta = 1 - dt/tau`` and the input scale ``r dt / tau`` is folded into the
weights of the synaptic node before the neuron. Export writes ``tau = dt / (1 - beta)`` and
``r = tau / dt`` (scale 1), so export followed by import is the identity.

Accepted graphs: one chain ``Input -> (Linear | Affine with zero bias | Conv2d | Flatten)* -> LIF
-> ... -> Output``: each synaptic node followed by a LIF (a ``CubaLIF`` whose synaptic current
lasts one step, ``tau_syn = dt``, is that LIF with its ``w_in`` folded in too). Per-neuron
parameter arrays must be equal across a layer; decay and threshold equal across layers. Anything
else is a :class:`UserError` naming the node and the reason.
"""
from __future__ import annotations

import os

import numpy as np

from ..errors import UserError
from ..layers import Conv2d
from ..network import Network
from .atomic import atomic_path, one_line

SYNAPSES = ("Linear", "Affine", "Conv2d")
NEURONS = ("LIF", "CubaLIF")


def _nir():
    import nir  # a dependency; imported here so that the rest of the package loads without it
    return nir


# ---------------------------------------------------------------- import
def read_nir(path, dt: float) -> Network:
    """The network of the NIR file ``path`` (see the module docstring), with time step ``dt`` s."""
    dt = _check_dt(dt)
    try:
        graph = _nir().read(os.fspath(path), type_check=False)  # shapes are checked here, layer by layer
    except (OSError, KeyError, ValueError, TypeError, AssertionError) as e:
        raise UserError(f"{os.fspath(path)}: not a readable NIR file ({type(e).__name__}: {one_line(e)})") from None
    return from_nir(graph, dt)


def from_nir(graph, dt: float) -> Network:
    """A :class:`Network` from a ``nir.NIRGraph`` (see the module docstring)."""
    dt = _check_dt(dt)
    chain = _chain(graph)
    shape = _input_shape(graph.nodes[chain[0]])
    weights, convs, params = [], [], []
    pending = None  # the synaptic node waiting for its neurons: (name, weight, conv)
    for name in chain[1:-1]:
        node = graph.nodes[name]
        kind = type(node).__name__
        if kind == "Flatten":
            shape = (int(np.prod(shape)),)
            continue
        if kind in SYNAPSES:
            if pending is not None:
                raise UserError(f"node '{name}' ({kind}) follows the synaptic node '{pending[0]}' without "
                                "neurons between them; this model needs a LIF after each")
            weight, conv, shape = _synapse(name, node, kind, shape)
            pending = (name, weight, conv)
            continue
        if kind in NEURONS:
            if pending is None:
                raise UserError(f"node '{name}' ({kind}) has no synaptic node (Linear, Affine, Conv2d) before it")
            beta, theta, scale = _neuron(name, node, kind, dt, shape)
            weights.append(pending[1] * scale)
            convs.append(pending[2])
            params.append((name, beta, theta))
            pending = None
            continue
        raise UserError(f"node '{name}' is a {kind}, which this model cannot represent "
                        f"(supported: Input, {', '.join(SYNAPSES)}, Flatten, LIF, CubaLIF, Output)")
    if pending is not None:
        raise UserError(f"the synaptic node '{pending[0]}' is not followed by neurons before the output")
    if not weights:
        raise UserError("the graph has no layer (Linear/Affine/Conv2d followed by LIF)")
    _, beta, theta = params[0]
    for name, b, th in params[1:]:
        if not np.isclose(b, beta, rtol=1e-9, atol=0) or not np.isclose(th, theta, rtol=1e-9, atol=0):
            raise UserError(f"node '{name}' has decay {b:.6g} and threshold {th:.6g}, the first layer "
                            f"{beta:.6g} and {theta:.6g}; this model has one of each for the whole network")
    return Network(tuple(weights), theta, beta, tuple(convs))


def _check_dt(dt):
    dt = float(dt)
    if not (np.isfinite(dt) and dt > 0):
        raise UserError(f"--dt must be a positive number of seconds, got {dt!r}")
    return dt


def _chain(graph) -> list:
    """The node names from the Input to the Output: the graph must be one chain."""
    nodes, edges = graph.nodes, [tuple(e) for e in graph.edges]
    kinds = {name: type(node).__name__ for name, node in nodes.items()}
    inputs = [n for n, k in kinds.items() if k == "Input"]
    outputs = [n for n, k in kinds.items() if k == "Output"]
    if len(inputs) != 1 or len(outputs) != 1:
        raise UserError(f"the graph must have one Input and one Output node, found {len(inputs)} and {len(outputs)}")
    after, before = {}, {}
    for src, dst in edges:
        if src not in nodes or dst not in nodes:
            raise UserError(f"edge {src!r} -> {dst!r} names an unknown node")
        if src in after or dst in before:
            node = src if src in after else dst
            raise UserError(f"node '{node}' branches (several edges leave or enter it); this model is one "
                            "feed-forward chain")
        after[src], before[dst] = dst, src
    chain, seen = [inputs[0]], {inputs[0]}
    while chain[-1] in after:
        nxt = after[chain[-1]]
        if nxt in seen:
            raise UserError(f"edge '{chain[-1]}' -> '{nxt}' is recurrent; this model is feed-forward")
        chain.append(nxt)
        seen.add(nxt)
    if chain[-1] != outputs[0] or len(chain) != len(nodes):
        lost = sorted(set(nodes) - seen)
        raise UserError(f"the graph is not one chain from '{inputs[0]}' to '{outputs[0]}'"
                        + (f" (not on it: {', '.join(lost)})" if lost else ""))
    return chain


def _input_shape(node) -> tuple:
    shape = np.asarray(node.input_type.get("input", node.output_type.get("output")))
    if shape.ndim != 1 or len(shape) not in (1, 3) or np.any(shape < 1):
        raise UserError(f"the Input node's shape {shape.tolist()} is neither (n,) nor (C, H, W)")
    return tuple(int(s) for s in shape)


def _synapse(name, node, kind, shape):
    """``(weight, conv geometry or None, output shape)`` of a synaptic node fed ``shape``."""
    weight = np.asarray(node.weight, dtype=np.float64)
    if kind == "Affine" and np.any(np.asarray(node.bias) != 0):
        raise UserError(f"node '{name}' (Affine) has a nonzero bias; this model has none")
    if kind in ("Linear", "Affine"):
        if weight.ndim != 2 or weight.shape[1] != int(np.prod(shape)):
            raise UserError(f"node '{name}' ({kind}) has weight {weight.shape}, its input has "
                            f"{int(np.prod(shape))} neurons")
        return weight, None, (weight.shape[0],)
    if np.any(np.asarray(node.bias) != 0):
        raise UserError(f"node '{name}' (Conv2d) has a nonzero bias; this model has none")
    if node.groups != 1 or tuple(np.atleast_1d(node.dilation)) not in ((1, 1), (1,)):
        raise UserError(f"node '{name}' (Conv2d) has groups {node.groups} and dilation {node.dilation}; "
                        "this model supports 1 and 1")
    if len(shape) != 3:
        raise UserError(f"node '{name}' (Conv2d) needs a CxHxW map before it, got shape {shape}")
    padding = node.padding
    if isinstance(padding, str):
        if padding == "valid":
            padding = (0, 0)
        elif tuple(node.stride) == (1, 1) and weight.shape[2] % 2 and weight.shape[3] % 2:
            padding = (weight.shape[2] // 2, weight.shape[3] // 2)
        else:
            raise UserError(f"node '{name}' (Conv2d) has padding 'same' with stride {node.stride} or an even kernel")
    try:
        conv = Conv2d(shape, tuple(int(s) for s in node.stride), tuple(int(p) for p in padding))
        return weight, conv, conv.out_shape(weight.shape)
    except UserError as e:
        raise UserError(f"node '{name}' (Conv2d): {e}") from None


def _uniform(name, node, field, shape):
    """A neuron parameter that must be one value for the whole layer (scalar or per neuron)."""
    value = np.asarray(getattr(node, field), dtype=np.float64)
    if value.size not in (1, int(np.prod(shape))):
        raise UserError(f"node '{name}': {field} has {value.size} values for a layer of {int(np.prod(shape))} neurons")
    if not np.all(value == value.flat[0]):
        raise UserError(f"node '{name}': {field} differs between neurons ({value.min():.6g} to {value.max():.6g}); "
                        "this model has one value per layer")
    return float(value.flat[0])


def _neuron(name, node, kind, dt, shape):
    """``(beta, threshold, input scale)`` of a LIF (or one-step CubaLIF) node."""
    tau = _uniform(name, node, "tau" if kind == "LIF" else "tau_mem", shape)
    r, theta = _uniform(name, node, "r", shape), _uniform(name, node, "v_threshold", shape)
    for field in ("v_leak", "v_reset"):
        if _uniform(name, node, field, shape) != 0:
            raise UserError(f"node '{name}': {field} is not 0; this model leaks and resets to 0")
    scale = r * dt / tau
    if kind == "CubaLIF":
        tau_syn = _uniform(name, node, "tau_syn", shape)
        if not np.isclose(tau_syn, dt, rtol=1e-9, atol=0):
            raise UserError(f"node '{name}' (CubaLIF): a synaptic current that outlasts one step (tau_syn "
                            f"{tau_syn:.6g} s, dt {dt:.6g} s) has no equivalent in this model")
        scale *= _uniform(name, node, "w_in", shape)
    beta = 1.0 - dt / tau
    if not 0 < beta <= 1:
        raise UserError(f"node '{name}': tau {tau:.6g} s with dt {dt:.6g} s gives decay {beta:.6g}, outside (0, 1]")
    if not theta > 0:
        raise UserError(f"node '{name}': v_threshold {theta:.6g} must be positive")
    return beta, theta, scale


# ---------------------------------------------------------------- export
def to_nir(network: Network, dt: float):
    """The ``nir.NIRGraph`` of ``network`` (see the module docstring): ``Input``, then per layer a
    ``Linear`` (or ``Conv2d`` with zero bias, a ``Flatten`` before a dense layer after a map) and a
    ``LIF`` with per-neuron arrays, then ``Output``."""
    nir, dt = _nir(), _check_dt(dt)
    if network.beta >= 1:
        raise UserError("beta = 1 (no leak) has no finite tau = dt / (1 - beta) to export")
    tau = dt / (1.0 - network.beta)
    shapes = network.layer_shapes
    nodes = {"input": nir.Input(input_type={"input": np.array(shapes[0])})}
    order, shape = ["input"], shapes[0]
    for l, (w, conv) in enumerate(zip(network.weights, network.convs)):
        weight = np.asarray(w, dtype=np.float64)
        if conv is None:
            if len(shape) == 3:
                nodes[f"flatten{l}"] = nir.Flatten(input_type={"input": np.array(shape)}, start_dim=0)
                order.append(f"flatten{l}")
            nodes[f"linear{l}"] = nir.Linear(weight=weight)
            order.append(f"linear{l}")
        else:
            nodes[f"conv{l}"] = nir.Conv2d(input_shape=tuple(conv.in_shape[1:]), weight=weight, stride=conv.stride,
                                           padding=conv.padding, dilation=(1, 1), groups=1,
                                           bias=np.zeros(weight.shape[0]))
            order.append(f"conv{l}")
        shape = shapes[l + 1]
        ones = np.ones(shape)
        nodes[f"lif{l}"] = nir.LIF(tau=tau * ones, r=(tau / dt) * ones, v_leak=0 * ones,
                                   v_threshold=network.threshold * ones, v_reset=0 * ones)
        order.append(f"lif{l}")
    nodes["output"] = nir.Output(output_type={"output": np.array(shape)})
    order.append("output")
    # nir 1.0 infers a conv's output shape with the kernel's height in both dimensions, so its type
    # check rejects a correct graph with a non-square kernel: skip that check for such graphs
    square = all(w.shape[2] == w.shape[3] for w, conv in zip(network.weights, network.convs) if conv is not None)
    return nir.NIRGraph(nodes=nodes, edges=list(zip(order[:-1], order[1:])), type_check=square)


def write_nir(path, network: Network, dt: float) -> None:
    """Write ``network`` as a NIR file atomically (temporary file, then rename)."""
    graph = to_nir(network, dt)
    with atomic_path(path) as tmp:
        _nir().write(tmp, graph)
