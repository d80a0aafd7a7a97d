"""The asynchronous forward pass: one sample's event loop, in Numba, over plain arrays.

Per timestep ``t`` (``docs/semantics.md``), built from the steps of ``steps.py``:

1. decay ``v <- beta v`` and clear refractory flags;
2. injection step (step 0): layer 1 receives ``a = W_1 x[t]`` (with ``run.input_queue``, each
   input channel with a count ``n > 0`` instead joins the pending queue as one item of weight
   ``n``, id ``-1 - channel``; its delivery sends ``n`` spikes);
3. every neuron with ``a_i != 0`` *receives*: a refractory one discards it; otherwise
   ``v_i <- v_i + a_i`` and, if ``v_i > theta``, it fires: ``v_pre = v_i``, ``v_i <- 0``, it becomes
   refractory (unless refractory dropout spares it) and its spike joins the pending queue;
4. forward steps ``k = 1, 2, ...``: the scheduler takes a group of pending spikes and delivers them
   at once (each target receives the sum of their weight columns), then (3) applies;
5. the timestep ends when the queue is empty (or at an early stop, see :func:`simulate_sample`).

The network arrives as a :class:`~.bundles.Net`, the settings as a :class:`~.bundles.Run`.

Every fired spike gets a row in the *spike table* (``tab_*``, indexed in firing order); the queue holds
table indices. Delivered spikes are copied to the event buffers (``ev_*``) in delivery order.
"""
import numpy as np
from numba import njit

from . import NO_REFCOUNT
from .bundles import events_slice, queue_step, sample_out
from .rng import randint, seeded_state, uniform
from .steps import (STOP_SAMPLE, decay, deliver, fire, fires, inject, integrate, next_input, receive_ranges,
                    stop_reached)

LAYERED, RANDOM, MOMENTUM = 0, 1, 2

# columns of the per-sample scalar metrics
SOPS, STEPS_TO_FIRST_OUTPUT, SPIKES_TO_FIRST_OUTPUT, STEPS_TO_FIRST_CORRECT, \
    SPIKES_TO_FIRST_CORRECT, FIRST_SPIKE_PREDICTION, CHECKS = range(7)
N_SCALARS = 7
OVERFLOW = -1  # returned instead of an event count when the buffers were too small


# ---------------------------------------------------------------- momentum: a max-heap of table ids
@njit(cache=True, inline="always")
def _id_before(i, j):
    """The order of ids at equal priority, and within a delivered group: queued inputs (id
    ``-1 - channel``) first, by ascending channel, then neurons by ascending global id."""
    if (i < 0) != (j < 0):
        return i < 0
    return i > j if i < 0 else i < j


@njit(cache=True, inline="always")
def _before(a, b, tab_key, tab_neuron):
    """Momentum priority: larger key first, then :func:`_id_before`, then earlier firing."""
    if tab_key[a] != tab_key[b]:
        return tab_key[a] > tab_key[b]
    if tab_neuron[a] != tab_neuron[b]:
        return _id_before(tab_neuron[a], tab_neuron[b])
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
    """All pending spikes of the lowest layer that has any (queued inputs: layer -1). Returns
    (group size, queue size)."""
    lowest = _layer(tab_neuron[queue[0]], layer_of)
    for q in range(size):
        lowest = min(lowest, _layer(tab_neuron[queue[q]], layer_of))
    g, kept = 0, 0
    for q in range(size):
        s = queue[q]
        if _layer(tab_neuron[s], layer_of) == lowest:
            group[g] = s
            g += 1
        else:
            queue[kept] = s
            kept += 1
    return g, kept


@njit(cache=True, inline="always")
def _layer(i, layer_of):
    """The layer of a pending item: ``layer_of[i]``, or -1 for a queued input."""
    return -1 if i < 0 else layer_of[i]


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


