"""The forward kernel against slow references written from the spec, and the schedulers' invariants."""
import numba
import numpy as np
import pytest

from pyasync_snn import EventBatch, Network, simulate
from pyasync_snn.trace import UNBOUNDED

from reference import momentum_reference, replay, timestepped_lif


def random_case(sizes, n_samples=3, n_timesteps=12, density=0.3, seed=0, scale=1.5):
    """A random network (weights scaled up so that every layer spikes) and random input."""
    rng = np.random.default_rng(seed)
    net = Network.xavier(sizes, seed=seed)
    net = Network(tuple(w * scale for w in net.weights), threshold=0.3, beta=0.9)
    x = (rng.random((n_samples, n_timesteps, sizes[0])) < density).astype(int)
    x += (rng.random(x.shape) < density / 3)  # some repeated input spikes (count 2)
    labels = rng.integers(0, sizes[-1], n_samples)
    return net, EventBatch.from_dense(x, labels), x


def event_tuples(trace, b, fields=("neuron", "timestep", "fired_step", "emitted_step")):
    ev = trace.events(b)
    return [tuple(int(ev[f][e]) for f in fields) for e in range(len(ev["neuron"]))]


SHAPES = [[6, 5, 3], [10, 8, 6, 4], [7, 12, 9, 6, 3]]


@pytest.mark.parametrize("sizes", SHAPES)
def test_layered_equals_timestepped_lif(sizes):
    net, batch, x = random_case(sizes, seed=len(sizes))
    trace = simulate(net, batch, schedule="layered", group_size=1, dtype="float64")
    assert trace.n_events > 20
    for b in range(len(batch)):
        expected = timestepped_lif(net.weights, net.threshold, net.beta, x[b])
        ev = trace.events(b)
        got = sorted(zip(ev["timestep"].tolist(), ev["neuron"].tolist()))
        assert got == sorted((t, i) for t, i, _, _ in expected)
        # layer l fires at step l (0 = injection) and is delivered one step later
        layer = {i: l for _, i, l, _ in expected}
        assert all(f == layer[i] and e == f + 1 for i, _, f, e in event_tuples(trace, b))
        v_pre = {(t, i): v for t, i, _, v in expected}
        np.testing.assert_allclose(ev["v_pre"], [v_pre[(t, i)] for t, i in
                                                 zip(ev["timestep"], ev["neuron"])], rtol=1e-12)
        assert np.all(ev["refractory"])


@pytest.mark.parametrize("group_size", [1, 2, 5])
@pytest.mark.parametrize("sizes", SHAPES[:2])
def test_momentum_equals_priority_queue_reference(sizes, group_size):
    net, batch, x = random_case(sizes, seed=group_size)
    trace = simulate(net, batch, schedule="momentum", group_size=group_size, momentum_noise=0.0, dtype="float64")
    for b in range(len(batch)):
        expected = momentum_reference(net.weights, net.threshold, net.beta, x[b], group_size)
        assert event_tuples(trace, b) == [e[:4] for e in expected]
        np.testing.assert_allclose(trace.events(b)["v_pre"], [e[4] for e in expected], rtol=1e-12)


@pytest.mark.parametrize("group_size", [1, 2, 5])
def test_momentum_ties_go_to_the_lower_id(group_size):
    """Dyadic weights, integer input and beta = 1/2 make sums exact, so many v_pre tie exactly."""
    rng = np.random.default_rng(7)
    sizes = [6, 8, 8, 3]
    weights = tuple(rng.integers(-1, 4, size=(n_out, n_in)) / 8.0
                    for n_in, n_out in zip(sizes[:-1], sizes[1:]))
    net = Network(weights, threshold=0.3, beta=0.5)
    x = (rng.random((2, 6, sizes[0])) < 0.5).astype(int)
    batch = EventBatch.from_dense(x)
    trace = simulate(net, batch, schedule="momentum", group_size=group_size, momentum_noise=0.0, dtype="float64")
    n_ties = 0
    for b in range(len(batch)):
        expected = momentum_reference(net.weights, net.threshold, net.beta, x[b], group_size)
        assert event_tuples(trace, b) == [e[:4] for e in expected]
        v_pre = np.array([e[4] for e in expected])
        n_ties += len(v_pre) - len(np.unique(v_pre))
    assert n_ties > 10  # the case really exercises ties


