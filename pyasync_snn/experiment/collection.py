"""Collecting the study: every evaluation file read, summarised per seed, written together to
``results.h5``, and aggregated over seeds into the rows of ``results.csv``."""
from __future__ import annotations

import json
import math
import os

import numpy as np

from ..energy import energy_breakdown
from ..evaluation import EVAL_DTYPE
from ..io.model import read_model
from ..io.results import METRIC_ARRAYS, read_evaluation, write_results
from ..neurobench import FLAT_KEYS, fanouts, flat, summarise
from ..simulate import kernel_stop
from ..trace import SCHEDULE_NAMES, Metrics
from .config import eval_name, f_train_label, model_name, stop_label

METRICS_SUMMARY_KEYS = ("accuracy", "first_spike_accuracy", "spikes_per_sample", "sops_per_sample",
                        "steps_to_first_output", "spikes_to_first_output", "output_fraction",
                        "timestep_spikes_to_output", "timestep_spikes_to_correct",
                        "timestep_output_fraction", "timestep_correct_fraction")
SUMMARY_KEYS = METRICS_SUMMARY_KEYS + ("checks_per_sample", "steps_per_sample", "loss", "energy_nj",
                                       "energy_sops_nj", "energy_checks_nj", "energy_spikes_nj") + FLAT_KEYS


# NeuroBench metrics of the model alone (and T), kept as attributes of each results.h5 group
STATIC_KEYS = ("synaptic_operations_Dense", "connection_sparsity", "footprint", "parameter_count")


def per_sample_summary(arrays, profile, network, fan=None) -> dict:
    """The summary numbers of one evaluation of ``network`` (``fan``: its
    :func:`~pyasync_snn.neurobench.fanouts`): :meth:`Metrics.summary` (means over samples;
    latencies over the samples, or (sample, timestep) pairs, that have one), plus checks,
    forward steps and loss per sample, the energy estimate and the NeuroBench metrics
    (``synaptic_operations_Effective_ACs``, ...; the effective operations NaN for an evaluation
    file written before it kept them)."""
    m = Metrics(**{name: arrays[name] for name in METRIC_ARRAYS}).summary()
    spikes = arrays["spikes_per_layer"].sum(axis=1)
    e = energy_breakdown(arrays["sops"], arrays["checks"], spikes, profile)
    neurobench = summarise(network, arrays["spikes_per_layer"], arrays.get("effective_acs"),
                           arrays.get("effective_macs"), arrays["steps_per_timestep"].shape[1], EVAL_DTYPE, fan)
    return {
        **{key: m[key] for key in METRICS_SUMMARY_KEYS},
        "checks_per_sample": float(arrays["checks"].mean()),
        "steps_per_sample": float(arrays["steps_per_timestep"].sum(axis=1).mean()),
        "loss": float(arrays["loss"].mean()),
        "energy_nj": float(e["total"].mean() / 1000),
        "energy_sops_nj": float(e["sops"].mean() / 1000),
        "energy_checks_nj": float(e["checks"].mean() / 1000),
        "energy_spikes_nj": float(e["spikes"].mean() / 1000),
        **flat(neurobench),
    }


def collect(h5_path, cfg, evals, models, train_path, test_path) -> tuple:
    """Read the evaluation files of ``evals`` (of the ``models``: ``(schedule, F_train, seed,
    path)``), write them all to ``h5_path`` (``results.h5``). Returns ``(rows, raw)``: the rows of
    :func:`aggregate`, and the per-seed arrays by ``(train_schedule, F_train, eval schedule, F, stop_on_output)``."""
    by_model = {path: (schedule, f_train, seed) for schedule, f_train, seed, path in models}
    per_seed, raw, groups, networks = {}, {}, {}, {}
    for job in evals:
        schedule, f_train, seed = by_model[job.model_path]
        if job.model_path not in networks:
            network = read_model(job.model_path)
            networks[job.model_path] = network, fanouts(network, EVAL_DTYPE)
        network, fan = networks[job.model_path]
        arrays = read_evaluation(job.out_path)
        summary = per_sample_summary(arrays, cfg["energy"], network, fan)
        name = f"{model_name(schedule, f_train, seed)}/{eval_name(job.schedule, job.group_size, job.stop_on_output)}"
        groups[name] = ({"train_schedule": schedule, "f_train": f_train_label(schedule, f_train), "seed": seed,
                         "eval_schedule": job.schedule, "eval_f": job.group_size,
                         "stop_on_output": kernel_stop(job.stop_on_output),
                         "model_sha256": job.model_sha256,
                         **{k: summary[k] for k in STATIC_KEYS}}, arrays)
        key = (schedule, f_train, job.schedule, job.group_size, job.stop_on_output)
        per_seed.setdefault(key, []).append(summary)
        raw.setdefault(key, []).append(arrays)
    write_results(h5_path, {"config": json.dumps(cfg, sort_keys=True), "train_data": os.path.abspath(train_path),
                            "test_data": os.path.abspath(test_path)}, groups)
    return aggregate(per_seed, cfg), raw


def _f_order(f):
    """Sort key of an F: ``None`` (not applicable) first, then ascending, unbounded (0) last."""
    return -1 if f is None else math.inf if f == 0 else f


def _stop_order(stop_on_output):
    """Sort key of a mode: the full run (``None``) first, then by delay."""
    return -1 if stop_on_output is None else stop_on_output


def aggregate(per_seed, cfg) -> list:
    """One row per (training schedule, F_train, evaluation setting): mean and std over seeds."""
    rows = []
    order = {s: i for i, s in enumerate(SCHEDULE_NAMES)}
    for key in sorted(per_seed, key=lambda k: (order[k[0]], _f_order(k[1]), _stop_order(k[4]), order[k[2]],
                                               _f_order(k[3]))):
        schedule, f_train, es, f, stop_on_output = key
        row = {"train_schedule": schedule, "f_train": f_train_label(schedule, f_train),
               "eval_schedule": es, "eval_f": f_train_label(es, f),
               "stop_on_output": stop_label(stop_on_output), "seeds": len(per_seed[key])}
        for name in SUMMARY_KEYS:
            values = np.array([s[name] for s in per_seed[key]], dtype=np.float64)
            ok = values[np.isfinite(values)]
            row[f"{name}_mean"] = float(ok.mean()) if len(ok) else float("nan")
            row[f"{name}_std"] = float(ok.std(ddof=1)) if len(ok) > 1 else 0.0
        rows.append(row)
    return rows
