"""HDF5 formats: round trips, validation with one-line messages, atomic writes."""
import os

import h5py
import numpy as np
import pytest

from pyasync_snn.errors import UserError
from pyasync_snn.events import EventBatch
from pyasync_snn.io import (FORMAT_VERSION, atomic_h5, open_checked, open_dataset, read_model,
                            read_trace, write_dataset, write_model, write_trace)
from pyasync_snn.network import Network
from pyasync_snn.trace import EVENT_FIELDS, Metrics, Trace

MODEL, DATASET, TRACE = "pyasync-snn/model", "pyasync-snn/dataset", "pyasync-snn/trace"


# ---------------------------------------------------------------- helpers

def user_error(fn, *args, contains=()):
    """Call ``fn``; it must raise a one-line UserError containing every string in ``contains``."""
    with pytest.raises(UserError) as info:
        fn(*args)
    message = str(info.value)
    assert "\n" not in message
    for part in contains:
        assert str(part) in message, f"{part!r} not in {message!r}"
    return message


def modify(path, key, value):
    """In an existing file, replace (``value=None``: delete) a dataset, or a root attribute ``@name``."""
    with h5py.File(path, "r+") as f:
        if key.startswith("@"):
            f.attrs[key[1:]] = value
            return
        del f[key]
        if value is not None:
            f.create_dataset(key, data=value)


def write_raw_model(path, weights, threshold=0.3, beta=0.9):
    """A model file written without going through :class:`Network` validation."""
    with atomic_h5(path, MODEL) as f:
        for l, w in weights.items():
            f.create_dataset(f"layers/{l}/weight", data=w)
        f.create_group("neuron").attrs.update({"threshold": threshold, "beta": beta})


def make_batch(n=7, n_inputs=5, n_timesteps=6, n_classes=3, mean_events=4, seed=0):
    rng = np.random.default_rng(seed)
    counts = rng.integers(0, 2 * mean_events, size=n)
    counts[1] = 0  # an empty sample
    e = counts.sum()
    return EventBatch(np.concatenate([[0], np.cumsum(counts)]), rng.integers(0, n_timesteps, e),
                      rng.integers(0, n_inputs, e), rng.integers(0, n_classes, n), n_inputs, n_timesteps)


def make_trace(with_metrics=True):
    """Two samples of a (5, 4, 3) network: sample 0 has three events, sample 1 one."""
    metrics = Metrics(
        labels=np.array([2, 0]), spikes_per_layer=np.array([[2, 1], [1, 0]]), sops=np.array([17, 9]),
        steps_per_timestep=np.array([[2, 1, 1], [1, 1, 1]]), steps_to_first_output=np.array([2, -1]),
        spikes_to_first_output=np.array([2, -1]), steps_to_first_correct=np.array([2, -1]),
        spikes_to_first_correct=np.array([2, -1]), count_prediction=np.array([2, 0]),
        first_spike_prediction=np.array([2, -1]),
        timestep_spikes_to_output=np.array([[-1, -1, 1], [-1, -1, -1]]),
        timestep_spikes_to_correct=np.array([[-1, -1, 1], [-1, -1, -1]]))
    return Trace(
        schedule="momentum", group_size=2, seed=11, n_timesteps=3, momentum_noise=1e-6,
        refractory_dropout=0.25, layer_sizes=(5, 4, 3), dtype="float64",
        output_counts=np.array([[0, 0, 1], [0, 0, 0]], dtype=np.int32),
        indptr=np.array([0, 3, 4], dtype=np.int64), neuron=np.array([1, 3, 6, 0], dtype=np.int32),
        timestep=np.array([0, 0, 2, 1], dtype=np.int32),
        fired_step=np.array([0, 0, 1, 0], dtype=np.int32),
        emitted_step=np.array([1, 1, 2, 1], dtype=np.int32), v_pre=np.array([0.5, 0.31, 0.4, 0.7]),
        refractory=np.array([True, False, True, True]), metrics=metrics if with_metrics else None,
        stop_on_output=1, stop_scope="timestep")


@pytest.fixture
def model_path(tmp_path):
    path = tmp_path / "model.h5"
    write_model(path, Network.xavier([5, 4, 3], seed=0))
    return path


@pytest.fixture
def dataset_path(tmp_path):
    path = tmp_path / "data.h5"
    write_dataset(path, make_batch(), n_classes=3)
    return path


@pytest.fixture
def trace_path(tmp_path):
    path = tmp_path / "trace.h5"
    write_trace(path, make_trace())
    return path


