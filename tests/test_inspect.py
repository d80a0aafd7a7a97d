"""Trace inspection (tables, queue, replay), trace figures and the explainer.

Figures are checked for what they contain (data, labels, titles, frame counts), not for pixels.
"""
import csv
import io
import os
import re

import numpy as np
import pytest
from PIL import Image

from pyasync_snn import EventBatch, Network, simulate
from pyasync_snn.errors import UserError
from pyasync_snn.explain import explain
from pyasync_snn.inspection import (EVENT_COLUMNS, format_events, queue_lengths, replay,
                                 sample_summary, steps_per_timestep, trace_events, trace_info)
from pyasync_snn.plots.trace_plots import (plot_groups, plot_membrane, plot_queue, plot_raster,
                                           plot_trace)
from pyasync_snn.trace import Trace

SIZES = (12, 8, 6, 3)


@pytest.fixture(scope="module")
def case():
    """A small network that spikes in every layer, random input, and traces under several runs."""
    rng = np.random.default_rng(7)
    net = Network.xavier(SIZES, seed=3)
    net = Network(tuple(w * 1.6 for w in net.weights), threshold=0.3, beta=0.9)
    x = (rng.random((3, 5, SIZES[0])) < 0.35).astype(int)
    x += rng.random(x.shape) < 0.1                      # some counts of 2
    batch = EventBatch.from_dense(x, labels=[0, 1, 2])
    traces = {
        "momentum2": simulate(net, batch, schedule="momentum", group_size=2, seed=1),                    # float32
        "layered": simulate(net, batch, schedule="layered", group_size=1, dtype="float64"),
        "random1": simulate(net, batch, schedule="random", group_size=1, seed=4, dtype="float64"),
        "dropout": simulate(net, batch, schedule="random", group_size=3, seed=2, refractory_dropout=0.4),
    }
    for name, trace in traces.items():
        assert all(trace.metrics.spikes_per_layer[:, l].sum() > 0 for l in range(3)), name
    return net, x, traces


def layer_of_id(i):
    bounds = np.cumsum(SIZES[1:])
    return int(np.searchsorted(bounds, i, side="right")) + 1


def slow_queue(trace, b):
    """{(timestep, step): pending spikes after the step}, counted event by event."""
    ev = trace.events(b)
    out = {}
    for t in range(trace.n_timesteps):
        in_t = [e for e in range(len(ev["neuron"])) if ev["timestep"][e] == t]
        last = max([int(ev["emitted_step"][e]) for e in in_t], default=0)
        for k in range(last + 1):
            out[(t, k)] = sum(1 for e in in_t if ev["fired_step"][e] <= k < ev["emitted_step"][e])
    return out


# ---------------------------------------------------------------- events
@pytest.mark.parametrize("name", ["momentum2", "layered", "dropout"])
def test_trace_events_are_the_trace_events_in_delivery_order(case, name):
    _, _, traces = case
    trace = traces[name]
    for b in range(len(trace)):
        rows = trace_events(trace, b)
        ev = trace.events(b)
        assert len(rows) == len(ev["neuron"]) > 0
        assert [r["order"] for r in rows] == list(range(len(rows)))
        for r, e in zip(rows, range(len(rows))):
            assert list(r) == list(EVENT_COLUMNS)
            assert (r["timestep"], r["emitted_step"], r["fired_step"], r["neuron"], r["v_pre"],
                    r["refractory"]) == (int(ev["timestep"][e]), int(ev["emitted_step"][e]),
                                         int(ev["fired_step"][e]), int(ev["neuron"][e]),
                                         float(ev["v_pre"][e]), bool(ev["refractory"][e]))
            assert r["layer"] == layer_of_id(r["neuron"])
        # delivery order: (timestep, emitted step) never decreases, ids ascend within a group
        keys = [(r["timestep"], r["emitted_step"], r["neuron"]) for r in rows]
        assert keys == sorted(keys)
        only = trace_events(trace, b, timestep=2)
        assert only == [r for r in rows if r["timestep"] == 2]
    if name == "dropout":
        assert not all(r["refractory"] for b in range(3) for r in trace_events(trace, b))


