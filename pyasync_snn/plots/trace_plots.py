"""Figures of one sample of a trace: ``raster``, ``groups``, ``membrane`` and ``queue``.

Each ``plot_*(trace, sample, out_path, ...)`` draws on matplotlib's Agg canvas directly (never a
window, and the caller's pyplot backend is left alone), writes a PNG atomically (temporary file
next to the target, then renamed) and returns the :class:`matplotlib.figure.Figure`, so callers
and tests can read its axes, labels and title.

**The step axis.** The x axis counts forward steps over the whole sample: forward step ``k`` of
timestep ``t`` is at ``x = S_t + k``, where ``S_t`` is the number of forward steps of the earlier
timesteps (the same count as ``steps_to_first_output``). The injection step (step 0) of timestep
``t`` is not a forward step: it happens after the last forward step of ``t - 1`` and before the
first of ``t``, so it is drawn at ``x = S_t + 0.5``, on the dotted line that marks the start of
timestep ``t``. Timesteps in which nothing fired have no forward steps; their lines coincide.

Colours and figure plumbing: :mod:`pyasync_snn.plots.figure` (Okabe-Ito; layers also differ in
marker shape).
"""
from __future__ import annotations

import textwrap

import numpy as np

from ..errors import UserError
from ..inspection import (check_sample, check_timestep, default_neurons, queue_at_picks, queue_lengths, replay,
                          step_offsets, steps_per_timestep)
from ..layers import layer_names as named_layers, spelled_layer_kinds
from ..network import event_layers, layer_of, layer_offsets
from ..trace import UNBOUNDED, Trace, schedule_title
from .figure import (LINE_COLOURS, OKABE_ITO, layer_colour, layer_marker, marker_size, new_figure,
                     save_figure, style)

PLOT_KINDS = ("raster", "groups", "membrane", "queue")
SHOW_FIRED_MAX = 2000  # the raster shows firing markers and queue waits up to this many spikes
GROUPS_MAX_STEPS = 120  # a whole sample with more forward steps: the groups figure is per timestep
DETAIL_MAX_STEPS = 1000  # the membrane plot marks every check and discard up to this many steps


# ---------------------------------------------------------------- shared plumbing
def layer_names(trace: Trace) -> list:
    """:func:`~..layers.layer_names` of the trace's network, with each layer's kind and size when
    the trace records the network's spelling."""
    n = len(trace.layer_sizes) - 1
    return named_layers(spelled_layer_kinds(trace.network) if trace.network else [""] * n)


def _title(kind: str, trace: Trace, b: int, timestep) -> str:
    label = ""
    if trace.metrics is not None:
        label = f" (label {int(trace.metrics.labels[b])})"
    where = f", timestep {timestep}" if timestep is not None else ""
    return f"{kind}: sample {b}{label}{where}, schedule {schedule_title(trace.schedule, trace.group_size)}"


def step_x(global_step, step) -> np.ndarray:
    """x position of ``(global_step, step)``: forward steps at their number, step 0 half a step on."""
    return np.asarray(global_step, dtype=float) + 0.5 * (np.asarray(step) == 0)


