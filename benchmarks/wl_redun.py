"""redun 0.44 baselines; runs under redun's own venv (``.venv-redun``).

Same workloads and values as ``wl_plain``: a cold fan-out, its fully cached re-run, a chain
of dependent calls, the process executor and redun's value/file hashing. The store is a
SQLite file, redun's default local executor (threads, 20 workers) unless stated. Store
queries are counted with a ``before_cursor_execute`` listener on redun's engine.
"""

from __future__ import annotations

import os
import time
from typing import Any

from redun import File, Scheduler, task
from redun.config import Config

from benchmarks import data


@task()
def inc(x: int) -> int:
    return x + 1


@task()
def total(xs: list[int]) -> int:
    return sum(xs)


@task()
def main_(n: int):  # type: ignore[no-untyped-def]
    return total([inc(i) for i in range(n)])


def _scheduler(workdir: str, mode: str = "thread") -> Scheduler:
    config: dict[str, dict[str, str]] = {
        "backend": {"db_uri": f"sqlite:///{os.path.join(workdir, 'redun.db')}"},
        "executors.default": {"type": "local", "mode": mode},
    }
    scheduler = Scheduler(config=Config(config))
    scheduler.load()
    return scheduler


def _count_queries(scheduler: Scheduler) -> list[int]:
    from sqlalchemy import event

    counter = [0]

    def _on_execute(*_args: Any) -> None:
        counter[0] += 1

    event.listen(scheduler.backend.engine, "before_cursor_execute", _on_execute)
    return counter


def fanout(
    n: int, workdir: str, flat: bool = False, executor: str = "threads", **_: Any
) -> dict[str, Any]:
    """Cold or cached (same call in a fresh process over the same DB) fan-out."""
    t0 = time.perf_counter()
    scheduler = _scheduler(workdir, "process" if executor == "processes" else "thread")
    queries = _count_queries(scheduler)
    expr = total([inc(i) for i in range(n)]) if flat else main_(n)
    value = scheduler.run(expr)
    wall = time.perf_counter() - t0
    return {"wall": wall, "calls": n + (1 if flat else 2), "value": value, "queries": queries[0]}


def chain(depth: int, workdir: str, **_: Any) -> dict[str, Any]:
    """``x = inc(x)`` repeated ``depth`` times as one nested expression."""
    t0 = time.perf_counter()
    scheduler = _scheduler(workdir)
    queries = _count_queries(scheduler)
    x: Any = 0
    for _i in range(depth):
        x = inc(x)
    value = scheduler.run(x)
    wall = time.perf_counter() - t0
    return {"wall": wall, "calls": depth, "value": value, "queries": queries[0]}


def hash_bytes(size: int, **_: Any) -> dict[str, Any]:
    """redun's value hash of a ``size``-byte ``bytes`` (what a task argument costs)."""
    from redun.value import get_type_registry

    value = data.make_bytes(size)
    registry = get_type_registry()
    t0 = time.perf_counter()
    digest = registry.get_hash(value)
    wall = time.perf_counter() - t0
    return {"wall": wall, "bytes": size, "value": digest[:16]}


def hash_numpy(size: int, **_: Any) -> dict[str, Any]:
    """redun's value hash of a float64 NumPy array of ``size`` bytes."""
    import numpy as np
    from redun.value import get_type_registry

    array = np.frombuffer(data.make_bytes(size), dtype=np.float64).copy()
    registry = get_type_registry()
    t0 = time.perf_counter()
    digest = registry.get_hash(array)
    wall = time.perf_counter() - t0
    return {"wall": wall, "bytes": size, "value": digest[:16]}


def stat_files(count: int, workdir: str, **_: Any) -> dict[str, Any]:
    """redun ``File(path).hash`` (stat-based) for ``count`` small files."""
    paths = data.make_small_files(workdir, count)
    t0 = time.perf_counter()
    hashes = {File(p).hash for p in paths}
    wall = time.perf_counter() - t0
    return {"wall": wall, "files": count, "value": len(hashes)}
