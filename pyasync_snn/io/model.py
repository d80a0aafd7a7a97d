"""The model file (``format = "pyasync-snn/model"``): a :class:`Network` on disk.

Datasets ``layers/<l>/weight`` (``l = 0..L-1``, the network's float dtype) and the attribute
``kind`` of ``layers/<l>``: ``"dense"`` (the default when absent; weight ``(n_out, n_in)``) or
``"conv2d"`` (weight ``(C_out, C_in, kH, kW)``; attributes ``in_shape``, ``stride``, ``padding``);
attributes ``threshold`` and ``beta`` on the group ``neuron``. Training checkpoints add their own
groups through ``extra``; the reader ignores groups it does not know.
"""
from __future__ import annotations

import numpy as np

from ..errors import UserError
from ..layers import KINDS, Conv2d
from ..network import Network
from .h5common import atomic_h5, attr, group, in_file, open_checked, optional_attr, read, write_array

CONV_ATTRS = {"in_shape": 3, "stride": 2, "padding": 2}  # conv2d geometry: attribute -> length

FORMAT = "pyasync-snn/model"


def write_model(path, network: Network, extra=None) -> None:
    """Write ``network`` to ``path`` atomically; ``extra(h5file)`` may add more groups."""
    with atomic_h5(path, FORMAT) as f:
        for l, (w, conv) in enumerate(zip(network.weights, network.convs)):
            write_array(f, f"layers/{l}/weight", w)
            layer = f[f"layers/{l}"]
            layer.attrs["kind"] = "dense" if conv is None else "conv2d"
            for key in CONV_ATTRS if conv is not None else ():
                layer.attrs[key] = np.asarray(getattr(conv, key), dtype=np.int64)
        neuron = f.create_group("neuron")
        neuron.attrs["threshold"] = network.threshold
        neuron.attrs["beta"] = network.beta
        if extra is not None:
            extra(f)


def read_model(path) -> Network:
    """Read and validate the network stored in ``path``."""
    with open_checked(path, FORMAT) as f, in_file(f):
        names = sorted(group(f, "layers").keys())
        if not names or set(names) != {str(l) for l in range(len(names))}:
            raise UserError(f"layers must be numbered 0..L-1 (L >= 1), found {names}")
        weights = [read(f, f"layers/{l}/weight", kind="float") for l in range(len(names))]
        convs = [_geometry(group(f, f"layers/{l}")) for l in range(len(names))]
        neuron = group(f, "neuron")
        return Network(tuple(weights), attr(neuron, "threshold", float), attr(neuron, "beta", float), tuple(convs))


def _geometry(layer):
    """The ``layers.Conv2d`` of a conv2d layer group, None for a dense one."""
    kind = optional_attr(layer, "kind", str, "dense")
    if kind not in KINDS:
        raise UserError(f"'{layer.name.lstrip('/')}' has unknown kind {kind!r}; expected one of {', '.join(KINDS)}")
    if kind == "dense":
        return None
    values = {}
    for key, n in CONV_ATTRS.items():
        value = np.asarray(attr(layer, key))
        if value.shape != (n,) or not np.issubdtype(value.dtype, np.integer):
            raise UserError(f"attribute '{key}' of '{layer.name.lstrip('/')}' must be {n} integers, "
                            f"found {value.tolist()!r}")
        values[key] = tuple(int(v) for v in value)
    return Conv2d(**values)
