"""Unlayered backprop: the reverse sweep through one sample's recorded event order, in Numba.

It mirrors the forward steps (``steps.py``; the table there pairs each step with its reverse).
Forward, each step ``k`` *delivers* a group (targets sum weight columns) and then *checks* every
neuron that received current::

    u = v + a ;  s = H(u - theta) ;  v <- u (1 - s)

Backward, each step is undone in the opposite order: first the checks, then the deliveries.

- check (``_reverse_checks``): with ``adj_v`` the adjoint of ``v`` after the check,
  ``adj_s`` the adjoint the spike collected from its deliveries and the loss, and
  ``h = H'(u - theta)`` the surrogate::

      adj_u = adj_v (1 - s) + h (adj_s - u adj_v)        (the reset is differentiated too)

- delivery (``_reverse_deliveries``): for a spike of neuron ``j`` delivered with value ``s_j``
  into layer ``l+1``, with ``m_i = adj_v[i]`` on non-refractory targets and 0 on refractory ones
  (discarded current carries no gradient)::

      adj_s_j += sum_i W_ij m_i          dW_ij += s_j m_i

- a *silent* check (``s = 0``) is a virtual spike delivered with the next step's group (or in one
  extra step after the timestep's last one): value 0 forward, but its ``adj_s`` brings gradient to
  the silent neuron. It triggers no check.
- decay ``v <- beta v``: ``adj_v <- beta adj_v``. Input: ``dW_1[:, c] += x[t, c] m``.

Two switches change the graph (``docs/algorithm.md``, "Gradient modes"):

- ``detach_reset``: the reset ``v <- u (1 - s)`` is treated as a constant factor (as snnTorch does
  by default), so the check becomes ``adj_u = adj_v (1 - s) + h adj_s``: the term ``-h u adj_v``,
  whose gain ``1 - h u`` exceeds 1 for ``u < 0`` and compounds over the many checks of a small-F
  timestep, is gone;
- ``mode = REFERENCE`` (the published work's graph): no virtual spikes; instead a silent check's
  ``s`` joins the neuron's queue entry, and a real delivery sends the whole entry, so every silent
  check of ``j`` since its previous delivery in the timestep gets ``adj_s`` = the adjoint of that
  delivery. Silent checks never followed by a delivery carry gradient only through the output
  counts.

States come from one replay of the sample (``replay.py``: the forward's own steps with the
recorded groups, so it must reproduce every recorded spike) that logs every check ``(neuron, u,
s)``; the sweep then reads the log backwards. Memory: the log, about 17 bytes per check in float32
(``Metrics.checks`` counts them). Adjoints are in the run's dtype.
"""
import numpy as np
from numba import njit

from . import NO_REFCOUNT
from .bundles import DENSE, conv_step, events_slice, queue_step
from .replay import NEVER, first_at_least, replay_log, timestep_layout
from .steps import add_rows
from .surrogates import counts_per_timestep, loss_and_dcounts, surrogate_grads

EXACT, REFERENCE = 0, 1  # gradient modes: virtual spikes (docs/algorithm.md) | queue-entry sums
GRADIENT_MODES = {"exact": EXACT, "reference": REFERENCE}
OK = 0  # status; a positive status t+1 means: the trace does not replay at timestep t


# ---------------------------------------------------------------- the reverse of each forward step
@njit(cache=True, inline="always")
def _reverse_checks(lo, hi, log, log_adj_s, queue_adj, adj_v, dcounts_t, out_lo, theta, grad, h):
    """Reverse of the receive (:func:`~.steps.integrate`) for the checks ``lo:hi``:
    ``adj_u = adj_v (1 - s) + h (adj_s - u adj_v)`` (without ``- u adj_v`` when ``detach_reset``).
    ``adj_s`` is the adjoint of the check's own (real or virtual) spike; in ``REFERENCE`` mode a
    silent check takes that of the neuron's next delivery instead (``queue_adj``). ``h`` is
    scratch for the surrogates ``H'(u - theta)``."""
    log_neuron, log_u, log_s = log
    surrogate, param, band, mode, detach_reset = grad
    surrogate_grads(surrogate, log_u[lo:hi], theta, param, band, h)
    for c in range(lo, hi):
        i = log_neuron[c]
        s = 1.0 if log_s[c] else 0.0
        adj_s = queue_adj[i] if (mode == REFERENCE and s == 0.0) else log_adj_s[c]
        if i >= out_lo:
            adj_s += dcounts_t[i - out_lo]
        av = adj_v[i]
        reset = 0.0 if detach_reset else log_u[c] * av
        adj_v[i] = av * (1.0 - s) + h[c - lo] * (adj_s - reset)


