"""The hand-written backward pass against an independent autograd replay of the same trace."""
import numpy as np
import pytest

from pyasync_snn import EventBatch, Network, UserError, simulate
from pyasync_snn.gradients import loss_and_grad
from pyasync_snn.trace import UNBOUNDED

from autograd_reference import batch_loss_and_grad

NETS = {"one hidden": [7, 6, 3], "three hidden": [6, 6, 5, 5, 3]}
CASES = [("layered", 1)] + [(s, f) for s in ("random", "momentum") for f in (1, 2, 7, UNBOUNDED)]


def make_case(sizes, seed, n_samples=3, n_timesteps=7):
    rng = np.random.default_rng(seed)
    net = Network.xavier(sizes, seed=seed)
    net = Network(tuple(w * 1.6 for w in net.weights), threshold=0.3, beta=0.9)
    x = (rng.random((n_samples, n_timesteps, sizes[0])) < 0.35).astype(int)
    return net, EventBatch.from_dense(x, rng.integers(0, sizes[-1], n_samples))


def assert_same_gradient(got, expected, rtol=1e-8):
    (loss, grads), (ref_loss, ref_grads) = got, expected
    assert loss == pytest.approx(ref_loss, rel=1e-12)
    for g, r in zip(grads, ref_grads):
        scale = np.abs(r).max()
        assert scale > 0
        np.testing.assert_allclose(g, r, rtol=0, atol=rtol * scale)


@pytest.mark.parametrize("net_name", list(NETS))
@pytest.mark.parametrize("schedule, group_size", CASES)
def test_backward_equals_autograd_replay(net_name, schedule, group_size):
    for variant, (loss, surrogate, dropout) in enumerate([("rate", "atan", 0.0), ("count", "fast-sigmoid", 0.3),
                                                          ("rate", "fast-sigmoid", 0.3), ("count", "atan", 0.0)]):
        net, batch = make_case(NETS[net_name], seed=variant + 10 * group_size)
        trace = simulate(net, batch, schedule=schedule, group_size=group_size, seed=variant, refractory_dropout=dropout,
                         dtype="float64")
        assert trace.n_events > 10
        if dropout:
            assert not trace.refractory.all() or schedule == "layered"
        got = loss_and_grad(net, batch, trace=trace, loss=loss, surrogate=surrogate)
        expected = batch_loss_and_grad(list(net.weights), net.threshold, net.beta, batch, trace,
                                       loss, surrogate, None)
        assert_same_gradient(got, expected)


VARIANTS = [("exact", True), ("reference", False), ("reference", True)]


@pytest.mark.parametrize("mode, detach_reset", VARIANTS)
@pytest.mark.parametrize("net_name", list(NETS))
@pytest.mark.parametrize("schedule, group_size", [("layered", 1), ("random", 1), ("momentum", 1),
                                                  ("momentum", 2), ("random", UNBOUNDED)])
def test_gradient_variants_equal_their_autograd_replay(mode, detach_reset, net_name, schedule, group_size):
    """Each alternative graph (docs/algorithm.md, "Gradient modes") against its own autograd replay."""
    for variant, (loss, surrogate, dropout) in enumerate([("rate", "atan", 0.0), ("count", "fast-sigmoid", 0.3)]):
        net, batch = make_case(NETS[net_name], seed=variant + 10 * group_size + 3)
        trace = simulate(net, batch, schedule=schedule, group_size=group_size, seed=variant, refractory_dropout=dropout,
                         dtype="float64")
        got = loss_and_grad(net, batch, trace=trace, loss=loss, surrogate=surrogate, gradient=mode,
                            detach_reset=detach_reset)
        expected = batch_loss_and_grad(list(net.weights), net.threshold, net.beta, batch, trace,
                                       loss, surrogate, None, mode, detach_reset)
        assert_same_gradient(got, expected)
        exact = loss_and_grad(net, batch, trace=trace, loss=loss, surrogate=surrogate)
        assert any(not np.allclose(g, e) for g, e in zip(got[1], exact[1]))  # a different graph


def test_unknown_gradient_mode_is_refused():
    net, batch = make_case(NETS["one hidden"], seed=3)
    with pytest.raises(UserError, match="unknown gradient mode 'autograd'"):
        loss_and_grad(net, batch, schedule="momentum", group_size=1, gradient="autograd")