# ---------------------------------------------------------------- round trips

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_model_round_trip(tmp_path, dtype):
    net = Network.xavier([5, 4, 3], seed=0, threshold=0.5, beta=0.8).astype(dtype)
    write_model(tmp_path / "m.h5", net)
    back = read_model(tmp_path / "m.h5")
    assert back.layer_sizes == (5, 4, 3)
    assert (back.threshold, back.beta) == (0.5, 0.8)
    for w, w_back in zip(net.weights, back.weights):
        assert w_back.dtype == dtype
        np.testing.assert_array_equal(w_back, w)


def test_model_extra_groups_are_written_and_ignored(tmp_path):
    net = Network.xavier([2, 3], seed=1)
    write_model(tmp_path / "m.h5", net, extra=lambda f: f.create_dataset("optimizer/step", data=42))
    with h5py.File(tmp_path / "m.h5", "r") as f:
        assert f["optimizer/step"][()] == 42
        assert f.attrs["format"] == MODEL and f.attrs["format_version"] == FORMAT_VERSION
    np.testing.assert_array_equal(read_model(tmp_path / "m.h5").weights[0], net.weights[0])


def assert_batches_equal(a, b):
    for key in ("indptr", "timestep", "unit", "labels", "sample_ids"):
        np.testing.assert_array_equal(getattr(a, key), getattr(b, key), err_msg=key)
    assert (a.n_inputs, a.n_timesteps) == (b.n_inputs, b.n_timesteps)


def concatenate(batches):
    offsets = np.cumsum([0] + [b.indptr[-1] for b in batches])
    return EventBatch(
        np.concatenate([[0]] + [b.indptr[1:] + o for b, o in zip(batches, offsets)]),
        np.concatenate([b.timestep for b in batches]), np.concatenate([b.unit for b in batches]),
        np.concatenate([b.labels for b in batches]), batches[0].n_inputs, batches[0].n_timesteps,
        sample_ids=np.concatenate([b.sample_ids for b in batches]))


@pytest.mark.parametrize("n, mean_events", [(7, 4), (300, 40)])  # the second one is compressed
def test_dataset_round_trip_in_batches(tmp_path, n, mean_events):
    batch = make_batch(n=n, mean_events=mean_events)
    time_us = np.arange(len(batch.timestep)) * 10
    write_dataset(tmp_path / "d.h5", batch, n_classes=3, name="toy", time_us=time_us,
                  attrs={"source": "unit test"})
    with open_dataset(tmp_path / "d.h5") as data:
        assert (len(data), data.n_inputs, data.n_timesteps, data.n_classes) == (n, 5, 6, 3)
        assert data.name == "toy" and isinstance(data.name, str)
        np.testing.assert_array_equal(data.labels, batch.labels)
        assert_batches_equal(data.take(0, n), batch)
        for size in (1, 2, 3, n - 1, n, n + 5):
            assert_batches_equal(concatenate(list(data.iter_batches(size))), batch)
        middle = data.take(2, 5)
        np.testing.assert_array_equal(middle.sample_ids, [2, 3, 4])
        np.testing.assert_array_equal(middle.dense(1), batch.dense(3))
    with h5py.File(tmp_path / "d.h5", "r") as f:
        assert f["events/indptr"].dtype == np.int64 and f["events/unit"].dtype == np.int16
        assert f.attrs["source"] == "unit test"
        np.testing.assert_array_equal(f["events/time_us"][()], time_us)


def test_dataset_without_name_and_bad_batch_arguments(dataset_path):
    with open_dataset(dataset_path) as data:
        assert data.name is None
        user_error(data.take, 3, 8, contains=["3:8", "0:7"])
        user_error(lambda: list(data.iter_batches(0)), contains=["batch size"])


@pytest.mark.parametrize("with_metrics", [True, False])
def test_trace_round_trip(tmp_path, with_metrics):
    trace = make_trace(with_metrics)
    write_trace(tmp_path / "t.h5", trace)
    back = read_trace(tmp_path / "t.h5")
    for key in ("schedule", "group_size", "seed", "n_timesteps", "momentum_noise",
                "refractory_dropout", "layer_sizes", "dtype", "stop_on_output", "stop_scope"):
        assert getattr(back, key) == getattr(trace, key), key
        assert type(getattr(back, key)) is type(getattr(trace, key)), key
    for key in ("output_counts", "indptr") + EVENT_FIELDS:
        np.testing.assert_array_equal(getattr(back, key), getattr(trace, key), err_msg=key)
        assert getattr(back, key).dtype == getattr(trace, key).dtype, key
    if with_metrics:
        for key in Metrics.__dataclass_fields__:
            np.testing.assert_array_equal(getattr(back.metrics, key), getattr(trace.metrics, key))
    else:
        assert back.metrics is None