def test_trace_events_reject_bad_sample_and_timestep(case):
    trace = case[2]["layered"]
    for bad in (3, -1, 1.5):
        with pytest.raises(UserError, match="sample"):
            trace_events(trace, bad)
    with pytest.raises(UserError, match="timestep"):
        trace_events(trace, 0, timestep=5)


def test_format_events_table_and_csv(case):
    trace = case[2]["momentum2"]
    rows = trace_events(trace, 1)
    parsed = list(csv.DictReader(io.StringIO(format_events(rows, csv=True))))
    assert len(parsed) == len(rows)
    for p, r in zip(parsed, rows):
        assert list(p) == list(EVENT_COLUMNS)
        assert float(p["v_pre"]) == r["v_pre"]          # full precision
        assert p["refractory"] == str(r["refractory"]).lower()
        assert all(int(p[c]) == r[c] for c in EVENT_COLUMNS if c not in ("v_pre", "refractory"))
    table = format_events(rows).splitlines()
    assert table[0].split() == list(EVENT_COLUMNS)
    assert len(table) == 2 + len(rows)
    assert table[2].split()[:6] == [str(rows[0][c]) for c in EVENT_COLUMNS[:6]]
    assert format_events([], csv=True) == ",".join(EVENT_COLUMNS)


# ---------------------------------------------------------------- queue, summary
@pytest.mark.parametrize("name", ["momentum2", "layered", "random1", "dropout"])
def test_queue_lengths_equal_a_slow_count(case, name):
    trace = case[2][name]
    for b in range(len(trace)):
        q = queue_lengths(trace, b)
        got = {(int(t), int(k)): int(n) for t, k, n in zip(q["timestep"], q["step"], q["length"])}
        assert got == slow_queue(trace, b)
        steps = trace.metrics.steps_per_timestep[b]
        offsets = np.concatenate([[0], np.cumsum(steps)[:-1]])
        np.testing.assert_array_equal(q["global_step"], offsets[q["timestep"]] + q["step"])
        assert max(got.values()) > 0


def test_steps_and_summary_agree_with_the_metrics(case):
    trace = case[2]["random1"]
    for b in range(len(trace)):
        np.testing.assert_array_equal(steps_per_timestep(trace, b), trace.metrics.steps_per_timestep[b])
        s = sample_summary(trace, b)
        assert s["events_per_layer"] == trace.metrics.spikes_per_layer[b].tolist()
        assert s["steps_max"] == trace.metrics.steps_per_timestep[b].max()
        assert s["steps_to_first_output"] == trace.metrics.steps_to_first_output[b]
        slow = slow_queue(trace, b)
        picks = [n for (t, k), n in slow.items() if k < trace.metrics.steps_per_timestep[b, t]]
        assert s["queue_max"] == max(picks)
        assert s["queue_mean"] == pytest.approx(np.mean(picks))
        # without metrics, latency and first-spike prediction come from the events
        bare = Trace(**{**trace.__dict__, "metrics": None})
        s2 = sample_summary(bare, b)
        for key in ("steps_to_first_output", "spikes_to_first_output", "count_prediction",
                    "first_spike_prediction", "events_per_layer", "queue_max"):
            assert s2[key] == s[key], key
        assert s2["label"] is None


def test_trace_info_rows_aggregate_and_truncation(case):
    trace = case[2]["momentum2"]
    text = trace_info(trace)
    assert "schedule momentum F=2" in text and "3 samples" in text
    lines = text.splitlines()
    for b in range(3):
        row = next(l for l in lines if l.split()[:1] == [str(b)])
        per_layer = "/".join(str(n) for n in trace.metrics.spikes_per_layer[b])
        assert per_layer in row.split()
        assert f"{trace.metrics.steps_per_timestep[b].mean():.2f}" in row.split()
    mean_row = next(l for l in lines if l.split()[:1] == ["mean"])
    assert f"{trace.metrics.steps_per_timestep.mean():.2f}" in mean_row.split()
    assert "accuracy over 3 samples" in text
    short = trace_info(trace, max_rows=1).splitlines()
    assert any("first 1 of 3 samples" in l for l in short)
    assert not any(l.split()[:1] == ["2"] for l in short)
    assert any(l.split()[:1] == ["mean"] for l in short)


