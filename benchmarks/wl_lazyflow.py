"""lazyflow workloads: the same work and values as ``wl_plain``, through the engine.

Each function times what a user waits for in a run: creating the ``Scheduler`` and
opening its store (also reported alone as ``startup``: engine, schema check), building
the expression and ``run``. Imports are once-per-process costs, measured separately
(``import_seconds``: ``lazyflow_core``, its lazily imported store module, and for
PostgreSQL the driver). Store queries are counted with a SQLAlchemy
``before_cursor_execute`` listener on ``Scheduler.store.engine`` (schema checks,
provenance queries) plus ``Store.statements`` (cache lookups and the writers' batches,
sent on raw DB-API connections that SQLAlchemy's events do not see, some of them by the
writer process); the run summary (``Scheduler.last_run``) gives jobs, cached and executed
counts, which the runner checks.
"""

from __future__ import annotations

import contextlib
import importlib
import multiprocessing
import os
import sys
import time
from typing import Any

_t0 = time.perf_counter()
from lazyflow_core import task  # noqa: E402

# The scheduler and the store module (SQLAlchemy under it) are imported lazily by the
# first Scheduler; like ``import lazyflow_core`` they are a once-per-process cost, so they
# are paid (and reported as ``import_seconds``) here, outside the timed runs. Not in
# process-pool workers (lazyflow's own, started with ``subprocess``, or multiprocessing's):
# they import this module to unpickle its tasks, and a user's task module does not make
# them import the scheduler and SQLAlchemy either (workers never open the store).
_WORKER = (
    multiprocessing.parent_process() is not None
    or "lazyflow_core.executors.process_worker" in sys.modules
)
if not _WORKER:
    from lazyflow_core import Scheduler

    with contextlib.suppress(ImportError):
        importlib.import_module("lazyflow_core.store")
IMPORT_SECONDS = time.perf_counter() - _t0

from benchmarks import data, pg  # noqa: E402


@task
def inc(x: int) -> int:
    return x + 1


@task
def total(xs: list[int]) -> int:
    return sum(xs)


@task
def main(n: int):  # type: ignore[no-untyped-def]
    """The fan-out workflow: ``total([inc(i) for i in range(n)])`` built inside a task."""
    return total([inc(i) for i in range(n)])


def db_url(workdir: str, db: str = "sqlite", fresh: bool = False) -> str:
    """The store of a case: a SQLite file in its work directory, or a PostgreSQL schema."""
    if db == "postgres":
        schema = pg.schema_for(workdir)
        if fresh:
            pg.reset_schema(schema)
        return pg.sqlalchemy_url(schema)
    return f"sqlite:///{os.path.join(workdir, 'lazyflow.db')}"


def preload_driver(db: str) -> float:
    """Import the database driver a case's store uses; the seconds it took.

    Imports are once-per-process costs, outside the timed region, for every store alike:
    for SQLite the driver (``sqlite3``) and its SQLAlchemy dialect come with the store
    module above; for PostgreSQL, psycopg and its dialect (~0.15-0.2 s) would otherwise be
    imported by the first ``create_engine`` inside the timed start-up.
    """
    if db != "postgres":
        return 0.0
    t0 = time.perf_counter()
    for module in ("psycopg", "sqlalchemy.dialects.postgresql.psycopg"):
        with contextlib.suppress(ImportError):
            importlib.import_module(module)
    return time.perf_counter() - t0


def store_engine(scheduler: Any) -> Any:
    """The SQLAlchemy engine behind a scheduler's store (None if it has none).

    A store on a plain SQLite file or a ``postgresql+psycopg://`` URL builds its engine
    (and imports SQLAlchemy, ~0.1 s) only to create or migrate the schema or for
    provenance queries; asking for ``store.engine`` here would build it inside the
    timed start-up, so such a store's engine is taken only if it exists already (its
    DB-API statements are counted by ``Store.statements`` either way).
    """
    store = getattr(scheduler, "store", None)
    if getattr(store, "file", None) is not None or getattr(store, "server", None) is not None:
        engines = getattr(store, "_engines", [])
        return engines[0] if engines else None
    for owner in (store, getattr(store, "metadata", None), scheduler):
        engine = getattr(owner, "engine", None)
        if engine is not None:
            return engine
    return None


def count_queries(scheduler: Any) -> list[int]:
    """A one-item list that counts statements sent to the store from now on, through
    SQLAlchemy; `queries_since` adds the store's own DB-API statements."""
    counter = [0]
    engine = store_engine(scheduler)
    store = getattr(scheduler, "store", None)
    if engine is None:
        statements = getattr(store, "statements", None)
        return [-1] if statements is None else [0, statements]
    counter.append(getattr(store, "statements", 0))
    from sqlalchemy import event

    def _on_execute(*_args: Any) -> None:
        counter[0] += 1

    event.listen(engine, "before_cursor_execute", _on_execute)
    return counter


