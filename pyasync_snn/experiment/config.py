"""The study's configuration and the grid it spans: defaults, the JSON configuration file,
validation, the trained models and the evaluation settings, and their names on disk
(``docs/study.md``, "Configuration")."""
from __future__ import annotations

import json
import os
from dataclasses import fields

from ..energy import validate_profile
from ..errors import UserError
from ..trace import SCHEDULE_NAMES, format_f
from ..training import TrainConfig
from ..validate import integer

# The TrainConfig fields that the study sets per model itself; every other field is a study
# configuration key (TRAIN_KEYS) defaulting to TrainConfig's own default, passed through as is.
STUDY_SET_FIELDS = ("schedule", "group_size", "seed", "threads", "eval_schedule", "eval_group_size")
TRAIN_KEYS = tuple(f.name for f in fields(TrainConfig) if f.name not in STUDY_SET_FIELDS)
# F is irrelevant to layered training; its models record TrainConfig's default group size (so
# their checkpoints do not depend on the f_train list)
LAYERED_GROUP_SIZE = TrainConfig().group_size


def train_defaults() -> dict:
    """TrainConfig's defaults of the :data:`TRAIN_KEYS` (``hidden`` as a list)."""
    base = TrainConfig()
    return {k: list(v) if isinstance(v, tuple) else v for k, v in
            ((k, getattr(base, k)) for k in TRAIN_KEYS)}


DEFAULTS = {
    **train_defaults(),    # hidden, batch_size, lr, loss, surrogate, gradient, ...: TrainConfig's
    "epochs": 20,          # the study's training budget (TrainConfig's default is 10)
    "f_train": [1, 2, 8],  # random and momentum models are trained at each (0 = unbounded)
    "train_schedules": ["layered", "random", "momentum"],
    "eval_schedules": ["layered", "random", "momentum"],
    "eval_group_sizes": [1, 2, 4, 8, 16, 64, 0],
    "stop_on_output": 3,   # the third evaluation mode: each timestep stops 3 steps after output
    "seeds": 3,
    "energy": None,
    "workers": None,
    "eval_batch_size": 256,
    "max_train_samples": None,
    "max_test_samples": None,
}
QUICK = {"epochs": 6, "hidden": [64, 64], "f_train": [1, 8]}


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


def validate_config(cfg) -> dict:
    out = dict(cfg)
    out["seeds"] = integer("seeds", cfg["seeds"], 1)
    out["f_train"] = _f_train(cfg["f_train"])
    out["stop_on_output"] = integer("stop_on_output", cfg["stop_on_output"], 0)
    out["eval_batch_size"] = integer("eval_batch_size", cfg["eval_batch_size"], 1)
    for key in ("workers", "max_train_samples", "max_test_samples"):
        if cfg[key] is not None:
            out[key] = integer(key, cfg[key], 1)
    for key in ("train_schedules", "eval_schedules"):
        value = cfg[key]
        if not isinstance(value, list) or not value or any(v not in SCHEDULE_NAMES for v in value):
            raise UserError(f"{key} must be a non-empty list of {', '.join(SCHEDULE_NAMES)}, got {value!r}")
        out[key] = list(dict.fromkeys(value))
    sizes = cfg["eval_group_sizes"]
    if not isinstance(sizes, list) or not sizes:
        raise UserError(f"eval_group_sizes must be a non-empty list of integers >= 0 (0 = unbounded), got {sizes!r}")
    out["eval_group_sizes"] = list(dict.fromkeys(integer("eval_group_sizes entry", f, 0) for f in sizes))
    out["energy"] = validate_profile(cfg["energy"])
    base = train_config(out, "layered", None, 0)  # validates hidden, epochs, lr, ... via TrainConfig
    for key in TRAIN_KEYS:  # normalised (hidden as a list, numbers as TrainConfig keeps them)
        value = getattr(base, key)
        out[key] = list(value) if isinstance(value, tuple) else value
    return out


def _f_train(value) -> list:
    """``f_train``: a list of F values (or one integer, as older configurations have it)."""
    items = value if isinstance(value, list) else [value]
    what = "a non-empty list of integers >= 0 (0 = unbounded) or one such integer"
    if not items or any(isinstance(f, float) for f in items):  # an F is written as an integer
        raise UserError(f"f_train must be {what}, got {value!r}")
    return list(dict.fromkeys(integer("f_train", f, 0, what) for f in items))


def train_config(cfg, schedule, f_train, seed, threads=None) -> TrainConfig:
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


def stop_modes(cfg) -> list:
    """The evaluation modes as ``stop_on_output`` delays: ``None`` full run, ``0`` on output, then
    ``cfg["stop_on_output"]``."""
    return list(dict.fromkeys((None, 0, cfg["stop_on_output"])))


def stop_label(stop_on_output) -> str:
    """A mode as in ``results.csv``: ``off`` or the delay."""
    return "off" if stop_on_output is None else str(stop_on_output)


def eval_settings(cfg) -> list:
    """``(schedule, F, stop_on_output)`` of every evaluation: layered once, the others x every F;
    each in every mode of :func:`stop_modes` (``None``: full run; else a timestep-scoped stop)."""
    out = []
    for stop in stop_modes(cfg):
        for schedule in cfg["eval_schedules"]:
            for f in ([0] if schedule == "layered" else cfg["eval_group_sizes"]):
                out.append((schedule, f, stop))
    return out


def model_name(schedule, f_train, seed) -> str:
    return f"{schedule}-F{f_train_label(schedule, f_train)}-seed{seed}"


def f_train_label(schedule, f_train) -> str:
    """``f_train`` as in ``results.csv``: ``na`` for layered training, else :func:`format_f`."""
    return "na" if schedule == "layered" else format_f(f_train)


def eval_name(schedule, group_size, stop_on_output) -> str:
    return f"{schedule}-F{f_train_label(schedule, group_size)}-" + \
        ("full" if stop_on_output is None else f"tstop{stop_on_output}")


def mode_name(stop) -> str:
    """The published work's name of an evaluation mode (``stop``: ``stop_on_output``, None or the delay)."""
    if stop is None:
        return "full run (on spiking done)"
    return "on output" if stop == 0 else f"{stop} forward steps after output"
