"""`Scheduler`: configure executors and a store, then evaluate expressions.

The scheduler owns the long-lived parts (executor pools, the store connection) and, per
`run`, an `Evaluator` for the expression and a `StoreWriter` for its records. The
execution row is written first, so even a run killed with ``kill -9`` appears in
``lazyflow log`` with the jobs that completed.
"""

from __future__ import annotations

import inspect
import logging
import os
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .autotags import GitTagger, host_tags
from .codehash import new_epoch
from .config import find_config
from .dedup import LEASE_SECONDS, StoreDedup
from .errors import ConfigError, ExecutorError, LazyflowError, RunCancelled, StoreError
from .evaluator import Evaluator
from .events import Decision, JobEvent, RunSummary
from .executors import Executor, InlineExecutor, ProcessExecutor, ThreadExecutor
from .executors.configured import ConfiguredExecutor
from .explain import DryRunPolicy
from .expression import CallExpression
from .files import set_content_hash_limit
from .records import ExecutionEndRecord, ExecutionRecord, TagRecord
from .sigterm import TermGuard

log = logging.getLogger("lazyflow.scheduler")

Listener = Callable[[JobEvent], None]
_BUILTIN = ("threads", "processes", "inline")


def _named_executor(
    name: str,
    value: str | Executor,
    configured: Mapping[str, Executor],
    max_workers: int | None,
) -> Executor:
    """The executor ``Scheduler(executors={name: value})`` names: a config file's, a
    built-in one by name, or an `Executor` given as is."""
    if isinstance(value, Executor):
        return value
    if not isinstance(value, str):
        raise ExecutorError(
            f"executors[{name!r}] = {value!r} is not an Executor; pass 'threads', "
            "'processes' or an instance of lazyflow_core.executors.Executor."
        )
    if value in configured and value not in _BUILTIN:
        return configured[value]
    if value not in _BUILTIN:
        raise ExecutorError(
            f"executors[{name!r}] = {value!r} is not a known executor; use "
            "'threads', 'processes', a name from the config file "
            f"({', '.join(sorted(configured)) or 'none found'}) or an Executor."
        )
    return _builtin_executor(value, max_workers)


def _builtin_executor(name: str, max_workers: int | None) -> Executor:
    if name == "inline":
        return InlineExecutor()
    return ThreadExecutor(max_workers) if name == "threads" else ProcessExecutor(max_workers)


def _lost_records(store: Any, writer: Any, execution_id: str) -> StoreError | None:
    """The error that says how many of the run's records were not stored, if any were."""
    if not writer.lost:
        return None
    if store.read_only:
        why = "the store is read-only"
    else:
        first = writer.errors[0] if writer.errors else None
        if first is None:
            why = "writes failed"
        else:
            why = (
                str(first) if isinstance(first, StoreError) else f"{type(first).__name__}: {first}"
            )
    return StoreError(
        f"{writer.lost} record{'' if writer.lost == 1 else 's'} of execution "
        f"{execution_id[:8]} could not be stored "
        f"({why}). The run's results are right, but what they record is not cached: a re-run "
        "computes it again."
    )


def dedup_mode(dedup: str | None) -> str:
    """``"run"`` or ``"store"``: `dedup`, else the config file's ``dedup``, else "run"."""
    if dedup is None:
        config = find_config()
        dedup = (config.dedup if config is not None else None) or "run"
    if dedup not in ("run", "store"):
        raise ConfigError(
            f'Scheduler(dedup={dedup!r}): use "store" to compute each call once across the '
            'processes sharing the store, or "run" (the default) to deduplicate within a '
            "run only."
        )
    return dedup


def apply_content_hash_limit(limit: int | str | None) -> None:
    """`limit`, else the config file's ``content_hash_limit``, for this process and the
    workers it starts; neither given: the environment's or the default stays."""
    if limit is None:
        config = find_config()
        limit = config.content_hash_limit if config is not None else None
    if limit is not None:
        set_content_hash_limit(limit)


def lease_ttl(lease_seconds: float | None) -> float:
    """`lease_seconds` checked (None: `LEASE_SECONDS`)."""
    ttl = LEASE_SECONDS if lease_seconds is None else float(lease_seconds)
    if not ttl > 0:
        raise ConfigError(
            f"Scheduler(lease_seconds={lease_seconds!r}): a lease's time to live must be a "
            f"positive number of seconds (default {LEASE_SECONDS:g}); a holder whose "
            "heartbeat stopped for that long is taken over."
        )
    return ttl


