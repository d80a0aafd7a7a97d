"""Input events in the order the kernels read them: each sample's events sorted by timestep, then
input channel (``steps.inject`` walks them in that order)."""
import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def sort_by_time(indptr, timestep, unit, n_inputs, n_timesteps, out_timestep, out_unit, lo, hi):
    """Samples ``lo:hi``: ``(timestep, unit)`` of each sample's events sorted by timestep, then
    unit (equal pairs kept), into ``out_*``. Two stable counting sorts, by unit and then by
    timestep: ``O(events + n_inputs + n_timesteps)`` per sample."""
    by_unit = np.empty(n_inputs + 1, dtype=np.int64)
    by_time = np.empty(n_timesteps + 1, dtype=np.int64)
    for b in range(lo, hi):
        e0, e1 = indptr[b], indptr[b + 1]
        order = np.empty(e1 - e0, dtype=np.int64)
        by_unit[:] = 0
        for e in range(e0, e1):
            by_unit[unit[e] + 1] += 1
        for c in range(n_inputs):
            by_unit[c + 1] += by_unit[c]
        for e in range(e0, e1):  # order: the events by unit
            order[by_unit[unit[e]]] = e
            by_unit[unit[e]] += 1
        by_time[:] = 0
        for e in range(e0, e1):
            by_time[timestep[e] + 1] += 1
        for t in range(n_timesteps):
            by_time[t + 1] += by_time[t]
        for q in range(e1 - e0):  # stable: units stay ascending within a timestep
            e = order[q]
            r = e0 + by_time[timestep[e]]
            out_timestep[r] = timestep[e]
            out_unit[r] = unit[e]
            by_time[timestep[e]] += 1