class _Steps:
    """The step geometry of one sample: ``K_t``, ``S_t`` and the x-range to show."""

    def __init__(self, trace, b, timestep):
        self.K = steps_per_timestep(trace, b)
        self.S = step_offsets(self.K)
        self.T = trace.n_timesteps
        self.timestep = timestep
        if timestep is None:
            self.lo, self.hi = 0.0, float(self.K.sum()) + 1.0
        else:
            self.lo, self.hi = self.S[timestep], self.S[timestep] + self.K[timestep] + 1.0

    def x(self, timestep, step):
        timestep = np.asarray(timestep, dtype=np.int64)
        return step_x(self.S[timestep] + np.asarray(step), step)

    def draw(self, ax, label_top=True):
        """Dotted lines where timesteps start (at their injection step), and ``t = ..`` labels."""
        ts = range(self.T) if self.timestep is None else [self.timestep]
        starts = sorted({float(self.S[t]) + 0.5 for t in ts})
        alpha = 0.6 if len(starts) <= 60 else 0.3
        for s in starts:
            ax.axvline(s, color=OKABE_ITO["grey"], linestyle=":", linewidth=1.2, alpha=alpha, zorder=0)
        active = [t for t in ts if self.K[t] > 0]
        if label_top and active:
            # label the timesteps whose labels do not overlap (about 7 points per character)
            width_pt = ax.figure.get_figwidth() * 72 * ax.get_position().width
            per_step = width_pt / max(self.hi - self.lo, 1e-9)
            transform = ax.get_xaxis_transform()
            right = -np.inf
            for t in active:
                label = f"t={t}"
                centre = self.S[t] + 0.5 + self.K[t] / 2
                half = 3.5 * len(label) / per_step
                if centre - half > right:
                    ax.text(centre, 1.01, label, transform=transform, ha="center", va="bottom",
                            fontsize=10, color="#555555", clip_on=False)
                    right = centre + half + 4 / per_step
        ax.set_xlim(self.lo, self.hi)
        if self.hi - self.lo <= 30:
            ax.set_xticks(np.arange(int(np.ceil(self.lo)), int(self.hi) + 1))

    def axis_label(self):
        if self.timestep is None:
            return "forward step (counted over all timesteps)"
        return (f"forward step (counted over all timesteps; timestep {self.timestep} = steps "
                f"{self.S[self.timestep] + 1}-{self.S[self.timestep] + self.K[self.timestep]})")


def _boundary_handle():
    from matplotlib.lines import Line2D

    return Line2D([], [], color=OKABE_ITO["grey"], linestyle=":", linewidth=1.5,
                  label="a timestep starts: its injection (step 0)")


def _legend_below(ax, ncol=2, extra=(), offset=-0.14):
    """The axes' legend in ``ncol`` columns under the axes (plus ``extra`` handles)."""
    handles, labels = ax.get_legend_handles_labels()
    handles += list(extra)
    labels += [h.get_label() for h in extra]
    legend = ax.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, offset), ncol=ncol,
                       frameon=False)
    for handle in getattr(legend, "legend_handles", getattr(legend, "legendHandles", [])):
        if hasattr(handle, "set_sizes"):  # scatter markers: legible whatever their size in the plot
            handle.set_sizes([40])


def _selected(trace, b, timestep):
    ev = trace.events(b)
    keep = np.ones(len(ev["neuron"]), dtype=bool) if timestep is None else ev["timestep"] == timestep
    return {k: a[keep] for k, a in ev.items()}


def _layer_axis(ax, trace):
    """Light lines between layers on a neuron-id axis; y limits to the network."""
    offsets = layer_offsets(trace.layer_sizes)
    for o in offsets[1:-1]:
        ax.axhline(o - 0.5, color=OKABE_ITO["light grey"], linewidth=0.8, zorder=0)
    ax.set_ylim(-0.5 - 0.02 * offsets[-1], offsets[-1] - 0.5 + 0.02 * offsets[-1])
    if offsets[-1] <= 20:
        ax.set_yticks(np.arange(offsets[-1]))