# ---------------------------------------------------------------- replay
@pytest.mark.parametrize("name", ["momentum2", "layered", "random1", "dropout"])
def test_replay_reproduces_the_trace(case, name):
    net, x, traces = case
    trace = traces[name]
    for b in range(len(trace)):
        r = replay(trace, b, net, x[b], neurons="all")
        ev = trace.events(b)
        rows, cols = np.nonzero(r.fired)
        got = sorted(zip(r.timestep[rows].tolist(), r.step[rows].tolist(), cols.tolist()))
        want = sorted(zip(ev["timestep"].tolist(), ev["fired_step"].tolist(), ev["neuron"].tolist()))
        assert got == want
        v_pre = {(t, f, i): v for t, f, i, v in zip(ev["timestep"], ev["fired_step"], ev["neuron"], ev["v_pre"])}
        replayed = np.array([r.u[j, i] for j, i in zip(rows, cols)])
        recorded = np.array([v_pre[(r.timestep[j], r.step[j], i)] for j, i in zip(rows, cols)])
        np.testing.assert_array_equal(replayed.astype(trace.dtype), recorded)   # bitwise
        assert np.all(r.v[r.fired] == 0)                                      # reset
        # step 0 of timestep 0: layer 1 holds W_1 x[0] (fired neurons are reset)
        first = net.weights[0] @ x[b, 0]
        silent = ~r.fired[0, :SIZES[1]]
        np.testing.assert_allclose(r.v[0, :SIZES[1]][silent], first[silent], rtol=1e-5, atol=1e-6)
        assert len(r.step) == sum(steps_per_timestep(trace, b) + 1)


@pytest.mark.parametrize("scope", ["sample", "timestep"])
def test_replay_of_a_stopped_run(case, scope):
    """The replay follows the stop rule: it fires every spike the run fired (delivered or not)."""
    net, x, _ = case
    batch = EventBatch.from_dense(x, labels=[0, 1, 2])
    trace = simulate(net, batch, schedule="momentum", group_size=1, seed=1, dtype="float64", stop_on_output=1, stop_scope=scope)
    assert trace.n_events < trace.metrics.spikes_per_layer.sum()     # some spikes were dropped
    for b in range(len(trace)):
        r = replay(trace, b, net, x[b], neurons="all")
        assert r.fired.sum() == trace.metrics.spikes_per_layer[b].sum()
        assert set(r.timestep.tolist()) == (set(range(trace.n_timesteps)) if scope == "timestep"
                                            else set(range(int(trace.timestep[trace.indptr[b + 1] - 1]) + 1)))
    assert "of each timestep" in trace_info(trace) if scope == "timestep" else "of each" not in trace_info(trace)


def test_replay_refuses_another_model_or_input(case):
    net, x, traces = case
    trace = traces["momentum2"]
    other = Network(tuple(w * 1.05 for w in net.weights))
    with pytest.raises(UserError, match="does not replay"):
        replay(trace, 0, other, x[0])
    with pytest.raises(UserError, match="does not replay"):
        replay(trace, 0, net, x[1])
    with pytest.raises(UserError, match="shape"):
        replay(trace, 0, net, x[0, :3])
    with pytest.raises(UserError, match="network"):
        replay(trace, 0, Network.xavier((12, 8, 3)), x[0])


# ---------------------------------------------------------------- figures
def assert_png(path):
    assert os.path.getsize(path) > 1000
    with Image.open(path) as im:
        assert im.format == "PNG" and im.size[0] > 500
    assert not [f for f in os.listdir(os.path.dirname(path)) if ".tmp-" in f]


