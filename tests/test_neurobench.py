"""NeuroBench metrics (docs/semantics.md, "NeuroBench metrics"): each against a hand computation."""
import json

import numpy as np
import pytest
from click.testing import CliRunner

from pyasync_snn import neurobench
from pyasync_snn.cli import main
from pyasync_snn.datasets import random_events
from pyasync_snn.evaluation import evaluate, evaluate_source
from pyasync_snn.events import EventBatch
from pyasync_snn.io import write_dataset, write_model
from pyasync_snn.network import Network
from pyasync_snn.simulate import simulate

# 3 inputs -> 2 -> 2 outputs, 3 of 6 and 3 of 4 weights zero. Input channel nonzero fan-outs:
# c0 1, c1 0, c2 2 (of 2 targets each); hidden neuron 0 reaches output 0 only, neuron 1 nothing.
W1 = np.array([[1.0, 0.0, 1.0], [0.0, 0.0, 0.1]])
W2 = np.array([[1.0, 0.0], [0.0, 0.0]])


def hand_network():
    return Network((W1, W2))  # threshold 0.3, beta 0.9


def hand_batch():
    """Sample 0, T = 2: t0 channels 0, 1, 2 once each; t1 channel 0 twice (one item of count 2)
    and channel 2 once. Sample 1: no input at all.

    By hand (every schedule): t0 hidden 0 gets 2.0 and fires, hidden 1 gets 0.1 and does not; its
    spike makes output 0 fire (1.0). t1: hidden 0 gets 3.0 and fires, hidden 1 reaches
    0.09 + 0.1 < 0.3; output 0 fires again. Sample 0: 4 spikes (2 hidden, 2 output).
    Effective ACs: t0 inputs 1 + 0 + 2, t1 channel 2: 2, hidden spikes 2 x 1 = 7;
    Effective MACs: t1 channel 0 (count 2): 1. Kernel SOPs: inputs (3 + 2 + 1) x 2 = 12, hidden
    spikes 2 x 2 = 4: 16. Dense: T x (3 x 2 + 2 x 2) = 20 per sample.
    """
    return EventBatch(indptr=[0, 6, 6], timestep=[0, 0, 0, 1, 1, 1], unit=[0, 1, 2, 0, 0, 2], labels=[0, 0],
                      n_inputs=3, n_timesteps=2)


def test_static_metrics_by_hand():
    net = hand_network()
    assert neurobench.parameter_count(net) == 10
    assert neurobench.connection_sparsity(net) == pytest.approx(6 / 10)
    assert neurobench.footprint(net, "float32") == 12 * 4          # 10 weights, threshold, beta
    assert neurobench.footprint(net, "float64") == 12 * 8
    fan = neurobench.fanouts(net)
    assert fan.targets.tolist() == [2, 2, 2, 2, 2, 0, 0]           # 3 inputs, 2 hidden, 2 outputs
    assert fan.nonzero.tolist() == [1, 0, 2, 1, 0, 0, 0]
    assert neurobench.dense_synops(net, 2) == 20
    # a weight that is zero only in float32 (an underflow) counts as zero there
    tiny = Network((np.array([[1e-50, 1.0]]), np.array([[1.0]])))
    assert neurobench.connection_sparsity(tiny, "float32") == pytest.approx(1 / 3)
    assert neurobench.connection_sparsity(tiny, "float64") == 0


def test_conv_fanouts_and_dense_by_hand():
    # 1x3x3 input, one 2x2 kernel (stride 1) -> a 1x2x2 map -> 2 outputs. Pixel (y, x) reaches the
    # outputs whose window covers it: corners 1, edges 2, centre 4 (16 connections = 4 outputs x
    # 4 taps). Only tap (0, 0) is non-zero: pixel (y, x) reaches output (y, x) through it iff y, x < 2.
    net = Network.xavier("1x3x3,c1k2,2", seed=0)
    kernel = np.zeros((1, 1, 2, 2))
    kernel[0, 0, 0, 0] = 0.5
    net = net.with_weights([kernel, net.weights[1]])
    fan = neurobench.fanouts(net)
    assert fan.targets[:9].tolist() == [1, 2, 1, 2, 4, 2, 1, 2, 1]
    assert fan.nonzero[:9].tolist() == [1, 1, 0, 1, 1, 0, 0, 0, 0]
    assert fan.targets[9:].tolist() == [2, 2, 2, 2, 0, 0] and fan.nonzero[9:].tolist() == [2, 2, 2, 2, 0, 0]
    assert neurobench.dense_synops(net, 5) == 5 * (16 + 4 * 2)
    assert neurobench.connection_sparsity(net) == pytest.approx(3 / 12)
    assert neurobench.parameter_count(net) == 4 + 8
    # zero padding: a 3x3 kernel, padding 1, on a 2x2 map: every output sees the 4 real pixels only
    padded = Network.xavier("1x2x2,c1k3p1,2", seed=0)
    assert neurobench.dense_synops(padded, 1) == 4 * 4 + 4 * 2