def test_trace_files_without_stop_scope_or_timestep_latency_still_read(tmp_path):
    """Files written before the stop scope and the per-timestep latency existed."""
    import h5py
    path = tmp_path / "old.h5"
    write_trace(path, make_trace())
    with h5py.File(path, "r+") as f:
        del f.attrs["stop_scope"]
        del f["metrics/timestep_spikes_to_output"], f["metrics/timestep_spikes_to_correct"]
    back = read_trace(path)
    assert back.stop_scope == "sample" and back.stop_on_output == 1
    assert back.metrics.timestep_spikes_to_output is None and back.metrics.timestep_spikes_to_correct is None
    summary = back.metrics.summary()
    assert summary["accuracy"] == 1.0
    assert all(np.isnan(summary[k]) for k in ("timestep_spikes_to_output", "timestep_spikes_to_correct",
                                              "timestep_output_fraction", "timestep_correct_fraction"))
    assert back.take(0, 1).metrics.timestep_spikes_to_output is None
    write_trace(tmp_path / "again.h5", back)          # and such a trace can be written again
    assert read_trace(tmp_path / "again.h5").metrics.timestep_spikes_to_correct is None
    modify(path, "@stop_scope", "step")
    user_error(read_trace, path, contains=["unknown stop scope"])


# ---------------------------------------------------------------- atomic writes

def test_atomic_h5_failure_leaves_target_and_no_temp_file(tmp_path):
    target = tmp_path / "m.h5"
    write_model(target, Network.xavier([3, 2], seed=0))
    before = target.read_bytes()
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_h5(target, MODEL) as f:
            f.create_dataset("x", data=np.arange(1000))
            raise RuntimeError("boom")
    assert target.read_bytes() == before
    assert os.listdir(tmp_path) == ["m.h5"]


def test_writer_failure_leaves_target_untouched(model_path):
    before = model_path.read_bytes()

    def failing_extra(f):
        raise KeyError("optimizer")

    with pytest.raises(KeyError):
        write_model(model_path, Network.xavier([5, 7], seed=3), extra=failing_extra)
    assert model_path.read_bytes() == before
    assert os.listdir(model_path.parent) == ["model.h5"]


def test_atomic_h5_replaces_target_on_success(model_path):
    with atomic_h5(model_path, "some/format") as f:
        f.create_dataset("x", data=[1, 2])
    assert os.listdir(model_path.parent) == ["model.h5"]
    with open_checked(model_path, "some/format") as f:
        np.testing.assert_array_equal(f["x"][()], [1, 2])


def test_atomic_h5_creates_a_missing_directory_or_says_why_not(tmp_path):
    write_model(tmp_path / "new" / "m.h5", Network.xavier([2, 2]))
    assert (tmp_path / "new" / "m.h5").is_file()
    (tmp_path / "file").write_text("")
    user_error(write_model, tmp_path / "file" / "m.h5", Network.xavier([2, 2]),
               contains=["cannot create the directory"])


# ---------------------------------------------------------------- broken files (any format)

@pytest.mark.parametrize("reader", [read_model, open_dataset, read_trace])
def test_missing_file(tmp_path, reader):
    user_error(reader, tmp_path / "absent.h5", contains=[tmp_path / "absent.h5", "no such file"])


@pytest.mark.parametrize("reader", [read_model, open_dataset, read_trace])
def test_random_bytes_file(tmp_path, reader):
    path = tmp_path / "junk.h5"
    path.write_bytes(np.random.default_rng(0).bytes(5000))
    user_error(reader, path, contains=[path, "not a readable HDF5 file"])


@pytest.mark.parametrize("writer, reader", [
    (lambda p: write_model(p, Network.xavier([50, 40, 3])), read_model),
    (lambda p: write_dataset(p, make_batch(n=100, mean_events=50), 3), open_dataset),
    (lambda p: write_trace(p, make_trace()), read_trace)])
def test_truncated_file(tmp_path, writer, reader):
    path = tmp_path / "cut.h5"
    writer(path)
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])
    user_error(reader, path, contains=[path, "truncated"])


def test_wrong_format(model_path, dataset_path):
    user_error(read_trace, model_path,
               contains=[model_path, f"expected '{TRACE}'", f"found '{MODEL}'"])
    user_error(read_model, dataset_path, contains=[dataset_path, f"expected '{MODEL}'", DATASET])


