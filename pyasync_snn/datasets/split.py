"""A stratified held-out split of a dataset file (for data that comes as a single file)."""
import os

import numpy as np

from .. import io
from ..validate import real
from .binning import stratified_split


def split_dataset(path, out_dir, test_fraction=0.2, seed=0) -> tuple:
    """Write ``<out_dir>/<stem>-train.h5`` and ``-test.h5``: per class a seeded random
    ``test_fraction`` goes to test. Reads the file's events once (the two outputs hold all of them).
    Returns the two paths."""
    real("test fraction", test_fraction, 0, 1, open_low=True)
    os.makedirs(out_dir, exist_ok=True)
    stem = os.path.splitext(os.path.basename(os.fspath(path)))[0]
    with io.open_dataset(path) as data:
        everything = data.take(0, len(data))
        n_classes, name, provenance = data.n_classes, data.name, data.attrs  # kept: sensor layout, ...
    train_idx, test_idx = stratified_split(everything.labels, test_fraction, np.random.default_rng(seed))
    written = []
    for split, idx in (("train", np.sort(train_idx)), ("test", np.sort(test_idx))):
        out = os.path.join(os.fspath(out_dir), f"{stem}-{split}.h5")
        io.write_dataset(out, everything.select(idx), n_classes, name=name or stem,
                         attrs={**provenance, "split_of": os.path.basename(os.fspath(path)), "split": split,
                                "split_seed": seed, "test_fraction": test_fraction})
        written.append(out)
    return tuple(written)
