"""Model exchange through NIR (``pyasync_snn/io/nir_graph.py``, ``docs/interop.md``).

- export then import is the identity on weights, geometry, beta and threshold (dense and conv);
- graphs built here with the ``nir`` package in the shapes exporters write (``Affine`` with a zero
  bias, per-neuron parameter arrays, ``r`` not 1, ``Flatten`` after a conv map) import, and their
  layered simulation equals an independent time-stepped LIF loop of NIR's forward-Euler step;
- every construct this model cannot represent is a one-line error that writes no file.
"""
import nir
import numpy as np
import pytest
from click.testing import CliRunner

from pyasync_snn import EventBatch, Network, UserError, io, simulate
from pyasync_snn.cli import main

from test_conv import dense_of

DT = 1e-3


def lif(shape, tau=0.01, r=None, threshold=0.3, v_leak=0.0, v_reset=0.0):
    """A LIF node with per-neuron arrays of ``shape`` (as exporters write them)."""
    ones = np.ones(shape)
    return nir.LIF(tau=tau * ones, r=(tau / DT if r is None else r) * ones, v_leak=v_leak * ones,
                   v_threshold=threshold * ones, v_reset=v_reset * ones)


def chain(*nodes, input_shape):
    """Input -> nodes... -> Output, named as snnTorch names them (0, 1, ...)."""
    named = {"input": nir.Input(input_type={"input": np.array(input_shape)})}
    named.update({str(k): node for k, node in enumerate(nodes)})
    out = nodes[-1].output_type["output"]
    named["output"] = nir.Output(output_type={"output": np.array(out)})
    names = list(named)
    return nir.NIRGraph(nodes=named, edges=list(zip(names[:-1], names[1:])))


def euler_lif_counts(weights, beta, threshold, x):
    """The time-stepped forward-Euler LIF of NIR with v_leak = v_reset = 0: per step
    ``v <- beta v + W s_prev``, spike if ``v > threshold``, reset to 0. ``weights``: dense
    matrices with the input scale folded in. Returns output spike counts ``(N, n_out)``."""
    counts = []
    for sample in x:
        v = [np.zeros(w.shape[0]) for w in weights]
        total = np.zeros(weights[-1].shape[0])
        for x_t in sample:
            s = x_t.astype(np.float64)
            for l, w in enumerate(weights):
                v[l] = beta * v[l] + w @ s
                s = (v[l] > threshold).astype(np.float64)
                v[l][s > 0] = 0.0
            total += s
        counts.append(total)
    return np.array(counts)


def random_input(n_samples, n_timesteps, n_inputs, seed, density=0.3):
    rng = np.random.default_rng(seed)
    return (rng.random((n_samples, n_timesteps, n_inputs)) < density).astype(int)


# ---------------------------------------------------------------- round trip
@pytest.mark.parametrize("spelling", ["20,8,5", "2x7x7,c3k3s2p1,c4k2,5", "1x6x5,c2k3x2,c3k2s2p1,4"])
def test_export_then_import_is_the_identity(tmp_path, spelling):
    net = Network.xavier(spelling, seed=1, beta=0.85, threshold=0.4)
    path = tmp_path / "net.nir"
    io.nir_graph.write_nir(path, net, DT)
    back = Network.from_nir(path, DT)
    assert back.spelling() == net.spelling() and back.convs == net.convs
    assert all(np.array_equal(a, b) for a, b in zip(back.weights, net.weights))
    assert back.beta == pytest.approx(net.beta, rel=1e-12) and back.threshold == net.threshold
    again = Network.from_nir(net.to_nir(DT), DT)  # the same through the API, in memory
    assert all(np.array_equal(a, b) for a, b in zip(again.weights, net.weights))


def test_cli_round_trip(tmp_path):
    model, graph, back = tmp_path / "m.h5", tmp_path / "m.nir", tmp_path / "back.h5"
    run = lambda *a: CliRunner().invoke(main, [str(x) for x in a])
    assert run("model", "init", "--layers", "2x6x6,c4k3s2p1,6", "--out", model).exit_code == 0
    result = run("model", "export", model, "--format", "nir", "--dt", DT, "--out", graph)
    assert result.exit_code == 0, result.output
    result = run("model", "import", graph, "--dt", DT, "--out", back)
    assert result.exit_code == 0, result.output
    a, b = io.read_model(model), io.read_model(back)
    assert a.spelling() == b.spelling() and all(np.array_equal(x, y) for x, y in zip(a.weights, b.weights))


