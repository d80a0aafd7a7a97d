"""The asynchrony study: grid, executors, resume, report, energy arithmetic, configuration."""
import json
import os

import numpy as np
import pytest

from pyasync_snn.datasets import random_events
from pyasync_snn.energy import energy_breakdown, validate_profile
from pyasync_snn.errors import UserError
from pyasync_snn.events import EventBatch
from pyasync_snn.experiment import (DEFAULTS, TRAIN_KEYS, SerialExecutor, eval_settings, train_config,
                                    load_config, read_csv, run_experiment, run_study)
from pyasync_snn.io import write_dataset
from pyasync_snn.network import Network
from pyasync_snn.simulate import simulate

TINY = {"epochs": 1, "hidden": [8], "batch_size": 4, "eval_group_sizes": [1, 8, 0], "f_train": 8}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("data")
    write_dataset(d / "tr.h5", random_events(12, 20, 10, 0.2, 3, seed=1), 3)
    write_dataset(d / "te.h5", random_events(6, 20, 10, 0.2, 3, seed=2), 3)
    return str(d / "tr.h5"), str(d / "te.h5")


def _run(out, data, executor=None, seeds=2, **overrides):
    cfg = load_config(seeds=seeds, overrides={**TINY, **overrides})
    return run_study(out, data[0], data[1], cfg, executor or SerialExecutor())


def _files(directory):
    return {name: os.path.getmtime(os.path.join(directory, name)) for name in os.listdir(directory)
            if name.endswith(".h5")}


@pytest.fixture(scope="module")
def study(tmp_path_factory, data):
    out = tmp_path_factory.mktemp("study")
    return out, _run(out, data)