@pytest.mark.parametrize("schedule,group_size,input_queue", [("layered", 0, False), ("momentum", 1, False),
                                                             ("random", 2, False), ("layered", 0, True)])
def test_effective_synops_and_activation_sparsity_by_hand(schedule, group_size, input_queue):
    net, batch = hand_network(), hand_batch()
    trace = simulate(net, batch, schedule=schedule, group_size=group_size, input_queue=input_queue)
    assert trace.metrics.spikes_per_layer.tolist() == [[2, 2], [0, 0]]
    assert trace.metrics.sops.tolist() == [16, 0]
    acs, macs = neurobench.effective_synops(net, trace, batch)
    assert acs.tolist() == [7, 0] and macs.tolist() == [1, 0]
    s = evaluate_source(net, batch, schedule, group_size, input_queue=input_queue)
    assert s["synaptic_operations"] == {"Effective_MACs": 0.5, "Effective_ACs": 3.5, "Dense": 20.0}  # per sample
    assert s["activation_sparsity"] == pytest.approx(1 - 4 / (2 * 4 * 2))  # 4 spikes, 2 samples x 4 neurons x 2 t
    assert (s["connection_sparsity"], s["footprint"], s["parameter_count"]) == (pytest.approx(0.6), 48, 10)


def test_a_sample_scoped_stop_delivers_only_the_timesteps_that_ran():
    """Output 0 fires at forward step 1 of t0; a delay-0 sample stop ends the sample there: t1
    (with the count-2 item, the only MAC) never runs, its inputs are never delivered."""
    net, batch = hand_network(), hand_batch()
    trace = simulate(net, batch, schedule="layered", group_size=0, stop_on_output=0)
    assert trace.metrics.sops.tolist() == [6 + 2, 0]
    acs, macs = neurobench.effective_synops(net, trace, batch)
    assert acs.tolist() == [3 + 1, 0] and macs.tolist() == [0, 0]
    s = evaluate_source(net, batch, "layered", 0, stop_on_output=0)
    assert s["synaptic_operations"]["Effective_ACs"] == 2 and s["synaptic_operations"]["Effective_MACs"] == 0
    assert s["activation_sparsity"] == pytest.approx(1 - 2 / (2 * 4 * 2))  # t1 never ran: its neurons are silent
    assert s["synaptic_operations"]["Dense"] == 20  # the dense equivalent runs every timestep


def test_effective_acs_equal_the_kernels_sops_without_zero_weights_or_repeats():
    batch = random_events(6, 20, 12, 0.3, 3, seed=4)  # Bernoulli inputs: no repeated pair
    for layers in ([20, 12, 3], "1x4x5,c3k2,3"):
        net = Network.xavier(layers, seed=1, threshold=0.1)
        for kwargs in ({}, {"stop_on_output": 0}, {"stop_on_output": 1, "stop_scope": "timestep"},
                       {"input_queue": True}, {"input_queue": True, "stop_on_output": 0}):
            trace = simulate(net, batch, schedule="momentum", group_size=2, **kwargs)
            acs, macs = neurobench.effective_synops(net, trace, batch)
            assert trace.metrics.sops.sum() > 0
            assert np.array_equal(acs, trace.metrics.sops) and not macs.any(), (layers, kwargs)


def test_tables_that_are_not_the_kernels_are_refused():
    net, batch = hand_network(), hand_batch()
    trace = simulate(net, batch, schedule="layered", group_size=0)
    other = neurobench.Fanout(neurobench.fanouts(net).targets + 1, neurobench.fanouts(net).nonzero)
    with pytest.raises(RuntimeError, match="kernel"):
        neurobench.effective_synops(net, trace, batch, other)


def test_evaluate_json_has_the_neurobench_metrics(tmp_path):
    write_model(tmp_path / "m.h5", hand_network())
    write_dataset(tmp_path / "d.h5", hand_batch(), 2)
    out = CliRunner().invoke(main, ["evaluate", str(tmp_path / "m.h5"), str(tmp_path / "d.h5"),
                                    "--schedule", "layered", "--json"])
    assert out.exit_code == 0, out.output
    values = json.loads(out.output)
    assert values["synaptic_operations"] == {"Effective_MACs": 0.5, "Effective_ACs": 3.5, "Dense": 20.0}
    assert values["activation_sparsity"] == pytest.approx(0.75)
    assert values["connection_sparsity"] == pytest.approx(0.6)
    assert (values["footprint"], values["parameter_count"]) == (48, 10)
    assert values["sops_per_sample"] == 8.0
    assert evaluate(hand_network(), tmp_path / "d.h5", schedule="layered", group_size=0)["footprint"] == 48
    table = CliRunner().invoke(main, ["evaluate", str(tmp_path / "m.h5"), str(tmp_path / "d.h5"),
                                      "--schedule", "layered"])
    assert table.exit_code == 0, table.output
    assert "NeuroBench: synaptic_operations per sample Effective_ACs 3.5, Effective_MACs 0.5, Dense 20" in table.output
    assert "activation_sparsity 0.7500; connection_sparsity 0.6000; footprint 48 bytes (10 parameters)" in table.output