def _groups(trace, b):
    ev = trace.events(b)
    keys = list(zip(ev["timestep"].tolist(), ev["emitted_step"].tolist()))
    return ev, keys


@pytest.mark.parametrize("group_size", [1, 3, 8])
def test_random_invariants(group_size):
    net, batch, x = random_case([10, 8, 6, 4], n_samples=4, seed=3)
    trace = simulate(net, batch, schedule="random", group_size=group_size, seed=11, dtype="float64")
    m = trace.metrics
    for b in range(len(batch)):
        ev, keys = _groups(trace, b)
        _, group_sizes = np.unique(np.array(keys).reshape(-1, 2), axis=0, return_counts=True)
        assert group_sizes.max() <= group_size
        assert np.all(ev["emitted_step"] > ev["fired_step"])
        pairs = list(zip(ev["timestep"].tolist(), ev["neuron"].tolist()))
        assert len(pairs) == len(set(pairs)), "a neuron spiked twice in one timestep"
        # the queue drains: every fired spike is delivered in its own timestep, steps are contiguous
        assert len(ev["neuron"]) == m.spikes_per_layer[b].sum()
        for t in range(batch.n_timesteps):
            steps = sorted(set(ev["emitted_step"][ev["timestep"] == t].tolist()))
            assert steps == list(range(1, m.steps_per_timestep[b, t] + 1))
        # every spike obeys the rules of spec section 2 given the recorded groups
        assert [e[:3] for e in replay(net.weights, net.threshold, net.beta, x[b], ev)] == \
            sorted(event_tuples(trace, b, ("neuron", "timestep", "fired_step")), key=lambda e: (e[1], e[2], e[0]))


def test_random_same_seed_same_trace_other_seed_other_trace():
    net, batch, _ = random_case([10, 8, 6, 4], n_samples=4, seed=5)
    a = simulate(net, batch, schedule="random", group_size=2, seed=1)
    b = simulate(net, batch, schedule="random", group_size=2, seed=1)
    c = simulate(net, batch, schedule="random", group_size=2, seed=2)
    assert event_tuples(a, 0) == event_tuples(b, 0)
    assert np.array_equal(a.v_pre, b.v_pre)
    assert any(event_tuples(a, i) != event_tuples(c, i) for i in range(len(batch)))


@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="needs at least 2 threads")
@pytest.mark.parametrize("schedule", ["random", "momentum"])
def test_thread_count_does_not_change_the_trace(schedule):
    net, batch, _ = random_case([10, 8, 6, 4], n_samples=8, seed=6)
    kw = dict(group_size=2, seed=3, refractory_dropout=0.2, momentum_noise=1e-3)
    one = simulate(net, batch, schedule=schedule, threads=1, **kw)
    many = simulate(net, batch, schedule=schedule, threads=numba.config.NUMBA_NUM_THREADS, **kw)
    for name in ("indptr", "neuron", "timestep", "fired_step", "emitted_step", "v_pre", "refractory"):
        assert np.array_equal(getattr(one, name), getattr(many, name)), name


def test_results_do_not_depend_on_batching():
    net, batch, _ = random_case([10, 8, 6, 4], n_samples=6, seed=8)
    whole = simulate(net, batch, schedule="random", group_size=3, seed=4, refractory_dropout=0.3)
    tail = simulate(net, batch.take(3, 6), schedule="random", group_size=3, seed=4, refractory_dropout=0.3)
    assert event_tuples(whole, 4) == event_tuples(tail, 1)


