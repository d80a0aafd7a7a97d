"""The neuron rules, written once: the steps that both the simulation (``forward.py``) and the
replay of a recorded trace (``replay.py``) are made of. ``backward.py`` undoes them in reverse,
with matching names (``docs/algorithm.md``):

- :func:`decay` (reverse: ``adj_v *= beta``): timestep start, ``v <- beta v``, nobody refractory;
- :func:`inject` (``_reverse_input``): step 0, ``acc[layer 1] = W_1 x[t]``;
- :func:`deliver` (``_reverse_deliveries``): a group of spikes, each ``acc[layer l+1] += W_{l+1}[:, j]``;
- :func:`receive`, :func:`integrate`, :func:`fires`, :func:`fire` (``_reverse_checks``): receive,
  ``v_i += acc_i`` unless refractory; a neuron with ``v_i > theta`` fires: ``v_i <- 0`` and it is refractory for
  the rest of the timestep (unless refractory dropout spares it).

The steps take plain arrays: a kernel binds the members of its bundles (``bundles.py``) to local
names once, outside its loops (reading a member inside a hot loop costs a reference count each
time).
"""
from numba import njit


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


@njit(cache=True, inline="always")
def inject(t, ptr, stop, in_timestep, in_unit, acc, w, n1):
    """Step 0: ``acc[layer 1] = W_1 x[t]`` (``n1`` = size of layer 1), units in ascending order, a
    unit repeated ``n`` times added as ``n * W_1[:, c]``. Input events ``ptr:stop`` are sorted by
    (timestep, unit). Returns ``(new ptr, SOPs)``."""
    sops = 0
    while ptr < stop and in_timestep[ptr] == t:
        c = in_unit[ptr]
        count = 0
        while ptr < stop and in_timestep[ptr] == t and in_unit[ptr] == c:
            count += 1
            ptr += 1
        add_row(acc, 0, w, c * n1, n1, count)
        sops += count * n1
    return ptr, sops


@njit(cache=True, inline="always")
def deliver(neurons, lo, hi, acc, hit, w, w_off, sizes, offsets, layer_of):
    """A group of spikes ``neurons[lo:hi]``, each into the next layer: neuron ``j`` of layer ``l``
    adds ``acc[layer l+1] += W_{l+1}[:, j]`` and marks that layer as receiving. An output neuron's
    spike goes nowhere. Returns the SOPs (targets reached).

    One call per group, not per spike: in a kernel compiled with reference counting (the figures'
    replay), each array a helper takes costs an atomic increment and decrement per call, more than
    a short row add."""
    last = len(sizes) - 2
    sops = 0
    for e in range(lo, hi):
        i = neurons[e]
        layer = layer_of[i]
        if layer == last:
            continue
        n_next = sizes[layer + 2]
        add_row(acc, offsets[layer + 1], w, w_off[layer + 1] + (i - offsets[layer]) * n_next, n_next, 1)
        hit[layer + 1] = True
        sops += n_next
    return sops


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
