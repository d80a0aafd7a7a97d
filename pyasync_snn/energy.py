"""Energy estimate of an inference from counted operations (the study's energy column).

Three operation counts per sample, all counted exactly by the simulation:

- **SOPs** (synaptic operations, ``Metrics.sops``): one accumulate ``v_i += W_ij`` per delivered
  spike and target neuron (input spikes included, output spikes deliver nothing).
- **Checks** (neuron updates / threshold checks, ``Metrics.checks``, counted by the forward
  kernel): at every step, each non-refractory neuron that receives a non-zero current adds it to
  its membrane and compares it with the threshold (``docs/semantics.md``). With dense weights a
  delivered spike makes its whole target layer receive current, so a step costs, per target layer
  that received anything, about ``size of the layer - neurons of it that are refractory``.
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
