"""The model file (``format = "pyasync-snn/model"``): a :class:`Network` on disk.

Datasets ``layers/<l>/weight`` (``l = 0..L-1``, shape ``(n_out, n_in)``, the network's float
dtype); attributes ``threshold`` and ``beta`` on the group ``neuron``. Training checkpoints add
their own groups through ``extra``; the reader ignores groups it does not know.
"""
from __future__ import annotations

from ..errors import UserError
from ..network import Network
from .h5common import atomic_h5, attr, group, in_file, open_checked, read, write_array

FORMAT = "pyasync-snn/model"


def write_model(path, network: Network, extra=None) -> None:
    """Write ``network`` to ``path`` atomically; ``extra(h5file)`` may add more groups."""
    with atomic_h5(path, FORMAT) as f:
        for l, w in enumerate(network.weights):
            write_array(f, f"layers/{l}/weight", w)
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
        neuron = group(f, "neuron")
        return Network(tuple(weights), attr(neuron, "threshold", float), attr(neuron, "beta", float))