def test_missing_format_attribute(model_path):
    with h5py.File(model_path, "r+") as f:
        del f.attrs["format"]
    user_error(read_model, model_path, contains=[model_path, "no 'format' attribute"])


def test_newer_format_version(model_path):
    modify(model_path, "@format_version", FORMAT_VERSION + 1)
    user_error(read_model, model_path, contains=[model_path, f"format_version {FORMAT_VERSION + 1}",
                                                 "newer"])


def test_format_version_not_an_integer(model_path):
    modify(model_path, "@format_version", "1")
    user_error(read_model, model_path, contains=[model_path, "'format_version' must be an integer"])


def test_corrupt_chunk_names_the_dataset(tmp_path):
    path = tmp_path / "d.h5"
    write_dataset(path, make_batch(n=300, mean_events=40), n_classes=3)
    with h5py.File(path, "r") as f:
        info = f["events/timestep"].id.get_chunk_info(0)
    with open(path, "r+b") as fh:
        fh.seek(info.byte_offset)
        fh.write(b"\xff" * info.size)
    with open_dataset(path) as data:  # labels and indptr are intact
        user_error(data.take, 0, 10, contains=[path, "events/timestep"])


# ---------------------------------------------------------------- model validation

def test_model_broken_chain(tmp_path):
    path = tmp_path / "m.h5"
    write_raw_model(path, {0: np.zeros((4, 5)), 1: np.zeros((3, 3))})
    user_error(read_model, path, contains=[path, "do not chain", "4 outputs", "expects 3"])


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_model_non_finite_weights(tmp_path, bad):
    path = tmp_path / "m.h5"
    w = np.ones((4, 5))
    w[2, 3] = bad
    write_raw_model(path, {0: w})
    user_error(read_model, path, contains=[path, "layer 0", "NaN or Inf"])


def test_model_layer_numbering(tmp_path):
    path = tmp_path / "m.h5"
    write_raw_model(path, {0: np.ones((4, 5)), 2: np.ones((3, 4))})
    user_error(read_model, path, contains=[path, "numbered 0..L-1", "'2'"])


def test_model_integer_weights(tmp_path):
    path = tmp_path / "m.h5"
    write_raw_model(path, {0: np.ones((4, 5), dtype=np.int32)})
    user_error(read_model, path, contains=[path, "layers/0/weight", "float32 or float64", "int32"])


def test_model_missing_dataset(model_path):
    modify(model_path, "layers/1/weight", None)
    user_error(read_model, model_path, contains=[model_path, "missing dataset 'layers/1/weight'"])


def test_model_missing_or_bad_neuron_attribute(model_path):
    with h5py.File(model_path, "r+") as f:
        del f["neuron"].attrs["beta"]
    user_error(read_model, model_path, contains=[model_path, "missing attribute 'beta' of 'neuron'"])
    with h5py.File(model_path, "r+") as f:
        f["neuron"].attrs["beta"] = 1.5
    user_error(read_model, model_path, contains=[model_path, "beta must lie in (0, 1]"])


# ---------------------------------------------------------------- dataset validation

@pytest.mark.parametrize("key, bad_value", [
    ("events/unit", -1), ("events/unit", 5), ("events/timestep", -1), ("events/timestep", 6)])
def test_dataset_out_of_range_events(dataset_path, key, bad_value):
    batch = make_batch()
    values = getattr(batch, key.split("/")[1]).copy()
    values[batch.indptr[3]] = bad_value  # the first event of sample 3
    assert batch.indptr[4] > batch.indptr[3]
    modify(dataset_path, key, values)
    with open_dataset(dataset_path) as data:
        user_error(data.take, 2, 6, contains=[dataset_path, "samples 2:6", key, "out of range"])
        assert len(data.take(4, 7)) == 3  # batches without the bad event are fine


def test_dataset_labels_out_of_range(dataset_path):
    modify(dataset_path, "labels", np.array([0, 1, 2, 3, 0, 1, 2]))
    user_error(open_dataset, dataset_path, contains=[dataset_path, "labels out of range", "[0, 3)"])
    user_error(write_dataset, dataset_path.parent / "new.h5", make_batch(), 1,
               contains=["labels out of range", "[0, 1)"])
    assert not (dataset_path.parent / "new.h5").exists()


@pytest.mark.parametrize("key, value, problem", [
    ("events/timestep", np.zeros(3, dtype=np.float32), "'events/timestep' must be an integer"),
    ("labels", np.zeros(7), "'labels' must be an integer"),
    ("events/unit", None, "missing dataset 'events/unit'"),
    ("events/indptr", np.zeros(5, dtype=np.int64), "must have 8 entries"),
    ("@n_inputs", 0, "n_inputs must lie in [1, 2^31)"),
    ("@n_classes", 2.5, "'n_classes' must be an integer, found 2.5")])
