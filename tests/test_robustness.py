"""Bad files and hostile conditions: each class a file fuzzer or a fault test found.

Every case must end in a one-line ``Error: ...`` and a non-zero exit (never a traceback, a crash,
or a silently wrong answer) and must leave no output file behind.
"""
import os
import resource
import shutil
import subprocess
import sys
import warnings

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from pyasync_snn import EventBatch, Network, io, simulate
from pyasync_snn.cli import main
from pyasync_snn.io.atomic import output_lock
from pyasync_snn.training import TrainConfig, train

LAYERS = (12, 8, 3)


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def assert_refused(result, *words):
    """Exit 1 with one line on stderr (stdout may have said what the command set out to do)."""
    output = result.stderr.strip()
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output and len(output.splitlines()) == 1, result.output
    assert output.startswith("Error:"), output
    for word in words:
        assert word in output, (word, output)


@pytest.fixture
def files(tmp_path):
    """A model, a dataset of 6 samples and its momentum F=2 trace."""
    network = Network.xavier(LAYERS, seed=0)
    rng = np.random.default_rng(0)
    batch = EventBatch.from_dense(rng.random((6, 10, LAYERS[0])) < 0.3, labels=rng.integers(0, 3, 6))
    paths = {"model": tmp_path / "model.h5", "data": tmp_path / "data.h5", "trace": tmp_path / "trace.h5"}
    io.write_model(paths["model"], network)
    io.write_dataset(paths["data"], batch, 3)
    io.write_trace(paths["trace"], simulate(network, batch, schedule="momentum", group_size=2))
    return paths


def mutated(path, tmp_path, edit, name="mutated.h5"):
    """A copy of ``path`` changed in place by ``edit(h5file)``."""
    target = tmp_path / name
    shutil.copy(path, target)
    with h5py.File(target, "a") as f:
        edit(f)
    return target


def replace(key, values):
    def edit(f):
        del f[key]
        f[key] = values
    return edit


def set_attr(key, value):
    def edit(f):
        f.attrs[key] = value
    return edit


def flip_a_data_byte(path, key):
    """Flip one byte inside the stored data of dataset ``key`` (not its metadata)."""
    with h5py.File(path, "r") as f:
        d = f[key]
        offset = d.id.get_chunk_info(0).byte_offset if d.chunks else d.id.get_offset()
    with open(path, "r+b") as fh:
        fh.seek(offset + 1)
        byte = fh.read(1)
        fh.seek(offset + 1)
        fh.write(bytes([byte[0] ^ 0x40]))


# ---------------------------------------------------------------- silent wrong answers

@pytest.mark.parametrize("key", ["events/unit", "events/timestep"])
def test_event_indices_past_int32_are_refused_everywhere(files, tmp_path, key):
    """2^32 + 5 would wrap to 5 in int32 and run on corrupted input."""
    def edit(f):
        values = f[key][:].astype(np.int64)
        values[0] = 2**32 + 5
        replace(key, values)(f)
    bad = mutated(files["data"], tmp_path, edit)
    assert_refused(run("data", "info", bad), "out of range")
    assert_refused(run("simulate", files["model"], bad, "--schedule", "momentum", "--group-size", "2",
                       "--trace", tmp_path / "t.h5"), "out of range")
    assert_refused(run("evaluate", files["model"], bad, "--schedule", "layered"), "out of range")
    assert_refused(run("train", "--data", bad, "--hidden", "4", "--epochs", "1", "--out", tmp_path / "m.h5"),
                   "out of range")
    assert not (tmp_path / "t.h5").exists() and not (tmp_path / "m.h5").exists()


@pytest.mark.parametrize("attr, value, words", [("n_inputs", 13, "13 input channels"),
                                                ("n_classes", 4, "4 classes but the model has 3")])
def test_gradient_refuses_data_that_does_not_fit_the_model(files, tmp_path, attr, value, words):
    bad = mutated(files["data"], tmp_path, set_attr(attr, value))
    assert_refused(run("gradient", files["model"], bad, "--trace", files["trace"], "--out", tmp_path / "g.h5"),
                   words)
    assert not (tmp_path / "g.h5").exists()


