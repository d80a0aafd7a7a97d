"""Adam with decoupled weight decay (AdamW), written out by hand on plain NumPy arrays.

For every weight array ``w`` with gradient ``g``, step ``t = 1, 2, ...`` does::

    m <- beta1 * m + (1 - beta1) * g                  first moment (m_0 = 0)
    v <- beta2 * v + (1 - beta2) * g * g              second moment (v_0 = 0)
    m_hat = m / (1 - beta1^t)                         bias corrections
    v_hat = v / (1 - beta2^t)
    w <- w - lr * (m_hat / (sqrt(v_hat) + eps) + weight_decay * w)

The weight decay is *decoupled* (Loshchilov & Hutter, AdamW): it shrinks ``w`` directly and is
not added to the gradient, so it does not pass through the moment estimates. ``weight_decay = 0``
is plain Adam (Kingma & Ba). All arithmetic is float64, elementwise (one Numba pass per array,
``kernels/adam.py``), so a step is deterministic; the returned weights keep the dtype of the
weights given.

The state is ``m`` and ``v`` (one float64 array per weight array) and the step count ``t``;
:meth:`Adam.state_dict` and :meth:`Adam.from_state` move it to and from a checkpoint.
"""
from __future__ import annotations

import numpy as np

from .errors import UserError
from .kernels.adam import adam_update
from .parallel import for_each_chunk

DEFAULT_BETA1 = 0.9
DEFAULT_BETA2 = 0.999
DEFAULT_EPS = 1e-8
HYPER_PARAMETERS = ("lr", "beta1", "beta2", "eps", "weight_decay")


class Adam:
    """AdamW over a list of weight arrays (see the module docstring for the update).

    ``shapes`` are the shapes of the weight arrays, in the order :meth:`step` receives them.
    """

    def __init__(self, shapes, lr: float = 1e-3, beta1: float = DEFAULT_BETA1,
                 beta2: float = DEFAULT_BETA2, eps: float = DEFAULT_EPS, weight_decay: float = 0.0):
        self.lr, self.beta1, self.beta2 = float(lr), float(beta1), float(beta2)
        self.eps, self.weight_decay = float(eps), float(weight_decay)
        _check_hyper(self.lr, self.beta1, self.beta2, self.eps, self.weight_decay)
        self.m = [np.zeros(tuple(s)) for s in shapes]
        self.v = [np.zeros(tuple(s)) for s in shapes]
        self.t = 0

    @classmethod
    def for_weights(cls, weights, **hyper) -> "Adam":
        """A fresh optimizer (``t = 0``, zero moments) for arrays shaped like ``weights``."""
        return cls([np.shape(w) for w in weights], **hyper)

    def step(self, weights, grads) -> list:
        """One update; returns the new weights (a list, same dtypes, read-only arrays) and advances
        ``m, v, t``."""
        if len(weights) != len(self.m) or len(grads) != len(self.m):
            raise UserError(f"the optimizer holds {len(self.m)} weight arrays, got "
                            f"{len(weights)} weights and {len(grads)} gradients")
        for l, (w, g, m) in enumerate(zip(weights, grads, self.m)):
            if np.shape(w) != m.shape or np.shape(g) != m.shape:
                raise UserError(f"array {l}: the optimizer expects shape {m.shape}, got weight "
                                f"{np.shape(w)} and gradient {np.shape(g)}")
        self.t += 1
        correction1 = 1.0 - self.beta1 ** self.t
        correction2 = 1.0 - self.beta2 ** self.t
        new = []
        for w, g, m, v in zip(weights, grads, self.m, self.v):
            w = np.ascontiguousarray(w)
            g = np.ascontiguousarray(g, dtype=np.float64)
            new_w = np.empty_like(w)
            flat = (w.reshape(-1), g.reshape(-1), m.reshape(-1), v.reshape(-1))
            for_each_chunk(lambda lo, hi: adam_update(*flat, self.lr, self.beta1, self.beta2, correction1, correction2,
                                                      self.eps, self.weight_decay, new_w.reshape(-1), lo, hi),
                           w.size, per_thread=1)
            new_w.setflags(write=False)  # read-only: a Network can keep its kernel layout (Network.kernel_arrays)
            new.append(new_w)
        return new

    def state_dict(self) -> dict:
        """``{"m": [...], "v": [...], "t": int, "lr": ..., "beta1": ..., ...}`` (copies)."""
        return {"m": [a.copy() for a in self.m], "v": [a.copy() for a in self.v], "t": int(self.t),
                **{k: getattr(self, k) for k in HYPER_PARAMETERS}}

    @classmethod
    def from_state(cls, state: dict, **override) -> "Adam":
        """Rebuild an optimizer from :meth:`state_dict` output; ``override`` replaces
        hyper-parameters (e.g. ``lr``)."""
        m = [np.array(a, dtype=np.float64) for a in state["m"]]
        v = [np.array(a, dtype=np.float64) for a in state["v"]]
        if len(m) != len(v) or any(a.shape != b.shape for a, b in zip(m, v)):
            raise UserError("optimizer state: m and v must hold arrays of the same shapes")
        t = int(state["t"])
        if t < 0:
            raise UserError(f"optimizer state: step count t must be >= 0, got {t}")
        for name, arrays in (("m", m), ("v", v)):
            if not all(np.all(np.isfinite(a)) for a in arrays):
                raise UserError(f"optimizer state: {name} contains NaN or Inf")
        if any(np.any(a < 0) for a in v):
            raise UserError("optimizer state: v must be non-negative")
        hyper = {k: state[k] for k in HYPER_PARAMETERS if k in state}
        hyper.update(override)
        opt = cls([a.shape for a in m], **hyper)
        opt.m, opt.v, opt.t = m, v, t
        return opt


def _check_hyper(lr, beta1, beta2, eps, weight_decay) -> None:
    if not (np.isfinite(lr) and lr > 0):
        raise UserError(f"learning rate must be a positive number, got {lr}")
    for name, value in (("beta1", beta1), ("beta2", beta2)):
        if not (0 <= value < 1):
            raise UserError(f"Adam {name} must lie in [0, 1), got {value}")
    if not (np.isfinite(eps) and eps > 0):
        raise UserError(f"Adam eps must be a positive number, got {eps}")
    if not (np.isfinite(weight_decay) and weight_decay >= 0):
        raise UserError(f"weight decay must be >= 0, got {weight_decay}")