@njit(cache=True)
def _masked_adjoint(layer, k, adj_v, refractory_since, offsets, m):
    """``m_i = adj_v[i]`` for neurons of ``layer`` not refractory at step ``k``, else 0."""
    lo, hi = offsets[layer], offsets[layer + 1]
    m_layer, a_layer, since = m[lo:hi], adj_v[lo:hi], refractory_since[lo:hi]
    for q in range(hi - lo):
        m_layer[q] = a_layer[q] if since[q] >= k else 0.0


@njit(cache=True, fastmath={"reassoc", "contract"})
def _spike_adjoint(row, m):
    """``sum_i W_ij m_i`` for one spike: ``row = W[:, j]`` (a row of ``W^T``), ``m`` its targets."""
    total = m[0] * 0  # in the adjoints' dtype
    for q in range(len(row)):
        total += row[q] * m[q]
    return total


@njit(cache=True, fastmath={"reassoc", "contract"})
def _layer_adjoint(w_rows, n_in, m, out):
    """``out = W^T m`` for a whole layer at once (``w_rows``: ``W`` row-major, ``n_out x n_in``);
    the same sums as :func:`_spike_adjoint`, cheaper when many of the layer's neurons delivered."""
    out[:] = 0.0
    for i in range(len(m)):
        if m[i] != 0.0:
            row = w_rows[i * n_in:(i + 1) * n_in]
            for j in range(n_in):
                out[j] += row[j] * m[i]


def _no_adjoint(net, p, lo, k, adj_v, refractory_since, dw, value):
    return adj_v[0] * 0


@conv_step(_no_adjoint)
def _footprint_adjoint(net, p, lo, k, adj_v, refractory_since, dw, value):
    """The conv layer's :func:`_spike_adjoint`: ``sum_i W_ij m_i`` over the footprint of
    presynaptic index ``p`` (targets from ``lo``), ``m_i = adj_v[i]`` unless ``i`` is refractory at
    step ``k``; a spike of ``value`` s also adds ``dW_ij += s m_i`` (into the kernel entry
    ``W_ij`` is; a virtual spike has ``s = 0``, a queued input its count)."""
    p0, p1 = net.fan_ptr[p], net.fan_ptr[p + 1]
    targets, weights, entries = net.fan_target[p0:p1], net.fan_w[p0:p1], net.fan_weight[p0:p1]
    adj, since = adj_v[lo:], refractory_since[lo:]  # views: the unsigned targets index them directly
    zero = adj_v[0] * 0  # in the adjoints' dtype
    total = zero
    for q in range(len(targets)):
        i = targets[q]
        m = adj[i] if since[i] >= k else zero  # a refractory target discarded the current
        total += weights[q] * m
        if value != 0:
            dw[entries[q]] += value * m
    return total


def _no_queued_inputs(queued, k, ev_lo, ev_hi, ev, adj_v, refractory_since, net, m, dw):
    return ev_lo


@queue_step(_no_queued_inputs)
def _reverse_queued_inputs(queued, k, ev_lo, ev_hi, ev, adj_v, refractory_since, net, m, dw):
    """Reverse of the delivery of queued inputs (the group's first events, ids ``-1 - c``, ``v_pre``
    = the count ``n``): ``dW_1[:, c] += n m`` over layer 1, masked by refractoriness at step ``k``.
    Returns the index of the group's first neuron event."""
    e = ev_lo
    if e < ev_hi and ev.neuron[e] < 0 and net.kind[0] == DENSE:
        _masked_adjoint(0, k, adj_v, refractory_since, net.offsets, m)
    n1 = net.sizes[1]
    while e < ev_hi and ev.neuron[e] < 0:
        c, count = -1 - ev.neuron[e], ev.vpre[e]
        if net.kind[0] == DENSE:
            dw_row = dw[c * n1:(c + 1) * n1]
            for q in range(n1):
                dw_row[q] += count * m[q]
        else:
            _footprint_adjoint(net, c, 0, k, adj_v, refractory_since, dw, count)
        e += 1
    return e


