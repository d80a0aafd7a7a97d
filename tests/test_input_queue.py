"""Inputs in the queue (``input_queue``, docs/semantics.md "Inputs in the queue"): input spikes
compete with network spikes for the F slots of each forward step.

- with room for every pending spike (layered, or F unbounded) the run is prioritised injection
  shifted by one step: same spikes, same ``v_pre``, every step one later, plus one event per
  queued input;
- the order of the queue: momentum by count (ties: lower channel first, inputs before neurons);
- gradients equal the autograd replay (dense and, through the dense equivalent, conv);
- the trace file records it, and only such a trace may hold input ids.
"""
import h5py
import numpy as np
import pytest

from pyasync_snn import EventBatch, Network, UserError, io, simulate
from pyasync_snn.gradients import loss_and_grad

from autograd_reference import batch_loss_and_grad
from test_conv import MIXED, SMALL, assert_close, dense_network, fold_all, make_case

DENSE = "12,7,6,4"


def run(net, batch, schedule, group_size, input_queue, **kwargs):
    return simulate(net, batch, schedule=schedule, group_size=group_size, seed=5, momentum_noise=0.0,
                    dtype="float64", input_queue=input_queue, **kwargs)


@pytest.mark.parametrize("spelling", [DENSE, MIXED])
@pytest.mark.parametrize("schedule,group_size", [("layered", 1), ("momentum", 0), ("random", 0)])
def test_with_room_for_all_it_equals_prioritised_injection_one_step_later(spelling, schedule, group_size):
    net, batch = make_case(spelling, seed=1)
    injected = run(net, batch, schedule, group_size, False)
    queued = run(net, batch, schedule, group_size, True)
    assert queued.input_queue and not injected.input_queue
    assert injected.n_events > 100
    for b in range(len(batch)):
        a, q = injected.events(b), queued.events(b)
        is_input = q["neuron"] < 0
        for key in ("neuron", "timestep", "v_pre", "refractory"):
            assert np.array_equal(a[key], q[key][~is_input]), key
        assert np.array_equal(a["fired_step"] + 1, q["fired_step"][~is_input])
        assert np.array_equal(a["emitted_step"] + 1, q["emitted_step"][~is_input])
        # one queued input per (timestep, channel) with spikes, count as v_pre, all delivered at step 1
        x = batch.dense(b)
        t, c = np.nonzero(x)
        assert np.array_equal(q["timestep"][is_input], t)
        assert np.array_equal(-1 - q["neuron"][is_input], c)  # ascending channel within the group
        assert np.array_equal(q["v_pre"][is_input], x[t, c])
        assert np.all(q["fired_step"][is_input] == 0) and np.all(q["emitted_step"][is_input] == 1)
        assert not q["refractory"][is_input].any()
    assert np.array_equal(injected.output_counts, queued.output_counts)
    assert np.array_equal(injected.metrics.sops, queued.metrics.sops)
    assert np.array_equal(injected.metrics.spikes_per_layer, queued.metrics.spikes_per_layer)
    has_input = np.stack([batch.dense(b).sum(axis=1) > 0 for b in range(len(batch))])
    assert np.array_equal(injected.metrics.steps_per_timestep + has_input,
                          queued.metrics.steps_per_timestep)
    assert np.array_equal(injected.metrics.timestep_spikes_to_output, queued.metrics.timestep_spikes_to_output)


def test_momentum_orders_inputs_by_count_then_channel_and_before_neurons():
    # weak weights: every network spike has v_pre < 1 <= every input's count, so at F = 1 all the
    # inputs of a timestep go first: larger count first, ties to the lower channel
    net = Network((np.full((3, 6), 0.32), np.full((2, 3), 0.31)))
    x = np.zeros((1, 2, 6), int)
    x[0, 0, [1, 4, 5]] = 1
    x[0, 0, 3] = 2
    x[0, 1, [2, 0]] = 1
    batch = EventBatch.from_dense(x, [0])
    trace = run(net, batch, "momentum", 1, True)
    ev = trace.events(0)
    order = [(int(t), -1 - int(i)) for t, i in zip(ev["timestep"], ev["neuron"]) if i < 0]
    assert order == [(0, 3), (0, 1), (0, 4), (0, 5), (1, 0), (1, 2)]
    first_neuron = np.flatnonzero(ev["neuron"] >= 0)[0]
    assert ev["timestep"][first_neuron] == 0 and ev["emitted_step"][first_neuron] == 5  # after the 4 inputs
    assert np.all(ev["emitted_step"][:4] == [1, 2, 3, 4])


