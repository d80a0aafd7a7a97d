"""The replay: a recorded sample re-run with the steps of ``steps.py``, delivering the recorded
groups instead of asking a scheduler, and logging every check.

The replay is bitwise the forward pass (same steps, same order), so it must fire exactly the
recorded spikes: the same neuron, at the same step, with the same ``v_pre``. It serves the backward
pass (which needs each check's ``u`` and ``s``), and :func:`replay_sample` serves the membrane
figures and the explainer (the membrane of watched neurons after every step).

Per step ``k`` of timestep ``t``: :func:`replay_deliveries` (``k = 0``: the injection; ``k >= 1``:
the recorded group of step ``k``), then :func:`replay_receive` (every layer that received current
integrates it; the checks go to the log ``(neuron, u, s)``).
"""
import numpy as np
from numba import njit

from . import NO_REFCOUNT
from .steps import STOP_SAMPLE, decay, deliver, fire, fires, inject, integrate_logged, receive_ranges, stop_reached

NEVER = np.iinfo(np.int64).max
# mismatch reasons (the replay and the trace disagree)
UNRECORDED_SPIKE, MISSING_SPIKE, OTHER_V_PRE = 1, 2, 3


@njit(cache=True, inline="always")
def replay_deliveries(t, k, acc, hit, dirty, net, input_queue, in_timestep, in_unit, in_lo, in_hi, ev, e):
    """Step ``k``: inject the input of timestep ``t`` (``k = 0``, input events ``in_lo:in_hi``;
    nothing if the inputs were queued) or deliver the recorded group of step ``k`` (the events from
    ``e`` on with ``emitted == k``). Returns the index of the first event after the group."""
    if k == 0:
        if not input_queue:
            inject(t, in_lo, in_hi, in_timestep, in_unit, acc, dirty, net)
            hit[0] = in_hi > in_lo
        return e
    ev_neuron, ev_timestep, ev_emitted = ev.neuron, ev.timestep, ev.emitted
    end = e
    while end < len(ev_neuron) and ev_timestep[end] == t and ev_emitted[end] == k:
        end += 1
    deliver(ev_neuron, ev.vpre, e, end, acc, hit, dirty, net, input_queue)
    return end


@njit(cache=True, inline="always")
def queued_inputs(fire_order, ev_neuron):
    """The number of queued inputs among a timestep's events: they come first in its firing order
    (fired at step 0, negative ids), and the replay skips them (no check fired them)."""
    n = 0
    while n < len(fire_order) and ev_neuron[fire_order[n]] < 0:
        n += 1
    return n


@njit(cache=True, inline="always")
def replay_receive(k, v, acc, refractory, hit, dirty, ranges, net, ev_neuron, ev_fired, ev_vpre, ev_refr, fire_order,
                   n_fires, log_neuron, log_u, log_s, n_checks, event_check, refractory_since, may_stop):
    """Every layer that received current at step ``k`` integrates it (:func:`~.steps.integrate_logged`
    over the neurons :func:`~.steps.receive_ranges` visits);
    each check is logged as ``(neuron, u, s)`` at ``n_checks``, ``n_checks + 1``, ... A neuron
    that fires must be the next recorded spike in firing order (``fire_order``: event indices
    sorted by fired step, then neuron) with the same ``v_pre``; it resets and becomes refractory
    as recorded (``refractory_since[i] = k``); ``event_check[rec]`` gets its check's log index.

    ``may_stop``: the run stopped early, so a spike that fired but was never delivered is not in
    the trace; it is accepted (refractory unless the neuron fires again later in the timestep,
    which only refractory dropout allows).

    Returns ``(n_checks, n_fires, status)``, status 0 or a mismatch reason."""
    theta = net.theta
    for layer in range(len(net.offsets) - 1):
        if not hit[layer]:
            continue
        hit[layer] = False
        first = n_checks
        any_above = False
        for r in range(receive_ranges(layer, net, dirty, ranges)):
            lo, hi = ranges[2 * r], ranges[2 * r + 1]
            above, n_checks = integrate_logged(v[lo:hi], acc[lo:hi], refractory[lo:hi], theta, lo, log_neuron, log_u,
                                               n_checks)
            any_above |= above
        log_s[first:n_checks] = False
        if not any_above:
            continue
        for c in range(first, n_checks):
            i = log_neuron[c]
            if not fires(v[i], theta):
                continue
            log_s[c] = True
            recorded = n_fires < len(fire_order) and ev_neuron[fire_order[n_fires]] == i \
                and ev_fired[fire_order[n_fires]] == k
            if recorded:
                rec = fire_order[n_fires]
                if ev_vpre[rec] != v[i]:
                    return n_checks, n_fires, OTHER_V_PRE
                n_fires += 1
                event_check[rec] = c
                spared = not ev_refr[rec]
            elif may_stop:
                spared = False
                for r in range(n_fires, len(fire_order)):
                    spared |= ev_neuron[fire_order[r]] == i
            else:
                return n_checks, n_fires, UNRECORDED_SPIKE
            fire(v, refractory, i, spared)
            if refractory[i]:
                refractory_since[i] = k
    return n_checks, n_fires, 0


