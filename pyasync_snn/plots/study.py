"""Figures of the asynchrony study (:mod:`pyasync_snn.experiment`).

Colours are the schedule colours of :mod:`pyasync_snn.plots.figure` (Okabe-Ito); every series
also has its own marker or line style. Figures with several trained models draw one panel per model on shared axes (small
multiples), so that nothing is drawn on top of another model and panels compare at a glance. A
trained model is a (training schedule, F_train) pair: its colour is its schedule's, darker for
smaller F_train (the largest F_train in the schedule's own colour). Legends that would repeat in
every panel are drawn once, below the panels. Unbounded F is written ``∞``.
"""
from __future__ import annotations

import math
import os

import numpy as np

from ..trace import format_f, schedule_label
from .figure import SCHEDULE_COLOURS, new_figure, save_figure

MARKERS = {"layered": "s", "random": "o", "momentum": "^"}
STYLES = {"layered": "-", "random": "--", "momentum": ":"}
MAX_COLUMNS = 4
DPI = 100


def _figure(n_panels, width=4.2, height=3.6):
    """A figure of ``n_panels`` axes on a grid of at most :data:`MAX_COLUMNS` columns (balanced
    rows); returns the figure and the used axes, row by row."""
    rows = math.ceil(n_panels / MAX_COLUMNS)
    cols = math.ceil(n_panels / rows)
    fig = new_figure((width * cols, height * rows))
    return fig, [fig.add_subplot(rows, cols, i + 1) for i in range(n_panels)]


def _share(axes, x=True, y=True):
    """Give every axis the x and/or y range of the first."""
    for ax in axes[1:]:
        if x:
            ax.sharex(axes[0])
        if y:
            ax.sharey(axes[0])


def _save(fig, path, legend=None):
    """Lay out and write ``fig`` (returned); ``legend``: ``(handles, labels, title)`` of one legend
    for the whole figure, drawn below the panels (space reserved so that nothing overlaps)."""
    if legend is not None and legend[0]:
        handles, labels, title = legend
        height = fig.get_figheight()
        ncol = len(labels) if len(labels) <= 5 else math.ceil(len(labels) / 2)
        nrow = math.ceil(len(labels) / ncol) + (1 if title else 0)
        bottom = (0.12 + 0.24 * nrow) / height
        fig.legend(handles, labels, title=title, loc="lower center", ncol=ncol, fontsize=8,
                   title_fontsize=8, frameon=False, bbox_to_anchor=(0.5, 0.0))
        fig.tight_layout(rect=(0, bottom, 1, 1))
    else:
        fig.tight_layout()
    save_figure(fig, path, dpi=DPI)
    return fig


def trained_models(cfg) -> list:
    """``(training schedule, F_train)`` of every trained model series: layered once (F ``None``),
    then every other training schedule at every F of ``f_train``."""
    out = []
    for ts in cfg["train_schedules"]:
        out.extend([(ts, None)] if ts == "layered" else [(ts, f) for f in cfg["f_train"]])
    return out


def _shade(colour, t):
    """``colour`` mixed with black (``t < 0``) or white (``t > 0``) by ``|t|``."""
    from matplotlib.colors import to_rgb
    rgb = np.array(to_rgb(colour))
    return tuple(rgb * (1 + t) if t < 0 else rgb + (1 - rgb) * t)


def model_colour(ts, f, cfg):
    """The colour of the trained model ``(ts, f)``: its schedule's, darker for a smaller F."""
    fs = cfg["f_train"]
    if ts == "layered" or f is None or len(fs) == 1:
        return SCHEDULE_COLOURS[ts]
    i = fs.index(f) if f in fs else 0
    return _shade(SCHEDULE_COLOURS[ts], -0.55 * (1 - i / (len(fs) - 1)))  # the largest F as is


def _short(label: str) -> str:
    """A label of :func:`~pyasync_snn.trace.format_f` or :func:`~pyasync_snn.trace.schedule_label`
    (or an ``eval_f`` of ``results.csv``) with unbounded F written ``∞``."""
    return label.replace("unbounded", "∞")


def _rows_of(rows, ts, f):
    """The rows of the trained model ``(ts, f)``."""
    label = "na" if ts == "layered" else format_f(f)  # as in ``results.csv``
    return [r for r in rows if r["train_schedule"] == ts and r["f_train"] == label]


def _x(f_label, sizes):
    """Position on the log2 axis; unbounded sits one octave right of the largest F."""
    finite = [f for f in sizes if f > 0] or [1]
    if f_label == "unbounded":
        return 2.0 * max(finite)
    return float(f_label)


