"""`Scheduler`: configure executors and a store, then evaluate expressions.

The scheduler owns the long-lived parts (executor pools, the store connection) and, per
`run`, an `Evaluator` for the expression and a `StoreWriter` for its records. The
execution row is written first, so even a run killed with ``kill -9`` appears in
``lazyflow log`` with the jobs that completed.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from .errors import ExecutorError, RunCancelled
from .evaluator import Evaluator
from .events import Decision, JobEvent, RunSummary
from .executors import Executor, ProcessExecutor, ThreadExecutor
from .expression import CallExpression

log = logging.getLogger("lazyflow.scheduler")

Listener = Callable[[JobEvent], None]
_BUILTIN = ("threads", "processes")


def _builtin_executor(name: str, max_workers: int | None) -> Executor:
    return ThreadExecutor(max_workers) if name == "threads" else ProcessExecutor(max_workers)


class Scheduler:
    """Evaluates lazy expressions with caching and provenance.

    ``Scheduler(db=None, executor="threads", max_workers=None, executors=None)``: `db` is a
    SQLAlchemy URL or a `Store` (None: ``LAZYFLOW_DB`` or ``.lazyflow/lazyflow.db``);
    `executor` is ``"threads"``, ``"processes"`` or an `Executor`; `executors` names
    extra executors for ``@task(executor=...)``; `limits` caps concurrent jobs per
    resource name for ``@task(limits=...)``; `listeners` receive a `JobEvent` per job
    transition.
    """

    def __init__(
        self,
        db: Any = None,
        executor: str | Executor = "threads",
        max_workers: int | None = None,
        executors: Mapping[str, str | Executor] | None = None,
        limits: Mapping[str, int] | None = None,
        listeners: list[Listener] | None = None,
    ) -> None:
        self._db = db
        self._store: Any = None
        self.max_workers = max_workers
        self.executors: dict[str, Executor] = {}
        for name, value in (executors or {}).items():
            if isinstance(value, str):
                if value not in _BUILTIN:
                    raise ExecutorError(
                        f"executors[{name!r}] = {value!r} is not a known executor; use "
                        f"'threads', 'processes' or an Executor instance."
                    )
                self.executors[name] = _builtin_executor(value, max_workers)
            elif isinstance(value, Executor):
                self.executors[name] = value
            else:
                raise ExecutorError(
                    f"executors[{name!r}] = {value!r} is not an Executor; pass 'threads', "
                    "'processes' or an instance of lazyflow_core.executors.Executor."
                )
        for name in _BUILTIN:
            if name not in self.executors:
                self.executors[name] = _builtin_executor(name, max_workers)
        if isinstance(executor, Executor):
            self.default_executor = getattr(executor, "name", None) or "default"
            self.executors[self.default_executor] = executor
        elif executor in self.executors:
            self.default_executor = executor
        else:
            raise ExecutorError(
                f"Scheduler(executor={executor!r}): unknown executor. Use 'threads', "
                "'processes', one of the names in executors= "
                f"({', '.join(sorted(self.executors))}), or an Executor instance."
            )
        self.limits = dict(limits or {})
        self.listeners = list(listeners or [])
        self.last_run: RunSummary | None = None
        self._current: Evaluator | None = None
        self._lock = threading.Lock()

    @property
    def store(self) -> Any:
        """The `Store`, opened (and migrated) on first use."""
        if self._store is None:
            from .store import open_store

            store = open_store(self._db)
            store.ensure_schema()
            self._store = store
        return self._store

    def run(self, expr: Any, *, cache: bool = True, tags: Mapping[str, Any] | None = None) -> Any:
        """Evaluate `expr` and return its plain value.

        ``cache=False`` reads nothing from the cache (results are still recorded).
        `tags` are stored on the execution (``lazyflow log --tag key=value`` finds it).
        """
        store = self.store
        writer = store.writer()
        execution_id = uuid.uuid4().hex
        root_task = expr.task.name if isinstance(expr, CallExpression) else None
        writer.put(
            "execution",
            (
                execution_id,
                time.time(),
                "running",
                root_task,
                " ".join(sys.argv)[:2000],
                socket.gethostname(),
                os.getpid(),
                0,
                0,
                0,
                0,
            ),
        )
        for key, value in (tags or {}).items():
            writer.put("tag", (execution_id, str(key), str(value)))
        ev = Evaluator(
            execution_id=execution_id,
            executors=self.executors,
            default_executor=self.default_executor,
            store=store,
            writer=writer,
            use_cache=cache,
            listeners=self.listeners,
            limits=self.limits,
        )
        summary = ev.summary
        with self._lock:
            self._current = ev
        started = time.perf_counter()
        status = "failed"
        try:
            value = ev.evaluate(expr)
            status = "done"
            if ev.root_call is not None and ev.root_call.digest is not None:
                summary.result_hash = ev.root_call.digest.hex()
            return value
        except RunCancelled as exc:
            status = "cancelled"
            summary.error = str(exc)
            for executor in self.executors.values():
                executor.shutdown(cancel=True)
            raise
        except BaseException as exc:
            summary.error = f"{type(exc).__name__}: {exc}"
            if not isinstance(exc, Exception):
                # Interrupted (Ctrl-C, an orchestrator's timeout): jobs may still be
                # running; stop them rather than leave them behind.
                status = "cancelled"
                for executor in self.executors.values():
                    executor.shutdown(cancel=True)
            raise
        finally:
            with self._lock:
                self._current = None
            summary.status = status
            summary.seconds = time.perf_counter() - started
            root_hash = ev.root_call.call_hash if ev.root_call is not None else None
            writer.put(
                "execution_end",
                (
                    time.time(),
                    status,
                    root_hash,
                    summary.result_hash,
                    summary.jobs,
                    summary.cached,
                    summary.executed,
                    summary.failed,
                    summary.error,
                    execution_id,
                ),
            )
            writer.close()
            for err in writer.errors:
                log.error(
                    "lazyflow: some records of execution %s were not stored: %s", execution_id, err
                )
            self.last_run = summary

    def explain(self, expr: Any, *, cache: bool = True) -> list[Decision]:
        """Dry run: which calls would be reused and which would run, and why.

        Executes no task. Cached results are loaded so evaluation can continue past
        them; where a call would run, everything that needs its result is reported as
        ``unknown`` (``needs_result``). Nothing is written to the store.
        """
        ev = Evaluator(
            execution_id=uuid.uuid4().hex,
            executors=self.executors,
            default_executor=self.default_executor,
            store=self.store,
            writer=None,
            use_cache=cache,
            listeners=[],
            limits=self.limits,
            dry_run=True,
        )
        ev.evaluate(expr)
        return ev.decisions

    def cancel(self) -> None:
        """Stop the running `run` (thread-safe): it raises `RunCancelled`."""
        with self._lock:
            ev = self._current
        if ev is not None:
            ev.cancel()

    def close(self, *, cancel: bool = False) -> None:
        """Shut down executor pools and the store connection.

        With `cancel`, queued jobs are dropped and worker processes are stopped instead
        of waiting for running jobs to finish.
        """
        for executor in self.executors.values():
            executor.shutdown(cancel=cancel)
        if self._store is not None and (self._db is None or isinstance(self._db, str)):
            self._store.close()  # only a store this scheduler opened itself

    def __enter__(self) -> Scheduler:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_default_schedulers: dict[str, Scheduler] = {}


def run(expr: Any, *, cache: bool = True, tags: Mapping[str, Any] | None = None) -> Any:
    """Evaluate `expr` with a default scheduler (store from ``LAZYFLOW_DB`` or ``.lazyflow/``)."""
    from .store import resolve_db_url

    url = resolve_db_url(None)
    if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
        url = "sqlite:///" + os.path.abspath(url[len("sqlite:///") :])
    scheduler = _default_schedulers.get(url)
    if scheduler is None:
        scheduler = _default_schedulers[url] = Scheduler(db=url)
    return scheduler.run(expr, cache=cache, tags=tags)
