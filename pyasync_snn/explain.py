"""Why asynchronous execution differs from layer-synchronized execution: a worked, drawn example.

:func:`explain` runs one input frame (one timestep) through a tiny 4-3-3-2 network under three
schedules -- ``layered``, ``momentum`` with F = 1 and ``random`` with F = 1 -- and tells what
happens at every step: which spikes are delivered, the current each delivery carries to each
target, which neurons fire, which current a refractory neuron discards. It can write

- one PNG per step (``step_00.png`` = the injection step 0, then one per forward step, up to the
  last step of the longest schedule), the three schedules side by side, sized 1920 x 1080 for a
  slide; a schedule that has already finished shows its final state;
- the same frames as an animated GIF (``explain.gif``, one frame per PNG), via matplotlib's
  ``PillowWriter`` (when no such writer is available, only the PNG frames are written);
- the story as text (``explain.txt``), the same text ``explain(text=True)`` prints.

The weights are fixed (chosen by hand so that the schedules visibly differ; multiples of 0.05, so
the numbers are easy to follow); ``seed`` only changes the ``random`` schedule.
"""
from __future__ import annotations

import os
import re
import textwrap
from dataclasses import dataclass, field

import numpy as np

from .errors import UserError
from .io.atomic import atomic_path
from .events import EventBatch
from .inspect import layer_of, layer_offsets, replay, schedule_label
from .network import Network
from .simulate import simulate
from .trace import Trace

# The example. Rows are targets, columns are sources (W[i, j]: from j to i).
W1 = ((0.50, 0.30, 0.00, 0.00),      # neuron 0
      (0.20, 0.00, 0.30, 0.30),      # neuron 1
      (0.00, 0.20, 0.40, 0.15))      # neuron 2
W2 = ((0.45, -0.20, -0.10),          # neuron 3
      (-0.10, 0.20, 0.25),           # neuron 4
      (0.20, -0.25, 0.15))           # neuron 5
W3 = ((0.00, 0.40, 0.10),            # neuron 6 = class 0
      (0.40, -0.30, 0.20))           # neuron 7 = class 1
EXAMPLE_INPUT = (1, 1, 0, 1)         # spike counts of the 4 input channels in the one timestep
EXAMPLE_LABEL = 0
RUNS = (("layered", 1), ("momentum", 1), ("random", 1))

OKABE = {"blue": "#0072B2", "vermillion": "#D55E00", "green": "#009E73", "orange": "#E69F00",
         "purple": "#CC79A7", "sky": "#56B4E9", "grey": "#BBBBBB", "dark": "#333333"}
STATE_COLOURS = {"idle": "white", "delivering": OKABE["green"], "pending": OKABE["orange"],
                 "done": OKABE["grey"]}
FRAME_SIZE = (19.2, 10.8)   # inches at 100 dpi: 1920 x 1080
FRAME_DPI = 100
GIF_SCALE = 2 / 3           # the GIF is 1280 x 720
GIF_FPS = 0.8
INTRO = {
    "layered": "all pending spikes of the lowest layer go together (a standard layer-by-layer network)",
    "momentum": "one spike per step: the pending spike with the largest v_pre goes first",
    "random": "one spike per step, picked at random from the queue",
}


def example_network() -> Network:
    """The 4-3-3-2 network of the explainer (threshold 0.3, beta 0.9)."""
    return Network(tuple(np.array(w, dtype=np.float64) for w in (W1, W2, W3)))


@dataclass
class StepView:
    """One step of one schedule (all arrays over the 8 neurons, global ids)."""

    step: int
    senders: list          # global ids delivered at this step (empty at step 0: the input)
    current: np.ndarray    # current that reached each neuron (0 = none)
    v: np.ndarray          # membrane after the step
    u: np.ndarray          # membrane at the check (NaN = no check); v_pre where it fired
    fired: np.ndarray      # fired at this step
    discarded: np.ndarray  # current reached it while refractory
    pending: list          # global ids in the queue after the step
    done: list             # global ids delivered at this step or earlier


