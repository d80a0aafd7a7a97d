"""Named embedded datasets: generate, cache, resolve names, describe files.

- :data:`DATASETS` maps a name to a :class:`DatasetInfo` (description and generator).
- :func:`make_dataset` writes ``<name>-train.h5`` and ``<name>-test.h5`` into a directory.
- :func:`cached_dataset` generates a name once into the user cache directory and reuses it; a
  missing file, or one that does not open and validate completely, is regenerated.
- :func:`resolve_data` turns ``NAME``, ``NAME:train``, ``NAME:test`` or a file path into a path.
- :func:`describe` summarises any dataset file.

**Cache directory**: ``$PYASYNC_SNN_CACHE`` if set, else ``$XDG_CACHE_HOME/pyasync-snn``, else
``~/.cache/pyasync-snn``. A name lives in ``<cache>/<name>-seed<S>-v<V>/`` where ``V`` is the
generator's version (bumped when its output changes, so stale caches are never reused). Next
to the two files, ``checksums.json`` records their SHA-256 at generation: a file whose bytes
changed in any way (a flipped bit in data that no reader would notice) is regenerated too.
"""
from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..errors import UserError
from ..io import open_dataset, write_dataset
from ..io.dataset import RESERVED_ATTRS
from ..io.atomic import atomic_path, ensure_directory, sha256
from ..validate import choice, integer
from . import spatial, temporal


@dataclass(frozen=True)
class DatasetInfo:
    """A registered dataset: a one-line description, a generator ``f(seed, **kw) -> Generated``,
    its version (part of the cache key and of the provenance), and its sizes."""

    description: str
    generator: Callable
    module: str
    version: int
    n_inputs: int
    n_timesteps: int
    n_classes: int


DATASETS = {
    "spatial": DatasetInfo(
        "sklearn 8x8 digits moved along N-MNIST's 3 saccades on a 12x12 canvas, seen by a "
        "simulated event camera (ON/OFF); stands in for N-MNIST",
        spatial.generate, "pyasync_snn.datasets.spatial", 1,
        spatial.N_INPUTS, spatial.DEFAULTS["n_timesteps"], spatial.N_CLASSES),
    "temporal": DatasetInfo(
        "Randman-style random smooth manifolds of spike times, 3 spikes per unit, information "
        "in the timing only; stands in for SHD",
        temporal.generate, "pyasync_snn.datasets.temporal", 1,
        temporal.DEFAULTS["n_units"], temporal.DEFAULTS["n_timesteps"],
        temporal.DEFAULTS["n_classes"]),
}
SPLITS = ("train", "test")
CHECKSUMS = "checksums.json"


def _info(name) -> DatasetInfo:
    return DATASETS[choice("dataset", name, sorted(DATASETS))]


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON serializable: {value!r}")


def make_dataset(name, out_dir, seed=0, **params) -> tuple:
    """Generate dataset ``name`` for ``seed`` and write ``<out_dir>/<name>-train.h5`` and
    ``<name>-test.h5`` (atomically). ``params`` go to the generator (e.g. ``n_per_class``).

    Root attributes: ``name``, and the provenance ``generator`` (module), ``generator_version``,
    ``seed``, ``split``, ``parameters`` (JSON), ``pyasync_snn_version``, and the generator's
    statistics of that split (``on_fraction`` for spatial, ``spikes_per_unit`` for temporal).
    Returns the two paths.
    """
    from .. import __version__  # late: the package may import this module while initialising
    info = _info(name)
    out_dir = ensure_directory(out_dir)
    integer("seed", seed, 0, "a non-negative integer")
    gen = info.generator(seed=int(seed), **params)
    paths = []
    for split, batch, time_us in (("train", gen.train, gen.train_time_us),
                                  ("test", gen.test, gen.test_time_us)):
        attrs = {"generator": info.module, "generator_version": info.version, "seed": int(seed),
                 "split": split, "pyasync_snn_version": __version__,
                 "parameters": json.dumps(gen.parameters, sort_keys=True, default=_json_default),
                 **{k: v for k, v in gen.stats.get(split, {}).items() if k not in RESERVED_ATTRS}}
        path = os.path.join(out_dir, f"{name}-{split}.h5")
        write_dataset(path, batch, gen.n_classes, name=name, time_us=time_us.astype(np.int64),
                      attrs=attrs)
        paths.append(path)
    return tuple(paths)


def cache_dir() -> str:
    """The user cache directory (module docstring); not created here."""
    if os.environ.get("PYASYNC_SNN_CACHE"):
        return os.path.abspath(os.path.expanduser(os.environ["PYASYNC_SNN_CACHE"]))
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(os.path.abspath(base), "pyasync-snn")


def _cache_paths(name, seed) -> tuple:
    info = _info(name)
    folder = os.path.join(cache_dir(), f"{name}-seed{int(seed)}-v{info.version}")
    return folder, tuple(os.path.join(folder, f"{name}-{s}.h5") for s in SPLITS)


def _read_checksums(folder) -> dict:
    try:
        with open(os.path.join(folder, CHECKSUMS), encoding="utf-8") as fh:
            sums = json.load(fh)
        return sums if isinstance(sums, dict) else {}
    except (OSError, ValueError):
        return {}


def _write_checksums(folder, paths) -> None:
    with atomic_path(os.path.join(folder, CHECKSUMS)) as tmp, open(tmp, "w", encoding="utf-8") as fh:
        json.dump({os.path.basename(p): sha256(p) for p in paths}, fh, indent=1)


