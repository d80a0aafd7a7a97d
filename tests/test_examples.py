"""The example files in data/: they open with the readers, fit together, and are what
scripts/make_examples.py makes."""
import importlib.util
import sys
from pathlib import Path

import h5py
import numpy as np

from pyasync_snn import io, simulate

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("make_examples", ROOT / "scripts" / "make_examples.py")
make_examples = sys.modules["make_examples"] = importlib.util.module_from_spec(spec)
spec.loader.exec_module(make_examples)

DATA = ROOT / "data" / make_examples.DATA
MODEL = ROOT / "data" / make_examples.MODEL
TRACE = ROOT / "data" / make_examples.TRACE
VERSION_ATTRS = {"pyasync_snn_version"}   # provenance that may change without the content


def test_the_examples_are_small():
    assert sum(p.stat().st_size for p in (DATA, MODEL, TRACE)) < 200_000


def test_the_model_fits_the_data_and_the_trace_replays():
    net = io.read_model(MODEL)
    trace = io.read_trace(TRACE)
    with io.open_dataset(DATA) as data:
        assert net.layer_sizes[0] == data.n_inputs
        assert net.layer_sizes[-1] >= data.n_classes
        assert tuple(trace.layer_sizes) == tuple(net.layer_sizes)
        assert (len(trace), trace.n_timesteps) == (len(data), data.n_timesteps)
        assert trace.n_events > 0 and trace.output_counts.sum() > 0
        batch = data.take(0, len(data))
    again = simulate(net, batch, schedule=trace.schedule, group_size=trace.group_size,
                     seed=trace.seed, momentum_noise=trace.momentum_noise, dtype=trace.dtype)
    for name in ("indptr", "neuron", "timestep", "fired_step", "emitted_step", "v_pre", "output_counts"):
        np.testing.assert_array_equal(getattr(again, name), getattr(trace, name), err_msg=name)


def contents(path) -> dict:
    """Every dataset and attribute of an HDF5 file, by name (version provenance left out)."""
    found = {}
    with h5py.File(path, "r") as f:
        def visit(name, obj):
            for key, value in obj.attrs.items():
                if key not in VERSION_ATTRS:
                    found[f"{name}@{key}"] = value
            if isinstance(obj, h5py.Dataset):
                found[name] = obj[()]
        visit("/", f)
        f.visititems(visit)
    return found


def test_make_examples_regenerates_the_committed_files(tmp_path):
    made = make_examples.make_examples(tmp_path)
    for new, committed in zip(made, (DATA, MODEL, TRACE)):
        hint = (f"data/{committed.name} is not what scripts/make_examples.py makes now; after a "
                "deliberate format change run: python scripts/make_examples.py")
        want, got = contents(committed), contents(new)
        assert sorted(got) == sorted(want), hint
        for key in want:
            np.testing.assert_array_equal(got[key], want[key], err_msg=f"{key}: {hint}")

