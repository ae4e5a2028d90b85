"""Thread-pool executor: the default, lowest-overhead backend."""

from __future__ import annotations

import os
from concurrent.futures import Future, ThreadPoolExecutor

from .base import Executor, JobOutcome, JobSpec, run_job


class ThreadExecutor(Executor):
    """Runs jobs on a pool of threads in this process."""

    name = "threads"
    inline = True  # the scheduler may run a lone job on its own thread (see dispatch)

    def __init__(self, max_workers: int | None = None) -> None:
        self.max_workers = max_workers or min(32, (os.cpu_count() or 1) + 4)
        self._pool: ThreadPoolExecutor | None = None

    def start(self) -> None:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.max_workers, thread_name_prefix="lazyflow")

    def submit(self, spec: JobSpec) -> Future[JobOutcome]:
        if self._pool is None:
            self.start()
        assert self._pool is not None  # for mypy: start() set it
        return self._pool.submit(run_job, spec)

    def shutdown(self, *, cancel: bool = False) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=not cancel, cancel_futures=cancel)
            self._pool = None
