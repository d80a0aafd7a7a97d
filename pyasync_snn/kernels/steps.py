"""The neuron rules, written once: the steps that both the simulation (``forward.py``) and the
replay of a recorded trace (``replay.py``) are made of. ``backward.py`` undoes them in reverse,
with matching names (``docs/algorithm.md``):

- :func:`decay` (reverse: ``adj_v *= beta``): timestep start, ``v <- beta v``, nobody refractory;
- :func:`inject` (``input_rows``, ``_reverse_input_footprints``): step 0, ``acc[layer 1] = W_1 x[t]``;
- :func:`deliver` (``_reverse_deliveries``): a group of spikes, each ``acc[layer l+1] += W_{l+1}[:, j]``;
  both :func:`send` each presynaptic spike, along a row (dense) or a footprint (conv2d), and
  :func:`send_many` a run of spikes into one dense layer, four rows per pass (:func:`add_rows`:
  the same float additions in the same order);
- :func:`receive`, :func:`integrate`, :func:`fires`, :func:`fire` (``_reverse_checks``): receive,
  ``v_i += acc_i`` unless refractory; a neuron with ``v_i > theta`` fires: ``v_i <- 0`` and it is refractory for
  the rest of the timestep (unless refractory dropout spares it).

The steps take plain arrays: a kernel binds the members of its bundles (``bundles.py``) to local
names once, outside its loops (reading a member inside a hot loop costs a reference count each
time).

Which neurons a receive pass visits (:func:`receive_ranges`): a layer fed by a dense layer, all of
them; a layer fed by a conv layer, only the blocks of :data:`~.bundles.BLOCK` neurons that a
footprint reached (marked in ``dirty``), in ascending order. Either way the result is that of
visiting every neuron: one that received nothing is not checked.
"""
import numpy as np
from numba import njit

from . import NO_REFCOUNT
from .bundles import BLOCK, BLOCK_SHIFT, DENSE, conv_step, queue_step


@njit(cache=True, inline="always")
def decay(v, refractory, beta):
    """Start of a timestep: ``v <- beta v``; refractory flags clear."""
    v *= beta
    refractory[:] = False


@njit(cache=True, inline="always")
def add_row(acc, lo, w, start, n, count):
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


@njit(**NO_REFCOUNT)
def add_rows(acc, lo, n, w, start, ids, e0, e1, id_base):
    """``acc[lo:lo+n] += w[s:s+n]`` for the rows ``s = start + (ids[e] - id_base) n`` of the
    spikes ``e0 .. e1-1``, one spike each, in that order: bitwise as many :func:`add_row` calls,
    but four rows per pass, so each membrane is loaded and stored once per four rows instead of
    once per row (row adds are bound by those loads and stores: 2-2.7x more adds per second).
    Compiled once, as its own function, for every caller (``backward.input_rows`` sums its
    input adjoints with it too)."""
    dst = acc[lo:lo + n]
    e = e0
    while e + 4 <= e1:
        s0, s1 = start + (ids[e] - id_base) * n, start + (ids[e + 1] - id_base) * n
        s2, s3 = start + (ids[e + 2] - id_base) * n, start + (ids[e + 3] - id_base) * n
        a, b, c, d = w[s0:s0 + n], w[s1:s1 + n], w[s2:s2 + n], w[s3:s3 + n]
        for j in range(n):
            dst[j] = (((dst[j] + a[j]) + b[j]) + c[j]) + d[j]
        e += 4
    while e < e1:  # the last one to three rows one at a time
        add_row(acc, lo, w, start + (ids[e] - id_base) * n, n, 1)
        e += 1


