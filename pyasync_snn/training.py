"""Training: minibatch AdamW through the executed schedule, checkpoints that resume.

Training *is* unlayered backprop: every minibatch is simulated under the training schedule
(``layered`` = conventional time-stepped training; ``random``/``momentum`` = asynchronous), and
:func:`~pyasync_snn.gradients.loss_and_grad` differentiates the recorded event order of that very
run. ``docs/training.md`` is the user-level description; this module's docstrings hold the details.

Determinism: every random draw of epoch ``e`` (0-based) and minibatch ``b`` comes from a NumPy
stream seeded by ``[seed, purpose, e(, b)]`` (``purpose`` 0 = the epoch's permutation,
1 = input spike dropout, 2 = the simulation seed), so nothing random is carried from one epoch to
the next except the weights and the optimizer state, which the checkpoint stores exactly (float64).
A run resumed from a checkpoint is therefore bit-identical to an uninterrupted one. (The purpose
tag keeps the streams apart: NumPy's ``SeedSequence`` treats ``[s, 0]`` as ``[s]``, which would
otherwise make the first epoch's permutation share the stream of the Xavier initialisation.)
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import time
from dataclasses import asdict, dataclass, fields

import numpy as np

from .errors import UserError
from .evaluation import DEFAULT_LOSS, evaluate_source
from .gradients import gradient_norms, loss_and_grad
from .io.atomic import check_output_path, output_lock
from .io.checkpoint import Checkpoint, read_checkpoint, write_checkpoint
from .io.dataset import DatasetFile, open_dataset
from .kernels.backward import GRADIENT_MODES
from .kernels.surrogates import LOSSES, SURROGATES
from .layers import is_shape, parse_layers, spell
from .network import DEFAULT_BETA, DEFAULT_THRESHOLD, Network
from .optim import Adam
from .simulate import simulate
from .trace import SCHEDULE_NAMES, Metrics, schedule_title
from .validate import choice, integer, real

IN_MEMORY_EVENTS = 1 << 24   # datasets with at most this many events are read into memory once
RESUME_FREE_FIELDS = ("epochs", "threads", "checkpoint_every")  # may change on --resume
TIME_KEYS = ("train_seconds", "test_seconds", "epoch_seconds")  # history series that are wall time
STREAM_PERMUTATION, STREAM_INPUT_DROPOUT, STREAM_SIMULATE = 0, 1, 2


# ---------------------------------------------------------------- configuration

@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a training run (together with the data).

    Defaults, and why:

    - ``hidden = (128, 128)``: two hidden layers, as the project's accuracy targets use;
    - ``schedule = "momentum"``, ``group_size = 8``: unlayered backprop at the README's F
      (``group_size = 0`` means unbounded; ``layered`` ignores F);
    - ``epochs = 10``, ``batch_size = 32``;
    - ``lr = 2e-3``: Adam's usual 1e-3 is slow for these small spiking nets, whose gradients
      pass through a narrow surrogate; 2e-3 trains the embedded sets reliably;
    - ``weight_decay = 0`` (decoupled, AdamW), ``input_dropout = 0`` (probability of deleting each
      input spike), ``refractory_dropout = 0`` (passed to :func:`simulate` while training only);
    - ``loss = "count"`` (cross-entropy of the total output counts), ``surrogate = "atan"`` with
      its default parameter, ``gradient = "exact"`` (virtual spikes) with ``detach_reset = True``
      (the reset is a constant backward): together they train at every F, while the rate loss
      and the differentiated reset fail at small F (measured in ``docs/training.md``);
    - ``eval_schedule``/``eval_group_size = None``: evaluate with the training schedule and F;
    - ``checkpoint_every = 1`` (epochs; the last epoch is always checkpointed);
    - ``threshold``, ``beta``: the neuron model's defaults (:mod:`pyasync_snn.network`);
    - ``threads = None``: Numba's default. Results do not depend on it;
    - ``input_queue = False``: inputs injected at step 0 (True: they compete for the F slots, in
      training and evaluation);
    - ``init = None``: start from Xavier weights; a model file's path starts from its weights
      instead (e.g. a model imported from NIR). Its layers must be ``hidden`` (with the data's
      inputs and classes), its threshold and beta ``threshold`` and ``beta``
      (:meth:`for_model` makes such a configuration).

    Invalid values raise :class:`UserError` with a one-line message. ``hidden`` also accepts a
    string ``"128,128"`` (``""`` = no hidden layer) or a single integer, and conv layers in the
    spelling of ``model init --layers`` (``layers.py``), after the input shape:
    ``"2x34x34,c8k3s2,c16k3s2p1,c32k3s2p1"`` (the output layer is always dense).
    """

    hidden: tuple = (128, 128)
    schedule: str = "momentum"
    group_size: int = 8
    epochs: int = 10
    batch_size: int = 32
    lr: float = 2e-3
    seed: int = 0
    loss: str = DEFAULT_LOSS
    surrogate: str = "atan"
    surrogate_param: float | None = None
    gradient: str = "exact"
    detach_reset: bool = True
    weight_decay: float = 0.0
    input_dropout: float = 0.0
    refractory_dropout: float = 0.0
    eval_schedule: str | None = None
    eval_group_size: int | None = None
    checkpoint_every: int = 1
    threshold: float = DEFAULT_THRESHOLD
    beta: float = DEFAULT_BETA
    threads: int | None = None
    input_queue: bool = False
    init: str | None = None

    def __post_init__(self):
        put = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731
        put("hidden", _hidden(self.hidden))
        put("schedule", choice("schedule", self.schedule, SCHEDULE_NAMES))
        put("group_size", integer("group size", self.group_size, 0, "0 (unbounded) or a positive integer"))
        put("epochs", integer("epochs", self.epochs, 1))
        put("batch_size", integer("batch size", self.batch_size, 1))
        put("lr", real("learning rate", self.lr, low=0, open_low=True))
        put("seed", integer("seed", self.seed, 0, high=2**63 - 1))
        put("loss", choice("loss", self.loss, tuple(LOSSES)))
        put("surrogate", choice("surrogate", self.surrogate, tuple(SURROGATES)))
        if self.surrogate_param is not None:
            put("surrogate_param", real("surrogate parameter", self.surrogate_param, low=0, open_low=True))
        put("gradient", choice("gradient mode", self.gradient, tuple(GRADIENT_MODES)))
        if not isinstance(self.detach_reset, (bool, np.bool_)):
            raise UserError(f"detach_reset must be true or false, got {self.detach_reset!r}")
        put("detach_reset", bool(self.detach_reset))
        put("weight_decay", real("weight decay", self.weight_decay, low=0))
        put("input_dropout", real("input dropout", self.input_dropout, low=0, high=1))
        put("refractory_dropout", real("refractory dropout", self.refractory_dropout, low=0, high=1))
        if self.eval_schedule is not None:
            put("eval_schedule", choice("evaluation schedule", self.eval_schedule, SCHEDULE_NAMES))
        if self.eval_group_size is not None:
            put("eval_group_size", integer("evaluation group size", self.eval_group_size, 0,
                                            "0 (unbounded) or a positive integer"))
        put("checkpoint_every", integer("checkpoint interval (epochs)", self.checkpoint_every, 1))
        put("threshold", real("threshold", self.threshold, low=0, open_low=True))
        put("beta", real("beta", self.beta, low=0, open_low=True))
        if self.beta > 1:
            raise UserError(f"beta must lie in (0, 1], got {self.beta}")
        if self.threads is not None:
            put("threads", integer("threads", self.threads, 1))
        if not isinstance(self.input_queue, (bool, np.bool_)):
            raise UserError(f"input_queue must be true or false, got {self.input_queue!r}")
        put("input_queue", bool(self.input_queue))
        if self.init is not None:
            put("init", os.fspath(self.init))

    def for_model(self, path) -> "TrainConfig":
        """This configuration, starting from the model file ``path``: its hidden layers (after
        its input shape, if it has one), threshold and beta."""
        from .io.model import read_model
        network = read_model(os.fspath(path))
        items = parse_layers(network.spelling())
        hidden = items[:-1] if is_shape(items[0]) else items[1:-1]
        return TrainConfig(**{**asdict(self), "hidden": hidden, "threshold": network.threshold,
                              "beta": network.beta, "init": os.fspath(path)})

    @property
    def evaluation(self) -> tuple:
        """``(schedule, group_size)`` of evaluation: the ``eval_*`` fields, or the training ones."""
        return (self.schedule if self.eval_schedule is None else self.eval_schedule,
                self.group_size if self.eval_group_size is None else self.eval_group_size)

    def to_json(self) -> str:
        """The configuration as one JSON object (``hidden`` as a list), keys sorted."""
        return json.dumps({**asdict(self), "hidden": list(self.hidden)}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str, where=None) -> "TrainConfig":
        """Inverse of :meth:`to_json`; fields missing from ``text`` take their defaults. An error
        names ``where`` (the file that stored ``text``), if given."""
        try:
            try:
                values = json.loads(text)
            except (TypeError, ValueError) as e:
                raise UserError(f"training configuration is not valid JSON: {e}") from None
            if not isinstance(values, dict):
                raise UserError("training configuration must be a JSON object")
            unknown = sorted(set(values) - {f.name for f in fields(cls)})
            if unknown:
                raise UserError(f"training configuration has unknown field(s) {', '.join(unknown)} "
                                f"(written by a newer pyasync-snn?)")
            return cls(**values)
        except UserError as e:
            if where is None:
                raise
            raise UserError(f"{os.fspath(where)}: {e}") from None

    def describe(self) -> str:
        """``"training: momentum, F = 8 | evaluation: layered (F not used) | hidden 128-128"``
        (the title of the learning curves)."""
        schedule, group_size = self.evaluation
        hidden = "-".join(map(str, self.hidden)) or "none"
        return (f"training: {schedule_title(self.schedule, self.group_size)} | "
                f"evaluation: {schedule_title(schedule, group_size)} | hidden {hidden}")

    def differences(self, other: "TrainConfig") -> list:
        """Names of the fields that differ from ``other`` and would change the result
        (everything but :data:`RESUME_FREE_FIELDS`; evaluation settings compared resolved)."""
        mine, theirs = self._resolved(), other._resolved()
        return [name for name in mine if name not in RESUME_FREE_FIELDS and mine[name] != theirs[name]]

    def _resolved(self) -> dict:
        values = asdict(self)
        values["eval_schedule"], values["eval_group_size"] = self.evaluation
        return values


