"""Figures of the asynchrony study (:mod:`pyasync_snn.experiment`), drawn on the Agg canvas.

Colours are the Okabe-Ito palette (colour-blind safe); every series also has its own marker or
line style. A trained model is a (training schedule, F_train) pair: its colour is its schedule's,
darker for smaller F_train (the largest F_train in the schedule's own colour), and its marker
tells F_train apart. Legends that would repeat in
every panel are drawn once, below the panels. Each PNG is written atomically (temporary file,
then rename).
"""
from __future__ import annotations

import math
import os

import numpy as np

from ..io.atomic import atomic_path
from ..trace import format_f

OKABE_ITO = {"layered": "#0072B2", "random": "#E69F00", "momentum": "#009E73", "extra": "#CC79A7"}
MARKERS = {"layered": "s", "random": "o", "momentum": "^"}
STYLES = {"layered": "-", "random": "--", "momentum": ":"}


F_MARKERS = ("o", "^", "D", "v", "P", "X", "*", "h")
MAX_COLUMNS = 4


def _figure(n_panels, width=4.2, height=3.6, columns=None):
    """A figure of ``n_panels`` axes on a grid of at most :data:`MAX_COLUMNS` columns (balanced
    rows); returns the figure and the used axes, row by row."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    rows = math.ceil(n_panels / (columns or MAX_COLUMNS))
    cols = math.ceil(n_panels / rows)
    fig = Figure(figsize=(width * cols, height * rows), dpi=100)
    FigureCanvasAgg(fig)
    return fig, [fig.add_subplot(rows, cols, i + 1) for i in range(n_panels)]


def _save(fig, path, legend=None):
    """Lay out and write ``fig``; ``legend``: ``(handles, labels, title)`` of one legend for the
    whole figure, drawn below the panels (space reserved so that nothing overlaps)."""
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
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    return path


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


def model_style(ts, f, cfg) -> dict:
    """Colour, marker and line style of the trained model ``(ts, f)``."""
    if ts == "layered" or f is None:
        return {"color": OKABE_ITO[ts], "marker": MARKERS[ts], "ls": STYLES[ts]}
    fs = cfg["f_train"]
    i = fs.index(f) if f in fs else 0
    t = 0.0 if len(fs) == 1 else -0.55 * (1 - i / (len(fs) - 1))  # smaller F darker, largest F as is
    return {"color": _shade(OKABE_ITO[ts], t),
            "marker": MARKERS[ts] if len(fs) == 1 else F_MARKERS[i % len(F_MARKERS)], "ls": STYLES[ts]}


def _f_label(f) -> str:
    return "∞" if f == 0 else str(f)


_csv_f = format_f  # F as written in ``results.csv``


def _rows_of(rows, ts, f):
    """The rows of the trained model ``(ts, f)``."""
    label = "na" if ts == "layered" else _csv_f(f)
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
    ax.set_xticklabels([str(f) for f in finite] + (["∞"] if 0 in sizes else []))
    ax.set_xlabel("evaluation group size F (∞ = unbounded)")


def _trained_label(schedule, f):
    return "layered" if schedule == "layered" else f"{schedule} F={_f_label(f)}"


def _versus_f(rows, cfg, metric, ylabel, path, scale=1.0, stop="off"):
    """One panel per trained model (layered, then each schedule at each F_train): ``metric``
    against the evaluation F, one series per evaluation schedule (layered: a horizontal line).
    The panels share the y axis, so trained models compare at a glance."""
    models = trained_models(cfg)
    fig, axes = _figure(len(models))
    for ax in axes[1:]:
        ax.sharey(axes[0])
    sizes = cfg["eval_group_sizes"]
    legend = {}
    for ax, (ts, f_train) in zip(axes, models):
        sel = [r for r in _rows_of(rows, ts, f_train) if r["stop"] == stop]
        for es in cfg["eval_schedules"]:
            pts = [r for r in sel if r["eval_schedule"] == es]
            if not pts:
                continue
            if es == "layered":
                m = pts[0][f"{metric}_mean"] * scale
                legend.setdefault(es, ax.axhline(m, color=OKABE_ITO[es], ls=STYLES[es], label="layered"))
                continue
            xs = np.array([_x(r["eval_f"], sizes) for r in pts])
            ys = np.array([r[f"{metric}_mean"] * scale for r in pts])
            es_ = np.array([r[f"{metric}_std"] * scale for r in pts])
            order = np.argsort(xs)
            line = ax.errorbar(xs[order], ys[order], yerr=es_[order], color=OKABE_ITO[es], ls=STYLES[es],
                               marker=MARKERS[es], capsize=3, label=es)
            legend.setdefault(es, line)
            if f_train is not None and f_train in sizes:  # the model's own training F
                ax.axvline(_x(_csv_f(f_train), sizes), color="0.6", lw=0.8, ls="-.", zorder=0)
        _xaxis(ax, sizes)
        ax.set_ylabel(ylabel)
        ax.set_title(f"trained: {_trained_label(ts, f_train)}")
        ax.grid(True, alpha=0.3)
    order = [es for es in cfg["eval_schedules"] if es in legend]
    return _save(fig, path, ([legend[es] for es in order], order,
                             "evaluated with (dash-dotted line: the model's training F)"))



def plot_study(rows, raw, cfg, out_dir) -> dict:
    """Draw the study's figures into ``out_dir``; returns ``{name: path}``.

    ``rows``: the aggregated rows; ``raw``: ``{(train_schedule, F_train, eval_schedule, F, stop):
    [per-seed arrays]}`` for the latency distributions (``F_train`` is ``None`` for layered).
    """
    figs = {}
    figs["accuracy vs F"] = _versus_f(rows, cfg, "accuracy", "accuracy (%)",
                                      os.path.join(out_dir, "accuracy_vs_f.png"), 100)
    figs["spikes vs F"] = _versus_f(rows, cfg, "spikes_per_sample", "network spikes per sample",
                                    os.path.join(out_dir, "spikes_vs_f.png"))
    figs["energy vs F"] = _versus_f(rows, cfg, "energy_nj", "energy per inference (nJ)",
                                    os.path.join(out_dir, "energy_vs_f.png"))
    figs["decision latency vs F"] = _versus_f(rows, cfg, "timestep_spikes_to_output",
                                              "network spikes to 1st output / timestep",
                                              os.path.join(out_dir, "latency_vs_f.png"))
    figs["latency distributions"] = _latency(raw, cfg, os.path.join(out_dir, "latency.png"))
    figs["accuracy vs latency (stopped runs)"] = _accuracy_latency(
        rows, cfg, os.path.join(out_dir, "accuracy_vs_latency.png"))
    return figs


def _latency(raw, cfg, path):
    """Histograms of the per-timestep decision latency (network spikes in a timestep up to its first
    output spike; one count per (sample, timestep) with an output spike), full runs, all seeds
    pooled. One panel per F_train: the models trained at that F and the layered one, evaluated
    under momentum at that F (or the first asynchronous evaluation schedule; the first evaluation
    F when F_train is not evaluated)."""
    es = next((s for s in ("momentum", "random") if s in cfg["eval_schedules"]), "layered")
    asynchronous = [ts for ts in cfg["train_schedules"] if ts != "layered"]
    panels = cfg["f_train"] if asynchronous else [None]
    fig, axes = _figure(len(panels), width=5.5, columns=3)
    for ax, f_train in zip(axes, panels):
        f = 0
        if es != "layered":
            f = f_train if f_train in cfg["eval_group_sizes"] else cfg["eval_group_sizes"][0]
        data = {}
        for ts in cfg["train_schedules"]:
            parts = raw.get((ts, None if ts == "layered" else f_train, es, f, -1), [])
            if parts:
                x = np.concatenate([p["timestep_spikes_to_output"].ravel() for p in parts])
                data[(ts, None if ts == "layered" else f_train)] = x[x >= 0]
        top = max([int(v.max()) for v in data.values() if len(v)] or [1])
        bins = np.arange(0, top + 2) - 0.5 if top <= 60 else 40
        for (ts, ft), x in data.items():
            style = model_style(ts, ft, cfg)
            ax.hist(x, bins=bins, histtype="step", lw=2, color=style["color"], ls=style["ls"],
                    label=f"trained {_trained_label(ts, ft)} (mean {x.mean():.1f})" if len(x)
                    else f"trained {_trained_label(ts, ft)}")
        ax.set_xlabel("network spikes to the first output spike, per timestep")
        ax.set_ylabel("(sample, timestep) pairs")
        fl = "" if es == "layered" else f" F={_f_label(f)}"
        ax.set_title(f"decision latency, evaluated with {es}{fl}\n(full runs)", fontsize=10)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    return _save(fig, path)


def _accuracy_latency(rows, cfg, path):
    """Accuracy vs the mean per-timestep decision latency, one panel per stopped mode ("on output"
    and ``stop_delay`` steps after output): one point per evaluation setting, one colour and
    marker per trained model (training schedule, F_train). With at most three trained models every
    point is labelled with its evaluation setting; with more, only each model's own setting
    (its training schedule at its F_train) and layered evaluation, so the labels stay legible."""
    stops = list(dict.fromkeys((0, cfg["stop_delay"])))
    fig, axes = _figure(len(stops), width=6.0, height=4.6)
    key = "timestep_spikes_to_output"
    legend = {}
    for ax, stop in zip(axes, stops):
        for ts, f_train in trained_models(cfg):
            sel = [r for r in _rows_of(rows, ts, f_train) if r["stop"] == str(stop)
                   and math.isfinite(r[f"{key}_mean"])]
            if not sel:
                continue
            style = model_style(ts, f_train, cfg)
            line = ax.errorbar([r[f"{key}_mean"] for r in sel], [100 * r["accuracy_mean"] for r in sel],
                               xerr=[r[f"{key}_std"] for r in sel],
                               yerr=[100 * r["accuracy_std"] for r in sel], fmt=style["marker"],
                               color=style["color"], capsize=2, label=f"trained {_trained_label(ts, f_train)}")
            legend.setdefault(_trained_label(ts, f_train), line)
            for r in sel:
                if len(trained_models(cfg)) > 3 and not (
                        r["eval_schedule"] == "layered"
                        or (r["eval_schedule"] == ts and r["eval_f"] == r["f_train"])):
                    continue
                tag = "L" if r["eval_schedule"] == "layered" else f"{r['eval_schedule'][0]}{'∞' if r['eval_f'] == 'unbounded' else r['eval_f']}"
                ax.annotate(tag, (r[f"{key}_mean"], 100 * r["accuracy_mean"]), fontsize=6,
                            xytext=(2, 2), textcoords="offset points")
        ax.set_xlabel("mean network spikes to the first output spike, per timestep")
        ax.set_ylabel("accuracy (%)")
        mode = "on output" if stop == 0 else f"{stop} forward steps after output"
        title = f"{mode}\npoint labels: the evaluation, L = layered, r/m + F = random/momentum at F"
        if len(trained_models(cfg)) > 3:
            title += "\n(labelled: layered, and each model under its own schedule and F_train)"
        ax.set_title(title, fontsize=8)
        ax.grid(True, alpha=0.3)
    return _save(fig, path, (list(legend.values()), [f"trained {k}" for k in legend], None))