@dataclass
class ExplainRun:
    """One schedule of the explainer: its trace and its steps ``0..K``."""

    schedule: str
    group_size: int
    trace: Trace
    steps: list

    @property
    def label(self) -> str:
        return schedule_label(self.schedule, self.group_size)

    @property
    def n_steps(self) -> int:
        """Forward steps (the step 0 of the injection not counted)."""
        return len(self.steps) - 1


@dataclass
class ExplainResult:
    """What :func:`explain` computed and wrote.

    ``runs`` holds the three schedules, ``text`` the step-by-step story, ``frames`` the PNG paths
    (one per step ``0..max K``; empty without ``out_dir``), ``gif`` the GIF path (None without
    ``out_dir`` or without a writer) and ``text_path`` the story's file (None without ``out_dir``).
    """

    network: Network
    inputs: np.ndarray
    label: int
    runs: list
    text: str
    frames: list = field(default_factory=list)
    gif: str | None = None
    text_path: str | None = None

    @property
    def n_frames(self) -> int:
        """1 + the forward steps of the longest schedule."""
        return 1 + max(run.n_steps for run in self.runs)


def explain(out_dir=None, text: bool = False, seed: int = 0) -> ExplainResult:
    """Run the example under the three schedules and tell the story.

    With ``out_dir`` (created if missing): write ``step_NN.png`` for every step, ``explain.gif``
    and ``explain.txt`` there (older ``step_NN.png`` frames beyond the new last one are removed).
    With ``text=True``: print the story to standard output. ``seed`` seeds the ``random``
    schedule. Returns an :class:`ExplainResult` (the story is always in ``result.text``).
    """
    if isinstance(seed, bool) or int(seed) != seed or seed < 0:
        raise UserError(f"seed must be a non-negative integer, got {seed}")
    network = example_network()
    x = np.array([EXAMPLE_INPUT], dtype=np.int64)
    batch = EventBatch.from_dense(x[None], labels=[EXAMPLE_LABEL])
    runs = []
    for schedule, group_size in RUNS:
        trace = simulate(network, batch, schedule, group_size, seed=int(seed), momentum_noise=0.0,
                         dtype="float64")
        runs.append(ExplainRun(schedule, group_size, trace, _step_views(trace, network, x)))
    result = ExplainResult(network, x, EXAMPLE_LABEL, runs, story(runs, network, x, int(seed)))
    if out_dir is not None:
        _write_files(result, os.fspath(out_dir))
    if text:
        print(result.text)
    return result


def _step_views(trace: Trace, network: Network, x) -> list:
    r = replay(trace, 0, network, x, neurons="all")
    ev = trace.events(0)
    views = []
    for row in range(len(r.step)):
        k = int(r.step[row])
        pending = sorted(int(i) for i, f, e in zip(ev["neuron"], ev["fired_step"], ev["emitted_step"])
                         if f <= k < e)
        done = sorted(int(i) for i, e in zip(ev["neuron"], ev["emitted_step"]) if e <= k)
        views.append(StepView(k, r.senders[row].tolist(), r.current[row], r.v[row], r.u[row],
                              r.fired[row], r.discarded[row], pending, done))
    return views


# ---------------------------------------------------------------- the story as text
def _num(value) -> str:
    return f"{value:+.2f}"


def _who(i, v_pre, layers, n_layers) -> str:
    layer = "output" if layers[i] == n_layers else f"layer {layers[i]}"
    return f"neuron {i} ({layer}, v_pre {v_pre:.2f})"


def _class_of(i, offsets) -> int:
    return int(i - offsets[-2])


