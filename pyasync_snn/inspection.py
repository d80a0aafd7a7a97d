"""Reading a recorded trace: per-sample summaries, the events in delivery order, the pending
queue after every step, and a replay of one sample that recovers the membranes.

Everything here works on a :class:`~pyasync_snn.trace.Trace` (what ``simulate`` returns or
``io.read_trace`` reads). Only the membrane replay needs the model and the data.

**Steps.** A timestep ``t`` has an injection step 0 and forward steps ``k = 1..K_t`` (``K_t`` is
the largest ``emitted_step`` of the timestep, 0 when nothing fired). The *global step* of
``(t, k)`` is ``S_t + k`` with ``S_t = K_0 + ... + K_{t-1}``: the forward steps of earlier
timesteps plus the step within ``t``, as in ``steps_to_first_output``. (Step 0 of ``t`` therefore
has the same global number as the last forward step of ``t - 1``; the figures draw it half a
step later, see :mod:`pyasync_snn.plots.trace_plots`.)

**Queue.** The number of pending spikes after step ``k`` of timestep ``t`` is the number of events
of ``t`` with ``fired_step <= k < emitted_step``. Under ``stop_on_output`` the spikes that were
still pending when the sample (or timestep) stopped are not in the trace, so the queue is
undercounted there.
"""
from __future__ import annotations

import csv as _csv
import io as _io
from dataclasses import dataclass

import numpy as np

from .errors import UserError
from .events import EventBatch
from .kernels.bundles import Events, queue_flag
from .kernels.replay import MISSING_SPIKE, OTHER_V_PRE, UNRECORDED_SPIKE, replay_sample
from .network import Network, event_layers, layer_of, layer_offsets
from .simulate import SCOPES, kernel_stop
from .trace import EVENT_FIELDS, Trace
from .trace import schedule_label

EVENT_COLUMNS = ("order", "timestep", "emitted_step", "fired_step", "neuron", "layer", "v_pre",
                 "refractory")
MISMATCH = {UNRECORDED_SPIKE: "a neuron fires in the replay but not in the trace",
            MISSING_SPIKE: "a recorded spike never fires in the replay",
            OTHER_V_PRE: "a neuron fires with another v_pre than the trace says"}


# ---------------------------------------------------------------- small helpers
def check_sample(trace: Trace, sample) -> int:
    """``sample`` as an int in ``[0, len(trace))``, or a :class:`UserError`."""
    if isinstance(sample, bool) or int(sample) != sample or not 0 <= sample < len(trace):
        raise UserError(f"sample must be an index in [0, {len(trace)}), got {sample}")
    return int(sample)


def check_timestep(trace: Trace, timestep):
    """``timestep`` as an int in ``[0, n_timesteps)`` (None stays None), or a :class:`UserError`."""
    if timestep is None:
        return None
    if isinstance(timestep, bool) or int(timestep) != timestep or not 0 <= timestep < trace.n_timesteps:
        raise UserError(f"timestep must lie in [0, {trace.n_timesteps}), got {timestep}")
    return int(timestep)


def steps_per_timestep(trace: Trace, sample) -> np.ndarray:
    """``K_t``, the forward steps of every timestep of ``sample`` (from the events: the largest
    ``emitted_step`` of each timestep; 0 for a timestep without spikes)."""
    ev = trace.events(check_sample(trace, sample))
    steps = np.zeros(trace.n_timesteps, dtype=np.int64)
    np.maximum.at(steps, ev["timestep"].astype(np.int64), ev["emitted_step"].astype(np.int64))
    return steps


def step_offsets(steps) -> np.ndarray:
    """``S_t``: the forward steps before timestep ``t`` (``steps`` = :func:`steps_per_timestep`)."""
    steps = np.asarray(steps, dtype=np.int64)
    return np.concatenate([[0], np.cumsum(steps)[:-1]]) if len(steps) else steps


