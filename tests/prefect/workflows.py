"""lazyflow workflows used by the Prefect adapter tests.

Every executed call leaves one file in ``marker_dir`` (``<label>.<random>``), so a test
counts executions across threads, processes and Prefect retries with `executions`.
A file ``fail-once-<x>`` in ``marker_dir`` makes ``square(x)`` fail once (it deletes the
file first), which is how tests inject a failure that a retry recovers from.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

from lazyflow_core import task
from lazyflow_prefect import lazyflow_flow


def _record(marker_dir: str, label: str) -> None:
    Path(marker_dir, f"{label}.{uuid.uuid4().hex}").touch()


def executions(marker_dir: str | Path, label: str) -> int:
    """How many times the call labelled `label` has executed."""
    return len(list(Path(marker_dir).glob(f"{label}.*")))


@task
def square(x: int, marker_dir: str) -> int:
    _record(marker_dir, f"square-{x}")
    flag = Path(marker_dir, f"fail-once-{x}")
    if flag.exists():
        flag.unlink()
        raise RuntimeError(f"injected failure for x={x}")
    return x * x


@task
def total(values: list[int], marker_dir: str) -> int:
    _record(marker_dir, "total")
    return sum(values)


@task
def fanout(n: int, marker_dir: str) -> int:
    """Sum of squares below n.

    Args:
        n: how many squares to add up.
        marker_dir: where each executed call leaves a file.
    """
    _record(marker_dir, "fanout")
    return total([square(i, marker_dir) for i in range(n)], marker_dir)


def expected_jobs(n: int) -> int:
    """Calls in one uncached run of fanout(n): fanout, n squares, total."""
    return n + 2


@task
def nap(i: int, seconds: float, marker_dir: str, previous: int | None = None) -> int:
    time.sleep(seconds)
    _record(marker_dir, f"nap-{i}")
    return i


@task
def naps(n: int, seconds: float, marker_dir: str) -> int | None:
    """A chain of n naps, each waiting for the previous one."""
    last = None
    for i in range(n):
        last = nap(i, seconds, marker_dir, last)
    return last


# A deployable flow: Prefect finds it by the entrypoint "tests/prefect/workflows.py:fanout_flow"
# (the store comes from LAZYFLOW_DB when it runs).
fanout_flow = lazyflow_flow(fanout)