@njit(cache=True, inline="always")
def add_footprint(acc, targets, weights, count, dirty):
    """``acc[targets[p]] += count * weights[p]`` for every ``p``: one presynaptic spike (or
    ``count``) through a conv layer's footprint (views: the target layer's current, the footprint's
    targets within the layer and its weights); each target's block is marked in ``dirty`` (the
    layer's block marks). The targets are unsigned, so no index needs a negative-index fix-up."""
    shift = np.uint32(BLOCK_SHIFT)
    if count == 1:
        for p in range(len(targets)):
            q = targets[p]
            acc[q] += weights[p]
            dirty[q >> shift] = True
    else:
        for p in range(len(targets)):
            q = targets[p]
            acc[q] += count * weights[p]
            dirty[q >> shift] = True


@njit(cache=True, inline="always")
def presynaptic_index(net, layer, j):
    """The footprint-table index of input ``j`` of ``layer`` (an input channel for layer 0, else
    neuron ``j`` of the layer before): ``j`` or ``n_0 + global id``."""
    return j if layer == 0 else net.sizes[0] + net.offsets[layer - 1] + j


@njit(cache=True, inline="always")
def send(net, layer, j, count, acc, dirty):
    """Input ``j`` of ``layer`` sends ``count`` spikes into it: ``acc += count * W[:, j]``, a row
    of a dense layer or a conv layer's footprint. Returns the SOPs (``count`` x targets)."""
    if net.kind[layer] == DENSE:
        n = net.sizes[layer + 1]
        add_row(acc, net.offsets[layer], net.w, net.w_off[layer] + j * n, n, count)
        return count * n
    return send_footprint(net, layer, j, count, acc, dirty)


MANY = 4  # spikes into one dense layer from which a group is sent by :func:`add_rows`


@njit(cache=True, inline="always")
def send_many(net, layer, ids, e0, e1, id_base, acc):
    """Inputs ``ids[e] - id_base`` of a dense ``layer`` (``e0 <= e < e1``) each send one spike
    into it, in that order (:func:`add_rows`: bitwise one :func:`send` each). Returns the SOPs."""
    n = net.sizes[layer + 1]
    # (np.int64: a literal 0 would compile add_rows once more)
    add_rows(acc, net.offsets[layer], n, net.w, net.w_off[layer], ids, np.int64(e0), np.int64(e1), np.int64(id_base))
    return (e1 - e0) * n


def _sends_nothing(net, layer, j, count, acc, dirty):
    return 0


@conv_step(_sends_nothing)
def send_footprint(net, layer, j, count, acc, dirty):
    """:func:`send` into a conv layer: through the footprint of input ``j``."""
    p = presynaptic_index(net, layer, j)
    p0, p1 = net.fan_ptr[p], net.fan_ptr[p + 1]
    add_footprint(acc[net.offsets[layer]:net.offsets[layer + 1]], net.fan_target[p0:p1], net.fan_w[p0:p1], count,
                  dirty[net.block_off[layer]:net.block_off[layer + 1]])
    return count * (p1 - p0)


@njit(cache=True, inline="always")
def next_input(t, ptr, stop, in_timestep, in_unit):
    """The next input channel of timestep ``t`` from input event ``ptr`` on (events ``ptr:stop``
    sorted by (timestep, unit)): ``(c, count, new ptr)``, ``count = 0`` when ``t`` has no more."""
    if ptr >= stop or in_timestep[ptr] != t:
        return 0, 0, ptr
    c = in_unit[ptr]
    count = 0
    while ptr < stop and in_timestep[ptr] == t and in_unit[ptr] == c:
        count += 1
        ptr += 1
    return c, count, ptr


@njit(cache=True, inline="always")
def single_inputs_end(t, ptr, stop, in_timestep, in_unit):
    """The end of the run of input events from ``ptr`` on whose units each occur once in timestep
    ``t`` (events sorted by (timestep, unit))."""
    e = ptr
    while e < stop and in_timestep[e] == t and not (e + 1 < stop and in_timestep[e + 1] == t
                                                      and in_unit[e + 1] == in_unit[e]):
        e += 1
    return e