def test_surrogate_parameter_is_used():
    net, batch = make_case(NETS["one hidden"], seed=3)
    trace = simulate(net, batch, schedule="momentum", group_size=2, dtype="float64")
    for surrogate, param in (("atan", 0.7), ("fast-sigmoid", 4.0)):
        got = loss_and_grad(net, batch, trace=trace, surrogate=surrogate, surrogate_param=param)
        default = loss_and_grad(net, batch, trace=trace, surrogate=surrogate)
        expected = batch_loss_and_grad(list(net.weights), net.threshold, net.beta, batch, trace,
                                       "rate", surrogate, param)
        assert_same_gradient(got, expected)
        assert not np.allclose(got[1][0], default[1][0])


def test_band_zero_is_exact_and_a_band_approximates():
    net, batch = make_case(NETS["three hidden"], seed=4)
    trace = simulate(net, batch, schedule="random", group_size=2, dtype="float64")
    exact = loss_and_grad(net, batch, trace=trace)
    wide = loss_and_grad(net, batch, trace=trace, band=1e6)
    narrow = loss_and_grad(net, batch, trace=trace, band=0.05)
    for e, w in zip(exact[1], wide[1]):
        np.testing.assert_array_equal(e, w)
    assert any(not np.allclose(e, n) for e, n in zip(exact[1], narrow[1]))


def test_simulates_first_when_no_trace_is_given():
    net, batch = make_case(NETS["one hidden"], seed=5)
    trace = simulate(net, batch, schedule="momentum", group_size=3, seed=2)
    direct = loss_and_grad(net, batch, schedule="momentum", group_size=3, seed=2)
    via_trace = loss_and_grad(net, batch, trace=trace)
    assert direct[0] == via_trace[0]
    for a, b in zip(direct[1], via_trace[1]):
        np.testing.assert_array_equal(a, b)


def test_float32_trace_replays_bitwise():
    net, batch = make_case(NETS["three hidden"], seed=6)
    trace = simulate(net, batch, schedule="momentum", group_size=1)  # float32 default
    loss, grads = loss_and_grad(net, batch, trace=trace)
    ref = loss_and_grad(net, batch, trace=simulate(net, batch, schedule="momentum", group_size=1, dtype="float64"))
    assert np.isfinite(loss) and all(np.all(np.isfinite(g)) for g in grads)
    assert loss == pytest.approx(ref[0], rel=1e-3)


def test_a_trace_that_does_not_match_is_refused():
    net, batch = make_case(NETS["one hidden"], seed=7)
    trace = simulate(net, batch, schedule="momentum", group_size=1, dtype="float64")
    other = Network(tuple(w * 1.3 for w in net.weights))
    with pytest.raises(UserError, match="does not replay"):
        loss_and_grad(other, batch, trace=trace)
    with pytest.raises(UserError, match="network"):
        loss_and_grad(Network.xavier([7, 5, 3]), batch, trace=trace)
    with pytest.raises(UserError, match="samples"):
        loss_and_grad(net, batch.take(0, 2), trace=trace)
    shifted = EventBatch(batch.indptr, (batch.timestep + 1) % batch.n_timesteps, batch.unit,
                         batch.labels, batch.n_inputs, batch.n_timesteps)
    with pytest.raises(UserError, match="does not replay"):
        loss_and_grad(net, shifted, trace=trace)


def test_a_stop_on_output_trace_is_refused():
    net, batch = make_case(NETS["one hidden"], seed=8)
    trace = simulate(net, batch, schedule="momentum", group_size=1, dtype="float64", stop_on_output=0)
    with pytest.raises(UserError, match="stop-on-output"):
        loss_and_grad(net, batch, trace=trace)


def test_gradient_does_not_depend_on_the_thread_count():
    import numba
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("needs at least 2 threads")
    net, batch = make_case(NETS["three hidden"], seed=9, n_samples=19)
    trace = simulate(net, batch, schedule="random", group_size=2, seed=1)
    one = loss_and_grad(net, batch, trace=trace, threads=1)
    many = loss_and_grad(net, batch, trace=trace, threads=numba.config.NUMBA_NUM_THREADS)
    assert one[0] == many[0]
    for a, b in zip(one[1], many[1]):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("n_samples", [1, 8, 19])
def test_input_layer_rows_summed_over_the_batch_equal_autograd_replay(n_samples):
    # the rows of a dense W_1 are summed for the whole batch at once (backward.input_rows), the other
    # weights in 8 partial-sum blocks; 19 samples deal 2-3 to each block, unevenly
    net, batch = make_case(NETS["three hidden"], seed=n_samples, n_samples=n_samples)
    trace = simulate(net, batch, schedule="momentum", group_size=2, seed=3, dtype="float64")
    got = loss_and_grad(net, batch, trace=trace)
    expected = batch_loss_and_grad(list(net.weights), net.threshold, net.beta, batch, trace, "rate", "atan", None)
    assert np.abs(got[1][0]).max() > 0
    assert_same_gradient(got, expected)
    # the mean over samples, each sample's gradient its own
    alone = [loss_and_grad(net, batch.take(b, b + 1), trace=trace.take(b, b + 1))[1][0] for b in range(n_samples)]
    np.testing.assert_allclose(got[1][0], np.mean(alone, axis=0), rtol=0, atol=1e-12 * np.abs(got[1][0]).max())


