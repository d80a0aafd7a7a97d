"""Autograd reference for the gradient of spec section 4 ("unlayered backprop").

Slow and literal on purpose: the hand-written backward pass is tested against it. It shares no code
with the package; it only reads a sample's recorded events (``Trace.events(b)``) and input counts.

The gradient is the derivative of a *dense replay* of the recorded schedule, computed in two passes:

1. ``replay_structure`` (plain NumPy) re-runs the forward pass with the groups the trace recorded and
   asserts that it reproduces the trace (same spikes at the same ``(timestep, step)``, same ``v_pre``).
   It returns the *structure* of the computation, constant boolean masks per step: which neurons are
   refractory, which are checked, which fire, which recorded spikes are delivered, which silent checks
   become virtual spikes.
2. ``replay_loss`` (autograd) replays the same steps as a differentiable function of the weights with
   those masks held constant, and ``autograd.value_and_grad`` differentiates it.

The rule, per timestep ``t`` (membrane ``v`` carried over from ``t - 1``):

- ``v <- beta * v``; nobody is refractory.
- Step 0 (injection): layer 1 receives ``a = W_1 x[t]``.
- Step ``k >= 1`` delivers (i) the recorded spikes with ``emitted_step == k``, each with the value
  ``s`` of the check at which it fired (1 forward), and (ii) *virtual spikes*: every silent check of
  step ``k - 1`` (value ``s = 0`` forward, surrogate gradient backward). A spike of neuron ``j`` of
  layer ``l`` delivers ``W_{l+1}[:, j] * s_j`` to layer ``l + 1``; output spikes have no targets.
- Receiving: a refractory neuron discards its current (no gradient); every other target adds it,
  ``v_i <- v_i + a_i``, even when ``a_i`` is 0 forward (the edge still carries gradient).
- A neuron is *checked* when it is not refractory and the current of the *real* spikes it receives
  is nonzero (virtual spikes never trigger a check). A check computes ``s = H(v_i - theta)``
  (Heaviside forward, surrogate derivative backward) and resets ``v_i <- v_i * (1 - s)``, which is
  differentiated fully: ``d v_new / d v = (1 - s) - v * H'(v - theta)``.
- A firing check (``s = 1``) makes the neuron refractory for the rest of the timestep unless the
  trace says refractory dropout spared it; its spike is delivered at its recorded ``emitted_step``.
- The steps run up to ``K_t``, the last recorded ``emitted_step`` of timestep ``t`` (0 if none). The
  silent checks of step ``K_t`` are delivered in one extra step ``K_t + 1`` that exists only in the
  gradient graph (it adds to non-refractory targets and checks nobody).
- Output counts: ``c_t[o]`` is the sum of the spike values of every check of output neuron ``o`` in
  timestep ``t`` (silent checks add 0 forward but carry surrogate gradient).
- Losses, with ``CE(z, y) = logsumexp(z) - z[y]``: ``rate`` = mean over all ``T`` timesteps of
  ``CE(c_t, y)``; ``count`` = ``CE(sum_t c_t, y)``. The batch loss is the mean over samples.

Two variants of the rule (``docs/algorithm.md``, "Gradient modes"):

- ``detach_reset``: the reset factor is a constant, ``v_i <- v_i * (1 - stop_gradient(s))``;
- ``mode="reference"``: no virtual spikes. Each silent check's ``s`` is added to the neuron's queue
  entry ``Q`` (emptied at the start of every timestep); a recorded spike is delivered with the
  value ``s_firing + Q`` (1 forward) and empties ``Q``.

*Inputs in the queue* (``input_queue=True``, spec section 7): there is no injection at step 0;
the trace records each input channel ``c`` with count ``n > 0`` as an event of id ``-1 - c``,
``v_pre = n``, and the step that delivers it adds ``n * W_1[:, c]`` (a constant count: no gradient
flows into the input), received like any other current.

Everything is float64.
"""
from dataclasses import dataclass

import autograd.numpy as anp
import numpy as np
from autograd import value_and_grad
from autograd.extend import defvjp, primitive
from autograd.tracer import getval