# ---------------------------------------------------------------- queue
def queue_lengths(trace: Trace, sample) -> dict:
    """The pending queue after every step of ``sample``.

    Returns a dict of equally long int arrays, one entry per ``(timestep, step)`` with
    ``step = 0..K_t`` for every timestep (a timestep without spikes has only its step 0):
    ``timestep``, ``step``, ``global_step`` (``S_t + step``) and ``length``, the number of spikes
    that fired at a step ``<= step`` and are delivered at a later one. The length after the last
    step of a timestep is 0 (the queue drains), except where ``stop_on_output`` cut it short.
    """
    b = check_sample(trace, sample)
    ev = trace.events(b)
    steps = steps_per_timestep(trace, b)
    slots = steps + 1                                   # steps 0..K_t
    first_slot = np.concatenate([[0], np.cumsum(slots)[:-1]])
    t = ev["timestep"].astype(np.int64)
    start = first_slot[t] + ev["fired_step"]            # pending from here ...
    stop = first_slot[t] + ev["emitted_step"]           # ... until (not including) here
    n = int(slots.sum())
    delta = np.bincount(start, minlength=n + 1) - np.bincount(stop, minlength=n + 1)
    timestep = np.repeat(np.arange(trace.n_timesteps), slots)
    step = np.arange(n) - first_slot[timestep]
    return {"timestep": timestep, "step": step,
            "global_step": step_offsets(steps)[timestep] + step,
            "length": np.cumsum(delta)[:n]}


def queue_at_picks(queue: dict) -> np.ndarray:
    """Queue lengths at the moments a scheduler picked a group (after step k, before step k+1)."""
    last = np.r_[queue["timestep"][1:] != queue["timestep"][:-1], True]  # last step of a timestep
    return queue["length"][~last]


# ---------------------------------------------------------------- per-sample summary
def sample_summary(trace: Trace, sample) -> dict:
    """What :func:`trace_info` prints for one sample, as a dict.

    Keys: ``sample``, ``label`` (None without metrics), ``events_per_layer`` (delivered events,
    list), ``steps_mean``/``steps_max`` (forward steps per timestep), ``queue_mean``/``queue_max``
    (pending spikes when a group was picked; NaN/0 without forward steps), ``steps_to_first_output``,
    ``spikes_to_first_output`` (-1 = no output spike), ``count_prediction``,
    ``first_spike_prediction`` (-1 = no output spike). Latencies and predictions come from the
    trace's metrics when it has them, else they are computed from the events.
    """
    b = check_sample(trace, sample)
    ev = trace.events(b)
    n_layers = len(trace.layer_sizes) - 1
    layers = event_layers(trace.layer_sizes, ev["neuron"])
    steps = steps_per_timestep(trace, b)
    picks = queue_at_picks(queue_lengths(trace, b))
    m = trace.metrics
    if m is not None:
        latency = (int(m.steps_to_first_output[b]), int(m.spikes_to_first_output[b]))
        predictions = (int(m.count_prediction[b]), int(m.first_spike_prediction[b]))
        label = int(m.labels[b])
    else:
        latency, first = _first_output(trace, b)
        predictions = (int(np.argmax(trace.output_counts[b])), first)
        label = None
    return {
        "sample": b, "label": label,
        "events_per_layer": np.bincount(layers[layers >= 0], minlength=n_layers).tolist(),
        "steps_mean": float(steps.mean()) if len(steps) else 0.0,
        "steps_max": int(steps.max()) if len(steps) else 0,
        "queue_mean": float(picks.mean()) if len(picks) else float("nan"),
        "queue_max": int(picks.max()) if len(picks) else 0,
        "steps_to_first_output": latency[0], "spikes_to_first_output": latency[1],
        "count_prediction": predictions[0], "first_spike_prediction": predictions[1],
    }


def _first_output(trace: Trace, b):
    """``((steps, spikes) to the first output spike, its output index)`` from the events alone."""
    ev = trace.events(b)
    steps = steps_per_timestep(trace, b)
    fired_at = step_offsets(steps)[ev["timestep"]] + ev["fired_step"]
    out_lo = layer_offsets(trace.layer_sizes)[-2]
    out = np.nonzero(ev["neuron"] >= out_lo)[0]
    if not len(out):
        return (-1, -1), -1
    first = out[np.lexsort((ev["neuron"][out], fired_at[out]))[0]]
    g = fired_at[first]
    return (int(g), int(np.sum(fired_at < g))), int(ev["neuron"][first] - out_lo)


