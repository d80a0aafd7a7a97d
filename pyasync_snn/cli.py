"""The ``pyasync-snn`` command line: a thin click shell over the Python API.

Every command is a few lines over the API. A :class:`UserError` (bad file, shape, value or
option) becomes a one-line ``Error: ...`` message and exit status 1, without a traceback.
"""
from __future__ import annotations

import json
import math
import sys
import time

import click

from . import compiling, io, neurobench
from .datasets import (DATASETS, describe, list_datasets, make_dataset, random_events,
                       resolve_data, resolve_train_test, split_dataset)
from .datasets.convert import convert_dvsgesture, convert_events, convert_nmnist, convert_shd
from .datasets.convert.events import ORIGINS
from .errors import UserError
from .io.atomic import check_not_input, check_output_path
from .experiment import run_experiment
from .explain import explain
from .gradients import dataset_loss_and_grad, gradient_norms
from .kernels.backward import GRADIENT_MODES
from .kernels.surrogates import LOSSES, SURROGATES
from .layers import parse_layers, spell
from .network import DEFAULT_BETA, DEFAULT_THRESHOLD, Network
from .simulate import DEFAULT_MOMENTUM_NOISE, SCHEDULES, simulate
from .inspection import format_events, load_inputs, trace_events, trace_info
from .plots.curves import CheckpointCurves, curves_path
from .plots.dataset_plots import DEFAULT_FRAMES, parse_sensor, plot_sample
from .plots.trace_plots import plot_trace
from .trace import DTYPES, STOP_SCOPES, UNBOUNDED, Metrics, schedule_label
from .evaluation import evaluate
from .io.checkpoint import checkpoint_config
from .io.nir_graph import read_nir, write_nir
from .training import TrainConfig, final_metrics, train

SIM_BATCH = 256  # samples read from a dataset file per simulate call
DEFAULT_CONFIG = TrainConfig()


