"""A chain of 5 Dask calls passing a 50 MB bytes value: held on the cluster, or sent
again from lazyflow's process (``hold_bytes=0``, the behaviour before `dask_held`).

    python -m benchmarks.dask_held
"""

from __future__ import annotations

import tempfile
import time

from lazyflow_core import Scheduler, task
from lazyflow_core.executors import DaskExecutor

MB = 50


@task
def start(n: int) -> bytes:
    return bytes(n * 1_000_000)


@task
def step(b: bytes, i: int) -> bytes:
    return b[1:] + bytes([i])


def chain(address: str, hold_bytes: int) -> float:
    with (
        tempfile.TemporaryDirectory() as tmp,
        DaskExecutor(address, hold_bytes=hold_bytes) as ex,
        Scheduler(db=f"sqlite:///{tmp}/b.db", executor=ex) as s,
    ):
        t0 = time.perf_counter()
        value = start(MB)
        for i in range(4):
            value = step(value, i)
        assert len(s.run(value)) == MB * 1_000_000
        return time.perf_counter() - t0


def main() -> None:
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=":0") as cluster:
        chain(cluster.scheduler_address, 2**30)  # warm up
        for _ in range(3):
            sent = chain(cluster.scheduler_address, 0)
            held = chain(cluster.scheduler_address, 2**30)
            print(f"sent again: {sent:.2f} s   held on the cluster: {held:.2f} s")


if __name__ == "__main__":
    main()
