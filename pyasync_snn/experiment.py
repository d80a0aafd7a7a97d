"""The asynchrony study: layered vs unlayered training, evaluated over a schedule x F grid.

``run_experiment(out_dir, ...)`` is the whole study (``docs/study.md`` is the user-level page):

1. **Train** one model per training schedule (``layered`` once; ``random`` and ``momentum`` at
   every F of ``f_train``) and seed, with identical architecture and budget (:class:`TrainConfig`;
   the study's configuration may set any of its fields in :data:`TRAIN_KEYS`, the others default
   to ``TrainConfig``'s). Each model is a training checkpoint
   ``DIR/models/<schedule>-F<F>-seed<S>.h5``; a complete one (all epochs done, same configuration,
   same training data) is reused, a partial one is resumed.
2. **Evaluate** every model under every evaluation setting: ``layered`` (F irrelevant, run once)
   and ``random``/``momentum`` x every F of ``eval_group_sizes``, each in the published work's
   three modes: the full run ("on spiking done"), every timestep stopped at its first output
   spike ("on output": timestep-scoped stop-on-output, delay 0) and ``stop_delay`` forward steps
   after it ("N forward steps after output"). The simulation seed is the model's seed. Each result is
   one small HDF5 file in ``DIR/evals/`` (per-sample metrics, neuron checks), written atomically
   and reused when it belongs to the same model file (SHA-256), test data and setting.
3. **Collect**: ``results.h5`` (all per-sample arrays), ``results.csv`` (mean and std over
   seeds per trained model (training schedule, F_train) x evaluation setting), the figures and ``report.md``.

Jobs are pure functions of their inputs (a job description and the files it names), so they run
through any :class:`Executor`: in-process (``workers=1``), a local process pool (default,
``spawn`` context, Numba threads per worker so that the total stays within the cores), or a Dask
cluster (``dask_scheduler``; the optional dependency ``distributed``; workers must see ``DIR``
and the data files at the same paths). Results are identical whichever executor ran them.
Interrupting the study (Ctrl-C) leaves only complete files; a rerun continues.
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
import time
from dataclasses import dataclass, fields

import h5py
import numpy as np

from .energy import count_checks, energy_breakdown, validate_profile
from .errors import UserError
from .io.atomic import atomic_path, sha256
from .io.dataset import open_dataset
from .io.h5common import atomic_h5, write_array
from .trace import SCHEDULE_NAMES, Metrics, format_f, schedule_label
from .training import TrainConfig

EVAL_FORMAT = "pyasync-snn/study-evaluation"
RESULTS_FORMAT = "pyasync-snn/study-results"
METRIC_ARRAYS = tuple(f.name for f in fields(Metrics))
STOP_SCOPE = "timestep"  # the study's early stops end each timestep, as in the published work

# The TrainConfig fields that the study sets per model itself; every other field is a study
# configuration key (TRAIN_KEYS) defaulting to TrainConfig's own default, passed through as is.
STUDY_SET_FIELDS = ("schedule", "group_size", "seed", "threads", "eval_schedule", "eval_group_size")
TRAIN_KEYS = tuple(f.name for f in fields(TrainConfig) if f.name not in STUDY_SET_FIELDS)
# F is irrelevant to layered training; its models record TrainConfig's default group size (so
# their checkpoints do not depend on the f_train list)
LAYERED_GROUP_SIZE = TrainConfig().group_size


def _train_defaults() -> dict:
    base = TrainConfig()
    return {k: list(v) if isinstance(v, tuple) else v for k, v in
            ((k, getattr(base, k)) for k in TRAIN_KEYS)}


DEFAULTS = {
    **_train_defaults(),   # hidden, batch_size, lr, loss, surrogate, gradient, ...: TrainConfig's
    "epochs": 20,          # the study's training budget (TrainConfig's default is 10)
    "f_train": [1, 2, 8],  # random and momentum models are trained at each (0 = unbounded)
    "train_schedules": ["layered", "random", "momentum"],
    "eval_schedules": ["layered", "random", "momentum"],
    "eval_group_sizes": [1, 2, 4, 8, 16, 64, 0],
    "stop_delay": 3,
    "seeds": 3,
    "energy": None,
    "workers": None,
    "eval_batch_size": 256,
    "max_train_samples": None,
    "max_test_samples": None,
}
QUICK = {"epochs": 6, "hidden": [64, 64], "f_train": [1, 8]}
SCHEDULE_COLUMNS = ("train_schedule", "f_train", "eval_schedule", "eval_f", "stop")


# ---------------------------------------------------------------- configuration

def load_config(config_path=None, quick=False, seeds=None, overrides=None) -> dict:
    """The study configuration: :data:`DEFAULTS`, then :data:`QUICK` if ``quick``, then the JSON
    object in ``config_path``, then ``seeds`` and ``overrides``. Validated (unknown keys and bad
    values raise :class:`UserError`)."""
    cfg = dict(DEFAULTS)
    if quick:
        cfg.update(QUICK)
    if config_path is not None:
        path = os.fspath(config_path)
        try:
            with open(path, encoding="utf-8") as fh:
                user = json.load(fh)
        except OSError as e:
            raise UserError(f"{path}: cannot read the configuration ({e.strerror or e})") from None
        except ValueError as e:
            raise UserError(f"{path}: not valid JSON ({e})") from None
        if not isinstance(user, dict):
            raise UserError(f"{path}: the configuration must be a JSON object")
        _check_keys(user, path)
        cfg.update(user)
    if seeds is not None:
        cfg["seeds"] = seeds
    if overrides:
        _check_keys(overrides, "overrides")
        cfg.update(overrides)
    return validate_config(cfg)


def _check_keys(values, where):
    unknown = sorted(set(values) - set(DEFAULTS))
    if unknown:
        raise UserError(f"{where}: unknown configuration key(s) {', '.join(unknown)}; "
                        f"known: {', '.join(DEFAULTS)}")


def _int(name, value, low):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise UserError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)


def validate_config(cfg) -> dict:
    out = dict(cfg)
    out["seeds"] = _int("seeds", cfg["seeds"], 1)
    out["f_train"] = _f_train(cfg["f_train"])
    out["stop_delay"] = _int("stop_delay", cfg["stop_delay"], 0)
    out["eval_batch_size"] = _int("eval_batch_size", cfg["eval_batch_size"], 1)
    for key in ("workers", "max_train_samples", "max_test_samples"):
        if cfg[key] is not None:
            out[key] = _int(key, cfg[key], 1)
    for key in ("train_schedules", "eval_schedules"):
        value = cfg[key]
        if not isinstance(value, list) or not value or any(v not in SCHEDULE_NAMES for v in value):
            raise UserError(f"{key} must be a non-empty list of {', '.join(SCHEDULE_NAMES)}, got {value!r}")
        out[key] = list(dict.fromkeys(value))
    sizes = cfg["eval_group_sizes"]
    if not isinstance(sizes, list) or not sizes:
        raise UserError(f"eval_group_sizes must be a non-empty list of integers >= 0 (0 = unbounded), got {sizes!r}")
    out["eval_group_sizes"] = list(dict.fromkeys(_int("eval_group_sizes entry", f, 0) for f in sizes))
    out["energy"] = validate_profile(cfg["energy"])
    base = _train_config(out, "layered", None, 0)  # validates hidden, epochs, lr, ... via TrainConfig
    for key in TRAIN_KEYS:  # normalised (hidden as a list, numbers as TrainConfig keeps them)
        value = getattr(base, key)
        out[key] = list(value) if isinstance(value, tuple) else value
    return out


def _f_train(value) -> list:
    """``f_train``: a list of F values (or one integer, as older configurations have it)."""
    items = value if isinstance(value, list) else [value]
    bad = not items or any(isinstance(f, bool) or not isinstance(f, (int, np.integer)) or f < 0 for f in items)
    if bad:
        raise UserError("f_train must be a non-empty list of integers >= 0 (0 = unbounded) "
                        f"or one such integer, got {value!r}")
    return list(dict.fromkeys(int(f) for f in items))


def _train_config(cfg, schedule, f_train, seed, threads=None):
    """The :class:`TrainConfig` of one model: the study's :data:`TRAIN_KEYS` values, the schedule,
    F (``f_train``; ignored for ``layered``) and seed."""
    values = {key: cfg[key] for key in TRAIN_KEYS if key in cfg}
    group_size = LAYERED_GROUP_SIZE if schedule == "layered" else f_train
    try:
        return TrainConfig(**values, schedule=schedule, group_size=group_size, seed=seed, threads=threads)
    except TypeError as e:
        raise UserError(f"invalid training configuration: {e}") from None


def trained_models(cfg) -> list:
    """``(schedule, F_train, seed)`` of every model, in a fixed order; ``F_train`` is ``None``
    for ``layered`` (trained once per seed)."""
    out = []
    for schedule in cfg["train_schedules"]:
        for f in ([None] if schedule == "layered" else cfg["f_train"]):
            out.extend((schedule, f, seed) for seed in range(cfg["seeds"]))
    return out


fmt_f = format_f  # F as written in results.csv and the report


# ---------------------------------------------------------------- jobs

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
    stop: int              # -1: off, else the delay of a timestep-scoped stop
    seed: int
    out_path: str
    batch_size: int = 256
    threads: int | None = None
    max_samples: int | None = None

    @property
    def label(self):
        return os.path.basename(self.out_path)


def model_name(schedule, f_train, seed) -> str:
    return f"{schedule}-F{fmt_f(f_train) if schedule != 'layered' else 'na'}-seed{seed}"


def f_train_label(schedule, f_train) -> str:
    """``f_train`` as in ``results.csv``: ``na`` for layered training, else :func:`fmt_f`."""
    return "na" if schedule == "layered" else fmt_f(f_train)


trained_label = schedule_label  # "layered", "momentum F=8", "random F=unbounded"


def eval_name(schedule, group_size, stop) -> str:
    f = "na" if schedule == "layered" else fmt_f(group_size)
    return f"{schedule}-F{f}-" + ("full" if stop < 0 else f"tstop{stop}")


def stop_modes(cfg) -> list:
    """The evaluation modes as stop delays: ``-1`` full run, ``0`` on output, ``stop_delay``."""
    return list(dict.fromkeys((-1, 0, cfg["stop_delay"])))


def mode_name(stop) -> str:
    """The published work's name of an evaluation mode (``stop``: -1 or the delay)."""
    if stop < 0:
        return "full run (on spiking done)"
    return "on output" if stop == 0 else f"{stop} forward steps after output"