class _Group(click.Group):
    """A click group that reports every user error (bad option or bad input) in one line."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except UserError as e:
            raise click.ClickException(str(e)) from None
        except MemoryError:
            raise click.ClickException("out of memory: the input is too large for this machine "
                                       "(check its sizes, or use fewer samples or a smaller batch)") from None

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, False, **extra)
        try:
            status = super().main(args, prog_name, complete_var, False, **extra)
        except click.ClickException as e:  # usage errors included
            click.echo(f"Error: {e.format_message()}", err=True)
            sys.exit(e.exit_code)
        except click.Abort:
            click.echo("Aborted.", err=True)
            sys.exit(1)
        sys.exit(status if isinstance(status, int) else 0)


class GroupSize(click.ParamType):
    """F: a positive integer, or ``unbounded`` (also ``inf``). ``0`` is refused on the command
    line (more likely a slip than a wish for no limit); files and the Python API keep 0."""

    name = "F"

    def convert(self, value, param, ctx):
        if isinstance(value, int):
            text = str(value)
        else:
            text = str(value).strip().lower()
        if text in ("unbounded", "inf"):
            return UNBOUNDED
        if text == "0":
            self.fail("0 is not a group size; use 'unbounded' for no limit", param, ctx)
        if text.isdigit() and int(text) > 0:
            return int(text)
        self.fail(f"{value!r} is not a positive integer or 'unbounded'", param, ctx)


class LayerList(click.ParamType):
    """A network spelling (``layers.parse_layers``): ``700,128,20`` or ``2x34x34,c8k3s2,10``."""

    name = "LAYERS"

    def __init__(self, min_count=2):
        self.min_count = min_count

    def convert(self, value, param, ctx):
        if isinstance(value, (list, tuple)):
            return list(value)
        try:
            items = parse_layers(str(value))
        except UserError as e:
            self.fail(str(e), param, ctx)
        if len(items) < self.min_count:
            self.fail(f"{value!r} needs at least {self.min_count} layers", param, ctx)
        return [item if isinstance(item, int) else spell(item) for item in items]


schedule_option = click.option("--schedule", required=True, type=click.Choice(list(SCHEDULES)),
                               help="Neuron scheduling strategy.")
group_size_option = click.option("--group-size", "group_size", type=GroupSize(), default=None,
                                 help="F: spikes delivered per forward step ('unbounded' for all; "
                                      "required unless the schedule is layered).")
input_queue_option = click.option(
    "--input-queue", is_flag=True,
    help="Input spikes enter the pending queue and compete with network spikes for the F slots "
         "(default: all delivered at each timestep's injection step).")
dtype_option = click.option("--dtype", type=click.Choice(DTYPES), default="float32", show_default=True)
threads_option = click.option("--threads", type=click.IntRange(min=1), default=None,
                              help="Threads for the parallel batch (default: all cores).")


def gradient_option(default):
    return click.option(
        "--gradient", type=click.Choice(list(GRADIENT_MODES)), default=default, show_default=True,
        help="The graph differentiated: exact (virtual spikes) or reference (the published work's queue sums).")


def detach_reset_option(default):
    return click.option("--detach-reset/--full-reset", default=default, show_default=True,
                        help="Treat the reset v <- v (1 - s) as a constant in the backward pass.")


out_option = click.option("--out", required=True, type=click.Path(dir_okay=False), help="Output file.")
threshold_option = click.option("--threshold", type=float, default=DEFAULT_THRESHOLD, show_default=True,
                                help="theta: the firing threshold (> 0).")
beta_option = click.option("--beta", type=float, default=DEFAULT_BETA, show_default=True,
                           help="Membrane decay per timestep, in (0, 1].")


@click.group(cls=_Group)
@click.version_option(package_name="pyasync-snn")
def main():
    """pyasync-snn: asynchronous spiking neural networks, event by event."""
    compiling.listeners[:] = [lambda notice: click.echo(notice, err=True)]


@main.command("simulate")
@click.argument("model", type=click.Path(dir_okay=False))
@click.argument("data", type=click.Path(dir_okay=False))
@schedule_option
@group_size_option
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--momentum-noise", type=click.FloatRange(min=0), default=DEFAULT_MOMENTUM_NOISE,
              show_default=True, help="lambda: tie-breaking noise of momentum (0 = deterministic).")
@click.option("--refractory-dropout", type=click.FloatRange(0, 1, max_open=True), default=0.0,
              show_default=True, help="Probability that a spike leaves its neuron non-refractory.")
@input_queue_option
@dtype_option
@threads_option
@click.option("--trace", "trace_path", default=None, type=click.Path(dir_okay=False),
              help="Trace file to write (without it, only the summary is printed).")
def simulate_command(model, data, schedule, group_size, seed, momentum_noise, refractory_dropout, input_queue,
                     dtype, threads, trace_path):
    """Run every sample of DATA through MODEL asynchronously; print a summary; write the trace
    with --trace."""
    if trace_path is not None:
        _check_output(trace_path, model, data)
    group_size = _group_size_for(schedule, group_size)
    network = io.read_model(model)
    start = time.perf_counter()
    metrics, n_events = [], 0

    def parts(dataset):  # simulated batch by batch, written as they come: one batch in memory
        nonlocal n_events
        for batch in dataset.iter_batches(SIM_BATCH):
            part = simulate(network, batch, schedule=schedule, group_size=group_size, seed=seed,
                            momentum_noise=momentum_noise, refractory_dropout=refractory_dropout, dtype=dtype,
                            threads=threads, input_queue=input_queue)
            metrics.append(part.metrics)
            n_events += part.n_events
            yield part

    with io.open_dataset(data) as dataset:
        network.check_fits(dataset.n_inputs, dataset.n_classes, data)
        if trace_path is None:
            for _ in parts(dataset):
                pass
        else:
            io.write_trace(trace_path, parts(dataset))
    elapsed = time.perf_counter() - start
    summary = Metrics.concatenate(metrics).summary()
    click.echo(format_summaries({schedule_label(schedule, group_size): summary}))
    click.echo(f"{n_events} events in {elapsed:.2f} s; " +
               ("no trace written (--trace FILE keeps it)" if trace_path is None else f"trace written to {trace_path}"))


@main.command("gradient")
@click.argument("model", type=click.Path(dir_okay=False))
@click.argument("data", type=click.Path(dir_okay=False))
@click.option("--trace", "trace_path", required=True, type=click.Path(dir_okay=False),
              help="Trace recorded by 'simulate' on MODEL and DATA.")
@click.option("--loss", type=click.Choice(list(LOSSES)), default="rate", show_default=True)
@click.option("--surrogate", type=click.Choice(list(SURROGATES)), default="atan", show_default=True)
@click.option("--surrogate-param", type=float, default=None,
              help="alpha for atan (default 2), k for fast-sigmoid (default 25).")
@click.option("--band", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="Skip the surrogate of checks with |v - theta| > band (0: exact).")
@click.option("--dtype", type=click.Choice(DTYPES), default=None,
              help="Replay precision (default: the trace's).")
@gradient_option("exact")
@detach_reset_option(default=False)
@threads_option
@out_option
def gradient_command(model, data, trace_path, loss, surrogate, surrogate_param, band, dtype, gradient,
                     detach_reset, threads, out):
    """Replay TRACE on MODEL and DATA, backpropagate through its event order, write the gradients."""
    _check_output(out, model, data, trace_path)
    network = io.read_model(model)
    trace = io.read_trace(trace_path)
    if dtype is not None and dtype != trace.dtype:
        raise UserError(f"the trace was recorded in {trace.dtype}; it replays only in that dtype")
    start = time.perf_counter()
    with io.open_dataset(data) as dataset:
        network.check_fits(dataset.n_inputs, dataset.n_classes, data)
        value, grads = dataset_loss_and_grad(network, dataset, trace=trace, batch_size=SIM_BATCH, loss=loss,
                                             surrogate=surrogate, surrogate_param=surrogate_param, band=band,
                                             threads=threads, gradient=gradient, detach_reset=detach_reset)
    elapsed = time.perf_counter() - start
    io.write_gradients(out, value, grads, gradient, detach_reset)
    norms = ", ".join(f"{n:.3g}" for n in gradient_norms(grads))
    click.echo(f"mean {loss} loss {value:.6f} over {len(trace)} samples; gradient norms per layer: {norms}")
    click.echo(f"backward in {elapsed:.2f} s; gradients written to {out}")


@main.command("train")
@click.option("--data", required=True, help="Training data: a dataset file or an embedded name "
              "(see 'pyasync-snn data list').")
@click.option("--test", "test", default=None, help="Test data file (default for a name: its test split).")
@click.option("--hidden", type=LayerList(min_count=0), default="128,128", show_default=True,
              help="Hidden layers: sizes (128,128), or conv layers after the input shape "
                   "(2x34x34,c8k3s2,c16k3s2p1,c32k3s2p1); the output layer is added.")
@click.option("--schedule", type=click.Choice(list(SCHEDULES)), default=DEFAULT_CONFIG.schedule,
              show_default=True, help="Training schedule ('layered' = conventional training).")
@click.option("--group-size", "group_size", type=GroupSize(), default=str(DEFAULT_CONFIG.group_size),
              show_default=True, help="F of the training schedule.")
@click.option("--epochs", type=click.IntRange(min=1), default=DEFAULT_CONFIG.epochs, show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=DEFAULT_CONFIG.batch_size, show_default=True)
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=DEFAULT_CONFIG.lr, show_default=True)
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--loss", type=click.Choice(list(LOSSES)), default=DEFAULT_CONFIG.loss, show_default=True)
@click.option("--surrogate", type=click.Choice(list(SURROGATES)), default=DEFAULT_CONFIG.surrogate,
              show_default=True)
@click.option("--surrogate-param", type=click.FloatRange(min=0, min_open=True),
              default=DEFAULT_CONFIG.surrogate_param, show_default=True,
              help="alpha for atan, k for fast-sigmoid (default: the surrogate's own).")
@gradient_option(DEFAULT_CONFIG.gradient)
@detach_reset_option(default=DEFAULT_CONFIG.detach_reset)
@click.option("--weight-decay", type=click.FloatRange(min=0), default=0.0, show_default=True)
@click.option("--input-dropout", type=click.FloatRange(0, 1, max_open=True), default=0.0, show_default=True,
              help="Probability of dropping each input spike (training only).")
@click.option("--refractory-dropout", type=click.FloatRange(0, 1, max_open=True), default=0.0,
              show_default=True, help="Probability that a spike leaves its neuron non-refractory (training only).")
@click.option("--eval-schedule", type=click.Choice(list(SCHEDULES)), default=None,
              help="Schedule for the test passes (default: the training schedule).")
@click.option("--eval-group-size", type=GroupSize(), default=None, help="F for the test passes.")
@click.option("--checkpoint-every", type=click.IntRange(min=1), default=1, show_default=True,
              help="Write the checkpoint every N epochs (and after the last).")
@input_queue_option
@threshold_option
@beta_option
@threads_option
@out_option
@click.option("--resume", is_flag=True, help="Continue the checkpoint at --out.")
@click.option("--init", "init", default=None, type=click.Path(dir_okay=False),
              help="Start from this model's weights (its layers, threshold and beta), e.g. one imported "
                   "from NIR, instead of Xavier weights; --hidden, --threshold and --beta are taken from it.")
@click.option("--json", "as_json", is_flag=True, help="Print the final test metrics as one JSON object.")
def train_command(data, test, hidden, schedule, group_size, epochs, batch_size, lr, seed, loss, surrogate,
                  surrogate_param, gradient, detach_reset, weight_decay, input_dropout, refractory_dropout,
                  eval_schedule, eval_group_size, checkpoint_every, input_queue, threshold, beta, threads, out,
                  resume, init, as_json):
    """Train an SNN with unlayered backprop (through the chosen schedule); checkpoint to --out."""
    train_path, test_path = resolve_train_test(data, test)
    _check_output(out, train_path, test_path)
    config = TrainConfig(hidden=tuple(hidden), schedule=schedule, group_size=group_size, epochs=epochs,
                         batch_size=batch_size, lr=lr, seed=seed, loss=loss, surrogate=surrogate,
                         surrogate_param=surrogate_param, gradient=gradient, detach_reset=detach_reset,
                         weight_decay=weight_decay, input_dropout=input_dropout,
                         refractory_dropout=refractory_dropout, eval_schedule=eval_schedule,
                         eval_group_size=eval_group_size, checkpoint_every=checkpoint_every,
                         threshold=threshold, beta=beta, threads=threads, input_queue=input_queue)
    if init is not None:
        check_not_input(out, [init])
        config = config.for_model(init)
    report = sys.stderr if as_json else sys.stdout  # --json keeps stdout for the JSON alone
    if not resume:
        click.echo(f"training {'-'.join(map(str, config.hidden)) or 'no'} hidden"
                   f"{' from ' + init if init else ''}, {schedule_label(schedule, group_size)}", file=report)
    bar = _EpochBar(epochs, report)
    history = train(train_path, test_path, config=config, out_path=out, resume=resume, progress=bar.update,
                    on_epoch=lambda record: bar.close(_epoch_line(record)),
                    on_checkpoint=CheckpointCurves())
    bar.close()
    split = "test" if test_path is not None else "train"
    final = final_metrics(history, split)
    if as_json:
        click.echo(_json(final, JSON_KEYS + ("loss",)))
    else:
        click.echo(format_summaries({f"{split}: {schedule_label(*config.evaluation)}": final}))
        click.echo(f"model written to {out}; learning curves in {curves_path(out)}")


@main.command("evaluate")
@click.argument("model", type=click.Path(dir_okay=False))
@click.argument("data")
@click.option("--schedule", type=click.Choice(list(SCHEDULES)), default=None,
              help="Neuron scheduling strategy (default: a checkpoint's own evaluation schedule).")
@click.option("--group-size", "group_size", type=GroupSize(), default=None,
              help="F (default: the checkpoint's own; not needed for layered).")
@click.option("--stop-on-output", type=click.IntRange(min=0), is_flag=False, flag_value=0, default=None,
              help="Stop DELAY forward steps after the first output spike (flag alone: 0).")
@click.option("--stop-scope", type=click.Choice(STOP_SCOPES), default=None,
              help="What --stop-on-output ends: the sample, or each timestep (the next one starts "
                   "normally). Default: sample.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--loss", type=click.Choice(list(LOSSES)), default=DEFAULT_CONFIG.loss, show_default=True)
@input_queue_option
@threads_option
@click.option("--json", "as_json", is_flag=True, help="Print the metrics as one JSON object.")
def evaluate_command(model, data, schedule, group_size, stop_on_output, stop_scope, seed, loss, input_queue, threads,
                     as_json):
    """Metrics of MODEL on DATA (a file, or an embedded name: its test split) under a schedule."""
    if stop_scope is not None and stop_on_output is None:
        raise UserError("--stop-scope needs --stop-on-output")
    stop_scope = stop_scope or "sample"
    network = io.read_model(model)
    schedule, group_size = _evaluation_setting(model, schedule, group_size)
    path = resolve_data(f"{data}:test" if data in DATASETS else data)
    summary = evaluate(network, path, schedule=schedule, group_size=group_size, seed=seed,
                       stop_on_output=stop_on_output, loss=loss, threads=threads, stop_scope=stop_scope,
                       input_queue=input_queue)
    if as_json:
        click.echo(_json(summary, JSON_KEYS + ("loss", "samples") + NEUROBENCH_KEYS))
    else:
        label = schedule_label(schedule, group_size) + _stop_label(stop_on_output, stop_scope)
        click.echo(format_summaries({label: summary}))
        click.echo(f"mean {loss} loss {summary['loss']:.4f}" if stop_on_output is None else
                   f"{loss} loss: not defined for a stopped run (its dropped spikes are not in the trace)")
        click.echo(format_neurobench(summary))


def _evaluation_setting(model, schedule, group_size) -> tuple:
    """``(schedule, F)`` for evaluate: the options, completed from a checkpoint's own evaluation
    setting; F is irrelevant (unbounded) for ``layered``."""
    stored = checkpoint_config(model)
    own = TrainConfig.from_json(stored, model).evaluation if stored is not None else (None, None)
    schedule = schedule or own[0]
    if schedule is None:
        raise UserError(f"{model} holds no training state; give --schedule (and --group-size)")
    if group_size is None:
        group_size = own[1] if schedule == own[0] and schedule != "layered" else None
    return schedule, _group_size_for(schedule, group_size)


def _group_size_for(schedule, group_size):
    """F as given; for ``layered`` it is irrelevant (unbounded) and may be left out."""
    if schedule == "layered":
        return UNBOUNDED if group_size is None else group_size
    if group_size is None:
        raise UserError(f"--schedule {schedule} needs --group-size F")
    return group_size


@main.command("experiment")
@click.option("--data", default="spatial", show_default=True, help="Dataset name or training file.")
@click.option("--test", "test", default=None, help="Test file (required when --data is a file).")
@click.option("--quick", is_flag=True, help="Small budget: the showcase, minutes on 2 cores.")
@click.option("--seeds", type=click.IntRange(min=1), default=None, help="Seeds per training schedule (default 3).")
@click.option("--out", "out_dir", default="study", show_default=True, type=click.Path(file_okay=False),
              help="Output directory (finished parts are reused on a rerun).")
@click.option("--config", "config_path", default=None, type=click.Path(dir_okay=False),
              help="JSON file overriding the study's settings (docs/study.md).")
@click.option("--dask-scheduler", default=None, help="Run the grid on an existing Dask cluster (ADDRESS).")
def experiment_command(data, test, quick, seeds, out_dir, config_path, dask_scheduler):
    """The asynchrony study: layered vs unlayered training, a schedule x F grid, report.md."""
    report = run_experiment(out_dir, data=data, test=test, quick=quick, seeds=seeds, config_path=config_path,
                            dask_scheduler=dask_scheduler, progress=lambda message: click.echo(message, err=True))
    click.echo(f"report written to {report}")


@main.group("trace")
def trace_group():
    """Read and plot recorded traces."""


@trace_group.command("info")
@click.argument("trace_path", metavar="TRACE", type=click.Path(dir_okay=False))
@click.option("--rows", type=click.IntRange(min=1), default=20, show_default=True, help="Samples listed.")
def trace_info_command(trace_path, rows):
    """Per sample: events per layer, forward steps, queue lengths, latency, predictions."""
    click.echo(trace_info(io.read_trace(trace_path), max_rows=rows))


@trace_group.command("events")
@click.argument("trace_path", metavar="TRACE", type=click.Path(dir_okay=False))
@click.option("--sample", type=click.IntRange(min=0), required=True)
@click.option("--timestep", type=click.IntRange(min=0), default=None, help="Only this timestep.")
@click.option("--csv", "as_csv", is_flag=True, help="CSV instead of an aligned table.")
def trace_events_command(trace_path, sample, timestep, as_csv):
    """The delivered spikes of one sample, in delivery order."""
    click.echo(format_events(trace_events(io.read_trace(trace_path), sample, timestep), csv=as_csv))


@trace_group.command("plot")
@click.argument("trace_path", metavar="TRACE", type=click.Path(dir_okay=False))
@click.option("--model", default=None, type=click.Path(dir_okay=False), help="Needed for --kind membrane.")
@click.option("--data", default=None, type=click.Path(dir_okay=False), help="Needed for --kind membrane.")
@click.option("--sample", type=click.IntRange(min=0), required=True)
@click.option("--kind", type=click.Choice(["raster", "groups", "membrane", "queue"]), default="raster",
              show_default=True)
@click.option("--timestep", type=click.IntRange(min=0), default=None, help="Only this timestep.")
@out_option
def trace_plot_command(trace_path, model, data, sample, kind, timestep, out):
    """A figure of one sample: raster, groups, membrane (replayed) or queue."""
    _check_output(out, trace_path, model, data)
    trace = io.read_trace(trace_path)
    network = io.read_model(model) if model else None
    inputs = load_inputs(data, sample) if data else None
    plot_trace(kind, trace, sample, out, network, inputs, timestep=timestep)
    click.echo(f"written {out}")


@main.command("explain")
@click.option("--out", "out_dir", default=None, type=click.Path(file_okay=False),
              help="Directory for the PNG frames, explain.gif and explain.txt.")
@click.option("--text", is_flag=True, help="Tell the story step by step in the terminal.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, help="Seed of the random run.")
def explain_command(out_dir, text, seed):
    """Layered vs asynchronous execution on a 4-3-3-2 network, step by step, side by side."""
    result = explain(out_dir, seed=seed)
    if text or out_dir is None:
        click.echo(result.text)
    if out_dir is not None:
        click.echo(f"{result.n_frames} frames ({result.frames[0]} ...)" +
                   (f", {result.gif}" if result.gif else "") + f", {result.text_path}")


@main.command("demo")
@click.option("--layers", type=LayerList(), default="700,256,256,20", show_default=True,
              help="The network, in the spelling of 'model init --layers'.")
@click.option("--timesteps", type=click.IntRange(min=1), default=100, show_default=True)
@click.option("--density", type=click.FloatRange(0, 1), default=0.05, show_default=True)
@click.option("--group-size", "group_size", type=GroupSize(), default="1", show_default=True,
              help="F for the momentum run.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
def demo(layers, timesteps, density, group_size, seed):
    """One random network, one random input: layered vs momentum, side by side."""
    network = Network.xavier(layers, seed=seed)
    batch = random_events(1, network.layer_sizes[0], timesteps, density, network.n_outputs, seed=seed)
    click.echo(f"network {network.spelling()}, one input of {timesteps} timesteps "
               f"({len(batch.unit)} input spikes)")
    summaries, predicted = {}, []
    for schedule, f in (("layered", UNBOUNDED), ("momentum", group_size)):
        metrics = simulate(network, batch, schedule=schedule, group_size=f, seed=seed).metrics
        summaries[schedule_label(schedule, f)] = metrics.summary()
        fired = metrics.steps_to_first_output[0] >= 0
        predicted.append(f"{schedule_label(schedule, f)} {int(metrics.count_prediction[0]) if fired else 'none'}")
    click.echo(format_summaries(summaries, without=RANDOM_LABEL_ROWS))
    click.echo("predicted class (most output spikes): " + ", ".join(predicted))


def _check_output(out, *inputs) -> None:
    """Refuse, before any work, an output that is not a regular file or is one of the inputs."""
    check_output_path(out)
    check_not_input(out, inputs)


@main.group("model")
def model_group():
    """Create model files."""


@model_group.command("init")
@click.option("--layers", required=True, type=LayerList(),
              help="Inputs, hidden..., outputs: sizes (700,128,20) or with conv layers "
                   "(2x34x34,c8k3s2,c16k3s2p1,c32k3s2p1,10: input shape CxHxW; cCkKsSpP = C channels, "
                   "kernel K, stride S, padding P).")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@threshold_option
@beta_option
@out_option
def model_init(layers, seed, threshold, beta, out):
    """A new network with Xavier-uniform weights (fans per layer kind)."""
    network = Network.xavier(layers, seed=seed, threshold=threshold, beta=beta)
    io.write_model(out, network)
    click.echo(f"model {network.spelling()} ({sum(w.size for w in network.weights)} weights, "
               f"{network.n_neurons} neurons) written to {out}")


@model_group.command("import")
@click.argument("source", type=click.Path(dir_okay=False))
@click.option("--dt", type=float, required=True, help="Time step in seconds: beta = 1 - dt / tau.")
@out_option
def model_import(source, dt, out):
    """A model from a NIR file (Input -> Linear/Affine/Conv2d/Flatten -> LIF -> ... -> Output)."""
    check_not_input(out, [source])
    network = read_nir(source, dt)
    io.write_model(out, network)
    click.echo(f"model {network.spelling()} (beta {network.beta:.6g}, threshold {network.threshold:.6g}) "
               f"written to {out}")


@model_group.command("export")
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(["nir"]), default="nir", show_default=True)
@click.option("--dt", type=float, required=True, help="Time step in seconds: tau = dt / (1 - beta).")
@out_option
def model_export(model, fmt, dt, out):
    """MODEL as a NIR graph, for other simulators and hardware."""
    check_not_input(out, [model])
    network = io.read_model(model)
    write_nir(out, network, dt)
    click.echo(f"{fmt.upper()} graph of {network.spelling()} (tau {dt / (1 - network.beta):.6g} s) written to {out}")


@main.group("data")
def data_group():
    """Create and inspect dataset files."""


@data_group.command("list")
def data_list():
    """The embedded datasets (generated offline, cached on first use)."""
    click.echo(list_datasets())


@data_group.command("make")
@click.argument("name", type=click.Choice(list(DATASETS)))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Output directory.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
def data_make(name, out_dir, seed):
    """Generate embedded dataset NAME into OUT_DIR (NAME-train.h5, NAME-test.h5)."""
    for path in make_dataset(name, out_dir, seed=seed):
        click.echo(f"written {path}")


@data_group.command("info")
@click.argument("path", type=click.Path(dir_okay=False))
def data_info(path):
    """Summarise any dataset file."""
    click.echo(describe(path))


@data_group.command("plot")
@click.argument("path", metavar="DATASET", type=click.Path(dir_okay=False))
@click.option("--sample", type=click.IntRange(min=0), required=True)
@click.option("--frames", type=click.IntRange(min=1), default=DEFAULT_FRAMES, show_default=True,
              help="Event cameras: the timesteps binned into this many frames.")
@click.option("--sensor", default=None, help="WIDTHxHEIGHT, for an event-camera file without its "
              "layout (e.g. 12x12 for spatial, 34x34 for a split N-MNIST file).")
@click.option("--gif", default=None, type=click.Path(dir_okay=False),
              help="Also write an animation (event cameras), one frame per timestep.")
@out_option
def data_plot(path, sample, frames, sensor, gif, out):
    """One sample as a figure: frames (ON/OFF events) for an event camera, else a raster."""
    _check_output(out, path)
    if gif is not None:
        _check_output(gif, path, out)
    plot_sample(path, sample, out, frames, parse_sensor(sensor) if sensor else None, gif)
    click.echo(f"written {out}" + (f" and {gif}" if gif else ""))


@data_group.command("split")
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--test-fraction", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.2,
              show_default=True)
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Output directory.")
def data_split(path, test_fraction, seed, out_dir):
    """A stratified held-out split of a dataset file: OUT_DIR/<name>-train.h5 and -test.h5."""
    for written in split_dataset(path, out_dir, test_fraction, seed):
        click.echo(f"written {written}")


@data_group.group("convert")
def convert_group():
    """Convert raw datasets you downloaded (N-MNIST, SHD/SSC, DVS Gesture) or event arrays
    (tonic's layout), offline."""


def _binning_options(command):
    """--time-window-us / --n-timesteps / --keep-time / --out, shared by the converters."""
    for option in reversed([
            click.option("--time-window-us", type=click.IntRange(min=1), default=None,
                         help="Timestep width in microseconds (default 10000 unless --n-timesteps)."),
            click.option("--n-timesteps", type=click.IntRange(min=1), default=None,
                         help="Number of timesteps (alone: the window is the longest sample / T)."),
            click.option("--keep-time", is_flag=True, help="Keep the original timestamps (events/time_us)."),
            out_option]):
        command = option(command)
    return command


def _window(time_window_us, n_timesteps):
    return 10_000 if time_window_us is None and n_timesteps is None else time_window_us


def _run_conversion(convert, *args, **kwargs):
    """Run a converter with a progress bar on a terminal (silently otherwise); print its report."""
    if not sys.stderr.isatty():
        click.echo(convert(*args, progress=None, **kwargs).summary())
        return
    with click.progressbar(length=1, label="converting", file=sys.stderr) as bar:
        def progress(done, total):
            bar.length = max(total, 1)
            bar.update(done - bar.pos)
        report = convert(*args, progress=progress, **kwargs)
    click.echo(report.summary())


@convert_group.command("nmnist")
@click.argument("root", type=click.Path(file_okay=False))
@click.option("--split", type=click.Choice(["train", "test"]), default="train", show_default=True)
@click.option("--first-saccade", is_flag=True, help="Only the first saccade (t < 100 ms).")
@click.option("--downsample", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--skip-bad", is_flag=True, help="Skip (and list) corrupt files instead of stopping.")
@_binning_options
def convert_nmnist_command(root, split, first_saccade, downsample, skip_bad, time_window_us, n_timesteps,
                           keep_time, out):
    """N-MNIST in its official layout (ROOT/Train/<digit>/*.bin, ROOT/Test/...)."""
    _run_conversion(convert_nmnist, root, out, split=split, time_window_us=_window(time_window_us, n_timesteps),
                    n_timesteps=n_timesteps, first_saccade=first_saccade, downsample=downsample,
                    keep_time=keep_time, skip_bad=skip_bad)


@convert_group.command("shd")
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--downsample-units", type=click.IntRange(min=1), default=1, show_default=True)
@_binning_options
def convert_shd_command(path, downsample_units, time_window_us, n_timesteps, keep_time, out):
    """SHD or SSC: one HDF5 file (spikes/times, spikes/units, labels, extra/...)."""
    _check_output(out, path)
    _run_conversion(convert_shd, path, out, time_window_us=_window(time_window_us, n_timesteps),
                    n_timesteps=n_timesteps, downsample_units=downsample_units, keep_time=keep_time)


@convert_group.command("dvsgesture")
@click.argument("root", type=click.Path(file_okay=False))
@click.option("--split", type=click.Choice(["train", "test"]), default=None,
              help="Only the official train or test trials (default: every recording).")
@click.option("--downsample", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--skip-bad", is_flag=True, help="Skip (and list) corrupt files instead of stopping.")
@_binning_options
def convert_dvsgesture_command(root, split, downsample, skip_bad, time_window_us, n_timesteps, keep_time, out):
    """DVS Gesture: AEDAT 3.1 recordings with their _labels.csv, one sample per gesture."""
    _run_conversion(convert_dvsgesture, root, out, downsample=downsample,
                    time_window_us=_window(time_window_us, n_timesteps), n_timesteps=n_timesteps,
                    skip_bad=skip_bad, split=split, keep_time=keep_time)


@convert_group.command("events")
@click.argument("source", type=click.Path())
@click.option("--sensor", default=None, metavar="WxH",
              help="WIDTHxHEIGHT of the camera (events x, y, p, t); "
              "default: the .npz's sensor_size, else the largest x, y + 1.")
@click.option("--channels", type=click.IntRange(min=1), default=None,
              help="Audio channels (events t, x[, p]); default: the .npz's sensor_size, else the "
                   "largest x + 1.")
@click.option("--classes", type=click.IntRange(min=1), default=None,
              help="Number of classes (default: class_names, else the largest label + 1).")
@click.option("--origin", type=click.Choice(list(ORIGINS)), default="zero", show_default=True,
              help="Bin times from 0 µs, or from each sample's first event.")
@click.option("--downsample", type=click.IntRange(min=1), default=1, show_default=True,
              help="Merge KxK pixels (camera) or K channels (audio).")
@_binning_options
def convert_events_command(source, sensor, channels, classes, origin, downsample, time_window_us,
                           n_timesteps, keep_time, out):
    """Event arrays (NumPy structured, tonic's layout): SOURCE is a .npz (events_0 ...
    events_{N-1}, labels) or a folder of .npy files with labels.csv."""
    _check_output(out, source)
    _run_conversion(convert_events, source, out, sensor=parse_sensor(sensor) if sensor else None,
                    n_channels=channels, time_window_us=_window(time_window_us, n_timesteps),
                    n_timesteps=n_timesteps, downsample=downsample, n_classes=classes,
                    origin=origin, keep_time=keep_time)


@data_group.command("random")
@click.option("--inputs", type=click.IntRange(min=1), required=True)
@click.option("--timesteps", type=click.IntRange(min=1), required=True)
@click.option("--density", type=click.FloatRange(0, 1), required=True)
@click.option("--samples", type=click.IntRange(min=1), required=True)
@click.option("--classes", type=click.IntRange(min=1), required=True)
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@out_option
def data_random(inputs, timesteps, density, samples, classes, seed, out):
    """Bernoulli input spikes with random labels, in the dataset format."""
    batch = random_events(samples, inputs, timesteps, density, classes, seed)
    io.write_dataset(out, batch, classes, name="random",
                     attrs={"generator": "bernoulli", "density": density, "seed": seed})
    click.echo(f"{samples} samples, {len(batch.unit)} input spikes written to {out}")


# ---------------------------------------------------------------- presentation
JSON_KEYS = ("accuracy", "first_spike_accuracy", "spikes_per_sample", "sops_per_sample",
             "steps_to_first_output", "spikes_to_first_output", "timestep_spikes_to_output",
             "timestep_spikes_to_correct", "timestep_output_fraction", "timestep_correct_fraction")


NEUROBENCH_KEYS = neurobench.KEYS  # evaluate --json: synaptic_operations (a dict), activation_sparsity, ...


def format_neurobench(summary: dict) -> str:
    """The NeuroBench metrics of an :func:`evaluate` summary in one line (``docs/semantics.md``)."""
    ops = summary["synaptic_operations"]
    return (f"NeuroBench: synaptic_operations per sample Effective_ACs {ops['Effective_ACs']:.1f}, "
            f"Effective_MACs {ops['Effective_MACs']:.1f}, Dense {ops['Dense']:.0f}; "
            f"activation_sparsity {summary['activation_sparsity']:.4f}; "
            f"connection_sparsity {summary['connection_sparsity']:.4f}; "
            f"footprint {summary['footprint']} bytes ({summary['parameter_count']} parameters)")


def _json(values: dict, keys) -> str:
    """One JSON object of ``keys`` (NaN, e.g. a latency that never happened, becomes null)."""
    def clean(v):
        return None if isinstance(v, float) and math.isnan(v) else v
    return json.dumps({k: clean(values[k]) for k in keys if k in values})


def _epoch_line(record: dict) -> str:
    line = (f"epoch {record['epoch']}: train loss {record['train_loss']:.4f} "
            f"acc {record['train_accuracy']:.3f}")
    if "test_accuracy" in record:
        line += (f" | test loss {record['test_loss']:.4f} acc {record['test_accuracy']:.3f}, "
                 f"{record['test_spikes_per_sample']:.0f} spikes/sample")
    return line + f" | {record['epoch_seconds']:.1f} s"


class _EpochBar:
    """A click progress bar per epoch, showing the running loss and accuracy."""

    def __init__(self, epochs, stream):
        self.epochs, self.stream, self.bar, self.epoch, self.status = epochs, stream, None, None, ""

    def update(self, epoch, batch, n_batches, loss, accuracy):
        if epoch != self.epoch:
            self.close()
            self.epoch, self.status = epoch, ""
            self.bar = click.progressbar(length=n_batches, label=f"epoch {epoch}/{self.epochs}",
                                         file=self.stream, item_show_func=lambda _: self.status)
            self.bar.__enter__()
        if batch > 0:
            self.status = f"loss {loss:.4f} acc {accuracy:.3f}"
            self.bar.update(1)

    def close(self, line=None):
        """End the epoch's bar (its line is finished), then print ``line`` on a line of its own."""
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            self.bar = None
        if line is not None:
            click.echo(line, file=self.stream)


def _stop_label(stop_on_output, stop_scope):
    if stop_on_output is None:
        return ""
    return f", stop +{stop_on_output}" + (" per timestep" if stop_scope == "timestep" else "")


SUMMARY_ROWS = [
    ("samples", "samples", "{:.0f}"),
    ("accuracy (count)", "accuracy", "{:.3f}"),
    ("accuracy (first spike)", "first_spike_accuracy", "{:.3f}"),
    ("spikes / sample", "spikes_per_sample", "{:.1f}"),
    ("SOPs / sample", "sops_per_sample", "{:.0f}"),
    ("forward steps / timestep", "steps_per_timestep", "{:.2f}"),
    ("samples with an output spike", "output_fraction", "{:.3f}"),
    ("steps to first output", "steps_to_first_output", "{:.1f}"),
    ("spikes to first output", "spikes_to_first_output", "{:.1f}"),
    ("steps to first correct output", "steps_to_first_correct", "{:.1f}"),
    ("spikes to first correct output", "spikes_to_first_correct", "{:.1f}"),
    ("timesteps with an output spike", "timestep_output_fraction", "{:.3f}"),
    ("spikes to output, per timestep", "timestep_spikes_to_output", "{:.1f}"),
    ("spikes to correct, per timestep", "timestep_spikes_to_correct", "{:.1f}"),
]
# rows that mean nothing for the demo's one sample with a random label
RANDOM_LABEL_ROWS = ("samples", "accuracy", "first_spike_accuracy", "steps_to_first_correct",
                     "spikes_to_first_correct", "timestep_spikes_to_correct")


def format_summaries(summaries: dict, without=()) -> str:
    """A table with one column per run (``{label: Metrics.summary()}``), less the rows of the
    summary keys in ``without``."""
    names = list(summaries)
    def cell(value, fmt):
        return "-" if isinstance(value, float) and math.isnan(value) else fmt.format(value)

    shown = [row for row in SUMMARY_ROWS if row[1] not in without]
    rows = [[title] + [cell(summaries[n].get(key, math.nan), fmt) for n in names] for title, key, fmt in shown]
    after = 1 + [key for _, key, _ in shown].index("spikes_per_sample")
    n_layers = max(len(s["spikes_per_layer"]) for s in summaries.values())
    for l in range(n_layers):
        rows.insert(after + l, [f"  spikes in layer {l + 1}"] +
                    [f"{summaries[n]['spikes_per_layer'][l]:.1f}" for n in names])
    header = [""] + names
    widths = [max(len(r[c]) for r in rows + [header]) for c in range(len(header))]
    lines = ["  ".join(cell.ljust(widths[0]) if c == 0 else cell.rjust(widths[c])
                       for c, cell in enumerate(row)) for row in [header] + rows]
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover
    main()
