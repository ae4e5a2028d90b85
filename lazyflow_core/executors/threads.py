"""Executors in this process: a thread pool (the default), and ``inline`` (no pool at all)."""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from .base import Executor, Inline, JobOutcome, JobSpec, run_job


class ThreadExecutor(Executor):
    """Runs jobs on a pool of threads in this process."""

    name = "threads"
    inline = Inline.WHEN_CHEAP  # the scheduler may run a job on its own thread (dispatch)
    reports_start = True  # a job waits for a free thread: queued, then started

    def __init__(self, max_workers: int | None = None) -> None:
        self.max_workers = max_workers or min(32, (os.cpu_count() or 1) + 4)
        self._pool: ThreadPoolExecutor | None = None

    def start(self) -> None:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.max_workers, thread_name_prefix="lazyflow")

    def submit(
        self, spec: JobSpec, on_start: Callable[[], None] | None = None
    ) -> Future[JobOutcome]:
        if self._pool is None:
            self.start()
        assert self._pool is not None  # for mypy: start() set it
        if on_start is None:
            return self._pool.submit(run_job, spec)
        return self._pool.submit(_started, on_start, spec)

    def shutdown(self, *, cancel: bool = False) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=not cancel, cancel_futures=cancel)
            self._pool = None


def _started(on_start: Callable[[], None], spec: JobSpec) -> JobOutcome:
    on_start()
    return run_job(spec)


class InlineExecutor(Executor):
    """Runs every job on the scheduler's thread, one at a time, when it is dispatched.

    No parallelism, and no thread or process between the scheduler and a task: runs are
    deterministic (jobs run in the order they become ready), a breakpoint or ``pdb`` in a
    task stops there, and tracebacks are the task's own. ``Scheduler(executor="inline")``.
    The scheduler runs its jobs itself (``inline = ALWAYS``); `submit` runs a job in the
    caller's thread and returns a finished future, for callers other than the scheduler.
    """

    name = "inline"
    inline = Inline.ALWAYS

    def submit(self, spec: JobSpec) -> Future[JobOutcome]:
        future: Future[JobOutcome] = Future()
        future.set_result(run_job(spec))
        return future

    def shutdown(self, *, cancel: bool = False) -> None:
        """Nothing to release: there is no pool."""
