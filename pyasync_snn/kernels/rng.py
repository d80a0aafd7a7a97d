"""A SplitMix64 random stream kept in a one-element ``uint64`` array.

Each sample owns its stream, seeded from ``(seed, sample_id)``, so results never depend on the
number of threads or on which batch a sample ran in. SplitMix64 draws ``mix(state + i*GOLDEN)``
(``mix`` = its bijective finalizer), so two streams whose states differ by a multiple of
``GOLDEN`` are shifted copies of each other; :func:`seeded_state` therefore hashes the pair
through ``mix`` instead of combining it linearly.
"""
import numpy as np
from numba import njit

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


@njit(cache=True, inline="always")
def _mix(z):
    """SplitMix64's finalizer: a bijection of 64-bit words with full avalanche."""
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    return z ^ (z >> np.uint64(31))


@njit(cache=True)
def next_u64(state):
    """Advance the stream and return 64 random bits (SplitMix64): ``mix(state += GOLDEN)``."""
    state[0] += _GOLDEN
    return _mix(state[0])


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
    """The stream of one sample: ``state = mix(mix((seed + 1) * GOLDEN) + (sample_id + 1) * GOLDEN)``.

    Two rounds of the finalizer: the seed is hashed to a key ``h``, and the sample's state is
    draw ``sample_id`` of the SplitMix64 stream keyed by ``h``. States of distinct pairs are thus
    unrelated 64-bit words (not offsets along one stream), so every (seed, sample) pair gets its
    own statistically independent stream.
    """
    state = np.empty(1, dtype=np.uint64)
    key = _mix((np.uint64(seed) + np.uint64(1)) * _GOLDEN)
    state[0] = _mix(key + (np.uint64(sample_id) + np.uint64(1)) * _GOLDEN)
    return state