def step_lines(run: ExplainRun, network: Network, x) -> list:
    """One line per step of ``run``: ``step k [label]: ...``."""
    layers = layer_of(network.layer_sizes)
    offsets = layer_offsets(network.layer_sizes)
    n_layers = network.n_layers
    ev = run.trace.events(0)
    v_pre = {(int(i), int(f)): float(v) for i, f, v in zip(ev["neuron"], ev["fired_step"], ev["v_pre"])}
    fired_at = {}
    lines = []
    for view in run.steps:
        k = view.step
        parts = []
        if k == 0:
            active = [c for c in range(x.shape[1]) if x[0, c]]
            silent = [str(c) for c in range(x.shape[1]) if not x[0, c]]
            sources = ", ".join(f"input {c}" for c in active)
            if silent:
                sources += f"; input {', '.join(silent)} {'is' if len(silent) == 1 else 'are'} silent"
            parts.append(f"the input spikes arrive ({sources})")
            contributions = {i: [(f"input {c}", network.weights[0][i, c] * x[0, c]) for c in active
                                 if network.weights[0][i, c] != 0] for i in range(offsets[1])}
        else:
            who = [_who(i, v_pre[(i, fired_at[i])], layers, n_layers) for i in view.senders]
            verb = "delivers" if len(who) == 1 else "deliver together"
            parts.append(" + ".join(who) + f" {verb}")
            contributions = {}
            for j in view.senders:
                l = layers[j]
                if l == n_layers:
                    parts.append(f"{j} is an output spike: it has no targets and counts for "
                                 f"class {_class_of(j, offsets)}")
                    continue
                w = network.weights[l]
                for t in range(w.shape[0]):
                    if w[t, j - offsets[l - 1]] != 0:
                        contributions.setdefault(int(offsets[l] + t), []).append(
                            (f"{j}", w[t, j - offsets[l - 1]]))
        received, outcome = [], []
        for i in sorted(contributions):
            terms = contributions[i]
            if not terms:
                continue
            total = view.current[i]
            detail = _num(total) if len(terms) == 1 else \
                " ".join(_num(wt) for _, wt in terms) + f" = {_num(total)}"
            if view.discarded[i]:
                received.append(f"{detail} to {i} (refractory: discarded)")
            else:
                received.append(f"{detail} to {i}")
                if view.fired[i]:
                    outcome.append(f"neuron {i} fires (v_pre {view.u[i]:.2f})")
                    fired_at[i] = k
                elif not np.isnan(view.u[i]):
                    outcome.append(f"{i} now at {view.v[i]:.2f}")
        if received:
            parts.append(", ".join(received))
        text = f"step {k} [{run.label}]: " + "; ".join(parts)
        if outcome:
            text += "; " + ", ".join(outcome)
        queue = ", ".join(f"{i} ({v_pre[(i, fired_at[i])]:.2f})" for i in view.pending) or "empty"
        lines.append(text + f". Queue: {queue}.")
    return lines


def _outcome(run: ExplainRun, offsets) -> str:
    counts = run.trace.output_counts[0]
    m = run.trace.metrics
    first = int(m.first_spike_prediction[0])
    first_text = "no output spike" if first < 0 else (
        f"first output spike: neuron {first + offsets[-2]} (class {first}) "
        f"at step {int(m.steps_to_first_output[0])}")
    tie = " (a tie goes to the lower class)" if np.sum(counts == counts.max()) > 1 else ""
    count_text = ", ".join(f"class {c}: {int(n)}" for c, n in enumerate(counts))
    return (f"[{run.label}] {run.n_steps} forward steps, {run.trace.n_events} spikes. Output spikes "
            f"{count_text} -> predicts class {int(np.argmax(counts))}{tie}; {first_text}.")


def _fired(run, neuron) -> bool:
    return bool(np.any(run.trace.events(0)["neuron"] == neuron))