@pytest.mark.parametrize("schedule,group_size", [("layered", 1), ("momentum", 1), ("random", 2), ("momentum", 3)])
def test_gradient_equals_the_autograd_replay(schedule, group_size):
    net, batch = make_case(DENSE, seed=3, n_samples=3, n_timesteps=6)
    trace = run(net, batch, schedule, group_size, True, refractory_dropout=0.2 * (group_size == 3))
    assert (trace.neuron < 0).sum() > 20 and (trace.neuron >= 0).sum() > 50
    for loss in ("rate", "count"):
        value, grads = loss_and_grad(net, batch, trace=trace, loss=loss)
        ref_value, ref_grads = batch_loss_and_grad(list(net.weights), net.threshold, net.beta, batch, trace,
                                                   loss=loss)
        assert value == pytest.approx(ref_value, rel=1e-12)
        assert_close(grads, ref_grads, rtol=1e-8, atol_scale=1e-13)


@pytest.mark.parametrize("schedule,group_size", [("momentum", 1), ("random", 2)])
def test_conv_gradient_equals_the_autograd_replay(schedule, group_size):
    net, batch = make_case(SMALL, seed=12, scale=2.0, n_samples=2, n_timesteps=5, density=0.35)
    trace = run(net, batch, schedule, group_size, True)
    assert (trace.neuron >= 0).sum() > 20
    value, grads = loss_and_grad(net, batch, trace=trace)
    dense = dense_network(net)
    ref_value, ref_dense = batch_loss_and_grad(list(dense.weights), dense.threshold, dense.beta, batch, trace)
    assert value == pytest.approx(ref_value, rel=1e-12)
    assert_close(grads, fold_all(net, ref_dense), rtol=1e-8, atol_scale=1e-13)


def test_trace_file_records_it(tmp_path):
    net, batch = make_case(DENSE, seed=1, n_samples=2)
    trace = run(net, batch, "momentum", 2, True)
    io.write_trace(tmp_path / "t.h5", trace)
    with h5py.File(tmp_path / "t.h5", "r") as f:
        assert f.attrs["input_queue"] == 1
    back = io.read_trace(tmp_path / "t.h5")
    assert back.input_queue and np.array_equal(back.neuron, trace.neuron)
    value, grads = loss_and_grad(net, batch, trace=back)
    assert np.allclose(value, loss_and_grad(net, batch, trace=trace)[0])
    with h5py.File(tmp_path / "t.h5", "r+") as f:  # the same events claimed as injected: refused
        f.attrs["input_queue"] = 0
    with pytest.raises(UserError, match="events/neuron"):
        io.read_trace(tmp_path / "t.h5")


def test_queued_input_steps_compile_to_placeholders_without_the_queue():
    # Run.input_queue / the kernels' `queued` flag is None without --input-queue: no queued-input code
    from numba import njit

    from pyasync_snn import Network
    from pyasync_snn.kernels.steps import send_queued

    @njit
    def sent(queued, net, acc, dirty):
        return send_queued(queued, net, 3, 2, acc, dirty)

    net = Network.xavier([6, 5, 2], seed=0).kernel_arrays("float64")
    for queued, reaches in ((True, True), (None, False)):
        acc, dirty = np.zeros(int(net.offsets[-1])), np.zeros(int(net.block_off[-1]), dtype=bool)
        assert (sent(queued, net, acc, dirty) == 10) == reaches and acc.any() == reaches