# ---------------------------------------------------------------- raster
def plot_raster(trace: Trace, sample, out_path, show_fired=None, timestep=None):
    """Neuron (global id) against forward step, one marker per delivered spike, coloured by layer.

    The filled marker is where the spike was *delivered* (its ``emitted_step``). With
    ``show_fired``, a hollow marker shows where it *fired* (crossed the threshold) and a grey line
    joins the two: the time the spike waited in the queue (default: shown when the figure holds at
    most :data:`SHOW_FIRED_MAX` spikes). ``timestep`` restricts the figure to one timestep.
    Returns the Figure (also saved to ``out_path``).
    """
    b = check_sample(trace, sample)
    timestep = check_timestep(trace, timestep)
    ev = _selected(trace, b, timestep)
    if show_fired is None:
        show_fired = len(ev["neuron"]) <= SHOW_FIRED_MAX
    geo = _Steps(trace, b, timestep)
    layers = event_layers(trace.layer_sizes, ev["neuron"])
    n_layers = len(trace.layer_sizes) - 1
    offsets = layer_offsets(trace.layer_sizes)
    with style():
        fig = new_figure((11, 7.5))
        ax = fig.add_subplot(1, 1, 1)
        x_emit = geo.x(ev["timestep"], ev["emitted_step"])
        x_fire = geo.x(ev["timestep"], ev["fired_step"])
        size = marker_size(len(x_emit))
        if show_fired and len(x_emit):
            from matplotlib.collections import LineCollection

            segments = np.stack([np.c_[x_fire, ev["neuron"]], np.c_[x_emit, ev["neuron"]]], axis=1)
            ax.add_collection(LineCollection(segments, colors=OKABE_ITO["grey"], linewidths=1,
                                             alpha=0.6, zorder=1))
        for l in range(n_layers):
            sel = layers == l
            name = f"{layer_names(trace)[l]}: neurons {offsets[l]}-{offsets[l + 1] - 1}"
            marker = layer_marker(l)
            if show_fired:
                ax.scatter(x_fire[sel], ev["neuron"][sel], s=size, marker=marker,
                           facecolors="none", edgecolors=layer_colour(l), linewidths=1,
                           alpha=0.7, zorder=2)
            ax.scatter(x_emit[sel], ev["neuron"][sel], s=size, marker=marker, color=layer_colour(l),
                       label=f"{name} ({int(sel.sum())} spikes)", zorder=3)
        if show_fired:
            ax.scatter([], [], s=40, marker="o", facecolors="none", edgecolors="#555555",
                       label="hollow: fired (crossed threshold); line: waited in the queue")
        geo.draw(ax)
        _layer_axis(ax, trace)
        ax.set_xlabel(geo.axis_label())
        ax.set_ylabel("neuron (global id)")
        ax.set_title(_title("Raster", trace, b, timestep) + f"\n{len(x_emit)} delivered spikes, "
                     "filled marker = delivery step", pad=18)
        _legend_below(ax, ncol=2, extra=[_boundary_handle()])
        ax.grid(True, axis="x", alpha=0.15)
        fig.tight_layout()
        save_figure(fig, out_path)
    return fig


# ---------------------------------------------------------------- groups
def plot_groups(trace: Trace, sample, out_path, timestep=None):
    """Which spikes were delivered together at each forward step.

    Up to :data:`GROUPS_MAX_STEPS` forward steps (or one ``timestep``), one column per step. Top:
    the group size per step, stacked by layer (the neuron ids are written above the bars when
    there are few steps and small groups). Bottom: each step's group as a column of markers (one
    per delivered neuron, joined by a vertical line). ``F`` is drawn as a dotted line.
    A whole sample with more steps is summarised per timestep instead (see
    :func:`_groups_per_timestep`). Returns the Figure (also saved to ``out_path``).
    """
    b = check_sample(trace, sample)
    timestep = check_timestep(trace, timestep)
    ev = _selected(trace, b, timestep)
    geo = _Steps(trace, b, timestep)
    with style():
        if timestep is None and geo.K.sum() > GROUPS_MAX_STEPS:
            fig = _groups_per_timestep(trace, b, ev, geo)
        else:
            fig = _groups_per_step(trace, b, ev, geo)
        save_figure(fig, out_path)
    return fig


def _stacked_by_layer(ax, x, index, layers, names, length):
    """Bars at ``x`` of the events per layer (``index``: each event's bar), stacked; a filled
    staircase per layer instead of bars when there are more than 400. Returns the stack heights."""
    base = np.zeros(length)
    for l, name in enumerate(names):
        counts = np.bincount(index[layers == l], minlength=length).astype(float)
        if not counts.any():
            continue
        if length <= 400:
            ax.bar(x, counts, bottom=base, width=0.8, color=layer_colour(l), label=name)
        else:
            ax.fill_between(x, base, base + counts, step="mid", color=layer_colour(l), linewidth=0, label=name)
        base += counts
    return base


