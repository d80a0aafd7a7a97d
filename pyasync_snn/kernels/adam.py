"""One AdamW step over one weight array, in Numba (``optim.py`` holds the state and the math's
description). Elementwise, one pass, in float64, in the same operation order as the NumPy
expressions it replaced (no fast-math, no fused multiply-add), so the result is bitwise theirs."""
import numpy as np
from numba import njit


@njit(cache=True, nogil=True, error_model="numpy")
def adam_update(w, g, m, v, lr, beta1, beta2, correction1, correction2, eps, weight_decay, new_w, lo, hi):
    """For the entries ``lo:hi`` (flat, contiguous arrays): ``m <- beta1 m + (1 - beta1) g``,
    ``v <- beta2 v + (1 - beta2) g^2`` (in place), and ``new_w = w - lr (m_hat / (sqrt(v_hat) + eps)
    + weight_decay w)`` with ``m_hat = m / correction1``, ``v_hat = v / correction2``. (NumPy's
    error model: a division is IEEE, as in NumPy, without Python's zero check, so it vectorizes.)
    Releases the GIL: ranges run on parallel threads."""
    for q in range(lo, hi):
        w64, g64 = float(w[q]), float(g[q])
        m[q] = beta1 * m[q] + (1.0 - beta1) * g64
        v[q] = beta2 * v[q] + (1.0 - beta2) * (g64 * g64)
        update = (m[q] / correction1) / (np.sqrt(v[q] / correction2) + eps) + weight_decay * w64
        new_w[q] = w64 - lr * update
