"""Energy estimate of an inference from counted operations (the study's energy column).

Three operation counts per sample, all exact functions of the recorded trace:

- **SOPs** (synaptic operations, ``Metrics.sops``): one accumulate ``v_i += W_ij`` per delivered
  spike and target neuron (input spikes included, output spikes deliver nothing).
- **Checks** (neuron updates / threshold checks, :func:`count_checks`): every forward step in
  which a layer receives current, each of its non-refractory neurons adds the summed current to
  its membrane and compares it with the threshold (``docs/semantics.md``: only neurons that
  receive a non-zero current are checked; with dense weights a delivered spike makes its whole
  target layer receive current). So a step costs, per target layer that received anything,
  ``size of the layer - neurons of it that already fired this timestep``. The injection step
  (step 0) checks all of layer 1 in every timestep that has input and was run.
- **Spikes**: network spikes fired (``Metrics.spikes_per_layer`` summed), each costing one
  spike-routing operation (an address-event packet, its queue entry and the weight-row fetch
  set-up). Input spikes are the same for every model and are not counted.

The energy of one inference is ``sops * sop_pj + checks * check_pj + spikes * spike_pj``
(picojoules). The per-operation energies form a *profile* (:data:`DEFAULT_PROFILE`, override any
key with a dict or the study's JSON configuration). Defaults and their sources are documented in
``docs/study.md``. This is an operation-count model: it ignores static power, the membrane decay
of neurons that are not checked (an event-driven design applies it lazily, inside the check),
and the scheduler's own bookkeeping (queue, heap), which a spike-routing cost stands in for.
"""
from __future__ import annotations

import math

import numpy as np

from .errors import UserError

# picojoules per operation; sources in docs/study.md (Horowitz, ISSCC 2014, 45 nm, 0.9 V)
DEFAULT_PROFILE = {
    "sop_pj": 0.9,     # 32-bit float add: the accumulate of one synaptic operation
    "check_pj": 4.6,   # 32-bit float multiply (3.7 pJ, the decay applied at the check) + add/compare (0.9 pJ)
    "spike_pj": 10.0,  # routing one spike: ~ a 64-bit read from an 8 KB SRAM (10 pJ)
}
COUNTS = ("sops", "checks", "spikes")


def validate_profile(profile) -> dict:
    """``DEFAULT_PROFILE`` updated with ``profile`` (a dict); unknown keys or values that are not
    finite non-negative numbers raise :class:`UserError`."""
    if profile is None:
        return dict(DEFAULT_PROFILE)
    if not isinstance(profile, dict):
        raise UserError("the energy profile must be a JSON object such as "
                        f"{{\"sop_pj\": 0.9, \"check_pj\": 4.6, \"spike_pj\": 10}}, got {profile!r}")
    unknown = sorted(set(profile) - set(DEFAULT_PROFILE))
    if unknown:
        raise UserError(f"unknown energy profile key(s) {', '.join(unknown)}; "
                        f"known: {', '.join(DEFAULT_PROFILE)}")
    out = dict(DEFAULT_PROFILE)
    for key, value in profile.items():
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value >= 0
        if not ok:
            raise UserError(f"energy profile {key} must be a finite number >= 0 (picojoules), got {value!r}")
        out[key] = float(value)
    return out


def energy_breakdown(sops, checks, spikes, profile=None) -> dict:
    """Energy in picojoules per term (``sop_pj``-weighted ``sops`` -> ``"sops"``, ...) and
    ``"total"``; inputs may be scalars or equally shaped arrays (per sample)."""
    p = validate_profile(profile)
    parts = {"sops": np.asarray(sops, dtype=np.float64) * p["sop_pj"],
             "checks": np.asarray(checks, dtype=np.float64) * p["check_pj"],
             "spikes": np.asarray(spikes, dtype=np.float64) * p["spike_pj"]}
    parts["total"] = parts["sops"] + parts["checks"] + parts["spikes"]
    return parts


def count_checks(trace, batch) -> np.ndarray:
    """Neuron checks per sample of ``trace`` (simulated from the input ``batch``), see the module
    docstring. Vectorised over all events of the trace.

    Exact for runs without refractory dropout, except under stop-on-output, where a spike that
    fired but was never delivered is not in the trace, so its neuron is (wrongly) counted as
    checkable in later steps of its timestep: a slight over-count. A sample-scoped stop skips
    the timesteps after it; a timestep-scoped one runs (and injects into) every timestep.
    """
    sizes = np.asarray(trace.layer_sizes, dtype=np.int64)   # (n_0, n_1, ..., n_L)
    n_layers = len(sizes) - 1
    offsets = np.concatenate([[0], np.cumsum(sizes[1:])])   # global ids, layer-major
    n = len(trace)
    T = int(trace.n_timesteps)
    checks = np.zeros(n, dtype=np.int64)

    # step 0: layer 1 is checked in every timestep that has input and was run
    in_sample = np.repeat(np.arange(n), np.diff(batch.indptr))
    pairs = np.unique(in_sample.astype(np.int64) * T + batch.timestep)
    last_run = np.full(n, T - 1, dtype=np.int64)
    if trace.stop_on_output is not None and trace.stop_scope == "sample" and trace.metrics is not None:
        steps = trace.metrics.steps_per_timestep
        stopped = trace.metrics.steps_to_first_output >= 0
        ran = steps > 0
        last = np.where(ran.any(axis=1), T - 1 - np.argmax(ran[:, ::-1], axis=1), -1)
        last_run = np.where(stopped, last, last_run)
    keep = (pairs % T) <= last_run[pairs // T]
    checks += np.bincount(pairs[keep] // T, minlength=n) * sizes[1]

    if trace.n_events == 0:
        return checks
    ev_sample = np.repeat(np.arange(n, dtype=np.int64), np.diff(trace.indptr))
    layer = np.searchsorted(offsets, trace.neuron, side="right")  # 1-based layer of each spike
    t = trace.timestep.astype(np.int64)
    big = np.int64(1) << 31
    # spikes that fired: key (sample, timestep, layer) * big + fired_step, sorted
    key = ((ev_sample * T + t) * (n_layers + 1) + layer)
    fired = np.sort(key * big + trace.fired_step.astype(np.int64))
    # groups: (sample, timestep, emitted_step, target layer) of non-output spikes
    target = layer + 1
    inner = target <= n_layers
    gkey = np.unique(np.stack([ev_sample[inner], t[inner], trace.emitted_step[inner].astype(np.int64),
                               target[inner]], axis=1), axis=0)
    if len(gkey):
        gs, gt, gk, gl = gkey.T
        base = ((gs * T + gt) * (n_layers + 1) + gl) * big
        refractory = np.searchsorted(fired, base + gk, side="left") - np.searchsorted(fired, base, side="left")
        checks += np.bincount(gs, weights=sizes[gl] - refractory, minlength=n).astype(np.int64)
    return checks