def test_grid_and_outputs(study):
    out, res = study
    cfg = load_config(seeds=2, overrides=TINY)
    settings = eval_settings(cfg)
    assert len(settings) == 3 * (1 + 2 * 3)           # (layered + 2 schedules x 3 F) x 3 modes
    assert [stop for _, _, stop in settings][::len(settings) // 3] == [None, 0, cfg["stop_on_output"]]
    assert res["trained"] == 3 * 2 and res["evaluated"] == 6 * len(settings)
    assert len(os.listdir(out / "models")) >= 6 and len(_files(out / "evals")) == 6 * len(settings)
    for name in ("results.h5", "results.csv", "report.md"):
        assert (out / name).is_file()
    for fig in ("accuracy_vs_f", "spikes_vs_f", "latency", "accuracy_vs_latency", "energy_vs_f", "latency_vs_f"):
        assert (out / "figures" / f"{fig}.png").stat().st_size > 1000
    rows = read_csv(out / "results.csv")
    assert len(rows) == 3 * len(settings)              # training schedule x evaluation setting
    keys = {(r["train_schedule"], r["eval_schedule"], r["eval_f"], r["stop_on_output"]) for r in rows}
    assert len(keys) == len(rows)
    assert {"accuracy_mean", "accuracy_std", "spikes_per_sample_mean", "sops_per_sample_mean",
            "steps_to_first_output_mean", "spikes_to_first_output_mean", "first_spike_accuracy_mean",
            "energy_nj_mean", "checks_per_sample_mean", "timestep_spikes_to_output_mean",
            "timestep_spikes_to_correct_mean", "timestep_output_fraction_mean"} <= set(rows[0])
    assert all(r["seeds"] == "2" for r in rows)
    # the NeuroBench columns by hand: a dense 20-8-3 network without zero weights (184 of them),
    # T = 10, Bernoulli inputs (no repeated (timestep, channel) pair), 11 non-input neurons
    for r in rows:
        value = lambda name: float(r[f"{name}_mean"])  # noqa: E731
        assert r["synaptic_operations_Effective_ACs_mean"] == r["sops_per_sample_mean"]
        assert value("synaptic_operations_Effective_MACs") == 0
        assert value("synaptic_operations_Dense") == 10 * (20 * 8 + 8 * 3)
        assert value("activation_sparsity") == pytest.approx(1 - value("spikes_per_sample") / (11 * 10), abs=1e-5)
        assert (value("connection_sparsity"), value("footprint"), value("parameter_count")) == (0, (184 + 2) * 4, 184)
    import h5py
    with h5py.File(out / "results.h5", "r") as f:
        g = f["momentum-F8-seed1/random-F1-tstop0"]
        assert g["labels"].shape == (6,) and g["spikes_per_layer"].shape == (6, 2)
        assert g["timestep_spikes_to_output"].shape == (6, 10)
        assert g.attrs["stop_on_output"] == 0
        assert np.array_equal(g["effective_acs"][()], g["sops"][()]) and not g["effective_macs"][()].any()
        assert (g.attrs["synaptic_operations_Dense"], g.attrs["footprint"], g.attrs["parameter_count"],
                g.attrs["connection_sparsity"]) == (1840, 744, 184, 0)


def test_report_tables(study):
    out, _ = study
    text = (out / "report.md").read_text()
    assert "## In plain words" in text and "momentum F=8 training vs layered training" in text
    assert "faster decision" in text or "slower decision" in text
    assert "spikes to output per timestep" in text       # the decision latency is the per-timestep one
    plain = text.split("## In plain words")[1].split("##")[0]
    for mode in ("full run (on spiking done):", "on output:", "3 forward steps after output:"):
        assert mode in plain
    for title in ("## Full runs", "## On output", "## 3 forward steps after output", "## Energy breakdown"):
        assert title in text
    for title, n_metrics in (("## Full runs", 9), ("## On output", 7), ("## 3 forward steps after output", 7)):
        section = text.split(title)[1].split("##")[0]
        lines = [l for l in section.splitlines() if l.startswith("|")]
        assert lines[0].count("|") == 2 + n_metrics + 1  # two label columns, the metrics
        assert "spikes to output / timestep" in lines[0]
        assert len(lines) == 2 + 3 * 7                 # header, rule, 3 training x 7 settings
    assert "![accuracy vs F](figures/accuracy_vs_f.png)" in text


def test_resume_after_interruption(tmp_path, data, study):
    out0, _ = study
    first = _run(tmp_path, data)
    rows = read_csv(tmp_path / "results.csv")
    evals = sorted(os.listdir(tmp_path / "evals"))
    # an interrupted run: some evaluations missing, one model file gone
    for name in evals[::5]:
        os.remove(tmp_path / "evals" / name)
    os.remove(tmp_path / "models" / "random-F8-seed1.h5")
    before = _files(tmp_path / "evals")
    second = _run(tmp_path, data)
    assert second["trained"] == 1
    model_evals = [e for e in evals if e.startswith("random-F8-seed1__")]
    assert second["evaluated"] == len(set(evals[::5]) | set(model_evals))
    after = _files(tmp_path / "evals")
    untouched = [n for n in before if not n.startswith("random-F8-seed1__")]
    assert all(after[n] == before[n] for n in untouched)
    assert read_csv(tmp_path / "results.csv") == rows
    assert read_csv(out0 / "results.csv") == rows      # and equal to an independent run
    third = _run(tmp_path, data)
    assert third["trained"] == 0 and third["evaluated"] == 0
    assert first["evaluated"] == len(evals)


def test_dask_executor_gives_identical_results(tmp_path, data, study):
    distributed = pytest.importorskip("distributed")
    from pyasync_snn.experiment import DaskExecutor
    out0, _ = study
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        _run(tmp_path, data, DaskExecutor(client=client))
    assert read_csv(tmp_path / "results.csv") == read_csv(out0 / "results.csv")


def test_energy_arithmetic():
    e = energy_breakdown(1000, 200, 10, {"sop_pj": 1.0, "check_pj": 2.0, "spike_pj": 5.0})
    assert e["sops"] == 1000 and e["checks"] == 400 and e["spikes"] == 50 and e["total"] == 1450
    d = energy_breakdown([100, 0], [10, 1], [1, 2])
    np.testing.assert_allclose(d["total"], [100 * 0.9 + 10 * 4.6 + 10.0, 4.6 + 20.0])
    with pytest.raises(UserError, match="unknown energy profile"):
        validate_profile({"sop": 1})
    with pytest.raises(UserError, match="finite number"):
        validate_profile({"sop_pj": -1})


def test_the_kernel_counts_checks_by_hand():
    # 1 input -> 2 hidden -> 1 output; weights large enough that every spike fires its targets
    net = Network((np.full((2, 1), 2.0), np.full((1, 2), 2.0)), threshold=1.0, beta=1.0)
    # timestep 0: one input spike; timestep 1: none; timestep 2: one input spike
    batch = EventBatch(np.array([0, 2]), np.array([0, 2]), np.array([0, 0]), np.array([0]), 1, 3)
    trace = simulate(net, batch, schedule="layered", group_size=0)
    # per timestep with input: step 0 checks layer 1 (2 neurons) -> both fire; step 1 delivers
    # both hidden spikes together -> layer 2 (1 neuron) checked once; step 2 delivers the
    # output spike -> nothing checked. Two such timesteps: 2 * (2 + 1) = 6.
    assert trace.metrics.checks.tolist() == [6]
    # momentum F=1: the hidden spikes go one per step; the second arrives after the output
    # neuron fired (refractory), so it is not checked again: still 2 * (2 + 1)
    trace = simulate(net, batch, schedule="momentum", group_size=1, momentum_noise=0.0)
    assert trace.metrics.checks.tolist() == [6]
    # with a threshold the output only reaches with both hidden spikes: F=1 checks it twice
    net2 = Network((np.full((2, 1), 2.0), np.full((1, 2), 0.6)), threshold=1.0, beta=1.0)
    trace = simulate(net2, batch, schedule="momentum", group_size=1, momentum_noise=0.0)
    assert trace.metrics.checks.tolist() == [2 * (2 + 2)]
    trace = simulate(net2, batch, schedule="layered", group_size=0)
    assert trace.metrics.checks.tolist() == [2 * (2 + 1)]


def test_config_validation(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"epochs": 2, "energy": {"check_pj": 1.5}, "eval_group_sizes": [2, 0]}))
    cfg = load_config(path, quick=True)
    assert cfg["epochs"] == 2 and cfg["hidden"] == [64, 64] and cfg["energy"]["check_pj"] == 1.5
    assert cfg["energy"]["sop_pj"] == 0.9 and cfg["eval_group_sizes"] == [2, 0]
    path.write_text(json.dumps({"epoch": 2}))
    with pytest.raises(UserError, match="unknown configuration key"):
        load_config(path)
    path.write_text("[1, 2]")
    with pytest.raises(UserError, match="JSON object"):
        load_config(path)
    path.write_text("{nope")
    with pytest.raises(UserError, match="not valid JSON"):
        load_config(path)
    for bad in ({"seeds": 0}, {"train_schedules": ["sync"]}, {"eval_group_sizes": [-1]},
                {"hidden": "a,b"}, {"lr": -1}):
        with pytest.raises(UserError):
            load_config(overrides=bad)
    with pytest.raises(UserError, match="No such file"):
        load_config(tmp_path / "missing.json")


