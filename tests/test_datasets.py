"""Raw formats (N-MNIST .bin, SHD HDF5), binning, the embedded datasets and their cache."""
import json
import os

import h5py
import numpy as np
import pytest

from pyasync_snn.datasets import (binning, nmnist, registry, shd, spatial, temporal)
from pyasync_snn.errors import UserError
from pyasync_snn.io import open_dataset

NMNIST_1K = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "nmnist-1k")


# ----------------------------------------------------------------------------- N-MNIST .bin

def random_events(rng, n, t_max=300_000):
    t = np.sort(rng.integers(0, t_max, n))
    return rng.integers(0, 34, n), rng.integers(0, 34, n), rng.integers(0, 2, n), t


def test_bin_record_layout_is_big_endian_40_bits(tmp_path):
    path = tmp_path / "one.bin"
    nmnist.write_bin(path, [1], [2], [1], [0x123456])
    assert path.read_bytes() == bytes([0x01, 0x02, 0x80 | 0x12, 0x34, 0x56])
    nmnist.write_bin(path, [33], [0], [0], [nmnist.TIMESTAMP_LIMIT - 1])
    assert path.read_bytes() == bytes([33, 0, 0x7F, 0xFF, 0xFF])


def test_bin_round_trip_is_event_exact(tmp_path):
    rng = np.random.default_rng(0)
    x, y, p, t = random_events(rng, 5000)
    t[-1] = nmnist.TIMESTAMP_LIMIT - 1  # the largest timestamp the 23-bit field holds
    path = tmp_path / "sample.bin"
    nmnist.write_bin(path, x, y, p, t)
    assert os.path.getsize(path) == 5 * 5000  # no overflow marker needed
    ev = nmnist.read_bin(path)
    for key, want in (("x", x), ("y", y), ("polarity", p), ("t_us", t)):
        np.testing.assert_array_equal(ev[key], want)
    assert not [f for f in os.listdir(tmp_path) if f.startswith(".")]  # no temp file left


def test_bin_empty_file_has_no_events(tmp_path):
    path = tmp_path / "empty.bin"
    nmnist.write_bin(path, [], [], [], [])
    assert path.read_bytes() == b""
    assert len(nmnist.read_bin(path)["t_us"]) == 0