@njit(**NO_REFCOUNT)
def replay_timestep(t, n_steps, v, refractory, acc, hit, dirty, ranges, net, input_queue, in_timestep, in_unit, in_lo,
                    in_hi, ev, ev_lo, fire_order, log, n_checks, step_ptr, event_check, refractory_since):
    """Replay timestep ``t`` (its events start at ``ev_lo``; ``fire_order`` are its events by fired
    step, then neuron) through step ``n_steps``, logging its checks from ``n_checks`` on (the log
    needs room for ``N (n_steps + 1)`` more); ``step_ptr[k]:step_ptr[k+1]`` are the checks of
    step ``k``. Returns ``(n_checks, status)``, status 0 or the mismatch reason (for a run without
    early stop)."""
    ev_neuron, ev_timestep, ev_fired, ev_emitted, ev_vpre, ev_refr = ev
    log_neuron, log_u, log_s = log
    decay(v, refractory, net.beta)
    refractory_since[:] = NEVER
    n_fires, e = queued_inputs(fire_order, ev_neuron), ev_lo
    for k in range(n_steps + 1):
        e = replay_deliveries(t, k, acc, hit, dirty, net, input_queue, in_timestep, in_unit, in_lo, in_hi, ev, e)
        step_ptr[k] = n_checks
        n_checks, n_fires, status = replay_receive(k, v, acc, refractory, hit, dirty, ranges, net, ev_neuron, ev_fired,
                                                   ev_vpre, ev_refr, fire_order, n_fires, log_neuron, log_u, log_s,
                                                   n_checks, event_check, refractory_since, False)
        if status:
            return n_checks, status
    step_ptr[n_steps + 1] = n_checks
    return n_checks, 0 if n_fires == len(fire_order) else MISSING_SPIKE


@njit(cache=True)
def new_receive_scratch(net):
    """``dirty`` and ``ranges`` for :func:`~.steps.receive_ranges` (as ``forward.receive_scratch``)."""
    n_blocks = net.block_off[len(net.block_off) - 1]
    return np.zeros(n_blocks, dtype=np.bool_), np.empty(2 * n_blocks + 2, dtype=np.int64)


@njit(cache=True)
def new_log(capacity, dtype_of):
    """An empty check log ``(neuron, u, s)`` for ``capacity`` checks (``u`` in the run's dtype)."""
    return (np.empty(capacity, dtype=np.int32), np.empty(capacity, dtype=dtype_of.dtype),
            np.empty(capacity, dtype=np.bool_))


@njit(cache=True)
def replay_log(net, input_queue, in_timestep, in_unit, n_timesteps, ev, in_ptr, ev_ptr, n_steps, fire_order, log):
    """Replay a whole sample once and keep every check: returns ``(log, step_ptr, event_check,
    status)``. The checks of step ``k`` of timestep ``t`` are ``step_ptr[base_t + k] :
    step_ptr[base_t + k + 1]`` with ``base_t = sum_{t' < t} (n_steps[t'] + 2)``; ``event_check[e]``
    is the check that fired event ``e``; ``status`` is 0, or ``t + 1`` when timestep ``t`` does not
    replay. The checks are written into ``log`` (:func:`new_log`, or the caller's buffers, reused
    from sample to sample); when it is too short, a longer one is allocated and returned instead."""
    sizes, offsets = net.sizes, net.offsets
    n_layers = len(sizes) - 1
    n_neurons = offsets[n_layers]
    v = np.zeros(n_neurons, dtype=net.w.dtype)
    acc = np.zeros(n_neurons, dtype=net.w.dtype)
    refractory = np.zeros(n_neurons, dtype=np.bool_)
    hit = np.zeros(n_layers, dtype=np.bool_)
    dirty, ranges = new_receive_scratch(net)
    refractory_since = np.empty(n_neurons, dtype=np.int64)
    n_step_ptr = 0
    for t in range(n_timesteps):
        n_step_ptr += n_steps[t] + 2
    step_ptr = np.empty(n_step_ptr, dtype=np.int64)
    event_check = np.empty(len(ev.neuron), dtype=np.int64)
    n_checks, base = np.int64(0), 0  # np.int64: a literal 0 would compile replay_timestep twice
    for t in range(n_timesteps):
        need = n_checks + n_neurons * (n_steps[t] + 1)
        if need > len(log[0]):
            grown = new_log(max(need, 2 * len(log[0])), net.w)
            for c in range(n_checks):
                grown[0][c], grown[1][c], grown[2][c] = log[0][c], log[1][c], log[2][c]
            log = grown
        lo, hi = ev_ptr[t], ev_ptr[t + 1]
        n_checks, status = replay_timestep(t, n_steps[t], v, refractory, acc, hit, dirty, ranges, net, input_queue,
                                           in_timestep, in_unit,
                                           in_ptr[t], in_ptr[t + 1], ev, lo, fire_order[lo:hi], log, n_checks,
                                           step_ptr[base:base + n_steps[t] + 2], event_check, refractory_since)
        if status:
            return log, step_ptr, event_check, t + 1
        base += n_steps[t] + 2
    return log, step_ptr, event_check, 0


