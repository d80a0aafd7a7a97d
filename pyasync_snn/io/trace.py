"""The trace file (``format = "pyasync-snn/trace"``): a recorded simulation (a :class:`Trace`).

As in `docs/formats.md`: root attributes ``schedule``, ``group_size``, ``seed``, ``n_timesteps``,
``momentum_noise``, ``refractory_dropout``; ``output_counts (N, n_out)``; ``events/indptr (N+1,)``
and per event ``events/neuron``, ``timestep``, ``fired_step``, ``emitted_step``, ``v_pre``,
``refractory``. Additions: root attributes ``layer_sizes`` (int array), ``dtype`` (the run's
float type), ``stop_on_output`` (optional; -1 = off), ``stop_scope`` (optional; ``"sample"``
when absent), ``input_queue`` (optional; 0 when absent) and ``network`` (optional: the network's
spelling, ``2x34x34,c8k3s2,10``; "" when absent), and an optional group ``metrics/`` with one dataset per :class:`Metrics` field
(files written before ``timestep_spikes_to_*`` existed lack them: those fields read as ``None``).
"""
from __future__ import annotations

from dataclasses import fields

import numpy as np

from ..errors import UserError
from ..layers import spelled_layer_kinds
from ..memory import check_memory
from ..trace import EVENT_FIELDS, Metrics, Trace
from .h5common import (append_rows, atomic_h5, attr, check_indptr, check_kind, check_range, check_write,
                       group, growing_array, in_file, open_checked, optional_attr, read)

FORMAT = "pyasync-snn/trace"
# root attributes: the RunSettings fields (stop_on_output written as -1 when off) and the sizes
REQUIRED_ATTRS = {"schedule": str, "group_size": int, "seed": int, "n_timesteps": int,
                  "momentum_noise": float, "refractory_dropout": float, "dtype": str}
OPTIONAL_ATTRS = {"stop_on_output": (int, -1), "stop_scope": (str, "sample"),
                  "input_queue": (int, 0), "network": (str, "")}  # absent in older files
OPTIONAL_METRICS = ("timestep_spikes_to_output", "timestep_spikes_to_correct", "checks")  # absent in older files
EVENT_KINDS = {"neuron": "int", "timestep": "int", "fired_step": "int", "emitted_step": "int",
               "v_pre": "float", "refractory": "bool"}


def write_trace(path, trace) -> None:
    """Write a :class:`Trace` to ``path`` atomically; or an iterable of consecutive parts (same
    settings), streamed: each part is validated and appended, so memory holds one part at a time."""
    parts = [trace] if isinstance(trace, Trace) else trace
    with atomic_h5(path, FORMAT) as f:
        appender = None
        for part in parts:
            validate_trace(part)
            if appender is None:
                appender = _Appender(f, part)
            appender.append(part)
        if appender is None:
            raise UserError("no trace to write (no samples)")


class _Appender:
    """Resizable datasets of a trace file, grown by one part at a time."""

    def __init__(self, f, first: Trace):
        self.settings, self.metric_names = _settings(first), _metric_names(first)
        for key, kind in REQUIRED_ATTRS.items():
            f.attrs[key] = kind(getattr(first, key))
        f.attrs["layer_sizes"] = np.asarray(first.layer_sizes, dtype=np.int64)
        f.attrs["stop_on_output"] = -1 if first.stop_on_output is None else int(first.stop_on_output)
        f.attrs["stop_scope"] = str(first.stop_scope)
        f.attrs["input_queue"] = int(first.input_queue)
        f.attrs["network"] = str(first.network)
        self.arrays = {"output_counts": (f, lambda t: t.output_counts)}
        events = f.create_group("events")
        self.arrays.update({key: (events, lambda t, key=key: getattr(t, key)) for key in EVENT_FIELDS})
        if first.metrics is not None:
            metrics = f.create_group("metrics")
            self.arrays.update({fld.name: (metrics, lambda t, name=fld.name: getattr(t.metrics, name))
                                for fld in fields(Metrics) if getattr(first.metrics, fld.name) is not None})
        self.indptr = growing_array(events, "indptr", np.int64)
        append_rows(self.indptr, np.zeros(1, dtype=np.int64))
        self.datasets = {key: growing_array(group, key, np.asarray(get(first)).dtype, np.shape(get(first))[1:])
                         for key, (group, get) in self.arrays.items()}
        self.file = f

    def append(self, part: Trace) -> None:
        if _settings(part) != self.settings or _metric_names(part) != self.metric_names:
            raise UserError("trace parts have different settings; they cannot go into one file")
        check_write(self.file)
        append_rows(self.indptr, np.asarray(part.indptr[1:], dtype=np.int64) + self.indptr[-1])
        for key, (_, get) in self.arrays.items():
            append_rows(self.datasets[key], np.asarray(get(part)))


def _settings(trace: Trace) -> tuple:
    return trace.settings, trace.n_timesteps, tuple(trace.layer_sizes)