def trace_info(trace: Trace, max_rows: int = 20) -> str:
    """A per-sample summary table of ``trace`` (the text of ``pyasync-snn trace info``).

    A header line with the run's settings, one row per sample (the first ``max_rows`` of them)
    and, when there are several samples, a ``mean`` row over *all* samples plus an accuracy line.
    Columns: label, predictions by count and by first spike, delivered events per layer
    (``L1/L2/...``), forward steps per timestep (mean, max), the pending queue when a group was
    picked (mean, max), and the forward steps and network spikes before the first output spike.
    """
    n = len(trace)
    summaries = [sample_summary(trace, b) for b in range(n)]
    lines = [_settings_line(trace)]
    header = ["sample", "label", "pred", "1st", "events/layer", "steps mean", "max",
              "queue mean", "max", "steps->out", "spikes->out"]

    def fmt_row(s):
        return [str(s["sample"]), _or_dash(s["label"]), str(s["count_prediction"]),
                _or_dash(s["first_spike_prediction"], missing=-1),
                "/".join(str(e) for e in s["events_per_layer"]),
                f"{s['steps_mean']:.2f}", str(s["steps_max"]), _float_or_dash(s["queue_mean"], 2),
                str(s["queue_max"]), _or_dash(s["steps_to_first_output"], missing=-1),
                _or_dash(s["spikes_to_first_output"], missing=-1)]

    rows = [fmt_row(s) for s in summaries[:max(0, max_rows)]]
    footer = []
    if n > 1:
        rows.append(_aggregate_row(summaries))
        labels = [s["label"] for s in summaries]
        if None not in labels:
            acc = np.mean([s["count_prediction"] == s["label"] for s in summaries])
            acc1 = np.mean([s["first_spike_prediction"] == s["label"] for s in summaries])
            footer.append(f"accuracy over {n} samples: {acc:.3f} by count, {acc1:.3f} by first spike")
        hit = np.mean([s["steps_to_first_output"] >= 0 for s in summaries])
        footer.append(f"samples with an output spike: {hit:.3f}")
    if n > max_rows:
        footer.insert(0, f"(first {max(0, max_rows)} of {n} samples shown; 'mean' is over all {n})")
    lines.append(_table(header, rows, separator_before=len(rows) - 1 if n > 1 else None))
    lines += footer
    lines.append("pred: prediction by spike count; 1st: by first output spike; events: delivered "
                 "spikes per layer;\nsteps: forward steps per timestep; queue: pending spikes when "
                 "a group was picked;\nsteps/spikes->out: forward steps and network spikes before "
                 "the first output spike.")
    return "\n".join(lines)


def _settings_line(trace: Trace) -> str:
    parts = [f"schedule {schedule_label(trace.schedule, trace.group_size)}", f"seed {trace.seed}"]
    if trace.schedule == "momentum":
        parts.append(f"momentum noise {trace.momentum_noise:g}")
    if trace.refractory_dropout:
        parts.append(f"refractory dropout {trace.refractory_dropout:g}")
    if trace.stop_on_output is not None:
        scope = "" if trace.stop_scope == "sample" else " of each timestep"
        parts.append(f"stopped {trace.stop_on_output} steps after the first output{scope}")
    if trace.input_queue:
        parts.append("inputs queued")
    sizes = "-".join(map(str, trace.layer_sizes))
    if trace.network and trace.network.replace(",", "-") != sizes:  # the spelling says more: conv layers
        sizes += f" ({trace.network})"
    return (f"trace: {', '.join(parts)}; network {sizes}, {trace.dtype}; {len(trace)} samples x "
            f"{trace.n_timesteps} timesteps, {trace.n_events} events")


def _aggregate_row(summaries):
    def mean_existing(key):
        x = np.array([s[key] for s in summaries], dtype=float)
        x = x[x >= 0]
        return f"{x.mean():.1f}" if len(x) else "-"

    events = np.mean([s["events_per_layer"] for s in summaries], axis=0)
    queue = np.array([s["queue_mean"] for s in summaries], dtype=float)
    queue = queue[~np.isnan(queue)]
    return ["mean", "", "", "", "/".join(f"{e:.1f}" for e in events),
            f"{np.mean([s['steps_mean'] for s in summaries]):.2f}",
            str(max(s["steps_max"] for s in summaries)),
            f"{queue.mean():.2f}" if len(queue) else "-",
            str(max(s["queue_max"] for s in summaries)),
            mean_existing("steps_to_first_output"), mean_existing("spikes_to_first_output")]


def _or_dash(value, missing=None):
    return "-" if value is None or value == missing else str(value)


def _float_or_dash(value, digits):
    return "-" if value is None or np.isnan(value) else f"{value:.{digits}f}"


