"""Slow, obvious reference implementations that the kernels are checked against.

Plain Python and NumPy, written from the spec, sharing no code with the package.
"""
import heapq

import numpy as np


def layer_bounds(weights):
    """[(first global id, stop)] per layer."""
    sizes = [w.shape[0] for w in weights]
    starts = np.concatenate([[0], np.cumsum(sizes)])
    return [(int(starts[l]), int(starts[l + 1])) for l in range(len(weights))]


def timestepped_lif(weights, threshold, beta, x):
    """Standard layer-synchronized LIF: ``v_l = beta v_l + W_l s_{l-1}``, spike if ``v > theta``,
    reset to zero. Returns a list of (timestep, global id, layer, v_pre)."""
    bounds = layer_bounds(weights)
    v = [np.zeros(w.shape[0]) for w in weights]
    spikes = []
    for t in range(x.shape[0]):
        s = x[t].astype(float)
        for l, w in enumerate(weights):
            v[l] = beta * v[l] + w @ s
            fired = v[l] > threshold
            for i in np.nonzero(fired)[0]:
                spikes.append((t, bounds[l][0] + int(i), l, float(v[l][i])))
            v[l][fired] = 0.0
            s = fired.astype(float)
    return spikes


def _targets(weights, bounds, neuron):
    """(layer receiving, column of weights) for a spike of ``neuron``; None for output neurons."""
    for l, (lo, hi) in enumerate(bounds):
        if lo <= neuron < hi and l + 1 < len(weights):
            return l + 1, weights[l + 1][:, neuron - lo]
    return None


def momentum_reference(weights, threshold, beta, x, group_size):
    """Event-by-event asynchronous simulation with a priority queue, ``momentum`` with lambda = 0:
    each forward step pops the ``group_size`` pending spikes with the largest v_pre (ties: lower id).
    Returns events as tuples (neuron, timestep, fired_step, emitted_step, v_pre) in delivery order."""
    bounds = layer_bounds(weights)
    n = bounds[-1][1]
    v = np.zeros(n)
    events = []
    for t in range(x.shape[0]):
        v *= beta
        refractory = np.zeros(n, bool)
        heap = []
        current = np.zeros(n)
        current[bounds[0][0]:bounds[0][1]] = weights[0] @ x[t]
        step = 0
        while True:
            for i in range(n):  # ascending global id
                if current[i] == 0 or refractory[i]:
                    continue
                v[i] += current[i]
                if v[i] > threshold:
                    heapq.heappush(heap, (-v[i], i, step, float(v[i])))
                    v[i] = 0.0
                    refractory[i] = True
            if not heap:
                break
            step += 1
            group = [heapq.heappop(heap) for _ in range(min(group_size, len(heap)))]
            current = np.zeros(n)
            for _, i, fired, v_pre in sorted(group, key=lambda e: e[1]):
                events.append((i, t, fired, step, v_pre))
                target = _targets(weights, bounds, i)
                if target is not None:
                    l, column = target
                    current[bounds[l][0]:bounds[l][1]] += column
    return events


def replay(weights, threshold, beta, x, ev, count_checks=False):
    """Re-run one sample with the groups the trace recorded (``ev``: dict of event arrays) and
    return the events the spec's rules produce for that schedule, refractory flags taken from the
    trace. Lets any schedule (random included) be checked against the rules. With
    ``count_checks``, return ``(events, checks)``: the neurons checked (non-refractory, non-zero
    current), summed over all steps."""
    bounds = layer_bounds(weights)
    n = bounds[-1][1]
    v = np.zeros(n)
    produced, checks = [], 0
    flags = {(int(i), int(t), int(f)): bool(r) for i, t, f, r in
             zip(ev["neuron"], ev["timestep"], ev["fired_step"], ev["refractory"])}
    for t in range(x.shape[0]):
        v *= beta
        refractory = np.zeros(n, bool)
        current = np.zeros(n)
        current[bounds[0][0]:bounds[0][1]] = weights[0] @ x[t]
        in_t = ev["timestep"] == t
        n_steps = int(ev["emitted_step"][in_t].max()) if in_t.any() else 0
        for step in range(n_steps + 1):
            if step > 0:
                current = np.zeros(n)
                for i in ev["neuron"][in_t & (ev["emitted_step"] == step)]:
                    target = _targets(weights, bounds, int(i))
                    if target is not None:
                        l, column = target
                        current[bounds[l][0]:bounds[l][1]] += column
            for i in range(n):
                if current[i] == 0 or refractory[i]:
                    continue
                v[i] += current[i]
                checks += 1
                if v[i] > threshold:
                    produced.append((i, t, step, float(v[i])))
                    v[i] = 0.0
                    refractory[i] = flags.get((i, t, step), True)
    return (produced, checks) if count_checks else produced