def _f_line(ax, trace, what, vertical=False):
    """The dotted line ``y = F`` (``x = F`` if ``vertical``; nothing for layered or unbounded F),
    labelled ``F = <F><what>``."""
    if trace.schedule != "layered" and trace.group_size != UNBOUNDED:
        (ax.axvline if vertical else ax.axhline)(trace.group_size, color=OKABE_ITO["dark grey"],
                                                 linestyle=":", linewidth=1.5,
                                                 label=f"F = {trace.group_size}{what}")


def _integer_y(ax):
    from matplotlib.ticker import MaxNLocator

    ax.yaxis.set_major_locator(MaxNLocator(integer=True))


def _fit_texts(ax, texts, tops):
    """Raise the y limit of ``ax`` so that every text (its bottom at data height ``top``) ends
    inside the axes, below whatever is drawn above them (call after the layout)."""
    renderer = ax.figure.canvas.get_renderer()
    height = ax.get_window_extent(renderer).height
    ymax = ax.get_ylim()[1]
    for text, top in zip(texts, tops):
        room = max(0.96 * height - text.get_window_extent(renderer).height, 0.25 * height)
        ymax = max(ymax, top * height / room)
    ax.set_ylim(0, ymax)


def _id_labels(groups, ax, width_steps):
    """The neuron ids of each group, wrapped to the width of a step (at most 4 lines, about 5.4
    points per character at font size 9), and their rotation: 0, or 90 if they do not fit."""
    step_pt = ax.figure.get_figwidth() * 72 * ax.get_position().width / max(width_steps, 1)
    chars = int(0.85 * step_pt / 5.4)
    wrapped = [textwrap.wrap(", ".join(map(str, g)), chars) if chars > 0 else [] for g in groups]
    if all(lines and len(lines) <= 4 and max(map(len, lines)) <= chars for lines in wrapped):
        return ["\n".join(lines) for lines in wrapped], 0
    return [",".join(map(str, g)) for g in groups], 90


def _groups_per_step(trace, b, ev, geo):
    """The groups figure with one column per forward step (see :func:`plot_groups`)."""
    timestep = geo.timestep
    n_layers = len(trace.layer_sizes) - 1
    layers = event_layers(trace.layer_sizes, ev["neuron"])
    x = (geo.S[ev["timestep"]] + ev["emitted_step"]).astype(np.int64)
    steps = np.unique(x)
    fig = new_figure((11, 9))
    top = fig.add_subplot(2, 1, 1)
    bottom = fig.add_subplot(2, 1, 2, sharex=top)
    base = _stacked_by_layer(top, steps, np.searchsorted(steps, x), layers, layer_names(trace), len(steps))
    texts = []
    if 0 < len(steps) <= 40 and base.max() <= 8:
        ids, rotation = _id_labels([ev["neuron"][x == s] for s in steps], top, geo.hi - geo.lo)
        texts = [top.annotate(t, (s, h), xytext=(0, 3), textcoords="offset points", ha="center",
                              va="bottom", fontsize=9, rotation=rotation)
                 for s, h, t in zip(steps, base, ids)]
    _f_line(top, trace, " (most spikes a group can hold)")
    top.set_ylabel("spikes delivered\ntogether (group size)")
    _integer_y(top)
    top.set_title(_title("Groups", trace, b, timestep) + f"\n{len(steps)} forward steps, "
                  f"{len(x)} delivered spikes" + (" (ids above the bars)" if texts else ""), pad=18)
    geo.draw(top)
    top.grid(True, axis="y", alpha=0.2)

    from matplotlib.collections import LineCollection

    if len(steps):  # x is non-decreasing (delivery order): each step's events are a run
        starts = np.searchsorted(x, steps)
        lo = np.minimum.reduceat(ev["neuron"], starts)
        hi = np.maximum.reduceat(ev["neuron"], starts)
        spans = [((s, a), (s, c)) for s, a, c in zip(steps, lo, hi) if c > a]
        bottom.add_collection(LineCollection(spans, colors="#777777", linewidths=1.2, zorder=1))
    size = marker_size(len(x))
    for l in range(n_layers):
        sel = layers == l
        if sel.any():
            bottom.scatter(x[sel], ev["neuron"][sel], s=size, color=layer_colour(l),
                           marker=layer_marker(l), zorder=2,
                           label=layer_names(trace)[l])
    bottom.plot([], [], color="#777777", label="one group (delivered at once)")
    geo.draw(bottom, label_top=False)
    _layer_axis(bottom, trace)
    bottom.set_ylabel("neuron (global id)")
    bottom.set_xlabel(geo.axis_label())
    extra = [h for h in top.get_legend_handles_labels()[0] if h.get_label().startswith("F =")]
    _legend_below(bottom, ncol=3, extra=extra + [_boundary_handle()], offset=-0.25)
    bottom.grid(True, axis="x", alpha=0.15)
    fig.tight_layout()
    if texts:
        _fit_texts(top, texts, base)
        fig.tight_layout()
    return fig