def test_random_with_large_group_equals_layered_on_one_hidden_layer():
    net, batch, _ = random_case([12, 10, 5], n_samples=4, seed=9)
    layered = simulate(net, batch, schedule="layered", group_size=1, dtype="float64")
    for group_size in (net.n_neurons, UNBOUNDED):
        rnd = simulate(net, batch, schedule="random", group_size=group_size, seed=9, dtype="float64")
        for b in range(len(batch)):
            assert event_tuples(rnd, b) == event_tuples(layered, b)
        assert np.array_equal(rnd.v_pre, layered.v_pre)


def test_refractory_dropout_lets_neurons_fire_again_and_is_recorded():
    net, batch, x = random_case([10, 12, 12, 4], n_samples=4, seed=10, scale=2.5)
    trace = simulate(net, batch, schedule="momentum", group_size=1, seed=2, refractory_dropout=0.5, dtype="float64")
    assert 0.3 < 1 - trace.refractory.mean() < 0.7
    pairs = list(zip(trace.timestep.tolist(), trace.neuron.tolist()))
    assert len(pairs) > len(set(pairs)), "no neuron fired twice in a timestep despite dropout"
    for b in range(len(batch)):
        ev = trace.events(b)
        assert [e[:3] for e in replay(net.weights, net.threshold, net.beta, x[b], ev)] == \
            sorted(event_tuples(trace, b, ("neuron", "timestep", "fired_step")), key=lambda e: (e[1], e[2], e[0]))


def test_metrics_match_the_events():
    net, batch, x = random_case([10, 8, 6, 4], n_samples=4, seed=12)
    trace = simulate(net, batch, schedule="momentum", group_size=2, seed=0)
    m = trace.metrics
    sizes = net.layer_sizes
    bounds = np.cumsum(sizes[1:])
    out_lo = bounds[-2]
    for b in range(len(batch)):
        ev = trace.events(b)
        layer = np.searchsorted(bounds, ev["neuron"], side="right")
        assert np.array_equal(m.spikes_per_layer[b], np.bincount(layer, minlength=len(sizes) - 1))
        fan_out = np.array(list(sizes[2:]) + [0])[layer]
        assert m.sops[b] == x[b].sum() * sizes[1] + fan_out.sum()
        out = ev["neuron"] >= out_lo
        assert np.array_equal(trace.output_counts[b], np.bincount(ev["neuron"][out] - out_lo,
                                                                   minlength=sizes[-1]))
        assert m.count_prediction[b] == np.argmax(trace.output_counts[b])
        if out.any():
            steps_before = np.concatenate([[0], np.cumsum(m.steps_per_timestep[b])])
            when = steps_before[ev["timestep"]] + ev["fired_step"]
            order = np.lexsort((ev["neuron"], when))
            first = order[np.argmax(out[order])]
            assert m.steps_to_first_output[b] == when[first]
            assert m.first_spike_prediction[b] == ev["neuron"][first] - out_lo
            assert m.spikes_to_first_output[b] == np.sum(when < when[first])
        else:
            assert m.steps_to_first_output[b] == -1 and m.first_spike_prediction[b] == -1


def test_float32_is_the_default_and_close_to_float64():
    net, batch, _ = random_case([10, 8, 4], seed=13)
    f32 = simulate(net, batch, schedule="layered", group_size=1)
    f64 = simulate(net, batch, schedule="layered", group_size=1, dtype="float64")
    assert f32.v_pre.dtype == np.float32 and f64.v_pre.dtype == np.float64
    assert np.array_equal(f32.neuron, f64.neuron)
    np.testing.assert_allclose(f32.v_pre, f64.v_pre, rtol=1e-5)


