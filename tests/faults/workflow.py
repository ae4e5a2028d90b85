"""The workflow the fault-injection tests kill: ``python workflow.py DB EXECUTOR N SECONDS``.

Each `work` call appends ``i pid time`` to the file named by ``LAZYFLOW_FAULTS_LOG`` as
its last act, so the test knows when every call completed (in its worker's clock, the
same machine's) and which processes ran calls. The run prints the total on success.
It guards its entry point: a Dask LocalCluster starts worker processes with ``spawn``,
which re-imports this script in each of them.
"""

from __future__ import annotations

import os
import sys
import time

from lazyflow_core import Scheduler, task


@task
def work(i: int, seconds: float) -> int:
    if seconds:
        time.sleep(seconds)
    line = f"{i} {os.getpid()} {time.time():.6f}\n".encode()
    fd = os.open(os.environ["LAZYFLOW_FAULTS_LOG"], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        os.write(fd, line)  # one small O_APPEND write: lines never interleave
    finally:
        os.close(fd)
    return i * i


@task
def total(values: list[int]) -> int:
    return sum(values)


def expected(n: int) -> int:
    return sum(i * i for i in range(n))


def main(db: str, executor: str, n: int, seconds: float) -> None:
    chosen: object = executor
    if executor == "dask":
        from lazyflow_core.executors import DaskExecutor

        chosen = DaskExecutor(n_workers=2, threads_per_worker=1, processes=True)
    with Scheduler(db=db, executor=chosen, max_workers=2) as sched:  # type: ignore[arg-type]
        print(sched.run(total([work(i, seconds) for i in range(n)])), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4]))