@njit(cache=True)
def timestep_layout(ev, in_timestep, n_timesteps):
    """Where each timestep's inputs and events start (``in_ptr``, ``ev_ptr``, ``T+1`` each), its
    number of forward steps (the last recorded emitted step) and the firing order of its events
    (event indices sorted by fired step, then neuron, per timestep)."""
    ev_neuron, ev_timestep, ev_fired, ev_emitted = ev.neuron, ev.timestep, ev.fired, ev.emitted
    in_ptr = _starts(in_timestep, n_timesteps)
    ev_ptr = _starts(ev_timestep, n_timesteps)
    n_steps = np.zeros(n_timesteps, dtype=np.int64)
    for e in range(len(ev_timestep)):
        n_steps[ev_timestep[e]] = max(n_steps[ev_timestep[e]], ev_emitted[e])
    fire_order = np.empty(len(ev_neuron), dtype=np.int64)
    count = np.empty(len(ev_neuron) + 2, dtype=np.int64)  # a timestep has no more steps than events
    for t in range(n_timesteps):
        lo, hi = ev_ptr[t], ev_ptr[t + 1]
        # by fired step (a counting sort, stable), then by neuron within a step (insertion sort:
        # a step's spikes are few and the layered schedule delivers them sorted already)
        for k in range(n_steps[t] + 2):
            count[k] = 0
        for e in range(lo, hi):
            count[ev_fired[e] + 1] += 1
        for k in range(n_steps[t] + 1):
            count[k + 1] += count[k]
        for e in range(lo, hi):
            fire_order[lo + count[ev_fired[e]]] = e
            count[ev_fired[e]] += 1
        for q in range(lo + 1, hi):
            e = fire_order[q]
            r = q - 1
            while r >= lo and ev_fired[fire_order[r]] == ev_fired[e] and ev_neuron[fire_order[r]] > ev_neuron[e]:
                fire_order[r + 1] = fire_order[r]
                r -= 1
            fire_order[r + 1] = e
    return in_ptr, ev_ptr, n_steps, fire_order


@njit(cache=True, inline="always")
def first_at_least(a, lo, hi, x):
    """The first index in ``lo:hi`` with ``a[index] >= x`` (``hi`` if none); ``a[lo:hi]`` sorted."""
    while lo < hi:
        mid = (lo + hi) // 2
        if a[mid] < x:
            lo = mid + 1
        else:
            hi = mid
    return lo


@njit(cache=True)
def _starts(timestep, n_timesteps):
    """``ptr[t]``: the first index with ``timestep >= t`` in a sorted array (``T + 1`` entries)."""
    ptr = np.empty(n_timesteps + 1, dtype=np.int64)
    e = 0
    for t in range(n_timesteps + 1):
        while e < len(timestep) and timestep[e] < t:
            e += 1
        ptr[t] = e
    return ptr