def _hidden(value) -> tuple:
    """The hidden layers as tokens of the network spelling: ints for dense layers, strings for an
    input shape and conv layers (``"2x34x34"``, ``"c8k3s2"``)."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        value = [value]
    if isinstance(value, str):
        value = [p for p in value.split(",") if p.strip()]
    try:
        items = parse_layers([str(integer("hidden layer size", v, 1)) if isinstance(v, (int, float)) else v
                              for v in value])
    except TypeError:
        raise UserError(f"hidden must be a sequence of layer sizes, got {value!r}") from None
    except UserError as e:
        raise UserError(f"hidden layers: {e}") from None
    return tuple(item if isinstance(item, int) else spell(item) for item in items)


def _initial(config, planned) -> Network:
    """The network of ``config.init``, which must have the layers, threshold and beta planned."""
    from .io.model import read_model
    network = read_model(config.init)
    if network.spelling() != planned.spelling() or network.threshold != config.threshold \
            or network.beta != config.beta:
        raise UserError(f"{config.init}: the model is {network.spelling()} (threshold {network.threshold:g}, beta "
                        f"{network.beta:g}), the configuration {planned.spelling()} (threshold "
                        f"{config.threshold:g}, beta {config.beta:g})")
    return network


def network_layers(hidden, n_inputs, n_classes) -> list:
    """The spelling of the trained network: the input (``n_inputs``, or the shape ``hidden``
    starts with, which must hold ``n_inputs`` channels), the hidden layers, ``n_classes`` outputs."""
    items = parse_layers([str(h) for h in hidden])
    if items and is_shape(items[0]):
        if int(np.prod(items[0])) != n_inputs:
            raise UserError(f"the input shape {spell(items[0])} holds {int(np.prod(items[0]))} channels, "
                            f"the data has {n_inputs}")
        return items + [n_classes]
    return [n_inputs] + items + [n_classes]


# ---------------------------------------------------------------- data access

def _in_memory(data: DatasetFile):
    """The whole dataset as one EventBatch if it is small enough, else the open file itself."""
    return data.take(0, len(data)) if data.n_events <= IN_MEMORY_EVENTS else data


# ---------------------------------------------------------------- training

def final_metrics(history: dict, split: str = "test") -> dict:
    """The last epoch's ``<split>_*`` values of ``history`` with the prefix removed
    (e.g. ``{"accuracy": ..., "loss": ..., "sops_per_sample": ...}``)."""
    prefix = f"{split}_"
    return {k[len(prefix):]: v[-1] for k, v in history.items()
            if k.startswith(prefix) and v and k not in TIME_KEYS}


def train(train_path, test_path, *, config: TrainConfig, out_path, resume: bool = False,
          progress=None, on_epoch=None, on_checkpoint=None) -> dict:
    """Train a network on the dataset file ``train_path``; checkpoint it to ``out_path``.

    The network is ``Network.xavier(network_layers(config.hidden, n_inputs, n_classes), config.seed)``.
    Each epoch ``e`` visits the training samples in the order of a permutation drawn from
    ``[seed, 0, e]``, in minibatches of ``batch_size`` (the last one may be smaller). Per
    minibatch ``b``: input spikes are dropped with probability ``input_dropout`` (stream
    ``[seed, 1, e, b]``); the batch is simulated under the training schedule with
    ``refractory_dropout`` and a seed drawn from ``[seed, 2, e, b]``; ``loss_and_grad``
    differentiates that trace; one AdamW step updates the weights.

    After every epoch the test set (``test_path``; ``None`` = no test set) is evaluated with the
    evaluation schedule, seed ``config.seed`` and no dropout. Every ``checkpoint_every`` epochs
    and after the last, ``out_path`` is rewritten atomically (model + optimizer + history +
    configuration; :func:`~pyasync_snn.io.checkpoint.write_checkpoint`), then
    ``on_checkpoint(out_path, history, config)`` is called (the CLI draws the learning curves).

    ``resume=True`` continues the checkpoint at ``out_path`` (which must exist): every field of
    ``config`` except ``epochs``, ``threads`` and ``checkpoint_every`` must equal the stored one,
    and the data must have the same number of samples. The result is bit-identical to an
    uninterrupted run.

    ``progress(epoch, batch, n_batches, running_loss, running_accuracy)`` is called at the start
    of each epoch (``batch = 0``, running values NaN) and after each minibatch (``epoch`` and
    ``batch`` 1-based; running values are the epoch's means so far over the training forward
    passes). ``on_epoch(record)`` is called after each epoch with that
    epoch's values (a dict, keys as in the history). Returns the history: a dict of equally
    long lists, one per series (``epoch``, ``train_<metric>``, ``test_<metric>``, times).
    """
    if not isinstance(config, TrainConfig):
        raise UserError("config must be a pyasync_snn.training.TrainConfig")
    out_path = os.fspath(out_path)
    check_output_path(out_path)  # fail before the first epoch, not after
    with contextlib.ExitStack() as stack:
        stack.enter_context(output_lock(out_path))  # one writer per checkpoint
        train_file = stack.enter_context(open_dataset(train_path))
        test_file = None if test_path is None else stack.enter_context(open_dataset(test_path))
        if len(train_file) == 0:
            raise UserError(f"{os.fspath(train_path)}: the training set has no samples")
        if test_file is not None and test_file.n_inputs != train_file.n_inputs:
            raise UserError(f"{os.fspath(test_path)}: the test set has {test_file.n_inputs} input "
                            f"channels, the training set {train_file.n_inputs}")
        if test_file is not None and test_file.n_classes > train_file.n_classes:
            raise UserError(f"{os.fspath(test_path)}: the test set has {test_file.n_classes} classes, "
                            f"the training set {train_file.n_classes}")
        n_test = -1 if test_file is None else len(test_file)
        if resume:
            state = _resumed(out_path, config, len(train_file), n_test)
        else:
            network = Network.xavier(network_layers(config.hidden, train_file.n_inputs, train_file.n_classes),
                                     seed=config.seed, threshold=config.threshold, beta=config.beta)
            if config.init is not None:
                network = _initial(config, network)
            state = Checkpoint(network, Adam.for_weights(network.weights, lr=config.lr,
                                                         weight_decay=config.weight_decay),
                               {}, config.to_json(), 0, len(train_file), n_test)
        state.network.check_fits(train_file.n_inputs, train_file.n_classes, os.fspath(train_path))
        state.config = config.to_json()  # on resume, epochs, threads and checkpoint_every may be new
        train_source = _in_memory(train_file)
        test_source = None if test_file is None else _in_memory(test_file)
        for epoch in range(state.epochs_completed, config.epochs):
            record = _run_epoch(state, config, train_source, test_source, epoch, progress)
            for key, value in record.items():  # a series new since the checkpoint starts with NaN
                state.history.setdefault(key, [_missing(value)] * epoch).append(value)
            state.epochs_completed = epoch + 1
            if on_epoch is not None:
                on_epoch(record)
            if state.epochs_completed % config.checkpoint_every == 0 or state.epochs_completed == config.epochs:
                write_checkpoint(out_path, state, train_path, test_path)
                if on_checkpoint is not None:
                    on_checkpoint(out_path, state.history, config)
        return state.history


def _missing(value):
    """NaN shaped like ``value``: the entry of a series for epochs run before it was recorded."""
    return [math.nan] * len(value) if isinstance(value, list) else math.nan


def _resumed(out_path, config, n_train, n_test) -> Checkpoint:
    if not os.path.exists(out_path):
        raise UserError(f"{out_path}: no checkpoint to resume from (no such file)")
    state = read_checkpoint(out_path)
    own = TrainConfig.from_json(state.config, out_path)
    differ = config.differences(own)
    if differ:
        old, new = own._resolved(), config._resolved()
        detail = "; ".join(f"{name}: {old[name]!r} in the checkpoint, {new[name]!r} now" for name in differ)
        raise UserError(f"{out_path}: cannot resume, the configuration differs ({detail}); "
                        f"only epochs, threads and checkpoint_every may change")
    stored = {"threshold": state.network.threshold, "beta": state.network.beta,
              "lr": state.optimizer.lr, "weight_decay": state.optimizer.weight_decay}
    for name, value in stored.items():
        if value != getattr(config, name):
            raise UserError(f"{out_path}: cannot resume, the checkpoint's {name} is {value!r} but its "
                            f"configuration says {getattr(config, name)!r} (a damaged checkpoint?)")
    if config.epochs < state.epochs_completed:
        raise UserError(f"{out_path}: cannot resume to epochs={config.epochs}, the checkpoint has "
                        f"already completed {state.epochs_completed} epochs")
    if state.train_samples != n_train:
        raise UserError(f"{out_path}: cannot resume, the training data has {n_train} samples but the "
                        f"checkpoint was trained on {state.train_samples}")
    if state.test_samples != n_test:
        what = lambda n: "no test set" if n < 0 else f"a test set of {n} samples"  # noqa: E731
        raise UserError(f"{out_path}: cannot resume, the checkpoint was evaluated on "
                        f"{what(state.test_samples)}, this run has {what(n_test)}")
    return state


def _stream(seed, purpose, *keys) -> np.random.Generator:
    return np.random.default_rng([seed, purpose, *keys])


def _simulation_seed(seed, epoch, batch) -> int:
    """A seed in ``[0, 2^63)`` for :func:`simulate`, from the stream ``[seed, 2, epoch, batch]``."""
    state = np.random.SeedSequence([seed, STREAM_SIMULATE, epoch, batch]).generate_state(1, np.uint64)
    return int(state[0] >> np.uint64(1))


def _run_epoch(state: Checkpoint, config: TrainConfig, train_source, test_source, epoch, progress) -> dict:
    """One epoch (``epoch`` 0-based): the minibatch loop, then evaluation. Returns its record."""
    start = time.perf_counter()
    n = len(train_source)
    order = _stream(config.seed, STREAM_PERMUTATION, epoch).permutation(n)
    n_batches = -(-n // config.batch_size)
    metrics, loss_sum, correct, seen = [], 0.0, 0, 0
    grad_norms = np.zeros(len(state.network.weights))
    if progress is not None:
        progress(epoch + 1, 0, n_batches, math.nan, math.nan)
    for b in range(n_batches):
        batch = train_source.select(order[b * config.batch_size:(b + 1) * config.batch_size])
        batch = batch.drop(config.input_dropout, _stream(config.seed, STREAM_INPUT_DROPOUT, epoch, b))
        trace = simulate(state.network, batch, schedule=config.schedule, group_size=config.group_size,
                         seed=_simulation_seed(config.seed, epoch, b),
                         refractory_dropout=config.refractory_dropout, threads=config.threads,
                         input_queue=config.input_queue)
        loss, grads = loss_and_grad(state.network, batch, trace=trace, loss=config.loss,
                                    surrogate=config.surrogate, surrogate_param=config.surrogate_param,
                                    threads=config.threads,
                                    gradient=config.gradient, detach_reset=config.detach_reset)
        grad_norms += gradient_norms(grads)
        weights = state.optimizer.step(state.network.weights, grads)
        state.network = state.network.with_weights(weights)
        metrics.append(trace.metrics)
        loss_sum += loss * len(batch)
        seen += len(batch)
        correct += int(np.sum(trace.metrics.count_prediction == trace.metrics.labels))
        if progress is not None:
            progress(epoch + 1, b + 1, n_batches, loss_sum / seen, correct / seen)
    train_seconds = time.perf_counter() - start
    record = {"epoch": epoch + 1, "train_loss": loss_sum / seen,
              "train_grad_norm": (grad_norms / n_batches).tolist()}
    record.update({f"train_{k}": v for k, v in Metrics.concatenate(metrics).summary().items()})
    test_start = time.perf_counter()
    if test_source is not None:
        schedule, group_size = config.evaluation
        summary = evaluate_source(state.network, test_source, schedule, group_size, config.seed,
                                  loss=config.loss, threads=config.threads, input_queue=config.input_queue,
                                  neurobench=False)
        record["test_loss"] = summary.pop("loss")
        record.update({f"test_{k}": v for k, v in summary.items()})
    end = time.perf_counter()
    record.update(train_seconds=train_seconds, test_seconds=end - test_start, epoch_seconds=end - start)
    return record
