"""The HDF5 file formats (`docs/formats.md`): read, validate, write atomically.

Readers raise :class:`pyasync_snn.errors.UserError` with a one-line message naming the file.
"""
from .h5common import FORMAT_VERSION, atomic_h5, open_checked
from .model import read_model, write_model
from .dataset import DatasetFile, open_dataset, write_dataset
from .trace import read_trace, write_trace
from .gradients import read_gradients, write_gradients

__all__ = ["write_model", "read_model", "write_dataset", "open_dataset", "DatasetFile",
           "write_trace", "read_trace", "write_gradients", "read_gradients", "atomic_h5", "open_checked", "FORMAT_VERSION"]