def test_file_data_needs_test_set(tmp_path, data):
    with pytest.raises(UserError, match="--test"):
        run_experiment(tmp_path / "o", data=data[0])


def test_evaluation_cache_is_keyed_on_the_mode(tmp_path, data, study):
    """An evaluation file of another stop mode (e.g. the earlier sample-scoped stop) is redone."""
    import shutil
    import h5py
    out0, _ = study
    shutil.copytree(out0, tmp_path / "s")
    name = "momentum-F8-seed0__random-F1-tstop0.h5"
    with h5py.File(tmp_path / "s" / "evals" / name, "r+") as f:
        assert f.attrs["stop_scope"] == "timestep"
        f.attrs["stop_scope"] = "sample"
    again = _run(tmp_path / "s", data)
    assert again["trained"] == 0 and again["evaluated"] == 1
    with h5py.File(tmp_path / "s" / "evals" / name, "r") as f:
        assert f.attrs["stop_scope"] == "timestep"
    assert read_csv(tmp_path / "s" / "results.csv") == read_csv(out0 / "results.csv")


def test_evaluation_files_without_the_neurobench_arrays_are_reused(tmp_path, data, study):
    """Files written before the effective synaptic operations were kept are reused as they are:
    only those columns of their row are unknown (NaN); every other value is unchanged."""
    import shutil
    import h5py
    out0, _ = study
    shutil.copytree(out0, tmp_path / "s")
    for seed in (0, 1):
        with h5py.File(tmp_path / "s" / "evals" / f"momentum-F8-seed{seed}__random-F1-full.h5", "r+") as f:
            del f["effective_acs"], f["effective_macs"]
    again = _run(tmp_path / "s", data)
    assert again["trained"] == 0 and again["evaluated"] == 0
    rows, old = read_csv(tmp_path / "s" / "results.csv"), read_csv(out0 / "results.csv")
    assert len(rows) == len(old)
    for r, o in zip(rows, old):
        old_file = (r["train_schedule"], r["f_train"], r["eval_schedule"], r["eval_f"], r["stop_on_output"]) == \
            ("momentum", "8", "random", "1", "off")
        for key in r:
            if old_file and key in (f"synaptic_operations_Effective_{kind}_mean" for kind in ("ACs", "MACs")):
                assert r[key] == "nan" and o[key] != "nan"
            elif not (old_file and key.startswith("synaptic_operations_Effective")):
                assert r[key] == o[key], key
    with h5py.File(tmp_path / "s" / "results.h5", "r") as f:
        assert "effective_acs" not in f["momentum-F8-seed0/random-F1-full"]
        assert "effective_acs" in f["momentum-F8-seed0/random-F8-full"]