def _why(runs, seed) -> str:
    """The explanation of the difference (written for the fixed example weights)."""
    by_name = {run.schedule: run for run in runs}
    layered, rand = by_name["layered"], by_name["random"]
    text = (
        "Neuron 3 is the key. It gets +0.45 from neuron 0 but inhibition from neurons 1 (-0.20) "
        "and 2 (-0.10). Under layered, all three arrive in the same step: 3 receives +0.15 in "
        "total and stays silent, so output 7 (class 1) never gets 3's +0.40; neuron 4 fires and "
        f"makes output 6 (class 0) fire: the right answer, after {layered.n_steps} forward steps. "
        "Under momentum with F = 1, neuron 0 (the largest v_pre, 0.80) is delivered alone first: 3 "
        "crosses the threshold on this partial input and fires. The inhibition from 1 and 2 "
        "arrives later and is discarded, because 3 is refractory. Then 3 makes output 7 fire: the "
        "first output spike is the wrong class, and 4's inhibition of 7 also comes too late. ")
    if _fired(rand, 3) and _fired(rand, 7):
        text += (f"Under random with F = 1 (seed {seed}), neuron 0 happened to reach 3 before "
                 "enough inhibition did, so 3 fired and output 7 fired, as under momentum. ")
    elif _fired(rand, 3):
        text += (f"Under random with F = 1 (seed {seed}), 3 fired as under momentum, but this "
                 "time 4's inhibition reached output 7 before 3's excitation did, so 7 stayed "
                 "silent. ")
    else:
        text += (f"Under random with F = 1 (seed {seed}), the inhibition happened to reach 3 "
                 "before it could fire, so 3 stays silent as under layered, and the answer is "
                 f"reached one spike at a time, in {rand.n_steps} forward steps. ")
    return text + ("Asynchronous neurons decide on the evidence that has arrived so far, so the "
                   "order of delivery (the schedule) changes the result.")


def story(runs, network: Network, x, seed: int = 0) -> str:
    """The whole explanation as text: the network, each schedule step by step, the outcomes."""
    offsets = layer_offsets(network.layer_sizes)
    sizes = "-".join(map(str, network.layer_sizes))
    lines = [
        f"A {sizes} network (threshold {network.threshold:g}), one timestep, input spike counts "
        f"{list(map(int, x[0]))}, label {EXAMPLE_LABEL}.",
        "Neurons have global ids: layer 1 = 0-2, layer 2 = 3-5, outputs = 6 (class 0) and 7 (class 1).",
        "Weights (row = target, column = source):",
    ]
    names = (["input 0", "input 1", "input 2", "input 3"], ["0", "1", "2"], ["3", "4", "5"])
    for l, w in enumerate(network.weights):
        for t in range(w.shape[0]):
            row = ", ".join(f"{names[l][j]}: {w[t, j]:+.2f}" for j in range(w.shape[1]) if w[t, j] != 0)
            lines.append(f"  to {offsets[l] + t}: {row}")
    lines.append("A neuron that receives current adds it to its membrane; above the threshold it fires,")
    lines.append("resets to 0, joins the queue of pending spikes and ignores (discards) further current")
    lines.append("until the next timestep. Each forward step delivers a group of pending spikes.")
    for run in runs:
        extra = f" (seed {seed})" if run.schedule == "random" else ""
        lines += ["", f"== {run.label}{extra}: {INTRO[run.schedule]} =="]
        lines += step_lines(run, network, x)
        lines.append(_outcome(run, offsets))
    lines += ["", "== What differs =="]
    lines += [_outcome(run, offsets) for run in runs]
    lines += textwrap.wrap(_why(runs, seed), 100)
    return "\n".join(lines)


# ---------------------------------------------------------------- drawing
RADIUS = 0.34
LAYER_DX = 2.0      # horizontal distance between layers
NODE_DY = 1.55      # vertical distance between neurons of a layer


def _positions(layer_sizes):
    """(x, y) of every node: inputs first (``("in", c)``), then neurons by global id."""
    pos = {}
    gid = 0
    for l, n in enumerate(layer_sizes):
        ys = -(np.arange(n) - (n - 1) / 2) * NODE_DY
        for j in range(n):
            key = ("in", j) if l == 0 else gid + j
            pos[key] = (l * LAYER_DX, ys[j])
        if l:
            gid += n
    return pos


