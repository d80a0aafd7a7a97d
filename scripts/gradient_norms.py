"""Gradient norms per layer for every gradient mode and schedule: the diagnosis of small-F training.

A fresh Xavier network (seed 0) on the first ``--samples`` samples of a dataset file; one trace per
schedule, differentiated by each of the four graphs (``exact`` / ``reference``, reset differentiated
or detached; ``docs/algorithm.md`` section 6). Prints a Markdown table of ``|dW_1| / ... / |dW_L|``.

Usage: ``python scripts/gradient_norms.py DATA.h5 [--hidden 128] [--samples 64] [--loss rate]``
(a dataset name such as ``spatial`` is also accepted).
"""
import argparse

import numpy as np

from pyasync_snn import Network
from pyasync_snn.datasets import resolve_data
from pyasync_snn.gradients import loss_and_grad
from pyasync_snn.io.dataset import open_dataset
from pyasync_snn.simulate import simulate

SCHEDULES = (("layered", 0), ("momentum", 64), ("momentum", 8), ("momentum", 4), ("momentum", 2),
             ("momentum", 1), ("random", 1))
VARIANTS = (("exact", False), ("exact", True), ("reference", False), ("reference", True))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", help="dataset file or embedded name (its train split)")
    parser.add_argument("--hidden", default="128", help="hidden sizes, comma-separated")
    parser.add_argument("--samples", type=int, default=64)
    parser.add_argument("--loss", default="rate", choices=("rate", "count"))
    args = parser.parse_args()
    with open_dataset(resolve_data(args.data)) as data:
        batch = data.take(0, min(args.samples, len(data)))
        sizes = [data.n_inputs, *[int(h) for h in args.hidden.split(",") if h], data.n_classes]
    net = Network.xavier(sizes, seed=0)
    print(f"network {'-'.join(map(str, sizes))}, {len(batch)} samples, {args.loss} loss, atan; "
          f"|dW_1| / ... / |dW_L|\n")
    print("| schedule | " + " | ".join(m + (", detached" if d else "") for m, d in VARIANTS) + " |")
    print("|---" * (len(VARIANTS) + 1) + "|")
    for schedule, group_size in SCHEDULES:
        trace = simulate(net, batch, schedule=schedule, group_size=group_size, seed=0)
        cells = []
        for mode, detach in VARIANTS:
            _, grads = loss_and_grad(net, batch, trace=trace, loss=args.loss, gradient=mode, detach_reset=detach)
            cells.append(" / ".join(f"{np.linalg.norm(g):.3g}" for g in grads))
        name = schedule if schedule == "layered" else f"{schedule} F={group_size}"
        print(f"| {name} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
