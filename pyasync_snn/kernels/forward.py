"""The asynchronous forward pass: one sample's event loop, in Numba, over plain arrays.

Per timestep ``t`` (spec section 2):

1. decay ``v <- beta v`` and clear refractory flags;
2. injection step (step 0): layer 1 receives ``a = W_1 x[t]``;
3. every neuron with ``a_i != 0`` *receives*: a refractory one discards it; otherwise
   ``v_i <- v_i + a_i`` and, if ``v_i > theta``, it fires: ``v_pre = v_i``, ``v_i <- 0``, it becomes
   refractory (unless refractory dropout spares it) and its spike joins the pending queue;
4. forward steps ``k = 1, 2, ...``: the scheduler takes a group of pending spikes and delivers them
   at once (each target receives the sum of their weight columns), then (3) applies;
5. the timestep ends when the queue is empty (or at an early stop, see :func:`simulate_sample`).

Weights arrive transposed and flattened: presynaptic neuron ``j`` of layer ``l`` (input channel
``c`` for ``l = 0``) owns the contiguous row ``w[w_off[l] + j*n_{l+1} : ... + n_{l+1}]`` = ``W_{l+1}[:, j]``.

Every fired spike gets a row in the *spike table* (``tab_*``, indexed in firing order); the queue holds
table indices. Delivered spikes are copied to the event buffers (``ev_*``) in delivery order.
"""
import numpy as np
from numba import njit, prange

from .rng import randint, seeded_state, uniform

LAYERED, RANDOM, MOMENTUM = 0, 1, 2
STOP_SAMPLE, STOP_TIMESTEP = 0, 1  # stop scope: the whole sample ends, or only the timestep

# columns of the per-sample scalar metrics
SOPS, STEPS_TO_FIRST_OUTPUT, SPIKES_TO_FIRST_OUTPUT, STEPS_TO_FIRST_CORRECT, \
    SPIKES_TO_FIRST_CORRECT, FIRST_SPIKE_PREDICTION = range(6)
N_SCALARS = 6
OVERFLOW = -1  # returned instead of an event count when the buffers were too small


# ---------------------------------------------------------------- momentum: a max-heap of table ids
@njit(cache=True, inline="always")
def _before(a, b, tab_key, tab_neuron):
    """Momentum priority: larger key first, then lower global id, then earlier firing."""
    if tab_key[a] != tab_key[b]:
        return tab_key[a] > tab_key[b]
    if tab_neuron[a] != tab_neuron[b]:
        return tab_neuron[a] < tab_neuron[b]
    return a < b


@njit(cache=True, inline="always")
def _heap_push(queue, size, s, tab_key, tab_neuron):
    """Insert table id ``s`` into the heap ``queue[:size]``; return the new size."""
    i = size
    queue[i] = s
    while i > 0:
        parent = (i - 1) // 2
        if not _before(queue[i], queue[parent], tab_key, tab_neuron):
            break
        queue[i], queue[parent] = queue[parent], queue[i]
        i = parent
    return size + 1


@njit(cache=True, inline="always")
def _heap_pop(queue, size, tab_key, tab_neuron):
    """Remove and return the top of the heap ``queue[:size]`` (the size shrinks by one)."""
    top = queue[0]
    size -= 1
    queue[0] = queue[size]
    i = 0
    while True:
        best, left, right = i, 2 * i + 1, 2 * i + 2
        if left < size and _before(queue[left], queue[best], tab_key, tab_neuron):
            best = left
        if right < size and _before(queue[right], queue[best], tab_key, tab_neuron):
            best = right
        if best == i:
            return top
        queue[i], queue[best] = queue[best], queue[i]
        i = best


# ---------------------------------------------------------------- schedulers: queue -> group
@njit(cache=True, inline="always")
def _pick_layered(queue, size, group, tab_neuron, layer_of):
    """All pending spikes of the lowest layer that has any. Returns (group size, queue size)."""
    lowest = layer_of[tab_neuron[queue[0]]]
    for q in range(size):
        lowest = min(lowest, layer_of[tab_neuron[queue[q]]])
    g, kept = 0, 0
    for q in range(size):
        s = queue[q]
        if layer_of[tab_neuron[s]] == lowest:
            group[g] = s
            g += 1
        else:
            queue[kept] = s
            kept += 1
    return g, kept


