"""Validates the autograd gradient reference (tests/autograd_reference.py) itself.

- its forward replay reproduces the simulator's traces under every schedule (and rejects a tampered
  trace), and its loss value equals the loss of the trace's output counts;
- an independent event-by-event (scalar) autograd version of the same rule gives the same gradient;
- in the dense layered case (every neuron checked once per timestep) it equals plain time-stepped
  surrogate BPTT.
"""

import autograd.numpy as anp
import numpy as np
import pytest
from autograd import value_and_grad
from autograd.extend import defvjp, primitive
from autograd.tracer import getval

from pyasync_snn import EventBatch, Network, simulate
from pyasync_snn.gradients import loss_and_grad

from autograd_reference import (batch_loss_and_grad, reference_loss_and_grad, replay_structure)

SIZES = [6, 5, 4, 3]
T = 8
SCHEDULES = [("layered", 1), ("random", 1), ("random", 2), ("momentum", 1), ("momentum", 2)]


def random_case(sizes=SIZES, n_samples=4, n_timesteps=T, density=0.4, seed=0, scale=1.5):
    rng = np.random.default_rng(seed)
    net = Network.xavier(sizes, seed=seed)
    net = Network(tuple(w * scale for w in net.weights), threshold=0.3, beta=0.9)
    x = (rng.random((n_samples, n_timesteps, sizes[0])) < density).astype(int)
    x += rng.random(x.shape) < density / 3  # some counts of 2
    labels = rng.integers(0, sizes[-1], n_samples)
    return net, EventBatch.from_dense(x, labels)


def run(net, batch, schedule, group_size, dropout=0.0, seed=3):
    return simulate(net, batch, schedule=schedule, group_size=group_size, seed=seed, momentum_noise=0.0,
                    refractory_dropout=dropout, dtype="float64")


def trace_loss(trace, b, label, n_out, n_timesteps, loss):
    """The loss of the recorded output counts, straight from the trace."""
    ev = trace.events(b)
    out_lo = sum(SIZES[1:-1])
    c = np.zeros((n_timesteps, n_out))
    is_out = ev["neuron"] >= out_lo
    np.add.at(c, (ev["timestep"][is_out], ev["neuron"][is_out] - out_lo), 1.0)
    assert np.array_equal(c.sum(axis=0), trace.output_counts[b])
    ce = lambda z: np.log(np.sum(np.exp(z - z.max()))) + z.max() - z[label]
    return float(np.mean([ce(c_t) for c_t in c])) if loss == "rate" else ce(c.sum(axis=0))


# ---------------------------------------------------------------- (a) the replay reproduces traces
@pytest.mark.parametrize("dropout", [0.0, 0.3])
@pytest.mark.parametrize("schedule,group_size", SCHEDULES)
def test_replay_reproduces_the_trace(schedule, group_size, dropout):
    net, batch = random_case(seed=group_size + 10 * (schedule == "momentum"))
    trace = run(net, batch, schedule, group_size, dropout)
    assert trace.n_events > 50
    if dropout:
        assert not np.all(trace.refractory)  # dropout really happened
    for loss in ("rate", "count"):
        total = 0.0
        for b in range(len(batch)):
            value, grads = reference_loss_and_grad(list(net.weights), net.threshold, net.beta,
                                                   batch.dense(b), trace.events(b), batch.labels[b],
                                                   loss=loss)
            assert value == pytest.approx(trace_loss(trace, b, batch.labels[b], SIZES[-1], T, loss),
                                          rel=1e-12)
            assert [g.shape for g in grads] == [w.shape for w in net.weights]
            assert all(np.all(np.isfinite(g)) and g.dtype == np.float64 for g in grads)
            assert all(np.any(g != 0) for g in grads)
            total += value
        mean, _ = batch_loss_and_grad(list(net.weights), net.threshold, net.beta, batch, trace, loss)
        assert mean == pytest.approx(total / len(batch), rel=1e-12)


def test_the_cases_exercise_every_part_of_the_rule():
    """Virtual spikes, extra gradient-only steps, refractory targets, multiple checks per timestep."""
    net, batch = random_case(seed=1)
    seen = dict(virtual=0, extra=0, refractory_targets=0, rechecked_outputs=0, double_delivery=0)
    for dropout in (0.0, 0.3):
        trace = run(net, batch, "random", 1, dropout)
        for b in range(len(batch)):
            steps = replay_structure(net.weights, net.threshold, net.beta, batch.dense(b), trace.events(b))
            for steps_t in steps:
                seen["extra"] += not steps_t[-1].checked.any() and steps_t[-1].virtual.any()
                checks = sum(s.checked.astype(int) for s in steps_t)
                seen["rechecked_outputs"] += int(np.any(checks[-SIZES[-1]:] > 1))
                for step in steps_t[1:]:
                    seen["virtual"] += int(step.virtual[:-SIZES[-1]].sum())
                    seen["refractory_targets"] += int(step.refractory.sum())
                    spikes = sum((m.astype(int) for m in step.delivered.values()), 0) + step.virtual
                    seen["double_delivery"] += int(np.sum(np.asarray(spikes) > 1))
    print(seen)
    assert all(seen[k] > 0 for k in ("virtual", "extra", "refractory_targets", "rechecked_outputs"))