# ---------------------------------------------------------------- receive: checks -> spikes
@njit(cache=True, inline="always")
def _receive(lo, hi, step, v, acc, refractory, theta, run, rng, table, n_fired, queue, size):
    """The neurons ``lo:hi`` receive (:func:`~.steps.integrate`); those with ``v_i > theta``
    fire: ``v_pre = v_i``, ``v_i <- 0``, refractory unless dropout spares it; the spike joins the
    spike ``table`` and the queue. Loops run over views indexed from 0 (Numba's negative-index
    handling would otherwise keep LLVM from vectorizing them).

    Returns ``(n_fired, size, checks)``; ``n_fired = -1`` if the table is full."""
    tab_neuron, tab_step, tab_vpre, tab_refr, tab_key = table
    v_layer = v[lo:hi]
    any_above, checks = integrate(v_layer, acc[lo:hi], refractory[lo:hi], theta)
    if not any_above:
        return n_fired, size, checks
    for q in range(hi - lo):
        if fires(v_layer[q], theta):
            if n_fired == len(tab_neuron):
                return -1, size, checks
            i = lo + q
            s = n_fired
            n_fired += 1
            tab_neuron[s] = i
            tab_step[s] = step
            tab_vpre[s] = v_layer[q]
            spared = run.dropout > 0 and uniform(rng) < run.dropout
            fire(v, refractory, i, spared)
            tab_refr[s] = not spared
            tab_key[s] = tab_vpre[s]
            if run.schedule == MOMENTUM and run.momentum_noise > 0:
                tab_key[s] += run.momentum_noise * uniform(rng)
            size = _enqueue(queue, size, s, run.schedule, tab_key, tab_neuron)
    return n_fired, size, checks


@njit(cache=True, inline="always")
def _enqueue(queue, size, s, schedule, tab_key, tab_neuron):
    """Table row ``s`` joins the pending queue (the heap, under momentum); returns the new size."""
    if schedule == MOMENTUM:
        return _heap_push(queue, size, s, tab_key, tab_neuron)
    queue[size] = s
    return size + 1


def _no_queued_inputs(queued, t, ptr, stop, in_timestep, in_unit, schedule, table, n_fired, queue, size):
    return ptr, n_fired, size


@queue_step(_no_queued_inputs)
def _queue_inputs(queued, t, ptr, stop, in_timestep, in_unit, schedule, table, n_fired, queue, size):
    """Step 0 with inputs in the queue: each channel ``c`` with a count ``n > 0`` at timestep
    ``t`` becomes one pending item, a table row (id ``-1 - c``, fired at step 0, ``v_pre`` and
    momentum key ``n``, not refractory), in ascending channel order. Input events ``ptr:stop``
    are sorted by (timestep, unit). Returns ``(ptr, n_fired, size)``; ``n_fired = -1`` if the
    table is full."""
    tab_neuron, tab_step, tab_vpre, tab_refr, tab_key = table
    while True:
        c, count, ptr = next_input(t, ptr, stop, in_timestep, in_unit)
        if count == 0:
            return ptr, n_fired, size
        if n_fired == len(tab_neuron):
            return ptr, -1, size
        s = n_fired
        n_fired += 1
        tab_neuron[s] = -1 - c
        tab_step[s] = 0
        tab_vpre[s] = count
        tab_refr[s] = False
        tab_key[s] = count
        size = _enqueue(queue, size, s, schedule, tab_key, tab_neuron)


@njit(cache=True, inline="always")
def _sort_group(group, g, tab_neuron):
    """Order a group by :func:`_id_before` (ascending global id, queued inputs first), then firing
    order: the order deliveries are recorded. Insertion sort (groups are small, or already nearly
    sorted under ``layered``)."""
    for j in range(1, g):
        s = group[j]
        q = j - 1
        while q >= 0 and (_id_before(tab_neuron[s], tab_neuron[group[q]]) or
                          (tab_neuron[group[q]] == tab_neuron[s] and group[q] > s)):
            group[q + 1] = group[q]
            q -= 1
        group[q + 1] = s