@njit(cache=True, inline="always")
def _pick_random(queue, size, group, group_size, rng):
    """A uniformly random subset of ``min(F, size)`` pending spikes (partial Fisher-Yates)."""
    g = min(group_size, size)
    for j in range(g):
        r = j + randint(rng, size - j)
        queue[j], queue[r] = queue[r], queue[j]
        group[j] = queue[j]
    for j in range(size - g):  # the rest move to the front (forward copy: safe in place)
        queue[j] = queue[j + g]
    return g, size - g


@njit(cache=True, inline="always")
def _pick_momentum(queue, size, group, group_size, tab_key, tab_neuron):
    """The ``F`` pending spikes with the largest ``v_pre`` (+ noise), off the heap."""
    g = min(group_size, size)
    for j in range(g):
        group[j] = _heap_pop(queue, size - j, tab_key, tab_neuron)
    return g, size - g


# ---------------------------------------------------------------- current -> checks -> spikes
@njit(cache=True, inline="always")
def _integrate(v, acc, refractory, theta):
    """``v_i += acc_i`` where not refractory (refractory neurons discard it), clear ``acc``;
    return whether any ``v_i > theta``. Branch-free, so LLVM vectorizes it."""
    any_above = False
    for i in range(len(v)):
        u = v[i] if refractory[i] else v[i] + acc[i]
        acc[i] = 0
        v[i] = u
        any_above |= u > theta
    return any_above


@njit(cache=True, inline="always")
def _receive(layer, step, v, acc, refractory, offsets, theta, dropout, momentum_noise, rng,
             schedule, tab_neuron, tab_step, tab_vpre, tab_refr, tab_key, n_fired, queue, size):
    """Every neuron of ``layer`` receives ``acc_i``: discarded if refractory, else ``v_i += acc_i``;
    then those with ``v_i > theta`` fire. Fired spikes go to the spike table and the queue.

    Only neurons with ``acc_i != 0`` are *checked* in the spec's sense; adding 0 and testing the
    others is equivalent because ``v <= theta`` holds for every neuron that was not just checked
    (``theta > 0``, ``beta <= 1``). That lets the add run as one branch-free (vectorized) pass.
    Loops run over views indexed from 0: Numba's negative-index handling would otherwise keep
    LLVM from vectorizing them. Returns ``(n_fired, size)``, or ``(-1, size)`` if the table is full.
    """
    lo, hi = offsets[layer], offsets[layer + 1]
    v_layer = v[lo:hi]
    if not _integrate(v_layer, acc[lo:hi], refractory[lo:hi], theta):
        return n_fired, size
    for q in range(hi - lo):
        if v_layer[q] > theta:
            if n_fired == len(tab_neuron):
                return -1, size
            i = lo + q
            s = n_fired
            n_fired += 1
            tab_neuron[s] = i
            tab_step[s] = step
            tab_vpre[s] = v_layer[q]
            v_layer[q] = 0
            tab_refr[s] = not (dropout > 0 and uniform(rng) < dropout)
            refractory[i] = tab_refr[s]
            tab_key[s] = tab_vpre[s]
            if schedule == MOMENTUM:
                if momentum_noise > 0:
                    tab_key[s] += momentum_noise * uniform(rng)
                size = _heap_push(queue, size, s, tab_key, tab_neuron)
            else:
                queue[size] = s
                size += 1
    return n_fired, size


@njit(cache=True, inline="always")
def _add_row(acc, lo, w, start, n, count):
    """``acc[lo:lo+n] += count * w[start:start+n]``: one presynaptic spike (or ``count`` of them).

    Written over views indexed from 0 so that LLVM vectorizes the count-1 loop.
    """
    dst = acc[lo:lo + n]
    src = w[start:start + n]
    if count == 1:
        for j in range(n):
            dst[j] += src[j]
    else:
        for j in range(n):
            dst[j] += count * src[j]


@njit(cache=True, inline="always")
def _inject(t, ptr, stop, in_timestep, in_unit, acc, w, sizes):
    """Step 0: ``acc[layer 1] = W_1 x[t]``; repeated units are counted. Returns (new ptr, SOPs)."""
    n1 = sizes[1]
    sops = 0
    while ptr < stop and in_timestep[ptr] == t:
        c = in_unit[ptr]
        count = 0
        while ptr < stop and in_timestep[ptr] == t and in_unit[ptr] == c:
            count += 1
            ptr += 1
        _add_row(acc, 0, w, c * n1, n1, count)
        sops += count * n1
    return ptr, sops


@njit(cache=True, inline="always")
def _sort_group(group, g, tab_neuron):
    """Order a group by ascending global id, then firing order: the order deliveries are recorded.

    Insertion sort (groups are small, or already nearly sorted under ``layered``)."""
    for j in range(1, g):
        s = group[j]
        q = j - 1
        while q >= 0 and (tab_neuron[group[q]] > tab_neuron[s] or
                          (tab_neuron[group[q]] == tab_neuron[s] and group[q] > s)):
            group[q + 1] = group[q]
            q -= 1
        group[q + 1] = s