def _arrow(ax, a, b, weight, style, alpha=1.0):
    (x0, y0), (x1, y1) = a, b
    d = np.hypot(x1 - x0, y1 - y0)
    ux, uy = (x1 - x0) / d, (y1 - y0) / d
    start = (x0 + ux * RADIUS, y0 + uy * RADIUS)
    end = (x1 - ux * (RADIUS + 0.02), y1 - uy * (RADIUS + 0.02))
    colour = OKABE["blue"] if weight > 0 else OKABE["vermillion"]
    ax.annotate("", xy=end, xytext=start, zorder=3,
                arrowprops=dict(arrowstyle="-|>", color=colour, lw=1.5 + 10 * abs(weight),
                                linestyle=style, mutation_scale=24, alpha=alpha,
                                shrinkA=0, shrinkB=0))


def _deliveries(run_view, finished, network, x):
    """``(source key, target id, current)`` of every non-zero delivery of the step."""
    sizes = network.layer_sizes
    layers = layer_of(sizes)
    offsets = layer_offsets(sizes)
    arrows = []
    if finished:
        return arrows
    if run_view.step == 0:
        for c in range(x.shape[1]):
            if x[0, c]:
                arrows += [(("in", c), t, network.weights[0][t, c] * x[0, c]) for t in range(sizes[1])]
    else:
        for j in run_view.senders:
            l = layers[j]
            if l < network.n_layers:
                w = network.weights[l]
                arrows += [(j, int(offsets[l] + t), w[t, j - offsets[l - 1]]) for t in range(w.shape[0])]
    return [a for a in arrows if a[2] != 0]


def _draw_network(ax, run: ExplainRun, k: int, network: Network, x):
    from matplotlib.collections import LineCollection, PatchCollection
    from matplotlib.patches import Circle

    sizes = network.layer_sizes
    offsets = layer_offsets(sizes)
    pos = _positions(sizes)
    finished = k > run.n_steps
    view = run.steps[min(k, run.n_steps)]
    delivering_now = set() if finished else set(view.senders)
    ev = run.trace.events(0)
    fired_upto = {int(i) for i, f in zip(ev["neuron"], ev["fired_step"]) if f <= view.step}
    v_pre = {int(i): float(v) for i, v in zip(ev["neuron"], ev["v_pre"])}

    synapses = []  # all synapses, faint
    for l, w in enumerate(network.weights):
        for t in range(w.shape[0]):
            for j in range(w.shape[1]):
                if w[t, j] != 0:
                    src = pos[("in", j)] if l == 0 else pos[int(offsets[l - 1] + j)]
                    synapses.append((src, pos[int(offsets[l] + t)]))
    ax.add_collection(LineCollection(synapses, colors="#DDDDDD", linewidths=1.2, zorder=1))

    for src, tgt, w in _deliveries(view, finished, network, x):  # this step's currents
        discarded = bool(view.discarded[tgt])
        _arrow(ax, pos[src], pos[tgt], w, ":" if discarded else ("-" if w > 0 else "--"),
               alpha=0.5 if discarded else 1.0)

    nodes = []  # drawn as one collection (much faster than one patch each)
    for c in range(sizes[0]):
        active = x[0, c] > 0
        face = STATE_COLOURS["delivering"] if (active and view.step == 0 and not finished) else \
            (STATE_COLOURS["done"] if active else "white")
        p = pos[("in", c)]
        nodes.append(Circle(p, RADIUS, fc=face, ec=OKABE["dark"], lw=2, ls="-" if active else "--"))
        ax.text(*p, f"in{c}", ha="center", va="center", fontsize=15, zorder=5)
        ax.text(p[0], p[1] - RADIUS - 0.07, f"{int(x[0, c])} spike" + ("" if x[0, c] == 1 else "s"),
                ha="center", va="top", fontsize=14, zorder=5)
    for i in range(int(offsets[-1])):
        if i in delivering_now:
            face = STATE_COLOURS["delivering"]
        elif i in view.pending:
            face = STATE_COLOURS["pending"]
        elif i in view.done:
            face = STATE_COLOURS["done"]
        else:
            face = STATE_COLOURS["idle"]
        just_fired = bool(view.fired[i]) and not finished
        p = pos[i]
        nodes.append(Circle(p, RADIUS, fc=face, lw=6 if just_fired else 2,
                            ec=OKABE["vermillion"] if just_fired else OKABE["dark"]))
        ax.text(*p, str(i), ha="center", va="center", fontsize=20, fontweight="bold", zorder=5)
        below = f"fired {v_pre[i]:.2f}" if i in fired_upto else f"v {view.v[i]:.2f}"
        ax.text(p[0], p[1] - RADIUS - 0.07, below, ha="center", va="top", fontsize=15, zorder=5)
        if not finished and view.current[i] != 0:  # the current it received at this step
            colour = OKABE["blue"] if view.current[i] > 0 else OKABE["vermillion"]
            note = _num(view.current[i]) + (" discarded" if view.discarded[i] else "")
            ax.text(p[0] + 0.62 * RADIUS, p[1] + 0.72 * RADIUS, note, ha="left", va="bottom",
                    fontsize=16, fontweight="bold", zorder=6,
                    color=OKABE["dark"] if view.discarded[i] else colour,
                    bbox=dict(boxstyle="round,pad=0.12", fc="white", ec="none", alpha=0.85))
    ax.add_collection(PatchCollection(nodes, match_original=True, zorder=4))
    for o in range(sizes[-1]):
        p = pos[int(offsets[-2] + o)]
        ax.text(p[0] + RADIUS + 0.1, p[1], f"class {o}", ha="left", va="center", fontsize=15,
                fontweight="bold", zorder=5, color=OKABE["dark"])
    ax.set_xlim(-0.45, 3 * LAYER_DX + 1.6)
    ax.set_ylim(-1.5 * NODE_DY - 0.75, 1.5 * NODE_DY + 0.5)
    ax.set_aspect("equal")
    ax.axis("off")