SURROGATE_PARAMS = {"atan": 2.0, "fast-sigmoid": 25.0}  # default alpha, default k
LOSSES = ("rate", "count")
V_PRE_RTOL = 1e-9  # replayed membrane at a firing check vs the trace's v_pre


# ---------------------------------------------------------------- Heaviside with surrogate derivative
def surrogate_derivative(z, surrogate="atan", param=None):
    """``H'(z)`` used backward: ``atan`` (alpha) or ``fast-sigmoid`` (k), ``z = v - theta``."""
    if surrogate not in SURROGATE_PARAMS:
        raise ValueError(f"unknown surrogate {surrogate!r}")
    p = SURROGATE_PARAMS[surrogate] if param is None else float(param)
    if surrogate == "atan":
        return (p / 2.0) / (1.0 + (np.pi * p * z / 2.0) ** 2)
    return 1.0 / (1.0 + p * np.abs(z)) ** 2


@primitive
def heaviside(z, surrogate="atan", param=None):
    """Forward: 1.0 where ``z > 0``, else 0.0."""
    return (np.asarray(z) > 0).astype(np.float64)


defvjp(heaviside, lambda ans, z, surrogate="atan", param=None:
       lambda g: g * surrogate_derivative(z, surrogate, param))


# ---------------------------------------------------------------- pass 1: structure (plain NumPy)
@dataclass
class Step:
    """One step of one timestep. Masks are bool arrays over all N neurons (global ids).

    - ``delivered``: ``{fired_step f: mask}``, recorded spikes delivered now, by the step they fired;
    - ``virtual``: silent checks of the previous step, delivered now as zero-valued spikes;
    - ``refractory``: neurons that discard current at this step;
    - ``checked``/``fired``: the threshold checks of this step and those among them that fire;
    - ``inputs``: the queued input counts delivered at this step (None: inputs are injected at step 0).
    """

    delivered: dict
    virtual: np.ndarray
    refractory: np.ndarray
    checked: np.ndarray
    fired: np.ndarray
    inputs: np.ndarray = None


def layer_slices(weights):
    """Global-id slice of every non-input layer (layer-major numbering)."""
    stops = np.cumsum([w.shape[0] for w in weights])
    return [slice(int(stop - w.shape[0]), int(stop)) for w, stop in zip(weights, stops)]


def _real_current(weights, slices, k, x_t, delivered_count, queued):
    """Forward current of the real spikes at step ``k`` (virtual spikes carry 0 forward).

    ``delivered_count[j]``: how many recorded spikes of neuron ``j`` are delivered at this step;
    ``queued``: the input counts delivered at this step (None: inputs are injected at step 0).
    """
    n = slices[-1].stop
    current = np.zeros(n)
    if k == 0:
        if queued is None:
            current[slices[0]] = weights[0] @ x_t
    else:
        if queued is not None:
            current[slices[0]] = weights[0] @ queued
        for l in range(len(weights) - 1):
            current[slices[l + 1]] = weights[l + 1] @ delivered_count[slices[l]]
    return current