# ---------------------------------------------------------------- one sample
@njit(**NO_REFCOUNT)
def simulate_sample(net, run, in_timestep, in_unit, n_timesteps, label, rng, ev, out, scratch):
    """Run one sample; fill its event buffers ``ev`` and metrics ``out``. Returns the event count,
    or ``OVERFLOW`` if the buffers are too small. ``scratch`` (:func:`new_scratch`) holds the
    membranes, the queue and the spike table; their contents on entry do not matter.

    ``in_timestep``/``in_unit`` are the sample's input events sorted by (timestep, unit).
    Early stop (``run.stop_on_output = D >= 0``; ``-1`` runs every timestep until its queue is
    empty): with ``stop_scope = STOP_SAMPLE`` the sample ends once ``D`` forward steps have run after
    the step of its first output spike (steps counted across timesteps); with ``STOP_TIMESTEP`` each
    timestep ends once ``D`` steps have run after the step of *its own* first output spike, and the
    next timestep starts normally (decay, injection) with the membranes as they are. Spikes still
    pending at a stop are dropped (never delivered).

    Per-timestep latency (``out.timestep_spikes_to_output[t]``, ``..._correct[t]``; ``-1`` = no such
    spike in timestep ``t``): the network spikes fired in timestep ``t`` up to and including the
    receive pass (step ``k``) in which its first output spike (first spike of the label's neuron)
    fires. The output layer receives last in a pass, so that is the number fired so far in ``t``.
    """
    sizes, offsets, layer_of, theta = net.sizes, net.offsets, net.layer_of, net.theta
    ev_neuron, ev_timestep, ev_fired, ev_emitted, ev_vpre, ev_refr = ev
    counts, spikes_per_layer, steps_per_timestep, scalars, ts_to_output, ts_to_correct = out
    n_layers = len(sizes) - 1
    out_lo = offsets[n_layers - 1]
    v, acc, refractory, hit, dirty, ranges, queue, group, table = scratch
    tab_neuron, tab_step, tab_vpre, tab_refr, tab_key = table
    v[:] = 0
    acc[:] = 0
    refractory[:] = False
    hit[:] = False
    dirty[:] = False

    scalars[:] = -1
    scalars[SOPS] = 0
    scalars[CHECKS] = 0
    n_events = 0
    n_fired = 0
    size = 0
    ts_to_output[:] = -1
    ts_to_correct[:] = -1
    n_queued = 0  # queued inputs so far (table rows that are not network spikes)
    steps_before = 0  # forward steps of earlier timesteps
    stopped = False
    ptr = 0
    for t in range(n_timesteps):
        decay(v, refractory, net.beta)
        if run.input_queue:
            first_new = n_fired
            ptr, n_fired, size = _queue_inputs(run.input_queue, t, ptr, len(in_timestep), in_timestep, in_unit,
                                               run.schedule, table, n_fired, queue, size)
            if n_fired < 0:
                return OVERFLOW
            n_queued += n_fired - first_new
        else:
            ptr, sops = inject(t, ptr, len(in_timestep), in_timestep, in_unit, acc, dirty, net)
            scalars[SOPS] += sops
            hit[0] = sops > 0
        k = 0
        fired_in_t = n_fired  # table rows before this timestep's network spikes
        first_k = -1          # step of this timestep's first output spike
        while True:
            fired_before = n_fired - n_queued  # network spikes so far
            for layer in range(n_layers):
                if not hit[layer]:
                    continue
                hit[layer] = False
                first_new = n_fired
                for r in range(receive_ranges(layer, net, dirty, ranges)):
                    n_fired, size, checks = _receive(ranges[2 * r], ranges[2 * r + 1], k, v, acc, refractory, theta,
                                                     run, rng, table, n_fired, queue, size)
                    scalars[CHECKS] += checks
                    if n_fired < 0:
                        return OVERFLOW
                for s in range(first_new, n_fired):
                    spikes_per_layer[layer] += 1
                    if layer == n_layers - 1:
                        o = tab_neuron[s] - out_lo
                        counts[o] += 1
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
            stopped = stop_reached(run.stop_on_output, run.stop_scope, scalars[STEPS_TO_FIRST_OUTPUT], first_k,
                                   steps_before, k)
            if size == 0 or stopped:
                break
            k += 1
            if run.schedule == LAYERED:  # the scheduler picks the next group
                g, size = _pick_layered(queue, size, group, tab_neuron, layer_of)
            elif run.schedule == RANDOM:
                g, size = _pick_random(queue, size, group, run.group_size, rng)
            else:
                g, size = _pick_momentum(queue, size, group, run.group_size, tab_key, tab_neuron)
            _sort_group(group, g, tab_neuron)
            first = n_events
            for j in range(g):  # record the group's spikes as events, then deliver them
                s = group[j]
                ev_neuron[n_events] = tab_neuron[s]
                ev_timestep[n_events] = t
                ev_fired[n_events] = tab_step[s]
                ev_emitted[n_events] = k
                ev_vpre[n_events] = tab_vpre[s]
                ev_refr[n_events] = tab_refr[s]
                n_events += 1
            scalars[SOPS] += deliver(ev_neuron, ev_vpre, first, n_events, acc, hit, dirty, net, run.input_queue)
        steps_per_timestep[t] = k
        steps_before += k
        if stopped:
            if run.stop_scope == STOP_SAMPLE:
                break
            size = 0  # STOP_TIMESTEP: drop what is pending; the next timestep starts normally
    return n_events


