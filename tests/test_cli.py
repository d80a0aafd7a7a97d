"""The command line: the documented workflow works, and every bad input is one line, no traceback."""
import re

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from pyasync_snn import io, simulate
from pyasync_snn.gradients import loss_and_grad
from pyasync_snn.errors import UserError
from pyasync_snn.cli import main


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def assert_user_error(result, *words):
    output = result.output.strip()
    assert result.exit_code != 0, output
    assert "Traceback" not in output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert len(output.splitlines()) == 1, output
    assert output.startswith("Error:"), output
    for word in words:
        assert word in output, (word, output)


@pytest.fixture
def files(tmp_path):
    model, data = tmp_path / "model.h5", tmp_path / "data.h5"
    assert run("model", "init", "--layers", "40,16,12,5", "--seed", 1, "--out", model).exit_code == 0
    assert run("data", "random", "--inputs", 40, "--timesteps", 20, "--density", 0.1,
               "--samples", 6, "--classes", 5, "--seed", 2, "--out", data).exit_code == 0
    return model, data, tmp_path


def test_model_init_data_random_simulate(files):
    model, data, tmp = files
    network = io.read_model(model)
    assert network.layer_sizes == (40, 16, 12, 5) and network.threshold == 0.3
    limit = np.sqrt(6 / (40 + 16))
    assert np.abs(network.weights[0]).max() <= limit and np.abs(network.weights[0]).max() > 0.9 * limit
    with io.open_dataset(data) as d:
        assert (len(d), d.n_inputs, d.n_timesteps, d.n_classes) == (6, 40, 20, 5)
        density = d.take(0, 6).indptr[-1] / (6 * 20 * 40)
    assert 0.07 < density < 0.13
    trace_path = tmp / "trace.h5"
    result = run("simulate", model, data, "--schedule", "momentum", "--group-size", 2, "--seed", 3,
                 "--trace", trace_path)
    assert result.exit_code == 0, result.output
    assert "momentum F=2" in result.output and "accuracy (count)" in result.output
    trace = io.read_trace(trace_path)
    assert (trace.schedule, trace.group_size, trace.seed, len(trace)) == ("momentum", 2, 3, 6)
    assert trace.n_events > 0 and f"{trace.n_events} events" in result.output


def test_simulate_without_trace_prints_the_same_summary_and_writes_nothing(files):
    model, data, tmp = files
    options = ("--schedule", "momentum", "--group-size", 2, "--seed", 3)
    with_trace = run("simulate", model, data, *options, "--trace", tmp / "t.h5")
    before = set(tmp.iterdir())
    without = run("simulate", model, data, *options)
    assert without.exit_code == 0, without.output
    assert set(tmp.iterdir()) == before
    assert "no trace written" in without.output

    def summary(result):  # all but the timing line (and a first run's compile notice)
        return [line for line in result.output.splitlines()[:-1] if not line.startswith("compiling")]
    assert summary(without) == summary(with_trace) and "accuracy (count)" in without.output


def test_simulate_unbounded_group_and_float64(files):
    model, data, tmp = files
    result = run("simulate", model, data, "--schedule", "random", "--group-size", "unbounded",
                 "--dtype", "float64", "--trace", tmp / "t.h5")
    assert result.exit_code == 0, result.output
    trace = io.read_trace(tmp / "t.h5")
    assert trace.group_size == 0 and trace.v_pre.dtype == np.float64


def test_demo_prints_both_schedules_side_by_side():
    result = run("demo", "--layers", "50,20,5", "--timesteps", 10)
    assert result.exit_code == 0, result.output
    header = [line for line in result.output.splitlines() if "layered" in line][0]
    assert "momentum F=1" in header
    assert "spikes / sample" in result.output


def _rewrite(path, edit):
    with h5py.File(path, "r+") as f:
        edit(f)


def _replace(f, key, data):
    del f[key]
    f[key] = data