def _valid(path, name, seed, split, checksums) -> bool:
    """The file matches the checksum recorded when it was generated, opens, has the expected
    provenance and sizes, and every event reads and validates."""
    info = DATASETS[name]
    try:
        if checksums.get(os.path.basename(path)) != sha256(path):
            return False
        expected = {"generator": info.module, "seed": seed, "split": split, "generator_version": info.version}
        with open_dataset(path) as data:
            attrs = data.attrs
            if data.name != name or any(attrs.get(key) != value for key, value in expected.items()):
                return False
            if (data.n_inputs, data.n_timesteps, data.n_classes) != \
                    (info.n_inputs, info.n_timesteps, info.n_classes) or len(data) == 0:
                return False
            data.check_events()
        return True
    except (UserError, OSError, KeyError, RuntimeError, ValueError):
        return False


def cached_dataset(name, seed=0) -> tuple:
    """``(train_path, test_path)`` of dataset ``name`` in the user cache, generated on first use
    and whenever a file is missing, corrupt or does not validate."""
    folder, paths = _cache_paths(name, seed)
    sums = _read_checksums(folder)
    if all(os.path.isfile(p) and _valid(p, name, int(seed), s, sums) for p, s in zip(paths, SPLITS)):
        return paths
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot create the cache directory {folder} ({e.strerror or e}); "
                        "set PYASYNC_SNN_CACHE to a writable directory") from None
    # a long first step says what it is doing (stderr: stdout stays for results and --json)
    print(f"generating the embedded '{name}' dataset (first use; cached in {folder}) ...",
          file=sys.stderr, flush=True)
    made = make_dataset(name, folder, seed)
    assert tuple(made) == paths
    try:
        _write_checksums(folder, paths)
    except OSError as e:
        raise UserError(f"cannot write to the cache directory {folder} ({e.strerror or e})") from None
    return paths


def resolve_data(spec, seed=0) -> str:
    """The dataset file that ``spec`` names.

    - An existing file path is returned unchanged (a path always wins over a name).
    - ``NAME`` or ``NAME:train`` is the cached training split of a registered dataset,
      ``NAME:test`` its test split (generated on first use, see :func:`cached_dataset`).

    Anything else raises :class:`UserError` listing the registered names.
    """
    spec = os.fspath(spec)
    if os.path.isfile(spec):
        return spec
    name, _, split = spec.partition(":")
    split = split or "train"
    if name in DATASETS:
        if split not in SPLITS:
            raise UserError(f"unknown split '{split}' in '{spec}': use {name}:train or {name}:test")
        return cached_dataset(name, seed)[SPLITS.index(split)]
    if os.path.exists(spec):
        raise UserError(f"{spec}: is a directory, not a dataset file")
    raise UserError(f"{spec}: no such file, and not a registered dataset "
                    f"(registered: {', '.join(sorted(DATASETS))}; NAME:test selects a test split)")


def resolve_train_test(spec, test=None, seed=0) -> tuple:
    """``(train_path, test_path)`` for a training run: ``spec`` as in :func:`resolve_data`;
    ``test`` (a name or path) if given, else the test split of a bare registered name, else None."""
    train = resolve_data(spec, seed)
    if test is not None:  # a bare registered name means its test split here
        bare = not os.path.isfile(os.fspath(test)) and os.fspath(test) in DATASETS
        return train, resolve_data(f"{test}:test" if bare else test, seed)
    name, _, split = os.fspath(spec).partition(":")
    if not os.path.isfile(os.fspath(spec)) and name in DATASETS and split in ("", "train"):
        return train, cached_dataset(name, seed)[1]
    return train, None


def list_datasets() -> str:
    """One line per registered dataset: name, sizes and description."""
    lines = []
    for name, info in sorted(DATASETS.items()):
        lines.append(f"{name:10s} {info.n_inputs} inputs, {info.n_timesteps} timesteps, "
                     f"{info.n_classes} classes: {info.description}")
    return "\n".join(lines)


def _fmt_attr(value) -> str:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def describe(path) -> str:
    """A multi-line summary of the dataset file ``path``: name, samples, inputs, timesteps,
    classes, events per sample (mean/min/max), input density, class histogram and the other
    root attributes (provenance). Every event is read and checked."""
    with open_dataset(path) as data:  # validates the file
        data.check_events()
        labels = np.asarray(data.labels)
        n, t, c, k = len(data), data.n_timesteps, data.n_inputs, data.n_classes
        name, counts, extra, has_time = data.name, data.events_per_sample, data.attrs, data.has_time_us
    lines = [f"file:        {os.fspath(path)}",
             f"name:        {name if name is not None else '(none)'}",
             f"samples:     {n}",
             f"inputs:      {c}",
             f"timesteps:   {t}",
             f"classes:     {k}"]
    if n:
        lines.append(f"events:      {int(counts.sum())} total; per sample mean {counts.mean():.1f}, "
                     f"min {counts.min()}, max {counts.max()}")
        lines.append(f"density:     {counts.mean() / (c * t):.4f} events per input per timestep")
    else:
        lines.append("events:      0 (no samples)")
    classes, hist = np.unique(labels, return_counts=True)  # n_classes may be huge: no bincount
    empty = f" ({k - len(classes)} classes without samples)" if len(classes) < k else ""
    lines.append("per class:   " + " ".join(f"{i}:{v}" for i, v in zip(classes, hist)) + empty)
    lines.append(f"time_us:     {'stored' if has_time else 'not stored'}")
    for key, value in extra.items():
        lines.append(f"{key + ':':12s} {_fmt_attr(value)}")
    return "\n".join(lines)
