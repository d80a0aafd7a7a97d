"""The gradients file (``format = "pyasync-snn/gradients"``): ``layers/<l>/weight`` shaped like the
model's weights (float64), the root attribute ``loss`` (the mean loss over the samples) and, for
information, the root attributes ``gradient`` (the mode) and ``detach_reset``."""
from __future__ import annotations

import numpy as np

from ..errors import UserError
from .h5common import atomic_h5, attr, group, in_file, open_checked, read, write_array

FORMAT = "pyasync-snn/gradients"


def write_gradients(path, loss: float, grads, gradient: str = "exact", detach_reset: bool = False) -> None:
    """Write the mean ``loss`` and its gradients (one array per layer) atomically, with the
    gradient mode that computed them."""
    with atomic_h5(path, FORMAT) as f:
        f.attrs["loss"] = float(loss)
        f.attrs["gradient"] = str(gradient)
        f.attrs["detach_reset"] = bool(detach_reset)
        for l, g in enumerate(grads):
            write_array(f, f"layers/{l}/weight", np.asarray(g, dtype=np.float64))


def read_gradients(path):
    """``(loss, [dL/dW_l])`` from a gradients file."""
    with open_checked(path, FORMAT) as f, in_file(f):
        names = sorted(group(f, "layers").keys())
        if not names or set(names) != {str(l) for l in range(len(names))}:
            raise UserError(f"layers must be numbered 0..L-1 (L >= 1), found {names}")
        return attr(f, "loss", float), [read(f, f"layers/{l}/weight", kind="float") for l in range(len(names))]
