"""Training: AdamW by hand, exact resume, SIGKILL integrity, a tiny run that learns, checkpoints."""
import inspect
import os
import select
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from pyasync_snn import io
from pyasync_snn.errors import UserError
from pyasync_snn.events import EventBatch
from pyasync_snn.gradients import loss_and_grad
from pyasync_snn.network import Network
from pyasync_snn.optim import Adam
from pyasync_snn.plots import curves_path
from pyasync_snn.plots.curves import draw_checkpoint_curves
from pyasync_snn.simulate import simulate
from pyasync_snn import training
from pyasync_snn.evaluation import evaluate, loss_from_trace
from pyasync_snn.io.checkpoint import read_checkpoint
from pyasync_snn.training import TIME_KEYS, TrainConfig, train

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


# ---------------------------------------------------------------- helpers

def synthetic(n, seed, n_classes=4, n_inputs=20, n_timesteps=10, signal_spikes=12, noise_spikes=3):
    """Class ``c`` fires mostly on channels ``5c..5c+4``, at random timesteps, plus a little noise."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % n_classes
    rng.shuffle(labels)
    timesteps, units, counts = [], [], []
    for c in labels:
        unit = np.concatenate([rng.integers(5 * c, 5 * c + 5, signal_spikes),
                               rng.integers(0, n_inputs, noise_spikes)])
        timesteps.append(rng.integers(0, n_timesteps, len(unit)))
        units.append(unit)
        counts.append(len(unit))
    return EventBatch(np.concatenate([[0], np.cumsum(counts)]), np.concatenate(timesteps),
                      np.concatenate(units), labels, n_inputs, n_timesteps)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """``(train.h5, test.h5)``: 80 and 40 samples of the synthetic 4-class set."""
    d = tmp_path_factory.mktemp("data")
    train_path, test_path = str(d / "train.h5"), str(d / "test.h5")
    io.write_dataset(train_path, synthetic(80, seed=0), 4)
    io.write_dataset(test_path, synthetic(40, seed=1), 4)
    return train_path, test_path


def small_config(**changes):
    values = dict(hidden=(16,), schedule="momentum", group_size=4, epochs=2, batch_size=16, lr=1e-2,
                  seed=3, input_dropout=0.2, refractory_dropout=0.1)
    values.update(changes)
    return TrainConfig(**values)


def one_line_error(fn, *contains):
    with pytest.raises(UserError) as info:
        fn()
    message = str(info.value)
    assert "\n" not in message
    for part in contains:
        assert part in message, f"{part!r} not in {message!r}"
    return message


def without_times(history):
    return {k: v for k, v in history.items() if k not in TIME_KEYS}


def assert_same_history(a, b):
    a, b = without_times(a), without_times(b)
    assert a.keys() == b.keys()
    for key in a:
        assert np.array_equal(np.asarray(a[key], float), np.asarray(b[key], float), equal_nan=True), key


def assert_same_checkpoint(a, b):
    assert len(a.network.weights) == len(b.network.weights)
    for wa, wb in zip(a.network.weights, b.network.weights):
        assert wa.dtype == wb.dtype and np.array_equal(wa, wb)
    assert a.optimizer.t == b.optimizer.t
    for name in ("m", "v"):
        for xa, xb in zip(getattr(a.optimizer, name), getattr(b.optimizer, name)):
            assert np.array_equal(xa, xb)
    assert a.epochs_completed == b.epochs_completed
    assert a.config == b.config
    assert_same_history(a.history, b.history)


# ---------------------------------------------------------------- (a) the optimizer by hand

def test_adamw_two_steps_by_hand():
    # lr 0.1, beta1 0.9, beta2 0.999, eps 1e-8, weight decay 0.01; w0 = [1, -2]
    opt = Adam([(2,)], lr=0.1, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.01)
    w0 = np.array([1.0, -2.0])

    # t = 1, g = [0.5, -0.1]
    #   m = 0.1 g = [0.05, -0.01]           v = 0.001 g^2 = [0.00025, 0.00001]
    #   m_hat = m / 0.1 = [0.5, -0.1]       v_hat = v / 0.001 = [0.25, 0.01], sqrt = [0.5, 0.1]
    #   w = w - 0.1 (m_hat / (sqrt + 1e-8) + 0.01 w)
    #     = [1 - 0.1 (0.99999998 + 0.01), -2 - 0.1 (-0.9999999 - 0.02)]
    (w1,) = opt.step([w0], [np.array([0.5, -0.1])])
    assert opt.t == 1
    np.testing.assert_allclose(opt.m[0], [0.05, -0.01], rtol=1e-14)
    np.testing.assert_allclose(opt.v[0], [0.00025, 0.00001], rtol=1e-12)
    np.testing.assert_allclose(w1, [0.899000001999999960, -1.898000009999999000], rtol=1e-14)

    # t = 2, g = [-0.2, 0.3]
    #   m = 0.9 m + 0.1 g = [0.025, 0.021]
    #   v = 0.999 v + 0.001 g^2 = [0.00028975, 0.00009999]
    #   corrections 1 - 0.9^2 = 0.19, 1 - 0.999^2 = 0.001999
    #   m_hat = [0.131578947368421, 0.110526315789474]
    #   v_hat = [0.144947473736868, 0.0500200100050025], sqrt = [0.380719678683501, 0.223651537005679]
    (w2,) = opt.step([w1], [np.array([-0.2, 0.3])])
    assert opt.t == 2
    np.testing.assert_allclose(opt.m[0], [0.025, 0.021], rtol=1e-12)
    np.testing.assert_allclose(opt.v[0], [0.00028975, 0.00009999], rtol=1e-12)
    np.testing.assert_allclose(w2, [0.863540418114510585, -1.945520991110065786], rtol=1e-13)

    # the state survives a round trip and the next step is the same
    clone = Adam.from_state(opt.state_dict())
    g3 = [np.array([0.05, 0.05])]
    assert np.array_equal(clone.step([w2], g3)[0], opt.step([w2], g3)[0])

    # weights keep their dtype; shapes are checked
    (w32,) = Adam([(2,)]).step([w0.astype(np.float32)], [np.ones(2)])
    assert w32.dtype == np.float32
    one_line_error(lambda: opt.step([w0], [np.ones(3)]), "shape")
    one_line_error(lambda: Adam([(2,)], lr=0), "learning rate")


# ---------------------------------------------------------------- configuration and helpers

def test_config_validation_one_line():
    for kwargs, part in [(dict(lr=0), "learning rate"), (dict(schedule="fast"), "schedule"),
                         (dict(input_dropout=1.0), "input dropout"), (dict(hidden="8,x"), "hidden"),
                         (dict(batch_size=0), "batch size"), (dict(group_size=-1), "group size"),
                         (dict(loss="mse"), "loss"), (dict(surrogate="relu"), "surrogate"),
                         (dict(beta=1.5), "beta"), (dict(epochs=2.5), "epochs"),
                         (dict(eval_schedule="x"), "evaluation schedule"), (dict(threads=0), "threads"),
                         (dict(gradient="autograd"), "gradient mode"), (dict(detach_reset="yes"), "detach_reset"),
                         (dict(surrogate_param=0), "surrogate parameter")]:
        one_line_error(lambda: TrainConfig(**kwargs), part)
    config = TrainConfig(hidden="8, 4", eval_group_size=0)
    assert config.hidden == (8, 4) and config.evaluation == ("momentum", 0)
    assert TrainConfig.from_json(config.to_json()) == config


def test_select_from_a_file_or_memory_and_loss_from_trace(data):
    train_path, _ = data
    indices = [7, 3, 4, 5, 60, 3]
    with io.open_dataset(train_path) as f:
        whole = f.take(0, len(f))
        from_file = f.select(indices)
    from_memory = whole.select(indices)
    for name in ("indptr", "timestep", "unit", "labels", "sample_ids"):
        assert np.array_equal(getattr(from_file, name), getattr(from_memory, name)), name
    assert list(from_file.sample_ids) == indices
    for i, j in enumerate(indices):
        assert np.array_equal(from_file.dense(i), whole.dense(j))

    net = Network.xavier([20, 16, 4], seed=1)
    trace = simulate(net, whole, schedule="momentum", group_size=4, seed=0)
    for loss in ("rate", "count"):
        mean, _ = loss_and_grad(net, whole, trace=trace, loss=loss)
        assert abs(loss_from_trace(net, trace, whole.labels, loss).mean() - mean) < 1e-12


def test_reading_batches_from_file_equals_in_memory(data, tmp_path, monkeypatch):
    train_path, test_path = data
    in_memory, from_file = str(tmp_path / "memory.h5"), str(tmp_path / "file.h5")
    train(train_path, test_path, config=small_config(epochs=1), out_path=in_memory)
    monkeypatch.setattr(training, "IN_MEMORY_EVENTS", 0)
    train(train_path, test_path, config=small_config(epochs=1), out_path=from_file)
    assert_same_checkpoint(read_checkpoint(in_memory), read_checkpoint(from_file))


# ---------------------------------------------------------------- (b) resume equivalence, (e) mismatch

def test_resume_is_bit_identical(data, tmp_path):
    train_path, test_path = data
    straight, halves = str(tmp_path / "straight.h5"), str(tmp_path / "halves.h5")
    history_straight = train(train_path, test_path, config=small_config(epochs=2), out_path=straight)
    first = train(train_path, test_path, config=small_config(epochs=1), out_path=halves)
    assert len(first["epoch"]) == 1
    checkpoints = []

    def draw_curves(path, history, config):  # what the CLI passes
        checkpoints.append((path, len(history["epoch"]), config))
        draw_checkpoint_curves(path, history, config)

    history_resumed = train(train_path, test_path, config=small_config(epochs=2), out_path=halves, resume=True,
                            on_checkpoint=draw_curves)
    assert checkpoints == [(halves, 2, small_config(epochs=2))]
    assert history_resumed["epoch"] == [1, 2]
    assert_same_history(history_straight, history_resumed)
    assert_same_checkpoint(read_checkpoint(straight), read_checkpoint(halves))
    # the checkpoint is an ordinary model file
    assert io.read_model(halves).layer_sizes == (20, 16, 4)
    # (f) the learning curves
    with open(curves_path(halves), "rb") as fh:
        assert fh.read(8) == PNG_MAGIC

    # (e) a different configuration, a missing file, fewer epochs
    one_line_error(lambda: train(train_path, test_path, config=small_config(epochs=3, lr=5e-3), out_path=halves,
                                 resume=True), "lr")
    one_line_error(lambda: train(train_path, test_path, config=small_config(epochs=3, hidden=(8,)), out_path=halves,
                                 resume=True), "hidden")
    one_line_error(lambda: train(train_path, None, config=small_config(epochs=3), out_path=halves, resume=True), "test")
    one_line_error(lambda: train(train_path, test_path, config=small_config(epochs=1), out_path=halves, resume=True),
                   "already completed 2")
    one_line_error(lambda: train(train_path, test_path, config=small_config(), out_path=str(tmp_path / "none.h5"),
                                 resume=True), "no checkpoint")
    # threads and checkpoint_every may change
    more = train(train_path, test_path, config=small_config(epochs=3, threads=1, checkpoint_every=5), out_path=halves,
                 resume=True)
    assert more["epoch"] == [1, 2, 3]


# ---------------------------------------------------------------- (c) SIGKILL mid-run

KILL_SCRIPT = """
import sys
from pyasync_snn.training import TrainConfig, train
def progress(epoch, batch, n_batches, loss, accuracy):
    print(epoch, batch, n_batches, flush=True)