@njit(cache=True, inline="always")
def stop_reached(stop_delay, stop_scope, first_in_sample, first_in_timestep, steps_before, k):
    """Whether an early stop ends the run after the receive pass of step ``k`` of a timestep.

    ``stop_delay = D`` (``-1``: never). ``STOP_SAMPLE``: ``S + k >= first_in_sample + D``, with
    ``S = steps_before`` the forward steps of earlier timesteps and ``first_in_sample`` the global
    step of the sample's first output spike. ``STOP_TIMESTEP``: ``k >= first_in_timestep + D``
    with the step of this timestep's first output spike. A first spike of ``-1`` (none yet)
    never stops. Also called from Python by the membrane replay (:mod:`pyasync_snn.inspect`).
    """
    if stop_delay < 0:
        return False
    if stop_scope == STOP_SAMPLE:
        return first_in_sample >= 0 and steps_before + k >= first_in_sample + stop_delay
    return first_in_timestep >= 0 and k >= first_in_timestep + stop_delay


# ---------------------------------------------------------------- one sample
@njit(cache=True)
def simulate_sample(w, w_off, sizes, offsets, layer_of, theta, beta,
                    in_timestep, in_unit, n_timesteps, label,
                    schedule, group_size, momentum_noise, dropout, stop_delay, stop_scope, rng,
                    ev_neuron, ev_timestep, ev_fired, ev_emitted, ev_vpre, ev_refr,
                    output_counts, spikes_per_layer, steps_per_timestep, scalars,
                    ts_to_output, ts_to_correct):
    """Run one sample; fill its event buffers and metrics. Returns the event count or ``OVERFLOW``.

    ``in_timestep``/``in_unit`` are the sample's input events sorted by (timestep, unit).
    Early stop (``stop_delay = D >= 0``; ``-1`` runs every timestep until its queue is empty):
    with ``stop_scope = STOP_SAMPLE`` the sample ends once ``D`` forward steps have run after the
    step of its first output spike (steps counted across timesteps); with ``STOP_TIMESTEP`` each
    timestep ends once ``D`` steps have run after the step of *its own* first output spike, and the
    next timestep starts normally (decay, injection) with the membranes as they are. Spikes still
    pending at a stop are dropped (never delivered).

    Per-timestep latency (``ts_to_output[t]``, ``ts_to_correct[t]``; ``-1`` = no such spike in
    timestep ``t``): the network spikes fired in timestep ``t`` up to and including the receive
    pass (step ``k``) in which its first output spike (first spike of the label's neuron) fires.
    The output layer receives last in a pass, so that is the number fired so far in ``t``.
    """
    n_layers = len(sizes) - 1
    n_neurons = offsets[n_layers]
    out_lo = offsets[n_layers - 1]
    capacity = len(ev_neuron)
    v = np.zeros(n_neurons, dtype=w.dtype)
    acc = np.zeros(n_neurons, dtype=w.dtype)
    refractory = np.zeros(n_neurons, dtype=np.bool_)
    hit = np.zeros(n_layers, dtype=np.bool_)
    queue = np.empty(capacity, dtype=np.int64)
    group = np.empty(capacity, dtype=np.int64)
    tab_neuron = np.empty(capacity, dtype=np.int64)
    tab_step = np.empty(capacity, dtype=np.int32)
    tab_vpre = np.empty(capacity, dtype=w.dtype)
    tab_refr = np.empty(capacity, dtype=np.bool_)
    tab_key = np.empty(capacity, dtype=np.float64)

    scalars[:] = -1
    scalars[SOPS] = 0
    n_events = 0
    n_fired = 0
    size = 0
    ts_to_output[:] = -1
    ts_to_correct[:] = -1
    steps_before = 0  # forward steps of earlier timesteps
    stopped = False
    ptr = 0
    for t in range(n_timesteps):
        v *= beta
        refractory[:] = False
        ptr, sops = _inject(t, ptr, len(in_timestep), in_timestep, in_unit, acc, w, sizes)
        scalars[SOPS] += sops
        hit[0] = sops > 0
        k = 0
        fired_in_t = n_fired  # spikes fired before this timestep
        first_k = -1          # step of this timestep's first output spike
        while True:
            fired_before = n_fired
            for layer in range(n_layers):
                if not hit[layer]:
                    continue
                hit[layer] = False
                first_new = n_fired
                n_fired, size = _receive(layer, k, v, acc, refractory, offsets, theta, dropout,
                                         momentum_noise, rng, schedule, tab_neuron, tab_step,
                                         tab_vpre, tab_refr, tab_key, n_fired, queue, size)
                if n_fired < 0:
                    return OVERFLOW
                for s in range(first_new, n_fired):
                    spikes_per_layer[layer] += 1
                    if layer == n_layers - 1:
                        o = tab_neuron[s] - out_lo
                        output_counts[o] += 1
                        if scalars[STEPS_TO_FIRST_OUTPUT] < 0:
                            scalars[STEPS_TO_FIRST_OUTPUT] = steps_before + k
                            scalars[SPIKES_TO_FIRST_OUTPUT] = fired_before
                            scalars[FIRST_SPIKE_PREDICTION] = o
                        if o == label and scalars[STEPS_TO_FIRST_CORRECT] < 0:
                            scalars[STEPS_TO_FIRST_CORRECT] = steps_before + k
                            scalars[SPIKES_TO_FIRST_CORRECT] = fired_before
                        if first_k < 0:
                            first_k = k
                            ts_to_output[t] = n_fired - fired_in_t
                        if o == label and ts_to_correct[t] < 0:
                            ts_to_correct[t] = n_fired - fired_in_t
            stopped = stop_reached(stop_delay, stop_scope, scalars[STEPS_TO_FIRST_OUTPUT], first_k,
                                   steps_before, k)
            if size == 0 or stopped:
                break
            k += 1
            if schedule == LAYERED:
                g, size = _pick_layered(queue, size, group, tab_neuron, layer_of)
            elif schedule == RANDOM:
                g, size = _pick_random(queue, size, group, group_size, rng)
            else:
                g, size = _pick_momentum(queue, size, group, group_size, tab_key, tab_neuron)
            _sort_group(group, g, tab_neuron)
            for j in range(g):
                s = group[j]
                i = tab_neuron[s]
                ev_neuron[n_events] = i
                ev_timestep[n_events] = t
                ev_fired[n_events] = tab_step[s]
                ev_emitted[n_events] = k
                ev_vpre[n_events] = tab_vpre[s]
                ev_refr[n_events] = tab_refr[s]
                n_events += 1
                layer = layer_of[i]
                if layer < n_layers - 1:
                    n_next = sizes[layer + 2]
                    _add_row(acc, offsets[layer + 1], w, w_off[layer + 1] + (i - offsets[layer]) * n_next,
                             n_next, 1)
                    scalars[SOPS] += n_next
                    hit[layer + 1] = True
        steps_per_timestep[t] = k
        steps_before += k
        if stopped:
            if stop_scope == STOP_SAMPLE:
                break
            size = 0  # STOP_TIMESTEP: drop what is pending; the next timestep starts normally
    return n_events