def eval_settings(cfg) -> list:
    """``(schedule, F, stop)`` of every evaluation: layered once, the others x every F; each
    in every mode of :func:`stop_modes` (``stop = -1``: full run; else a timestep-scoped stop)."""
    out = []
    for stop in stop_modes(cfg):
        for schedule in cfg["eval_schedules"]:
            for f in ([0] if schedule == "layered" else cfg["eval_group_sizes"]):
                out.append((schedule, f, stop))
    return out


def _subset(data, limit):
    from .training import take_samples
    n = len(data) if limit is None else min(limit, len(data))
    return take_samples(data, np.arange(n)), n


def run_train_job(job: TrainJob) -> str:
    """Train (or resume, or reuse) one model; returns its path. Pure in its inputs."""
    from .training import train
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
        train(train_path, None, config, job.model_path, resume=(state == "partial"))
    finally:
        if train_path != job.train_path and os.path.exists(train_path):
            os.remove(train_path)
    return job.model_path


def _limited_copy(path, n, out):
    from .io import write_dataset
    with open_dataset(path) as data:
        batch, _ = _subset(data, n)
        write_dataset(out, batch, data.n_classes)
    return out


def model_state(model_path, config, train_path, max_samples=None) -> str:
    """``"complete"`` (reuse), ``"partial"`` (resume) or ``"missing"`` (train from scratch;
    also for a checkpoint of another configuration or data, or an unreadable one)."""
    from .training import read_checkpoint
    if not os.path.exists(model_path):
        return "missing"
    try:
        ck = read_checkpoint(model_path)
        with open_dataset(train_path) as data:
            n_train = len(data) if max_samples is None else min(max_samples, len(data))
    except UserError:
        return "missing"
    if config.differences(ck.config) or ck.train_samples != n_train or ck.epochs_completed > config.epochs:
        return "missing"
    return "complete" if ck.epochs_completed == config.epochs else "partial"