def test_bin_overflow_markers_round_trip(tmp_path):
    limit, inc = nmnist.TIMESTAMP_LIMIT, nmnist.OVERFLOW_INCREMENT
    t = np.array([5, limit - 1, limit, limit + 3 * inc + 7, 2 * limit + 11])
    n = len(t)
    x, y, p = np.arange(n), np.arange(n) + 1, np.array([0, 1, 0, 1, 1])
    path = tmp_path / "long.bin"
    nmnist.write_bin(path, x, y, p, t)
    rows = np.frombuffer(path.read_bytes(), np.uint8).reshape(-1, 5)
    n_markers = int(np.sum(rows[:, 1] == nmnist.OVERFLOW_Y))
    # the fewest markers: the last event needs ceil((t - (limit - 1)) / inc)
    assert n_markers == -(-(2 * limit + 11 - (limit - 1)) // inc)
    ev = nmnist.read_bin(path)
    np.testing.assert_array_equal(ev["t_us"], t)
    np.testing.assert_array_equal(ev["x"], x)
    np.testing.assert_array_equal(ev["y"], y)
    np.testing.assert_array_equal(ev["polarity"], p)
    with pytest.raises(UserError, match="23-bit"):
        nmnist.write_bin(tmp_path / "refused.bin", x, y, p, t, overflow="error")
    assert not (tmp_path / "refused.bin").exists()


def test_bin_overflow_marker_convention_of_the_reference_reader(tmp_path):
    """A record with y == 240 adds 2**13 µs to every later event and is not an event."""
    event = lambda x, y, p, ts: bytes([x, y, (p << 7) | (ts >> 16), (ts >> 8) & 255, ts & 255])
    marker = bytes([0, 240, 0, 0, 0])
    path = tmp_path / "markers.bin"
    path.write_bytes(event(1, 1, 1, 100) + marker + event(2, 2, 0, 50) + marker + marker
                     + event(3, 3, 1, 7))
    ev = nmnist.read_bin(path)
    np.testing.assert_array_equal(ev["t_us"], [100, 50 + 8192, 7 + 3 * 8192])
    np.testing.assert_array_equal(ev["x"], [1, 2, 3])
    np.testing.assert_array_equal(ev["polarity"], [1, 0, 1])


def test_bin_decreasing_timestamps_are_kept_and_counted(tmp_path):
    path = tmp_path / "unordered.bin"
    nmnist.write_bin(path, [0, 1, 2], [0, 0, 0], [0, 0, 0], [300, 100, 200])
    ev = nmnist.read_bin(path)
    np.testing.assert_array_equal(ev["t_us"], [300, 100, 200])
    assert nmnist.count_decreases(ev["t_us"]) == 1
    # a decrease below what the emitted markers allow cannot be encoded
    big = nmnist.TIMESTAMP_LIMIT + 10 * nmnist.OVERFLOW_INCREMENT
    with pytest.raises(UserError, match="cannot be encoded"):
        nmnist.write_bin(tmp_path / "bad.bin", [0, 0], [0, 0], [0, 0], [big, 5])


def test_bin_truncated_file_is_a_user_error_naming_it(tmp_path):
    path = tmp_path / "Train" / "3" / "00042.bin"
    path.parent.mkdir(parents=True)
    nmnist.write_bin(path, [1, 2], [3, 4], [0, 1], [10, 20])
    path.write_bytes(path.read_bytes()[:-2])
    with pytest.raises(UserError, match=r"00042\.bin.*truncated.*multiple of 5"):
        nmnist.read_bin(path)
    with pytest.raises(UserError, match="no such file"):
        nmnist.read_bin(tmp_path / "missing.bin")


@pytest.mark.parametrize("bad, match", [
    (dict(y=[240]), "reserved"),
    (dict(x=[256]), r"\[0, 255\]"),
    (dict(polarity=[2]), "polarity"),
    (dict(t_us=[-1]), "non-negative"),
])
def test_bin_writer_refuses_bad_events(tmp_path, bad, match):
    ev = {"x": [0], "y": [0], "polarity": [0], "t_us": [0], **bad}
    with pytest.raises(UserError, match=match):
        nmnist.write_bin(tmp_path / "bad.bin", **ev)


def test_channel_mapping_is_polarity_major():
    x, y, p = np.array([0, 33, 5, 0]), np.array([0, 0, 2, 33]), np.array([0, 0, 1, 1])
    unit = nmnist.channel_index(x, y, p)
    np.testing.assert_array_equal(unit, [0, 33, 34 * 34 + 2 * 34 + 5, 34 * 34 + 33 * 34])
    np.testing.assert_array_equal(np.stack(nmnist.channel_coordinates(unit)), np.stack([x, y, p]))
    np.testing.assert_array_equal(nmnist.channel_index([11], [11], [1], 12, 12), [287])
    with pytest.raises(UserError, match="outside the 34x34 sensor"):
        nmnist.channel_index([34], [0], [0])


@pytest.mark.skipif(not os.path.isdir(NMNIST_1K), reason="../shared/data/nmnist-1k not present")
def test_real_nmnist_files_decode_and_reencode_byte_exact():
    files, unlabelled = nmnist.list_split(NMNIST_1K, "train")
    assert not unlabelled
    assert len(files) == 1000 and {label for _, label in files} == set(range(10))
    for path, _ in files[::50]:
        ev = nmnist.read_bin(path)
        assert 1000 < len(ev["t_us"]) < 20000
        assert ev["x"].max() < 34 and ev["y"].max() < 34
        assert 0.3 < ev["polarity"].mean() < 0.7
        assert ev["t_us"].max() < 400_000  # three saccades of ~100 ms
        raw = open(path, "rb").read()
        assert nmnist.encode(ev["x"], ev["y"], ev["polarity"], ev["t_us"]) == raw


# ----------------------------------------------------------------------------- SHD layout

def test_shd_round_trip_with_extra_and_slices(tmp_path):
    rng = np.random.default_rng(1)
    n = 7
    times = [np.sort(rng.random(rng.integers(0, 50))) for _ in range(n)]
    units = [rng.integers(0, 700, len(t)) for t in times]
    labels = rng.integers(0, 20, n)
    extra = {"speaker": rng.integers(0, 12, n), "keys": [f"word{i}" for i in range(20)],
             "meta_info": {"gender": ["f", "m"], "age": np.array([30, 41])}}
    path = tmp_path / "shd.h5"
    shd.write_shd(path, times, units, labels, extra=extra)
    with h5py.File(path, "r") as f:  # the layout of the original files
        assert "format" not in f.attrs
        assert f["spikes/times"].dtype.metadata["vlen"] == np.float64
        assert f["spikes/units"].dtype.metadata["vlen"] == np.uint16
        assert f["labels"].shape == (n,)
    full = shd.read_shd(path)
    for i in range(n):
        np.testing.assert_array_equal(full["times"][i], times[i])
        np.testing.assert_array_equal(full["units"][i], units[i])
    np.testing.assert_array_equal(full["labels"], labels)
    part = shd.read_shd(path, 2, 5)
    assert len(part["times"]) == 3
    np.testing.assert_array_equal(part["units"][0], units[2])
    np.testing.assert_array_equal(part["labels"], labels[2:5])
    np.testing.assert_array_equal(part["extra"]["speaker"], extra["speaker"][2:5])
    assert list(part["extra"]["keys"]) == extra["keys"]  # metadata: whole
    assert list(part["extra"]["meta_info"]["gender"]) == ["f", "m"]
    np.testing.assert_array_equal(part["extra"]["meta_info"]["age"], [30, 41])
    with shd.open_shd(path) as f:
        assert len(f) == n
        assert f.extra_keys() == ["keys", "meta_info/age", "meta_info/gender", "speaker"]
    with pytest.raises(UserError, match="outside 0:7"):
        shd.read_shd(path, 5, 9)


def test_shd_reader_rejects_other_files(tmp_path):
    path = tmp_path / "other.h5"
    with h5py.File(path, "w") as f:
        f["labels"] = np.zeros(3, dtype=int)
    with pytest.raises(UserError, match=r"other\.h5: missing dataset 'spikes/times'"):
        shd.read_shd(path)
    (tmp_path / "junk.h5").write_bytes(b"not hdf5")
    with pytest.raises(UserError, match="not a readable HDF5 file"):
        shd.read_shd(tmp_path / "junk.h5")
    with pytest.raises(UserError, match="same length"):
        shd.write_shd(tmp_path / "x.h5", [np.zeros(2)], [np.zeros(3, int)], [0])


# ----------------------------------------------------------------------------- binning

def test_binning_edges_and_trailing_events():
    t = np.array([0, 9_999, 10_000, 29_999, 30_000, 45_000])
    step, keep = binning.bin_times(t, time_window_us=10_000, n_timesteps=3)
    np.testing.assert_array_equal(step, [0, 0, 1, 2])          # half-open bins [kW, (k+1)W)
    np.testing.assert_array_equal(keep, [1, 1, 1, 1, 0, 0])     # beyond the last bin: dropped
    step, keep = binning.bin_times(t, time_window_us=10_000)    # open-ended grid
    np.testing.assert_array_equal(step, [0, 0, 1, 2, 3, 4])
    step, keep = binning.bin_times(t, time_window_us=10_000, n_timesteps=3, t0_us=5_000)
    np.testing.assert_array_equal(keep, [0, 1, 1, 1, 1, 0])     # before t0: dropped
    np.testing.assert_array_equal(step, [0, 0, 2, 2])
    # n_timesteps alone: window = ceil((t_max + 1) / T), nothing dropped
    step, keep = binning.bin_times(t, n_timesteps=5)
    assert keep.all() and step.max() == 4
    np.testing.assert_array_equal(step, t // 9_001)
    # float timestamps (seconds * 1e6) follow the same floor rule
    step, _ = binning.bin_times(np.array([9999.9, 10000.0]), time_window_us=10_000)
    np.testing.assert_array_equal(step, [0, 1])
    with pytest.raises(UserError, match="time window"):
        binning.bin_times(t)
    with pytest.raises(UserError, match="positive integer"):
        binning.bin_times(t, time_window_us=0)


def test_bin_samples_repeated_pairs_count_twice():
    times = [np.array([100, 200, 15_000, 99_999]), np.array([5, 25_000])]
    units = [np.array([3, 3, 1, 0]), np.array([2, 2])]
    batch, time_us, dropped = binning.bin_samples(times, units, [1, 0], n_inputs=4,
                                                  time_window_us=10_000, n_timesteps=3)
    assert dropped == 1 and batch.n_timesteps == 3 and batch.n_inputs == 4
    np.testing.assert_array_equal(batch.indptr, [0, 3, 5])
    np.testing.assert_array_equal(time_us, [100, 200, 15_000, 5, 25_000])
    x0 = batch.dense(0)
    assert x0[0, 3] == 2 and x0[1, 1] == 1 and x0.sum() == 3
    np.testing.assert_array_equal(batch.dense(1)[:, 2], [1, 0, 1])


def test_stratified_split_is_exact_per_class():
    labels = np.repeat(np.arange(4), [10, 20, 5, 7])
    tr, te = binning.stratified_split(labels, 0.2, np.random.default_rng(0))
    assert len(np.intersect1d(tr, te)) == 0 and len(tr) + len(te) == len(labels)
    np.testing.assert_array_equal(np.bincount(labels[te]), [2, 4, 1, 1])


# ----------------------------------------------------------------------------- spatial

@pytest.fixture(scope="module")
def spatial_full():
    return spatial.generate(seed=0)


def same_batches(a, b):
    return all(np.array_equal(getattr(a, k), getattr(b, k))
               for k in ("indptr", "timestep", "unit", "labels"))


def test_spatial_digits_are_sklearns():
    from sklearn.datasets import load_digits
    images, labels = spatial.load_digits()
    ref = load_digits()
    np.testing.assert_array_equal(images, ref.images)
    np.testing.assert_array_equal(labels, ref.target)


def test_saccade_path_is_a_closed_triangle():
    path = spatial.saccade_path(30, 1.5)
    assert path.shape == (31, 2)
    np.testing.assert_allclose(path[[0, 10, 20, 30]], [[0, -1.5], [1.5, 1.5], [-1.5, 1.5], [0, -1.5]])
    assert np.abs(path).max() < 2  # the digit never leaves the 12x12 canvas


def test_spatial_is_deterministic_for_a_seed():
    a = spatial.generate(seed=3, n_per_class=4)
    b = spatial.generate(seed=3, n_per_class=4)
    c = spatial.generate(seed=4, n_per_class=4)
    assert same_batches(a.train, b.train) and same_batches(a.test, b.test)
    np.testing.assert_array_equal(a.train_time_us, b.train_time_us)
    assert not same_batches(a.train, c.train)


def test_spatial_goes_through_the_bin_files(monkeypatch):
    calls = []
    real_read = nmnist.read_bin
    monkeypatch.setattr(nmnist, "read_bin", lambda path: calls.append(path) or real_read(path))
    g = spatial.generate(seed=0, n_per_class=3)
    assert len(calls) == len(g.train) + len(g.test) == 30
    parts = [os.path.normpath(p).split(os.sep)[-3:] for p in calls]
    assert {p[0] for p in parts} == {"Train", "Test"}
    assert all(p[2].endswith(".bin") and len(p[2]) == 9 for p in parts)


def test_spatial_shapes_split_and_statistics(spatial_full):
    g = spatial_full
    assert g.train.n_inputs == g.test.n_inputs == 288
    assert g.train.n_timesteps == 30 and g.n_classes == 10
    assert (len(g.train), len(g.test)) == (1438, 359)
    counts = np.bincount(spatial.load_digits()[1])
    np.testing.assert_array_equal(np.bincount(g.test.labels), np.round(0.2 * counts))
    np.testing.assert_array_equal(np.bincount(g.train.labels) + np.bincount(g.test.labels), counts)
    for batch in (g.train, g.test):
        per_sample = np.diff(batch.indptr)
        # documented: 300..900 events per sample (measured 404..705, mean 551)
        assert 300 <= per_sample.min() and per_sample.max() <= 900
        assert 450 <= per_sample.mean() <= 650
        on = np.mean(batch.unit >= 144)
        assert 0.45 <= on <= 0.55  # documented range for the ON/OFF balance
        on_per_sample = np.add.reduceat(batch.unit >= 144, batch.indptr[:-1]) / per_sample
        assert 0.35 <= on_per_sample.min() and on_per_sample.max() <= 0.65
        # every timestep has events (all three saccades move the digit)
        assert np.all(np.bincount(batch.timestep, minlength=30) > 0)
    assert g.train_time_us.max() < 300_000


def test_spatial_classes_are_separable(spatial_full):
    """A nearest-centroid classifier on per-channel counts is far above chance (10%)."""
    g = spatial_full
    feats = lambda b: np.stack([b.dense(i).sum(0) for i in range(len(b))]).astype(float)
    xtr, xte = feats(g.train), feats(g.test)
    centroids = np.stack([xtr[g.train.labels == c].mean(0) for c in range(10)])
    pred = np.argmin(((xte[:, None] - centroids[None]) ** 2).sum(-1), axis=1)
    assert np.mean(pred == g.test.labels) > 0.7


# ----------------------------------------------------------------------------- temporal

def test_temporal_is_deterministic_for_a_seed():
    a = temporal.generate(seed=5, n_per_class=5)
    b = temporal.generate(seed=5, n_per_class=5)
    c = temporal.generate(seed=6, n_per_class=5)
    assert same_batches(a.train, b.train) and same_batches(a.test, b.test)
    np.testing.assert_array_equal(a.test_time_us, b.test_time_us)
    assert not np.array_equal(a.train_time_us, c.train_time_us)


def test_temporal_counts_are_constant_and_timing_carries_the_class(monkeypatch):
    written = []
    real_write = shd.write_shd
    monkeypatch.setattr(shd, "write_shd",
                        lambda path, t, u, l, extra=None: written.append((t, u, l))
                        or real_write(path, t, u, l, extra=extra))
    g = temporal.generate(seed=0, n_per_class=30)
    assert len(written) == 2  # train and test, each through the SHD layout
    for times, units, _ in written:  # before binning: exactly 3 spikes per unit per sample
        for t, u in zip(times, units):
            np.testing.assert_array_equal(np.bincount(u, minlength=100), np.full(100, 3))
            assert t.min() >= 0 and t.max() < 1.0
    assert (len(g.train), len(g.test)) == (240, 60)
    np.testing.assert_array_equal(np.bincount(g.test.labels), np.full(10, 6))
    for batch in (g.train, g.test):
        assert batch.n_inputs == 100 and batch.n_timesteps == 100
        for b in range(len(batch)):  # after binning: counts per unit still sum to 3
            np.testing.assert_array_equal(batch.dense(b).sum(0), np.full(100, 3))
    # counts carry nothing (identical in every sample), timing carries the class:
    # 1-nearest-neighbour on the counts per 100 ms bin and unit is far above chance (10%)
    feats = lambda b: np.stack([b.dense(i).reshape(10, 10, 100).sum(1).ravel()
                                for i in range(len(b))]).astype(float)
    xtr, xte = feats(g.train), feats(g.test)
    nearest = np.argmin(((xte[:, None] - xtr[None]) ** 2).sum(-1), axis=1)
    assert np.mean(g.train.labels[nearest] == g.test.labels) > 0.8


# ----------------------------------------------------------------------------- registry, cache

def test_make_dataset_writes_both_splits_with_provenance(tmp_path):
    train, test = registry.make_dataset("temporal", tmp_path, seed=2, n_per_class=5)
    assert os.path.basename(train) == "temporal-train.h5"
    assert os.path.basename(test) == "temporal-test.h5"
    with open_dataset(train) as d:
        assert (len(d), d.n_inputs, d.n_timesteps, d.n_classes, d.name) == (40, 100, 100, 10, "temporal")
    with h5py.File(test, "r") as f:
        assert f.attrs["generator"] == "pyasync_snn.datasets.temporal"
        assert f.attrs["seed"] == 2 and f.attrs["split"] == "test"
        assert json.loads(f.attrs["parameters"])["n_per_class"] == 5
        assert f["events/time_us"].shape == f["events/unit"].shape
    text = registry.describe(train)
    assert "samples:     40" in text and "inputs:      100" in text
    assert "per sample mean 300.0, min 300, max 300" in text
    assert "per class:   0:4 1:4" in text and "generator:   pyasync_snn.datasets.temporal" in text
    with pytest.raises(UserError, match="unknown dataset 'nope'.*spatial, temporal"):
        registry.make_dataset("nope", tmp_path)


def test_cache_directory_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("PYASYNC_SNN_CACHE", str(tmp_path / "c"))
    assert registry.cache_dir() == str(tmp_path / "c")
    monkeypatch.delenv("PYASYNC_SNN_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert registry.cache_dir() == str(tmp_path / "xdg" / "pyasync-snn")
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert registry.cache_dir() == str(tmp_path / "home" / ".cache" / "pyasync-snn")


def test_cached_dataset_is_reused_and_regenerated_when_corrupt(monkeypatch, tmp_path):
    monkeypatch.setenv("PYASYNC_SNN_CACHE", str(tmp_path))
    made = []
    real_make = registry.make_dataset
    monkeypatch.setattr(registry, "make_dataset",
                        lambda *a, **k: made.append(a) or real_make(*a, **k))
    train, test = registry.cached_dataset("temporal")
    assert len(made) == 1 and os.path.dirname(train).startswith(str(tmp_path))
    with open_dataset(train) as d:
        reference = d.take(0, len(d))
    assert registry.cached_dataset("temporal") == (train, test) and len(made) == 1  # reused

    # corrupt: overwrite the middle of the file with garbage
    size = os.path.getsize(train)
    with open(train, "r+b") as fh:
        fh.seek(size // 2)
        fh.write(os.urandom(size // 4))
    assert registry.cached_dataset("temporal") == (train, test) and len(made) == 2
    with open_dataset(train) as d:
        assert same_batches(d.take(0, len(d)), reference)

    # truncated, then missing
    with open(test, "r+b") as fh:
        fh.truncate(100)
    registry.cached_dataset("temporal")
    os.remove(test)
    registry.cached_dataset("temporal")
    assert len(made) == 4
    with open_dataset(test) as d:
        assert len(d) == 200


def test_resolve_data_names_splits_and_paths(monkeypatch, tmp_path):
    monkeypatch.setenv("PYASYNC_SNN_CACHE", str(tmp_path / "cache"))
    train, test = registry.cached_dataset("temporal")
    assert registry.resolve_data("temporal") == train
    assert registry.resolve_data("temporal:train") == train
    assert registry.resolve_data("temporal:test") == test
    assert registry.resolve_train_test("temporal") == (train, test)
    assert registry.resolve_train_test(train) == (train, None)
    assert registry.resolve_data(train) == train  # a path is returned unchanged
    with pytest.raises(UserError, match="unknown split 'valid'"):
        registry.resolve_data("temporal:valid")
    with pytest.raises(UserError, match="no such file, and not a registered dataset.*spatial, temporal"):
        registry.resolve_data(str(tmp_path / "nothing.h5"))
    assert set(registry.DATASETS) == {"spatial", "temporal"}
    assert "spatial" in registry.list_datasets() and "temporal" in registry.list_datasets()
