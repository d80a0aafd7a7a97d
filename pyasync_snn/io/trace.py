"""The trace file (``format = "pyasync-snn/trace"``): a recorded simulation (a :class:`Trace`).

As in the spec: root attributes ``schedule``, ``group_size``, ``seed``, ``n_timesteps``,
``momentum_noise``, ``refractory_dropout``; ``output_counts (N, n_out)``; ``events/indptr (N+1,)``
and per event ``events/neuron``, ``timestep``, ``fired_step``, ``emitted_step``, ``v_pre``,
``refractory``. Additions: root attributes ``layer_sizes`` (int array), ``dtype`` (the run's
float type) and ``stop_on_output`` (optional; -1 = off), and an optional group ``metrics/`` with one dataset per :class:`Metrics` field.
"""
from __future__ import annotations

from dataclasses import fields

import numpy as np

from ..errors import UserError
from ..trace import DTYPES, EVENT_FIELDS, SCHEDULE_NAMES as SCHEDULES, Metrics, Trace
from .h5common import (atomic_h5, attr, check_indptr, check_kind, check_range, group, in_file,
                       open_checked, optional_attr, read, write_array)

FORMAT = "pyasync-snn/trace"
SETTINGS = {"schedule": str, "group_size": int, "seed": int, "n_timesteps": int,
            "momentum_noise": float, "refractory_dropout": float, "dtype": str}
EVENT_KINDS = {"neuron": "int", "timestep": "int", "fired_step": "int", "emitted_step": "int",
               "v_pre": "float", "refractory": "bool"}


def write_trace(path, trace: Trace) -> None:
    """Validate ``trace`` and write it to ``path`` atomically."""
    validate_trace(trace)
    with atomic_h5(path, FORMAT) as f:
        for key, kind in SETTINGS.items():
            f.attrs[key] = kind(getattr(trace, key))
        f.attrs["layer_sizes"] = np.asarray(trace.layer_sizes, dtype=np.int64)
        f.attrs["stop_on_output"] = int(trace.stop_on_output)
        write_array(f, "output_counts", trace.output_counts)
        events = f.create_group("events")
        write_array(events, "indptr", np.asarray(trace.indptr, dtype=np.int64))
        for key in EVENT_FIELDS:
            write_array(events, key, getattr(trace, key))
        if trace.metrics is not None:
            metrics = f.create_group("metrics")
            for fld in fields(Metrics):
                write_array(metrics, fld.name, getattr(trace.metrics, fld.name))


def read_trace(path) -> Trace:
    """Read and validate the trace stored in ``path``."""
    with open_checked(path, FORMAT) as f, in_file(f):
        settings = {key: attr(f, key, kind) for key, kind in SETTINGS.items()}
        settings["stop_on_output"] = optional_attr(f, "stop_on_output", int, -1)
        layer_sizes = np.asarray(attr(f, "layer_sizes"))
        if layer_sizes.ndim != 1 or not np.issubdtype(layer_sizes.dtype, np.integer):
            raise UserError(f"attribute 'layer_sizes' must be an integer array, found {layer_sizes}")
        metrics = None
        if "metrics" in f:
            group(f, "metrics")
            metrics = Metrics(**{fld.name: read(f, f"metrics/{fld.name}") for fld in fields(Metrics)})
        trace = Trace(**settings, layer_sizes=tuple(int(n) for n in layer_sizes),
                      output_counts=read(f, "output_counts"), indptr=read(f, "events/indptr"),
                      metrics=metrics, **{key: read(f, f"events/{key}") for key in EVENT_FIELDS})
        validate_trace(trace)
        return trace


def validate_trace(trace: Trace) -> None:
    """Check settings, shapes, dtypes and ranges of ``trace``; raise :class:`UserError`."""
    if trace.schedule not in SCHEDULES:
        raise UserError(f"schedule must be one of {', '.join(SCHEDULES)}, found {trace.schedule!r}")
    if trace.dtype not in DTYPES:
        raise UserError(f"dtype must be one of {', '.join(DTYPES)}, found {trace.dtype!r}")
    sizes = trace.layer_sizes
    if len(sizes) < 2 or min(sizes) < 1:
        raise UserError(f"layer_sizes needs an input and at least one layer, all >= 1; found {sizes}")
    if trace.n_timesteps < 1 or trace.group_size < 0:
        raise UserError(f"n_timesteps must be >= 1 and group_size >= 0, found "
                        f"{trace.n_timesteps} and {trace.group_size}")
    if not (trace.momentum_noise >= 0 and 0 <= trace.refractory_dropout <= 1):
        raise UserError(f"momentum_noise must be >= 0 and refractory_dropout in [0, 1], found "
                        f"{trace.momentum_noise} and {trace.refractory_dropout}")

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
    check_range(events["neuron"], 0, sum(sizes[1:]), "events/neuron")
    check_range(events["timestep"], 0, trace.n_timesteps, "events/timestep")
    check_range(events["fired_step"], 0, np.inf, "events/fired_step")
    if np.any(events["fired_step"] >= events["emitted_step"]):
        raise UserError("events/emitted_step must come after events/fired_step")
    if trace.metrics is not None:
        _validate_metrics(trace.metrics, n, len(sizes) - 1, trace.n_timesteps)


def _validate_metrics(metrics: Metrics, n, n_layers, n_timesteps) -> None:
    shapes = {"spikes_per_layer": (n, n_layers), "steps_per_timestep": (n, n_timesteps)}
    for fld in fields(Metrics):
        value = np.asarray(getattr(metrics, fld.name))
        check_kind(value, "real", f"metrics/{fld.name}")
        if value.shape != shapes.get(fld.name, (n,)):
            raise UserError(f"metrics/{fld.name} must have shape {shapes.get(fld.name, (n,))}, "
                            f"found {value.shape}")
