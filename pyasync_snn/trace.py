"""What a simulation recorded: the executed schedule (every delivered spike) and per-sample metrics.

A :class:`Trace` is the in-memory form of the trace file (`docs/formats.md`). Events of sample ``b`` are
``indptr[b]:indptr[b+1]``, in delivery order, ascending global id within one group.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields

import numpy as np

from .validate import choice, integer, real

UNBOUNDED = 0  # group_size value meaning "no limit on the group size"
SCHEDULE_NAMES = ("layered", "random", "momentum")
DTYPES = ("float32", "float64")
STOP_SCOPES = ("sample", "timestep")  # what --stop-on-output ends: the sample, or each timestep


def format_f(group_size) -> str:
    """F for people: ``"unbounded"`` for :data:`UNBOUNDED`, else the number."""
    return "unbounded" if group_size == UNBOUNDED else str(group_size)


def schedule_label(schedule: str, group_size) -> str:
    """``"layered"`` (F is irrelevant), ``"momentum F=1"``, ``"random F=unbounded"``."""
    return "layered" if schedule == "layered" else f"{schedule} F={format_f(group_size)}"


def schedule_title(schedule: str, group_size) -> str:
    """The same for figure titles: ``"layered (F not used)"``, ``"momentum, F = 1"``."""
    return "layered (F not used)" if schedule == "layered" else f"{schedule}, F = {format_f(group_size)}"


DEFAULT_MOMENTUM_NOISE = 1e-6


@dataclass(frozen=True)
class RunSettings:
    """How a batch is simulated (and how a trace was recorded), validated once.

    ``group_size`` is F, the pending spikes delivered per forward step (:data:`UNBOUNDED` = all;
    ignored by ``layered``); ``momentum_noise`` is lambda, the tie-breaking noise of ``momentum``;
    ``refractory_dropout`` the probability that a spike leaves its neuron non-refractory;
    ``stop_on_output = D`` stops ``D`` forward steps after the first output spike of the sample
    or of each timestep (``stop_scope``), ``None`` never stops (the file format writes -1).
    ``input_queue``: input spikes enter the pending queue and compete for the F slots (trace
    neuron id ``-1 - channel``, ``v_pre`` = the count) instead of being injected at step 0.
    """

    schedule: str = "momentum"
    group_size: int = 1
    seed: int = 0
    momentum_noise: float = DEFAULT_MOMENTUM_NOISE
    refractory_dropout: float = 0.0
    dtype: str = "float32"
    stop_on_output: int | None = None
    stop_scope: str = "sample"
    input_queue: bool = False

    def __post_init__(self):
        put = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731
        choice("schedule", self.schedule, SCHEDULE_NAMES)
        put("group_size", integer("group size", self.group_size, 0,
                                  f"a positive integer or {UNBOUNDED} (unbounded)"))
        put("seed", integer("seed", self.seed, 0, "a non-negative integer", 2**63 - 1))
        put("momentum_noise", real("momentum noise", self.momentum_noise, low=0))
        put("refractory_dropout", real("refractory dropout", self.refractory_dropout, low=0, high=1))
        choice("dtype", self.dtype, DTYPES)
        if self.stop_on_output is not None:
            put("stop_on_output", integer("stop-on-output delay", self.stop_on_output, 0,
                                          "a non-negative integer"))
        choice("stop scope", self.stop_scope, STOP_SCOPES)
        if self.input_queue not in (True, False):
            raise UserError(f"input_queue must be true or false, got {self.input_queue!r}")
        put("input_queue", bool(self.input_queue))


SETTINGS = tuple(f.name for f in fields(RunSettings)) + ("n_timesteps", "layer_sizes", "network")  # a trace's
EVENT_FIELDS = ("neuron", "timestep", "fired_step", "emitted_step", "v_pre", "refractory")


@dataclass
class Metrics:
    """Per-sample metrics (`docs/semantics.md`, "Metrics"). ``-1`` means "never happened".

    - ``spikes_per_layer (N, L)``: spikes fired in each layer;
    - ``sops (N,)``: synaptic operations, the summed fan-out of delivered spikes (input included);
    - ``steps_per_timestep (N, T)``: forward steps (k >= 1) each timestep needed to drain its queue;
    - ``steps_to_first_output``: forward steps executed before the first output spike fired
      (all steps of earlier timesteps, plus its fired step); ``spikes_to_first_output``: network
      spikes fired in strictly earlier steps. ``..._first_correct``: the same for the label's neuron;
    - ``count_prediction``: argmax of the output counts (ties: lowest index);
      ``first_spike_prediction``: the output neuron that fired first (ties: lowest id);
    - ``timestep_spikes_to_output (N, T)``: the per-timestep latency (the published metric): the
      network spikes (all layers, output included, input excluded) fired in timestep ``t`` up to
      and including the step in which its first output spike fired; ``-1`` if no output neuron
      fired in ``t``. ``timestep_spikes_to_correct``: the same up to the first spike of the
      label's output neuron. ``None`` when unknown (read from a file written before they existed).
    - ``checks (N,)``: neuron checks (threshold comparisons: a non-refractory neuron receiving
      non-zero current), counted by the kernel; ``None`` in files written before it was.
    """

    labels: np.ndarray
    spikes_per_layer: np.ndarray
    sops: np.ndarray
    steps_per_timestep: np.ndarray
    steps_to_first_output: np.ndarray
    spikes_to_first_output: np.ndarray
    steps_to_first_correct: np.ndarray
    spikes_to_first_correct: np.ndarray
    count_prediction: np.ndarray
    first_spike_prediction: np.ndarray
    timestep_spikes_to_output: np.ndarray | None = None
    timestep_spikes_to_correct: np.ndarray | None = None
    checks: np.ndarray | None = None

    def __len__(self):
        return len(self.labels)

    def take(self, start: int, stop: int) -> "Metrics":
        """Samples ``start:stop``."""
        return Metrics(**{f.name: _apply(lambda a: a[start:stop], getattr(self, f.name)) for f in fields(Metrics)})

    @staticmethod
    def concatenate(parts: list) -> "Metrics":
        """The metrics of consecutive batches as one (a field missing in any part stays ``None``)."""
        def join(name):
            arrays = [getattr(p, name) for p in parts]
            return None if any(a is None for a in arrays) else np.concatenate(arrays)
        return Metrics(**{f.name: join(f.name) for f in fields(Metrics)})

    def summary(self) -> dict:
        """Means over samples; latencies are averaged over the samples where they exist.

        ``timestep_spikes_to_output``/``_correct`` are averaged over the (sample, timestep) pairs
        that have one; ``timestep_output_fraction``/``timestep_correct_fraction`` are the fractions
        of all pairs that have one (NaN when the arrays are unknown).
        """
        def mean_of_existing(x):
            x = x[x >= 0]
            return float(x.mean()) if len(x) else float("nan")

        def fraction_existing(x):
            return float(np.mean(x >= 0)) if x is not None and x.size else float("nan")

        unknown = np.empty(0, np.int64)
        n = max(len(self), 1)
        return {
            "samples": len(self),
            "accuracy": float(np.sum(self.count_prediction == self.labels) / n),
            "first_spike_accuracy": float(np.sum(self.first_spike_prediction == self.labels) / n),
            "spikes_per_sample": float(self.spikes_per_layer.sum() / n),
            "spikes_per_layer": (self.spikes_per_layer.sum(axis=0) / n).tolist(),
            "sops_per_sample": float(self.sops.sum() / n),
            "steps_per_timestep": float(self.steps_per_timestep.mean()) if self.steps_per_timestep.size else 0.0,
            "output_fraction": float(np.mean(self.steps_to_first_output >= 0)) if len(self) else 0.0,
            "steps_to_first_output": mean_of_existing(self.steps_to_first_output),
            "spikes_to_first_output": mean_of_existing(self.spikes_to_first_output),
            "steps_to_first_correct": mean_of_existing(self.steps_to_first_correct),
            "spikes_to_first_correct": mean_of_existing(self.spikes_to_first_correct),
            "timestep_spikes_to_output": mean_of_existing(_or(self.timestep_spikes_to_output, unknown)),
            "timestep_spikes_to_correct": mean_of_existing(_or(self.timestep_spikes_to_correct, unknown)),
            "timestep_output_fraction": fraction_existing(self.timestep_spikes_to_output),
            "timestep_correct_fraction": fraction_existing(self.timestep_spikes_to_correct),
        }


def _apply(fn, value):
    return None if value is None else fn(value)


def _or(value, default):
    return default if value is None else value


@dataclass
class Trace:
    """The recorded execution of a batch: settings, output counts, delivered events, metrics.

    ``group_size`` is ``UNBOUNDED`` (0) for "no limit". ``dtype`` is the float type of the run.
    The settings are those of :class:`RunSettings` (``settings`` returns them as one):
    ``stop_on_output`` is the delay (forward steps) after the first output spike at which each
    sample (``stop_scope = "sample"``) or each timestep (``"timestep"``) was stopped, or ``None``
    when every timestep ran until its queue was empty.
    """

    schedule: str
    group_size: int
    seed: int
    n_timesteps: int
    momentum_noise: float
    refractory_dropout: float
    layer_sizes: tuple
    dtype: str
    output_counts: np.ndarray
    indptr: np.ndarray
    neuron: np.ndarray
    timestep: np.ndarray
    fired_step: np.ndarray
    emitted_step: np.ndarray
    v_pre: np.ndarray
    refractory: np.ndarray
    metrics: Metrics = field(default=None)
    stop_on_output: int | None = None
    stop_scope: str = "sample"
    input_queue: bool = False
    network: str = ""  # the network's spelling (``Network.spelling``); "" when not recorded

    def __len__(self):
        return len(self.indptr) - 1

    @property
    def settings(self) -> RunSettings:
        """The run settings (validated)."""
        return RunSettings(**{f.name: getattr(self, f.name) for f in fields(RunSettings)})

    @property
    def n_events(self) -> int:
        return int(self.indptr[-1])

    def events(self, b: int) -> dict:
        """The events of sample ``b`` as a dict of arrays (delivery order)."""
        s = slice(self.indptr[b], self.indptr[b + 1])
        return {name: getattr(self, name)[s] for name in EVENT_FIELDS}

    def take(self, start: int, stop: int) -> "Trace":
        """Samples ``start:stop`` as a trace of their own (the inverse of :meth:`concatenate`)."""
        e0, e1 = self.indptr[start], self.indptr[stop]
        metrics = _apply(lambda m: m.take(start, stop), self.metrics)
        settings = {name: getattr(self, name) for name in SETTINGS}
        return Trace(**settings, output_counts=self.output_counts[start:stop],
                     indptr=self.indptr[start:stop + 1] - e0, metrics=metrics,
                     **{name: getattr(self, name)[e0:e1] for name in EVENT_FIELDS})

    @staticmethod
    def concatenate(parts: list) -> "Trace":
        """Join traces of consecutive batches run with the same settings."""
        first = parts[0]
        if len(parts) == 1:
            return first
        sizes = [p.indptr[-1] for p in parts]
        starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        indptr = np.concatenate([[0]] + [p.indptr[1:] + s for p, s in zip(parts, starts)])
        joined = {name: np.concatenate([getattr(p, name) for p in parts]) for name in EVENT_FIELDS}
        metrics = None if first.metrics is None else Metrics.concatenate([p.metrics for p in parts])
        settings = {name: getattr(first, name) for name in SETTINGS}
        return Trace(**settings, output_counts=np.concatenate([p.output_counts for p in parts]),
                     indptr=indptr.astype(np.int64), metrics=metrics, **joined)
