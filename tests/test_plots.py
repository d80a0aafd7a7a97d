"""Figures read at a glance: the groups figure of a whole sample, the study's small multiples,
and one dataset sample as frames (event cameras), an animation or a raster (``data plot``)."""
import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from pyasync_snn import EventBatch, Network, io, simulate
from pyasync_snn.cli import main
from pyasync_snn.experiment import SUMMARY_KEYS, aggregate, eval_settings, load_config
from pyasync_snn.inspection import steps_per_timestep
from pyasync_snn.plots import study
from pyasync_snn.plots.dataset_plots import (CHANNEL_ORDER, POLARITY_COLOURS, frame_edges,
                                             plot_sample)
from pyasync_snn.plots.trace_plots import GROUPS_MAX_STEPS, plot_groups
from pyasync_snn.trace import schedule_label


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def assert_one_line_error(result, *words):
    output = result.output.strip()
    assert result.exit_code == 1 and "Traceback" not in output, output
    assert len(output.splitlines()) == 1 and output.startswith("Error:"), output
    for word in words:
        assert word in output, (word, output)


def is_png(path):
    return open(path, "rb").read(4) == b"\x89PNG"


def busy_trace(sizes, timesteps, group_size, density=0.4, seed=0):
    """A momentum trace of one sample of a network that fires in every layer."""
    net = Network.xavier(sizes, seed=seed)
    net = Network(tuple(2.0 * w for w in net.weights), threshold=0.3, beta=0.9)
    x = (np.random.default_rng(seed).random((1, timesteps, sizes[0])) < density).astype(int)
    return simulate(net, EventBatch.from_dense(x, labels=[1]), schedule="momentum", group_size=group_size, seed=1)


# ---------------------------------------------------------------- groups
def test_groups_of_a_long_sample_are_summarised_per_timestep(tmp_path):
    trace = busy_trace((30, 20, 10, 4), 10, 1)
    steps = steps_per_timestep(trace, 0)
    assert GROUPS_MAX_STEPS < steps.sum() <= 400  # the per-step figure would draw one bar per step
    fig = plot_groups(trace, 0, tmp_path / "g.png")
    assert is_png(tmp_path / "g.png")
    spikes, groups, sizes = fig.axes
    assert groups.get_xlabel() == "timestep" and "give a timestep" in spikes.get_title()
    ev = trace.events(0)
    per_timestep = {}
    for bar in spikes.patches:  # at most one bar per (timestep, layer)
        t = int(round(bar.get_x() + bar.get_width() / 2))
        per_timestep[t] = per_timestep.get(t, 0) + bar.get_height()
    assert len(spikes.patches) <= 3 * trace.n_timesteps
    want = np.bincount(ev["timestep"], minlength=trace.n_timesteps)
    assert per_timestep == {t: int(n) for t, n in enumerate(want) if n}
    np.testing.assert_array_equal([b.get_height() for b in groups.patches], steps)
    size_of = np.unique(np.cumsum(np.r_[0, steps[:-1]])[ev["timestep"]] + ev["emitted_step"],
                        return_counts=True)[1]
    got = {int(round(b.get_x() + b.get_width() / 2)): b.get_height() for b in sizes.patches if b.get_height()}
    assert got == {int(s): int(n) for s, n in zip(*np.unique(size_of, return_counts=True))} == {1: steps.sum()}


def test_groups_of_one_timestep_keep_their_ids_inside_the_axes(tmp_path):
    trace = busy_trace((200, 150, 100, 10), 3, 8, density=0.3)
    steps = steps_per_timestep(trace, 0)
    t = int(np.argmax(steps))
    assert 3 <= steps[t] <= 40
    fig = plot_groups(trace, 0, tmp_path / "g.png", timestep=t)
    top = fig.axes[0]
    renderer = fig.canvas.get_renderer()
    ids = [text for text in top.texts if text.get_text()[:1].isdigit()]
    assert len(ids) == steps[t]
    assert any(int(i) >= 100 for text in ids for i in text.get_text().replace("\n", ",").split(","))
    box, title = top.get_window_extent(renderer), top.title.get_window_extent(renderer)
    for text in ids:
        extent = text.get_window_extent(renderer)
        assert extent.y1 <= box.y1 + 1 and extent.y1 < title.y0, text.get_text()