@pytest.mark.parametrize("tamper", ["v_pre", "drop", "fired_step", "refractory"])
def test_replay_rejects_a_tampered_trace(tamper):
    net, batch = random_case(seed=2)
    trace = run(net, batch, "random", 2, dropout=0.0)
    ev = {k: a.copy() for k, a in trace.events(0).items()}
    e = len(ev["neuron"]) // 2
    if tamper == "v_pre":
        ev["v_pre"][e] *= 1 + 1e-7
    elif tamper == "drop":
        ev = {k: np.delete(a, e) for k, a in ev.items()}
    elif tamper == "fired_step":
        ev["fired_step"][e] += 1
        ev["emitted_step"][e] += 1
    else:  # every spike claims refractory dropout: re-excited neurons are checked again
        ev["refractory"][:] = False
    x = batch.dense(0)
    if tamper == "refractory":
        # only detectable if some neuron really receives current again after firing
        try:
            reference_loss_and_grad(list(net.weights), net.threshold, net.beta, x, ev, batch.labels[0])
        except AssertionError:
            return
        pytest.skip("no neuron was re-excited in this sample")
    with pytest.raises(AssertionError):
        reference_loss_and_grad(list(net.weights), net.threshold, net.beta, x, ev, batch.labels[0])


# ---------------------------------------------------------------- (b) an event-by-event version
@primitive
def step_fn(z, surrogate, param):
    """Heaviside (independent of the reference's); scalars or arrays."""
    return (np.asarray(z) > 0).astype(np.float64)


def _surrogate(z, surrogate, param):
    if surrogate == "atan":
        alpha = 2.0 if param is None else param
        return alpha / 2 / (1 + (np.pi * alpha * z / 2) ** 2)
    k = 25.0 if param is None else param
    return 1 / (1 + k * abs(z)) ** 2


defvjp(step_fn, lambda ans, z, surrogate, param: lambda g: g * _surrogate(z, surrogate, param))


def event_by_event_loss(weights, threshold, beta, x, ev, label, loss, surrogate, param):
    """The rule of spec section 4 written spike by spike, neuron by neuron, with scalar autograd."""
    sizes = [w.shape[0] for w in weights]
    starts = np.concatenate([[0], np.cumsum(sizes)])
    n, n_layers = int(starts[-1]), len(weights)
    layer_of = np.repeat(np.arange(n_layers), sizes)
    flags = {(int(i), int(t), int(f)): bool(r)
             for i, t, f, r in zip(ev["neuron"], ev["timestep"], ev["fired_step"], ev["refractory"])}
    v = [0.0] * n
    per_timestep = []
    for t in range(x.shape[0]):
        v = [beta * vi for vi in v]
        refractory = [False] * n
        in_t = ev["timestep"] == t
        last = int(ev["emitted_step"][in_t].max()) if in_t.any() else 0
        value = {}   # (neuron, step) -> spike value of its check at that step
        silent = []  # silent checks of the previous step
        c_t = [0.0] * sizes[-1]
        k = 0
        while k <= last or silent:
            # deliveries: (presynaptic layer, index in that layer, spike value, real?)
            if k == 0:
                deliveries = [(-1, c, float(x[t, c]), True) for c in range(x.shape[1]) if x[t, c]]
            else:
                deliveries = [(int(layer_of[j]), int(j - starts[layer_of[j]]), value[(int(j), int(f))], True)
                              for j, f in zip(ev["neuron"][in_t & (ev["emitted_step"] == k)],
                                              ev["fired_step"][in_t & (ev["emitted_step"] == k)])]
                deliveries += [(int(layer_of[j]), int(j - starts[layer_of[j]]), value[(j, k - 1)], False)
                               for j in silent]
            deliveries = [d for d in deliveries if d[0] + 1 < n_layers]  # output spikes: no targets
            extra_step = k > last
            silent = []
            for i in range(n):
                l = int(layer_of[i])
                mine = [(weights[l][i - starts[l], col], s, real) for pre, col, s, real in deliveries
                        if pre + 1 == l]
                if not mine or refractory[i]:
                    continue  # nothing arrives, or it is discarded
                v[i] = v[i] + sum(w_ij * s for w_ij, s, _ in mine)
                real_current = sum(float(getval(w_ij)) * float(getval(s)) for w_ij, s, real in mine if real)
                if real_current == 0 or extra_step:
                    continue
                s = step_fn(v[i] - threshold, surrogate, param)
                v[i] = v[i] * (1 - s)
                value[(i, k)] = s
                if l == n_layers - 1:
                    c_t[i - starts[l]] = c_t[i - starts[l]] + s
                if getval(s) == 1.0:
                    refractory[i] = flags[(i, t, k)]
                else:
                    silent.append(i)
            k += 1
        per_timestep.append(c_t)

    def ce(z):
        z = anp.array(z)
        return anp.log(anp.sum(anp.exp(z))) - z[label]

    if loss == "rate":
        return sum(ce(c) for c in per_timestep) / len(per_timestep)
    return ce([sum(c[o] for c in per_timestep) for o in range(sizes[-1])])


