"""EventBatch's CSR operations (take, select, concatenate, drop) against a slow obvious model: a
list of samples, each a list of ``(timestep, unit)`` events in order."""
import numpy as np
import pytest

from pyasync_snn.errors import UserError
from pyasync_snn.events import EventBatch


def random_batch(rng, n, n_inputs=7, n_timesteps=5, first_id=100):
    counts = rng.integers(0, 6, n)
    counts[rng.random(n) < 0.2] = 0  # some empty samples
    indptr = np.concatenate([[0], np.cumsum(counts)])
    return EventBatch(indptr, rng.integers(0, n_timesteps, indptr[-1]), rng.integers(0, n_inputs, indptr[-1]),
                      rng.integers(0, 3, n), n_inputs, n_timesteps, first_id + np.arange(n))


def as_lists(batch):
    """``[(events, label, sample_id)]`` with ``events`` the sample's ``[(timestep, unit)]`` in order."""
    out = []
    for b in range(len(batch)):
        events = []
        for e in range(batch.indptr[b], batch.indptr[b + 1]):  # one event at a time
            events.append((int(batch.timestep[e]), int(batch.unit[e])))
        out.append((events, int(batch.labels[b]), int(batch.sample_ids[b])))
    return out


def check_layout(batch):
    assert batch.indptr.dtype == np.int64 and batch.timestep.dtype == np.int32
    assert batch.unit.dtype == np.int32 and batch.sample_ids.dtype == np.int64


@pytest.mark.parametrize("seed", range(5))
def test_select_picks_samples_in_the_given_order(seed):
    rng = np.random.default_rng(seed)
    batch = random_batch(rng, int(rng.integers(1, 12)))
    model = as_lists(batch)
    for indices in (rng.integers(0, len(batch), 9), rng.permutation(len(batch)), [], [len(batch) - 1] * 3):
        got = batch.select(indices)
        check_layout(got)
        assert as_lists(got) == [model[i] for i in indices]
        for k, i in enumerate(indices):
            np.testing.assert_array_equal(got.dense(k), batch.dense(i))
    start, stop = sorted(rng.integers(0, len(batch) + 1, 2))
    assert as_lists(batch.take(start, stop)) == model[start:stop] == as_lists(batch.select(range(start, stop)))


def test_select_refuses_indices_outside_the_batch():
    batch = random_batch(np.random.default_rng(0), 4)
    for bad in ([4], [-1], [0, 7]):
        with pytest.raises(UserError, match=r"sample indices must lie in \[0, 4\)"):
            batch.select(bad)


@pytest.mark.parametrize("seed", range(5))
def test_concatenate_joins_the_samples_of_every_part(seed):
    rng = np.random.default_rng(seed)
    parts = [random_batch(rng, int(rng.integers(0, 6)), first_id=int(rng.integers(0, 50)))
             for _ in range(int(rng.integers(1, 5)))]
    joined = EventBatch.concatenate(parts, 7, 5)
    check_layout(joined)
    assert as_lists(joined) == [s for p in parts for s in as_lists(p)]
    assert (joined.n_inputs, joined.n_timesteps) == (7, 5)
    empty = EventBatch.concatenate([], 7, 5)
    assert len(empty) == 0 and len(empty.timestep) == 0 and (empty.n_inputs, empty.n_timesteps) == (7, 5)
    # select and concatenate invert each other
    whole = random_batch(rng, 9)
    assert as_lists(EventBatch.concatenate([whole.take(0, 4), whole.take(4, 9)], 7, 5)) == as_lists(whole)


@pytest.mark.parametrize("p", [0.0, 0.3, 0.9, 1.0])
def test_drop_deletes_each_spike_whose_uniform_draw_is_below_p(p):
    rng = np.random.default_rng(int(p * 10))
    batch = random_batch(rng, 10)
    got = batch.drop(p, np.random.default_rng(7))
    if p == 0:
        assert got is batch
        return
    check_layout(got)
    draws = np.random.default_rng(7).random(len(batch.timestep))  # one draw per event, in event order
    want, e = [], 0
    for events, label, ident in as_lists(batch):
        kept = []
        for event in events:
            if draws[e] >= p:
                kept.append(event)
            e += 1
        want.append((kept, label, ident))
    assert as_lists(got) == want
    if p == 1:
        assert len(got.timestep) == 0 and len(got) == len(batch)


def test_drop_with_p_zero_draws_nothing():
    batch = random_batch(np.random.default_rng(1), 5)
    rng = np.random.default_rng(3)
    batch.drop(0, rng)
    assert rng.random() == np.random.default_rng(3).random()


def test_sorted_by_time_orders_each_sample_by_timestep_then_unit():
    rng = np.random.default_rng(5)
    x = (rng.random((7, 13, 9)) < 0.3) * rng.integers(1, 3, (7, 13, 9))  # counts of 2 repeat a pair
    ordered = EventBatch.from_dense(x, np.zeros(7, int))
    timestep, unit = ordered.timestep.copy(), ordered.unit.copy()
    for s in range(7):  # shuffle within each sample
        lo, hi = ordered.indptr[s], ordered.indptr[s + 1]
        p = lo + rng.permutation(hi - lo)
        timestep[lo:hi], unit[lo:hi] = timestep[p], unit[p]
    shuffled = EventBatch(ordered.indptr, timestep, unit, ordered.labels, 9, 13)
    assert not np.array_equal(shuffled.unit, ordered.unit)
    got_t, got_u = shuffled.sorted_by_time()
    np.testing.assert_array_equal(got_t, ordered.timestep)
    np.testing.assert_array_equal(got_u, ordered.unit)
    again_t, again_u = shuffled.sorted_by_time()  # sorted once per batch, then reused
    assert again_t is got_t and again_u is got_u
