"""The training checkpoint: a model file (:mod:`.model`) with the groups ``optimizer/``,
``history/`` and ``training/`` added, so that a run resumes exactly (``docs/training.md``,
"The checkpoint file"). The training configuration is stored, and returned, as its JSON text
(``TrainConfig.to_json``; ``TrainConfig.from_json`` reads it back).
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from ..errors import UserError
from ..network import Network
from ..optim import HYPER_PARAMETERS, Adam
from .h5common import attr, group, in_file, open_checked, read, write_array
from .model import FORMAT as MODEL_FORMAT
from .model import read_model, write_model

FORMAT = "pyasync-snn/training-checkpoint"
VERSION = 1


@dataclass
class Checkpoint:
    """What a training checkpoint holds."""

    network: Network
    optimizer: Adam
    history: dict
    config: str  # the TrainConfig as JSON
    epochs_completed: int
    train_samples: int
    test_samples: int  # -1: trained without a test set


def write_checkpoint(path, checkpoint: Checkpoint, train_data="", test_data="") -> None:
    """Write the model file ``path`` atomically, with the groups ``optimizer/``, ``history/`` and
    ``training/`` added. The file stays a valid model file for :func:`read_model`."""
    opt, history = checkpoint.optimizer, checkpoint.history

    def extra(f):
        g = f.create_group("optimizer")
        g.attrs["t"] = int(opt.t)
        for key in HYPER_PARAMETERS:
            g.attrs[key] = float(getattr(opt, key))
        for l, (m, v) in enumerate(zip(opt.m, opt.v)):
            write_array(g, f"m/{l}", m)
            write_array(g, f"v/{l}", v)
        h = f.create_group("history", track_order=True)
        for key, series in history.items():
            write_array(h, key, np.asarray(series))
        t = f.create_group("training")
        t.attrs.update({
            "format": FORMAT, "format_version": VERSION,
            "config": checkpoint.config, "epochs_completed": int(checkpoint.epochs_completed),
            "train_samples": int(checkpoint.train_samples), "test_samples": int(checkpoint.test_samples),
            "train_data": os.fspath(train_data or ""), "test_data": os.fspath(test_data or "")})

    write_model(path, checkpoint.network, extra=extra)


def checkpoint_config(path) -> str | None:
    """The configuration JSON stored in a training checkpoint, or None for a plain model file."""
    with open_checked(path, MODEL_FORMAT) as f, in_file(f):
        if "training" not in f:
            return None
        return attr(group(f, "training"), "config", str)


def read_checkpoint(path) -> Checkpoint:
    """Read a training checkpoint: the model, optimizer state, history and configuration."""
    network = read_model(path)
    with open_checked(path, MODEL_FORMAT) as f, in_file(f):
        if "training" not in f:
            raise UserError("a model file without training state (no 'training' group); cannot resume from it")
        t = group(f, "training")
        fmt = attr(t, "format", str)
        if fmt != FORMAT:
            raise UserError(f"training/format must be '{FORMAT}', found {fmt!r}")
        version = attr(t, "format_version", int)
        if not 1 <= version <= VERSION:
            raise UserError(f"training checkpoint format_version {version} is not supported "
                            f"(this pyasync-snn reads 1..{VERSION})")
        config = attr(t, "config", str)
        done = attr(t, "epochs_completed", int)
        if done < 0:
            raise UserError(f"training/epochs_completed must be >= 0, found {done}")
        g = group(f, "optimizer")
        n_layers = network.n_layers
        state = {"m": [read(f, f"optimizer/m/{l}", kind="float") for l in range(n_layers)],
                 "v": [read(f, f"optimizer/v/{l}", kind="float") for l in range(n_layers)],
                 "t": attr(g, "t", int), **{k: attr(g, k, float) for k in HYPER_PARAMETERS}}
        for l, (m, w) in enumerate(zip(state["m"], network.weights)):
            if m.shape != w.shape:
                raise UserError(f"optimizer/m/{l} has shape {m.shape}, the weight {w.shape}")
        optimizer = Adam.from_state(state)
        history = {}
        for key in group(f, "history").keys():
            series = read(f, f"history/{key}", kind="real")
            if len(series) != done:
                raise UserError(f"history/{key} has {len(series)} entries for {done} completed epochs")
            history[key] = series.tolist()
        return Checkpoint(network, optimizer, history, config, done,
                          attr(t, "train_samples", int), attr(t, "test_samples", int))
