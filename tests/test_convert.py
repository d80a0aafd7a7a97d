"""Converters of real datasets (issue 5): N-MNIST .bin, SHD/SSC HDF5, DVS Gesture AEDAT 3.1; event
arrays in tonic's layout (.npz / folder of .npy)."""
import json
import os
import struct
from pathlib import Path

import h5py
import numpy as np
import pytest

from pyasync_snn.datasets import aedat, binning, convert, nmnist, shd
from pyasync_snn.datasets.convert.events import convert_events
from pyasync_snn.errors import UserError
from pyasync_snn.io import open_dataset

NMNIST_1K = Path(__file__).resolve().parents[2] / "shared" / "data" / "nmnist-1k"
LIMIT = nmnist.TIMESTAMP_LIMIT


def read_all(path):
    """Everything of a dataset file, loaded (small test files only)."""
    with open_dataset(path) as d:
        batch = d.take(0, len(d))
    with h5py.File(path, "r") as f:
        time_us = f["events/time_us"][:] if "events/time_us" in f else None
        attrs = dict(f.attrs)
        extra = {k: f["extra"][k][:] for k in f["extra"]} if "extra" in f else {}
    return batch, time_us, attrs, extra


def sample_events(batch, i):
    s = slice(batch.indptr[i], batch.indptr[i + 1])
    return batch.timestep[s], batch.unit[s]


def no_temp_files(folder):
    return not [f for f in os.listdir(folder) if f.startswith(".") and ".tmp-" in f]


# ------------------------------------------------------------------------------------ N-MNIST

def random_sample(rng, n, t_max=300_000):
    t = np.sort(rng.integers(0, t_max, n))
    return rng.integers(0, 34, n), rng.integers(0, 34, n), rng.integers(0, 2, n), t


def make_nmnist(root, samples, split="Train"):
    """``samples``: {(digit, name): (x, y, p, t)} written with the real writer."""
    for (digit, name), ev in samples.items():
        folder = root / split / str(digit)
        folder.mkdir(parents=True, exist_ok=True)
        nmnist.write_bin(folder / name, *ev, durable=False)
    return root


@pytest.fixture
def small_nmnist(tmp_path):
    rng = np.random.default_rng(1)
    samples = {}
    for digit in (0, 3, 7):
        for k in range(3):
            samples[(digit, f"{k:05d}.bin")] = random_sample(rng, int(rng.integers(20, 200)))
    # an overflow case: timestamps past the 23-bit field, written with overflow markers
    x, y, p, t = random_sample(rng, 50)
    t = t.copy()
    t[-5:] = [LIMIT - 1, LIMIT, LIMIT + 3 * nmnist.OVERFLOW_INCREMENT + 7, 2 * LIMIT + 11,
              2 * LIMIT + 12]
    samples[(3, "99999.bin")] = (x, y, p, t)
    root = make_nmnist(tmp_path / "nmnist", samples)
    return root, samples