def test_several_training_f_reuse_the_models_that_still_apply(tmp_path, data, study):
    """f_train [1, 8]: random and momentum models at each F (layered once); extending the list
    of the F=8 study trains and evaluates only the new F=1 models."""
    import shutil
    import h5py
    out0, _ = study
    shutil.copytree(out0, tmp_path / "s")
    out = tmp_path / "s"
    res = _run(out, data, f_train=[1, 8])
    n_settings = len(eval_settings(load_config(seeds=2, overrides=TINY)))
    assert res["trained"] == 2 * 2                     # random-F1 and momentum-F1, 2 seeds
    assert res["evaluated"] == 2 * 2 * n_settings
    rows = read_csv(out / "results.csv")
    assert len(rows) == 5 * n_settings                 # layered + 2 schedules x 2 F_train
    keys = {(r["train_schedule"], r["f_train"], r["eval_schedule"], r["eval_f"], r["stop_on_output"]) for r in rows}
    assert len(keys) == len(rows)
    assert {(r["train_schedule"], r["f_train"]) for r in rows} == {
        ("layered", "na"), ("random", "1"), ("random", "8"), ("momentum", "1"), ("momentum", "8")}
    old = {(r["train_schedule"], r["f_train"], r["eval_schedule"], r["eval_f"], r["stop_on_output"]): r
           for r in read_csv(out0 / "results.csv")}
    for r in rows:                                     # the reused models' rows are unchanged
        if r["f_train"] != "1":
            assert old[(r["train_schedule"], r["f_train"], r["eval_schedule"], r["eval_f"], r["stop_on_output"])] == r
    text = (out / "report.md").read_text()
    for model in ("random F=1", "random F=8", "momentum F=1", "momentum F=8"):
        assert f"{model} training vs layered training" in text
        assert f"| {model} | " in text
    assert "momentum F=1 training vs layered training, both evaluated under momentum F=1:" in text
    assert "F_train in {1, 8}" in text
    with h5py.File(out / "results.h5", "r") as f:
        assert f["momentum-F1-seed0/random-F8-full"].attrs["f_train"] == "1"
        assert f["layered-Fna-seed1/layered-Fna-tstop0"].attrs["f_train"] == "na"
        assert json.loads(f.attrs["config"])["f_train"] == [1, 8]
    for fig in ("accuracy_vs_f", "latency", "accuracy_vs_latency"):
        assert (out / "figures" / f"{fig}.png").stat().st_size > 1000
    # back to the single F: everything is reused, the results are the first study's
    again = _run(out, data)
    assert again["trained"] == 0 and again["evaluated"] == 0
    assert read_csv(out / "results.csv") == read_csv(out0 / "results.csv")


def test_f_train_values():
    assert load_config(overrides={"f_train": 8})["f_train"] == [8]          # older configurations
    assert load_config(overrides={"f_train": [2, 0, 2]})["f_train"] == [2, 0]
    assert load_config()["f_train"] == [1, 2, 8]
    assert load_config(quick=True)["f_train"] in ([8], [1, 8])
    for bad in (-1, [1, -2], [1, "2"], "8", [], [True], 2.0, None):
        with pytest.raises(UserError, match="f_train must be") as e:
            load_config(overrides={"f_train": bad})
        assert "\n" not in str(e.value)


def test_training_settings_come_from_train_config():
    from pyasync_snn.training import TrainConfig
    base = TrainConfig()
    for key in TRAIN_KEYS:                             # one rule, one place
        if key != "epochs":                            # the study's own budget
            expected = getattr(base, key)
            assert DEFAULTS[key] == (list(expected) if isinstance(expected, tuple) else expected), key
    assert {"lr", "loss", "surrogate", "batch_size", "hidden"} <= set(TRAIN_KEYS)
    assert not {"schedule", "group_size", "seed", "threads"} & set(TRAIN_KEYS)
    cfg = load_config()
    layered = train_config(cfg, "layered", None, 0)
    assert layered.group_size == base.group_size       # F is irrelevant to layered training
    assert train_config(cfg, "momentum", 2, 1).group_size == 2
    for key, value in (("gradient", "reference"), ("detach_reset", True), ("surrogate_param", 0.5)):
        if key in TRAIN_KEYS:                          # passed through into every model's TrainConfig
            cfg = load_config(overrides={key: value})
            assert getattr(train_config(cfg, "random", 1, 0), key) == value
            with pytest.raises(UserError):
                load_config(overrides={key: "nope"})


def test_conv_and_queued_inputs_in_a_study(tmp_path, data):
    """``hidden`` takes conv layers and ``input_queue`` reaches training and every evaluation."""
    import h5py
    from pyasync_snn.io import read_model
    overrides = {"hidden": ["2x2x5", "c3k2"], "train_schedules": ["momentum"], "eval_schedules": ["momentum"],
                 "eval_group_sizes": [8], "input_queue": True}
    res = _run(tmp_path, data, seeds=1, **overrides)
    assert res["trained"] == 1 and res["evaluated"] == 3
    model = read_model(next((tmp_path / "models").glob("*.h5")))
    assert model.spelling() == "2x2x5,c3k2,3"
    for path in (tmp_path / "evals").glob("*.h5"):
        with h5py.File(path) as f:
            assert f.attrs["input_queue"] == 1
