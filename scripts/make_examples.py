#!/usr/bin/env python3
"""Regenerate the tiny example files of ``data/`` with the public command line, fixed seeds.

Usage::

    python scripts/make_examples.py            # rewrites data/example-*.h5
    python scripts/make_examples.py --out DIR  # the same files in DIR (tests compare the two)

The files (``data/README.md`` says what each is and how to use them):

- ``example-data.h5``: 6 samples of Bernoulli input spikes, 40 inputs x 20 timesteps, 5 classes;
- ``example-model.h5``: a 40-16-12-5 network with Xavier-uniform weights;
- ``example-trace.h5``: the model run on the data under momentum F = 2, seed 3.
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

DATA, MODEL, TRACE = "example-data.h5", "example-model.h5", "example-trace.h5"
COMMANDS = (
    ["data", "random", "--inputs", "40", "--timesteps", "20", "--density", "0.1", "--samples", "6",
     "--classes", "5", "--seed", "0", "--out", DATA],
    ["model", "init", "--layers", "40,16,12,5", "--seed", "0", "--out", MODEL],
    ["simulate", MODEL, DATA, "--schedule", "momentum", "--group-size", "2", "--seed", "3",
     "--trace", TRACE],
)


def cli() -> list:
    """The ``pyasync-snn`` command next to this interpreter, else the one on PATH."""
    here = Path(sys.executable).with_name("pyasync-snn")
    found = str(here) if here.exists() else shutil.which("pyasync-snn")
    if found is None:
        sys.exit("pyasync-snn is not installed (pip install .)")
    return [found]


def make_examples(out_dir) -> list:
    """Write the example files into ``out_dir``; their paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for command in COMMANDS:
        subprocess.run(cli() + command, cwd=out_dir, check=True, stdout=subprocess.DEVNULL)
    return [out_dir / name for name in (DATA, MODEL, TRACE)]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent.parent / "data",
                        help="output folder (default: the repository's data/)")
    for path in make_examples(parser.parse_args(argv).out):
        print(f"{path}: {path.stat().st_size / 1024:.0f} KB")


if __name__ == "__main__":
    main()
