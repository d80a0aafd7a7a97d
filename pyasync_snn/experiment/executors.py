"""Executors of the study's jobs: in this process, a local process pool, or a Dask cluster.
Results are identical whichever ran them."""
from __future__ import annotations

import os

from ..errors import UserError


class Executor:
    """Runs independent jobs: ``map(fn, jobs)`` yields ``(job, result)`` as they finish.
    ``fn`` must be a module-level function (it is pickled for process and Dask workers)."""

    threads_per_job = None

    def map(self, fn, jobs):
        raise NotImplementedError

    def close(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class SerialExecutor(Executor):
    """In this process, in order."""

    def __init__(self, threads=None):
        self.threads_per_job = threads

    def map(self, fn, jobs):
        for job in jobs:
            yield job, fn(job)


class LocalExecutor(Executor):
    """A process pool (``spawn`` context: no forked Numba/HDF5 state). ``workers`` processes of
    ``threads_per_job = cores // workers`` Numba threads each."""

    def __init__(self, workers=None):
        import concurrent.futures
        import multiprocessing
        cores = os.cpu_count() or 1
        self.workers = max(1, min(workers or cores, cores))
        self.threads_per_job = max(1, cores // self.workers)
        self._pool = concurrent.futures.ProcessPoolExecutor(
            self.workers, mp_context=multiprocessing.get_context("spawn"))

    def map(self, fn, jobs):
        import concurrent.futures
        futures = {self._pool.submit(fn, job): job for job in jobs}
        try:
            for fut in concurrent.futures.as_completed(futures):
                yield futures[fut], fut.result()
        except BaseException:
            for fut in futures:
                fut.cancel()
            raise

    def close(self):
        self._pool.shutdown(wait=True, cancel_futures=True)


class DaskExecutor(Executor):
    """Jobs on an existing Dask cluster (``address``) or a given ``distributed.Client``."""

    def __init__(self, address=None, client=None, threads=1):
        try:
            import distributed
        except ImportError:
            raise UserError("--dask-scheduler needs the optional dependency 'distributed' "
                            "(pip install distributed)") from None
        self._own = client is None
        try:
            self.client = client if client is not None else distributed.Client(address, timeout="20s")
        except (OSError, TimeoutError) as e:
            raise UserError(f"cannot connect to the Dask scheduler {address!r} ({e})") from None
        self.threads_per_job = threads

    def map(self, fn, jobs):
        import distributed
        jobs = list(jobs)
        futures = [self.client.submit(fn, job, pure=False) for job in jobs]
        index = {f.key: j for f, j in zip(futures, jobs)}
        try:
            for fut in distributed.as_completed(futures):
                yield index[fut.key], fut.result()
        except BaseException:
            self.client.cancel(futures)
            raise

    def close(self):
        if self._own:
            self.client.close()


def make_executor(workers=None, dask_scheduler=None) -> Executor:
    if dask_scheduler is not None:
        return DaskExecutor(dask_scheduler)
    if workers == 1:
        return SerialExecutor()
    return LocalExecutor(workers)