BAD_MODEL_EDITS = {
    "wrong format": (lambda f: f.attrs.__setitem__("format", "pyasync-snn/dataset"), ["format"]),
    "newer version": (lambda f: f.attrs.__setitem__("format_version", 2), ["format_version"]),
    "broken chain": (lambda f: _replace(f, "layers/1/weight", np.zeros((12, 15))), ["chain"]),
    "NaN weight": (lambda f: _replace(f, "layers/0/weight", np.full((16, 40), np.nan)), ["NaN"]),
    "Inf weight": (lambda f: _replace(f, "layers/2/weight", np.full((5, 12), np.inf)), ["Inf"]),
}


@pytest.mark.parametrize("case", list(BAD_MODEL_EDITS))
def test_bad_model_is_one_line(files, case):
    model, data, tmp = files
    edit, words = BAD_MODEL_EDITS[case]
    _rewrite(model, edit)
    result = run("simulate", model, data, "--schedule", "layered", "--group-size", 1, "--trace", tmp / "t.h5")
    assert_user_error(result, "model.h5", *words)
    assert not (tmp / "t.h5").exists()


BAD_DATA_EDITS = {
    "negative unit": (lambda f: f["events/unit"].__setitem__(0, -1), ["events/unit", "out of range"]),
    "unit too large": (lambda f: f["events/unit"].__setitem__(3, 40), ["events/unit", "out of range"]),
    "timestep too large": (lambda f: f["events/timestep"].__setitem__(1, 20), ["events/timestep"]),
    "wrong format": (lambda f: f.attrs.__setitem__("format", "something/else"), ["format"]),
}


@pytest.mark.parametrize("case", list(BAD_DATA_EDITS))
def test_bad_dataset_is_one_line(files, case):
    model, data, tmp = files
    edit, words = BAD_DATA_EDITS[case]
    _rewrite(data, edit)
    result = run("simulate", model, data, "--schedule", "random", "--group-size", 4, "--trace", tmp / "t.h5")
    assert_user_error(result, "data.h5", *words)