def test_detached_reset_removes_the_small_f_explosion():
    """The diagnosis of docs/algorithm.md section 6: at F = 1 an output neuron is checked once per
    delivered hidden spike, and the differentiated reset's gain 1 - h u > 1 (u < 0) compounds over
    those checks. Detached, the F = 1 gradient stays within a small factor of the layered one."""
    rng = np.random.default_rng(0)
    net = Network.xavier([200, 64, 10], seed=0)
    batch = EventBatch.from_dense((rng.random((8, 20, 200)) < 0.1).astype(int), rng.integers(0, 10, 8))
    traces = {name: simulate(net, batch, schedule=schedule, group_size=f, seed=0)
              for name, (schedule, f) in {"layered": ("layered", 0), "F=1": ("momentum", 1)}.items()}
    assert traces["F=1"].metrics.spikes_per_layer[:, 0].mean() > 100  # many output checks per timestep

    def growth(detach_reset):
        norm = {name: np.linalg.norm(loss_and_grad(net, batch, trace=trace, detach_reset=detach_reset)[1][0])
                for name, trace in traces.items()}
        return norm["F=1"] / norm["layered"]

    assert growth(False) > 50
    assert growth(True) < 10


def test_a_float32_overflow_at_small_f_points_to_the_detached_reset():
    """Adjoints are in the run's dtype: at F = 1 the differentiated reset's compounding (about
    1e77 here in float64) overflows float32, and the error says what to do; detached, the same
    trace gives a finite gradient."""
    rng = np.random.default_rng(0)
    net = Network.xavier([700, 256, 256, 20], seed=0)
    batch = EventBatch.from_dense((rng.random((2, 100, 700)) < 0.05).astype(int), np.array([3, 7]))
    trace = simulate(net, batch, schedule="momentum", group_size=1)
    with pytest.raises(UserError, match="detach-reset"):
        loss_and_grad(net, batch, trace=trace)
    loss, grads = loss_and_grad(net, batch, trace=trace, detach_reset=True)
    assert np.isfinite(loss) and all(np.all(np.isfinite(g)) for g in grads)


def test_gradient_norms_are_the_frobenius_norms():
    from pyasync_snn.gradients import gradient_norms
    rng = np.random.default_rng(3)
    grads = [rng.normal(size=(5, 7)), rng.normal(size=(3, 5)) * 1e-3]
    assert gradient_norms(grads) == pytest.approx([np.sqrt((g ** 2).sum()) for g in grads], rel=1e-12)


@pytest.mark.parametrize("capacity", [0, 7])
def test_a_short_replay_log_buffer_gives_the_same_gradient(monkeypatch, capacity):
    # the replay writes its checks into buffers kept by the thread (gradients.replay_scratch), sized
    # from the trace's check counts; when they are short (a trace from a file without them: 0) the
    # kernel allocates a longer log: the same gradient, bit for bit
    import pyasync_snn.gradients as gradients
    net, batch = make_case(NETS["three hidden"], seed=5, n_samples=5)
    trace = simulate(net, batch, schedule="momentum", group_size=1, seed=2)
    sized = loss_and_grad(net, batch, trace=trace)
    monkeypatch.setattr(gradients, "log_capacity", lambda trace, n_neurons: capacity)
    short = loss_and_grad(net, batch, trace=trace)
    assert sized[0] == short[0]
    for a, b in zip(sized[1], short[1]):
        np.testing.assert_array_equal(a, b)


def test_check_counts_beyond_memory_are_refused_and_negative_ones_ignored():
    # the replay's log buffers are sized from the trace's check counts (a file may hold any value)
    from dataclasses import replace
    net, batch = make_case(NETS["three hidden"], seed=6, n_samples=3)
    trace = simulate(net, batch, schedule="momentum", group_size=2, seed=1)
    huge = replace(trace, metrics=replace(trace.metrics, checks=np.full(3, 10 ** 15)))
    with pytest.raises(UserError, match="check logs of the replay"):
        loss_and_grad(net, batch, trace=huge)
    negative = replace(trace, metrics=replace(trace.metrics, checks=np.full(3, -10 ** 9)))
    expected = loss_and_grad(net, batch, trace=trace)
    got = loss_and_grad(net, batch, trace=negative)
    assert got[0] == expected[0] and all(np.array_equal(a, b) for a, b in zip(got[1], expected[1]))
