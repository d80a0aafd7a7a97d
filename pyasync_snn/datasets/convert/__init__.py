"""Converters from the raw files of real neuromorphic datasets to the dataset format, offline;
one module per source format, all on the shared :mod:`.pipeline` (streaming, atomic output,
binning, ``skip_bad``, the :class:`ConversionReport`). Users: docs/datasets.md ("Real datasets").

- :func:`convert_nmnist` (:mod:`.nmnist`) -- N-MNIST ``.bin`` files in the official
  ``Train/<digit>/*.bin`` / ``Test/<digit>/*.bin`` layout (34 x 34 x 2 = 2312 channels, 10 classes);
- :func:`convert_shd` (:mod:`.shd`) -- one SHD or SSC HDF5 file (700 channels, 20 or 35 classes);
- :func:`convert_dvsgesture` (:mod:`.dvsgesture`) -- DVS Gesture AEDAT 3.1 recordings with their
  ``_labels.csv`` (128 x 128 x 2 channels, 11 classes, one sample per labelled gesture);
- :func:`convert_events` (:mod:`.events`) -- NumPy structured arrays of events in tonic's layout
  (``x, y, p, t`` or ``t, x, p``), one ``.npz`` or a folder of ``.npy`` files.
"""
from .dvsgesture import convert_dvsgesture
from .events import convert_events
from .nmnist import convert_nmnist
from .pipeline import ConversionReport
from .shd import convert_shd

__all__ = ["convert_nmnist", "convert_shd", "convert_dvsgesture", "convert_events", "ConversionReport"]
