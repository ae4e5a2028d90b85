"""Real Dask clusters for the tests: a LocalCluster with worker processes."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

WORKER_RESOURCES = [{"vcpus": 1, "memory": 2e9}, {"vcpus": 1, "memory": 2e9, "gpus": 1}]


@contextlib.contextmanager
def local_cluster() -> Iterator[Any]:
    """A LocalCluster whose workers offer `WORKER_RESOURCES` (one worker each)."""
    from distributed import LocalCluster, Nanny

    cluster = LocalCluster(
        n_workers=0,
        processes=True,
        threads_per_worker=1,
        dashboard_address=":0",
        scheduler_kwargs={"allowed_failures": 0},
    )
    try:
        template = cluster.new_worker_spec()
        ((_name, spec),) = template.items()
        for i, resources in enumerate(WORKER_RESOURCES):
            options = {**spec["options"], "resources": resources}
            cluster.worker_spec[f"w{i}"] = {"cls": Nanny, "options": options}
        cluster.sync(cluster._correct_state)
        cluster.wait_for_workers(len(WORKER_RESOURCES), timeout=120)
        yield cluster
    finally:
        cluster.close()