train(sys.argv[1], None, config=TrainConfig(hidden=(32,), group_size=2, epochs=10000, batch_size=4,
                                            lr=1e-3, seed=0), out_path=sys.argv[2], progress=progress)
"""


def test_sigkill_mid_epoch_leaves_checkpoint_intact(tmp_path):
    train_path, model = str(tmp_path / "train.h5"), str(tmp_path / "model.h5")
    io.write_dataset(train_path, synthetic(120, seed=5), 4)
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, train_path, model],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        deadline = time.monotonic() + 60
        killed_at = None
        while time.monotonic() < deadline:
            ready, _, _ = select.select([proc.stdout], [], [], 1.0)
            if not ready:
                assert proc.poll() is None, proc.stderr.read().decode()
                continue
            line = proc.stdout.readline()
            assert line, proc.stderr.read().decode()
            epoch, batch, n_batches = map(int, line.split())
            # a checkpoint exists and the run is halfway through a later epoch
            if epoch >= 2 and batch == n_batches // 2 and os.path.exists(model):
                proc.send_signal(signal.SIGKILL)
                killed_at = epoch
                break
        assert killed_at is not None, "the run never reached its second epoch"
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL

    checkpoint = read_checkpoint(model)     # intact and complete
    assert 1 <= checkpoint.epochs_completed <= killed_at - 1
    assert len(checkpoint.history["epoch"]) == checkpoint.epochs_completed
    assert io.read_model(model).layer_sizes == (20, 32, 4)
    leftovers = set(os.listdir(tmp_path)) - {"train.h5", "model.h5"}
    for name in leftovers:   # the lock, and a temporary file being written at the kill; never the model
        assert name == ".model.h5.lock" or name.startswith(".model.h5.tmp-"), leftovers

    done = checkpoint.epochs_completed
    config = TrainConfig(hidden=(32,), group_size=2, epochs=done + 1, batch_size=4, lr=1e-3, seed=0)
    history = train(train_path, None, config=config, out_path=model, resume=True)
    assert history["epoch"] == list(range(1, done + 2))
    assert read_checkpoint(model).epochs_completed == done + 1
    # the resumed run took the lock, removed the killed run's temporary file, and released the lock
    assert set(os.listdir(tmp_path)) == {"train.h5", "model.h5"}


# ---------------------------------------------------------------- (d) it learns; evaluate

def test_training_through_f1_learns(data, tmp_path):
    """Fully sequential event processing (momentum F = 1) with the default gradient settings."""
    train_path, test_path = data
    config = TrainConfig(hidden=(32, 32), schedule="momentum", group_size=1, epochs=4, batch_size=16,
                         lr=1e-2, seed=0)
    history = train(train_path, test_path, config=config, out_path=str(tmp_path / "f1.h5"))
    assert history["test_accuracy"][-1] >= 0.8          # chance is 0.25
    norms = np.array(history["train_grad_norm"])
    assert norms.shape == (4, 3) and np.all(np.isfinite(norms)) and np.all(norms > 0)


def test_tiny_run_learns_and_evaluate_agrees(data, tmp_path):
    train_path, test_path = data
    model = str(tmp_path / "run.h5")
    config = TrainConfig(hidden=(32,), schedule="momentum", group_size=4, epochs=4, batch_size=16,
                         lr=1e-2, seed=0)
    seen = []
    history = train(train_path, test_path, config=config, out_path=model,
                    progress=lambda *args: seen.append(args), on_epoch=lambda record: None)
    assert history["test_accuracy"][-1] >= 0.7          # chance is 0.25
    assert history["train_loss"][-1] < history["train_loss"][0]
    assert len(seen) == 4 * 6 and seen[-1][:3] == (4, 5, 5)   # each epoch: its start, then 5 batches
    assert seen[0][:3] == (1, 0, 5) and np.isnan(seen[0][3])
    for key in ("test_loss", "test_sops_per_sample", "test_spikes_per_sample",
                "test_steps_to_first_output", "test_spikes_to_first_output", "epoch_seconds"):
        assert len(history[key]) == 4, key

    net = io.read_model(model)
    result = evaluate(net, test_path, schedule="momentum", group_size=4, seed=0)
    assert result["accuracy"] == history["test_accuracy"][-1]
    assert result["loss"] == history["test_loss"][-1]
    assert evaluate(net, test_path, schedule="momentum", group_size=4, seed=0, batch_size=7) == result
    for key in ("accuracy", "first_spike_accuracy", "spikes_per_sample", "sops_per_sample",
                "steps_to_first_output", "spikes_to_first_output", "loss"):
        assert key in result
    if "stop_on_output" in inspect.signature(simulate).parameters:
        early = evaluate(net, test_path, schedule="momentum", group_size=4, seed=0, stop_on_output=0)
        assert early["first_spike_accuracy"] == result["first_spike_accuracy"]
        assert early["sops_per_sample"] <= result["sops_per_sample"]


def test_curves_are_redrawn_after_the_first_and_last_checkpoint_and_at_most_every_interval(monkeypatch):
    from pyasync_snn.plots import curves
    drawn = []
    monkeypatch.setattr(curves, "draw_checkpoint_curves",
                        lambda path, history, config: drawn.append(history["epoch"][-1]))
    for every, expected in ((float("inf"), [1, 5]), (0.0, [1, 2, 3, 4, 5])):
        drawn.clear()
        on_checkpoint = curves.CheckpointCurves(every)
        for epoch in range(1, 6):
            on_checkpoint("m.h5", {"epoch": list(range(1, epoch + 1))}, small_config(epochs=5))
        assert drawn == expected