def test_nmnist_conversion_is_event_exact(small_nmnist, tmp_path):
    root, samples = small_nmnist
    assert (root / "Train" / "3" / "99999.bin").stat().st_size > 5 * 50  # markers were written
    out = tmp_path / "out.h5"
    report = convert.convert_nmnist(root, out, time_window_us=10_000, keep_time=True)
    batch, time_us, attrs, extra = read_all(out)
    order = sorted(samples)  # by digit, then file name
    assert len(batch) == len(order) == report.n_samples
    assert batch.labels.tolist() == [d for d, _ in order]
    assert batch.n_inputs == 2312 and attrs["n_classes"] == 10
    t_max = max(int(ev[3].max()) for ev in samples.values())
    assert batch.n_timesteps == t_max // 10_000 + 1  # open-ended: as many bins as needed
    for i, key in enumerate(order):
        x, y, p, t = samples[key]
        step, unit = sample_events(batch, i)
        np.testing.assert_array_equal(unit, p * 34 * 34 + y * 34 + x)
        np.testing.assert_array_equal(step, t // 10_000)
        np.testing.assert_array_equal(time_us[batch.indptr[i]:batch.indptr[i + 1]], t)
    assert [s.decode() if isinstance(s, bytes) else s for s in extra["file"]] == \
        [f"Train/{d}/{n}" for d, n in order]
    # the same as binning all samples at once with the documented rule
    ref, ref_time, dropped = binning.bin_samples(
        [samples[k][3] for k in order],
        [nmnist.channel_index(*samples[k][:3]) for k in order],
        [d for d, _ in order], 2312, time_window_us=10_000)
    for key in ("indptr", "timestep", "unit", "labels"):
        np.testing.assert_array_equal(getattr(batch, key), getattr(ref, key))
    assert ref.n_timesteps == batch.n_timesteps and dropped == 0
    assert report.n_events_read == report.n_events == sum(len(e[3]) for e in samples.values())
    assert attrs["source"] == str(root.resolve()) and attrs["split"] == "train"
    assert attrs["time_window_us"] == 10_000 and attrs["n_files"] == len(order)
    assert no_temp_files(tmp_path)


def test_nmnist_streams_in_chunks_with_the_same_result(small_nmnist, tmp_path, monkeypatch):
    root, _ = small_nmnist
    convert.convert_nmnist(root, tmp_path / "one.h5", keep_time=True)
    monkeypatch.setattr(convert.pipeline, "CHUNK_SAMPLES", 2)  # 5 appends instead of 1
    convert.convert_nmnist(root, tmp_path / "many.h5", keep_time=True)
    a, ta, _, _ = read_all(tmp_path / "one.h5")
    b, tb, _, _ = read_all(tmp_path / "many.h5")
    for key in ("indptr", "timestep", "unit", "labels"):
        np.testing.assert_array_equal(getattr(a, key), getattr(b, key))
    np.testing.assert_array_equal(ta, tb)
    with h5py.File(tmp_path / "many.h5", "r") as f:
        assert f["events/unit"].chunks is not None and f["events/unit"].maxshape == (None,)
        assert f["events/unit"].dtype == np.int16


def test_nmnist_n_timesteps_only_uses_one_window_for_the_set(small_nmnist, tmp_path):
    root, samples = small_nmnist
    calls = []
    report = convert.convert_nmnist(root, tmp_path / "o.h5", time_window_us=None, n_timesteps=7,
                                    progress=lambda done, total: calls.append((done, total)))
    batch, _, attrs, _ = read_all(tmp_path / "o.h5")
    order = sorted(samples)
    ref, _, dropped = binning.bin_samples(
        [samples[k][3] for k in order], [nmnist.channel_index(*samples[k][:3]) for k in order],
        [d for d, _ in order], 2312, n_timesteps=7)
    np.testing.assert_array_equal(batch.timestep, ref.timestep)
    np.testing.assert_array_equal(batch.unit, ref.unit)
    t_max = max(int(ev[3].max()) for ev in samples.values())
    assert attrs["time_window_us"] == report.time_window_us == -(-(t_max + 1) // 7)
    assert batch.n_timesteps == 7 and dropped == 0 and attrs["two_pass"]
    # two passes: the progress total counts every file twice, and ends at the total
    n = len(samples)
    assert calls[0] == (0, 2 * n) and calls[-1] == (2 * n, 2 * n)
    assert [d for d, _ in calls] == list(range(2 * n + 1))


def test_nmnist_trailing_events_past_the_last_bin_are_dropped(tmp_path):
    t = np.array([0, 9_999, 10_000, 29_999, 30_000, 45_000])
    root = make_nmnist(tmp_path / "r", {(1, "a.bin"): (np.arange(6), np.zeros(6, int),
                                                       np.ones(6, int), t)})
    report = convert.convert_nmnist(root, tmp_path / "o.h5", time_window_us=10_000, n_timesteps=3)
    batch, _, attrs, _ = read_all(tmp_path / "o.h5")
    assert batch.timestep.tolist() == [0, 0, 1, 2]  # nothing folded into the last bin
    assert batch.unit.tolist() == [1156, 1157, 1158, 1159]
    assert report.n_dropped_window == attrs["n_dropped_window"] == 2
    assert batch.n_timesteps == 3


def test_nmnist_first_saccade_and_downsampling(tmp_path):
    x = np.array([0, 33, 5, 6, 17])
    y = np.array([0, 33, 2, 9, 17])
    p = np.array([0, 1, 1, 0, 1])
    t = np.array([0, 99_999, 100_000, 150_000, 50_000])
    root = make_nmnist(tmp_path / "r", {(2, "a.bin"): (x, y, p, t)})
    report = convert.convert_nmnist(root, tmp_path / "o.h5", first_saccade=True, downsample=3)
    batch, _, attrs, _ = read_all(tmp_path / "o.h5")
    side = 12  # ceil(34 / 3)
    assert batch.n_inputs == 2 * side * side
    keep = t < convert.nmnist.FIRST_SACCADE_US
    np.testing.assert_array_equal(batch.unit, p[keep] * side * side + (y[keep] // 3) * side + x[keep] // 3)
    assert batch.timestep.tolist() == [0, 9, 5] and batch.n_timesteps == 10
    assert report.n_dropped_saccade == attrs["n_dropped_saccade"] == 2
    assert attrs["first_saccade_end_us"] == 100_000 and attrs["sensor_width"] == side


def write_sentinel(path):
    path.write_bytes(b"previous output, must survive")
    return path.read_bytes()


def test_nmnist_truncated_file_stops_naming_it_and_keeps_the_old_output(small_nmnist, tmp_path):
    root, samples = small_nmnist
    bad = root / "Train" / "3" / "00001.bin"
    bad.write_bytes(bad.read_bytes()[:-2])  # not a multiple of 5 bytes
    out = tmp_path / "out.h5"
    before = write_sentinel(out)
    with pytest.raises(UserError) as e:
        convert.convert_nmnist(root, out)
    msg = str(e.value)
    assert str(bad) in msg and "truncated" in msg and "\n" not in msg and "skip" in msg
    assert out.read_bytes() == before and no_temp_files(tmp_path)
    # with skip_bad the file is skipped and listed
    report = convert.convert_nmnist(root, out, skip_bad=True)
    batch, _, attrs, extra = read_all(out)
    assert len(batch) == len(samples) - 1 and report.n_samples == len(samples) - 1
    assert [p for p, _ in report.skipped] == [str(bad)] and attrs["n_skipped"] == 1
    assert extra["skipped_files"][0].decode() == str(bad)
    assert "truncated" in extra["skipped_reasons"][0].decode()
    assert "Train/3/00001.bin" not in [s.decode() for s in extra["file"]]
    assert json.loads(json.dumps(report.as_dict()))["skipped"][0][0] == str(bad)


def test_nmnist_coordinates_outside_the_sensor(tmp_path):
    root = make_nmnist(tmp_path / "r", {(4, "good.bin"): ([1], [1], [1], [5]),
                                        (4, "bad.bin"): ([1, 40], [2, 3], [0, 1], [5, 6])})
    out = tmp_path / "o.h5"
    with pytest.raises(UserError, match=r"bad\.bin: event 1 at \(x=40, y=3\) is outside the 34x34"):
        convert.convert_nmnist(root, out)
    assert not out.exists() and no_temp_files(tmp_path)
    report = convert.convert_nmnist(root, out, skip_bad=True)
    assert report.n_samples == 1 and "outside" in report.skipped[0][1]


def test_nmnist_missing_labels(tmp_path):
    root = make_nmnist(tmp_path / "r", {(4, "good.bin"): ([1], [1], [1], [5])})
    stray = root / "Train" / "stray.bin"
    nmnist.write_bin(stray, [1], [1], [1], [5])
    (root / "Train" / "10").mkdir()
    nmnist.write_bin(root / "Train" / "10" / "x.bin", [1], [1], [1], [5])
    (root / "Train" / "4" / "README.txt").write_text("ignored")
    (root / "Train" / "4" / "._good.bin").write_bytes(b"\0" * 7)  # macOS resource fork: ignored
    labelled, unlabelled = nmnist.list_split(root, "train")
    assert labelled == [(str(root / "Train" / "4" / "good.bin"), 4)]
    assert sorted(unlabelled) == sorted([str(stray), str(root / "Train" / "10" / "x.bin")])
    with pytest.raises(UserError, match="no label"):
        convert.convert_nmnist(root, tmp_path / "o.h5")
    report = convert.convert_nmnist(root, tmp_path / "o.h5", skip_bad=True)
    assert report.n_samples == 1 and len(report.skipped) == 2


def test_nmnist_layout_errors(tmp_path):
    with pytest.raises(UserError, match="Test: no such directory"):
        convert.convert_nmnist(tmp_path, tmp_path / "o.h5", split="test")
    (tmp_path / "Train" / "3").mkdir(parents=True)
    with pytest.raises(UserError, match="no .bin files"):
        convert.convert_nmnist(tmp_path, tmp_path / "o.h5")
    with pytest.raises(UserError, match="split must be"):
        convert.convert_nmnist(tmp_path, tmp_path / "o.h5", split="val")
    with pytest.raises(UserError, match="downsample"):
        convert.convert_nmnist(tmp_path, tmp_path / "o.h5", downsample=0)
    bad = make_nmnist(tmp_path / "b", {(1, "a.bin"): ([1], [1], [1], [5])})
    (bad / "Train" / "1" / "a.bin").write_bytes(b"\1\2\3")
    with pytest.raises(UserError, match="every .bin file"):
        convert.convert_nmnist(bad, tmp_path / "o.h5", skip_bad=True)
    assert not (tmp_path / "o.h5").exists()


def test_nmnist_empty_samples_are_kept(tmp_path):
    root = make_nmnist(tmp_path / "r", {(0, "a.bin"): ([], [], [], []),
                                        (1, "b.bin"): ([3], [4], [1], [250_000])})
    report = convert.convert_nmnist(root, tmp_path / "o.h5", time_window_us=10_000,
                                    n_timesteps=10)
    batch, _, attrs, _ = read_all(tmp_path / "o.h5")
    assert batch.labels.tolist() == [0, 1] and batch.indptr.tolist() == [0, 0, 0]
    assert report.empty == [str(root / "Train" / "0" / "a.bin")]
    assert report.n_empty_samples == attrs["n_empty_samples"] == 2  # b's event past the grid
    assert attrs["n_empty_inputs"] == 1 and report.n_dropped_window == 1


def test_nmnist_non_monotonic_timestamps_are_counted_and_kept(tmp_path):
    t = np.array([5, 3, 8, 1, 20_000])
    root = make_nmnist(tmp_path / "r", {(5, "a.bin"): (np.arange(5), np.arange(5),
                                                       np.zeros(5, int), t),
                                        (5, "b.bin"): ([1, 1], [1, 1], [1, 1], [7, 7])})
    report = convert.convert_nmnist(root, tmp_path / "o.h5", keep_time=True)
    batch, time_us, attrs, _ = read_all(tmp_path / "o.h5")
    assert time_us[:5].tolist() == t.tolist()  # file order
    assert batch.timestep[:5].tolist() == [0, 0, 0, 0, 2]
    assert report.n_decreases == attrs["n_decreases"] == 2
    assert report.n_samples_nonmonotonic == attrs["n_samples_nonmonotonic"] == 1


def test_nmnist_interrupted_conversion_leaves_no_output(small_nmnist, tmp_path):
    root, _ = small_nmnist
    out = tmp_path / "o.h5"
    before = write_sentinel(out)

    def stop(done, total):
        if done == 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        convert.convert_nmnist(root, out, progress=stop)
    assert out.read_bytes() == before and no_temp_files(tmp_path)


def test_real_nmnist_folder_converts_with_the_expected_statistics(tmp_path):
    if not (NMNIST_1K / "Train").is_dir():
        pytest.skip(f"{NMNIST_1K} not available")
    out = tmp_path / "nmnist.h5"
    report = convert.convert_nmnist(NMNIST_1K, out)
    per_digit = [len([f for f in os.listdir(NMNIST_1K / "Train" / str(d)) if f.endswith(".bin")])
                 for d in range(10)]
    assert sum(per_digit) == 1000
    with open_dataset(out) as d:
        assert len(d) == 1000 and d.n_classes == 10 and d.n_inputs == 2312
        assert np.bincount(d.labels, minlength=10).tolist() == per_digit
        assert d.n_timesteps == 32  # recordings are ~300-315 ms long: 32 bins of 10 ms
        on = total = 0
        per_sample = []
        for batch in d.iter_batches(250):
            on += int(np.count_nonzero(batch.unit >= 34 * 34))
            total += len(batch.unit)
            per_sample.extend(np.diff(batch.indptr).tolist())
    per_sample = np.array(per_sample)
    assert 3800 < per_sample.mean() < 4500  # measured: 4133.2
    assert per_sample.min() > 500 and per_sample.max() < 10_000
    assert 0.45 < on / total < 0.55  # measured: 0.498
    assert report.n_events == total == report.n_events_read
    assert report.n_decreases == 0 and not report.skipped and not report.empty
    assert report.class_counts == per_digit
    # first saccade only: about a third of the events, 10 bins
    first = convert.convert_nmnist(NMNIST_1K, tmp_path / "first.h5", first_saccade=True)
    assert first.n_timesteps == 10
    assert 0.3 < first.n_events / report.n_events < 0.42  # measured: 0.360


# ----------------------------------------------------------------------------------- SHD / SSC

def shd_samples(rng, n, n_units=700, t_max_s=1.0):
    times, units = [], []
    for _ in range(n):
        k = int(rng.integers(0, 60))
        times.append(np.sort(rng.integers(0, int(t_max_s * 1e6), k)) / 1e6)
        units.append(rng.integers(0, n_units, k))
    return times, units


def test_shd_conversion_is_event_exact_and_carries_extra(tmp_path, monkeypatch):
    monkeypatch.setattr(convert.shd, "SHD_SLICE", 4)  # several slices
    rng = np.random.default_rng(2)
    n = 11
    times, units = shd_samples(rng, n)
    times[3] = np.zeros(0)
    units[3] = np.zeros(0, int)
    labels = rng.integers(0, 20, n)
    keys = [f"word{k}" for k in range(20)]
    speaker = rng.integers(0, 12, n)
    src = tmp_path / "shd_train.h5"
    shd.write_shd(src, times, units, labels,
                  extra={"speaker": speaker, "keys": keys,
                         "meta_info": {"age": np.arange(12), "gender": ["f", "m"] * 6}})
    calls = []
    report = convert.convert_shd(src, tmp_path / "o.h5", time_window_us=1000, n_timesteps=900,
                                 keep_time=True, progress=lambda d, t: calls.append((d, t)))
    batch, time_us, attrs, extra = read_all(tmp_path / "o.h5")
    assert batch.n_inputs == 700 and attrs["n_classes"] == 20 and batch.n_timesteps == 900
    assert attrs["n_units_source"].startswith("default 700")
    np.testing.assert_array_equal(batch.labels, labels)
    dropped = 0
    for i in range(n):
        t_us = np.rint(times[i] * 1e6).astype(np.int64)
        keep = t_us < 900 * 1000
        dropped += int(np.count_nonzero(~keep))
        step, unit = sample_events(batch, i)
        np.testing.assert_array_equal(step, t_us[keep] // 1000)
        np.testing.assert_array_equal(unit, units[i][keep])
        np.testing.assert_array_equal(time_us[batch.indptr[i]:batch.indptr[i + 1]], t_us[keep])
    assert report.n_dropped_window == attrs["n_dropped_window"] == dropped > 0
    np.testing.assert_array_equal(extra["speaker"], speaker)
    assert json.loads(attrs["class_names"]) == keys
    assert json.loads(attrs["meta_info"])["age"] == list(range(12))
    assert report.empty == ["sample 3"] and calls[-1] == (2 * n, 2 * n)
    assert attrs["name"] == "shd_train"


def test_shd_units_timesteps_and_downsampling(tmp_path):
    rng = np.random.default_rng(3)
    times, units = shd_samples(rng, 6, n_units=100)
    labels = np.array([0, 1, 2, 3, 4, 34])  # no keys: classes = largest label + 1 (SSC: 35)
    src = tmp_path / "ssc.h5"
    shd.write_shd(src, times, units, labels)
    convert.convert_shd(src, tmp_path / "o.h5", time_window_us=None, n_timesteps=20,
                        downsample_units=4)
    batch, _, attrs, _ = read_all(tmp_path / "o.h5")
    assert attrs["n_classes"] == 35 and batch.n_inputs == 175  # 700 / 4
    ref, _, _ = binning.bin_samples([np.rint(t * 1e6).astype(np.int64) for t in times],
                                    [u // 4 for u in units], labels, 175, n_timesteps=20)
    np.testing.assert_array_equal(batch.timestep, ref.timestep)
    np.testing.assert_array_equal(batch.unit, ref.unit)
    assert batch.n_timesteps == 20
    # n_units: argument, then attribute, then 700, then largest unit + 1
    convert.convert_shd(src, tmp_path / "a.h5", n_units=100)
    assert read_all(tmp_path / "a.h5")[0].n_inputs == 100
    with h5py.File(src, "a") as f:
        f["spikes"].attrs["n_units"] = 128
    convert.convert_shd(src, tmp_path / "b.h5")
    assert read_all(tmp_path / "b.h5")[2]["n_units_source"] == "attribute n_units"
    with pytest.raises(UserError, match="unit .* outside the 50 channels"):
        convert.convert_shd(src, tmp_path / "c.h5", n_units=50)
    units[2] = np.full(len(times[2]), 811)
    shd.write_shd(tmp_path / "wide.h5", times, units, labels)
    report = convert.convert_shd(tmp_path / "wide.h5", tmp_path / "d.h5")
    assert report.n_inputs == 812 and report.notes
    assert report.time_window_us == 10_000  # neither given: 10 ms windows


def test_shd_bad_inputs_fail_cleanly(tmp_path):
    out = tmp_path / "o.h5"
    before = write_sentinel(out)
    with pytest.raises(UserError, match="no such file"):
        convert.convert_shd(tmp_path / "missing.h5", out)
    shd.write_shd(tmp_path / "neg.h5", [np.array([0.1, -0.2])], [np.array([1, 2])], [0])
    with pytest.raises(UserError, match="neg.h5: sample 0 has negative"):
        convert.convert_shd(tmp_path / "neg.h5", out)
    shd.write_shd(tmp_path / "keys.h5", [np.array([0.1])], [np.array([1])], [3],
                  extra={"keys": ["a", "b"]})
    with pytest.raises(UserError, match="label 3 but extra/keys"):
        convert.convert_shd(tmp_path / "keys.h5", out)
    assert out.read_bytes() == before and no_temp_files(tmp_path)


# --------------------------------------------------------------------------------- DVS Gesture

def test_aedat_polarity_event_bit_layout(tmp_path):
    path = tmp_path / "one.aedat"
    aedat.write_aedat31(path, [5], [9], [1], [(3 << 31) | 1234])
    raw = path.read_bytes()
    body = raw[raw.index(b"#!END-HEADER\r\n") + 14:]
    header = struct.unpack("<hhiiiiii", body[:28])
    assert header == (1, 1, 8, 4, 3, 1, 1, 1)  # type, source, size, tsoffset, overflow, cap, n, valid
    data, ts = struct.unpack("<Ii", body[28:36])
    assert data == (5 << 17) | (9 << 2) | (1 << 1) | 1 and ts == 1234
    ev = aedat.read_aedat31(path)
    assert (ev["x"][0], ev["y"][0], ev["polarity"][0], ev["t_us"][0]) == (5, 9, 1, (3 << 31) | 1234)


def test_aedat_round_trip_with_overflow_invalid_events_and_other_packets(tmp_path):
    rng = np.random.default_rng(4)
    n = 3000
    t = np.sort(rng.integers((1 << 31) - 2_000_000, (1 << 31) + 2_000_000, n))  # wraps once
    t[-10:] += 5 << 31  # and far later, several overflows at once
    x, y, p = rng.integers(0, 128, n), rng.integers(0, 128, n), rng.integers(0, 2, n)
    valid = rng.random(n) > 0.1
    special = (0, 8, 2, struct.pack("<IiIi", 7, 0, 9, 1))  # a special-event packet, skipped
    path = tmp_path / "rec.aedat"
    aedat.write_aedat31(path, x, y, p, t, valid=valid, packet_events=500, other_packets=[special])
    ev = aedat.read_aedat31(path)
    assert ev["n_invalid"] == int((~valid).sum()) and ev["n_packets"] >= 3 + 1
    for key, want in (("x", x), ("y", y), ("polarity", p), ("t_us", t)):
        np.testing.assert_array_equal(ev[key], want[valid])


def write_recording(folder, name, events, gestures):
    """events: (x, y, p, t); gestures: [(class 1..11, start, end)]."""
    aedat.write_aedat31(folder / f"{name}.aedat", *events, packet_events=64)
    lines = ["class,startTime_usec,endTime_usec"] + [f"{c},{s},{e}" for c, s, e in gestures]
    (folder / f"{name}_labels.csv").write_text("\r\n".join(lines) + "\r\n")


@pytest.fixture
def dvs_root(tmp_path):
    rng = np.random.default_rng(5)
    root = tmp_path / "DvsGesture"
    root.mkdir()
    recs = {}
    for r, name in enumerate(["user01_fluorescent", "user02_led"]):
        n = 4000
        base = (1 << 31) - 1_000_000 if r == 0 else 5_000_000  # recording 0 crosses an overflow
        t = np.sort(rng.integers(base, base + 3_000_000, n))
        ev = (rng.integers(0, 128, n), rng.integers(0, 128, n), rng.integers(0, 2, n), t)
        gestures = [(1 + 3 * r, base + 100_000, base + 1_300_000),
                    (11 - r, base + 1_300_000, base + 2_900_000),
                    (5, base + 3_500_000, base + 3_600_000)]  # after the last event: empty
        write_recording(root, name, ev, gestures)
        recs[name] = (ev, gestures)
    (root / "trials_to_train.txt").write_text("user01_fluorescent.aedat\n")
    (root / "trials_to_test.txt").write_text("user02_led.aedat\n\n")
    return root, recs


def test_dvsgesture_one_sample_per_gesture_event_exact(dvs_root, tmp_path):
    root, recs = dvs_root
    report = convert.convert_dvsgesture(root, tmp_path / "o.h5", downsample=4,
                                        time_window_us=10_000, keep_time=True)
    batch, time_us, attrs, extra = read_all(tmp_path / "o.h5")
    assert batch.n_inputs == 2 * 32 * 32 and attrs["n_classes"] == 11 and len(batch) == 6
    i = 0
    for name in sorted(recs):
        (x, y, p, t), gestures = recs[name]
        for cls, start, end in gestures:
            inside = (t >= start) & (t < end)
            step, unit = sample_events(batch, i)
            assert batch.labels[i] == cls - 1
            np.testing.assert_array_equal(unit, p[inside] * 1024 + (y[inside] // 4) * 32 + x[inside] // 4)
            np.testing.assert_array_equal(step, (t[inside] - start) // 10_000)
            np.testing.assert_array_equal(time_us[batch.indptr[i]:batch.indptr[i + 1]],
                                          t[inside] - start)
            assert extra["recording"][i].decode() == f"{name}.aedat"
            assert (extra["start_us"][i], extra["end_us"][i]) == (start, end)
            i += 1
    assert batch.n_timesteps == 160  # the longest gesture, 1.6 s, in 10 ms bins
    assert len(report.empty) == 2 and report.n_empty_samples == 2
    assert report.n_files == 2 and report.n_events_read == 8000
    assert report.class_counts == [1, 0, 0, 1, 2, 0, 0, 0, 0, 1, 1]


def test_dvsgesture_splits_and_timesteps(dvs_root, tmp_path):
    root, recs = dvs_root
    train = convert.convert_dvsgesture(root, tmp_path / "train.h5", split="train",
                                       time_window_us=None, n_timesteps=50)
    test = convert.convert_dvsgesture(root, tmp_path / "test.h5", split="test")
    assert train.n_samples == test.n_samples == 3 and train.n_files == test.n_files == 1
    assert read_all(tmp_path / "train.h5")[2]["split"] == "train"
    (x, y, p, t), gestures = recs["user01_fluorescent"]
    times = [t[(t >= s) & (t < e)] - s for _, s, e in gestures]
    ref, _, _ = binning.bin_samples(times, [np.zeros(len(a), int) for a in times],
                                    [c - 1 for c, _, _ in gestures], 1, n_timesteps=50)
    np.testing.assert_array_equal(read_all(tmp_path / "train.h5")[0].timestep, ref.timestep)
    with pytest.raises(UserError, match="split must be"):
        convert.convert_dvsgesture(root, tmp_path / "x.h5", split="val")
    (root / "trials_to_test.txt").write_text("user02_led.aedat\nuser09_gone.aedat\n")
    with pytest.raises(UserError, match="user09_gone.aedat: no such recording"):
        convert.convert_dvsgesture(root, tmp_path / "x.h5", split="test")


def test_dvsgesture_bad_recordings_stop_or_are_skipped(dvs_root, tmp_path):
    root, _ = dvs_root
    out = tmp_path / "o.h5"
    before = write_sentinel(out)
    (root / "user02_led_labels.csv").unlink()
    with pytest.raises(UserError, match=r"user02_led\.aedat: missing labels file user02_led_labels\.csv"):
        convert.convert_dvsgesture(root, out)
    assert out.read_bytes() == before and no_temp_files(tmp_path)
    report = convert.convert_dvsgesture(root, out, skip_bad=True)
    assert report.n_samples == 3 and report.skipped[0][0] == str(root / "user02_led.aedat")
    # truncated recording
    rec = root / "user01_fluorescent.aedat"
    rec.write_bytes(rec.read_bytes()[:-3])
    with pytest.raises(UserError, match="user01_fluorescent.aedat: truncated AEDAT file"):
        convert.convert_dvsgesture(root, out)
    with pytest.raises(UserError, match="no labelled gesture"):
        convert.convert_dvsgesture(root, out, skip_bad=True)


def test_dvsgesture_validation_messages(tmp_path):
    root = tmp_path / "g"
    root.mkdir()
    write_recording(root, "a", ([1, 200], [1, 2], [0, 1], [10, 20]), [(1, 0, 100)])
    with pytest.raises(UserError, match=r"a\.aedat: event 1 at \(x=200, y=2\) is outside the 128x128"):
        convert.convert_dvsgesture(root, tmp_path / "o.h5")
    write_recording(root, "a", ([1], [1], [0], [10]), [(12, 0, 100)])
    with pytest.raises(UserError, match=r"a_labels\.csv: line 2: class 12 outside 1\.\.11"):
        convert.convert_dvsgesture(root, tmp_path / "o.h5")
    (root / "a_labels.csv").write_text("class,startTime_usec,endTime_usec\n1,5\n")
    with pytest.raises(UserError, match="line 2: expected"):
        convert.convert_dvsgesture(root, tmp_path / "o.h5")
    (root / "a.aedat").write_bytes(b"#!AER-DAT2.0\r\n#!END-HEADER\r\n")
    with pytest.raises(UserError, match="not an AEDAT 3.x file"):
        aedat.read_aedat31(root / "a.aedat")
    (root / "a.aedat").write_bytes(b"#!AER-DAT3.1\r\n#Format: RAW\r\n")
    with pytest.raises(UserError, match="no '#!END-HEADER'"):
        aedat.read_aedat31(root / "a.aedat")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no .aedat recordings"):
        convert.convert_dvsgesture(tmp_path / "empty", tmp_path / "o.h5")
    assert not (tmp_path / "o.h5").exists() and no_temp_files(tmp_path)


# ------------------------------------------------------------ event arrays (tonic's layout)

# tonic's dtypes: NMNIST (x, y, t, p) int64; DVSGesture (x, y int16, p bool, t int64); SHD (t, x, p)
TONIC_NMNIST = np.dtype([("x", np.int64), ("y", np.int64), ("t", np.int64), ("p", np.int64)])
TONIC_DVS = np.dtype([("x", np.int16), ("y", np.int16), ("p", np.bool_), ("t", np.int64)])
TONIC_SHD = np.dtype([("t", np.int64), ("x", np.int64), ("p", np.int64)])


def structured(dtype, **columns):
    n = len(next(iter(columns.values())))
    ev = np.zeros(n, dtype=dtype)
    for key, values in columns.items():
        ev[key] = values
    return ev


def camera_samples(rng, width=40, height=30):
    """Four samples of a non-square camera in both tonic dtypes: unsorted times in one, an
    empty one, and two events of one pixel in one bin (an input count of 2)."""
    samples = []
    for i, dtype in enumerate([TONIC_NMNIST, TONIC_DVS, TONIC_NMNIST, TONIC_DVS]):
        n = [60, 45, 0, 30][i]
        t = rng.integers(0, 95_000, n)
        if i != 0:
            t = np.sort(t)  # sample 0 keeps its unsorted times
        samples.append(structured(dtype, x=rng.integers(0, width, n), y=rng.integers(0, height, n),
                                  p=rng.integers(0, 2, n), t=t))
    samples[3][-2:] = [(width - 1, height - 1, True, 90_001), (width - 1, height - 1, True, 90_002)]
    return samples


def check_camera(batch, samples, width, height, window, time_us=None):
    """Every event of every sample in its channel (p * W * H + y * W + x) and timestep, in order."""
    for i, ev in enumerate(samples):
        step, unit = sample_events(batch, i)
        p = ev["p"].astype(np.int64)
        np.testing.assert_array_equal(unit, p * width * height + ev["y"] * width + ev["x"])
        np.testing.assert_array_equal(step, ev["t"] // window)
        if time_us is not None:
            np.testing.assert_array_equal(time_us[batch.indptr[i]:batch.indptr[i + 1]], ev["t"])


def test_events_npz_camera_round_trip(tmp_path):
    from pyasync_snn.plots.dataset_plots import CHANNEL_ORDER, Layout, sensor_layout
    rng = np.random.default_rng(10)
    samples = camera_samples(rng)
    labels = np.array([2, 0, 1, 2])
    src = tmp_path / "cam.npz"
    np.savez(src, labels=labels, class_names=np.array(["a", "b", "c"]),
             **{f"events_{i}": ev for i, ev in enumerate(samples)})
    calls = []
    report = convert_events(src, tmp_path / "o.h5", sensor=(40, 30),
                                           time_window_us=10_000, keep_time=True,
                                           progress=lambda d, t: calls.append((d, t)))
    batch, time_us, attrs, _ = read_all(tmp_path / "o.h5")
    assert len(batch) == 4 and batch.labels.tolist() == labels.tolist()
    assert batch.n_inputs == 2 * 40 * 30 and attrs["n_classes"] == 3 and batch.n_timesteps == 10
    check_camera(batch, samples, 40, 30, 10_000, time_us)
    # the two events of one pixel in one bin: an input count of 2 in that (timestep, unit) cell
    step, unit = sample_events(batch, 3)
    cell = (step == 9) & (unit == 1 * 40 * 30 + 29 * 40 + 39)
    assert np.count_nonzero(cell) == 2
    # the same as the documented rule on all samples at once
    ref, _, dropped = binning.bin_samples(
        [ev["t"] for ev in samples], [nmnist.channel_index(ev["x"], ev["y"], ev["p"], 40, 30)
                                      for ev in samples], labels, 2400, time_window_us=10_000)
    for key in ("indptr", "timestep", "unit"):
        np.testing.assert_array_equal(getattr(batch, key), getattr(ref, key))
    assert dropped == 0 and report.n_events == report.n_events_read == 135
    # provenance: the sensor, so that `data plot` draws frames
    assert (attrs["sensor_width"], attrs["sensor_height"], attrs["n_polarities"]) == (40, 30, 2)
    assert attrs["channel_order"] == CHANNEL_ORDER and attrs["event_kind"] == "camera"
    assert sensor_layout(attrs, batch.n_inputs) == Layout(40, 30, 2)
    assert attrs["sensor_source"] == "given" and attrs["layout"] == "npz"
    assert json.loads(attrs["class_names"]) == ["a", "b", "c"]
    assert attrs["dataset"] == "events" and attrs["source"] == str(src) and attrs["name"] == "cam"
    assert report.n_decreases == attrs["n_decreases"] == nmnist.count_decreases(samples[0]["t"]) > 0
    assert report.n_samples_nonmonotonic == 1
    assert report.empty == [f"{src}: events_2"] and attrs["n_empty_samples"] == 1
    assert calls[0] == (0, 8) and calls[-1] == (8, 8)
    assert report.summary().startswith("event arrays: 4 samples, 3 classes, 2400 inputs")
    assert no_temp_files(tmp_path)


def test_events_folder_audio_round_trip(tmp_path):
    rng = np.random.default_rng(11)
    root = tmp_path / "shd"
    (root / "test").mkdir(parents=True)
    samples, names = [], ["b.npy", "test/a.npy", "c.npy"]
    for i, name in enumerate(names):
        n = 80
        t = np.sort(rng.integers(0, 1_200_000, n))
        # tonic's SHD: t in µs, an artificial p = 1 on every event
        ev = structured(TONIC_SHD, t=t, x=rng.integers(0, 700, n), p=np.ones(n, int))
        if i == 1:  # times as floats: rounded to the nearest µs
            ev = structured(np.dtype([("t", np.float64), ("x", np.int32), ("p", np.int8)]),
                            t=t + 0.6, x=ev["x"], p=1)
        np.save(root / name, ev)
        samples.append(ev)
    (root / "labels.csv").write_text("file,label\nb.npy,19\ntest/a.npy,0\nc.npy,7\n")
    (root / "README.txt").write_text("ignored")
    report = convert_events(root, tmp_path / "o.h5", n_channels=700,
                                           downsample=4, time_window_us=1000, n_timesteps=1000,
                                           keep_time=True, n_classes=20)
    batch, time_us, attrs, extra = read_all(tmp_path / "o.h5")
    assert batch.labels.tolist() == [19, 0, 7]  # the csv's order
    assert [s.decode() for s in extra["file"]] == names
    assert batch.n_inputs == 175 and batch.n_timesteps == 1000 and attrs["n_classes"] == 20
    dropped = 0
    for i, ev in enumerate(samples):
        t = np.rint(ev["t"]).astype(np.int64)
        keep = t < 1000 * 1000
        dropped += int(np.count_nonzero(~keep))
        step, unit = sample_events(batch, i)
        np.testing.assert_array_equal(unit, ev["x"][keep] // 4)
        np.testing.assert_array_equal(step, t[keep] // 1000)
        np.testing.assert_array_equal(time_us[batch.indptr[i]:batch.indptr[i + 1]], t[keep])
    assert report.n_dropped_window == attrs["n_dropped_window"] == dropped > 0
    assert attrs["event_kind"] == "audio" and attrs["n_units"] == 700
    assert attrs["n_units_source"] == "given" and attrs["layout"] == "folder"
    assert "sensor_width" not in attrs  # a raster in `data plot`, not frames
    assert attrs["n_float_time_samples"] == 1 and report.n_files == 3
    assert any("rounded" in note for note in report.notes)


def test_events_sensor_size_inference_and_origin(tmp_path):
    ev0 = structured(TONIC_NMNIST, x=[3, 9], y=[1, 4], p=[0, 1], t=[5_000_000, 5_025_000])
    ev1 = structured(TONIC_NMNIST, x=[2], y=[6], p=[1], t=[7_000_010])
    src = tmp_path / "s.npz"
    np.savez(src, events_0=ev0, events_1=ev1, labels=np.array([1, 0]),
             sensor_size=np.array([34, 34, 2]))
    # the file's sensor_size; times from each sample's first event
    convert_events(src, tmp_path / "a.h5", origin="first")
    batch, _, attrs, _ = read_all(tmp_path / "a.h5")
    assert attrs["sensor_width"] == 34 and attrs["sensor_source"] == "from the file's sensor_size"
    assert batch.timestep.tolist() == [0, 2, 0] and batch.n_timesteps == 3
    assert batch.unit.tolist() == [1 * 34 + 3, 1156 + 4 * 34 + 9, 1156 + 6 * 34 + 2]
    assert attrs["time_origin"] == "first"
    # the argument wins over the file; downsampling a non-square sensor
    convert_events(src, tmp_path / "b.h5", sensor=(10, 7), downsample=3)
    batch, _, attrs, _ = read_all(tmp_path / "b.h5")
    assert (attrs["sensor_width"], attrs["sensor_height"], batch.n_inputs) == (4, 3, 24)
    assert batch.unit.tolist() == [0 * 12 + 0 * 4 + 1, 12 + 1 * 4 + 3, 12 + 2 * 4 + 0]
    assert batch.timestep.tolist() == [500, 502, 700]  # origin zero, 10 ms bins
    # no size anywhere: inferred (largest x, y + 1) and noted
    np.savez(src, events_0=ev0, events_1=ev1, labels=np.array([1, 0]))
    report = convert_events(src, tmp_path / "c.h5", n_timesteps=4,
                                           time_window_us=None)
    batch, _, attrs, _ = read_all(tmp_path / "c.h5")
    assert (attrs["sensor_width"], attrs["sensor_height"]) == (10, 7) and batch.n_inputs == 140
    assert attrs["sensor_source"].startswith("inferred")
    assert any("inferred" in note and "10x7" in note for note in report.notes)
    assert attrs["time_window_us"] == -(-(7_000_010 + 1) // 4) and attrs["two_pass"]
    assert any("largest label + 1" in note for note in report.notes)


def bad_npz(path, **arrays):
    np.savez(path, **arrays)
    return path


CAM = dict(x=[1, 2], y=[1, 1], p=[0, 1], t=[10, 20])


@pytest.mark.parametrize("case, message", [
    ("missing field", r"bad\.npz: events_0: no field p \(fields: x, y, t\)"),
    ("float x", r"events_0: field x has dtype float64; expected integers"),
    ("outside", r"events_1: event 1 at \(x=40, y=1\) is outside the 40x30 sensor"),
    ("negative time", r"events_0: event 1 has a negative time t = -3 µs"),
    ("negative y", r"events_0: event 0 has y = -1 < 0"),
    ("polarity", r"events_0: event 1 has polarity p = -1; expected 0 \(OFF\) or 1"),
    ("nan time", r"events_0: event 0 has time t = nan"),
    ("no labels", r"no 'labels' array"),
    ("labels float", r"labels: expected a 1-d array of integers"),
    ("too few samples", r"no events_2, but labels has 3 entries"),
    ("unlabelled sample", r"events_2 has no label \(labels has 2 entries"),
    ("unknown array", r"unknown array 'extra'"),
    ("not structured", r"events_0: not a structured array: found dtype int64 and shape \(2, 4\)"),
    ("2-d events", r"events_0: events must be a 1-d array, found shape \(1, 2\)"),
    ("mixed kinds", r"events_1: audio events .* but .*events_0 holds camera events"),
    ("audio polarities", r"events_1: audio events with polarity p = 0, but .*events_0 has p = 1"),
    ("label beyond classes", r"events_1: label 5 outside 0\.\.2 \(3 classes: class_names\)"),
    ("sensor for audio", r"audio events .*give the number of channels"),
    ("channels for camera", r"camera events .*give the sensor size"),
    ("audio channel", r"events_0: event 0 at channel x = 700 is outside the 700 channels"),
    ("camera sensor_size for audio", r"sensor_size \(34, 34, 2\) is a camera's"),
])
def test_events_bad_npz_inputs_write_nothing(tmp_path, case, message):
    cam = structured(TONIC_NMNIST, **CAM)
    aud = structured(TONIC_SHD, t=[10, 20], x=[5, 6], p=[1, 1])
    two = {"events_0": cam, "events_1": cam, "labels": np.array([0, 1])}
    kwargs = {"sensor": (40, 30)}
    arrays = {
        "missing field": {**two, "events_0": structured(np.dtype([("x", int), ("y", int), ("t", int)]),
                                                        x=[1], y=[1], t=[1])},
        "float x": {**two, "events_0": structured(np.dtype([("x", float), ("y", int), ("p", int),
                                                            ("t", int)]), **CAM)},
        "outside": {**two, "events_1": structured(TONIC_NMNIST, **{**CAM, "x": [1, 40]})},
        "negative time": {**two, "events_0": structured(TONIC_NMNIST, **{**CAM, "t": [4, -3]})},
        "negative y": {**two, "events_0": structured(TONIC_NMNIST, **{**CAM, "y": [-1, 0]})},
        "polarity": {**two, "events_0": structured(TONIC_NMNIST, **{**CAM, "p": [1, -1]})},
        "nan time": {**two, "events_0": structured(np.dtype([("x", int), ("y", int), ("p", int),
                                                             ("t", float)]),
                                                   **{**CAM, "t": [np.nan, 1.0]})},
        "no labels": {"events_0": cam},
        "labels float": {**two, "labels": np.array([0.0, 1.0])},
        "too few samples": {**two, "labels": np.array([0, 1, 1])},
        "unlabelled sample": {**two, "events_2": cam},
        "unknown array": {**two, "extra": np.zeros(2)},
        "not structured": {**two, "events_0": np.zeros((2, 4), dtype=np.int64)},
        "2-d events": {**two, "events_0": cam.reshape(1, 2)},
        "mixed kinds": {**two, "events_1": aud},
        "audio polarities": {"events_0": aud, "events_1": structured(TONIC_SHD, t=[1], x=[1], p=[0]),
                             "labels": np.array([0, 1])},
        "label beyond classes": {**two, "labels": np.array([0, 5]),
                                 "class_names": np.array(["a", "b", "c"])},
        "sensor for audio": {"events_0": aud, "labels": np.array([0])},
        "channels for camera": two,
        "audio channel": {"events_0": structured(TONIC_SHD, t=[1], x=[700], p=[1]),
                          "labels": np.array([0])},
        "camera sensor_size for audio": {"events_0": aud, "labels": np.array([0]),
                                         "sensor_size": np.array([34, 34, 2])},
    }[case]
    if case == "channels for camera":
        kwargs = {"n_channels": 700}
    elif case in ("audio polarities", "audio channel"):
        kwargs = {"n_channels": 700}
    elif case == "camera sensor_size for audio":
        kwargs = {}
    src = bad_npz(tmp_path / "bad.npz", **arrays)
    out = tmp_path / "o.h5"
    with pytest.raises(UserError, match=message) as e:
        convert_events(src, out, **kwargs)
    assert "\n" not in str(e.value)
    assert not out.exists() and no_temp_files(tmp_path)


def test_events_bad_folders_and_sources_write_nothing(tmp_path):
    root = tmp_path / "f"
    root.mkdir()
    cam = structured(TONIC_NMNIST, **CAM)
    np.save(root / "a.npy", cam)
    np.save(root / "b.npy", cam)
    out = tmp_path / "o.h5"
    before = write_sentinel(out)

    def fails(source, message, **kwargs):
        with pytest.raises(UserError, match=message) as e:
            convert_events(source, out, **kwargs)
        assert "\n" not in str(e.value)
        assert out.read_bytes() == before and no_temp_files(tmp_path)

    fails(root, r"f: no labels\.csv")
    for labels, message in [
            ("a.npy,0\n", r"b\.npy: not in labels\.csv"),
            ("a.npy,0\nb.npy,1\nc.npy,1\n", r"labels\.csv: line 3: no such sample file c\.npy"),
            ("a.npy,0\nb.npy,1\na.npy,1\n", r"line 3: a\.npy is listed twice"),
            ("file,label\na.npy,0\nb.npy,x\n", r"line 3: expected 'file,label'"),
            ("a.npy,0\n../b.npy,1\n", r"line 2: '\.\./b\.npy' is not a \.npy path relative to the folder"),
            ("file,label\n", r"lists no samples")]:
        (root / "labels.csv").write_text(labels)
        fails(root, message)
    (root / "labels.csv").write_text("a.npy,0\nb.npy,1\n")
    (root / "b.npy").write_bytes(b"not numpy")
    fails(root, r"b\.npy: cannot read as a \.npy file")
    np.save(root / "b.npy", structured(TONIC_NMNIST, **{**CAM, "x": [1, 99]}))
    fails(root, r"b\.npy: event 1 at \(x=99, y=1\) is outside the 34x34 sensor", sensor=(34, 34))
    # sources that are neither layout
    fails(tmp_path / "missing.npz", "no such file or folder")
    (tmp_path / "x.npy").write_bytes(b"")
    fails(tmp_path / "x.npy", "not a .npz file or a folder")
    (tmp_path / "broken.npz").write_bytes(b"PK\x03\x04garbage")
    fails(tmp_path / "broken.npz", r"broken\.npz: cannot read")
    np.save(tmp_path / "single.npy", cam)
    os.replace(tmp_path / "single.npy", tmp_path / "single.npz")
    fails(tmp_path / "single.npz", "a single array, not a .npz archive")
    # the folder converts once it is right
    np.save(root / "b.npy", cam)
    report = convert_events(root, out, sensor=(34, 34))
    assert report.n_samples == 2 and read_all(out)[0].labels.tolist() == [0, 1]


def test_events_command_line(tmp_path):
    from click.testing import CliRunner

    from pyasync_snn.cli import main

    def run(*args):
        return CliRunner().invoke(main, ["data", "convert", "events", *map(str, args)])

    rng = np.random.default_rng(12)
    samples = camera_samples(rng, 34, 34)
    src = tmp_path / "cam.npz"
    np.savez(src, labels=np.array([3, 1, 4, 1]), **{f"events_{i}": ev for i, ev in enumerate(samples)})
    result = run(src, "--out", tmp_path / "o.h5", "--sensor", "34x34", "--classes", 10,
                 "--time-window-us", 5000)
    assert result.exit_code == 0, result.output
    assert "event arrays: 4 samples, 10 classes, 2312 inputs" in result.output
    batch, _, attrs, _ = read_all(tmp_path / "o.h5")
    check_camera(batch, samples, 34, 34, 5000)
    assert attrs["n_classes"] == 10 and batch.labels.tolist() == [3, 1, 4, 1]
    for args, words in [(("--sensor", "34by34"), "sensor must be WIDTHxHEIGHT"),
                        (("--sensor", "20x20"), "outside the 20x20 sensor"),
                        (("--classes", 3), "label 3 outside 0..2"),
                        (("--channels", 5), "give the sensor size")]:
        result = run(src, "--out", tmp_path / "bad.h5", *args)
        output = result.output.strip()
        assert result.exit_code == 1 and "Traceback" not in output
        assert len(output.splitlines()) == 1 and output.startswith("Error:") and words in output, output
        assert not (tmp_path / "bad.h5").exists() and no_temp_files(tmp_path)