def _metric_names(trace: Trace) -> tuple:
    """The metrics a trace holds (none; all; all but the optional ones)."""
    if trace.metrics is None:
        return ()
    return tuple(fld.name for fld in fields(Metrics) if getattr(trace.metrics, fld.name) is not None)


def read_trace(path) -> Trace:
    """Read and validate the trace stored in ``path``."""
    with open_checked(path, FORMAT) as f, in_file(f):
        settings = {key: attr(f, key, kind) for key, kind in REQUIRED_ATTRS.items()}
        settings.update({key: optional_attr(f, key, kind, default) for key, (kind, default) in OPTIONAL_ATTRS.items()})
        if settings["stop_on_output"] == -1:
            settings["stop_on_output"] = None
        settings["input_queue"] = {0: False, 1: True}.get(settings["input_queue"], settings["input_queue"])
        layer_sizes = np.asarray(attr(f, "layer_sizes"))
        if layer_sizes.ndim != 1 or not np.issubdtype(layer_sizes.dtype, np.integer):
            raise UserError(f"attribute 'layer_sizes' must be an integer array, found {layer_sizes}")
        metrics = None
        if "metrics" in f:
            group(f, "metrics")
            metrics = Metrics(**{fld.name: read(f, f"metrics/{fld.name}") for fld in fields(Metrics)
                                 if fld.name not in OPTIONAL_METRICS or fld.name in f["metrics"]})
        trace = Trace(**settings, layer_sizes=tuple(int(n) for n in layer_sizes),
                      output_counts=read(f, "output_counts"), indptr=read(f, "events/indptr"),
                      metrics=metrics, **{key: read(f, f"events/{key}") for key in EVENT_FIELDS})
        validate_trace(trace)
        return trace


def validate_trace(trace: Trace) -> None:
    """Check settings, shapes, dtypes and ranges of ``trace``; raise :class:`UserError`."""
    trace.settings  # validates the run settings
    sizes = trace.layer_sizes
    if len(sizes) < 2 or min(sizes) < 1:
        raise UserError(f"layer_sizes needs an input and at least one layer, all >= 1; found {sizes}")
    if trace.n_timesteps < 1:
        raise UserError(f"n_timesteps must be >= 1, found {trace.n_timesteps}")
    if trace.network and len(spelled_layer_kinds(trace.network)) != len(sizes) - 1:
        raise UserError(f"attribute 'network' ({trace.network}) does not have the {len(sizes) - 1} layers of layer_sizes")

    check_memory(len(trace.indptr) * trace.n_timesteps * 4 * 8,
                 f"the per-timestep arrays of a trace of {trace.n_timesteps} timesteps")
    counts = np.asarray(trace.output_counts)
    check_kind(counts, "real", "output_counts")
    if counts.ndim != 2 or counts.shape[1] != sizes[-1]:
        raise UserError(f"output_counts must have shape (samples, {sizes[-1]}), found {counts.shape}")
    n = len(counts)
    check_kind(np.asarray(trace.indptr), "int", "events/indptr")
    events = {key: np.asarray(getattr(trace, key)) for key in EVENT_FIELDS}
    n_events = len(events["neuron"])
    for key, kind in EVENT_KINDS.items():
        check_kind(events[key], kind, f"events/{key}")
        if events[key].shape != (n_events,):
            raise UserError(f"events/{key} must have shape ({n_events},) like events/neuron, "
                            f"found {events[key].shape}")
    check_indptr(np.asarray(trace.indptr), n, n_events)
    check_range(events["neuron"], -sizes[0] if trace.input_queue else 0, sum(sizes[1:]), "events/neuron")
    check_range(events["timestep"], 0, trace.n_timesteps, "events/timestep")
    check_range(events["fired_step"], 0, np.inf, "events/fired_step")
    if np.any(events["fired_step"] >= events["emitted_step"]):
        raise UserError("events/emitted_step must come after events/fired_step")
    per_sample = np.repeat(np.diff(trace.indptr), np.diff(trace.indptr))
    if np.any(events["emitted_step"] > per_sample):  # every forward step delivers at least one spike
        raise UserError("events/emitted_step exceeds the number of its sample's events "
                        "(each forward step delivers at least one spike)")
    if trace.metrics is not None:
        _validate_metrics(trace.metrics, n, len(sizes) - 1, trace.n_timesteps)


def _validate_metrics(metrics: Metrics, n, n_layers, n_timesteps) -> None:
    shapes = {"spikes_per_layer": (n, n_layers), "steps_per_timestep": (n, n_timesteps),
              "timestep_spikes_to_output": (n, n_timesteps), "timestep_spikes_to_correct": (n, n_timesteps)}
    for fld in fields(Metrics):
        if fld.name in OPTIONAL_METRICS and getattr(metrics, fld.name) is None:
            continue
        value = np.asarray(getattr(metrics, fld.name))
        check_kind(value, "real", f"metrics/{fld.name}")
        if value.shape != shapes.get(fld.name, (n,)):
            raise UserError(f"metrics/{fld.name} must have shape {shapes.get(fld.name, (n,))}, "
                            f"found {value.shape}")