def test_truncated_and_missing_files_are_one_line(files):
    model, data, tmp = files
    blob = data.read_bytes()
    data.write_bytes(blob[: len(blob) // 2])
    assert_user_error(run("simulate", model, data, "--schedule", "layered", "--group-size", 1,
                          "--trace", tmp / "t.h5"), "data.h5")
    assert_user_error(run("simulate", tmp / "missing.h5", data, "--schedule", "layered",
                          "--group-size", 1, "--trace", tmp / "t.h5"), "missing.h5", "no such file")


def test_mismatched_model_and_data(files):
    model, data, tmp = files
    run("model", "init", "--layers", "30,5", "--out", tmp / "small.h5")
    assert_user_error(run("simulate", tmp / "small.h5", data, "--schedule", "layered", "--group-size", 1,
                          "--trace", tmp / "t.h5"), "40 input channels", "30")


@pytest.mark.parametrize("args, words", [
    (["--schedule", "bogus", "--group-size", "1"], ["--schedule"]),
    (["--schedule", "random", "--group-size", "-2"], ["--group-size"]),
    (["--schedule", "random", "--group-size", "2", "--refractory-dropout", "1.5"], ["--refractory-dropout"]),
    (["--schedule", "random", "--group-size", "2", "--unknown"], ["--unknown"]),
])
def test_bad_options_are_one_line(files, args, words):
    model, data, tmp = files
    assert_user_error(run("simulate", model, data, *args, "--trace", tmp / "t.h5"), *words)


def test_bad_model_init_options_are_one_line(tmp_path):
    assert_user_error(run("model", "init", "--layers", "10", "--out", tmp_path / "m.h5"), "--layers")
    assert_user_error(run("model", "init", "--layers", "10,3", "--beta", "1.5", "--out", tmp_path / "m.h5"),
                      "beta")
    result = run("model", "init", "--layers", "10,3", "--out", tmp_path / "new" / "dir" / "m.h5")
    assert result.exit_code == 0 and (tmp_path / "new" / "dir" / "m.h5").is_file()  # folders are made
    (tmp_path / "file").write_text("")
    assert_user_error(run("model", "init", "--layers", "10,3", "--out", tmp_path / "file" / "m.h5"),
                      "cannot create the directory")


def test_simulate_then_gradient(files):
    from pyasync_snn.gradients import loss_and_grad
    model, data, tmp = files
    assert run("simulate", model, data, "--schedule", "random", "--group-size", 3, "--dtype", "float64",
               "--trace", tmp / "t.h5").exit_code == 0
    result = run("gradient", model, data, "--trace", tmp / "t.h5", "--loss", "count",
                 "--surrogate", "fast-sigmoid", "--out", tmp / "g.h5")
    assert result.exit_code == 0, result.output
    loss, grads = io.read_gradients(tmp / "g.h5")
    with io.open_dataset(data) as d:
        batch = d.take(0, len(d))
    expected = loss_and_grad(io.read_model(model), batch, trace=io.read_trace(tmp / "t.h5"), loss="count", surrogate="fast-sigmoid")
    assert loss == expected[0] and f"{loss:.6f}" in result.output
    assert [g.shape for g in grads] == [(16, 40), (12, 16), (5, 12)]
    for g, e in zip(grads, expected[1]):
        np.testing.assert_array_equal(g, e)


def test_gradient_refuses_a_trace_of_another_model_or_data(files):
    model, data, tmp = files
    run("simulate", model, data, "--schedule", "momentum", "--group-size", 1, "--trace", tmp / "t.h5")
    run("model", "init", "--layers", "40,16,12,5", "--seed", 9, "--out", tmp / "other.h5")
    assert_user_error(run("gradient", tmp / "other.h5", data, "--trace", tmp / "t.h5", "--out", tmp / "g.h5"),
                      "does not replay")
    run("data", "random", "--inputs", 40, "--timesteps", 20, "--density", 0.1, "--samples", 4,
        "--classes", 5, "--out", tmp / "d4.h5")
    assert_user_error(run("gradient", model, tmp / "d4.h5", "--trace", tmp / "t.h5", "--out", tmp / "g.h5"),
                      "6 samples")
    assert_user_error(run("gradient", model, data, "--trace", tmp / "t.h5", "--dtype", "float64",
                          "--out", tmp / "g.h5"), "float32")
    assert not (tmp / "g.h5").exists()


def test_train_then_evaluate_with_json(files):
    import json
    model, data, tmp = files
    run("data", "random", "--inputs", 40, "--timesteps", 20, "--density", 0.1, "--samples", 4,
        "--classes", 5, "--seed", 3, "--out", tmp / "test.h5")
    out = tmp / "trained.h5"
    result = run("train", "--data", data, "--test", tmp / "test.h5", "--hidden", "12", "--schedule", "random",
                 "--group-size", 4, "--epochs", 1, "--batch-size", 3, "--lr", 0.01, "--out", out, "--json")
    assert result.exit_code == 0, result.output
    final = json.loads(result.output.strip().splitlines()[-1])
    keys = {"accuracy", "first_spike_accuracy", "spikes_per_sample", "sops_per_sample",
            "steps_to_first_output", "spikes_to_first_output", "timestep_spikes_to_output",
            "timestep_spikes_to_correct", "loss"}
    assert keys <= set(final)
    assert io.read_model(out).layer_sizes == (40, 12, 5)
    assert (tmp / "trained.curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    resumed = run("train", "--data", data, "--test", tmp / "test.h5", "--hidden", "12", "--schedule", "random",
                  "--group-size", 4, "--epochs", 2, "--batch-size", 3, "--lr", 0.01, "--out", out, "--resume")
    assert resumed.exit_code == 0, resumed.output
    assert "epoch 2:" in resumed.output and "epoch 1:" not in resumed.output
    evaluated = run("evaluate", out, tmp / "test.h5", "--schedule", "random", "--group-size", 4, "--json")
    assert evaluated.exit_code == 0, evaluated.output
    metrics = json.loads(evaluated.output)
    assert keys - {"loss"} <= set(metrics) and metrics["samples"] == 4
    stopped = json.loads(run("evaluate", out, tmp / "test.h5", "--schedule", "random", "--group-size", 4,
                             "--stop-on-output", "--json").output)
    assert stopped["spikes_per_sample"] <= metrics["spikes_per_sample"]
    per_timestep = run("evaluate", out, tmp / "test.h5", "--schedule", "random", "--group-size", 4,
                       "--stop-on-output", 1, "--stop-scope", "timestep", "--json")
    assert per_timestep.exit_code == 0, per_timestep.output
    per_timestep = json.loads(per_timestep.output)
    assert per_timestep["timestep_spikes_to_output"] > 0 and per_timestep != stopped
    table = run("evaluate", out, tmp / "test.h5", "--schedule", "random", "--group-size", 4,
                "--stop-on-output", 1, "--stop-scope", "timestep")
    assert table.exit_code == 0 and "stop +1 per timestep" in table.output
    assert "spikes to output, per timestep" in table.output and "spikes to correct, per timestep" in table.output


def test_train_beta_and_threshold_are_recorded(files):
    from pyasync_snn.io.checkpoint import read_checkpoint
    from pyasync_snn.training import TrainConfig
    model, data, tmp = files
    out = tmp / "neuron.h5"
    result = run("train", "--data", data, "--hidden", "12", "--schedule", "layered", "--epochs", 1,
                 "--batch-size", 3, "--beta", 0.8, "--threshold", 0.5, "--out", out)
    assert result.exit_code == 0, result.output
    network = io.read_model(out)
    assert (network.beta, network.threshold) == (pytest.approx(0.8), pytest.approx(0.5))
    config = TrainConfig.from_json(read_checkpoint(out).config)
    assert (config.beta, config.threshold) == (0.8, 0.5)
    assert_user_error(run("train", "--data", data, "--hidden", "12", "--epochs", 1, "--beta", 1.5,
                          "--out", tmp / "bad.h5"), "beta")
    assert_user_error(run("train", "--data", data, "--hidden", "12", "--epochs", 1, "--threshold", 0,
                          "--out", tmp / "bad.h5"), "threshold")
    assert not (tmp / "bad.h5").exists()


def test_training_and_evaluation_errors_are_one_line(files):
    model, data, tmp = files
    assert_user_error(run("train", "--data", "no-such-dataset", "--out", tmp / "m.h5"), "no-such-dataset")
    assert_user_error(run("train", "--data", data, "--hidden", "8", "--epochs", 1, "--out", tmp / "m.h5",
                          "--resume"), "resume")
    run("model", "init", "--layers", "30,5", "--out", tmp / "small.h5")
    assert_user_error(run("evaluate", model, data, "--schedule", "layered", "--group-size", 1,
                          "--stop-scope", "timestep"), "--stop-on-output")
    assert_user_error(run("evaluate", model, data, "--schedule", "layered", "--group-size", 1,
                          "--stop-on-output", "--stop-scope", "step"), "stop-scope")
    assert_user_error(run("evaluate", tmp / "small.h5", data, "--schedule", "layered", "--group-size", 1),
                      "input channels")


def test_data_list_make_info(tmp_path):
    listing = run("data", "list")
    assert listing.exit_code == 0 and "spatial" in listing.output and "temporal" in listing.output
    made = run("data", "make", "temporal", "--out", tmp_path)
    assert made.exit_code == 0, made.output
    info = run("data", "info", tmp_path / "temporal-test.h5")
    assert info.exit_code == 0, info.output
    assert "200" in info.output and "100" in info.output  # samples, inputs/timesteps
    assert_user_error(run("data", "info", tmp_path / "missing.h5"), "no such file")


def test_data_convert_nmnist_and_split(tmp_path):
    from pyasync_snn.datasets import nmnist
    rng = np.random.default_rng(0)
    for digit in (3, 7):
        folder = tmp_path / "raw" / "Train" / str(digit)
        folder.mkdir(parents=True)
        for i in range(5):
            n = 200
            nmnist.write_bin(folder / f"{i:05d}.bin", rng.integers(0, 34, n), rng.integers(0, 34, n),
                             rng.integers(0, 2, n), np.sort(rng.integers(0, 300_000, n)))
    result = run("data", "convert", "nmnist", tmp_path / "raw", "--out", tmp_path / "n.h5",
                 "--n-timesteps", 30, "--time-window-us", 10000)
    assert result.exit_code == 0, result.output
    with io.open_dataset(tmp_path / "n.h5") as d:
        assert (len(d), d.n_inputs, d.n_timesteps) == (10, 2312, 30)
        assert sorted(set(d.labels.tolist())) == [3, 7]
    result = run("data", "split", tmp_path / "n.h5", "--test-fraction", 0.4, "--out", tmp_path / "parts")
    assert result.exit_code == 0, result.output
    with io.open_dataset(tmp_path / "parts" / "n-train.h5") as tr, \
            io.open_dataset(tmp_path / "parts" / "n-test.h5") as te:
        assert (len(tr), len(te)) == (6, 4)
        assert sorted(te.labels.tolist()) == [3, 3, 7, 7]
        assert tr.take(0, 6).indptr[-1] + te.take(0, 4).indptr[-1] == 10 * 200
        for part, split in ((tr, "train"), (te, "test")):  # the source's provenance is kept
            assert part.attrs["sensor_width"] == 34 and part.attrs["n_polarities"] == 2
            assert part.attrs["split"] == split and part.attrs["split_of"] == "n.h5"
    (tmp_path / "raw" / "Train" / "3" / "00000.bin").write_bytes(b"\x00" * 7)
    assert_user_error(run("data", "convert", "nmnist", tmp_path / "raw", "--out", tmp_path / "bad.h5"),
                      "00000.bin")
    assert not (tmp_path / "bad.h5").exists()


def test_experiment_command_writes_a_report(files):
    model, data, tmp = files
    run("data", "random", "--inputs", 40, "--timesteps", 20, "--density", 0.1, "--samples", 4,
        "--classes", 5, "--seed", 3, "--out", tmp / "test.h5")
    (tmp / "cfg.json").write_text('{"epochs": 1, "hidden": [6], "eval_group_sizes": [1, 0]}')
    result = run("experiment", "--data", data, "--test", tmp / "test.h5", "--seeds", 1, "--config",
                 tmp / "cfg.json", "--out", tmp / "study")
    assert result.exit_code == 0, result.output
    report = (tmp / "study" / "report.md").read_text()
    assert "momentum F=8 training vs layered training" in report
    assert (tmp / "study" / "results.csv").exists() and (tmp / "study" / "results.h5").exists()
    (tmp / "bad.json").write_text('{"epoch": 1}')
    assert_user_error(run("experiment", "--data", data, "--test", tmp / "test.h5", "--config", tmp / "bad.json",
                          "--out", tmp / "study2"), "epoch")


def test_trace_commands_and_explain(files):
    model, data, tmp = files
    run("simulate", model, data, "--schedule", "momentum", "--group-size", 2, "--trace", tmp / "t.h5")
    info = run("trace", "info", tmp / "t.h5")
    assert info.exit_code == 0 and "momentum" in info.output, info.output
    trace = io.read_trace(tmp / "t.h5")
    events = run("trace", "events", tmp / "t.h5", "--sample", 1, "--csv")
    assert events.exit_code == 0, events.output
    lines = events.output.strip().splitlines()
    assert len(lines) == 1 + trace.indptr[2] - trace.indptr[1]  # header + one row per event
    for kind in ("raster", "membrane"):
        result = run("trace", "plot", tmp / "t.h5", "--model", model, "--data", data, "--sample", 1,
                     "--kind", kind, "--out", tmp / f"{kind}.png")
        assert result.exit_code == 0, result.output
        assert (tmp / f"{kind}.png").read_bytes()[:4] == b"\x89PNG"
    assert_user_error(run("trace", "plot", tmp / "t.h5", "--sample", 1, "--kind", "membrane",
                          "--out", tmp / "m.png"), "--model")
    assert_user_error(run("trace", "events", tmp / "t.h5", "--sample", 99), "99")
    story = run("explain", "--text")
    assert story.exit_code == 0 and "momentum" in story.output and "layered" in story.output


def test_too_many_threads_is_one_line(files):
    model, data, tmp = files
    run("simulate", model, data, "--schedule", "layered", "--group-size", 1, "--trace", tmp / "t.h5")
    assert_user_error(run("gradient", model, data, "--trace", tmp / "t.h5", "--threads", 999,
                          "--out", tmp / "g.h5"), "threads")
    assert_user_error(run("simulate", model, data, "--schedule", "layered", "--group-size", 1,
                          "--threads", 999, "--trace", tmp / "t2.h5"), "threads")


def test_group_size_zero_and_hidden_zero_are_refused_clearly(files):
    model, data, tmp = files
    assert_user_error(run("simulate", model, data, "--schedule", "momentum", "--group-size", "0",
                          "--trace", tmp / "t0.h5"), "use 'unbounded'")
    assert not (tmp / "t0.h5").exists()
    assert_user_error(run("train", "--data", data, "--hidden", "0", "--out", tmp / "h0.h5"),
                      "sizes must be positive integers")


def test_labels_outside_the_outputs_are_refused_before_any_kernel(tmp_path):
    """A label >= n_outputs would index past the loss kernel's counts (memory unsafety)."""
    from pyasync_snn import EventBatch, Network, io
    net = Network.xavier([4, 3, 2], seed=0)
    io.write_model(tmp_path / "m.h5", net)
    batch = EventBatch.from_dense(np.ones((2, 3, 4), dtype=int), labels=[0, 5])
    io.write_dataset(tmp_path / "d.h5", batch, 6)
    assert_user_error(run("simulate", tmp_path / "m.h5", tmp_path / "d.h5", "--schedule", "layered",
                          "--trace", tmp_path / "t.h5", "--group-size", "1"), "has 6 classes but the model has 2")
    io.write_trace(tmp_path / "t.h5", simulate(net, batch, schedule="layered", group_size=1))  # the API checks labels later
    for loss in ("rate", "count"):
        assert_user_error(run("gradient", tmp_path / "m.h5", tmp_path / "d.h5", "--trace", tmp_path / "t.h5",
                              "--loss", loss, "--out", tmp_path / "g.h5"), "has 6 classes but the model has 2")
        with pytest.raises(UserError, match=r"labels must lie in \[0, 2\)"):
            loss_and_grad(net, batch, trace=io.read_trace(tmp_path / "t.h5"), loss=loss)
    assert not (tmp_path / "g.h5").exists()


def test_train_test_name_means_its_test_split():
    from pyasync_snn.datasets import resolve_train_test
    train_path, test_path = resolve_train_test("spatial", "spatial")
    assert train_path.endswith("spatial-train.h5") and test_path.endswith("spatial-test.h5")


def test_evaluate_defaults_to_the_checkpoints_own_setting(files):
    model, data, tmp = files
    checkpoint = tmp / "ck.h5"
    assert run("train", "--data", data, "--hidden", "8", "--schedule", "random", "--group-size", "3",
               "--epochs", "1", "--out", checkpoint).exit_code == 0
    own = run("evaluate", checkpoint, data, "--json")
    explicit = run("evaluate", checkpoint, data, "--schedule", "random", "--group-size", "3", "--json")
    assert own.exit_code == 0 and own.output == explicit.output
    layered = run("evaluate", model, data, "--schedule", "layered", "--json")  # F not needed
    assert layered.exit_code == 0 and "accuracy" in layered.output
    assert_user_error(run("evaluate", model, data), "no training state", "--schedule")
    assert_user_error(run("evaluate", model, data, "--schedule", "momentum"), "needs --group-size")


def test_train_gradient_options_are_recorded(files):
    from pyasync_snn.io.checkpoint import checkpoint_config
    from pyasync_snn.training import TrainConfig
    model, data, tmp = files
    out = tmp / "gm.h5"
    assert run("train", "--data", data, "--hidden", "8", "--epochs", "1", "--gradient", "reference",
               "--full-reset", "--surrogate-param", "3", "--out", out).exit_code == 0
    config = TrainConfig.from_json(checkpoint_config(out))
    assert (config.gradient, config.detach_reset, config.surrogate_param) == ("reference", False, 3.0)
    assert checkpoint_config(model) is None  # a plain model file
    assert_user_error(run("train", "--data", data, "--gradient", "autograd", "--out", tmp / "x.h5"),
                      "--gradient")


def test_epoch_summary_gets_its_own_line_after_the_progress_bar():
    """On a terminal the bar redraws its line with \\r; the epoch summary must start a new line."""
    import io as text_io
    from pyasync_snn.cli import _EpochBar

    class Terminal(text_io.StringIO):
        def isatty(self):
            return True

    screen = Terminal()
    bar = _EpochBar(2, screen)
    bar.update(1, 0, 2, float("nan"), float("nan"))   # shown before the first (compiling) batch
    assert "epoch 1/2" in screen.getvalue()
    bar.update(1, 1, 2, 1.5, 0.5)
    bar.update(1, 2, 2, 1.0, 0.75)
    bar.close("epoch 1: train loss 1.0")
    lines = re.sub(r"\x1b\[\?25[lh]", "", screen.getvalue()).replace("\r", "\n").splitlines()  # no cursor codes
    assert "epoch 1: train loss 1.0" in lines                 # alone on its line
    assert any(line.startswith("epoch 1/2") and "loss 1.0000 acc 0.750" in line for line in lines)


# ---------------------------------------------------------------- conv layers and queued inputs
def test_conv_model_init_simulate_gradient_train(tmp_path):
    model, data = tmp_path / "conv.h5", tmp_path / "data.h5"
    result = run("model", "init", "--layers", "2x5x4,c3k3s2p1,c4k2,5", "--out", model)
    assert result.exit_code == 0, result.output
    assert "2x5x4,c3k3s2p1,c4k2,5" in result.output
    network = io.read_model(model)
    assert [w.shape for w in network.weights] == [(3, 2, 3, 3), (4, 3, 2, 2), (5, 8)]
    assert run("data", "random", "--inputs", 40, "--timesteps", 12, "--density", 0.3, "--samples", 6,
               "--classes", 5, "--out", data).exit_code == 0
    trace = tmp_path / "t.h5"
    result = run("simulate", model, data, "--schedule", "momentum", "--group-size", 2, "--input-queue",
                 "--dtype", "float64", "--trace", trace)
    assert result.exit_code == 0, result.output
    recorded = io.read_trace(trace)
    assert recorded.input_queue and (recorded.neuron < 0).sum() > 50
    grads = tmp_path / "g.h5"
    assert run("gradient", model, data, "--trace", trace, "--out", grads).exit_code == 0
    loss, written = io.read_gradients(grads)
    with io.open_dataset(data) as d:
        expected = loss_and_grad(network, d.take(0, len(d)), trace=recorded)
    assert np.isclose(loss, expected[0]) and all(np.allclose(a, b) for a, b in zip(written, expected[1]))
    out = tmp_path / "trained.h5"
    result = run("train", "--data", data, "--hidden", "2x5x4,c3k3s2p1", "--epochs", 1, "--input-queue",
                 "--out", out)
    assert result.exit_code == 0, result.output
    trained = io.read_model(out)
    assert trained.spelling() == "2x5x4,c3k3s2p1,5" and trained.convs[0] is not None


@pytest.mark.parametrize("layers,words", [("2x5x4,c3k9,5", ["larger than the padded input"]),
                                          ("2x5x4,c3k3s0,5", ["stride"]),
                                          ("2x5x4,c3x3,5", ["cannot read layer"]),
                                          ("c3k3,5", ["input shape"])])
def test_bad_conv_spelling_is_one_line(tmp_path, layers, words):
    assert_user_error(run("model", "init", "--layers", layers, "--out", tmp_path / "m.h5"), *words)
    assert not (tmp_path / "m.h5").exists()


def test_conv_input_shape_must_match_the_data(tmp_path):
    model, data = tmp_path / "conv.h5", tmp_path / "data.h5"
    assert run("model", "init", "--layers", "2x5x5,c3k3,5", "--out", model).exit_code == 0
    assert run("data", "random", "--inputs", 40, "--timesteps", 5, "--density", 0.2, "--samples", 2, "--classes", 5,
               "--out", data).exit_code == 0
    assert_user_error(run("simulate", model, data, "--schedule", "layered"), "40 input channels", "50")
    result = run("train", "--data", data, "--hidden", "2x5x5,c3k3", "--epochs", 1, "--out", tmp_path / "t.h5")
    last = result.output.strip().splitlines()[-1]  # after the "training ..." line
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert last.startswith("Error:") and "2x5x5" in last and "40" in last
    assert not (tmp_path / "t.h5").exists()
