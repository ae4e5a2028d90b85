"""The scheduler hands at most `MAX_INFLIGHT` jobs to executors at a time.

A pool finishes tiny calls faster than the scheduler thread takes their outcomes in;
outcomes that wait are what a crash loses (docs/store.md), so the rest of the calls wait
in the scheduler until outcomes come back.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future

from lazyflow_core import Scheduler, task
from lazyflow_core.dispatch import MAX_INFLIGHT
from lazyflow_core.executors import JobOutcome, JobSpec, ThreadExecutor


@task(cache=False)
def short(i: int) -> int:
    time.sleep(0.0005)  # longer than INLINE_SECONDS: it goes to the pool
    return i


class CountingThreads(ThreadExecutor):
    """The thread pool, counting the jobs handed to it and not finished yet."""

    def __init__(self) -> None:
        super().__init__(max_workers=4)
        self.lock = threading.Lock()
        self.out = 0
        self.most = 0

    def submit(self, spec: JobSpec, on_start=None) -> Future[JobOutcome]:  # type: ignore[no-untyped-def]
        with self.lock:
            self.out += 1
            self.most = max(self.most, self.out)
        future = super().submit(spec, on_start)
        future.add_done_callback(self._done)
        return future

    def _done(self, _: Future[JobOutcome]) -> None:
        with self.lock:
            self.out -= 1


def test_at_most_max_inflight_jobs_are_out(sqlite_url: str) -> None:
    executor = CountingThreads()
    n = 3 * MAX_INFLIGHT
    with Scheduler(db=sqlite_url, executor=executor) as sched:
        assert sched.run([short(i) for i in range(n)]) == list(range(n))
    assert MAX_INFLIGHT // 2 < executor.most <= MAX_INFLIGHT