@njit(cache=True, inline="always")
def _reverse_deliveries(k, ev_lo, ev_hi, ev, event_check, log_lo, log_hi, log, log_adj_s, queue_adj, adj_v,
                        refractory_since, net, queued, grad, m, layer_adj, dw):
    """Reverse of :func:`~.steps.deliver` for the group of step ``k``: the recorded real spikes
    ``ev_lo:ev_hi`` (value 1) and, in ``EXACT`` mode, the virtual spikes of the silent checks
    ``log_lo:log_hi`` of step ``k-1`` (value 0).

    Each delivered spike of neuron ``j`` (layer ``l``) gets ``adj_s_j += sum_i W_ij m_i`` over layer
    ``l+1``; a real one also ``dW_ij += m_i``. In ``REFERENCE`` mode a real spike's adjoint also
    goes to ``queue_adj[j]``, for the silent checks summed into its queue entry. When a quarter or
    more of layer ``l`` delivered, all its sums come from one ``W^T m`` (:func:`_layer_adjoint`),
    else one dot per spike. A group and a step's checks are sorted by neuron, so each layer's
    spikes are one contiguous range of each."""
    w, w_rows, w_off, sizes, offsets, kind = net.w, net.w_rows, net.w_off, net.sizes, net.offsets, net.kind
    ev_neuron = ev.neuron
    n_layers = len(sizes) - 1
    band, virtual = grad[2], grad[3] == EXACT
    log_neuron, log_u, log_s = log
    theta = net.theta
    ev_lo = _reverse_queued_inputs(queued, k, ev_lo, ev_hi, ev, adj_v, refractory_since, net, m, dw)
    for layer in range(n_layers - 1):
        lo_in, lo_out = offsets[layer], offsets[layer + 1]
        e0, e1 = first_at_least(ev_neuron, ev_lo, ev_hi, lo_in), first_at_least(ev_neuron, ev_lo, ev_hi, lo_out)
        c0 = c1 = log_lo
        if virtual:
            c0 = first_at_least(log_neuron, log_lo, log_hi, lo_in)
            c1 = first_at_least(log_neuron, log_lo, log_hi, lo_out)
        if e0 == e1 and c0 == c1:
            continue
        if kind[layer + 1] != DENSE:  # a conv layer: through each spike's footprint
            for e in range(e0, e1):
                j = ev_neuron[e]
                adj = _footprint_adjoint(net, sizes[0] + j, lo_out, k, adj_v, refractory_since, dw, 1)
                log_adj_s[event_check[e]] += adj
                queue_adj[j] = adj
            for c in range(c0, c1):
                if not (log_s[c] or (band > 0 and abs(log_u[c] - theta) > band)):
                    log_adj_s[c] += _footprint_adjoint(net, sizes[0] + log_neuron[c], lo_out, k, adj_v,
                                                       refractory_since, dw, 0)
            continue
        n_in, n_out = sizes[layer + 1], sizes[layer + 2]
        _masked_adjoint(layer + 1, k, adj_v, refractory_since, offsets, m)
        m_out = m[lo_out:lo_out + n_out]
        dense = 4 * (e1 - e0 + c1 - c0) >= n_in
        if dense:
            _layer_adjoint(w_rows[w_off[layer + 1]:w_off[layer + 1] + n_in * n_out], n_in, m_out,
                           layer_adj[:n_in])
        for e in range(e0, e1):  # real spikes of this layer: adjoint and weight gradient
            j = ev_neuron[e]
            start = w_off[layer + 1] + (j - lo_in) * n_out
            adj = layer_adj[j - lo_in] if dense else _spike_adjoint(w[start:start + n_out], m_out)
            log_adj_s[event_check[e]] += adj
            queue_adj[j] = adj
            dw_row = dw[start:start + n_out]
            for q in range(n_out):
                dw_row[q] += m_out[q]
        for c in range(c0, c1):  # virtual spikes of this layer (silent checks): adjoint only
            if log_s[c] or (band > 0 and abs(log_u[c] - theta) > band):
                continue
            j = log_neuron[c]
            start = w_off[layer + 1] + (j - lo_in) * n_out
            log_adj_s[c] += layer_adj[j - lo_in] if dense else _spike_adjoint(w[start:start + n_out], m_out)


def _no_input_footprints(in_timestep, in_unit, net, adj_in, dw):
    return None