def test_float32_currents_are_summed_one_spike_at_a_time_in_ascending_order():
    """The spec's order of summation, bit for bit: a layer's current is its inputs' weight columns
    added one at a time, in float32, in ascending input order (the kernels add four columns per
    pass over the membranes when a group has them; that must not change a bit)."""
    rng = np.random.default_rng(5)
    net = Network.xavier([30, 40, 12, 3], seed=5)
    net = Network(tuple(w * 1.5 for w in net.weights), threshold=0.3, beta=0.9)
    x = (rng.random((2, 8, 30)) < 0.3).astype(int)  # about 9 inputs a timestep, each once
    trace = simulate(net, EventBatch.from_dense(x, np.array([0, 1])), schedule="layered")
    weights = [w.astype(np.float32) for w in net.weights]
    beta, theta = np.float32(net.beta), np.float32(net.threshold)
    for b in range(2):
        expected, v = [], [np.zeros(len(w), np.float32) for w in weights]
        for t in range(x.shape[1]):
            spikes = np.nonzero(x[b, t])[0]
            for layer, w in enumerate(weights):
                v[layer] *= beta
                if len(spikes) == 0:
                    break
                current = np.zeros(len(w), np.float32)
                for j in spikes:  # one column at a time, ascending
                    current += w[:, j]
                v[layer] += current
                spikes = np.nonzero(v[layer] > theta)[0]
                expected += [(t, v[layer][i]) for i in spikes]
                v[layer][spikes] = 0
            for later in range(layer + 1, len(weights)):
                v[later] *= beta
        ev = trace.events(b)
        assert len(ev["v_pre"]) == len(expected) > 20
        got = sorted(zip(ev["timestep"].tolist(), ev["v_pre"].tolist()))
        assert got == sorted((t, float(u)) for t, u in expected)


def test_a_sample_larger_than_the_first_buffer_is_retried(monkeypatch):
    import sys
    sim = sys.modules["pyasync_snn.simulate"]
    net, batch, _ = random_case([10, 8, 6, 4], n_samples=3, seed=14)
    reference = simulate(net, batch, schedule="momentum", group_size=1)
    monkeypatch.setattr(sim, "FIRST_CAPACITY", 4)
    retried = simulate(net, batch, schedule="momentum", group_size=1)
    assert np.array_equal(reference.indptr, retried.indptr)
    assert np.array_equal(reference.neuron, retried.neuron)


def test_a_trace_keeps_its_events_when_later_runs_reuse_the_event_slots():
    # the event slots are the same memory on every call of a thread (memory.reused_empty): what a
    # trace holds must be its own copy, left as it was by later runs, also after a retried buffer
    import sys
    sim = sys.modules["pyasync_snn.simulate"]
    net, batch, _ = random_case([10, 8, 6, 4], n_samples=3, seed=15)
    first = simulate(net, batch, schedule="momentum", group_size=1)
    kept = {name: getattr(first, name).copy() for name in ("neuron", "timestep", "v_pre", "refractory")}
    other, _, _ = random_case([10, 8, 6, 4], n_samples=3, seed=16)
    for capacity in (sim.FIRST_CAPACITY, 4):
        sim.FIRST_CAPACITY, saved = capacity, sim.FIRST_CAPACITY
        try:
            simulate(other, batch, schedule="layered")
        finally:
            sim.FIRST_CAPACITY = saved
    assert all(np.array_equal(kept[name], getattr(first, name)) for name in kept)
    again = simulate(net, batch, schedule="momentum", group_size=1)
    assert all(np.array_equal(kept[name], getattr(again, name)) for name in kept)


