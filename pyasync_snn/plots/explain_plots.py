"""The frames of :func:`pyasync_snn.explain.explain`: the example network under each schedule
after every step, side by side, with a timeline of the spikes below; written as PNGs and a GIF.

Frame ``k`` shows the state after step ``k`` of every schedule (a schedule that has already
finished shows its final state), sized 1920 x 1080 for a slide. The GIF holds the same frames,
scaled to 1280 x 720.
"""
from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING

import numpy as np

from ..io.atomic import ensure_directory
from ..network import Network, layer_of, layer_offsets
from ..trace import schedule_title
from .figure import (CURRENT_COLOURS, OKABE_ITO, figure_image, layer_colour, layer_marker,
                     new_figure, save_gif, save_image)

if TYPE_CHECKING:
    from ..explain import ExplainResult, ExplainRun

STATE_COLOURS = {"idle": "white", "delivering": OKABE_ITO["bluish green"], "pending": OKABE_ITO["orange"],
                 "done": OKABE_ITO["light grey"]}
DARK = OKABE_ITO["dark grey"]
FRAME_SIZE = (19.2, 10.8)   # inches at 100 dpi: 1920 x 1080
FRAME_DPI = 100
GIF_SCALE = 2 / 3           # the GIF is 1280 x 720
GIF_FPS = 0.8
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
    colour = CURRENT_COLOURS["excitatory" if weight > 0 else "inhibitory"]
    ax.annotate("", xy=end, xytext=start, zorder=3,
                arrowprops=dict(arrowstyle="-|>", color=colour, lw=1.5 + 10 * abs(weight),
                                linestyle=style, mutation_scale=24, alpha=alpha,
                                shrinkA=0, shrinkB=0))


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

    for src, tgt, w in [] if finished else view.deliveries:  # this step's currents
        discarded = bool(view.discarded[tgt])
        _arrow(ax, pos[src], pos[tgt], w, ":" if discarded else ("-" if w > 0 else "--"),
               alpha=0.5 if discarded else 1.0)

    nodes = []  # drawn as one collection (much faster than one patch each)
    for c in range(sizes[0]):
        active = x[0, c] > 0
        face = STATE_COLOURS["delivering"] if (active and view.step == 0 and not finished) else \
            (STATE_COLOURS["done"] if active else "white")
        p = pos[("in", c)]
        nodes.append(Circle(p, RADIUS, fc=face, ec=DARK, lw=2, ls="-" if active else "--"))
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
                            ec=OKABE_ITO["vermillion"] if just_fired else DARK))
        ax.text(*p, str(i), ha="center", va="center", fontsize=20, fontweight="bold", zorder=5)
        below = f"fired {v_pre[i]:.2f}" if i in fired_upto else f"v {view.v[i]:.2f}"
        ax.text(p[0], p[1] - RADIUS - 0.07, below, ha="center", va="top", fontsize=15, zorder=5)
        if not finished and view.current[i] != 0:  # the current it received at this step
            colour = CURRENT_COLOURS["excitatory" if view.current[i] > 0 else "inhibitory"]
            note = f"{view.current[i]:+.2f}" + (" discarded" if view.discarded[i] else "")
            ax.text(p[0] + 0.62 * RADIUS, p[1] + 0.72 * RADIUS, note, ha="left", va="bottom",
                    fontsize=16, fontweight="bold", zorder=6,
                    color=DARK if view.discarded[i] else colour,
                    bbox=dict(boxstyle="round,pad=0.12", fc="white", ec="none", alpha=0.85))
    ax.add_collection(PatchCollection(nodes, match_original=True, zorder=4))
    for o in range(sizes[-1]):
        p = pos[int(offsets[-2] + o)]
        ax.text(p[0] + RADIUS + 0.1, p[1], f"class {o}", ha="left", va="center", fontsize=15,
                fontweight="bold", zorder=5, color=DARK)
    ax.set_xlim(-0.45, 3 * LAYER_DX + 1.6)
    ax.set_ylim(-1.5 * NODE_DY - 0.75, 1.5 * NODE_DY + 0.5)
    ax.set_aspect("equal")
    ax.axis("off")