@njit(cache=True, inline="always")
def inject(t, ptr, stop, in_timestep, in_unit, acc, dirty, net):
    """Step 0: ``acc[layer 1] = W_1 x[t]``, units in ascending order, a unit repeated ``n``
    times sent as ``n`` spikes at once (:func:`send`); into a dense layer, a run of at least
    :data:`MANY` units sent once each goes by :func:`send_many`. Returns ``(new ptr, SOPs)``."""
    sops = 0
    dense = net.kind[0] == DENSE
    while True:
        if dense:
            end = single_inputs_end(t, ptr, stop, in_timestep, in_unit)
            if end - ptr >= MANY:
                sops += send_many(net, 0, in_unit, ptr, end, 0, acc)
                ptr = end
        c, count, ptr = next_input(t, ptr, stop, in_timestep, in_unit)
        if count == 0:
            return ptr, sops
        sops += send(net, 0, c, count, acc, dirty)


@njit(cache=True, inline="always")
def deliver(neurons, counts, lo, hi, acc, hit, dirty, net, queued):
    """A group of spikes ``neurons[lo:hi]``, each into the next layer: neuron ``j`` of layer ``l``
    sends ``acc[layer l+1] += W_{l+1}[:, j]`` (:func:`send`) and marks that layer as receiving. An
    output neuron's spike goes nowhere. A queued input (id ``-1 - c``; only when ``queued``, see
    :func:`~.bundles.queue_step`) sends its ``counts[e]`` spikes of channel ``c`` into layer 1
    (:func:`send_queued`). A group is sorted by neuron, so each layer's spikes are one run; a run
    of at least :data:`MANY` spikes into a dense layer goes by :func:`send_many`. Returns the SOPs
    (targets reached).

    One call per group, not per spike: in a kernel compiled with reference counting (the figures'
    replay), each array a helper takes costs an atomic increment and decrement per call, more than
    a short row add."""
    offsets, layer_of = net.offsets, net.layer_of
    last = len(offsets) - 2
    sops = 0
    e = lo
    while e < hi:
        i = neurons[e]
        if i < 0:
            sops += send_queued(queued, net, -1 - i, int(counts[e]), acc, dirty)
            hit[0] = True
            e += 1
            continue
        layer = layer_of[i]
        if layer == last:
            e += 1
            continue
        hit[layer + 1] = True
        end = e + 1  # this layer's spikes: a group is sorted by neuron
        while end < hi and layer_of[neurons[end]] == layer:
            end += 1
        if net.kind[layer + 1] == DENSE and end - e >= MANY:
            sops += send_many(net, layer + 1, neurons, e, end, offsets[layer], acc)
            e = end
            continue
        while e < end:
            sops += send(net, layer + 1, neurons[e] - offsets[layer], 1, acc, dirty)
            e += 1
    return sops


def _no_queued_input(queued, net, c, count, acc, dirty):
    return 0


@queue_step(_no_queued_input)
def send_queued(queued, net, c, count, acc, dirty):
    """A queued input's delivery: channel ``c`` sends its ``count`` spikes into layer 1 (:func:`send`)."""
    return send(net, 0, c, count, acc, dirty)


@njit(cache=True, inline="always")
def receive_ranges(layer, net, dirty, ranges):
    """The neurons of ``layer`` that its receive pass visits, as ascending global id ranges
    ``ranges[2r]:ranges[2r+1]``; returns their number. A dense-fed layer: the whole layer. A
    conv-fed layer: each run of consecutive blocks marked in ``dirty`` (the marks are cleared)."""
    if net.kind[layer] == DENSE:
        ranges[0], ranges[1] = net.offsets[layer], net.offsets[layer + 1]
        return 1
    return dirty_ranges(layer, net, dirty, ranges)


def _no_ranges(layer, net, dirty, ranges):
    return 0


