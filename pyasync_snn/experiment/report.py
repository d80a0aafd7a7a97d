"""The study's reports for people: ``results.csv`` (one row per trained model x evaluation
setting) and ``report.md`` (plain-words comparisons, one table per mode, the figures)."""
from __future__ import annotations

import csv
import io
import math
import os

from ..io.atomic import atomic_path
from ..trace import format_f, schedule_label
from .config import TRAIN_KEYS, mode_name, stop_label, stop_modes, train_defaults


def write_csv(path, rows) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        for row in rows:
            writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})


def read_csv(path) -> list:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _pm(row, name, scale=1.0, digits=1, unit=""):
    m, s = row[f"{name}_mean"] * scale, row[f"{name}_std"] * scale
    if not math.isfinite(m):
        return "n/a"
    return f"{m:.{digits}f} ± {s:.{digits}f}{unit}"


def _setting(row) -> str:
    return schedule_label(row["eval_schedule"], row["eval_f"])  # F already as text in a row


def _trained(row) -> str:
    return schedule_label(row["train_schedule"], row["f_train"])


LATENCY = ("timestep_spikes_to_output", "spikes to output / timestep", 1, 1)  # the decision latency
TABLES = {
    "full": [("accuracy", "accuracy %", 100, 1), ("first_spike_accuracy", "first-spike acc. %", 100, 1),
             ("spikes_per_sample", "spikes / sample", 1, 0), ("sops_per_sample", "SOPs / sample (k)", 1e-3, 1),
             ("checks_per_sample", "checks / sample (k)", 1e-3, 1), LATENCY,
             ("timestep_spikes_to_correct", "spikes to correct / timestep", 1, 1),
             ("steps_to_first_output", "steps to 1st output", 1, 1), ("energy_nj", "energy nJ", 1, 1)],
    "stop": [("accuracy", "accuracy %", 100, 1), ("spikes_per_sample", "spikes / sample", 1, 0),
             ("sops_per_sample", "SOPs / sample (k)", 1e-3, 1), ("steps_per_sample", "steps / sample", 1, 1),
             LATENCY, ("timestep_output_fraction", "timesteps with output %", 100, 1),
             ("energy_nj", "energy nJ", 1, 1)],
}


def mode_title(stop) -> str:
    if stop is None:
        return "Full runs (on spiking done: every timestep runs until its queue is empty)"
    if stop == 0:
        return "On output (each timestep stops in the step of its first output spike)"
    return f"{stop} forward steps after output (each timestep stops {stop} steps after its first output spike)"