def _xaxis(ax, sizes):
    finite = sorted(f for f in sizes if f > 0)
    ticks = finite + ([2.0 * max(finite or [1])] if 0 in sizes else [])
    ax.set_xscale("log", base=2)
    ax.set_xticks(ticks)
    ax.set_xticklabels([_short(format_f(f)) for f in finite + [0] * (0 in sizes)])
    ax.set_xlabel("evaluation group size F (∞ = unbounded)")


def _versus_f(rows, cfg, metric, ylabel, path, scale=1.0, stop="off"):
    """One panel per trained model (layered, then each schedule at each F_train): ``metric``
    against the evaluation F, one series per evaluation schedule (layered: a horizontal line).
    The panels share the y axis, so trained models compare at a glance."""
    models = trained_models(cfg)
    fig, axes = _figure(len(models))
    _share(axes, x=False)
    sizes = cfg["eval_group_sizes"]
    legend = {}
    for ax, (ts, f_train) in zip(axes, models):
        sel = [r for r in _rows_of(rows, ts, f_train) if r["stop_on_output"] == stop]
        for es in cfg["eval_schedules"]:
            pts = [r for r in sel if r["eval_schedule"] == es]
            if not pts:
                continue
            if es == "layered":
                m = pts[0][f"{metric}_mean"] * scale
                legend.setdefault(es, ax.axhline(m, color=SCHEDULE_COLOURS[es], ls=STYLES[es], label="layered"))
                continue
            xs = np.array([_x(r["eval_f"], sizes) for r in pts])
            ys = np.array([r[f"{metric}_mean"] * scale for r in pts])
            es_ = np.array([r[f"{metric}_std"] * scale for r in pts])
            order = np.argsort(xs)
            line = ax.errorbar(xs[order], ys[order], yerr=es_[order], color=SCHEDULE_COLOURS[es], ls=STYLES[es],
                               marker=MARKERS[es], capsize=3, label=es)
            legend.setdefault(es, line)
            if f_train is not None and f_train in sizes:  # the model's own training F
                ax.axvline(_x(format_f(f_train), sizes), color="0.6", lw=0.8, ls="-.", zorder=0)
        _xaxis(ax, sizes)
        ax.set_ylabel(ylabel)
        ax.set_title(f"trained: {_short(schedule_label(ts, f_train))}")
        ax.grid(True, alpha=0.3)
    order = [es for es in cfg["eval_schedules"] if es in legend]
    return _save(fig, path, ([legend[es] for es in order], order,
                             "evaluated with (dash-dotted line: the model's training F)"))


def plot_study(rows, raw, cfg, out_dir) -> dict:
    """Draw the study's figures into ``out_dir``; returns ``{name: path}``.

    ``rows``: the aggregated rows; ``raw``: ``{(train_schedule, F_train, eval_schedule, F, stop):
    [per-seed arrays]}`` for the latency distributions (``F_train`` is ``None`` for layered).
    """
    files = {"accuracy vs F": "accuracy_vs_f.png", "spikes vs F": "spikes_vs_f.png",
             "energy vs F": "energy_vs_f.png", "decision latency vs F": "latency_vs_f.png",
             "latency distributions": "latency.png",
             "accuracy vs latency (stopped runs)": "accuracy_vs_latency.png"}
    figs = {name: os.path.join(out_dir, file) for name, file in files.items()}
    _versus_f(rows, cfg, "accuracy", "accuracy (%)", figs["accuracy vs F"], 100)
    _versus_f(rows, cfg, "spikes_per_sample", "network spikes per sample", figs["spikes vs F"])
    _versus_f(rows, cfg, "energy_nj", "energy per inference (nJ)", figs["energy vs F"])
    _versus_f(rows, cfg, "timestep_spikes_to_output", "network spikes to 1st output / timestep",
              figs["decision latency vs F"])
    _latency(raw, cfg, figs["latency distributions"])
    _accuracy_latency(rows, cfg, figs["accuracy vs latency (stopped runs)"])
    return figs