def queries_since(scheduler: Any, counter: list[int]) -> int:
    """Statements sent since `count_queries`: SQLAlchemy's and the store's own."""
    if counter[0] == -1:
        return -1
    own = getattr(getattr(scheduler, "store", None), "statements", 0)
    return counter[0] + own - counter[1]


def _close(scheduler: Any) -> None:
    for owner in (scheduler, getattr(scheduler, "store", None)):
        close = getattr(owner, "close", None)
        if callable(close):
            close()
            return


def _summary(scheduler: Any) -> dict[str, Any]:
    s = scheduler.last_run
    return {"jobs": s.jobs, "cached": s.cached, "executed": s.executed, "run_seconds": s.seconds}


def fanout(
    n: int,
    workdir: str,
    flat: bool = False,
    run: str = "cold",
    executor: str = "threads",
    db: str = "sqlite",
    **_: Any,
) -> dict[str, Any]:
    """``main(n)`` or the flat ``total([inc(i) ...])``; ``run`` is "cold" or "cached"."""
    url = db_url(workdir, db, fresh=run == "cold")
    import_seconds = IMPORT_SECONDS + preload_driver(db)
    t0 = time.perf_counter()
    scheduler = Scheduler(db=url, executor=executor)
    queries = count_queries(scheduler)  # opens the store
    opened = time.perf_counter() - t0
    expr = total([inc(i) for i in range(n)]) if flat else main(n)
    built = time.perf_counter() - t0
    value = scheduler.run(expr)
    wall = time.perf_counter() - t0
    calls = n + (1 if flat else 2)
    result = {
        "wall": wall,
        "calls": calls,
        "value": value,
        "queries": queries_since(scheduler, queries),
        "startup": opened,
        "build": built - opened,
        "run": wall - built,
        "import_seconds": import_seconds,
        **_summary(scheduler),
    }
    _close(scheduler)
    return result


def chain(depth: int, workdir: str, **_: Any) -> dict[str, Any]:
    """``x = inc(x)`` repeated ``depth`` times: one nested expression, cold cache."""
    t0 = time.perf_counter()
    scheduler = Scheduler(db=db_url(workdir))
    queries = count_queries(scheduler)  # opens the store
    opened = time.perf_counter() - t0
    x: Any = 0
    for _i in range(depth):
        x = inc(x)
    built = time.perf_counter() - t0
    value = scheduler.run(x)
    wall = time.perf_counter() - t0
    result = {
        "wall": wall,
        "calls": depth,
        "value": value,
        "queries": queries_since(scheduler, queries),
        "startup": opened,
        "build": built - opened,
        "run": wall - built,
        "import_seconds": IMPORT_SECONDS,
        **_summary(scheduler),
    }
    _close(scheduler)
    return result


def hash_bytes(size: int, **_: Any) -> dict[str, Any]:
    """``hash_value`` of a ``size``-byte ``bytes`` value."""
    from lazyflow_core.hashing import hash_value

    value = data.make_bytes(size)
    t0 = time.perf_counter()
    digest = hash_value(value)
    wall = time.perf_counter() - t0
    return {"wall": wall, "bytes": size, "value": digest[:16]}


def hash_numpy(size: int, **_: Any) -> dict[str, Any]:
    """``hash_value`` of a float64 NumPy array of ``size`` bytes."""
    import numpy as np

    from lazyflow_core.hashing import hash_value

    array = np.frombuffer(bytearray(data.make_bytes(size)), dtype=np.float64)
    t0 = time.perf_counter()
    digest = hash_value(array)
    wall = time.perf_counter() - t0
    return {"wall": wall, "bytes": size, "value": digest[:16]}


def hash_file(size: int, workdir: str, **_: Any) -> dict[str, Any]:
    """``File(path, content_hash=True).hash`` of a ``size``-byte file in the page cache."""
    from lazyflow_core import File

    path = data.make_file(workdir, size)
    t0 = time.perf_counter()
    digest = File(path, content_hash=True).hash
    wall = time.perf_counter() - t0
    return {"wall": wall, "bytes": size, "value": digest[:16]}


def stat_files(count: int, workdir: str, **_: Any) -> dict[str, Any]:
    """Stat-based ``File(path).hash`` for ``count`` small files."""
    from lazyflow_core import File

    paths = data.make_small_files(workdir, count)
    t0 = time.perf_counter()
    hashes = {File(p).hash for p in paths}
    wall = time.perf_counter() - t0
    return {"wall": wall, "files": count, "value": len(hashes)}