def _groups_per_timestep(trace, b, ev, geo):
    """The groups of a whole sample, summarised: the spikes delivered in each timestep (stacked by
    layer), the forward steps (groups) each took, and how many groups had each size."""
    n_layers = len(trace.layer_sizes) - 1
    layers = event_layers(trace.layer_sizes, ev["neuron"])
    T = trace.n_timesteps
    sizes = np.bincount(np.unique(geo.S[ev["timestep"]] + ev["emitted_step"], return_counts=True)[1])
    fig = new_figure((11, 10))
    spikes = fig.add_subplot(3, 1, 1)
    groups = fig.add_subplot(3, 1, 2, sharex=spikes)
    hist = fig.add_subplot(3, 1, 3)
    _stacked_by_layer(spikes, np.arange(T), ev["timestep"].astype(np.int64), layers, layer_names(trace), T)
    spikes.set_ylabel("spikes delivered")
    spikes.set_title(_title("Groups", trace, b, None) + f"\n{int(geo.K.sum())} forward steps, "
                     f"{len(ev['neuron'])} delivered spikes: per timestep (give a timestep to see "
                     "each group)")
    spikes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0, frameon=False)
    groups.bar(np.arange(T), geo.K, width=0.8 if T <= 400 else 1.0, color=OKABE_ITO["grey"])
    groups.set_ylabel("forward steps\n(groups)")
    groups.set_xlabel("timestep")
    groups.set_xlim(-0.5 - 0.01 * T, T - 0.5 + 0.01 * T)
    hist.bar(np.arange(len(sizes))[1:], sizes[1:], width=0.8, color=OKABE_ITO["blue"])
    _f_line(hist, trace, " (the largest group)", vertical=True)
    hist.set_xlabel("group size (spikes delivered together in one forward step)")
    hist.set_ylabel("forward steps")
    hist.set_title(f"group sizes over the sample (mean {len(ev['neuron']) / max(geo.K.sum(), 1):.2f})")
    if hist.get_legend_handles_labels()[0]:
        hist.legend(loc="upper left", frameon=False)
    for ax in (spikes, groups, hist):
        _integer_y(ax)
        ax.grid(True, axis="y", alpha=0.2)
    fig.tight_layout()
    return fig