def test_raster_shows_every_delivery(case, tmp_path):
    trace = case[2]["momentum2"]
    fig = plot_raster(trace, 1, tmp_path / "r.png")
    assert_png(tmp_path / "r.png")
    ax = fig.axes[0]
    assert "forward step" in ax.get_xlabel() and "neuron" in ax.get_ylabel()
    assert "sample 1" in ax.get_title() and "momentum, F = 2" in ax.get_title()
    ev = trace.events(1)
    offsets = np.concatenate([[0], np.cumsum(trace.metrics.steps_per_timestep[1])[:-1]])
    want = sorted(zip((offsets[ev["timestep"]] + ev["emitted_step"]).tolist(), ev["neuron"].tolist()))
    filled = [c for c in ax.collections if c.get_label().startswith("layer")]
    assert len(filled) == 3
    got = sorted(tuple(int(round(v)) for v in p) for c in filled for p in c.get_offsets())
    assert got == want
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    n_out = trace.layer_sizes[-1]  # the trace records the network, so layers are named with their sizes
    assert any(f"layer 3 ({n_out}, output)" in t for t in legend) and any("timestep starts" in t for t in legend)


def test_groups_bars_are_the_group_sizes(case, tmp_path):
    trace = case[2]["layered"]
    fig = plot_groups(trace, 0, tmp_path / "g.png")
    assert_png(tmp_path / "g.png")
    top, bottom = fig.axes
    assert "group size" in top.get_ylabel() and "forward step" in bottom.get_xlabel()
    assert "layered" in top.get_title() and "sample 0" in top.get_title()
    ev = trace.events(0)
    offsets = np.concatenate([[0], np.cumsum(trace.metrics.steps_per_timestep[0])[:-1]])
    step = offsets[ev["timestep"]] + ev["emitted_step"]
    heights = {}
    for bar in top.patches:
        x = int(round(bar.get_x() + bar.get_width() / 2))
        heights[x] = heights.get(x, 0) + bar.get_height()
    assert heights == {int(s): int(n) for s, n in zip(*np.unique(step, return_counts=True))}


def test_queue_plot_draws_the_queue(case, tmp_path):
    trace = case[2]["random1"]
    fig = plot_queue(trace, 2, tmp_path / "q.png")
    assert_png(tmp_path / "q.png")
    ax = fig.axes[0]
    assert "queue" in ax.get_ylabel() and "forward step" in ax.get_xlabel()
    assert "random, F = 1" in ax.get_title() and "sample 2" in ax.get_title()
    line = next(l for l in ax.lines if l.get_label().startswith("pending"))
    np.testing.assert_array_equal(line.get_ydata(), queue_lengths(trace, 2)["length"])
    assert any(l.get_label().startswith("F = 1") for l in ax.lines)


def test_membrane_plot_marks_v_pre_and_threshold(case, tmp_path):
    net, x, traces = case
    trace = traces["momentum2"]
    ev = trace.events(0)
    chosen = [int(next(i for i in ev["neuron"] if layer_of_id(i) == l)) for l in (1, 2, 3)]
    fig = plot_membrane(trace, 0, tmp_path / "m.png", net, x[0], neurons=chosen)
    assert_png(tmp_path / "m.png")
    assert len(fig.axes) == 3
    assert "Membrane" in fig.axes[0].get_title() and "momentum, F = 2" in fig.axes[0].get_title()
    for ax, neuron, layer in zip(fig.axes, chosen, (1, 2, 3)):
        assert f"layer {layer}" in ax.get_ylabel()
        assert [l.get_text() for l in ax.get_legend().get_texts()] == [f"neuron {neuron}"]
        assert any(np.all(np.asarray(l.get_ydata()) == net.threshold) and l.get_linestyle() == "--"
                   for l in ax.lines)
        triangles = [l for l in ax.lines if l.get_marker() == "^"]
        got = sorted(float(v) for l in triangles for v in l.get_ydata())
        want = sorted(float(v) for v in ev["v_pre"][ev["neuron"] == neuron])
        assert len(want) > 0 and got == pytest.approx(want)
    assert "forward step" in fig.axes[-1].get_xlabel()


