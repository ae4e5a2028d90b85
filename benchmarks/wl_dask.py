"""Dask workloads: per-call overhead of lazyflow's Dask executor against Dask's own
``client.map`` on the same kind of cluster.

Both start the same `distributed.LocalCluster` (2 worker processes of 1 thread each, as
many as this 2-core machine has), warm it with one round trip, then time only the work:
``client.gather(client.map(inc, range(n)))`` for Dask, and for lazyflow a cold run of
the flat fan-out ``total([inc(i) for i in range(n)])`` on ``DaskExecutor(cluster)``,
which also hashes every call, looks it up in the store and records it. Cluster start-up
is reported apart (``cluster_seconds``).
"""

from __future__ import annotations

import os
import time
from typing import Any

from benchmarks.wl_dask_distributed import start_cluster
from lazyflow_core import Scheduler, task


def _inc(x: int) -> int:
    return x + 1


@task
def inc(x: int) -> int:
    return x + 1


@task
def total(xs: list[int]) -> int:
    return sum(xs)


def client_map(n: int, workdir: str, **_: Any) -> dict[str, Any]:
    """Dask alone: one task per call, results gathered."""
    cluster, client, startup = start_cluster()
    try:
        t0 = time.perf_counter()
        value = sum(client.gather(client.map(_inc, range(n), pure=False)))
        wall = time.perf_counter() - t0
    finally:
        client.close()
        cluster.close()
    return {"wall": wall, "value": value, "jobs": n, "cluster_seconds": startup}


def lazyflow(n: int, workdir: str, **_: Any) -> dict[str, Any]:
    """lazyflow on the same cluster: bundles, hashing, caching and provenance included."""
    from lazyflow_core.executors import DaskExecutor

    cluster, client, startup = start_cluster()
    try:
        db = f"sqlite:///{os.path.join(workdir, 'lazyflow.db')}"
        with Scheduler(db=db, executor=DaskExecutor(client)) as sched:
            sched.store  # noqa: B018 - open the store outside the timed region
            t0 = time.perf_counter()
            value = sched.run(total([inc(i) for i in range(n)]))
            wall = time.perf_counter() - t0
            s = sched.last_run
            assert s is not None
    finally:
        client.close()
        cluster.close()
    return {
        "wall": wall,
        "value": value,
        "jobs": s.jobs,
        "executed": s.executed,
        "cached": s.cached,
        "cluster_seconds": startup,
    }