@conv_step(_no_input_footprints, nrt=True)
def _reverse_input_footprints(in_timestep, in_unit, net, adj_in, dw):
    """Reverse of :func:`~.steps.inject` into a conv layer 1, for all timesteps of one sample:
    ``dW_1 += x[t, c] adj_in[t]`` through the footprint of each channel ``c``, with ``adj_in[t]`` the
    adjoint of layer 1 at step 0 of timestep ``t`` (nothing is refractory then). Channel by
    channel, each channel's timesteps latest first (the order of the reverse sweep). (A dense
    layer 1 is done for the whole batch at once: :func:`input_rows`.)"""
    n_inputs = net.sizes[0]
    fan_ptr, fan_target, fan_weight = net.fan_ptr, net.fan_target, net.fan_weight
    start = np.zeros(n_inputs + 1, dtype=np.int64)  # counting sort of the events by channel
    for p in range(len(in_unit)):
        start[in_unit[p] + 1] += 1
    for c in range(n_inputs):
        start[c + 1] += start[c]
    fill = start[:-1].copy()
    by_channel = np.empty(len(in_unit), dtype=np.int64)
    for p in range(len(in_unit)):
        by_channel[fill[in_unit[p]]] = p
        fill[in_unit[p]] += 1
    for c in range(n_inputs):
        for r in range(start[c + 1] - 1, start[c] - 1, -1):
            adj_1 = adj_in[in_timestep[by_channel[r]]]
            for q in range(fan_ptr[c], fan_ptr[c + 1]):
                dw[fan_weight[q]] += adj_1[fan_target[q]]


@njit(cache=True)
def input_rows_order(in_indptr, in_timestep, in_unit, n_timesteps, n_inputs, n_blocks):
    """The batch's input events grouped for :func:`input_rows`: by channel, then by gradient block
    (sample ``b`` belongs to block ``b % n_blocks``), then in batch order (sample, then time).
    Returns ``(rows, key_ptr)``: the events of channel ``c`` and block ``blk`` are
    ``rows[key_ptr[k]:key_ptr[k+1]]``, ``k = c n_blocks + blk``, each given as the row ``b T + t``
    of the input adjoints (its sample ``b``, its timestep ``t``). (A stable counting sort.)"""
    n_keys = n_inputs * n_blocks
    key_ptr = np.zeros(n_keys + 1, dtype=np.int64)
    for b in range(len(in_indptr) - 1):
        for e in range(in_indptr[b], in_indptr[b + 1]):
            key_ptr[in_unit[e] * n_blocks + b % n_blocks + 1] += 1
    for k in range(n_keys):
        key_ptr[k + 1] += key_ptr[k]
    fill = key_ptr[:-1].copy()
    rows = np.empty(len(in_unit), dtype=np.int64)
    for b in range(len(in_indptr) - 1):
        for e in range(in_indptr[b], in_indptr[b + 1]):
            k = in_unit[e] * n_blocks + b % n_blocks
            rows[fill[k]] = b * n_timesteps + in_timestep[e]
            fill[k] += 1
    return rows, key_ptr


@njit(cache=True, nogil=True)
def input_rows(rows, key_ptr, adj_in, n_timesteps, n_blocks, dw, lo, hi):
    """Reverse of :func:`~.steps.inject` into a dense layer 1, for a whole batch, rows ``lo:hi``:
    ``dW_1[:, c] = sum_b sum_t x_b[t, c] adj_in[b T + t]``, with ``adj_in[b T + t]`` the adjoint of
    layer 1 at step 0 of timestep ``t`` of sample ``b`` (nothing is refractory then). Summed in the
    order :func:`loss_and_grad_blocks` and :func:`sum_blocks` sum every other weight: per block,
    its samples in order, each sample's timesteps latest first (the reverse sweep); then the blocks
    in order. So the result does not depend on the number of threads, and each row of ``dW_1`` is
    written by one thread only (rows ``lo:hi`` are channels ``lo:hi``)."""
    n1 = adj_in.shape[1]
    partial = np.empty(n1)
    longest = 0
    for k in range(lo * n_blocks, hi * n_blocks):
        longest = max(longest, key_ptr[k + 1] - key_ptr[k])
    in_order = np.empty(longest, dtype=np.int64)  # one channel-block's rows in summation order
    adj_flat, zero = adj_in.reshape(-1), np.int64(0)  # (np.int64: a literal 0 would compile add_rows again)
    dw[lo * n1:hi * n1] = 0.0  # (0 + x is x: bitwise the same as starting from the first block's sum)
    # (no views in the loops: each would cost two atomic reference-count updates)
    for blk in range(n_blocks):  # block by block: the input adjoints of a block's samples stay in cache
        for c in range(lo, hi):
            r0, r1 = key_ptr[c * n_blocks + blk], key_ptr[c * n_blocks + blk + 1]
            if r0 == r1:  # channel c is silent in this block's samples: adds 0
                continue
            n = 0
            while r0 < r1:  # one sample's events at a time, latest first
                run_end = r0
                while run_end < r1 and rows[run_end] // n_timesteps == rows[r0] // n_timesteps:
                    run_end += 1
                for r in range(run_end - 1, r0 - 1, -1):
                    in_order[n] = rows[r]
                    n += 1
                r0 = run_end
            partial[:] = 0.0
            add_rows(partial, zero, n1, adj_flat, zero, in_order, zero, np.int64(n), zero)  # the rows, in order
            first = c * n1
            for q in range(n1):
                dw[first + q] += partial[q]