@njit(cache=True)
def replay_sample(net, input_queue, in_timestep, in_unit, n_timesteps, ev, stop_on_output, stop_scope, watch):
    """Replay one sample and record, for the neurons ``watch``, one row per step ``(t, k)``:
    the membrane after the step (``v``), the current that reached them (``current``), ``u`` at
    their check (NaN without one), whether they fired and whether current was discarded (it reached
    them while refractory). ``sender_ptr[r]:sender_ptr[r+1]`` are the events delivered at row
    ``r``. Under an early stop (``stop_on_output >= 0``) the replay stops where the run did.

    Returns ``(rows, status, t, k)``: ``rows = (timestep, step, v, current, u, fired, discarded,
    sender_ptr)``; a non-zero status is the mismatch reason at timestep ``t``, step ``k``."""
    sizes, offsets = net.sizes, net.offsets
    n_layers = len(sizes) - 1
    n_neurons = offsets[n_layers]
    out_lo = offsets[n_layers - 1]
    in_ptr, ev_ptr, n_steps, fire_order = timestep_layout(ev, in_timestep, n_timesteps)
    n_rows = n_timesteps + n_steps.sum()
    n_watch = len(watch)
    r_t = np.zeros(n_rows, dtype=np.int64)
    r_k = np.zeros(n_rows, dtype=np.int64)
    r_v = np.zeros((n_rows, n_watch), dtype=net.w.dtype)
    r_current = np.zeros((n_rows, n_watch), dtype=net.w.dtype)
    r_u = np.full((n_rows, n_watch), np.nan)
    r_fired = np.zeros((n_rows, n_watch), dtype=np.bool_)
    r_discarded = np.zeros((n_rows, n_watch), dtype=np.bool_)
    sender_ptr = np.zeros(n_rows + 1, dtype=np.int64)
    column = np.full(n_neurons, -1, dtype=np.int64)
    for c in range(n_watch):
        column[watch[c]] = c

    v = np.zeros(n_neurons, dtype=net.w.dtype)
    acc = np.zeros(n_neurons, dtype=net.w.dtype)
    refractory = np.zeros(n_neurons, dtype=np.bool_)
    refractory_since = np.empty(n_neurons, dtype=np.int64)
    hit = np.zeros(n_layers, dtype=np.bool_)
    dirty, ranges = new_receive_scratch(net)
    capacity = n_neurons * (n_steps.max() + 1 if n_timesteps > 0 else 1)
    log = new_log(capacity, net.w)
    event_check = np.empty(len(ev.neuron), dtype=np.int64)
    first_in_sample = -1
    steps_before = 0
    row = 0
    rows = (r_t, r_k, r_v, r_current, r_u, r_fired, r_discarded, sender_ptr)
    ev_neuron, ev_timestep, ev_fired, ev_emitted, ev_vpre, ev_refr = ev
    log_neuron, log_u, log_s = log
    for t in range(n_timesteps):
        decay(v, refractory, net.beta)
        refractory_since[:] = NEVER
        order = fire_order[ev_ptr[t]:ev_ptr[t + 1]]
        n_checks, n_fires, e = 0, queued_inputs(order, ev_neuron), ev_ptr[t]
        first_in_t = -1
        stopped = False
        for k in range(n_steps[t] + 1):
            e_before = e
            e = replay_deliveries(t, k, acc, hit, dirty, net, input_queue, in_timestep, in_unit, in_ptr[t],
                                  in_ptr[t + 1], ev, e)
            r_t[row], r_k[row] = t, k
            sender_ptr[row + 1] = e
            sender_ptr[row] = e_before
            for c in range(n_watch):
                r_current[row, c] = acc[watch[c]]
                r_discarded[row, c] = acc[watch[c]] != 0 and refractory[watch[c]]
            first = n_checks
            n_checks, n_fires, status = replay_receive(k, v, acc, refractory, hit, dirty, ranges, net, ev_neuron, ev_fired,
                                                       ev_vpre, ev_refr, order, n_fires, log_neuron, log_u, log_s,
                                                       n_checks, event_check, refractory_since, stop_on_output >= 0)
            if status:
                return rows, status, t, k
            for c in range(first, n_checks):
                i = log_neuron[c]
                if column[i] >= 0:
                    r_u[row, column[i]] = log_u[c]
                    r_fired[row, column[i]] = log_s[c]
                if log_s[c] and i >= out_lo:
                    if first_in_sample < 0:
                        first_in_sample = steps_before + k
                    if first_in_t < 0:
                        first_in_t = k
            for c in range(n_watch):
                r_v[row, c] = v[watch[c]]
            row += 1
            stopped = stop_reached(stop_on_output, stop_scope, first_in_sample, first_in_t, steps_before, k)
            if stopped:
                break
        if n_fires != len(order):
            return rows, MISSING_SPIKE, t, n_steps[t]
        steps_before += n_steps[t]
        if stopped and stop_scope == STOP_SAMPLE:
            break
    return (r_t[:row], r_k[:row], r_v[:row], r_current[:row], r_u[:row], r_fired[:row], r_discarded[:row],
            sender_ptr[:row + 1]), 0, 0, 0