def _counts_upto(run, step, offsets):
    ev = run.trace.events(0)
    counts = np.zeros(run.trace.layer_sizes[-1], dtype=int)
    for i, f in zip(ev["neuron"], ev["fired_step"]):
        if i >= offsets[-2] and f <= step:
            counts[i - offsets[-2]] += 1
    return counts


def _caption(run: ExplainRun, k: int) -> str:
    """Three short lines under a panel."""
    offsets = layer_offsets(run.trace.layer_sizes)
    counts = _counts_upto(run, min(k, run.n_steps), offsets)
    outputs = "output spikes: " + ", ".join(f"class {o}: {int(n)}" for o, n in enumerate(counts))
    return _caption_head(run, k) + "\n" + outputs


def _prediction(run: ExplainRun) -> str:
    counts = run.trace.output_counts[0]
    first = int(run.trace.metrics.first_spike_prediction[0])
    return (f"answer: class {int(np.argmax(counts))} by count"
            + (f", class {first} first" if first >= 0 else ", no output spike"))


def _caption_head(run: ExplainRun, k: int) -> str:
    if k > run.n_steps:
        return f"finished after {run.n_steps} forward steps\n{_prediction(run)}"
    view = run.steps[k]
    what = "input arrives" if k == 0 else "delivers " + ", ".join(map(str, view.senders))
    fired = [str(i) for i in np.nonzero(view.fired)[0]]
    discarded = [str(i) for i in np.nonzero(view.discarded)[0]]
    line = f"step {k} of {run.n_steps}{' (last)' if k == run.n_steps else ''}: {what}"
    line += f";  fires: {', '.join(fired)}" if fired else ""
    line += f";  discards: {', '.join(discarded)}" if discarded else ""
    queue = ", ".join(map(str, view.pending)) or "empty"
    if k == run.n_steps:
        return f"{line}\n{_prediction(run)}"
    return f"{line}\nqueue: {queue}"