def run_eval_job(job: EvalJob) -> str:
    """Evaluate one model under one setting; write ``job.out_path`` (reused if it already holds
    this very job's result). Returns the path."""
    if eval_file_valid(job):
        return job.out_path
    from .io import read_model
    from .simulate import simulate
    from .training import loss_from_trace
    network = read_model(job.model_path)
    extra = {} if job.stop < 0 else {"stop_on_output": job.stop, "stop_scope": STOP_SCOPE}
    metrics, checks, losses = [], [], []
    with open_dataset(job.test_path) as data:
        source, n = _subset(data, job.max_samples)
        for start in range(0, n, job.batch_size):
            batch = source.take(start, min(n, start + job.batch_size))
            trace = simulate(network, batch, job.schedule, job.group_size, seed=job.seed,
                             threads=job.threads, **extra)
            metrics.append(trace.metrics)
            checks.append(count_checks(trace, batch))
            # a stopped run's dropped spikes are not in the trace: its loss is not defined
            losses.append(loss_from_trace(network, trace, batch.labels) if job.stop < 0
                          else np.full(len(batch), np.nan))
    m = Metrics.concatenate(metrics)
    with atomic_h5(job.out_path, EVAL_FORMAT) as f:
        f.attrs.update(_job_attrs(job))
        for name in METRIC_ARRAYS:
            write_array(f, name, getattr(m, name))
        write_array(f, "checks", np.concatenate(checks))
        write_array(f, "loss", np.concatenate(losses))
    return job.out_path


