"""Prefect 3 with ``cache_policy=INPUTS + TASK_SOURCE`` and persisted results; runs
under ``.venv-prefect``.

The fan-out is a flow that submits ``inc`` N times (``.submit``, Prefect's default
thread pool task runner) and passes the futures to ``total``; the chain calls ``inc`` on
the previous result D times. Everything Prefect keeps (its ephemeral server's SQLite
database, the persisted results) lives under ``PREFECT_HOME`` in the case's work
directory, so the cached re-run is a fresh process over what its cold run left. A
warm-up flow starts the ephemeral server before the clock starts (``server_seconds``).
``executed`` counts the task bodies that ran (0 in a fully cached re-run).
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any


def _configure(workdir: str) -> None:
    """Prefect's settings are read at import: point them at the work directory first."""
    home = os.path.join(workdir, "prefect-home")
    os.environ["PREFECT_HOME"] = home
    os.environ["PREFECT_LOCAL_STORAGE_PATH"] = os.path.join(home, "storage")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.pop("PREFECT_API_URL", None)
    # The ephemeral server is a subprocess that migrates its database as it starts: on a
    # loaded machine that takes longer than Prefect's default wait for it (20 s).
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "300")


if "prefect" not in sys.modules:  # the runner passes workdir as the child's cwd
    _configure(os.getcwd())

from prefect import flow, task  # noqa: E402
from prefect.cache_policies import INPUTS, TASK_SOURCE  # noqa: E402

EXECUTED: list[int] = []
POLICY = INPUTS + TASK_SOURCE


@task(cache_policy=POLICY, persist_result=True)
def inc(x: int) -> int:
    EXECUTED.append(1)
    return x + 1


@task(cache_policy=POLICY, persist_result=True)
def total(xs: list[int]) -> int:
    EXECUTED.append(1)
    return sum(xs)


@flow
def fan(n: int) -> int:
    futures = [inc.submit(i) for i in range(n)]
    return total(futures)  # type: ignore[arg-type]


@flow
def chained(depth: int) -> int:
    x = 0
    for _i in range(depth):
        x = inc(x)
    return x


@flow
def warm() -> int:
    return 0


def _warm() -> float:
    t0 = time.perf_counter()
    warm()
    return time.perf_counter() - t0


def _measure(run: Any, size: int, calls: int) -> dict[str, Any]:
    server = _warm()
    t0 = time.perf_counter()
    value = run(size)
    wall = time.perf_counter() - t0
    return {
        "wall": wall,
        "calls": calls,
        "value": value,
        "executed": len(EXECUTED),
        "server_seconds": server,
    }


def fanout(n: int, **_: Any) -> dict[str, Any]:
    """The flow ``fan(n)``, cold or cached."""
    return _measure(fan, n, n + 1)


def chain(depth: int, **_: Any) -> dict[str, Any]:
    """The flow ``chained(depth)``."""
    return _measure(chained, depth, depth)
