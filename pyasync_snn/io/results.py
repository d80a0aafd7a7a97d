"""The asynchrony study's result files (``docs/study.md``, "Outputs").

- An evaluation file (``format = "pyasync-snn/study-evaluation"``): one model evaluated under one
  setting. Root attributes name the job (model SHA-256, test data, schedule, F, stop, seed, ...);
  datasets :data:`ARRAYS` hold one entry per test sample: the :class:`~pyasync_snn.trace.Metrics`
  arrays, ``checks`` and ``loss``; and :data:`OPTIONAL_ARRAYS`, the NeuroBench effective synaptic
  operations (``pyasync_snn/neurobench.py``), absent from files written before they existed (such
  files are still reused; their NeuroBench effective operations are unknown).
- ``results.h5`` (``format = "pyasync-snn/study-results"``): every evaluation of the study, one
  group ``<model>/<evaluation>`` each with its attributes and the same arrays; root attributes
  ``config`` (JSON), ``train_data`` and ``test_data``.
"""
from __future__ import annotations

import os
from dataclasses import fields

from ..errors import UserError
from ..trace import Metrics
from .h5common import atomic_h5, in_file, open_checked, optional_attr, read, write_array

EVAL_FORMAT = "pyasync-snn/study-evaluation"
RESULTS_FORMAT = "pyasync-snn/study-results"
METRIC_ARRAYS = tuple(f.name for f in fields(Metrics))
ARRAYS = tuple(dict.fromkeys((*METRIC_ARRAYS, "checks", "loss")))
OPTIONAL_ARRAYS = ("effective_acs", "effective_macs")  # neurobench.effective_synops, per sample


def write_evaluation(path, attrs: dict, arrays: dict) -> None:
    """Write an evaluation file atomically: root attributes ``attrs``, datasets ``arrays``."""
    with atomic_h5(path, EVAL_FORMAT) as f:
        f.attrs.update(attrs)
        for name, value in arrays.items():
            write_array(f, name, value)


def evaluation_matches(path, attrs: dict) -> bool:
    """Whether ``path`` is a complete, readable evaluation file with these root attributes (the
    study reuses such a file instead of running its job again)."""
    if not os.path.exists(path):
        return False
    try:
        with open_checked(path, EVAL_FORMAT) as f, in_file(f):
            return all(optional_attr(f, key) == value for key, value in attrs.items()) \
                and all(name in f for name in ARRAYS)
    except UserError:
        return False


def read_evaluation(path) -> dict:
    """The :data:`ARRAYS` of an evaluation file, and those of :data:`OPTIONAL_ARRAYS` it has, by name."""
    with open_checked(path, EVAL_FORMAT) as f, in_file(f):
        return {name: read(f, name) for name in ARRAYS + OPTIONAL_ARRAYS if name in ARRAYS or name in f}


def write_results(path, attrs: dict, groups: dict) -> None:
    """Write ``results.h5`` atomically: root attributes ``attrs``; ``groups`` maps each group name
    to ``(its attributes, its arrays)``."""
    with atomic_h5(path, RESULTS_FORMAT) as f:
        f.attrs.update(attrs)
        for name, (group_attrs, arrays) in groups.items():
            g = f.create_group(name)
            g.attrs.update(group_attrs)
            for key, value in arrays.items():
                write_array(g, key, value)