def _table(header, rows, separator_before=None) -> str:
    widths = [max(len(r[c]) for r in [header] + rows) for c in range(len(header))]
    def line(r):
        return "  ".join(cell.rjust(w) for cell, w in zip(r, widths))
    out = [line(header), "  ".join("-" * w for w in widths)]
    for i, r in enumerate(rows):
        if i == separator_before:
            out.append("  ".join("-" * w for w in widths))
        out.append(line(r))
    return "\n".join(out)


# ---------------------------------------------------------------- events
def trace_events(trace: Trace, sample, timestep=None) -> list:
    """The events of ``sample`` in delivery order, as a list of dicts (one per delivered spike).

    Keys (:data:`EVENT_COLUMNS`): ``order`` (0-based position in the sample's delivery order,
    kept when filtering), ``timestep``, ``emitted_step``, ``fired_step``, ``neuron`` (global id),
    ``layer`` (counted from 1 for people, as in ``W_1``; ``L`` is the output layer), ``v_pre``
    (float) and ``refractory`` (bool).
    With ``timestep``, only that timestep's events.
    """
    b = check_sample(trace, sample)
    timestep = check_timestep(trace, timestep)
    ev = trace.events(b)
    layers = event_layers(trace.layer_sizes, ev["neuron"])
    keep = np.arange(len(ev["neuron"]))
    if timestep is not None:
        keep = keep[ev["timestep"] == timestep]
    return [{"order": int(e), "timestep": int(ev["timestep"][e]),
             "emitted_step": int(ev["emitted_step"][e]), "fired_step": int(ev["fired_step"][e]),
             "neuron": int(ev["neuron"][e]), "layer": int(layers[e]) + 1,
             "v_pre": float(ev["v_pre"][e]), "refractory": bool(ev["refractory"][e])}
            for e in keep]


def format_events(rows, csv: bool = False) -> str:
    """The rows of :func:`trace_events` as an aligned text table, or as CSV (``csv=True``: a
    header line with :data:`EVENT_COLUMNS`, ``v_pre`` with full precision, booleans as
    ``true``/``false``). An empty list gives the header only (CSV) or a one-line note (table)."""
    if csv:
        buffer = _io.StringIO()
        writer = _csv.writer(buffer, lineterminator="\n")
        writer.writerow(EVENT_COLUMNS)
        for r in rows:
            writer.writerow([repr(r[c]) if c == "v_pre" else
                             str(r[c]).lower() if c == "refractory" else r[c] for c in EVENT_COLUMNS])
        return buffer.getvalue().rstrip("\n")
    if not rows:
        return "no events"
    header = list(EVENT_COLUMNS)
    body = [[str(r["order"]), str(r["timestep"]), str(r["emitted_step"]), str(r["fired_step"]),
             str(r["neuron"]), str(r["layer"]), f"{r['v_pre']:.6f}",
             "yes" if r["refractory"] else "no"] for r in rows]
    return _table(header, body)


# ---------------------------------------------------------------- replay (membranes)
def load_inputs(data_path, sample) -> np.ndarray:
    """The input counts ``x[t, c]`` of sample ``sample`` of the dataset file ``data_path``."""
    from .io import open_dataset

    with open_dataset(data_path) as data:
        if isinstance(sample, bool) or int(sample) != sample or not 0 <= sample < len(data):
            raise UserError(f"{data_path}: sample must be an index in [0, {len(data)}), got {sample}")
        return data.take(int(sample), int(sample) + 1).dense(0)


@dataclass
class Replay:
    """A sample re-run step by step with its recorded groups (see :func:`replay`).

    One row per step ``(timestep, step)``, ``step = 0..K_t`` for every timestep, and one column
    per recorded neuron (``neurons``, global ids):

    - ``v``: membrane after the step (after a reset);
    - ``current``: current that reached the neuron at the step (0 = none), discarded or not;
    - ``u``: membrane at the threshold check (NaN where there was none; ``v_pre`` where it fired);
    - ``fired``: whether it fired at the step; ``discarded``: current reached it while refractory.

    ``senders[i]`` lists the global ids delivered at row ``i`` (empty for step 0), and
    ``threshold`` is the model's threshold.
    """

    neurons: np.ndarray
    timestep: np.ndarray
    step: np.ndarray
    global_step: np.ndarray
    v: np.ndarray
    current: np.ndarray
    u: np.ndarray
    fired: np.ndarray
    discarded: np.ndarray
    senders: list
    threshold: float