# ---------------------------------------------------------------- queue
def plot_queue(trace: Trace, sample, out_path, timestep=None):
    """The number of pending spikes after every step (see :func:`pyasync_snn.inspection.queue_lengths`),
    with its mean at the moments a group was picked and, for ``random``/``momentum``, the line
    ``F`` (spikes above it wait for a later step). Returns the Figure (also saved to ``out_path``).
    """
    b = check_sample(trace, sample)
    timestep = check_timestep(trace, timestep)
    geo = _Steps(trace, b, timestep)
    q = queue_lengths(trace, b)
    picks = queue_at_picks(q)
    if timestep is not None:
        q = {k: a[q["timestep"] == timestep] for k, a in q.items()}
    x = step_x(q["global_step"], q["step"])
    with style():
        fig = new_figure((11, 6))
        ax = fig.add_subplot(1, 1, 1)
        ax.step(x, q["length"], where="post", color=OKABE_ITO["blue"], linewidth=1.8,
                label="pending spikes after each step")
        ax.fill_between(x, 0, q["length"], step="post", color=OKABE_ITO["sky blue"], alpha=0.35)
        if len(x) <= 300:
            ax.plot(x, q["length"], "o", color=OKABE_ITO["blue"], markersize=4)
        if len(picks):
            ax.axhline(picks.mean(), color=OKABE_ITO["vermillion"], linestyle="--", linewidth=1.5,
                       label=f"mean when a group was picked: {picks.mean():.2f} (whole sample)")
        _f_line(ax, trace, ": spikes above this line wait")
        geo.draw(ax)
        ax.set_ylim(0, max(1, int(q["length"].max()) if len(x) else 1) * 1.12 + 0.2)
        ax.set_xlabel(geo.axis_label())
        ax.set_ylabel("queue length (pending spikes)")
        largest = int(q["length"].max()) if len(x) else 0
        n_steps = int(geo.K.sum() if timestep is None else geo.K[timestep])
        ax.set_title(_title("Queue", trace, b, timestep) +
                     f"\nlargest queue {largest}, {n_steps} forward steps", pad=18)
        _legend_below(ax, ncol=2, extra=[_boundary_handle()], offset=-0.17)
        ax.grid(True, alpha=0.2)
        fig.tight_layout()
        save_figure(fig, out_path)
    return fig