def replay_structure(weights, threshold, beta, x, events, input_queue=False):
    """Forward replay of one sample under the recorded schedule; asserts it reproduces the trace.

    Returns ``steps[t]``: the list of :class:`Step` of timestep ``t`` (``k = 0 .. K_t``, plus the
    gradient-only step ``K_t + 1`` when step ``K_t`` had silent checks).
    """
    weights = [np.asarray(w, dtype=np.float64) for w in weights]
    slices = layer_slices(weights)
    n = slices[-1].stop
    # Every recorded spike is identified by the check that produced it: (neuron, timestep, fired_step).
    recorded = {}
    queued = {}  # (t, k) -> input counts delivered at step k of timestep t
    for i, t, f, e, v_pre, refr in zip(events["neuron"], events["timestep"], events["fired_step"],
                                       events["emitted_step"], events["v_pre"], events["refractory"]):
        if i < 0:
            assert input_queue, "an input event in a trace without input_queue"
            c = -1 - int(i)
            assert f == 0 and v_pre == x[t, c] > 0, f"queued input {c} at timestep {t} does not match the data"
            queued.setdefault((int(t), int(e)), np.zeros(x.shape[1]))[c] += v_pre
            continue
        key = (int(i), int(t), int(f))
        assert key not in recorded, f"the trace records spike {key} twice"
        assert int(e) > int(f), f"spike {key} is emitted at step {e}, not after it fired"
        recorded[key] = (int(e), float(v_pre), bool(refr))
    reproduced = set()

    v = np.zeros(n)
    steps = []
    for t in range(x.shape[0]):
        v *= beta
        refractory = np.zeros(n, bool)
        in_t = np.asarray(events["timestep"]) == t
        last = int(np.max(events["emitted_step"][in_t])) if in_t.any() else 0  # K_t
        pending = {}  # emitted_step -> {fired_step: mask of neurons}
        silent = np.zeros(n, bool)  # silent checks of the previous step
        steps_t = []
        for k in range(last + 1):
            delivered = pending.pop(k, {})
            count = sum((m.astype(np.float64) for m in delivered.values()), np.zeros(n))
            inputs = queued.pop((t, k), np.zeros(x.shape[1])) if input_queue else None
            current = _real_current(weights, slices, k, x[t], count, inputs)
            checked = (current != 0) & ~refractory
            v[~refractory] += current[~refractory]
            fired = checked & (v > threshold)
            for i in np.flatnonzero(fired):
                key = (int(i), t, k)
                assert key in recorded, f"the replay fires neuron {i} at timestep {t}, step {k}; the trace does not"
                emitted, v_pre, refr = recorded[key]
                assert abs(v[i] - v_pre) <= V_PRE_RTOL * abs(v_pre), \
                    f"spike {key}: replayed v_pre {v[i]!r} differs from the trace's {v_pre!r}"
                assert emitted <= last
                pending.setdefault(emitted, {}).setdefault(k, np.zeros(n, bool))[i] = True
                reproduced.add(key)
            steps_t.append(Step(delivered, silent, refractory.copy(), checked, fired, inputs))
            v[fired] = 0.0
            for i in np.flatnonzero(fired):
                refractory[i] = refractory[i] or recorded[(int(i), t, k)][2]
            silent = checked & ~fired
        assert not pending, f"timestep {t}: recorded spikes are emitted after the last step"
        if silent.any():  # the extra, gradient-only step K_t + 1
            nobody = np.zeros(n, bool)
            steps_t.append(Step({}, silent, refractory.copy(), nobody, nobody, None))
        steps.append(steps_t)
    assert not queued, f"queued inputs delivered after their timestep's last step: {sorted(queued)[:3]}"
    if input_queue:
        assert sum(int((x[t] > 0).sum()) for t in range(x.shape[0])) == int((np.asarray(events["neuron"]) < 0).sum()), \
            "some input channel with spikes was never queued"
    missing = set(recorded) - reproduced
    assert not missing, f"the trace records spikes the replay does not produce, e.g. {sorted(missing)[:3]}"
    return steps


# ---------------------------------------------------------------- pass 2: differentiable replay
def cross_entropy(z, label):
    """``CE(softmax(z), label) = logsumexp(z) - z[label]`` (max-shifted by a constant)."""
    m = np.max(getval(z))
    return anp.log(anp.sum(anp.exp(z - m))) + m - z[label]