def _as_inputs(inputs, trace: Trace) -> np.ndarray:
    if isinstance(inputs, EventBatch):
        if len(inputs) != 1:
            raise UserError(f"the replay takes the input of one sample, got a batch of {len(inputs)}")
        inputs = inputs.dense(0)
    x = np.asarray(inputs)
    expected = (trace.n_timesteps, trace.layer_sizes[0])
    if x.shape != expected:
        raise UserError(f"the sample's input has shape {x.shape} (timesteps, channels), the trace "
                        f"needs {expected}")
    if not np.issubdtype(x.dtype, np.integer) or np.any(x < 0):
        raise UserError("input spike counts must be non-negative integers")
    return x.astype(np.int64)


def default_neurons(trace: Trace, sample, per_layer: int = 2, timestep=None) -> np.ndarray:
    """A few neurons worth watching: the first ``per_layer`` distinct neurons of each layer to be
    delivered in ``sample`` (in ``timestep`` if given; the first neuron of each layer when nothing
    fired at all)."""
    ev = trace.events(check_sample(trace, sample))
    timestep = check_timestep(trace, timestep)
    if timestep is not None:
        ev = {k: a[ev["timestep"] == timestep] for k, a in ev.items()}
    layers = layer_of(trace.layer_sizes)
    chosen = []
    for l in range(len(trace.layer_sizes) - 1):
        ids = [int(i) for i in dict.fromkeys(ev["neuron"].tolist()) if i >= 0 and layers[i] == l]
        chosen += ids[:per_layer]
    if not chosen:
        chosen = layer_offsets(trace.layer_sizes)[:-1].tolist()
    return np.array(sorted(chosen), dtype=np.int64)


def replay(trace: Trace, sample, network: Network, inputs, neurons=None) -> Replay:
    """Re-run ``sample`` of ``trace`` with the recorded groups (the kernels' replay,
    :func:`pyasync_snn.kernels.replay.replay_sample`: the forward's own steps) and record the
    membranes of ``neurons`` (global ids; default :func:`default_neurons`; ``"all"`` for every
    neuron) after every step.

    ``inputs`` is the sample's input: the counts ``x[t, c]`` or a one-sample
    :class:`~pyasync_snn.events.EventBatch`. The replay must fire exactly the recorded spikes (the
    same neuron, step and ``v_pre``); otherwise it raises a :class:`UserError` (the trace was
    recorded on another model or data).
    """
    b = check_sample(trace, sample)
    network.check_recorded_on(trace.layer_sizes)
    x = _as_inputs(inputs, trace)
    n_neurons = int(layer_offsets(trace.layer_sizes)[-1])
    if neurons is None:
        neurons = default_neurons(trace, b)
    elif isinstance(neurons, str) and neurons == "all":
        neurons = np.arange(n_neurons)
    neurons = np.asarray(neurons, dtype=np.int64).ravel()
    if len(neurons) and (neurons.min() < 0 or neurons.max() >= n_neurons):
        raise UserError(f"neurons must be global ids in [0, {n_neurons}), got {neurons.tolist()}")

    in_timestep, in_unit = EventBatch.from_dense(x[None]).sorted_by_time()
    ev = trace.events(b)
    events = Events(*(ev[name] for name in EVENT_FIELDS))
    rows, status, t, k = replay_sample(network.kernel_arrays(trace.dtype), queue_flag(trace.input_queue), in_timestep,
                                       in_unit, trace.n_timesteps, events, kernel_stop(trace.stop_on_output),
                                       SCOPES[trace.stop_scope], neurons)
    if status:
        raise UserError(f"the trace does not replay on this model and data: sample {b}, timestep {t}, "
                        f"step {k}: {MISMATCH[status]} (a different model, data, or dtype?)")
    timestep, step, v, current, u, fired, discarded, sender_ptr = rows
    senders = [ev["neuron"][lo:hi].astype(np.int64) for lo, hi in zip(sender_ptr[:-1], sender_ptr[1:])]
    global_step = step_offsets(steps_per_timestep(trace, b))[timestep] + step
    return Replay(neurons=neurons, timestep=timestep, step=step, global_step=global_step, v=v, current=current,
                  u=u, fired=fired, discarded=discarded, senders=senders, threshold=float(network.threshold))