def configured_executors() -> dict[str, Executor]:
    """The executors of the config file found from the current directory, not built yet."""
    config = find_config()
    if config is None:
        return {}
    return {name: ConfiguredExecutor(spec) for name, spec in config.executors.items()}


class Scheduler:
    """Evaluates lazy expressions with caching and provenance.

    ``Scheduler(db=None, executor="threads", max_workers=None, executors=None)``: `db` is a
    SQLAlchemy URL or a `Store` (None: ``LAZYFLOW_DB``, else the project's store found
    upwards from the current directory: see `config`); `executor` is ``"threads"``,
    ``"processes"``, ``"inline"`` (every job on the calling thread, one at a time), a
    name from the project's ``lazyflow.toml`` or an `Executor`;
    `executors` names extra executors for ``@task(executor=...)`` (the config file's
    executors are known by their names too); `limits` caps concurrent jobs per
    resource name for ``@task(limits=...)``; `listeners` receive a `JobEvent` per job
    transition. `signing_key` (a string, or a list, newest first) signs stored values and
    verifies them before they are unpickled (None: ``LAZYFLOW_SIGNING_KEY``, else the
    config file's ``signing_key``; see `store.signing`). With `strict_store`, a run whose
    records could not all be stored (a read-only store, a full disk) raises `StoreError`
    instead of warning. ``dedup="store"`` (None: the config file's ``dedup``, else
    ``"run"``) computes each call once across the runs sharing the store: a run leases
    the calls it computes, and waits for the calls other runs hold (`dedup`); a lease
    whose holder stopped beating for `lease_seconds` expires (`store.leases`).
    `content_hash_limit` (bytes, or text like ``"16 MiB"``; None: the config file's
    ``content_hash_limit``, else ``LAZYFLOW_CONTENT_HASH_LIMIT``, else 1 MiB): local files
    up to this size are identified by content, so a rewritten identical file changes
    nothing downstream (`files.set_content_hash_limit`: for the whole process).
    """

    def __init__(
        self,
        db: Any = None,
        executor: str | Executor = "threads",
        max_workers: int | None = None,
        executors: Mapping[str, str | Executor] | None = None,
        limits: Mapping[str, int] | None = None,
        listeners: list[Listener] | None = None,
        signing_key: str | Sequence[str] | None = None,
        strict_store: bool = False,
        dedup: str | None = None,
        lease_seconds: float | None = None,
        content_hash_limit: int | str | None = None,
    ) -> None:
        self._db = db
        apply_content_hash_limit(content_hash_limit)
        self.dedup = dedup_mode(dedup)
        self.lease_seconds = lease_ttl(lease_seconds)
        self._store: Any = None
        self._signing_key = signing_key
        self.strict_store = strict_store
        self.max_workers = max_workers
        self.executors: dict[str, Executor] = {}
        # executors the project's lazyflow.toml names (built on first use), see `config`
        configured = configured_executors()
        for name, value in (executors or {}).items():
            self.executors[name] = _named_executor(name, value, configured, max_workers)
        for name, configured_executor in configured.items():
            self.executors.setdefault(name, configured_executor)
        for name in _BUILTIN:
            if name not in self.executors:
                self.executors[name] = _builtin_executor(name, max_workers)
        if isinstance(executor, Executor):
            self.default_executor = executor.name or "default"
            self.executors[self.default_executor] = executor
        elif executor in self.executors:
            self.default_executor = executor
        else:
            raise ExecutorError(
                f"Scheduler(executor={executor!r}): unknown executor. Use 'threads', "
                "'processes', one of the names in executors= or in the config file "
                f"({', '.join(sorted(self.executors))}), or an Executor instance."
                + (
                    ""
                    if configured
                    else " No lazyflow.toml (or [tool.lazyflow] in "
                    "pyproject.toml) was found from the current directory upwards."
                )
            )
        # what close() shuts down: the executors built here (names), not objects passed in
        given = {id(v) for v in (executors or {}).values() if isinstance(v, Executor)}
        if isinstance(executor, Executor):
            given.add(id(executor))
        self._own = [ex for ex in self.executors.values() if id(ex) not in given]
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

            store = open_store(self._db, signing_key=self._signing_key)
            store.ensure_schema()
            self._store = store
        return self._store

    def run(self, expr: Any, *, cache: bool = True, tags: Mapping[str, Any] | None = None) -> Any:
        """Evaluate `expr` and return its plain value.

        ``cache=False`` reads nothing from the cache (results are still recorded).
        `tags` are stored on the execution (``lazyflow log --tag key=value`` finds it),
        over the automatic ones (`autotags`: user, host, git commit and dirty flag of the
        workflow's repository, lazyflow version).
        """
        self._warm(expr)
        store = self.store
        execution_id = uuid.uuid4().hex
        new_epoch()  # code hashes are computed afresh: the code may have changed since
        self._check_writable(store)
        writer = store.writer()
        root_task = expr.task.name if isinstance(expr, CallExpression) else None
        writer.put(
            ExecutionRecord(
                id=execution_id,
                started_at=time.time(),
                status="running",
                root_task=root_task,
                command=" ".join(sys.argv)[:2000],
                hostname=socket.gethostname(),
                pid=os.getpid(),
            )
        )
        leases = store.leases(execution_id, self.lease_seconds) if self.dedup == "store" else None
        # `lazyflow log` tells a killed run from a live one; other runs, a dead lease holder
        writer.beat(execution_id, every=None if leases is None else leases.beat_every)
        given = {str(key): str(value) for key, value in (tags or {}).items()}
        for key, value in {**host_tags(), **given}.items():
            writer.put(TagRecord(execution_id, key, value))
        git = GitTagger(  # `git status` runs while the run starts (the user's tags win)
            _workflow_dir(expr), lambda k, v: writer.put(TagRecord(execution_id, k, v)), given
        )
        ev = Evaluator(
            dedup=None
            if leases is None
            else lambda ev: StoreDedup(leases, ev.dispatcher, ev.lookups, ev.writer),
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
        guard = TermGuard(ev.cancel)  # SIGTERM: as Ctrl+C (see `sigterm`)
        try:
            guard.arm()
            value = ev.evaluate(expr)
            guard.defer()
            status = "done"
            if ev.root_call is not None and ev.root_call.digest is not None:
                summary.result_hash = ev.root_call.digest.hex()
            return value
        except RunCancelled as exc:
            guard.defer()
            status = "cancelled"
            summary.error = str(exc)
            for executor in self.executors.values():
                executor.shutdown(cancel=True)
            raise
        except BaseException as exc:
            guard.defer()
            summary.error = f"{type(exc).__name__}: {exc}"
            if not isinstance(exc, Exception) or guard.signalled:
                # Interrupted (Ctrl-C, SIGTERM, an orchestrator's timeout): jobs may still
                # be running; stop them rather than leave them behind.
                status = "cancelled"
                ev.keep_arrived()
                for executor in self.executors.values():
                    executor.shutdown(cancel=True)
            raise
        finally:
            try:
                self._record_end(ev, store, writer, status, started, git)
            finally:
                ev.release()  # its frames, and automatic collection back on (`evaluate`)
                if leases is not None:
                    leases.close()  # after the writer: every result it released is stored
                guard.close()  # a SIGTERM that came while recording takes effect now

    def _warm(self, expr: Any) -> None:
        """Let the root call's executor start what is slow to start (a process pool's
        first worker) while the run sets up; a run of a cached root pays that for
        nothing, but its pool is then warm for the next run."""
        if not isinstance(expr, CallExpression):
            return
        name = expr.task.options.executor
        executor = self.executors.get(self.default_executor if name == "default" else name)
        if executor is not None:
            executor.warm((expr.task,))

    def _record_end(
        self, ev: Evaluator, store: Any, writer: Any, status: str, started: float, git: GitTagger
    ) -> None:
        """The run is over: write its end (status, counts) and everything still queued."""
        summary = ev.summary
        with self._lock:
            self._current = None
        summary.status = status
        summary.seconds = time.perf_counter() - started
        git.join()  # its tags before the end record (a few ms into the run, as a rule)
        root_hash = ev.root_call.call_hash if ev.root_call is not None else None
        writer.put(
            ExecutionEndRecord(
                finished_at=time.time(),
                status=status,
                root_call_hash=root_hash,
                result_hash=summary.result_hash,
                jobs=summary.jobs,
                cached=summary.cached,
                executed=summary.executed,
                failed=summary.failed,
                error=summary.error,
                id=ev.execution_id,
            )
        )
        writer.close()
        summary.records_lost = writer.lost
        self.last_run = summary
        lost = _lost_records(store, writer, ev.execution_id)
        if lost is not None:
            if self.strict_store and status == "done":
                raise lost
            log.warning("lazyflow: %s", lost)

    def _check_writable(self, store: Any) -> None:
        """A run on a read-only store uses its cache but records nothing: say so first
        (with `strict_store`, refuse)."""
        if not store.read_only:
            return
        message = (
            f"the lazyflow store at {store.sqlite_path} is read-only: cached results are used, "
            "but nothing this run computes is stored (point --db / LAZYFLOW_DB at a writable "
            "store to record it)"
        )
        if self.strict_store:
            raise StoreError(message + "; refusing to run with strict_store (--strict-store)")
        log.warning("lazyflow: %s", message)

    def explain(self, expr: Any, *, cache: bool = True, values: str = "run") -> list[Decision]:
        """Dry run: which calls would be reused and which would run, and why.

        Executes no task. Cached results are loaded so evaluation can continue past
        them; where a call would run, everything that needs its result is reported as
        ``unknown`` (``needs_result``). Nothing is written to the store.

        `values` says which cached results are unpickled: ``"run"`` those a run would
        load; ``"data"`` only built-in data, `File` and `Dir` (decoded without running
        anything: what ``lazyflow explain`` does, since a shared store's pickles may be
        planted); ``"signed"`` those too and values signed with one of the store's keys
        (``lazyflow explain --values``). A cached call whose value is not loaded is
        ``cached`` with reason ``value_not_loaded``; what needs its value is unknown.
        """
        if values not in ("run", "data", "signed"):
            raise LazyflowError(
                f"explain(values={values!r}): give 'run' (what a run loads), 'data' (built-in "
                "data, File and Dir only) or 'signed' (those and signed values)"
            )
        reader: Any = self.store
        if values != "run":
            from .store.values import DryRunReader

            reader = DryRunReader(self.store, signed=values == "signed")
        dry_run = DryRunPolicy(self.store)
        new_epoch()
        ev = Evaluator(
            execution_id=uuid.uuid4().hex,
            executors=self.executors,
            default_executor=self.default_executor,
            store=reader,
            writer=None,  # a NullWriter: a dry run records nothing
            use_cache=cache,
            listeners=[],
            limits=self.limits,
            policy=lambda _ev: dry_run,
        )
        try:
            ev.evaluate(expr)
        finally:
            ev.release()
        return dry_run.decisions

    def cancel(self) -> None:
        """Stop the running `run` (thread-safe): it raises `RunCancelled`."""
        with self._lock:
            ev = self._current
        if ev is not None:
            ev.cancel()

    def close(self, *, cancel: bool = False) -> None:
        """Shut down the executors this scheduler built and the store connection.

        Executors named by a string (``"threads"``, ``"processes"``, a name from the
        config file) were built here and are shut down; with `cancel`, queued jobs are
        dropped and worker processes are stopped instead of waiting for running jobs to
        finish. An `Executor` object passed in is its creator's: it is left running (its
        warm workers, its Dask cluster) for other schedulers to use, until
        ``executor.shutdown()`` or the end of its ``with`` block. (A run that is cancelled
        or interrupted still cancels its own jobs on every executor.)
        """
        for executor in self._own:
            executor.shutdown(cancel=cancel)
        if self._store is not None and (self._db is None or isinstance(self._db, str)):
            self._store.close()  # only a store this scheduler opened itself

    def __enter__(self) -> Scheduler:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_default_schedulers: dict[str, Scheduler] = {}


def _workflow_dir(expr: Any) -> str | None:
    """The directory of the module defining the root task (its git state is the
    workflow's), else None (the current directory)."""
    if not isinstance(expr, CallExpression):
        return None
    try:
        path = inspect.getsourcefile(getattr(expr.task, "func", None))  # type: ignore[arg-type]
    except (TypeError, OSError):
        return None
    return os.path.dirname(os.path.abspath(path)) if path else None


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
