"""The ``pyasync-snn`` command line: a thin click shell over the Python API.

Every command is a few lines over the API. A :class:`UserError` (bad file, shape, value or
option) becomes a one-line ``Error: ...`` message and exit status 1, without a traceback.
"""
from __future__ import annotations

import math
import sys
import time

import click
import numpy as np

from . import io
from .datasets import random_events
from .errors import UserError
from .gradients import loss_and_grad
from .kernels.surrogates import LOSSES, SURROGATES
from .network import DEFAULT_BETA, DEFAULT_THRESHOLD, Network
from .simulate import DEFAULT_MOMENTUM_NOISE, SCHEDULES, simulate
from .trace import DTYPES, UNBOUNDED, Trace

SIM_BATCH = 256  # samples read from a dataset file per simulate call


class _Group(click.Group):
    """A click group that reports every user error (bad option or bad input) in one line."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except UserError as e:
            raise click.ClickException(str(e)) from None

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
    """F: a positive integer, or ``unbounded`` (also ``inf`` or ``0``)."""

    name = "F"

    def convert(self, value, param, ctx):
        if isinstance(value, int):
            text = str(value)
        else:
            text = str(value).strip().lower()
        if text in ("unbounded", "inf", "0"):
            return UNBOUNDED
        if text.isdigit() and int(text) > 0:
            return int(text)
        self.fail(f"{value!r} is not a positive integer or 'unbounded'", param, ctx)


class IntList(click.ParamType):
    """A comma-separated list of positive integers, e.g. ``700,128,128,20``."""

    name = "N,N,..."

    def convert(self, value, param, ctx):
        try:
            sizes = [int(v) for v in str(value).split(",")]
        except ValueError:
            self.fail(f"{value!r} is not a comma-separated list of integers", param, ctx)
        if len(sizes) < 2 or min(sizes) < 1:
            self.fail(f"{value!r} needs at least two positive sizes (inputs, then layers)", param, ctx)
        return sizes


schedule_option = click.option("--schedule", required=True, type=click.Choice(list(SCHEDULES)),
                               help="Neuron scheduling strategy.")
group_size_option = click.option("--group-size", "group_size", required=True, type=GroupSize(),
                                 help="F: spikes delivered per forward step ('unbounded' for all).")
dtype_option = click.option("--dtype", type=click.Choice(DTYPES), default="float32", show_default=True)
threads_option = click.option("--threads", type=click.IntRange(min=1), default=None,
                              help="Threads for the parallel batch (default: all cores).")
out_option = click.option("--out", required=True, type=click.Path(dir_okay=False), help="Output file.")


@click.group(cls=_Group)
@click.version_option(package_name="pyasync-snn")
def main():
    """pyasync-snn: asynchronous spiking neural networks, event by event."""


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
@dtype_option
@threads_option
@click.option("--trace", "trace_path", required=True, type=click.Path(dir_okay=False),
              help="Trace file to write.")
def simulate_command(model, data, schedule, group_size, seed, momentum_noise, refractory_dropout,
                     dtype, threads, trace_path):
    """Run every sample of DATA through MODEL asynchronously; write the trace; print a summary."""
    network = io.read_model(model)
    start = time.perf_counter()
    with io.open_dataset(data) as dataset:
        trace = Trace.concatenate([
            simulate(network, batch, schedule, group_size, seed, momentum_noise, refractory_dropout,
                     dtype, threads) for batch in dataset.iter_batches(SIM_BATCH)])
    elapsed = time.perf_counter() - start
    io.write_trace(trace_path, trace)
    click.echo(format_summaries({_label(schedule, group_size): trace.metrics.summary()}))
    click.echo(f"{trace.n_events} events in {elapsed:.2f} s; trace written to {trace_path}")


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
@threads_option
@out_option
def gradient_command(model, data, trace_path, loss, surrogate, surrogate_param, band, dtype, threads, out):
    """Replay TRACE on MODEL and DATA, backpropagate through its event order, write the gradients."""
    network = io.read_model(model)
    trace = io.read_trace(trace_path)
    if dtype is not None and dtype != trace.dtype:
        raise UserError(f"the trace was recorded in {trace.dtype}; it replays only in that dtype")
    start = time.perf_counter()
    with io.open_dataset(data) as dataset:
        if len(dataset) != len(trace):
            raise UserError(f"the trace has {len(trace)} samples, {data} has {len(dataset)}")
        total, grads = 0.0, [np.zeros(w.shape) for w in network.weights]
        for batch in dataset.iter_batches(SIM_BATCH):  # a mean over batches, weighted by size
            lo, hi = batch.sample_ids[0], batch.sample_ids[-1] + 1
            value, part = loss_and_grad(network, batch, trace.take(lo, hi), loss, surrogate,
                                        surrogate_param, band, threads)
            total += value * len(batch)
            grads = [g + p * len(batch) for g, p in zip(grads, part)]
    value, grads = total / len(trace), [g / len(trace) for g in grads]
    elapsed = time.perf_counter() - start
    io.write_gradients(out, value, grads)
    norms = ", ".join(f"{np.linalg.norm(g):.3g}" for g in grads)
    click.echo(f"mean {loss} loss {value:.6f} over {len(batch)} samples; gradient norms per layer: {norms}")
    click.echo(f"backward in {elapsed:.2f} s; gradients written to {out}")


@main.command("demo")
@click.option("--layers", type=IntList(), default="700,256,256,20", show_default=True)
@click.option("--timesteps", type=click.IntRange(min=1), default=100, show_default=True)
@click.option("--density", type=click.FloatRange(0, 1), default=0.05, show_default=True)
@click.option("--group-size", "group_size", type=GroupSize(), default="1", show_default=True,
              help="F for the momentum run.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
def demo(layers, timesteps, density, group_size, seed):
    """One random network, one random input: layered vs momentum, side by side."""
    network = Network.xavier(layers, seed=seed)
    batch = random_events(1, layers[0], timesteps, density, layers[-1], seed=seed)
    click.echo(f"network {'-'.join(map(str, layers))}, one input of {timesteps} timesteps "
               f"({len(batch.unit)} input spikes)")
    summaries = {}
    for schedule, f in (("layered", UNBOUNDED), ("momentum", group_size)):
        summaries[_label(schedule, f)] = simulate(network, batch, schedule, f, seed).metrics.summary()
    click.echo(format_summaries(summaries))


@main.group("model")
def model_group():
    """Create and inspect model files."""


@model_group.command("init")
@click.option("--layers", required=True, type=IntList(), help="Sizes: inputs, hidden..., outputs.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--threshold", type=float, default=DEFAULT_THRESHOLD, show_default=True)
@click.option("--beta", type=float, default=DEFAULT_BETA, show_default=True)
@out_option
def model_init(layers, seed, threshold, beta, out):
    """A new network with Xavier-uniform weights."""
    network = Network.xavier(layers, seed=seed, threshold=threshold, beta=beta)
    io.write_model(out, network)
    click.echo(f"model {'-'.join(map(str, layers))} ({sum(w.size for w in network.weights)} weights) "
               f"written to {out}")


@main.group("data")
def data_group():
    """Create and inspect dataset files."""


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
def _label(schedule, group_size):
    if schedule == "layered":
        return "layered"
    return f"{schedule} F={'unbounded' if group_size == UNBOUNDED else group_size}"


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
]


def format_summaries(summaries: dict) -> str:
    """A table with one column per run (``{label: Metrics.summary()}``)."""
    names = list(summaries)
    def cell(value, fmt):
        return "-" if isinstance(value, float) and math.isnan(value) else fmt.format(value)

    rows = [[title] + [cell(summaries[n][key], fmt) for n in names] for title, key, fmt in SUMMARY_ROWS]
    n_layers = max(len(s["spikes_per_layer"]) for s in summaries.values())
    for l in range(n_layers):
        rows.insert(4 + l, [f"  spikes in layer {l + 1}"] +
                    [f"{summaries[n]['spikes_per_layer'][l]:.1f}" for n in names])
    header = [""] + names
    widths = [max(len(r[c]) for r in rows + [header]) for c in range(len(header))]
    lines = ["  ".join(cell.ljust(widths[0]) if c == 0 else cell.rjust(widths[c])
                       for c, cell in enumerate(row)) for row in [header] + rows]
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover
    main()
