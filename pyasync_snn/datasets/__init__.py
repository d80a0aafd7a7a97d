"""Input data: generators of embedded datasets and readers of the field's raw formats.

- :func:`random_events` -- Bernoulli random input;
- :mod:`.nmnist` -- the N-MNIST ``.bin`` format (:func:`read_bin`, :func:`write_bin`,
  :func:`channel_index`);
- :mod:`.shd` -- the SHD/SSC HDF5 layout (:func:`read_shd`, :func:`write_shd`);
- :mod:`.aedat` -- the AEDAT 3.1 format (:func:`read_aedat31`, :func:`write_aedat31`);
- :mod:`.binning` -- timestamps to timesteps (:func:`bin_times`, :func:`bin_samples`);
- :mod:`.spatial`, :mod:`.temporal` -- the embedded datasets;
- :mod:`.registry` -- names, the cache, :func:`resolve_data` and :func:`describe`;
- :mod:`.convert` -- the converters of real datasets (one module per source format).
"""
from .random import random_events
from .nmnist import read_bin, write_bin, channel_index, channel_coordinates, list_split
from .shd import read_shd, write_shd, open_shd
from .aedat import read_aedat31, write_aedat31
from .binning import bin_times, bin_samples, stratified_split
from .split import split_dataset
from .registry import (DATASETS, make_dataset, cached_dataset, cache_dir, resolve_data,
                       resolve_train_test, describe, list_datasets)

__all__ = ["random_events", "read_bin", "write_bin", "channel_index", "channel_coordinates",
           "list_split", "read_shd", "write_shd", "open_shd", "read_aedat31", "write_aedat31",
           "bin_times", "bin_samples", "stratified_split", "DATASETS", "make_dataset", "cached_dataset", "cache_dir",
           "resolve_data", "resolve_train_test", "describe", "list_datasets", "split_dataset"]