@pytest.mark.parametrize("loss,surrogate,param", [("rate", "atan", None), ("count", "fast-sigmoid", None),
                                                  ("rate", "fast-sigmoid", 10.0), ("count", "atan", 3.0)])
@pytest.mark.parametrize("dropout", [0.0, 0.3])
@pytest.mark.parametrize("schedule,group_size", [("random", 1), ("momentum", 2), ("layered", 1)])
def test_dense_replay_equals_event_by_event_rule(schedule, group_size, dropout, loss, surrogate, param):
    net, batch = random_case(n_samples=2, seed=5)
    trace = run(net, batch, schedule, group_size, dropout)
    for b in range(len(batch)):
        x, ev, y = batch.dense(b), trace.events(b), int(batch.labels[b])
        value, grads = reference_loss_and_grad(list(net.weights), net.threshold, net.beta, x, ev, y,
                                               loss, surrogate, param)
        expected_value, expected = value_and_grad(
            lambda ws: event_by_event_loss(ws, net.threshold, net.beta, x, ev, y, loss, surrogate, param))(
            list(net.weights))
        assert value == pytest.approx(float(expected_value), rel=1e-12)
        for g, e in zip(grads, expected):
            np.testing.assert_allclose(g, e, rtol=1e-10, atol=1e-13)


# ---------------------------------------------------------------- (c) dense layered case = BPTT
def bptt_loss(weights, threshold, beta, x, label, loss, surrogate, param):
    """Plain time-stepped, layer-synchronized surrogate BPTT of the same LIF network."""
    v = [anp.zeros(w.shape[0]) for w in weights]
    counts = []
    for t in range(x.shape[0]):
        s = x[t].astype(float)
        for l, w in enumerate(weights):
            v[l] = beta * v[l] + anp.dot(w, s)
            s = step_fn(v[l] - threshold, surrogate, param)
            v[l] = v[l] * (1 - s)
        counts.append(s)
    ce = lambda z: anp.log(anp.sum(anp.exp(z))) - z[label]
    if loss == "rate":
        return sum(ce(c) for c in counts) / len(counts)
    return ce(sum(counts))


def dense_case(seed, n_samples=12):
    """Positive input on every channel at every timestep, weights biased positive so that every layer
    spikes in (almost) every timestep while leaving many neurons silent."""
    rng = np.random.default_rng(seed)
    weights = tuple(rng.normal(0.12, 0.25, size=(n_out, n_in)) for n_in, n_out in zip(SIZES[:-1], SIZES[1:]))
    net = Network(weights, threshold=0.3, beta=0.9)
    x = rng.integers(1, 3, size=(n_samples, T, SIZES[0]))
    return net, EventBatch.from_dense(x, rng.integers(0, SIZES[-1], n_samples))


@pytest.mark.parametrize("loss,surrogate,param", [("rate", "atan", None), ("count", "atan", None),
                                                  ("rate", "fast-sigmoid", None), ("count", "fast-sigmoid", 5.0)])
def test_dense_layered_case_equals_bptt(loss, surrogate, param):
    net, batch = dense_case(seed=11)
    trace = run(net, batch, "layered", 1)
    qualifying = 0
    for b in range(len(batch)):
        x, ev, y = batch.dense(b), trace.events(b), int(batch.labels[b])
        steps = replay_structure(net.weights, net.threshold, net.beta, x, ev)
        checks = [sum(s.checked.astype(int) for s in steps_t) for steps_t in steps]
        if not all(np.all(c == 1) for c in checks):
            continue  # some layer is silent in some timestep: the next layer is not checked there
        qualifying += 1
        value, grads = reference_loss_and_grad(list(net.weights), net.threshold, net.beta, x, ev, y,
                                               loss, surrogate, param)
        expected_value, expected = value_and_grad(
            lambda ws: bptt_loss(ws, net.threshold, net.beta, x, y, loss, surrogate, param))(list(net.weights))
        assert value == pytest.approx(float(expected_value), rel=1e-12)
        for g, e in zip(grads, expected):
            np.testing.assert_allclose(g, e, rtol=1e-10, atol=1e-13)
        assert all(np.any(g != 0) for g in grads)
        # and the hand-written Numba backward equals plain BPTT too
        numba_value, numba_grads = loss_and_grad(net, batch.take(b, b + 1), schedule="layered",
                                                 group_size=1, dtype="float64", loss=loss,
                                                 surrogate=surrogate, surrogate_param=param)
        assert numba_value == pytest.approx(float(expected_value), rel=1e-12)
        for g, e in zip(numba_grads, expected):
            np.testing.assert_allclose(g, e, rtol=1e-8, atol=1e-13)
    assert qualifying >= 3, f"only {qualifying} samples had every neuron checked at every timestep"
