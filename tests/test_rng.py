"""The per-sample random streams: every (seed, sample) pair gets its own, unrelated stream."""
import numpy as np

from pyasync_snn.kernels.rng import next_u64, seeded_state, uniform

N_DRAWS = 64


def draws(seed, sample_id, n=N_DRAWS):
    state = seeded_state(seed, sample_id)
    return np.array([next_u64(state) for _ in range(n)], dtype=np.uint64)


def uniforms(seed, sample_id, n=N_DRAWS):
    state = seeded_state(seed, sample_id)
    return np.array([uniform(state) for _ in range(n)])


def _shifted_copy(a, b, max_shift=8):
    """Whether ``b`` is ``a`` shifted by 0..max_shift draws in either direction."""
    return any(np.array_equal(a[k:], b[:len(b) - k]) or np.array_equal(b[k:], a[:len(a) - k])
               for k in range(max_shift + 1))


def test_neighbouring_seeds_and_samples_are_not_shifted_copies():
    # the old linear seeding (state = seed * GOLDEN + ...) made seed s+1 the stream of seed s
    # shifted by one draw; no draw may be shared between neighbouring pairs at all
    for seed in range(20):
        for sample in range(3):
            a = draws(seed, sample)
            for other in (draws(seed + 1, sample), draws(seed, sample + 1), draws(seed + 1, sample + 1)):
                assert not _shifted_copy(a, other)
                assert len(np.intersect1d(a, other)) == 0


def test_neighbouring_streams_are_uncorrelated():
    lags = (-2, -1, 0, 1, 2)
    corr = {("seed", k): [] for k in lags} | {("sample", k): [] for k in lags}
    for i in range(200):
        a = uniforms(i, 7)
        for kind, b in (("seed", uniforms(i + 1, 7)), ("sample", uniforms(i, 8))):
            for k in lags:
                x, y = (a[k:], b[:N_DRAWS - k]) if k >= 0 else (a[:N_DRAWS + k], b[-k:])
                corr[kind, k].append(np.corrcoef(x, y)[0, 1])
    for key, values in corr.items():
        # 200 pairs of 64 draws: the mean correlation has std ~0.009; a shift would give 1
        assert abs(np.mean(values)) < 0.04, key
        assert np.max(np.abs(values)) < 0.6, key


def test_streams_are_reproducible_and_uniform():
    assert np.array_equal(draws(3, 5), draws(3, 5))
    u = np.concatenate([uniforms(s, b, 256) for s in range(4) for b in range(4)])
    assert 0 <= u.min() and u.max() < 1
    counts = np.histogram(u, bins=16, range=(0, 1))[0]
    expected = len(u) / 16
    assert np.sum((counts - expected) ** 2 / expected) < 40  # chi-square, 15 dof (p ~ 5e-4)
