"""pyasync-snn: asynchronous (event-driven) spiking neural networks on the CPU.

The public API:

- :class:`Network` -- weights, threshold and decay of a feed-forward LIF network;
- :class:`EventBatch` -- input spikes of a batch of samples (CSR layout);
- :func:`simulate` -- runs a batch under a schedule, returns a :class:`Trace`;
- :mod:`pyasync_snn.io` -- the HDF5 file formats (model, dataset, trace).
"""
from .errors import UserError
from .network import Network
from .events import EventBatch
from .trace import Trace, Metrics
from .simulate import simulate, SCHEDULES

__all__ = ["UserError", "Network", "EventBatch", "Trace", "Metrics", "simulate", "SCHEDULES"]
__version__ = "0.1.0"