# ---------------------------------------------------------------- a chunk of a batch
def new_scratch(net, capacity):
    """The working arrays of one sample (plain NumPy, allocated by the caller of
    :func:`simulate_chunk`: nothing to compile): membranes ``v``, delivered current ``acc``,
    refractory flags, the layers receiving (``hit``), the blocks receiving (``dirty``) and the
    ranges a receive pass visits (``steps.receive_ranges``), the queue, the group, and the spike
    table (neuron, fired step, ``v_pre``, refractory, momentum key), in firing order, ``capacity``
    rows."""
    n_neurons, dtype = int(net.offsets[-1]), net.w.dtype
    table = (np.empty(capacity, np.int64), np.empty(capacity, np.int32), np.empty(capacity, dtype),
             np.empty(capacity, np.bool_), np.empty(capacity, np.float64))
    return (np.zeros(n_neurons, dtype), np.zeros(n_neurons, dtype), np.zeros(n_neurons, np.bool_),
            np.zeros(len(net.sizes) - 1, np.bool_), *receive_scratch(net),
            np.empty(capacity, np.int64), np.empty(capacity, np.int64), table)


def receive_scratch(net):
    """``dirty`` (a flag per block) and ``ranges`` (room for every layer's runs of blocks)."""
    n_blocks = int(net.block_off[-1])
    return np.zeros(n_blocks, np.bool_), np.empty(2 * n_blocks + 2, np.int64)


@njit(cache=True, nogil=True)
def simulate_chunk(net, run, in_indptr, in_timestep, in_unit, labels, sample_ids, n_timesteps, seed,
                   capacity, ev, out, n_events, lo, hi, scratch):
    """Samples ``lo:hi`` of a batch, each independently, with its own random stream and its own
    slice ``[b*capacity, (b+1)*capacity)`` of the event buffers; ``n_events[b]`` gets its count.
    ``scratch`` (:func:`new_scratch`) serves every sample of the chunk. Releases the GIL: chunks
    run on parallel threads (``parallel.py``)."""
    for b in range(lo, hi):
        e0, e1 = in_indptr[b], in_indptr[b + 1]
        n_events[b] = simulate_sample(
            net, run, in_timestep[e0:e1], in_unit[e0:e1], n_timesteps, labels[b],
            seeded_state(seed, sample_ids[b]), events_slice(ev, b * capacity, (b + 1) * capacity),
            sample_out(out, b), scratch)
