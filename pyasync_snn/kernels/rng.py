"""A counter-free SplitMix64 random stream kept in a one-element ``uint64`` array.

Each sample owns its stream, seeded from ``(seed, sample_id)``, so results never depend on the
number of threads or on which batch a sample ran in.
"""
import numpy as np
from numba import njit

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_SAMPLE_MULT = np.uint64(0xD1B54A32D192ED03)


@njit(cache=True)
def next_u64(state):
    """Advance the stream and return 64 random bits (SplitMix64)."""
    state[0] += _GOLDEN
    z = state[0]
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    return z ^ (z >> np.uint64(31))


@njit(cache=True)
def uniform(state):
    """A float64 uniform in ``[0, 1)`` with 53 random bits."""
    return float(next_u64(state) >> np.uint64(11)) * (1.0 / 9007199254740992.0)


@njit(cache=True)
def randint(state, n):
    """An integer uniform in ``[0, n)``."""
    return min(int(uniform(state) * n), n - 1)


@njit(cache=True)
def seeded_state(seed, sample_id):
    """The stream of one sample: a state derived from the run seed and the sample's id."""
    state = np.empty(1, dtype=np.uint64)
    state[0] = np.uint64(seed) * _GOLDEN + np.uint64(sample_id) * _SAMPLE_MULT
    next_u64(state)
    return state