def _job_attrs(job: EvalJob) -> dict:
    return {"model_sha256": job.model_sha256, "test_data": os.path.abspath(job.test_path),
            "schedule": job.schedule, "group_size": job.group_size, "stop": job.stop,
            "stop_scope": STOP_SCOPE if job.stop >= 0 else "none", "seed": job.seed,
            "max_samples": -1 if job.max_samples is None else job.max_samples}


def eval_file_valid(job: EvalJob) -> bool:
    if not os.path.exists(job.out_path):
        return False
    try:
        with h5py.File(job.out_path, "r") as f:
            if f.attrs.get("format") != EVAL_FORMAT:
                return False
            for key, value in _job_attrs(job).items():
                found = f.attrs.get(key)
                if isinstance(found, bytes):
                    found = found.decode()
                if isinstance(found, np.generic):
                    found = found.item()
                if found != value:
                    return False
            return all(name in f for name in (*METRIC_ARRAYS, "checks", "loss"))
    except (OSError, KeyError):
        return False


# ---------------------------------------------------------------- executors

class Executor:
    """Runs independent jobs: ``map(fn, jobs)`` yields ``(job, result)`` as they finish.
    ``fn`` must be a module-level function (it is pickled for process and Dask workers)."""

    threads_per_job = None

    def map(self, fn, jobs):
        raise NotImplementedError

    def close(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class SerialExecutor(Executor):
    """In this process, in order."""

    def __init__(self, threads=None):
        self.threads_per_job = threads

    def map(self, fn, jobs):
        for job in jobs:
            yield job, fn(job)


class LocalExecutor(Executor):
    """A process pool (``spawn`` context: no forked Numba/HDF5 state). ``workers`` processes of
    ``threads_per_job = cores // workers`` Numba threads each."""

    def __init__(self, workers=None):
        import concurrent.futures
        import multiprocessing
        cores = os.cpu_count() or 1
        self.workers = max(1, min(workers or cores, cores))
        self.threads_per_job = max(1, cores // self.workers)
        self._pool = concurrent.futures.ProcessPoolExecutor(
            self.workers, mp_context=multiprocessing.get_context("spawn"))

    def map(self, fn, jobs):
        import concurrent.futures
        futures = {self._pool.submit(fn, job): job for job in jobs}
        try:
            for fut in concurrent.futures.as_completed(futures):
                yield futures[fut], fut.result()
        except BaseException:
            for fut in futures:
                fut.cancel()
            raise

    def close(self):
        self._pool.shutdown(wait=True, cancel_futures=True)


class DaskExecutor(Executor):
    """Jobs on an existing Dask cluster (``address``) or a given ``distributed.Client``."""

    def __init__(self, address=None, client=None, threads=1):
        try:
            import distributed
        except ImportError:
            raise UserError("--dask-scheduler needs the optional dependency 'distributed' "
                            "(pip install distributed)") from None
        self._own = client is None
        try:
            self.client = client if client is not None else distributed.Client(address, timeout="20s")
        except (OSError, TimeoutError) as e:
            raise UserError(f"cannot connect to the Dask scheduler {address!r} ({e})") from None
        self.threads_per_job = threads

    def map(self, fn, jobs):
        import distributed
        jobs = list(jobs)
        futures = [self.client.submit(fn, job, pure=False) for job in jobs]
        index = {f.key: j for f, j in zip(futures, jobs)}
        try:
            for fut in distributed.as_completed(futures):
                yield index[fut.key], fut.result()
        except BaseException:
            self.client.cancel(futures)
            raise

    def close(self):
        if self._own:
            self.client.close()


def make_executor(workers=None, dask_scheduler=None) -> Executor:
    if dask_scheduler is not None:
        return DaskExecutor(dask_scheduler)
    if workers == 1:
        return SerialExecutor()
    return LocalExecutor(workers)


# ---------------------------------------------------------------- the study

def plan(out_dir, cfg, train_path) -> list:
    """The training jobs, in the order of :func:`trained_models`."""
    jobs = []
    for schedule, f_train, seed in trained_models(cfg):
        config = _train_config(cfg, schedule, f_train, seed)
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
                                cfg["eval_batch_size"], max_samples=cfg["max_test_samples"]))
    return jobs


