"""The study's jobs: train one model, evaluate one model under one setting.

A job is a frozen description; its function is pure in the job and the files it names, so any
executor (:mod:`.executors`) may run it, and it reuses or resumes what an earlier run left.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass

import numpy as np

from ..errors import UserError
from ..evaluation import EVAL_DTYPE, loss_from_trace
from ..io.atomic import sha256
from ..io.checkpoint import read_checkpoint
from ..io.dataset import open_dataset, write_dataset
from ..io.model import read_model
from ..io.results import METRIC_ARRAYS, evaluation_matches, write_evaluation
from ..neurobench import effective_synops, fanouts
from ..plots.curves import CheckpointCurves
from ..simulate import kernel_stop, simulate
from ..trace import Metrics
from ..training import TrainConfig, train
from .config import eval_name, eval_settings, model_name, train_config, trained_models

STOP_SCOPE = "timestep"  # the study's early stops end each timestep, as in the published work


@dataclass(frozen=True)
class TrainJob:
    config_json: str       # TrainConfig.to_json()
    train_path: str
    model_path: str
    threads: int | None = None
    max_samples: int | None = None

    @property
    def label(self):
        return os.path.basename(self.model_path)


@dataclass(frozen=True)
class EvalJob:
    model_path: str
    model_sha256: str
    test_path: str
    schedule: str
    group_size: int
    stop_on_output: int | None  # None: off, else the delay of a timestep-scoped stop
    seed: int
    out_path: str
    batch_size: int = 256
    threads: int | None = None
    max_samples: int | None = None
    input_queue: bool = False  # the study's input_queue: evaluated as trained

    @property
    def label(self):
        return os.path.basename(self.out_path)


def train_jobs(out_dir, cfg, train_path) -> list:
    """The training jobs, in the order of :func:`trained_models`."""
    jobs = []
    for schedule, f_train, seed in trained_models(cfg):
        config = train_config(cfg, schedule, f_train, seed)
        path = os.path.join(out_dir, "models", model_name(schedule, f_train, seed) + ".h5")
        jobs.append(TrainJob(config.to_json(), os.path.abspath(train_path), path,
                             max_samples=cfg["max_train_samples"]))
    return jobs


def eval_jobs(out_dir, cfg, test_path, models) -> list:
    """Every evaluation of every model (``models``: list of ``(schedule, F_train, seed, path)``)."""
    jobs = []
    for schedule, f_train, seed, path in models:
        digest = sha256(path)
        for es, f, stop in eval_settings(cfg):
            out = os.path.join(out_dir, "evals", f"{model_name(schedule, f_train, seed)}__"
                               f"{eval_name(es, f, stop)}.h5")
            jobs.append(EvalJob(path, digest, os.path.abspath(test_path), es, f, stop, seed, out,
                                cfg["eval_batch_size"], max_samples=cfg["max_test_samples"],
                                input_queue=cfg["input_queue"]))
    return jobs


def run_train_job(job: TrainJob) -> str:
    """Train (or resume, or reuse) one model, with its learning curves beside it; returns its
    path. Pure in its inputs."""
    config = TrainConfig.from_json(job.config_json)
    if job.threads is not None:
        config = TrainConfig.from_json(json.dumps({**json.loads(job.config_json), "threads": job.threads}))
    state = model_state(job.model_path, config, job.train_path, job.max_samples)
    if state == "complete":
        return job.model_path
    train_path = job.train_path
    if job.max_samples is not None:
        train_path = _limited_copy(job.train_path, job.max_samples, job.model_path + ".data.h5")
    try:
        train(train_path, None, config=config, out_path=job.model_path, resume=(state == "partial"),
              on_checkpoint=CheckpointCurves())
    finally:
        if train_path != job.train_path and os.path.exists(train_path):
            os.remove(train_path)
    return job.model_path


def _subset(data, limit):
    """The first ``limit`` samples of the open dataset ``data`` (all for None), and their number."""
    n = len(data) if limit is None else min(limit, len(data))
    return data.take(0, n), n


def _limited_copy(path, n, out):
    with open_dataset(path) as data:
        batch, _ = _subset(data, n)
        write_dataset(out, batch, data.n_classes)
    return out


def model_state(model_path, config, train_path, max_samples=None) -> str:
    """``"complete"`` (reuse), ``"partial"`` (resume) or ``"missing"`` (train from scratch;
    also for a checkpoint of another configuration or data, or an unreadable one)."""
    if not os.path.exists(model_path):
        return "missing"
    try:
        ck = read_checkpoint(model_path)
        own = TrainConfig.from_json(ck.config)
        with open_dataset(train_path) as data:
            n_train = len(data) if max_samples is None else min(max_samples, len(data))
    except UserError:
        return "missing"
    if config.differences(own) or ck.train_samples != n_train or ck.epochs_completed > config.epochs:
        return "missing"
    return "complete" if ck.epochs_completed == config.epochs else "partial"


def job_attrs(job: EvalJob) -> dict:
    """The attributes an evaluation file records of its job (and is reused by)."""
    return {"model_sha256": job.model_sha256, "test_data": os.path.abspath(job.test_path),
            "schedule": job.schedule, "group_size": job.group_size,
            "stop_on_output": kernel_stop(job.stop_on_output),
            "stop_scope": "none" if job.stop_on_output is None else STOP_SCOPE, "seed": job.seed,
            "max_samples": -1 if job.max_samples is None else job.max_samples,
            "checks": "kernel",  # files whose checks were estimated from the trace are redone
            **({"input_queue": 1} if job.input_queue else {})}  # (absent: off, as in older files)


def eval_done(job: EvalJob) -> bool:
    """Whether ``job.out_path`` already holds this very job's result."""
    return evaluation_matches(job.out_path, job_attrs(job))


def run_eval_job(job: EvalJob) -> str:
    """Evaluate one model under one setting; write ``job.out_path`` (reused if it already holds
    this very job's result). Returns the path."""
    if eval_done(job):
        return job.out_path
    network = read_model(job.model_path)
    fan = fanouts(network, EVAL_DTYPE)
    metrics, losses, effective = [], [], []
    with open_dataset(job.test_path) as data:
        source, n = _subset(data, job.max_samples)
        for start in range(0, n, job.batch_size):
            batch = source.take(start, min(n, start + job.batch_size))
            trace = simulate(network, batch, schedule=job.schedule, group_size=job.group_size, seed=job.seed,
                             threads=job.threads, input_queue=job.input_queue,
                             stop_on_output=job.stop_on_output, stop_scope=STOP_SCOPE, dtype=EVAL_DTYPE)
            metrics.append(trace.metrics)
            effective.append(effective_synops(network, trace, batch, fan))
            # a stopped run's dropped spikes are not in the trace: its loss is not defined
            losses.append(loss_from_trace(network, trace, batch.labels) if job.stop_on_output is None
                          else np.full(len(batch), np.nan))
    m = Metrics.concatenate(metrics)
    arrays = {name: getattr(m, name) for name in METRIC_ARRAYS}
    arrays["loss"] = np.concatenate(losses)
    arrays["effective_acs"], arrays["effective_macs"] = (np.concatenate(a) for a in zip(*effective))
    write_evaluation(job.out_path, job_attrs(job), arrays)
    return job.out_path