@pytest.mark.parametrize("delay", [0, 3])
def test_stop_on_output_is_a_prefix_of_the_full_run(delay):
    net, batch, _ = random_case([10, 8, 6, 4], n_samples=5, seed=15)
    full = simulate(net, batch, schedule="random", group_size=2, seed=5)
    stopped = simulate(net, batch, schedule="random", group_size=2, seed=5, stop_on_output=delay)
    assert stopped.stop_on_output == delay and full.stop_on_output is None  # None: no early stop
    assert stopped.n_events < full.n_events
    m, mf = stopped.metrics, full.metrics
    for b in range(len(batch)):
        a, f = event_tuples(stopped, b), event_tuples(full, b)
        assert a == f[:len(a)]
        first = mf.steps_to_first_output[b]
        if first < 0:
            assert a == f
            continue
        assert m.steps_to_first_output[b] == first
        assert m.steps_per_timestep[b].sum() <= first + delay
        steps_before = np.concatenate([[0], np.cumsum(m.steps_per_timestep[b])])
        ev = stopped.events(b)
        assert np.all(steps_before[ev["timestep"]] + ev["emitted_step"] <= first + delay)
        assert np.all(m.spikes_per_layer[b] <= mf.spikes_per_layer[b])


# ---------------------------------------------------------------- per-timestep latency, stop scope

def slow_timestep_latency(fired, label, out_lo, n_timesteps):
    """Spec section 7 from a list of fired spikes ``(neuron, timestep, fired_step)``: per
    timestep, the spikes with ``fired_step <= k`` where ``k`` is the fired step of the first
    output spike (of the label's output neuron); -1 when there is none."""
    to_output, to_correct = [], []
    for t in range(n_timesteps):
        in_t = [(i, k) for i, tt, k in fired if tt == t]
        for result, wanted in ((to_output, lambda i: i >= out_lo), (to_correct, lambda i: i == out_lo + label)):
            steps = [k for i, k in in_t if wanted(i)]
            result.append(sum(1 for _, k in in_t if k <= min(steps)) if steps else -1)
    return to_output, to_correct


@pytest.mark.parametrize("schedule,group_size,dropout", [("layered", 0, 0.0), ("momentum", 1, 0.0),
                                                         ("random", 2, 0.0), ("momentum", 3, 0.3)])
def test_timestep_latency_matches_a_slow_count_from_the_events(schedule, group_size, dropout):
    net, batch, _ = random_case([10, 8, 6, 4], n_samples=5, seed=16)
    trace = simulate(net, batch, schedule=schedule, group_size=group_size, seed=1, refractory_dropout=dropout)
    m = trace.metrics
    out_lo = sum(net.layer_sizes[1:-1])
    assert m.timestep_spikes_to_output.shape == (len(batch), batch.n_timesteps)
    for b in range(len(batch)):
        fired = event_tuples(trace, b, ("neuron", "timestep", "fired_step"))  # every spike is delivered
        to_output, to_correct = slow_timestep_latency(fired, int(batch.labels[b]), out_lo, batch.n_timesteps)
        assert m.timestep_spikes_to_output[b].tolist() == to_output
        assert m.timestep_spikes_to_correct[b].tolist() == to_correct
    has = m.timestep_spikes_to_output >= 0
    assert 0 < has.mean() < 1 and (m.timestep_spikes_to_correct >= 0).any()
    s = m.summary()
    assert s["timestep_spikes_to_output"] == pytest.approx(m.timestep_spikes_to_output[has].mean())
    assert s["timestep_output_fraction"] == pytest.approx(has.mean())
    assert s["timestep_correct_fraction"] == pytest.approx(np.mean(m.timestep_spikes_to_correct >= 0))


@pytest.mark.parametrize("schedule,group_size,delay", [("random", 2, 0), ("random", 2, 2), ("momentum", 1, 0),
                                                       ("momentum", 1, 2), ("layered", 0, 0)])
