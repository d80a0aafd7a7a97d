"""scripts/bench_gradient.py's work count, against the plain layer-synchronized reference."""
import importlib.util
import sys
from pathlib import Path

import numpy as np

from pyasync_snn import EventBatch, Network, simulate

from reference import timestepped_lif

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def load_bench_gradient():
    sys.path.insert(0, str(SCRIPTS))  # bench_gradient imports bench_simulate
    try:
        spec = importlib.util.spec_from_file_location("bench_gradient", SCRIPTS / "bench_gradient.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(SCRIPTS))


def test_work_counts_every_check_and_spike_of_a_layered_run():
    """Layered, each timestep with input checks all 5 hidden neurons once; the backward's work is
    the forward's SOPs, plus a row of dW_1 per input spike (5), plus a dot over the 3 targets per
    hidden check and a row of dW_2 per hidden spike (3 each)."""
    rng = np.random.default_rng(4)
    weights = (rng.normal(0.0, 0.9, (5, 4)), rng.normal(0.0, 0.9, (3, 5)))
    network = Network(weights, threshold=0.5, beta=0.9)
    x = (rng.random((2, 9, 4)) < 0.4).astype(int)
    x[0, 3] = 0  # a timestep without input: no checks at all
    batch = EventBatch.from_dense(x, np.array([0, 2]))
    trace = simulate(network, batch, schedule="layered", dtype="float64")

    forward = backward = 0
    for sample in x:
        spikes = timestepped_lif(list(weights), 0.5, 0.9, sample)
        hidden_spikes = sum(layer == 0 for _, _, layer, _ in spikes)
        inputs, input_timesteps = int(sample.sum()), int((sample.sum(axis=1) > 0).sum())
        assert hidden_spikes > 0
        forward += 5 * inputs + 3 * hidden_spikes
        backward += 5 * inputs + 3 * 5 * input_timesteps + 3 * hidden_spikes
    assert load_bench_gradient().work(network, batch, trace) == (forward, forward + backward)
