"""Bernoulli random input: every (timestep, channel) carries a spike with probability ``density``."""
import numpy as np

from ..errors import UserError
from ..events import EventBatch
from ..validate import integer


def random_events(n_samples, n_inputs, n_timesteps, density, n_classes, seed=0) -> EventBatch:
    """``x[b, t, c] ~ Bernoulli(density)`` independently, labels uniform in ``[0, n_classes)``.

    Generated one sample at a time (memory ~ one sample's ``T x C`` draws); deterministic in ``seed``.
    """
    for name, value in (("samples", n_samples), ("inputs", n_inputs), ("timesteps", n_timesteps),
                        ("classes", n_classes)):
        integer(name, value, 1, "a positive integer")
    if not (0 <= density <= 1):
        raise UserError(f"density must lie in [0, 1], got {density}")
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, n_classes, n_samples)
    timesteps, units, counts = [], [], []
    for _ in range(n_samples):
        t, c = np.nonzero(rng.random((n_timesteps, n_inputs)) < density)
        timesteps.append(t)
        units.append(c)
        counts.append(len(t))
    indptr = np.concatenate([[0], np.cumsum(counts)])
    return EventBatch(indptr, np.concatenate(timesteps), np.concatenate(units), labels,
                      n_inputs, n_timesteps)
