"""Process-pool executor: tasks run in other processes (true CPU parallelism).

Jobs travel with cloudpickle, so lambdas, closures and tasks defined in scripts work. The
pickling happens in the pool's feeder thread (the payload pickles itself lazily through
``__reduce__``), and the result is unpickled in the pool's callback thread, so neither
costs the scheduler thread. Workers start with ``spawn``: forking a process that runs
threads (the scheduler, the store writer) is unsafe.
"""

from __future__ import annotations

import functools
import multiprocessing
import os
import pickle
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any

import cloudpickle

from .base import Executor, JobOutcome, JobSpec, run_job


class _Cloudpickled:
    """Pickles its object with cloudpickle when (and where) it is pickled."""

    __slots__ = ("obj",)

    def __init__(self, obj: Any) -> None:
        self.obj = obj

    def __reduce__(self) -> Any:
        return (cloudpickle.loads, (cloudpickle.dumps(self.obj, protocol=5),))


def _run_remote(spec: JobSpec) -> bytes:
    out = run_job(spec)
    value = out.value
    out.value = None
    if out.error is not None:
        try:
            pickle.dumps(out.error)
        except Exception:
            out.error = RuntimeError(f"{type(out.error).__name__}: {out.error}")
        return pickle.dumps(out, protocol=5)
    if out.has_expressions or out.data is None:
        # Expressions (or values std-pickle cannot handle) go back by cloudpickle.
        try:
            out.data = cloudpickle.dumps(value, protocol=5)
        except Exception as exc:
            out.error = TypeError(
                f"task {spec.task.name!r} returned {type(value).__name__}, which cannot be "
                f"sent back from a worker process ({exc}). Return picklable values, or run "
                'this task with executor="threads".'
            )
    return cloudpickle.dumps(out, protocol=5)


MAX_BATCH = 32
"""Most jobs sent to a worker process in one message."""


def _run_remote_batch(specs: list[JobSpec]) -> list[bytes]:
    return [_run_remote(spec) for spec in specs]


def _unpack(done: Future[list[bytes]], futures: list[Future[JobOutcome]]) -> None:
    """Runs in the pool's callback thread: unpickle results off the scheduler thread."""
    try:
        payloads: list[bytes | BaseException] = list(done.result())
    except BaseException as exc:  # the worker died
        payloads = [exc] * len(futures)
    for payload, fut in zip(payloads, futures, strict=True):
        try:
            if isinstance(payload, BaseException):
                raise payload
            out: JobOutcome = pickle.loads(payload)
            if out.error is None:
                out.value = pickle.loads(out.data) if out.data is not None else None
                if out.has_expressions:
                    out.data = None
        except BaseException as exc:  # the result did not unpickle
            out = JobOutcome(error=exc)
        fut.set_result(out)


class ProcessExecutor(Executor):
    """Runs jobs in a pool of worker processes."""

    name = "processes"

    def __init__(self, max_workers: int | None = None) -> None:
        self.max_workers = max_workers or os.cpu_count() or 1
        self._pool: ProcessPoolExecutor | None = None
        self._buffer: list[tuple[JobSpec, Future[JobOutcome]]] = []

    def start(self) -> None:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                self.max_workers, mp_context=multiprocessing.get_context("spawn")
            )

    def submit(self, spec: JobSpec) -> Future[JobOutcome]:
        """Buffer the job; `flush` sends buffered jobs to the workers in batches."""
        outer: Future[JobOutcome] = Future()
        self._buffer.append((spec, outer))
        if len(self._buffer) >= MAX_BATCH * self.max_workers:
            self.flush()
        return outer

    def flush(self) -> None:
        """Send buffered jobs: one message per batch, so tiny jobs share the IPC cost.

        Batches are sized so every worker gets work (at most `MAX_BATCH` jobs each).
        """
        if not self._buffer:
            return
        if self._pool is None:
            self.start()
        assert self._pool is not None  # for mypy: start() set it
        jobs, self._buffer = self._buffer, []
        size = max(1, min(MAX_BATCH, len(jobs) // (2 * self.max_workers)))
        for i in range(0, len(jobs), size):
            batch = jobs[i : i + size]
            specs = [spec for spec, _ in batch]
            futures = [fut for _, fut in batch]
            inner = self._pool.submit(_run_remote_batch, _Cloudpickled(specs))  # type: ignore[arg-type]
            inner.add_done_callback(functools.partial(_unpack, futures=futures))

    def shutdown(self, *, cancel: bool = False) -> None:
        if not cancel:
            self.flush()
        self._buffer = []
        pool, self._pool = self._pool, None
        if pool is None:
            return
        if cancel:
            for proc in list(getattr(pool, "_processes", {}).values()):
                proc.terminate()
        pool.shutdown(wait=True, cancel_futures=cancel)