def test_plot_trace_dispatch_and_errors(case, tmp_path):
    net, x, traces = case
    trace = traces["layered"]
    with pytest.raises(UserError, match="--model MODEL --data DATA"):
        plot_trace("membrane", trace, 0, tmp_path / "m.png")
    with pytest.raises(UserError, match="unknown plot kind"):
        plot_trace("histogram", trace, 0, tmp_path / "h.png")
    (tmp_path / "file").write_text("")
    with pytest.raises(UserError, match="cannot create the directory"):
        plot_trace("queue", trace, 0, tmp_path / "file" / "q.png")
    with pytest.raises(UserError, match="does not replay"):
        plot_trace("membrane", trace, 0, tmp_path / "m.png", net, x[1])
    assert not os.path.exists(tmp_path / "m.png")
    fig = plot_trace("raster", trace, 0, tmp_path / "t.png", timestep=1)
    assert "timestep 1" in fig.axes[0].get_title()
    assert_png(tmp_path / "t.png")


# ---------------------------------------------------------------- explainer
@pytest.fixture(scope="module")
def explained(tmp_path_factory):
    out = tmp_path_factory.mktemp("explain")
    (out / "step_99.png").write_bytes(b"stale frame of an earlier run")
    return explain(out, seed=0), out


def test_explain_writes_one_frame_per_step_and_a_gif(explained):
    result, out = explained
    longest = max(int(run.trace.metrics.steps_per_timestep[0, 0]) for run in result.runs)
    names = sorted(f for f in os.listdir(out) if f.endswith(".png"))
    assert names == [f"step_{k:02d}.png" for k in range(longest + 1)]
    assert result.frames == [str(out / n) for n in names]
    for path in result.frames:
        with Image.open(path) as im:
            assert im.size == (1920, 1080)
    with Image.open(out / "explain.gif") as gif:
        assert gif.n_frames == len(names) and gif.info.get("loop") == 0
    assert result.gif == str(out / "explain.gif")
    assert (out / "explain.txt").read_text() == result.text + "\n"


def test_explain_schedules_differ(explained):
    result, _ = explained
    assert [run.label for run in result.runs] == ["layered", "momentum F=1", "random F=1"]
    orders = [tuple(zip(run.trace.neuron.tolist(), run.trace.emitted_step.tolist())) for run in result.runs]
    assert len(set(orders)) == 3
    layered, momentum, _ = result.runs
    assert layered.trace.metrics.first_spike_prediction[0] == 0       # the layered network is right
    assert momentum.trace.metrics.first_spike_prediction[0] == 1      # momentum fires class 1 first
    assert "discarded" in result.text


def test_explain_text_mentions_every_event(explained):
    result, _ = explained
    lines = result.text.splitlines()
    for run in result.runs:
        tagged = {int(m.group(1)): l for l in lines if (m := re.match(rf"step (\d+) \[{run.label}\]: ", l))}
        assert sorted(tagged) == list(range(run.n_steps + 1))
        ev = run.trace.events(0)
        for i, f, e, v in zip(ev["neuron"], ev["fired_step"], ev["emitted_step"], ev["v_pre"]):
            layer = "output" if i >= 6 else f"layer {1 + i // 3}"        # the 4-3-3-2 example
            assert f"neuron {i} ({layer}, v_pre {v:.2f})" in tagged[e], (run.label, i, e)
            assert f"neuron {i} fires (v_pre {v:.2f})" in tagged[f], (run.label, i, f)


def test_explain_text_only(capsys):
    result = explain(text=True, seed=3)
    printed = capsys.readouterr().out
    assert printed.strip() == result.text.strip()
    assert result.frames == [] and result.gif is None and "random F=1 (seed 3)" in printed
    with pytest.raises(UserError, match="seed"):
        explain(seed=-1)