def _with_threads(job, threads):
    from dataclasses import replace
    return replace(job, threads=threads)


def run_study(out_dir, train_path, test_path, cfg, executor: Executor, progress=None) -> dict:
    """Train and evaluate the grid through ``executor``; collect the outputs. Returns a dict
    with ``report``, ``csv``, ``h5`` paths and the counts of jobs run / reused."""
    out_dir = os.path.abspath(os.fspath(out_dir))
    for sub in ("", "models", "evals", "figures"):
        os.makedirs(os.path.join(out_dir, sub), exist_ok=True)
    say = progress or (lambda msg: None)
    t0 = time.perf_counter()
    train = plan(out_dir, cfg, train_path)
    todo = [j for j in train if model_state(j.model_path, TrainConfig.from_json(j.config_json),
                                            j.train_path, j.max_samples) != "complete"]
    say(f"training: {len(todo)} of {len(train)} models to train")
    for i, (job, _) in enumerate(executor.map(run_train_job, [_with_threads(j, executor.threads_per_job) for j in todo])):
        say(f"  trained {job.label} ({i + 1}/{len(todo)}, {time.perf_counter() - t0:.0f} s)")
    models = [(schedule, f_train, seed, job.model_path)
              for (schedule, f_train, seed), job in zip(trained_models(cfg), train)]
    evals = eval_jobs(out_dir, cfg, test_path, models)
    todo_e = [j for j in evals if not eval_file_valid(j)]
    say(f"evaluation: {len(todo_e)} of {len(evals)} evaluations to run")
    for i, (job, _) in enumerate(executor.map(run_eval_job, [_with_threads(j, executor.threads_per_job) for j in todo_e])):
        if (i + 1) % 10 == 0 or i + 1 == len(todo_e):
            say(f"  evaluated {i + 1}/{len(todo_e)} ({time.perf_counter() - t0:.0f} s)")
    results = collect(out_dir, cfg, evals, models, train_path, test_path)
    results.update(trained=len(todo), evaluated=len(todo_e), seconds=time.perf_counter() - t0)
    return results


def run_experiment(out_dir, data="spatial", test=None, quick=False, seeds=None, config_path=None,
                   dask_scheduler=None, progress=None, workers=None, overrides=None) -> str:
    """The CLI's ``experiment`` command. ``data``: a registered name or a dataset file
    (``test``: the test file, needed for a file); ``quick``: the small showcase configuration;
    ``seeds``: number of seeds (default 3, or the configuration's); ``config_path``: JSON
    overrides; ``dask_scheduler``: run on that Dask cluster instead of local processes;
    ``progress(message)``: called with one-line progress messages. Returns the path of
    ``report.md``. User errors raise :class:`UserError`."""
    from .datasets.registry import resolve_train_test
    cfg = load_config(config_path, quick=quick, seeds=seeds, overrides=overrides)
    if workers is not None:
        cfg["workers"] = _int("workers", workers, 1)
    train_path, test_path = resolve_train_test(data, test)
    if test_path is None:
        raise UserError(f"{data}: a dataset file needs --test FILE (the study evaluates on a test set)")
    out_dir = os.fspath(out_dir)
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise UserError(f"{out_dir}: exists and is not a directory")
    try:
        os.makedirs(out_dir, exist_ok=True)
    except OSError as e:
        raise UserError(f"{out_dir}: cannot create the output directory ({e.strerror or e})") from None
    with make_executor(cfg["workers"], dask_scheduler) as executor:
        results = run_study(out_dir, train_path, test_path, cfg, executor, progress)
    return results["report"]