def _latency(raw, cfg, path):
    """Histograms of the per-timestep decision latency (network spikes in a timestep up to its first
    output spike; one count per (sample, timestep) with an output spike), full runs, all seeds
    pooled. One column per F_train, evaluated under momentum at that F (or the first asynchronous
    evaluation schedule; the first evaluation F when F_train is not evaluated); one row per
    training schedule (the model trained at that F, or the layered one). The panels share their
    axes, so the distributions compare down a column; each mean is a dashed line."""
    es = next((s for s in ("momentum", "random") if s in cfg["eval_schedules"]), "layered")
    asynchronous = [ts for ts in cfg["train_schedules"] if ts != "layered"]
    columns = cfg["f_train"] if asynchronous else [None]
    schedules = cfg["train_schedules"]
    data = {}
    for f_train in columns:
        f = 0
        if es != "layered":
            f = f_train if f_train in cfg["eval_group_sizes"] else cfg["eval_group_sizes"][0]
        for ts in schedules:
            ft = None if ts == "layered" else f_train
            parts = raw.get((ts, ft, es, f, None), [])
            x = np.concatenate([p["timestep_spikes_to_output"].ravel() for p in parts]) if parts else np.empty(0)
            data[(ts, f_train)] = (ft, f, x[x >= 0])
    top = max([int(x.max()) for _, _, x in data.values() if len(x)] or [1])
    bins = np.arange(0, top + 2) - 0.5 if top <= 60 else np.linspace(0, top + 1, 41)
    fig = new_figure((4.6 * len(columns), 1.0 + 2.1 * len(schedules)))
    grid = fig.subplots(len(schedules), len(columns), sharex=True, sharey=True, squeeze=False)
    for (ts, f_train), (ft, f, x) in data.items():
        ax = grid[schedules.index(ts), columns.index(f_train)]
        name = f"trained {_short(schedule_label(ts, ft))}"
        if len(x):
            ax.hist(x, bins=bins, histtype="stepfilled", color=model_colour(ts, ft, cfg), alpha=0.8)
            ax.axvline(x.mean(), color="black", ls="--", lw=1.2)
            name += f"\nmean {x.mean():.1f} (dashed)"
        ax.text(0.98, 0.95, name, transform=ax.transAxes, ha="right", va="top", fontsize=8,
                bbox={"facecolor": "white", "alpha": 0.8, "edgecolor": "none"})
        ax.grid(True, alpha=0.3)
        if ts == schedules[0]:
            ax.set_title(f"evaluated with {_short(schedule_label(es, f))} (full runs)", fontsize=10)
        if f_train == columns[0]:
            ax.set_ylabel("(sample, timestep)\npairs", fontsize=9)
    for ax in grid[-1]:
        ax.set_xlabel("network spikes to the first output spike,\nper timestep", fontsize=9)
    return _save(fig, path)


def _accuracy_latency(rows, cfg, path):
    """Accuracy vs the mean per-timestep decision latency in the stopped runs, one panel per trained
    model (training schedule, F_train) on shared axes. In each panel one series per evaluation
    schedule through its evaluation F (layered: one point; the F=1 end labelled), solid with
    filled markers for "on output", dashed with hollow markers for ``stop_on_output`` forward steps
    after output; bars: std over seeds."""
    stops = list(dict.fromkeys((0, cfg["stop_on_output"])))
    modes = {0: "on output", cfg["stop_on_output"]: f"{cfg['stop_on_output']} steps after output"}
    models = trained_models(cfg)
    sizes = cfg["eval_group_sizes"]
    key = "timestep_spikes_to_output"
    fig, axes = _figure(len(models), width=4.4, height=3.8)
    _share(axes)
    legend = {}
    for ax, (ts, f_train) in zip(axes, models):
        for i, stop in enumerate(stops):
            sel = [r for r in _rows_of(rows, ts, f_train) if r["stop_on_output"] == str(stop)
                   and math.isfinite(r[f"{key}_mean"])]
            for es in cfg["eval_schedules"]:
                pts = sorted((r for r in sel if r["eval_schedule"] == es),
                             key=lambda r: 0 if es == "layered" else _x(r["eval_f"], sizes))
                if not pts:
                    continue
                xs, ys = [r[f"{key}_mean"] for r in pts], [100 * r["accuracy_mean"] for r in pts]
                legend.setdefault((es, i), ax.errorbar(
                    xs, ys, xerr=[r[f"{key}_std"] for r in pts], yerr=[100 * r["accuracy_std"] for r in pts],
                    color=SCHEDULE_COLOURS[es], marker=MARKERS[es], ls="-" if i == 0 else "--", lw=1.2,
                    markerfacecolor=SCHEDULE_COLOURS[es] if i == 0 else "white", markersize=5,
                    elinewidth=0.6, ecolor=_shade(SCHEDULE_COLOURS[es], 0.5), label=f"{es}, {modes[stop]}",
                    zorder=4 if es == "layered" else 2))
                if len(pts) > 1 and i == 0:
                    ax.annotate("F=" + _short(pts[0]["eval_f"]), (xs[0], ys[0]), fontsize=7,
                                color=SCHEDULE_COLOURS[es], xytext=(3, -9), textcoords="offset points")
        ax.set_title(f"trained: {_short(schedule_label(ts, f_train))}", fontsize=10)
        ax.set_xlabel("mean network spikes to 1st output,\nper timestep", fontsize=9)
        ax.set_ylabel("accuracy (%)", fontsize=9)
        ax.grid(True, alpha=0.3)
    order = [k for es in cfg["eval_schedules"] for k in ((es, 0), (es, 1)) if k in legend]
    return _save(fig, path, ([legend[k] for k in order], [legend[k].get_label() for k in order],
                             "evaluated with (series run through the evaluation F; bars: std over seeds)"))