# ---------------------------------------------------------------- a batch, in parallel
@njit(cache=True, parallel=True)
def simulate_batch(w, w_off, sizes, offsets, layer_of, theta, beta,
                   in_indptr, in_timestep, in_unit, labels, sample_ids, n_timesteps,
                   schedule, group_size, momentum_noise, dropout, stop_delay, stop_scope, seed, capacity,
                   ev_neuron, ev_timestep, ev_fired, ev_emitted, ev_vpre, ev_refr,
                   output_counts, spikes_per_layer, steps_per_timestep, scalars,
                   ts_to_output, ts_to_correct, n_events):
    """Every sample ``b`` independently (``prange``), with its own random stream and its own
    slice ``[b*capacity, (b+1)*capacity)`` of the event buffers; ``n_events[b]`` gets its count."""
    for b in prange(len(labels)):
        lo, hi = b * capacity, (b + 1) * capacity
        e0, e1 = in_indptr[b], in_indptr[b + 1]
        rng = seeded_state(seed, sample_ids[b])
        n_events[b] = simulate_sample(
            w, w_off, sizes, offsets, layer_of, theta, beta,
            in_timestep[e0:e1], in_unit[e0:e1], n_timesteps, labels[b],
            schedule, group_size, momentum_noise, dropout, stop_delay, stop_scope, rng,
            ev_neuron[lo:hi], ev_timestep[lo:hi], ev_fired[lo:hi], ev_emitted[lo:hi],
            ev_vpre[lo:hi], ev_refr[lo:hi],
            output_counts[b], spikes_per_layer[b], steps_per_timestep[b], scalars[b],
            ts_to_output[b], ts_to_correct[b])