def test_data_info_reads_and_checks_every_event(files, tmp_path):
    assert run("data", "info", files["data"]).exit_code == 0
    too_far = mutated(files["data"], tmp_path, lambda f: f["events/unit"].__setitem__(0, LAYERS[0]))
    assert_refused(run("data", "info", too_far), "events/unit out of range")
    late = mutated(files["data"], tmp_path, lambda f: f["events/timestep"].__setitem__(0, 10), "late.h5")
    assert_refused(run("data", "info", late), "events/timestep out of range")
    flipped = tmp_path / "flipped.h5"
    shutil.copy(files["data"], flipped)
    flip_a_data_byte(flipped, "events/unit")
    assert_refused(run("data", "info", flipped), "events/unit", "corrupt")


@pytest.mark.parametrize("key", ["layers/0/weight", "layers/1/weight"])
def test_a_flipped_byte_in_a_model_is_an_error_not_a_number(files, tmp_path, key):
    """Every dataset the project writes carries a Fletcher-32 checksum, checked on read."""
    with h5py.File(files["model"], "r") as f:
        assert f[key].fletcher32
    flip_a_data_byte(files["model"], key)
    assert_refused(run("simulate", files["model"], files["data"], "--schedule", "layered",
                       "--trace", tmp_path / "t.h5"), key, "corrupt")


@pytest.fixture
def checkpoint(files, tmp_path):
    config = TrainConfig(hidden=(4,), epochs=2, batch_size=3, seed=0)
    path = tmp_path / "ck.h5"
    train(files["data"], None, config=config, out_path=path)
    return path


def resume(files, checkpoint, *extra):
    return run("train", "--data", files["data"], "--hidden", "4", "--epochs", "3", "--batch-size", "3",
               "--out", checkpoint, "--resume", *extra)


@pytest.mark.parametrize("edit, words", [
    (replace("history/train_loss", [1.0, 2.0, 3.0]), "history/train_loss has 3 entries for 2"),
    (lambda f: f["optimizer"].attrs.__setitem__("lr", 0.5), "lr is 0.5"),
    (lambda f: f["neuron"].attrs.__setitem__("threshold", 0.7), "threshold is 0.7"),
    (lambda f: f["neuron"].attrs.__setitem__("beta", 0.5), "beta is 0.5"),
])
def test_resume_refuses_a_checkpoint_that_contradicts_itself(files, checkpoint, tmp_path, edit, words):
    with h5py.File(checkpoint, "a") as f:
        edit(f)
    before = checkpoint.read_bytes()
    assert_refused(resume(files, checkpoint), words)
    assert checkpoint.read_bytes() == before


def test_resume_still_works_on_an_intact_checkpoint(files, checkpoint):
    assert resume(files, checkpoint).exit_code == 0


# ---------------------------------------------------------------- absurd sizes, no tracebacks

@pytest.mark.parametrize("attr", ["n_timesteps", "n_inputs", "n_classes"])
@pytest.mark.parametrize("value", [10**12, 2**31 + 8])
def test_absurd_dataset_sizes_are_refused(files, tmp_path, attr, value):
    bad = mutated(files["data"], tmp_path, set_attr(attr, value))
    for args in (("data", "info", bad),
                 ("simulate", files["model"], bad, "--schedule", "layered", "--trace", tmp_path / "t.h5"),
                 ("evaluate", files["model"], bad, "--schedule", "layered"),
                 ("train", "--data", bad, "--hidden", "4", "--epochs", "1", "--out", tmp_path / "m.h5")):
        assert_refused(run(*args), attr, "[1, 2^31)")
    assert not (tmp_path / "t.h5").exists() and not (tmp_path / "m.h5").exists()


def test_sizes_too_large_for_memory_are_refused_up_front(files, tmp_path, monkeypatch):
    """2^31 - 1 timesteps is a legal size, but the per-timestep arrays do not fit in memory."""
    monkeypatch.setattr("pyasync_snn.memory.physical_memory", lambda: 1 << 30)
    bad = mutated(files["data"], tmp_path, set_attr("n_timesteps", 2**31 - 1))
    assert run("data", "info", bad).exit_code == 0
    assert_refused(run("simulate", files["model"], bad, "--schedule", "layered", "--trace", tmp_path / "t.h5"),
                   "memory", "1.0 GB")
    assert_refused(run("evaluate", files["model"], bad, "--schedule", "layered"), "memory")
    long_trace = mutated(files["trace"], tmp_path, set_attr("n_timesteps", 2**31 - 1), "long.h5")
    assert_refused(run("trace", "info", long_trace), "memory")
    assert not (tmp_path / "t.h5").exists()