# ---------------------------------------------------------------- one sample
@njit(cache=True, inline="always")
def _refractory_since(refractory_since, ev_neuron, ev_fired, ev_refr, lo, hi, clear):
    """From the events ``lo:hi`` of one timestep: the step from which each neuron is refractory
    (the step its refractory spike fired; it is ``NEVER`` for the others), or back to ``NEVER``
    (``clear``)."""
    for e in range(lo, hi):
        if ev_refr[e]:
            refractory_since[ev_neuron[e]] = NEVER if clear else ev_fired[e]


@njit(**NO_REFCOUNT)
def reverse_timestep(t, k_last, ev, lo, hi, event_check, log, ptr, adjoints, refractory_since, dcounts_t, net, queued,
                     grad, dw):
    """The reverse of timestep ``t`` (its events ``lo:hi``, ``k_last`` forward steps, its checks
    ``ptr[k]:ptr[k+1]`` per step in ``log``): from the extra step ``k_last + 1`` (it delivers only
    the virtual spikes of step ``k_last``) down to step 0, each step's checks, then its deliveries.
    Leaves ``adj_v`` at the adjoint of the membranes after the timestep's decay (before its
    injection); the caller applies the decay."""
    log_adj_s, adj_v, queue_adj, m, layer_adj, h = adjoints
    out_lo = net.offsets[len(net.offsets) - 2]
    ev_fired, ev_emitted, ev_refr = ev.fired, ev.emitted, ev.refractory
    _refractory_since(refractory_since, ev.neuron, ev_fired, ev_refr, lo, hi, False)
    queue_adj[:] = 0.0
    for k in range(k_last + 1, -1, -1):
        if k <= k_last:
            _reverse_checks(ptr[k], ptr[k + 1], log, log_adj_s, queue_adj, adj_v, dcounts_t, out_lo, net.theta, grad, h)
        if k > 0:
            e_lo, e_hi = first_at_least(ev_emitted, lo, hi, k), first_at_least(ev_emitted, lo, hi, k + 1)
            _reverse_deliveries(k, e_lo, e_hi, ev, event_check, ptr[k - 1], ptr[k], log, log_adj_s, queue_adj, adj_v,
                                refractory_since, net, queued, grad, m, layer_adj, dw)
    _refractory_since(refractory_since, ev.neuron, ev_fired, ev_refr, lo, hi, True)


