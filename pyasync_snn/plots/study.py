"""Figures of the asynchrony study (:mod:`pyasync_snn.experiment`), drawn on the Agg canvas.

Colours are the Okabe-Ito palette (colour-blind safe); every series also has its own marker or
line style. Each PNG is written atomically (temporary file, then rename).
"""
from __future__ import annotations

import math
import os

import numpy as np

from ..io.atomic import atomic_path

OKABE_ITO = {"layered": "#0072B2", "random": "#E69F00", "momentum": "#009E73", "extra": "#CC79A7"}
MARKERS = {"layered": "s", "random": "o", "momentum": "^"}
STYLES = {"layered": "-", "random": "--", "momentum": ":"}


def _figure(n_panels, width=4.2, height=3.6):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    fig = Figure(figsize=(width * n_panels, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig, [fig.add_subplot(1, n_panels, i + 1) for i in range(n_panels)]


def _save(fig, path):
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    return path


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


def _trained_label(schedule, cfg):
    return "layered" if schedule == "layered" else f"{schedule} F={'∞' if cfg['f_train'] == 0 else cfg['f_train']}"


def _versus_f(rows, cfg, metric, ylabel, path, scale=1.0, stop="off"):
    schedules = cfg["train_schedules"]
    fig, axes = _figure(len(schedules))
    sizes = cfg["eval_group_sizes"]
    for ax, ts in zip(axes, schedules):
        sel = [r for r in rows if r["train_schedule"] == ts and r["stop"] == stop]
        for es in cfg["eval_schedules"]:
            pts = [r for r in sel if r["eval_schedule"] == es]
            if not pts:
                continue
            if es == "layered":
                m = pts[0][f"{metric}_mean"] * scale
                ax.axhline(m, color=OKABE_ITO[es], ls=STYLES[es], label="layered")
                continue
            xs = np.array([_x(r["eval_f"], sizes) for r in pts])
            ys = np.array([r[f"{metric}_mean"] * scale for r in pts])
            es_ = np.array([r[f"{metric}_std"] * scale for r in pts])
            order = np.argsort(xs)
            ax.errorbar(xs[order], ys[order], yerr=es_[order], color=OKABE_ITO[es], ls=STYLES[es],
                        marker=MARKERS[es], capsize=3, label=es)
        _xaxis(ax, sizes)
        ax.set_ylabel(ylabel)
        ax.set_title(f"trained: {_trained_label(ts, cfg)}")
        ax.grid(True, alpha=0.3)
        ax.legend(title="evaluated with", fontsize=8)
    return _save(fig, path)


def plot_study(rows, raw, cfg, out_dir) -> dict:
    """Draw the study's figures into ``out_dir``; returns ``{name: path}``.

    ``rows``: the aggregated rows; ``raw``: ``{(train_schedule, eval_schedule, F, stop):
    [per-seed arrays]}`` for the latency distributions.
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
    """Histogram of the per-timestep decision latency (network spikes in a timestep up to its first
    output spike; one count per (sample, timestep) with an output spike) per training schedule,
    evaluated under momentum at F_train (or the first asynchronous evaluation schedule), full
    runs, all seeds pooled."""
    es = next((s for s in ("momentum", "random") if s in cfg["eval_schedules"]), "layered")
    f = cfg["f_train"] if es != "layered" else 0
    if f not in cfg["eval_group_sizes"] and es != "layered":
        f = cfg["eval_group_sizes"][0]
    fig, (ax,) = _figure(1, width=6)
    data = {}
    for ts in cfg["train_schedules"]:
        parts = raw.get((ts, es, f, -1), [])
        if parts:
            x = np.concatenate([p["timestep_spikes_to_output"].ravel() for p in parts])
            data[ts] = x[x >= 0]
    top = max([int(v.max()) for v in data.values() if len(v)] or [1])
    bins = np.arange(0, top + 2) - 0.5 if top <= 60 else 40
    for ts, x in data.items():
        ax.hist(x, bins=bins, histtype="step", lw=2, color=OKABE_ITO[ts], ls=STYLES[ts],
                label=f"trained {_trained_label(ts, cfg)} (mean {x.mean():.1f})" if len(x) else ts)
    ax.set_xlabel("network spikes to the first output spike, per timestep")
    ax.set_ylabel("(sample, timestep) pairs")
    fl = "" if es == "layered" else f" F={'∞' if f == 0 else f}"
    ax.set_title(f"decision latency, evaluated with {es}{fl} (full runs)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


def _accuracy_latency(rows, cfg, path):
    """Accuracy vs the mean per-timestep decision latency, one panel per stopped mode ("on output"
    and ``stop_delay`` steps after output): one point per evaluation setting, one colour per
    training schedule."""
    stops = list(dict.fromkeys((0, cfg["stop_delay"])))
    fig, axes = _figure(len(stops), width=5.5)
    key = "timestep_spikes_to_output"
    for ax, stop in zip(axes, stops):
        for ts in cfg["train_schedules"]:
            sel = [r for r in rows if r["train_schedule"] == ts and r["stop"] == str(stop)
                   and math.isfinite(r[f"{key}_mean"])]
            if not sel:
                continue
            ax.errorbar([r[f"{key}_mean"] for r in sel], [100 * r["accuracy_mean"] for r in sel],
                        xerr=[r[f"{key}_std"] for r in sel],
                        yerr=[100 * r["accuracy_std"] for r in sel], fmt=MARKERS[ts], color=OKABE_ITO[ts],
                        capsize=2, label=f"trained {_trained_label(ts, cfg)}")
            for r in sel:
                tag = "L" if r["eval_schedule"] == "layered" else f"{r['eval_schedule'][0]}{'∞' if r['eval_f'] == 'unbounded' else r['eval_f']}"
                ax.annotate(tag, (r[f"{key}_mean"], 100 * r["accuracy_mean"]), fontsize=6,
                            xytext=(2, 2), textcoords="offset points")
        ax.set_xlabel("mean network spikes to the first output spike, per timestep")
        ax.set_ylabel("accuracy (%)")
        mode = "on output" if stop == 0 else f"{stop} forward steps after output"
        ax.set_title(f"{mode}\npoint labels: L = layered, r/m = random/momentum + F", fontsize=9)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    return _save(fig, path)