# ---------------------------------------------------------------- membrane
def plot_membrane(trace: Trace, sample, out_path, network, inputs, neurons=None, timestep=None):
    """The membrane of ``neurons`` through the steps of ``sample``, replayed with the model.

    ``network`` is the model the trace was recorded on and ``inputs`` the sample's input counts
    ``x[t, c]`` (e.g. :func:`pyasync_snn.inspection.load_inputs`) or a one-sample EventBatch.
    ``neurons`` are global ids (default: up to two neurons that fired from each layer, in
    ``timestep`` if given). The replay
    (:func:`pyasync_snn.inspection.replay`) raises a :class:`UserError` if it does not reproduce the
    trace's spikes. One panel per layer: the membrane after each step (a staircase), a triangle at
    ``v_pre`` where the neuron fired (and was reset to 0), small dots at threshold checks, crosses
    where current was discarded (refractory), and the threshold as a dashed line.
    Returns the Figure (also saved to ``out_path``).
    """
    b = check_sample(trace, sample)
    timestep = check_timestep(trace, timestep)
    if neurons is None:
        neurons = default_neurons(trace, b, timestep=timestep)
    r = replay(trace, b, network, inputs, neurons)
    if not len(r.neurons):
        raise UserError("no neurons to plot")
    geo = _Steps(trace, b, timestep)
    n_layers = len(trace.layer_sizes) - 1
    layers = layer_of(trace.layer_sizes)[r.neurons]
    shown = sorted(set(layers.tolist()))
    rows = np.ones(len(r.step), dtype=bool) if timestep is None else r.timestep == timestep
    x = step_x(r.global_step, r.step)[rows]
    # one timestep: start the curve at the end of the previous one, to show the decay
    before = int(np.argmax(rows)) - 1 if timestep is not None and timestep > 0 else -1
    detailed = len(x) <= DETAIL_MAX_STEPS
    with style():
        fig = new_figure((12, 1.2 + 2.7 * len(shown)))
        axes = [fig.add_subplot(len(shown), 1, i + 1) for i in range(len(shown))]
        for ax in axes[1:]:
            ax.sharex(axes[0])
        for ax, l in zip(axes, shown):
            cols = np.nonzero(layers == l)[0]
            for n, c in enumerate(cols):
                colour = LINE_COLOURS[n % len(LINE_COLOURS)]
                v, u = r.v[rows, c].astype(float), r.u[rows, c]
                fired, discarded = r.fired[rows, c], r.discarded[rows, c]
                # staircase through the values; at a firing go up to v_pre, then down to 0
                xs = np.repeat(x, 1 + fired)
                ys = np.empty(len(xs))
                pos = np.cumsum(1 + fired) - 1
                ys[pos] = v
                ys[pos[fired] - 1] = u[fired]
                if before >= 0:
                    xs = np.r_[r.global_step[before], xs]
                    ys = np.r_[float(r.v[before, c]), ys]
                ax.step(xs, ys, where="post", color=colour, linewidth=1.8,
                        linestyle=("-", "--", "-.", ":")[n % 4], label=f"neuron {r.neurons[c]}")
                checked = ~np.isnan(u)
                if detailed:
                    ax.plot(x[checked & ~fired], u[checked & ~fired], ".", color=colour, markersize=5)
                    ax.plot(x[discarded], np.zeros(int(discarded.sum())), "x", color=colour, markersize=6)
                ax.plot(x[fired], u[fired], "^", color=colour, markersize=8,
                        markeredgecolor="black", markeredgewidth=0.6)
            ax.axhline(r.threshold, color="black", linestyle="--", linewidth=1.2)
            geo.draw(ax, label_top=ax is axes[0])
            ax.set_ylabel(f"membrane v\n{layer_names(trace)[l]}")
            ax.grid(True, alpha=0.2)
            handles, labels = ax.get_legend_handles_labels()
            ax.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.01, 1.0),
                      borderaxespad=0, frameon=False, title="neuron (global id)")
        axes[-1].set_xlabel(geo.axis_label())
        from matplotlib.lines import Line2D

        key = [Line2D([], [], color="black", linestyle="--", label=f"threshold {r.threshold:g}"),
               Line2D([], [], color="#555555", marker="^", linestyle="", markersize=8,
                      label="fired (v_pre), then reset to 0"),
               Line2D([], [], color="#555555", marker=".", linestyle="", label="threshold check"),
               Line2D([], [], color="#555555", marker="x", linestyle="", label="current discarded (refractory)")]
        if not detailed:  # too many steps for one marker per check
            key = key[:2] + [Line2D([], [], linestyle="", label=f"(checks and discards are marked up to "
                                                                   f"{DETAIL_MAX_STEPS} steps; pass a timestep)")]
        fig.legend(handles=key, loc="lower center", ncol=len(key), frameon=False, fontsize=10)
        axes[0].set_title(_title("Membrane", trace, b, timestep) +
                          "\nreplayed from the recorded groups; value after each step", pad=18)
        fig.tight_layout(rect=(0, 0.05, 1, 1))
        save_figure(fig, out_path)
    return fig


def plot_trace(kind: str, trace: Trace, sample, out_path, network=None, inputs=None, **options):
    """Dispatch to ``plot_<kind>``; ``membrane`` needs ``network`` and ``inputs``. Returns the Figure."""
    if kind not in PLOT_KINDS:
        raise UserError(f"unknown plot kind {kind!r}; choose one of {', '.join(PLOT_KINDS)}")
    if kind == "membrane":
        if network is None or inputs is None:
            raise UserError("the membrane plot replays the sample: give the model and the data "
                            "(--model MODEL --data DATA)")
        return plot_membrane(trace, sample, out_path, network, inputs, **options)
    return {"raster": plot_raster, "groups": plot_groups, "queue": plot_queue}[kind](
        trace, sample, out_path, **options)