def table(rows, columns) -> str:
    head = "| trained with | evaluated with | " + " | ".join(c[1] for c in columns) + " |"
    sep = "|---|---|" + "---:|" * len(columns)
    lines = [head, sep]
    for row in rows:
        cells = [_pm(row, name, scale, digits) for name, _, scale, digits in columns]
        lines.append(f"| {_trained(row)} | {_setting(row)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _find(rows, train_schedule, f_train, eval_schedule, eval_f, stop="off"):
    """The row of one trained model (``f_train`` as in the CSV: ``"na"``, ``"8"``, ``"unbounded"``)
    under one evaluation setting and mode."""
    for row in rows:
        if (row["train_schedule"], row["f_train"], row["eval_schedule"], row["stop_on_output"]) == \
                (train_schedule, f_train, eval_schedule, stop) \
                and (eval_schedule == "layered" or row["eval_f"] == eval_f):
            return row
    return None


def comparisons(rows, cfg) -> list:
    """Plain-words sentences: each asynchronously trained model (training schedule, F_train)
    against the layered one, evaluated under the same setting (its own training schedule at its
    F_train, momentum at F_train, then layered), in every evaluation mode."""
    out = []
    if "layered" not in cfg["train_schedules"]:
        return out
    for schedule in [s for s in cfg["train_schedules"] if s != "layered"]:
        for f in map(format_f, cfg["f_train"]):
            for es in dict.fromkeys([schedule, "momentum", "layered"]):
                if es not in cfg["eval_schedules"]:
                    continue
                modes, setting = [], None
                for stop in stop_modes(cfg):
                    key = stop_label(stop)
                    a, b = _find(rows, schedule, f, es, f, key), _find(rows, "layered", "na", es, f, key)
                    if a is not None and b is not None:
                        modes.append(f"{mode_name(stop)}: " + describe_change(a, b))
                        setting = _setting(a)
                if modes:  # one bullet per setting, one sub-bullet per mode
                    out.append(f"{schedule} F={f} training vs layered training, both evaluated under "
                               f"{setting}:" + "".join(f"\n  - {m}" for m in modes))
    return out


def describe_change(a, b) -> str:
    """``"-48% spikes, 1.9x faster decision (4.1 vs 7.8 spikes to output per timestep), +0.4 pt
    accuracy, -30% energy"`` for row ``a`` relative to row ``b`` (means). The decision latency is
    the per-timestep one: network spikes in a timestep up to its first output spike."""
    parts = []

    def rel(name, word):
        x, y = a[f"{name}_mean"], b[f"{name}_mean"]
        if y > 0 and math.isfinite(x):
            parts.append(f"{(x / y - 1) * 100:+.0f}% {word}")

    rel("spikes_per_sample", "spikes")
    x, y = a["timestep_spikes_to_output_mean"], b["timestep_spikes_to_output_mean"]
    if math.isfinite(x) and math.isfinite(y) and x > 0 and y > 0:
        r = y / x
        parts.append(f"{r:.2f}x faster decision" if r >= 1 else f"{1 / r:.2f}x slower decision")
        parts[-1] += f" ({x:.1f} vs {y:.1f} spikes to output per timestep)"
    parts.append(f"{(a['accuracy_mean'] - b['accuracy_mean']) * 100:+.1f} pt accuracy")
    rel("energy_nj", "energy")
    return ", ".join(parts)


# the training settings that report.md's "models:" line always states (the other TRAIN_KEYS
# only when they differ from TrainConfig's defaults)
REPORTED_KEYS = ("hidden", "epochs", "batch_size", "lr", "loss", "surrogate", "surrogate_param",
                 "gradient", "detach_reset")


def models_line(cfg) -> str:
    """The report's description of the trained models: architecture, budget, training settings,
    schedules and F_train values, seeds."""
    hidden = "-".join(map(str, cfg["hidden"])) or "none"
    surrogate = cfg["surrogate"] + (f" (parameter {cfg['surrogate_param']:g})"
                                    if cfg.get("surrogate_param") is not None else " (default parameter)")
    parts = [f"hidden {hidden}, {cfg['epochs']} epochs, batch {cfg['batch_size']}, lr {cfg['lr']:g}, "
             f"loss {cfg['loss']}, surrogate {surrogate}"]
    if "gradient" in cfg:
        parts.append(f"gradient {cfg['gradient']}")
    if "detach_reset" in cfg:
        parts.append("reset detached" if cfg["detach_reset"] else "reset not detached")
    default = train_defaults()
    others = [f"{key} {cfg[key]}" for key in TRAIN_KEYS if key not in REPORTED_KEYS and cfg[key] != default[key]]
    async_ = [s for s in cfg["train_schedules"] if s != "layered"]
    schedules = ", ".join(cfg["train_schedules"])
    if async_:
        schedules += f" ({', '.join(async_)} at F_train in {{{', '.join(format_f(f) for f in cfg['f_train'])}}})"
    return (", ".join(parts + others) + f"; training schedules {schedules}; seeds 0..{cfg['seeds'] - 1}")


def write_report(path, rows, cfg, figures, train_path, test_path, out_dir) -> None:
    rel = lambda p: os.path.relpath(p, out_dir)  # noqa: E731
    buf = io.StringIO()
    w = lambda s="": buf.write(s + "\n")  # noqa: E731
    w("# Asynchrony study")
    w()
    w(f"- training data: `{os.path.abspath(train_path)}`; test data: `{os.path.abspath(test_path)}`")
    w(f"- models: {models_line(cfg)}")
    w(f"- evaluation: {', '.join(cfg['eval_schedules'])} x F in "
      f"{{{', '.join(format_f(f) for f in cfg['eval_group_sizes'])}}}; modes: "
      + ", ".join(mode_name(stop) for stop in stop_modes(cfg))
      + " (the stops are timestep-scoped: each timestep ends that many forward steps after its own "
        "first output spike, the next starts normally)")
    p = cfg["energy"]
    w(f"- energy profile (pJ): SOP {p['sop_pj']:g}, check {p['check_pj']:g}, spike {p['spike_pj']:g} "
      "(see docs/study.md for sources and assumptions)")
    w("- values are mean ± std over seeds; the decision latency is the published per-timestep one: "
      "network spikes fired in a timestep up to (and including) the step of its first output spike, "
      "averaged over the (sample, timestep) pairs with an output spike; steps to 1st output count "
      "forward steps from the start of the sample, averaged over samples with an output spike")
    w()
    w("## In plain words")
    w()
    for sentence in comparisons(rows, cfg) or ["(no comparison: the layered training schedule is not in the grid)"]:
        w(f"- {sentence}")
    w()
    for stop in stop_modes(cfg):
        w(f"## {mode_title(stop)}")
        w()
        sel = [r for r in rows if r["stop_on_output"] == stop_label(stop)]
        w(table(sel, TABLES["full" if stop is None else "stop"]))
        w()
    w("## Energy breakdown (full runs, nJ per inference)")
    w()
    w(table([r for r in rows if r["stop_on_output"] == "off"],
            [("energy_sops_nj", "SOPs", 1, 1), ("energy_checks_nj", "checks", 1, 1),
             ("energy_spikes_nj", "spikes", 1, 1), ("energy_nj", "total", 1, 1)]))
    w()
    w("## Figures")
    w()
    for name, fig in figures.items():
        w(f"![{name}]({rel(fig)})")
        w()
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as fh:
        fh.write(buf.getvalue())