# ---------------------------------------------------------------- collecting

def _read_eval(path) -> dict:
    with h5py.File(path, "r") as f:
        return {name: f[name][()] for name in (*METRIC_ARRAYS, "checks", "loss")}


def per_sample_summary(arrays, profile) -> dict:
    """The summary numbers of one evaluation: :meth:`Metrics.summary` (means over samples;
    latencies over the samples, or (sample, timestep) pairs, that have one), plus checks,
    forward steps and loss per sample and the energy estimate."""
    m = Metrics(**{name: arrays[name] for name in METRIC_ARRAYS}).summary()
    spikes = arrays["spikes_per_layer"].sum(axis=1)
    e = energy_breakdown(arrays["sops"], arrays["checks"], spikes, profile)
    return {
        **{key: m[key] for key in METRICS_SUMMARY_KEYS},
        "checks_per_sample": float(arrays["checks"].mean()),
        "steps_per_sample": float(arrays["steps_per_timestep"].sum(axis=1).mean()),
        "loss": float(arrays["loss"].mean()),
        "energy_nj": float(e["total"].mean() / 1000),
        "energy_sops_nj": float(e["sops"].mean() / 1000),
        "energy_checks_nj": float(e["checks"].mean() / 1000),
        "energy_spikes_nj": float(e["spikes"].mean() / 1000),
    }


METRICS_SUMMARY_KEYS = ("accuracy", "first_spike_accuracy", "spikes_per_sample", "sops_per_sample",
                        "steps_to_first_output", "spikes_to_first_output", "output_fraction",
                        "timestep_spikes_to_output", "timestep_spikes_to_correct",
                        "timestep_output_fraction", "timestep_correct_fraction")
SUMMARY_KEYS = METRICS_SUMMARY_KEYS + ("checks_per_sample", "steps_per_sample", "loss", "energy_nj",
                                       "energy_sops_nj", "energy_checks_nj", "energy_spikes_nj")


def collect(out_dir, cfg, evals, models, train_path, test_path) -> dict:
    """Write ``results.h5``, ``results.csv``, the figures and ``report.md`` from the eval files."""
    profile = cfg["energy"]
    by_model = {path: (schedule, f_train, seed) for schedule, f_train, seed, path in models}
    per_seed = {}   # (train_schedule, F_train, eval schedule, F, stop) -> list of summaries over seeds
    raw = {}
    h5_path = os.path.join(out_dir, "results.h5")
    with atomic_h5(h5_path, RESULTS_FORMAT) as f:
        f.attrs["config"] = json.dumps(cfg, sort_keys=True)
        f.attrs["train_data"] = os.path.abspath(train_path)
        f.attrs["test_data"] = os.path.abspath(test_path)
        for job in evals:
            schedule, f_train, seed = by_model[job.model_path]
            arrays = _read_eval(job.out_path)
            g = f.create_group(f"{model_name(schedule, f_train, seed)}/"
                               f"{eval_name(job.schedule, job.group_size, job.stop)}")
            g.attrs.update({"train_schedule": schedule, "f_train": f_train_label(schedule, f_train), "seed": seed,
                            "eval_schedule": job.schedule, "eval_f": job.group_size, "stop": job.stop,
                            "model_sha256": job.model_sha256})
            for name, value in arrays.items():
                write_array(g, name, value)
            key = (schedule, f_train, job.schedule, job.group_size, job.stop)
            per_seed.setdefault(key, []).append(per_sample_summary(arrays, profile))
            raw.setdefault(key, []).append(arrays)
    rows = aggregate(per_seed, cfg)
    csv_path = os.path.join(out_dir, "results.csv")
    write_csv(csv_path, rows)
    from .plots.study import plot_study
    figures = plot_study(rows, raw, cfg, os.path.join(out_dir, "figures"))
    report = os.path.join(out_dir, "report.md")
    write_report(report, rows, cfg, figures, train_path, test_path, out_dir)
    return {"report": report, "csv": csv_path, "h5": h5_path, "rows": rows}