def _draw_timeline(ax, run: ExplainRun, k: int, n_frames: int, network: Network):
    from matplotlib.collections import LineCollection

    layers = layer_of(network.layer_sizes)
    ev = run.trace.events(0)
    colours = (OKABE["blue"], OKABE["orange"], OKABE["green"])
    markers = ("o", "s", "D")
    seen = ev["fired_step"] <= k
    neuron, fired, emitted = ev["neuron"][seen], ev["fired_step"][seen], ev["emitted_step"][seen]
    ax.add_collection(LineCollection([((f, i), (min(e, k), i)) for i, f, e in zip(neuron, fired, emitted)],
                                     colors="#888888", linewidths=2.5, zorder=1))
    for l in range(1, network.n_layers + 1):
        sel = layers[neuron] == l
        c, m = colours[(l - 1) % 3], markers[(l - 1) % 3]
        ax.scatter(fired[sel], neuron[sel], s=150, marker=m, facecolors="white", edgecolors=c,
                   linewidths=2.5, zorder=2)
        done = sel & (emitted <= k)
        ax.scatter(emitted[done], neuron[done], s=150, marker=m, color=c, zorder=3)
    if k <= run.n_steps:
        ax.axvline(k, color=OKABE["vermillion"], lw=3, alpha=0.5, zorder=0)
    if run.n_steps + 1 < n_frames:
        ax.axvspan(run.n_steps + 0.5, n_frames, color="#E8E8E8", zorder=0)
    if n_frames - run.n_steps > 2:
        ax.text((run.n_steps + n_frames) / 2, network.n_neurons / 2 - 0.5, "finished",
                ha="center", va="center", fontsize=15, color="#777777")


def _setup_timeline(ax, n_frames: int, network: Network):
    ax.set_xlim(-0.5, n_frames - 0.5)
    ax.set_ylim(network.n_neurons - 0.5, -0.5)
    ax.set_xticks(range(n_frames))
    ax.set_yticks(range(network.n_neurons))
    ax.tick_params(labelsize=13)
    ax.set_xlabel("step", fontsize=15, labelpad=1)
    ax.set_ylabel("neuron", fontsize=15)
    ax.grid(True, alpha=0.3)


def draw_frame(fig, result: ExplainResult, k: int) -> None:
    """Draw frame ``k`` (the state after step ``k`` under every schedule) on ``fig``.

    The layout (axes, titles, ticks, legend) is built on the first call for ``result`` and kept
    on ``fig``; later calls only replace what changes, which is several times faster.
    """
    layout = getattr(fig, "_explain_layout", None)
    if layout is None or layout["result"] is not result:
        layout = _build_layout(fig, result)
    else:
        for ax in layout["network"] + layout["timeline"]:
            for artist in (*ax.collections, *ax.patches, *ax.texts, *ax.lines):
                artist.remove()
    head = "Step 0: the input spikes arrive" if k == 0 else f"Forward step {k}"
    layout["title"].set_text(f"{head}   (same network and input, three schedules; threshold "
                             f"{result.network.threshold:g})")
    for run, ax, timeline in zip(result.runs, layout["network"], layout["timeline"]):
        _draw_network(ax, run, k, result.network, result.inputs)
        ax.text(0.5, -0.02, _caption(run, k), ha="center", va="top", fontsize=17,
                transform=ax.transAxes, linespacing=1.4)
        _draw_timeline(timeline, run, k, result.n_frames, result.network)


