"""Process-pool executor: tasks run in other processes (true CPU parallelism).

Jobs travel with cloudpickle, so lambdas, closures and tasks defined in scripts work. The
pickling happens in the pool's feeder thread (the payload pickles itself lazily through
``__reduce__``), and the result is unpickled in the pool's callback thread, so neither
costs the scheduler thread. Workers start with ``spawn``: forking a process that runs
threads (the scheduler, the store writer) is unsafe.
"""

from __future__ import annotations

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


class ProcessExecutor(Executor):
    """Runs jobs in a pool of worker processes."""

    name = "processes"

    def __init__(self, max_workers: int | None = None) -> None:
        self.max_workers = max_workers or os.cpu_count() or 1
        self._pool: ProcessPoolExecutor | None = None

    def start(self) -> None:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                self.max_workers, mp_context=multiprocessing.get_context("spawn")
            )

    def submit(self, spec: JobSpec) -> Future[JobOutcome]:
        if self._pool is None:
            self.start()
        assert self._pool is not None  # for mypy: start() set it
        outer: Future[JobOutcome] = Future()
        inner = self._pool.submit(_run_remote, _Cloudpickled(spec))  # type: ignore[arg-type]

        def unpack(done: Future[bytes]) -> None:
            try:
                out: JobOutcome = pickle.loads(done.result())
                if out.error is None:
                    out.value = pickle.loads(out.data) if out.data is not None else None
                    if out.has_expressions:
                        out.data = None
            except BaseException as exc:  # worker died, or the result did not unpickle
                out = JobOutcome(error=exc)
            outer.set_result(out)

        inner.add_done_callback(unpack)
        return outer

    def shutdown(self, *, cancel: bool = False) -> None:
        pool, self._pool = self._pool, None
        if pool is None:
            return
        if cancel:
            for proc in list(getattr(pool, "_processes", {}).values()):
                proc.terminate()
        pool.shutdown(wait=True, cancel_futures=cancel)