# ---------------------------------------------------------------- study
@pytest.fixture(scope="module")
def study_results():
    """Aggregated rows and raw latencies of a made-up study: layered models are far more accurate
    than the others, so panels with their own y ranges would differ."""
    cfg = load_config(quick=True, overrides={"eval_group_sizes": [1, 8, 0], "seeds": 2})
    rng = np.random.default_rng(0)
    per_seed, raw = {}, {}
    for ts, f_train in study.trained_models(cfg):
        for es, f, stop in eval_settings(cfg):
            key = (ts, f_train, es, f, stop)
            for _ in range(cfg["seeds"]):
                summary = {k: float(rng.uniform(10, 60)) for k in SUMMARY_KEYS}
                summary["accuracy"] = rng.uniform(0.9, 0.95) if ts == "layered" else rng.uniform(0.5, 0.6)
                per_seed.setdefault(key, []).append(summary)
                raw.setdefault(key, []).append({"timestep_spikes_to_output": rng.integers(-1, 80, (20, 10))})
    return aggregate(per_seed, cfg), raw, cfg


def test_accuracy_vs_f_panels_share_one_y_range(study_results, tmp_path):
    rows, _, cfg = study_results
    fig = study._versus_f(rows, cfg, "accuracy", "accuracy (%)", tmp_path / "a.png", 100)
    assert len(fig.axes) == len(study.trained_models(cfg)) == 5
    assert len({ax.get_ylim() for ax in fig.axes}) == 1


def test_latency_histograms_each_have_their_own_panel(study_results, tmp_path):
    _, raw, cfg = study_results
    fig = study._latency(raw, cfg, tmp_path / "l.png")
    assert len(fig.axes) == len(cfg["train_schedules"]) * len(cfg["f_train"])
    assert all(len(ax.patches) == 1 for ax in fig.axes)  # one histogram per panel, none on another
    assert len({ax.get_xlim() for ax in fig.axes}) == 1 and len({ax.get_ylim() for ax in fig.axes}) == 1
    names = [text.get_text().splitlines()[0] for ax in fig.axes for text in ax.texts]
    assert names == ["trained layered"] * 2 + ["trained random F=1", "trained random F=8",
                                               "trained momentum F=1", "trained momentum F=8"]


def test_accuracy_vs_latency_has_one_panel_per_trained_model(study_results, tmp_path):
    rows, _, cfg = study_results
    fig = study._accuracy_latency(rows, cfg, tmp_path / "al.png")
    models = study.trained_models(cfg)
    assert [ax.get_title() for ax in fig.axes] == [f"trained: {schedule_label(*m)}" for m in models]
    assert len({ax.get_xlim() for ax in fig.axes}) == 1 and len({ax.get_ylim() for ax in fig.axes}) == 1
    layered = fig.axes[0]  # the layered model, every stopped evaluation: one point each
    points = sum(len(series.lines[0].get_xdata()) for series in layered.containers)
    assert points == sum(1 for r in rows if r["train_schedule"] == "layered" and r["stop_on_output"] != "off")


def test_plot_study_writes_every_figure(study_results, tmp_path):
    rows, raw, cfg = study_results
    figures = study.plot_study(rows, raw, cfg, tmp_path)
    assert len(figures) == 6 and all(is_png(path) for path in figures.values())


# ---------------------------------------------------------------- dataset samples
WIDTH, HEIGHT = 4, 3


def write_camera(path, events, label=2, attrs=True, timesteps=4):
    """A one-sample event-camera dataset: ``events`` = ``(timestep, polarity, y, x)`` rows."""
    t, p, y, x = np.array(events).T
    unit = p * WIDTH * HEIGHT + y * WIDTH + x
    batch = EventBatch(np.array([0, len(t)]), t, unit, np.array([label]), 2 * WIDTH * HEIGHT, timesteps)
    layout = {"sensor_width": WIDTH, "sensor_height": HEIGHT, "n_polarities": 2,
              "channel_order": CHANNEL_ORDER}
    io.write_dataset(path, batch, 5, name="camera", attrs=layout if attrs else None)


