"""dask.delayed graphs on a ``distributed.LocalCluster``; runs under ``.venv-dask``.

The cluster has the shape of ``wl_dask``'s (2 worker processes of 1 thread each: this
machine's cores), started and warmed with one round trip before the clock starts
(``cluster_seconds`` reports it). Timed: building the graph, ``client.compute`` and the
result. The functions live in this module, which the workers import (``PYTHONPATH``).
"""

from __future__ import annotations

import time
from typing import Any

from dask import delayed

from benchmarks.wl_dask_delayed import inc, total


def start_cluster() -> tuple[Any, Any, float]:
    """A warmed LocalCluster of 2 worker processes x 1 thread, its client, the seconds."""
    from distributed import Client, LocalCluster

    t0 = time.perf_counter()
    cluster = LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
    )
    client = Client(cluster, set_as_default=False)
    client.submit(inc, 0).result()  # every worker up, a first round trip done
    return cluster, client, time.perf_counter() - t0


def _timed(build: Any) -> dict[str, Any]:
    cluster, client, startup = start_cluster()
    try:
        t0 = time.perf_counter()
        value = client.compute(build()).result()
        wall = time.perf_counter() - t0
    finally:
        client.close()
        cluster.close()
    return {"wall": wall, "value": value, "cluster_seconds": startup}


def fanout(n: int, **_: Any) -> dict[str, Any]:
    """``total([inc(i) for i in range(n)])``, one Dask task per call."""
    result = _timed(lambda: delayed(total)([delayed(inc)(i) for i in range(n)]))
    return {**result, "calls": n + 1}


def chain(depth: int, **_: Any) -> dict[str, Any]:
    """``x = inc(x)`` repeated ``depth`` times."""

    def build() -> Any:
        x: Any = 0
        for _i in range(depth):
            x = delayed(inc)(x)
        return x

    return {**_timed(build), "calls": depth}