@conv_step(_no_ranges)
def dirty_ranges(layer, net, dirty, ranges):
    """:func:`receive_ranges` of a conv-fed layer: the runs of marked blocks."""
    lo, hi = net.offsets[layer], net.offsets[layer + 1]
    b0, b1 = net.block_off[layer], net.block_off[layer + 1]
    n, b = 0, b0
    while b < b1:
        if not dirty[b]:
            b += 1
            continue
        start = b
        while b < b1 and dirty[b]:
            dirty[b] = False
            b += 1
        ranges[2 * n] = lo + (start - b0) * BLOCK
        ranges[2 * n + 1] = min(hi, lo + (b - b0) * BLOCK)
        n += 1
    return n


@njit(cache=True, inline="always")
def receive(v_i, a_i, refractory_i):
    """The receive rule for one neuron: ``(u, checked)``. A refractory neuron discards its current
    (``u = v_i``); any other adds it (``u = v_i + a_i``) and is *checked* if ``a_i != 0``."""
    u = v_i if refractory_i else v_i + a_i
    return u, (a_i != 0) & (not refractory_i)


@njit(cache=True, inline="always")
def integrate(v, acc, refractory, theta):
    """Every neuron of a layer (views) receives (:func:`receive`); ``acc`` is cleared. Returns
    ``(any v_i > theta, checks)``.

    Receiving 0 is equivalent to being skipped, since ``v <= theta`` holds for every neuron that
    was not just checked (``theta > 0``, ``beta <= 1``); branch-free, so LLVM vectorizes it."""
    any_above = False
    checks = 0
    for q in range(len(v)):
        u, checked = receive(v[q], acc[q], refractory[q])
        checks += checked
        acc[q] = 0
        v[q] = u
        any_above |= fires(u, theta)
    return any_above, checks


@njit(cache=True, inline="always")
def integrate_logged(v, acc, refractory, theta, lo, log_neuron, log_u, n):
    """:func:`integrate`, logging each check as ``(neuron lo + q, u)`` at ``n, n + 1, ...`` (the
    log needs room for ``len(v)`` more entries: every slot is written, only checks advance).
    Returns ``(any v_i > theta, new n)``."""
    any_above = False
    for q in range(len(v)):
        u, checked = receive(v[q], acc[q], refractory[q])
        log_neuron[n] = lo + q
        log_u[n] = u
        n += checked
        acc[q] = 0
        v[q] = u
        any_above |= fires(u, theta)
    return any_above, n


@njit(cache=True, inline="always")
def fires(u, theta):
    """The threshold rule: a checked neuron fires when its membrane is strictly above theta."""
    return u > theta


@njit(cache=True, inline="always")
def fire(v, refractory, i, spared):
    """Neuron ``i`` fires: ``v_i <- 0``; refractory for the rest of the timestep unless refractory
    dropout ``spared`` it."""
    v[i] = 0
    refractory[i] = not spared


STOP_SAMPLE, STOP_TIMESTEP = 0, 1  # what an early stop ends: the whole sample, or only the timestep


@njit(cache=True, inline="always")
def stop_reached(stop_on_output, stop_scope, first_in_sample, first_in_timestep, steps_before, k):
    """Whether an early stop ends the run after the receive pass of step ``k`` of a timestep.

    ``stop_on_output = D`` (``-1``: never). ``STOP_SAMPLE``: ``S + k >= first_in_sample + D``, with
    ``S = steps_before`` the forward steps of earlier timesteps and ``first_in_sample`` the global
    step of the sample's first output spike. ``STOP_TIMESTEP``: ``k >= first_in_timestep + D``
    with the step of this timestep's first output spike. A first spike of ``-1`` (none yet)
    never stops.
    """
    if stop_on_output < 0:
        return False
    if stop_scope == STOP_SAMPLE:
        return first_in_sample >= 0 and steps_before + k >= first_in_sample + stop_on_output
    return first_in_timestep >= 0 and k >= first_in_timestep + stop_on_output