def _f_order(f):
    """Sort key of an F: ``None`` (not applicable) first, then ascending, unbounded (0) last."""
    return -1 if f is None else math.inf if f == 0 else f


def aggregate(per_seed, cfg) -> list:
    """One row per (training schedule, F_train, evaluation setting): mean and std over seeds."""
    rows = []
    order = {s: i for i, s in enumerate(SCHEDULE_NAMES)}
    for key in sorted(per_seed, key=lambda k: (order[k[0]], _f_order(k[1]), k[4], order[k[2]],
                                               _f_order(k[3]))):
        schedule, f_train, es, f, stop = key
        row = {"train_schedule": schedule, "f_train": f_train_label(schedule, f_train),
               "eval_schedule": es, "eval_f": "na" if es == "layered" else fmt_f(f),
               "stop": "off" if stop < 0 else str(stop), "seeds": len(per_seed[key])}
        for name in SUMMARY_KEYS:
            values = np.array([s[name] for s in per_seed[key]], dtype=np.float64)
            ok = values[np.isfinite(values)]
            row[f"{name}_mean"] = float(ok.mean()) if len(ok) else float("nan")
            row[f"{name}_std"] = float(ok.std(ddof=1)) if len(ok) > 1 else 0.0
        rows.append(row)
    return rows


def write_csv(path, rows) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
            writer.writeheader()
            for row in rows:
                writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})


def read_csv(path) -> list:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


# ---------------------------------------------------------------- report

def _pm(row, name, scale=1.0, digits=1, unit=""):
    m, s = row[f"{name}_mean"] * scale, row[f"{name}_std"] * scale
    if not math.isfinite(m):
        return "n/a"
    return f"{m:.{digits}f} ± {s:.{digits}f}{unit}"


def _setting(row) -> str:
    if row["eval_schedule"] == "layered":
        return "layered"
    return f"{row['eval_schedule']} F={row['eval_f']}"


def _trained(row) -> str:
    return "layered" if row["train_schedule"] == "layered" else f"{row['train_schedule']} F={row['f_train']}"


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
    if stop < 0:
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
        if (row["train_schedule"], row["f_train"], row["eval_schedule"], row["stop"]) == \
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
        for f in map(fmt_f, cfg["f_train"]):
            for es in dict.fromkeys([schedule, "momentum", "layered"]):
                if es not in cfg["eval_schedules"]:
                    continue
                modes, setting = [], None
                for stop in stop_modes(cfg):
                    key = "off" if stop < 0 else str(stop)
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
    default = _train_defaults()
    others = [f"{key} {cfg[key]}" for key in TRAIN_KEYS if key not in REPORTED_KEYS and cfg[key] != default[key]]
    async_ = [s for s in cfg["train_schedules"] if s != "layered"]
    schedules = ", ".join(cfg["train_schedules"])
    if async_:
        schedules += f" ({', '.join(async_)} at F_train in {{{', '.join(fmt_f(f) for f in cfg['f_train'])}}})"
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
      f"{{{', '.join(fmt_f(f) for f in cfg['eval_group_sizes'])}}}; modes: "
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
        sel = [r for r in rows if r["stop"] == ("off" if stop < 0 else str(stop))]
        w(table(sel, TABLES["full" if stop < 0 else "stop"]))
        w()
    w("## Energy breakdown (full runs, nJ per inference)")
    w()
    w(table([r for r in rows if r["stop"] == "off"],
            [("energy_sops_nj", "SOPs", 1, 1), ("energy_checks_nj", "checks", 1, 1),
             ("energy_spikes_nj", "spikes", 1, 1), ("energy_nj", "total", 1, 1)]))
    w()
    w("## Figures")
    w()
    for name, fig in figures.items():
        w(f"![{name}]({rel(fig)})")
        w()
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(buf.getvalue())
