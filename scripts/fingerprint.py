"""Fingerprints of traces, gradients and membrane replays over a fixed grid of random cases.

Run it before and after a change to the engine and compare the outputs: any line that differs is
a change in behaviour (a trace that is not bitwise identical, a gradient, a replayed membrane or a
check count that moved).

Usage: ``python scripts/fingerprint.py > before.txt`` ... ``python scripts/fingerprint.py | diff before.txt -``
"""
import hashlib
import itertools

import numpy as np

from pyasync_snn import EventBatch, Network, simulate
from pyasync_snn.gradients import loss_and_grad
from pyasync_snn.inspection import replay

CASES = {
    "schedule": ("layered", "random", "momentum"),
    "group_size": (1, 3, 0),
    "dtype": ("float32", "float64"),
    "stop": (None, 0, 2),
}


def digest(*arrays) -> str:
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(str((a.dtype, a.shape)).encode())
        h.update(a.tobytes())
    return h.hexdigest()[:16]


def batch_for(seed, sizes, n=6, n_timesteps=12, density=0.25):
    rng = np.random.default_rng(seed)
    x = rng.random((n, n_timesteps, sizes[0])) < density
    return EventBatch.from_dense(x.astype(int), labels=rng.integers(0, sizes[-1], n))


def main():
    for seed, sizes in ((0, (10, 7, 4)), (1, (16, 12, 9, 5)), (2, (6, 20, 3))):
        network = Network.xavier(sizes, seed=seed)
        batch = batch_for(seed, sizes)
        for schedule, f, dtype, stop in itertools.product(*CASES.values()):
            if schedule == "layered" and f != 0:
                continue
            for dropout in (0.0, 0.3):
                trace = simulate(network, batch, schedule=schedule, group_size=f, seed=seed, dtype=dtype,
                                 refractory_dropout=dropout, stop_on_output=stop)
                m = trace.metrics
                line = (f"{sizes} {schedule} F={f} {dtype} stop={stop} dropout={dropout}: trace "
                        + digest(trace.indptr, trace.neuron, trace.timestep, trace.fired_step,
                                 trace.emitted_step, trace.v_pre, trace.refractory, trace.output_counts)
                        + " metrics " + digest(m.spikes_per_layer, m.sops, m.steps_per_timestep,
                                               m.steps_to_first_output, m.spikes_to_first_output,
                                               m.steps_to_first_correct, m.spikes_to_first_correct,
                                               m.first_spike_prediction, m.timestep_spikes_to_output,
                                               m.timestep_spikes_to_correct))
                line += " checks " + digest(m.checks)
                if stop is None:
                    r = replay(trace, 0, network, batch.take(0, 1), neurons="all")
                    line += " replay " + digest(r.timestep, r.step, r.v, r.current, r.u, r.fired, r.discarded)
                    for gradient, detach in (("exact", False), ("exact", True), ("reference", False)):
                        loss, grads = loss_and_grad(network, batch, trace=trace, loss="rate", gradient=gradient,
                                                    detach_reset=detach)
                        line += f" {gradient[0]}{int(detach)} " + digest(np.float64(loss), *grads)
                print(line)


if __name__ == "__main__":
    main()