# ---------------------------------------------------------------- graphs as exporters write them
def test_dense_graph_imports_and_simulates_like_euler_lif():
    rng = np.random.default_rng(0)
    w1, w2 = rng.normal(0, 0.5, (12, 20)), rng.normal(0, 1.0, (4, 12))
    tau, r = 0.008, 2.0  # beta = 1 - dt / tau = 0.875; input scale r dt / tau = 0.25
    graph = chain(nir.Affine(weight=w1, bias=np.zeros(12)), lif(12, tau, r),
                  nir.Linear(weight=w2), lif(4, tau, r), input_shape=(20,))
    net = Network.from_nir(graph, DT)
    assert net.beta == pytest.approx(0.875) and net.threshold == 0.3
    np.testing.assert_allclose(net.weights[0], 0.25 * w1)
    x = random_input(6, 15, 20, seed=1)
    trace = simulate(net, EventBatch.from_dense(x, np.zeros(6, int)), schedule="layered", dtype="float64")
    expected = euler_lif_counts([0.25 * w1, 0.25 * w2], 0.875, 0.3, x)
    assert expected.sum() > 20
    assert np.array_equal(trace.output_counts, expected)


def test_conv_graph_with_flatten_imports_and_simulates_like_euler_lif():
    rng = np.random.default_rng(3)
    k, w = rng.normal(0, 0.8, (3, 2, 3, 3)), rng.normal(0, 0.8, (4, 27))
    conv = nir.Conv2d(input_shape=(6, 6), weight=k, stride=2, padding=1, dilation=1, groups=1, bias=np.zeros(3))
    graph = chain(conv, lif((3, 3, 3)), nir.Flatten(input_type={"input": np.array([3, 3, 3])}, start_dim=0),
                  nir.Linear(weight=w), lif(4), input_shape=(2, 6, 6))
    net = Network.from_nir(graph, DT)
    assert net.spelling() == "2x6x6,c3k3s2p1,4"
    x = random_input(8, 30, 72, seed=2)
    trace = simulate(net, EventBatch.from_dense(x, np.zeros(8, int)), schedule="layered", dtype="float64")
    expected = euler_lif_counts([dense_of(k, net.convs[0]), w], net.beta, 0.3, x)
    assert expected.sum() > 20
    assert np.array_equal(trace.output_counts, expected)


# ---------------------------------------------------------------- what cannot be represented
def _bad_graphs():
    w1, w2 = np.full((3, 4), 0.5), np.full((2, 3), 0.5)
    ok = lambda: [nir.Linear(weight=w1), lif(3), nir.Linear(weight=w2), lif(2)]
    graphs = {
        "bias": chain(nir.Affine(weight=w1, bias=np.full(3, 0.1)), lif(3), nir.Linear(weight=w2), lif(2),
                      input_shape=(4,)),
        "beta per layer": chain(nir.Linear(weight=w1), lif(3, tau=0.01), nir.Linear(weight=w2), lif(2, tau=0.02),
                                input_shape=(4,)),
        "threshold per neuron": chain(nir.Linear(weight=w1), nir.LIF(tau=np.full(3, 0.01), r=np.full(3, 10.0),
                                                                       v_leak=np.zeros(3),
                                                                       v_threshold=np.array([0.3, 0.3, 0.4])),
                                      nir.Linear(weight=w2), lif(2), input_shape=(4,)),
        "reset": chain(nir.Linear(weight=w1), lif(3, v_reset=-0.1), nir.Linear(weight=w2), lif(2),
                       input_shape=(4,)),
        "leak": chain(nir.Linear(weight=w1), lif(3, v_leak=0.1), nir.Linear(weight=w2), lif(2), input_shape=(4,)),
        "unknown node": chain(nir.Linear(weight=w1), nir.Threshold(threshold=np.full(3, 0.3)),
                              nir.Linear(weight=w2), lif(2), input_shape=(4,)),
        "synaptic current": chain(nir.Linear(weight=w1), nir.CubaLIF(
            tau_syn=np.full(3, 0.005), tau_mem=np.full(3, 0.01), r=np.full(3, 10.0), v_leak=np.zeros(3),
            v_threshold=np.full(3, 0.3)), nir.Linear(weight=w2), lif(2), input_shape=(4,)),
    }
    recurrent = chain(*ok(), input_shape=(4,))
    recurrent.edges.append(("2", "1"))  # the second layer's neurons feed the first layer's again
    graphs["recurrent"] = recurrent
    branching = chain(*ok(), input_shape=(4,))
    branching.nodes["side"] = nir.Linear(weight=np.full((2, 3), 0.5))
    branching.edges.append(("1", "side"))
    graphs["branching"] = branching
    return graphs


