"""The named bundles the kernels take: plain arrays and scalars in namedtuples (Numba passes them
as structs), so a signature names what travels instead of listing thirty arrays.

- :class:`Net`: the network, built once by ``Network.kernel_arrays``. ``w`` concatenates every
  ``W_l^T`` row-major: presynaptic neuron ``j`` of layer ``l`` (input channel ``c`` for ``l = 0``)
  owns the contiguous row ``w[w_off[l] + j*n_{l+1} : ... + n_{l+1}] = W_{l+1}[:, j]``.
  ``w_rows`` holds every ``W_l`` row-major at the same offsets (for ``W^T m`` in the backward
  pass). ``sizes = (n_0, ..., n_L)``; ``offsets[l]`` is the first global id of layer ``l+1``
  (``offsets[L]`` = number of neurons); ``layer_of[i]`` is the layer of neuron ``i``, counted
  from 0 (the first non-input layer). ``theta``, ``beta``: threshold and decay in the run's dtype.
  ``kind[l]``: how layer ``l`` receives (``layers.DENSE``: the row above; ``layers.CONV2D``: its
  footprint table). The footprint of presynaptic index ``p`` (input channel ``c``: ``p = c``;
  neuron ``i``: ``p = n_0 + i``) is ``fan_target[fan_ptr[p]:fan_ptr[p+1]]`` (neuron indices within
  the next layer, uint32) with weights ``fan_w[...]`` (``w[fan_weight[...]]``, gathered in table order
  so the forward reads them contiguously; ``fan_weight`` (uint64) also indexes the gradient);
  empty for inputs of dense layers.
  ``block_off[l]``: the first of layer ``l``'s blocks of :data:`BLOCK` neurons (the receive pass of a
  conv layer visits only the blocks that received current). ``conv``: ``True`` if a layer is
  conv2d, ``None`` if every layer is dense; a different Numba type, so the kernels of a dense-only
  network compile without any conv code (:func:`conv_step`).
- :class:`Run`: how the scheduler runs (codes from ``forward.py``); ``input_queue`` is
  :func:`queue_flag`'s ``True`` or ``None``.
- :class:`Events`: per-event buffers, in delivery order (the trace's events, fields in the order of
  ``trace.EVENT_FIELDS``).
- :class:`SampleOut`: one sample's metrics, filled by the forward kernel.
"""
import functools
from collections import namedtuple

from numba import njit, types
from numba.extending import overload

Net = namedtuple("Net", "w w_rows w_off sizes offsets layer_of theta beta kind fan_ptr fan_target fan_weight "
                       "fan_w block_off conv")
DENSE, CONV2D = 0, 1  # layer kinds (Net.kind)
BLOCK_SHIFT = 4
BLOCK = 1 << BLOCK_SHIFT  # neurons per block
Run = namedtuple("Run", "schedule group_size momentum_noise dropout stop_on_output stop_scope input_queue")
Events = namedtuple("Events", "neuron timestep fired emitted vpre refractory")
SampleOut = namedtuple("SampleOut", "output_counts spikes_per_layer steps_per_timestep scalars "
                                    "timestep_spikes_to_output timestep_spikes_to_correct")


def conv_step(placeholder, nrt=False):
    """Decorator: the step below is conv-only code (a footprint's adds, its adjoint). In a kernel
    compiled for a dense-only network (``Net.conv is None``) a call to it compiles to
    ``placeholder`` (a function of the same arguments, never reached at run time: every layer is
    dense there), so that network's kernels carry no conv code. The step's argument named ``net``
    is the :class:`Net`. ``nrt``: the step allocates (see :func:`_compiled_when`)."""
    return _compiled_when(lambda arg: not isinstance(_field(arg["net"], "conv"), types.NoneType), placeholder, nrt)


def queue_step(placeholder):
    """Decorator: the step below is code for queued inputs only (``--input-queue``). Its argument
    named ``queued`` is ``True`` when the run queued its inputs and ``None`` otherwise (a different
    Numba type: :func:`queue_flag`); with ``None`` a call compiles to ``placeholder`` (never reached
    then: no event is a queued input)."""
    return _compiled_when(lambda arg: not isinstance(arg["queued"], types.NoneType), placeholder, False)


def queue_flag(input_queue) -> bool | None:
    """``input_queue`` as the kernels take it: ``True``, or ``None`` (see :func:`queue_step`)."""
    return True if input_queue else None


def _field(named_tuple_type, name):
    """The Numba type of a field of a named-tuple type."""
    return named_tuple_type.types[named_tuple_type.fields.index(name)]


def _compiled_when(needed, placeholder, nrt):
    """The step below as a function whose calls compile to the step itself when ``needed`` (a test
    of the Numba types of the call's arguments, by name), else to ``placeholder``: code a run
    cannot reach is not compiled (what that saves: ``docs/performance.md``, "First-run compile
    time"). The chosen function is compiled once, as its own function (Numba's overload; inlining
    it made Numba warn about its own IR), without reference counting unless ``nrt`` (the step
    allocates)."""
    def decorate(step):
        names = step.__code__.co_varnames[:step.__code__.co_argcount]

        @functools.wraps(step)
        def dispatch(*args):
            raise TypeError(f"{step.__name__} runs only inside Numba kernels")

        @overload(dispatch, jit_options=dict(_nrt=nrt))
        @functools.wraps(step)  # (Numba matches the signatures of this and of what it returns)
        def _choose(*args):
            return step if needed(dict(zip(names, args))) else placeholder
        return dispatch
    return decorate


@njit(cache=True)
def events_slice(ev, lo, hi):
    """Events ``lo:hi`` (views)."""
    return Events(ev.neuron[lo:hi], ev.timestep[lo:hi], ev.fired[lo:hi], ev.emitted[lo:hi],
                  ev.vpre[lo:hi], ev.refractory[lo:hi])


@njit(cache=True)
def sample_out(out, b):
    """The metrics rows of sample ``b`` of a batch's :class:`SampleOut` (views)."""
    return SampleOut(out.output_counts[b], out.spikes_per_layer[b], out.steps_per_timestep[b],
                     out.scalars[b], out.timestep_spikes_to_output[b], out.timestep_spikes_to_correct[b])


@njit(cache=True, nogil=True)
def compact_events(ev, capacity, indptr, out, lo, hi):
    """Samples ``lo:hi``: sample ``b``'s events, the first ``indptr[b+1] - indptr[b]`` of its
    slots ``[b*capacity, (b+1)*capacity)`` in ``ev``, copied to ``indptr[b]:indptr[b+1]`` of
    ``out``."""
    neuron, timestep, fired, emitted, vpre, refractory = out
    s_neuron, s_timestep, s_fired, s_emitted, s_vpre, s_refractory = ev
    for b in range(lo, hi):
        shift = b * capacity - indptr[b]
        for e in range(indptr[b], indptr[b + 1]):
            neuron[e] = s_neuron[e + shift]
            timestep[e] = s_timestep[e + shift]
            fired[e] = s_fired[e + shift]
            emitted[e] = s_emitted[e + shift]
            vpre[e] = s_vpre[e + shift]
            refractory[e] = s_refractory[e + shift]