def test_frames_show_on_and_off_events_in_their_colours(tmp_path):
    path = tmp_path / "cam.h5"
    write_camera(path, [(0, 1, 2, 1), (0, 1, 2, 1), (1, 0, 0, 3), (3, 1, 1, 1), (3, 0, 1, 2)])
    fig = plot_sample(path, 0, tmp_path / "f.png", frames=2)
    assert is_png(tmp_path / "f.png")
    first, second = (ax.images[0].get_array() for ax in fig.axes)
    assert first.shape == (HEIGHT, WIDTH, 3)
    on, off = (np.array(Image.new("RGB", (1, 1), POLARITY_COLOURS[p]).getpixel((0, 0))) / 255 for p in (1, 0))
    np.testing.assert_allclose(first[2, 1], on, atol=1e-6)   # 2 ON events: full colour
    share = (1 - first[0, 3]) / (1 - off)                    # 1 OFF event: a paler OFF colour
    assert 0.3 < share[0] < 0.9 and np.allclose(share, share[0])
    np.testing.assert_array_equal(first[0, 0], [1, 1, 1])    # no event: white
    assert second[1, 1][0] > second[1, 1][2] and second[1, 2][2] > second[1, 2][0]  # ON reddish, OFF bluish
    assert [ax.get_title().splitlines()[0] for ax in fig.axes] == ["t = 0-1", "t = 2-3"]
    assert "camera: sample 0, label 2" in fig._suptitle.get_text()
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["ON (brighter) events", "OFF (darker) events"]


def test_animation_has_one_frame_per_timestep(tmp_path):
    path = tmp_path / "cam.h5"
    write_camera(path, [(0, 1, 2, 1), (2, 0, 0, 3)], timesteps=5)
    result = run("data", "plot", path, "--sample", 0, "--out", tmp_path / "f.png", "--gif", tmp_path / "a.gif")
    assert result.exit_code == 0 and "a.gif" in result.output, result.output
    with Image.open(tmp_path / "a.gif") as gif:
        assert gif.format == "GIF" and gif.n_frames == 5


def test_frame_edges_cover_every_timestep():
    assert frame_edges(32, 6).tolist() == [0, 5, 11, 16, 21, 27, 32]
    assert frame_edges(3, 6).tolist() == [0, 1, 2, 3]


def test_a_file_without_layout_is_a_raster_and_sensor_gives_frames(tmp_path):
    path = tmp_path / "cam.h5"
    events = [(0, 1, 2, 1), (0, 1, 2, 1), (3, 0, 1, 2)]
    write_camera(path, events, attrs=False)
    fig = plot_sample(path, 0, tmp_path / "r.png")
    raster = fig.axes[0]
    assert raster.get_ylabel() == "input channel" and not raster.images
    cells = sorted(map(tuple, raster.collections[0].get_offsets().astype(int).tolist()))
    assert cells == [(0, 1 * 12 + 2 * 4 + 1), (3, 1 * 4 + 2)]
    assert "up to 2 in one (timestep, channel)" in raster.get_title()
    fig = plot_sample(path, 0, tmp_path / "f.png", sensor=(WIDTH, HEIGHT))
    assert all(ax.images for ax in fig.axes)


def test_raster_title_names_the_class(tmp_path):
    path = tmp_path / "shd.h5"
    batch = EventBatch(np.array([0, 2]), np.array([0, 5]), np.array([3, 9]), np.array([1]), 10, 8)
    io.write_dataset(path, batch, 2, name="shd_test", attrs={"class_names": json.dumps(["yes", "no"])})
    fig = plot_sample(path, 0, tmp_path / "r.png")
    assert fig.axes[0].get_title().startswith("shd_test: sample 0, label 1 (no)")


def test_data_plot_refuses_bad_input_in_one_line(tmp_path):
    path = tmp_path / "cam.h5"
    write_camera(path, [(0, 1, 2, 1)], attrs=False)
    out = tmp_path / "f.png"
    assert_one_line_error(run("data", "plot", path, "--sample", 1, "--out", out), "[0, 1)", "1")
    assert_one_line_error(run("data", "plot", path, "--sample", 0, "--sensor", "5x5", "--out", out), "5x5")
    assert_one_line_error(run("data", "plot", path, "--sample", 0, "--sensor", "big", "--out", out), "WIDTHxHEIGHT")
    assert_one_line_error(run("data", "plot", path, "--sample", 0, "--gif", tmp_path / "a.gif", "--out", out),
                          "sensor layout")
    assert not out.exists()
    result = run("data", "plot", path, "--sample", 0, "--out", out)
    assert result.exit_code == 0 and is_png(out), result.output


# ---------------------------------------------------------------- demo
def test_demo_shows_no_accuracy_of_its_one_random_sample():
    result = run("demo", "--layers", "50,20,5", "--timesteps", 10)
    assert result.exit_code == 0, result.output
    table = result.output.lower()
    assert "accuracy" not in table and "correct" not in table and "samples  " not in table
    assert "spikes / sample" in result.output and "spikes in layer 2" in result.output
    assert "predicted class (most output spikes): layered " in result.output