def test_stop_scope_timestep_drops_what_is_pending_and_the_next_timestep_starts_normally(
        schedule, group_size, delay):
    # (layered with a delay >= 1 drains every queue: only output spikes are pending after them)
    net, batch, x = random_case([10, 16, 16, 6], n_samples=5, seed=17)
    full = simulate(net, batch, schedule=schedule, group_size=group_size, seed=5, momentum_noise=0.0, dtype="float64")
    stopped = simulate(net, batch, schedule=schedule, group_size=group_size, seed=5, momentum_noise=0.0, dtype="float64",
                       stop_on_output=delay, stop_scope="timestep")
    assert (stopped.stop_on_output, stopped.stop_scope) == (delay, "timestep")
    m, mf = stopped.metrics, full.metrics
    out_lo = sum(net.layer_sizes[1:-1])
    n_layers = len(net.weights)
    later_outputs = n_dropped = 0
    for b in range(len(batch)):
        ev, evf = stopped.events(b), full.events(b)
        # every spike that fired, delivered or not, replayed with the recorded groups (spec rules,
        # membranes carried over, dropped spikes never delivered)
        fired = [e[:3] for e in replay(net.weights, net.threshold, net.beta, x[b], ev)]
        delivered = sorted(event_tuples(stopped, b, ("neuron", "timestep", "fired_step")))
        assert set(delivered) <= set(fired)
        layer = np.searchsorted(np.cumsum(net.layer_sizes[1:]), [i for i, _, _ in fired], side="right")
        assert m.spikes_per_layer[b].tolist() == np.bincount(layer, minlength=n_layers).tolist()
        first_t = None
        for t in range(batch.n_timesteps):
            out_steps = [k for i, tt, k in fired if tt == t and i >= out_lo]
            emitted = ev["emitted_step"][ev["timestep"] == t]
            undelivered = sorted(set(e for e in fired if e[1] == t) - set(delivered))
            n_dropped += len(undelivered)
            if not out_steps:   # no output: the timestep runs until its queue is empty
                assert not undelivered
                continue
            first = min(out_steps)
            later_outputs += first_t is not None
            first_t = t if first_t is None else first_t
            # nothing is delivered after the stop; the stop came exactly at first + delay unless
            # the queue ran empty before
            assert emitted.max(initial=0) <= first + delay
            assert m.steps_per_timestep[b, t] == emitted.max(initial=0)
            if undelivered:
                assert m.steps_per_timestep[b, t] == first + delay
        # up to the stop in the first timestep with an output spike, the run is the unstopped one
        if first_t is None:
            assert event_tuples(stopped, b) == event_tuples(full, b)
            continue
        k_stop = m.steps_per_timestep[b, first_t]
        before = (evf["timestep"] < first_t) | ((evf["timestep"] == first_t) & (evf["emitted_step"] <= k_stop))
        n_before = int(before.sum())
        assert event_tuples(stopped, b)[:n_before] == event_tuples(full, b)[:n_before]
        assert np.all(ev["timestep"][n_before:] > first_t)
        assert m.timestep_spikes_to_output[b, first_t] == mf.timestep_spikes_to_output[b, first_t]
        np.testing.assert_array_equal(m.timestep_spikes_to_output[b, :first_t], -1)
        # the per-timestep latency is counted over every spike that fired, delivered or not
        assert m.timestep_spikes_to_output[b].tolist() == \
            slow_timestep_latency(fired, int(batch.labels[b]), out_lo, batch.n_timesteps)[0]
        # predictions use the output counts of all timesteps (undelivered output spikes included)
        outputs = [i - out_lo for i, _, _ in fired if i >= out_lo]
        assert stopped.output_counts[b].tolist() == np.bincount(outputs, minlength=net.n_outputs).tolist()
        assert m.count_prediction[b] == np.argmax(stopped.output_counts[b])
    assert later_outputs > 0, "no timestep after a stop produced an output spike"
    assert n_dropped > 0, "no pending spike was dropped"


def test_stop_scope_is_validated_and_recorded_gradients_refuse_it():
    from pyasync_snn import UserError
    from pyasync_snn.gradients import loss_and_grad
    net, batch, _ = random_case([10, 8, 4], n_samples=2, seed=18)
    with pytest.raises(UserError, match="stop scope"):
        simulate(net, batch, schedule="momentum", group_size=1, stop_on_output=0, stop_scope="step")
    trace = simulate(net, batch, schedule="momentum", group_size=1, stop_on_output=1, stop_scope="timestep")
    with pytest.raises(UserError):
        loss_and_grad(net, batch, trace=trace)