@njit(cache=True, inline="always")
def loss_and_grad_sample(net, input_queue, in_timestep, in_unit, n_timesteps, label, ev, loss, grad, dw, adj_in,
                         scratch):
    """Loss of one sample and its gradient (added to ``dw``, laid out like ``net.w``).
    ``input_queue``: the trace queued its inputs (delivered in groups, not injected at step 0):
    ``True``, else ``None`` (``bundles.queue_flag``).
    ``adj_in[t]`` (``T x n_1``) receives the adjoint of layer 1 at step 0 of each timestep: the
    input's share of the gradient, added here for a conv layer 1, by :func:`input_rows` for a dense
    one (unless the inputs were queued: then their deliveries added it).

    ``scratch = (log, adj_s)``: room for the check log of the replay and for its adjoints
    (:func:`~.replay.new_log` and an array as long; longer ones are allocated if they are short).

    ``grad = (surrogate, param, band, mode, detach_reset)``. Returns ``(loss, status)``; status
    ``t+1`` when the trace does not replay at timestep ``t``. The adjoints are in the run's dtype.
    """
    sizes, offsets = net.sizes, net.offsets
    n_layers = len(sizes) - 1
    n_neurons = offsets[n_layers]
    out_lo = offsets[n_layers - 1]
    dtype = net.w.dtype

    # output counts per timestep -> loss and dLoss/dc_t
    counts = counts_per_timestep(ev.neuron, ev.timestep, out_lo, sizes[n_layers], n_timesteps)
    dcounts = np.empty_like(counts)
    value = loss_and_dcounts(counts, label, loss, dcounts)

    # pass 1: replay forward once, logging every check
    in_ptr, ev_ptr, n_steps, fire_order = timestep_layout(ev, in_timestep, n_timesteps)
    log, adj_s = scratch
    log, step_ptr, event_check, status = replay_log(net, input_queue, in_timestep, in_unit, n_timesteps, ev, in_ptr,
                                                    ev_ptr, n_steps, fire_order, log)
    if status:
        return value, status

    # pass 2: the checks and deliveries of every timestep in reverse
    n_checks = step_ptr[len(step_ptr) - 1] if len(step_ptr) else 0
    log_adj_s = adj_s[:n_checks] if len(adj_s) >= n_checks else np.empty(n_checks, dtype=dtype)
    log_adj_s[:] = 0.0
    adj_v = np.zeros(n_neurons, dtype=dtype)
    adjoints = (log_adj_s, adj_v,
                np.zeros(n_neurons, dtype=dtype),  # queue_adj (REFERENCE): adjoint of each neuron's next delivery
                np.zeros(n_neurons, dtype=dtype),  # m: adj_v masked by refractoriness
                np.zeros(n_neurons, dtype=dtype),  # W^T m of one layer (at most N long)
                np.empty(n_neurons))  # h: the surrogates of one step's checks
    refractory_since = np.full(n_neurons, NEVER, dtype=np.int64)
    base = len(step_ptr)
    for t in range(n_timesteps - 1, -1, -1):
        base -= n_steps[t] + 2
        reverse_timestep(t, n_steps[t], ev, ev_ptr[t], ev_ptr[t + 1], event_check, log,
                         step_ptr[base:base + n_steps[t] + 2], adjoints, refractory_since, dcounts[t], net, input_queue,
                         grad, dw)
        for q in range(sizes[1]):  # the input's adjoint, for input_rows / _reverse_input_footprints
            adj_in[t, q] = adj_v[q]
        for q in range(n_neurons):
            adj_v[q] *= net.beta
    if not input_queue and net.kind[0] != DENSE:
        _reverse_input_footprints(in_timestep, in_unit, net, adj_in, dw)
    return value, OK


# ---------------------------------------------------------------- a batch, deterministic reduction
@njit(cache=True, nogil=True)
def loss_and_grad_blocks(net, input_queue, in_indptr, in_timestep, in_unit, labels, n_timesteps, ev_indptr, ev, loss,
                         grad, dw_blocks, blocks_from, adj_in, losses, status, scratch, lo, hi):
    """Blocks ``lo:hi`` of the partial sums: samples are dealt round-robin to the
    ``len(dw_blocks)`` blocks, and each block sums its samples' gradients in sample order.
    :func:`sum_blocks` then adds the blocks in block order, so the result does not depend on the
    number of threads. Only ``dw_blocks[:, blocks_from:]`` is used: with ``blocks_from > 0`` (a
    dense layer 1 fed by injection) the rows of ``dW_1`` come from :func:`input_rows`, which reads
    each sample's input adjoints from ``adj_in[b]`` (else ``adj_in`` is empty and each sample uses
    scratch). ``scratch``: the check-log buffers every sample of these blocks replays into
    (:func:`loss_and_grad_sample`). Releases the GIL: blocks run on parallel threads
    (``parallel.py``)."""
    n_blocks = len(dw_blocks)
    for blk in range(lo, hi):
        dw_block = dw_blocks[blk]
        dw_block[blocks_from:] = 0.0
        for b in range(blk, len(labels), n_blocks):
            i0, i1 = in_indptr[b], in_indptr[b + 1]
            adj_in_b = adj_in[b] if len(adj_in) else np.empty((n_timesteps, net.sizes[1]), dtype=net.w.dtype)
            losses[b], status[b] = loss_and_grad_sample(
                net, input_queue, in_timestep[i0:i1], in_unit[i0:i1], n_timesteps, labels[b],
                events_slice(ev, ev_indptr[b], ev_indptr[b + 1]), loss, grad, dw_block, adj_in_b, scratch)


@njit(cache=True, nogil=True)
def sum_blocks(dw_blocks, dw, lo, hi):
    """``dw[lo:hi] = sum_blk dw_blocks[blk, lo:hi]``, blocks added in order."""
    first = dw_blocks[0]
    for q in range(lo, hi):
        dw[q] = first[q]
    for blk in range(1, len(dw_blocks)):
        block = dw_blocks[blk]
        for q in range(lo, hi):
            dw[q] += block[q]
