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
   spike ("on output": timestep-scoped stop-on-output, delay 0) and ``stop_on_output`` forward steps
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

The modules: :mod:`.config` (configuration and grid), :mod:`.jobs`, :mod:`.executors`,
:mod:`.collection` (results and aggregation), :mod:`.report` (``results.csv``, ``report.md``); the
result files' formats are :mod:`pyasync_snn.io.results`.
"""
from __future__ import annotations

import os
import time
from dataclasses import replace

from ..datasets.registry import resolve_train_test
from ..errors import UserError
from ..plots.study import plot_study
from ..training import TrainConfig
from ..validate import integer
from .collection import SUMMARY_KEYS, aggregate, collect
from .config import DEFAULTS, TRAIN_KEYS, eval_settings, load_config, train_config, trained_models
from .executors import DaskExecutor, Executor, LocalExecutor, SerialExecutor, make_executor
from .jobs import eval_done, eval_jobs, model_state, run_eval_job, run_train_job, train_jobs
from .report import read_csv, write_csv, write_report

__all__ = ["run_experiment", "run_study", "load_config", "DEFAULTS", "TRAIN_KEYS", "train_config", "eval_settings",
           "Executor", "SerialExecutor", "LocalExecutor", "DaskExecutor", "SUMMARY_KEYS", "aggregate", "read_csv"]


def run_study(out_dir, train_path, test_path, cfg, executor: Executor, progress=None) -> dict:
    """Train and evaluate the grid through ``executor``; collect the outputs. Returns a dict
    with ``report``, ``csv``, ``h5`` paths, the ``rows`` of ``results.csv`` and the counts of
    jobs run (``trained``, ``evaluated``)."""
    out_dir = os.path.abspath(os.fspath(out_dir))
    for sub in ("", "models", "evals", "figures"):
        os.makedirs(os.path.join(out_dir, sub), exist_ok=True)
    say = progress or (lambda msg: None)
    t0 = time.perf_counter()
    train = train_jobs(out_dir, cfg, train_path)
    todo = [j for j in train if model_state(j.model_path, TrainConfig.from_json(j.config_json),
                                            j.train_path, j.max_samples) != "complete"]
    say(f"training: {len(todo)} of {len(train)} models to train")
    for i, (job, _) in enumerate(executor.map(run_train_job, [replace(j, threads=executor.threads_per_job)
                                                              for j in todo])):
        say(f"  trained {job.label} ({i + 1}/{len(todo)}, {time.perf_counter() - t0:.0f} s)")
    models = [(schedule, f_train, seed, job.model_path)
              for (schedule, f_train, seed), job in zip(trained_models(cfg), train)]
    evals = eval_jobs(out_dir, cfg, test_path, models)
    todo_e = [j for j in evals if not eval_done(j)]
    say(f"evaluation: {len(todo_e)} of {len(evals)} evaluations to run")
    for i, (job, _) in enumerate(executor.map(run_eval_job, [replace(j, threads=executor.threads_per_job)
                                                             for j in todo_e])):
        if (i + 1) % 10 == 0 or i + 1 == len(todo_e):
            say(f"  evaluated {i + 1}/{len(todo_e)} ({time.perf_counter() - t0:.0f} s)")
    h5_path, csv_path = os.path.join(out_dir, "results.h5"), os.path.join(out_dir, "results.csv")
    rows, raw = collect(h5_path, cfg, evals, models, train_path, test_path)
    write_csv(csv_path, rows)
    figures = plot_study(rows, raw, cfg, os.path.join(out_dir, "figures"))
    report = os.path.join(out_dir, "report.md")
    write_report(report, rows, cfg, figures, train_path, test_path, out_dir)
    return {"report": report, "csv": csv_path, "h5": h5_path, "rows": rows, "trained": len(todo),
            "evaluated": len(todo_e), "seconds": time.perf_counter() - t0}


def run_experiment(out_dir, data="spatial", test=None, quick=False, seeds=None, config_path=None,
                   dask_scheduler=None, progress=None, workers=None, overrides=None) -> str:
    """The CLI's ``experiment`` command. ``data``: a registered name or a dataset file
    (``test``: the test file, needed for a file); ``quick``: the small showcase configuration;
    ``seeds``: number of seeds (default 3, or the configuration's); ``config_path``: JSON
    overrides; ``dask_scheduler``: run on that Dask cluster instead of local processes;
    ``progress(message)``: called with one-line progress messages. Returns the path of
    ``report.md``. User errors raise :class:`UserError`."""
    cfg = load_config(config_path, quick=quick, seeds=seeds, overrides=overrides)
    if workers is not None:
        cfg["workers"] = integer("workers", workers, 1)
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