def test_dataset_bad_structure(dataset_path, key, value, problem):
    modify(dataset_path, key, value)
    user_error(open_dataset, dataset_path, contains=[dataset_path, problem])


def test_dataset_inconsistent_indptr(dataset_path):
    batch = make_batch()
    indptr = batch.indptr.copy()
    indptr[-1] -= 1
    modify(dataset_path, "events/indptr", indptr)
    user_error(open_dataset, dataset_path, contains=[dataset_path, "end at the number of events"])
    indptr = batch.indptr.copy()
    indptr[3] = indptr[4] + 1
    modify(dataset_path, "events/indptr", indptr)
    user_error(open_dataset, dataset_path, contains=[dataset_path, "non-decreasing"])


# ---------------------------------------------------------------- trace validation

@pytest.mark.parametrize("key, value, problem", [
    ("@schedule", "sorted", "unknown schedule 'sorted'"),
    ("@seed", "eleven", "'seed' must be an integer"),
    ("@layer_sizes", np.array([5]), "layer_sizes needs an input"),
    ("output_counts", np.zeros((2, 4)), "output_counts must have shape (samples, 3)"),
    ("events/neuron", np.array([1, 3, 7, 0]), "events/neuron out of range"),
    ("events/neuron", np.array([1, 3, 6]), "events/timestep must have shape (3,)"),
    ("events/timestep", np.array([0, 0, 3, 1]), "events/timestep out of range"),
    ("events/fired_step", np.array([0, 1, 1, 0]), "must come after"),
    ("events/refractory", np.ones(4, dtype=np.int8), "events/refractory must be a boolean"),
    ("events/indptr", np.array([0, 5, 4]), "non-decreasing"),
    ("metrics/sops", np.zeros(3), "metrics/sops must have shape (2,)"),
    ("metrics/labels", None, "missing dataset 'metrics/labels'")])
def test_trace_validation(trace_path, key, value, problem):
    modify(trace_path, key, value)
    user_error(read_trace, trace_path, contains=[trace_path, problem])


def test_write_trace_refuses_invalid_trace(tmp_path):
    trace = make_trace()
    trace.schedule = "sorted"
    user_error(write_trace, tmp_path / "t.h5", trace, contains=["schedule"])
    assert os.listdir(tmp_path) == []


def test_a_trace_written_in_parts_equals_the_whole(tmp_path):
    from pyasync_snn import EventBatch as Batch, simulate as run_simulation
    net = Network.xavier([12, 9, 4], seed=2)
    net = Network(tuple(w * 1.5 for w in net.weights))
    x = (np.random.default_rng(1).random((7, 6, 12)) < 0.4).astype(int)
    batch = Batch.from_dense(x, np.arange(7) % 4)
    whole = run_simulation(net, batch, schedule="random", group_size=2, seed=3)
    parts = [run_simulation(net, batch.take(a, b), schedule="random", group_size=2, seed=3)
             for a, b in ((0, 3), (3, 4), (4, 7))]
    write_trace(tmp_path / "whole.h5", whole)
    write_trace(tmp_path / "parts.h5", iter(parts))
    a, b = read_trace(tmp_path / "whole.h5"), read_trace(tmp_path / "parts.h5")
    for name in ("indptr", "neuron", "timestep", "fired_step", "emitted_step", "v_pre", "refractory",
                 "output_counts"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    assert np.array_equal(a.metrics.steps_per_timestep, b.metrics.steps_per_timestep)
    other = run_simulation(net, batch.take(0, 2), schedule="momentum", group_size=2)
    with pytest.raises(UserError, match="different settings"):
        write_trace(tmp_path / "mixed.h5", iter([parts[0], other]))
    assert not (tmp_path / "mixed.h5").exists()


def test_event_indices_wider_than_int32_do_not_wrap():
    """2^32 + 5 must be refused as out of range, not read as 5."""
    from pyasync_snn import EventBatch
    big = np.array([2**32 + 5], dtype=np.int64)
    with pytest.raises(UserError, match="events/unit out of range"):
        EventBatch(np.array([0, 1]), np.array([0]), big, np.array([0]), 10, 4)
    with pytest.raises(UserError, match="events/timestep out of range"):
        EventBatch(np.array([0, 1]), big, np.array([0]), np.array([0]), 10, 4)