@pytest.mark.parametrize("schedule, group_size, dropout", [("layered", 0, 0.0), ("momentum", 1, 0.0),
                                                           ("random", 2, 0.3), ("momentum", 3, 0.5)])
def test_the_kernel_counts_every_check(schedule, group_size, dropout):
    """``metrics.checks`` = the checks of a slow replay by the rules (non-refractory neurons that
    receive non-zero current), refractory dropout included."""
    net, batch, x = random_case([9, 7, 5, 3], n_samples=4, seed=21)
    trace = simulate(net, batch, schedule=schedule, group_size=group_size, seed=2, refractory_dropout=dropout)
    for b in range(len(batch)):
        _, checks = replay(net.weights, net.threshold, net.beta, x[b], trace.events(b), count_checks=True)
        assert trace.metrics.checks[b] == checks


@pytest.mark.parametrize("scope", ["sample", "timestep"])
def test_check_counts_are_exact_under_an_early_stop(scope):
    """A stopped run counts only the checks it ran: those the replay logs (neurons whose membrane
    was compared with the threshold), though the trace lacks the spikes left undelivered."""
    from pyasync_snn.inspection import replay as replay_membranes
    net, batch, x = random_case([9, 7, 5, 3], n_samples=4, seed=22)
    trace = simulate(net, batch, schedule="random", group_size=1, seed=1, stop_on_output=1, stop_scope=scope)
    for b in range(len(batch)):
        r = replay_membranes(trace, b, net, x[b], neurons="all")
        assert trace.metrics.checks[b] == np.isfinite(r.u).sum()


def test_the_kernel_layout_is_kept_only_for_read_only_weights():
    from pyasync_snn.optim import Adam
    rng = np.random.default_rng(5)
    net = Network.xavier([12, 9, 4], seed=5)
    batch = EventBatch.from_dense((rng.random((3, 6, 12)) < 0.4).astype(int), rng.integers(0, 4, 3))
    # writable weights: changed in place, the next simulation sees the change (nothing kept)
    w = [a.copy() for a in net.weights]
    mutable = Network(tuple(w), net.threshold, net.beta)
    before = simulate(mutable, batch, schedule="layered", dtype="float64")
    w[0] *= 3.0
    after = simulate(mutable, batch, schedule="layered", dtype="float64")
    expected = simulate(Network(tuple(a.copy() for a in w), net.threshold, net.beta), batch, schedule="layered",
                        dtype="float64")
    assert not np.array_equal(before.v_pre, after.v_pre)
    np.testing.assert_array_equal(after.v_pre, expected.v_pre)
    # the optimizer's weights are read-only: the network keeps one layout per dtype
    stepped = net.with_weights(Adam.for_weights(net.weights).step(net.weights, [np.ones(a.shape) for a in w]))
    assert not any(a.flags.writeable for a in stepped.weights)
    with pytest.raises(ValueError):
        stepped.weights[0][0, 0] = 1.0
    assert stepped.kernel_arrays("float32") is stepped.kernel_arrays("float32")
    assert stepped.kernel_arrays("float32").w is stepped.kernel_arrays("float32", backward=True).w
    assert stepped.kernel_arrays("float64").w.dtype == np.float64
    assert mutable.kernel_arrays("float32") is not mutable.kernel_arrays("float32")


@pytest.mark.parametrize("spelling", [[300, 256, 10], [6, 5, 3], "1x4x4,c2k3p1,3"])
def test_unflatten_inverts_the_kernel_layout(spelling):
    # 300 x 256 weights are copied back on threads (network.unflatten), the others in one go
    net = Network.xavier(spelling, seed=0)
    got = net.unflatten(net.kernel_arrays("float64").w)
    assert [g.shape for g in got] == [w.shape for w in net.weights]
    assert all(np.array_equal(g, w) for g, w in zip(got, net.weights))