BAD = {"bias": "bias", "beta per layer": "decay", "threshold per neuron": "differs between neurons",
       "reset": "v_reset", "leak": "v_leak", "unknown node": "Threshold", "synaptic current": "CubaLIF",
       "recurrent": "branches", "branching": "branches"}


@pytest.mark.parametrize("case", sorted(BAD))
def test_unrepresentable_graphs_are_one_line_errors_and_write_nothing(tmp_path, case):
    graph = _bad_graphs()[case]
    with pytest.raises(UserError) as err:
        Network.from_nir(graph, DT)
    assert "\n" not in str(err.value) and BAD[case] in str(err.value)
    path, out = tmp_path / "bad.nir", tmp_path / "model.h5"
    nir.write(str(path), graph)
    result = CliRunner().invoke(main, ["model", "import", str(path), "--dt", str(DT), "--out", str(out)])
    assert result.exit_code == 1 and result.output.startswith("Error:") and len(result.output.splitlines()) == 1
    assert BAD[case] in result.output
    assert not out.exists()


def test_cubalif_with_a_one_step_synapse_is_a_lif():
    w1, w2 = np.full((3, 4), 0.5), np.full((2, 3), 0.5)
    cuba = nir.CubaLIF(tau_syn=np.full(3, DT), tau_mem=np.full(3, 0.01), r=np.full(3, 10.0), v_leak=np.zeros(3),
                       v_threshold=np.full(3, 0.3), w_in=2.0)
    net = Network.from_nir(chain(nir.Linear(weight=w1), cuba, nir.Linear(weight=w2), lif(2), input_shape=(4,)), DT)
    np.testing.assert_allclose(net.weights[0], 2.0 * w1)  # r dt / tau = 1, w_in = 2


def test_an_imported_model_retrains_asynchronously(tmp_path):
    """The road's last step: a NIR model, imported, trained further through momentum (``--init``)."""
    rng = np.random.default_rng(5)
    w1, w2 = rng.normal(0, 0.5, (12, 20)), rng.normal(0, 1.0, (3, 12))
    graph = chain(nir.Linear(weight=w1), lif(12, tau=0.005), nir.Linear(weight=w2), lif(3, tau=0.005),
                  input_shape=(20,))
    nir.write(str(tmp_path / "g.nir"), graph)
    x = random_input(12, 10, 20, seed=6)
    io.write_dataset(tmp_path / "d.h5", EventBatch.from_dense(x, rng.integers(0, 3, 12)), n_classes=3)
    run = lambda *a: CliRunner().invoke(main, [str(v) for v in a])
    assert run("model", "import", tmp_path / "g.nir", "--dt", DT, "--out", tmp_path / "m.h5").exit_code == 0
    result = run("train", "--data", tmp_path / "d.h5", "--init", tmp_path / "m.h5", "--schedule", "momentum",
                 "--group-size", 1, "--epochs", 1, "--lr", 1e-9, "--out", tmp_path / "t.h5")
    assert result.exit_code == 0, result.output
    assert "from" in result.output
    start, trained = io.read_model(tmp_path / "m.h5"), io.read_model(tmp_path / "t.h5")
    assert trained.spelling() == "20,12,3" and trained.beta == start.beta
    for a, b in zip(start.weights, trained.weights):  # a tiny step from the imported weights
        assert not np.array_equal(a, b) and np.allclose(a, b, atol=1e-6)
    io.write_dataset(tmp_path / "other.h5", EventBatch.from_dense(x[:, :, :10], np.zeros(12, int)), n_classes=3)
    result = run("train", "--data", tmp_path / "other.h5", "--init", tmp_path / "m.h5", "--epochs", 1,
                 "--out", tmp_path / "t2.h5")
    assert result.exit_code == 1 and "Error:" in result.output and not (tmp_path / "t2.h5").exists()