def _build_layout(fig, result: ExplainResult) -> dict:
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    fig.clear()
    grid = fig.add_gridspec(2, len(result.runs), height_ratios=(6.0, 2.3), hspace=0.36,
                            wspace=0.14, left=0.035, right=0.995, top=0.875, bottom=0.145)
    layout = {"result": result, "network": [], "timeline": [],
              "title": fig.suptitle("", fontsize=26, fontweight="bold", y=0.985)}
    for c, run in enumerate(result.runs):
        ax = fig.add_subplot(grid[0, c])
        extra = "F not used" if run.schedule == "layered" else f"F = {run.group_size}"
        seed = f", seed {run.trace.seed}" if run.schedule == "random" else ""
        ax.set_title(f"{run.schedule} ({extra}{seed})", fontsize=24, fontweight="bold", pad=2)
        timeline = fig.add_subplot(grid[1, c])
        _setup_timeline(timeline, result.n_frames, result.network)
        layout["network"].append(ax)
        layout["timeline"].append(timeline)
    handles = [Patch(fc=STATE_COLOURS["delivering"], ec="black", label="delivering now"),
               Patch(fc=STATE_COLOURS["pending"], ec="black", label="fired, waiting in the queue"),
               Patch(fc=STATE_COLOURS["done"], ec="black", label="delivered (refractory)"),
               Patch(fc="white", ec=OKABE["vermillion"], lw=4, label="fires at this step"),
               Line2D([], [], color=OKABE["blue"], lw=4, label="excitatory current (+)"),
               Line2D([], [], color=OKABE["vermillion"], lw=4, ls="--", label="inhibitory current (-)"),
               Line2D([], [], marker="o", mfc="white", mec="#555555", ls="", ms=12,
                      label="timeline: fired (hollow)"),
               Line2D([], [], marker="o", color="#555555", ls="", ms=12, label="timeline: delivered (filled)")]
    fig.legend(handles=handles, loc="lower center", ncol=4, fontsize=16, frameon=False,
               bbox_to_anchor=(0.5, 0.0), columnspacing=2.5)
    fig._explain_layout = layout
    return layout


def _pillow():
    """PIL.Image, or None when Pillow is missing (then no GIF is written)."""
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - matplotlib depends on Pillow
        return None
    return Image


def _atomic_write(path, write) -> None:
    """Call ``write(file_object)`` on a temporary file next to ``path``, then rename it."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            write(fh)


def _write_files(result: ExplainResult, out_dir: str) -> None:
    """Render every frame once; write it as a PNG and keep a smaller copy for the GIF.

    The GIF is assembled with Pillow, as matplotlib's ``PillowWriter`` does, but from the frames
    already rendered for the PNGs instead of drawing every frame a second time. Each frame shows
    for ``1 / GIF_FPS`` seconds, the last one three times as long.
    """
    from .plots.trace_plots import new_figure, save_figure

    try:
        os.makedirs(out_dir, exist_ok=True)
    except OSError as e:
        raise UserError(f"{out_dir}: cannot create the directory ({e})") from None
    image = _pillow()
    n = result.n_frames
    width = max(2, len(str(n - 1)))
    fig = new_figure(FRAME_SIZE)
    fig.set_dpi(FRAME_DPI)
    frames, gif_frames = [], []
    for k in range(n):
        draw_frame(fig, result, k)
        path = os.path.join(out_dir, f"step_{k:0{width}d}.png")
        if image is None:  # pragma: no cover
            save_figure(fig, path, dpi=FRAME_DPI)
        else:
            fig.canvas.draw()
            rgba = np.asarray(fig.canvas.buffer_rgba())
            frame = image.fromarray(rgba[..., :3].copy())
            _atomic_write(path, lambda fh: frame.save(fh, format="PNG"))
            size = (round(frame.width * GIF_SCALE), round(frame.height * GIF_SCALE))
            gif_frames.append(frame.resize(size, image.LANCZOS))
        frames.append(path)
    gif = None
    if gif_frames:
        gif = os.path.join(out_dir, "explain.gif")
        durations = [round(1000 / GIF_FPS)] * (n - 1) + [round(3000 / GIF_FPS)]
        _atomic_write(gif, lambda fh: gif_frames[0].save(
            fh, format="GIF", save_all=True, append_images=gif_frames[1:], duration=durations,
            loop=0))
    for name in os.listdir(out_dir):  # frames of an earlier, longer run
        m = re.fullmatch(r"step_(\d+)\.png", name)
        if m and int(m.group(1)) >= n:
            os.remove(os.path.join(out_dir, name))
    text_path = os.path.join(out_dir, "explain.txt")
    _atomic_write(text_path, lambda fh: fh.write((result.text + "\n").encode("utf-8")))
    result.frames, result.gif, result.text_path = frames, gif, text_path