def replay_loss(weights, steps, threshold, beta, x, label, loss="rate", surrogate="atan", param=None,
                mode="exact", detach_reset=False):
    """The sample's loss as a function of ``weights`` (a list), replaying ``steps`` (constant masks)."""
    slices = layer_slices(weights)
    n_layers = len(weights)
    out = slices[-1]
    v = [anp.zeros(w.shape[0]) for w in weights]  # membrane per layer
    counts = []  # c_t per timestep
    for t, steps_t in enumerate(steps):
        v = [beta * v_l for v_l in v]
        s = []  # s[k][l]: spike values of the checks of step k in layer l (0 where not checked)
        queue = [anp.zeros(w.shape[0]) for w in weights]  # reference mode: silent checks' s per neuron
        c_t = anp.zeros(out.stop - out.start)
        for k, step in enumerate(steps_t):
            # 1. currents: injection at step 0; afterwards real spikes (value s of their firing
            #    check) plus virtual spikes (value s of the previous step's silent checks)
            if k == 0:
                currents = {} if step.inputs is not None else {0: anp.dot(weights[0], x[t].astype(np.float64))}
            else:
                currents = {} if step.inputs is None else {0: anp.dot(weights[0], step.inputs)}
                for l in range(n_layers - 1):
                    sl = slices[l]
                    if mode == "exact":
                        spikes = step.virtual[sl] * s[k - 1][l]
                    else:
                        spikes = anp.zeros(sl.stop - sl.start)
                    for f, mask in step.delivered.items():
                        spikes = spikes + mask[sl] * s[f][l]
                        if mode == "reference":  # the queue entry goes along, and is emptied
                            spikes = spikes + mask[sl] * queue[l]
                            queue[l] = queue[l] * (1.0 - mask[sl])
                    currents[l + 1] = anp.dot(weights[l + 1], spikes)
            # 2. receive: refractory neurons discard the current, the others add it
            for l, a in currents.items():
                v[l] = v[l] + (~step.refractory[slices[l]]) * a
            # 3. threshold checks: s = H(v - theta), reset v <- v (1 - s), only where checked
            s_k = []
            for l in range(n_layers):
                checked = step.checked[slices[l]].astype(np.float64)
                s_l = checked * heaviside(v[l] - threshold, surrogate, param)
                assert np.array_equal(getval(s_l), step.fired[slices[l]]), "pass 2 disagrees with pass 1"
                v[l] = v[l] - checked * v[l] * (getval(s_l) if detach_reset else s_l)
                queue[l] = queue[l] + checked * (1.0 - step.fired[slices[l]]) * s_l
                s_k.append(s_l)
            s.append(s_k)
            c_t = c_t + s_k[-1]
        counts.append(c_t)
    if loss == "rate":
        return sum(cross_entropy(c_t, label) for c_t in counts) / len(counts)
    if loss == "count":
        return cross_entropy(sum(counts), label)
    raise ValueError(f"unknown loss {loss!r}; choose one of {LOSSES}")


# ---------------------------------------------------------------- API
def reference_loss_and_grad(weights, threshold, beta, x, events, label, loss="rate", surrogate="atan",
                            param=None, mode="exact", detach_reset=False, input_queue=False):
    """weights: list of float64 arrays ``W_l (n_l, n_{l-1})``; x: int array ``(T, n_0)`` of input counts
    of ONE sample; events: that sample's trace events (``Trace.events(b)``).

    Returns ``(loss, [dL/dW_l ...])`` in float64. Raises AssertionError if the replay does not
    reproduce the trace.
    """
    if loss not in LOSSES:
        raise ValueError(f"unknown loss {loss!r}; choose one of {LOSSES}")
    if surrogate not in SURROGATE_PARAMS:
        raise ValueError(f"unknown surrogate {surrogate!r}")
    weights = [np.asarray(w, dtype=np.float64) for w in weights]
    x = np.asarray(x)
    steps = replay_structure(weights, threshold, beta, x, events, input_queue)
    if mode not in ("exact", "reference"):
        raise ValueError(f"unknown gradient mode {mode!r}")
    value, grads = value_and_grad(replay_loss)(weights, steps, float(threshold), float(beta), x,
                                               int(label), loss, surrogate, param, mode, detach_reset)
    return float(value), [np.asarray(g, dtype=np.float64) for g in grads]


def batch_loss_and_grad(weights, threshold, beta, batch, trace, loss="rate", surrogate="atan", param=None,
                        mode="exact", detach_reset=False):
    """Mean loss and mean gradients over the samples of ``batch`` (an EventBatch) and its ``trace``."""
    total = 0.0
    grads = [np.zeros(np.shape(w)) for w in weights]
    for b in range(len(batch)):
        value, g = reference_loss_and_grad(weights, threshold, beta, batch.dense(b), trace.events(b),
                                           batch.labels[b], loss, surrogate, param, mode, detach_reset,
                                           trace.input_queue)
        total += value
        grads = [acc + g_l for acc, g_l in zip(grads, g)]
    n = len(batch)
    return total / n, [g / n for g in grads]