def _caption(run: ExplainRun, k: int) -> str:
    """Three short lines under a panel."""
    ev = run.trace.events(0)
    out = ev["neuron"] - layer_offsets(run.trace.layer_sizes)[-2]  # class of an output spike
    counts = np.bincount(out[(out >= 0) & (ev["fired_step"] <= min(k, run.n_steps))],
                         minlength=run.trace.layer_sizes[-1])
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
    seen = ev["fired_step"] <= k
    neuron, fired, emitted = ev["neuron"][seen], ev["fired_step"][seen], ev["emitted_step"][seen]
    ax.add_collection(LineCollection([((f, i), (min(e, k), i)) for i, f, e in zip(neuron, fired, emitted)],
                                     colors="#888888", linewidths=2.5, zorder=1))
    for l in range(network.n_layers):
        sel = layers[neuron] == l
        c, m = layer_colour(l), layer_marker(l)
        ax.scatter(fired[sel], neuron[sel], s=150, marker=m, facecolors="white", edgecolors=c,
                   linewidths=2.5, zorder=2)
        done = sel & (emitted <= k)
        ax.scatter(emitted[done], neuron[done], s=150, marker=m, color=c, zorder=3)
    if k <= run.n_steps:
        ax.axvline(k, color=OKABE_ITO["vermillion"], lw=3, alpha=0.5, zorder=0)
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
        seed = f", seed {run.trace.seed}" if run.schedule == "random" else ""
        ax.set_title(schedule_title(run.trace.schedule, run.trace.group_size) + seed, fontsize=24, fontweight="bold", pad=2)
        timeline = fig.add_subplot(grid[1, c])
        _setup_timeline(timeline, result.n_frames, result.network)
        layout["network"].append(ax)
        layout["timeline"].append(timeline)
    handles = [Patch(fc=STATE_COLOURS["delivering"], ec="black", label="delivering now"),
               Patch(fc=STATE_COLOURS["pending"], ec="black", label="fired, waiting in the queue"),
               Patch(fc=STATE_COLOURS["done"], ec="black", label="delivered (refractory)"),
               Patch(fc="white", ec=OKABE_ITO["vermillion"], lw=4, label="fires at this step"),
               Line2D([], [], color=CURRENT_COLOURS["excitatory"], lw=4, label="excitatory current (+)"),
               Line2D([], [], color=CURRENT_COLOURS["inhibitory"], lw=4, ls="--", label="inhibitory current (-)"),
               Line2D([], [], marker="o", mfc="white", mec="#555555", ls="", ms=12,
                      label="timeline: fired (hollow)"),
               Line2D([], [], marker="o", color="#555555", ls="", ms=12, label="timeline: delivered (filled)")]
    fig.legend(handles=handles, loc="lower center", ncol=4, fontsize=16, frameon=False,
               bbox_to_anchor=(0.5, 0.0), columnspacing=2.5)
    fig._explain_layout = layout
    return layout


def write_frames(result, out_dir) -> tuple:
    """Write ``step_NN.png`` for every frame of ``result`` (an :class:`~pyasync_snn.explain.
    ExplainResult`) and ``explain.gif`` into ``out_dir`` (created if missing; older frames beyond
    the new last one are removed); returns ``(frame paths, GIF path)``.

    Every frame is rendered once: written as a PNG, and a smaller copy kept for the GIF (assembled
    with Pillow, as matplotlib's ``PillowWriter`` does). Each frame shows for ``1 / GIF_FPS``
    seconds, the last one three times as long.
    """
    from PIL import Image

    out_dir = ensure_directory(out_dir)
    n = result.n_frames
    width = max(2, len(str(n - 1)))
    fig = new_figure(FRAME_SIZE, dpi=FRAME_DPI)
    frames, gif_frames = [], []
    for k in range(n):
        draw_frame(fig, result, k)
        path = os.path.join(out_dir, f"step_{k:0{width}d}.png")
        frame = figure_image(fig)
        save_image(frame, path, format="PNG")
        gif_frames.append(frame.resize((round(frame.width * GIF_SCALE), round(frame.height * GIF_SCALE)),
                                       Image.LANCZOS))
        frames.append(path)
    gif = os.path.join(out_dir, "explain.gif")
    save_gif(gif_frames, gif, [round(1000 / GIF_FPS)] * (n - 1) + [round(3000 / GIF_FPS)])
    for name in os.listdir(out_dir):  # frames of an earlier, longer run
        m = re.fullmatch(r"step_(\d+)\.png", name)
        if m and int(m.group(1)) >= n:
            os.remove(os.path.join(out_dir, name))
    return frames, gif