def test_an_emitted_step_beyond_the_events_is_refused(files, tmp_path):
    def edit(f):
        f["events/emitted_step"][3] = 2**30
    bad = mutated(files["trace"], tmp_path, edit)
    for args in (("trace", "info", bad),
                 ("trace", "plot", bad, "--sample", "0", "--kind", "raster", "--out", tmp_path / "r.png"),
                 ("gradient", files["model"], files["data"], "--trace", bad, "--out", tmp_path / "g.h5")):
        assert_refused(run(*args), "emitted_step")
    assert not (tmp_path / "r.png").exists() and not (tmp_path / "g.h5").exists()


def test_weights_that_overflow_float32_are_refused_without_a_warning(files, tmp_path):
    bad = mutated(files["model"], tmp_path, replace("layers/0/weight", np.full((8, 12), 1e39)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a RuntimeWarning (overflow in cast) would fail here
        assert_refused(run("simulate", bad, files["data"], "--schedule", "layered", "--trace", tmp_path / "t.h5"),
                       "do not fit float32")
    assert run("simulate", bad, files["data"], "--schedule", "layered", "--dtype", "float64",
               "--trace", tmp_path / "t.h5").exit_code == 0  # float64 holds them


def test_membranes_that_overflow_float32_are_refused(files, tmp_path):
    """A few inputs of weight 1e38 sum past float32's largest number: inf membranes."""
    bad = mutated(files["model"], tmp_path, replace("layers/0/weight", np.full((8, 12), 1e38, np.float32)))
    assert_refused(run("simulate", bad, files["data"], "--schedule", "momentum", "--group-size", "1",
                       "--trace", tmp_path / "t.h5"), "overflowed")
    assert_refused(run("evaluate", bad, files["data"], "--schedule", "layered"), "overflowed")
    assert not (tmp_path / "t.h5").exists()


def test_gradients_that_overflow_are_refused(files, tmp_path):
    """A weight near float64's largest runs forward, but the backward pass multiplies it: inf."""
    w = io.read_model(files["model"]).weights[1].astype(np.float64)
    w[0, 0] = -1.7e308
    bad = mutated(files["model"], tmp_path, replace("layers/1/weight", w))
    trace = tmp_path / "t.h5"
    assert run("simulate", bad, files["data"], "--schedule", "momentum", "--group-size", "1", "--dtype", "float64",
               "--trace", trace).exit_code == 0
    assert_refused(run("gradient", bad, files["data"], "--trace", trace, "--loss", "count",
                       "--out", tmp_path / "g.h5"), "overflowed to inf or NaN")
    assert not (tmp_path / "g.h5").exists()


# ---------------------------------------------------------------- outputs

def test_an_output_that_is_an_input_or_not_a_file_is_refused(files, tmp_path):
    before = files["model"].read_bytes()
    assert_refused(run("gradient", files["model"], files["data"], "--trace", files["trace"],
                       "--out", files["model"]), "also an input")
    assert files["model"].read_bytes() == before
    assert_refused(run("simulate", files["model"], files["data"], "--schedule", "layered",
                       "--trace", files["data"]), "also an input")
    assert_refused(run("gradient", files["model"], files["data"], "--trace", files["trace"],
                       "--out", "/dev/null"), "not a regular file")
    assert os.path.exists("/dev/null") and not os.path.isfile("/dev/null")
    assert_refused(run("model", "init", "--layers", "4,2", "--out", "/dev/null"), "not a regular file")


def test_a_second_writer_of_the_same_checkpoint_is_refused(files, tmp_path):
    out = tmp_path / "m.h5"
    with output_lock(out):  # a training run holds it
        assert_refused(run("train", "--data", files["data"], "--hidden", "4", "--epochs", "1", "--out", out),
                       "another run is writing it")
        assert not out.exists()
    assert run("train", "--data", files["data"], "--hidden", "4", "--epochs", "1", "--out", out).exit_code == 0
    assert sorted(os.listdir(tmp_path)) == sorted(["model.h5", "data.h5", "trace.h5", "m.h5", "m.curves.png"])


def test_temporary_files_of_killed_writers_are_removed(files, tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    stale = tmp_path / f".g.h5.tmp-{dead}-0123456789ab"
    running = tmp_path / f".g.h5.tmp-{os.getpid()}-0123456789ab"   # a live writer's: kept
    other = tmp_path / f".other.h5.tmp-{dead}-0123456789ab"        # another target's: not ours
    for path in (stale, running, other):
        path.write_bytes(b"partial")
    assert run("gradient", files["model"], files["data"], "--trace", files["trace"],
               "--out", tmp_path / "g.h5").exit_code == 0
    assert not stale.exists() and running.exists() and other.exists()


# ---------------------------------------------------------------- a full disk

def cli(*args, file_limit=None):
    """The CLI in a child process, optionally under a file-size limit (a full disk for it)."""
    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (file_limit, file_limit))
    return subprocess.run([sys.executable, "-m", "pyasync_snn.cli", *map(str, args)], capture_output=True,
                          text=True, preexec_fn=limit if file_limit else None, timeout=600)


def assert_disk_error(result, target):
    assert result.returncode == 1, (result.returncode, result.stderr[-2000:])
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"Error: {target}: cannot write"), result.stderr[-2000:]


def no_temporaries(folder):
    return not [name for name in os.listdir(folder) if ".tmp-" in name]


@pytest.fixture
def bigger(tmp_path):
    """A model and data whose trace is a few hundred KB."""
    network = Network.xavier((200, 64, 10), seed=0)
    rng = np.random.default_rng(1)
    batch = EventBatch.from_dense(rng.random((40, 50, 200)) < 0.05, labels=rng.integers(0, 10, 40))
    io.write_model(tmp_path / "net.h5", network)
    io.write_dataset(tmp_path / "in.h5", batch, 10)
    return tmp_path / "net.h5", tmp_path / "in.h5"


def test_a_full_disk_during_simulate_is_a_one_line_error(bigger, tmp_path):
    model, data = bigger
    trace = tmp_path / "out.h5"
    trace.write_bytes(b"the previous file")
    result = cli("simulate", model, data, "--schedule", "momentum", "--group-size", "1", "--trace", trace,
                 file_limit=64 * 1024)
    assert_disk_error(result, trace)
    assert trace.read_bytes() == b"the previous file" and no_temporaries(tmp_path)


def test_a_full_disk_during_training_keeps_the_checkpoint(bigger, tmp_path):
    _, data = bigger
    out = tmp_path / "ck.h5"
    args = ("train", "--data", data, "--hidden", "256", "--batch-size", "20", "--out", out)
    assert cli(*args, "--epochs", "1").returncode == 0
    before = out.read_bytes()
    assert_disk_error(cli(*args, "--epochs", "2", "--resume", file_limit=len(before) // 2), out)
    assert out.read_bytes() == before and no_temporaries(tmp_path)


def test_a_full_disk_during_conversion_is_a_one_line_error(tmp_path):
    from pyasync_snn.datasets.nmnist import write_bin
    rng = np.random.default_rng(0)
    for digit in range(2):
        folder = tmp_path / "nm" / "Train" / str(digit)
        folder.mkdir(parents=True)
        for k in range(20):
            n = 3000
            write_bin(folder / f"{k:05d}.bin", rng.integers(0, 34, n), rng.integers(0, 34, n),
                      rng.integers(0, 2, n), np.sort(rng.integers(0, 300_000, n)))
    out = tmp_path / "nm.h5"
    assert_disk_error(cli("data", "convert", "nmnist", tmp_path / "nm", "--out", out, file_limit=32 * 1024), out)
    assert not out.exists() and no_temporaries(tmp_path)


def test_a_trace_replays_only_on_a_network_of_its_sizes(files, tmp_path):
    other = tmp_path / "other.h5"
    io.write_model(other, Network.xavier((12, 6, 3), seed=0))
    for args in (("gradient", other, files["data"], "--trace", files["trace"], "--out", tmp_path / "g.h5"),
                 ("trace", "plot", files["trace"], "--model", other, "--data", files["data"], "--sample", "0",
                  "--kind", "membrane", "--out", tmp_path / "m.png")):
        assert_refused(run(*args), "recorded on a 12-8-3 network, the model is 12-6-3")


def test_files_are_written_in_the_hdf5_1_10_format(files):
    """The v110 lower bound (compact chunk indexes): readable by HDF5 >= 1.10."""
    with h5py.File(files["model"], "r") as f:
        assert f.id.get_create_plist().get_version()[0] == 3  # superblock 3 (HDF5's default: 0)


def test_public_functions_take_keywords_after_the_first_two(files):
    from pyasync_snn.gradients import loss_and_grad
    network, batch = io.read_model(files["model"]), io.open_dataset(files["data"]).take(0, 2)
    with pytest.raises(TypeError):
        simulate(network, batch, "momentum", 2)
    trace = simulate(network, batch, schedule="momentum", group_size=2)
    with pytest.raises(TypeError):
        loss_and_grad(network, batch, trace)
