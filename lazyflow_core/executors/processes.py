"""Process-pool executor: tasks run in other processes (true CPU parallelism).

Workers start with ``spawn``: forking a process that runs threads (the scheduler, the
store writer) is unsafe. A spawned worker is a new interpreter that imports
``lazyflow_core`` and the modules its tasks live in before it runs anything: 0.1-0.5 s
of CPU, more than a thousand tiny jobs need. Hence:

- Workers start as the work warrants (`ProcessExecutor`): as many as the first jobs
  sent together, more only when the jobs in flight are measured (or seen) to be long
  enough to pay for a worker's start-up. A fan-out of tiny jobs stays on the worker
  that is already warm instead of having a second interpreter import lazyflow on the
  CPU the scheduler needs.
- A worker imports the modules of the first jobs' tasks as soon as it starts
  (`_preload`), before it takes a job off the queue, so a late worker does not sit on
  jobs while it imports.
- Jobs travel in batches sized by the measured run time of their task (`BATCH_SECONDS`
  per message; `MAX_BATCH` jobs while unmeasured), so tiny jobs share the cost of a
  message and long ones spread over the workers. Each batch is pickled with cloudpickle
  (lambdas, closures and tasks defined in scripts work) in the pool's feeder thread,
  never on the scheduler thread (`_Batch` pickles itself when the pool pickles it).

Failures stay with the jobs they belong to:

- a batch is unpickled by the worker inside `_run_batch`, so a task whose module does
  not import there fails its jobs instead of killing the worker; an argument that does
  not pickle fails its own job only;
- each outcome comes back as a tuple of plain values the pool pickles at C speed, with
  the task's value as the bytes the worker already pickled for the store and the error
  as bytes of its own: a value or exception that does not unpickle in the scheduler
  fails its job only. They are unpickled in the pool's callback thread;
- a worker that dies fails the jobs of its pool with `BrokenProcessPool`, as the
  standard library does; later jobs (retries, the next run) get a new pool.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import importlib
import io
import logging
import math
import multiprocessing
import os
import pickle
import sys
import threading
import time
import traceback
from collections import ChainMap
from collections.abc import Iterable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

import cloudpickle

from ..expression import CallExpression
from .base import Executor, JobOutcome, JobSpec, run_job

log = logging.getLogger("lazyflow.executors")

BATCH_SECONDS = 0.01
"""Run time of the jobs sent to a worker in one message (as measured per task)."""

MAX_BATCH = 32
"""Jobs per message while their task's run time is unknown."""

MAX_BATCH_JOBS = 1024
"""Most jobs sent to a worker in one message, however short."""

# -- pickling -------------------------------------------------------------------------


def _own_pickling(cls: type) -> bool:
    """Whether `cls` (or a base other than `object`) says how it pickles."""
    names = ("__reduce__", "__reduce_ex__", "__getstate__", "__getnewargs_ex__")
    return any(n in vars(c) for c in cls.__mro__[:-1] for n in names)


def _reduce_call(expr: CallExpression) -> tuple[Any, ...]:
    return (CallExpression, (expr.task, expr.args, expr.kwargs))


_SPEC_FIELDS = tuple(f.name for f in dataclasses.fields(JobSpec))


def _reduce_spec(spec: JobSpec) -> tuple[Any, ...]:
    return (JobSpec, tuple(getattr(spec, name) for name in _SPEC_FIELDS))


# Objects that cross the boundary by the thousand get a reducer that rebuilds them by a
# plain constructor call. A slotted object without one pickles through the generic state
# protocol, several times slower both ways (the expressions of a big fan-out returned by
# a task; JobSpec's generated __getstate__ is Python code). A class that defines its own
# pickling keeps it.
_FAST: dict[type, Any] = {}
if not _own_pickling(CallExpression):
    _FAST[CallExpression] = _reduce_call
if all(f.init for f in dataclasses.fields(JobSpec)):
    _FAST[JobSpec] = _reduce_spec


class _Pickler(cloudpickle.Pickler):
    """cloudpickle with the `_FAST` reducers."""

    dispatch_table = ChainMap(_FAST, cloudpickle.Pickler.dispatch_table)


def _dumps(obj: Any) -> bytes:
    buf = io.BytesIO()
    _Pickler(buf, protocol=pickle.HIGHEST_PROTOCOL).dump(obj)
    return buf.getvalue()


def _picklable(exc: BaseException) -> BaseException:
    """`exc` if it pickles, else a RuntimeError carrying its type and message."""
    try:
        pickle.dumps(exc, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:
        return RuntimeError(f"{type(exc).__name__}: {exc}")
    return exc


def _same(obj: Any) -> Any:
    """Unpickles `_Batch`: the parts are already plain data."""
    return obj


# A part of a batch: (number of jobs, their pickled specs), or one job that could not be
# pickled, as the exception that says why.
_Part = tuple[int, bytes] | BaseException


class _Batch:
    """Jobs for one message; pickles itself when (and where) the pool pickles it.

    That is in the pool's feeder thread, so cloudpickling the jobs never costs the
    scheduler thread. The specs are pickled into bytes of their own, unpickled by the
    worker inside `_run_batch`: an import error there fails the batch's jobs, where
    unpickling in the pool's own receive step would kill the worker and break the pool.
    """

    __slots__ = ("specs",)

    def __init__(self, specs: list[JobSpec]) -> None:
        self.specs = specs

    def __reduce__(self) -> tuple[Any, ...]:
        parts: list[_Part]
        try:
            parts = [(len(self.specs), _dumps(self.specs))]
        except Exception:
            parts = [self._one(spec) for spec in self.specs]  # find the job(s) at fault
        return (_same, (parts,))

    @staticmethod
    def _one(spec: JobSpec) -> _Part:
        try:
            return (1, _dumps([spec]))
        except Exception as exc:
            return _picklable(exc)


# -- worker side ------------------------------------------------------------------------

# What a worker sends back per job, all plain values: (pickled error, remote traceback,
# digest, pickled value, data_error, has_expressions, files, started, finished).
_Wire = tuple[
    bytes | None,
    str | None,
    bytes | None,
    bytes | None,
    str | None,
    bool,
    list[tuple[str, bool, str | None]],
    float,
    float,
]


def _error_wire(
    exc: BaseException,
    remote_traceback: str | None = None,
    started: float = 0.0,
    finished: float = 0.0,
) -> _Wire:
    try:
        blob = pickle.dumps(exc, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:
        blob = pickle.dumps(RuntimeError(f"{type(exc).__name__}: {exc}"))
    return (blob, remote_traceback, None, None, None, False, [], started, finished)


def _run_remote(spec: JobSpec) -> _Wire:
    out = run_job(spec)
    if out.error is not None:
        return _error_wire(out.error, out.remote_traceback, out.started, out.finished)
    data = out.data
    if out.has_expressions or data is None:
        # Expressions (or values std-pickle cannot handle) go back by cloudpickle.
        try:
            data = _dumps(out.value)
        except Exception as exc:
            error = TypeError(
                f"task {spec.task.name!r} returned {type(out.value).__name__}, which cannot "
                f"be sent back from a worker process ({exc}). Return picklable values, "
                'or run this task with executor="threads".'
            )
            return _error_wire(error, None, out.started, out.finished)
    return (
        None,
        None,
        out.digest,
        data,
        out.data_error,
        out.has_expressions,
        out.files,
        out.started,
        out.finished,
    )


_READY_AT = 0.0
"""In a worker: when `_preload` finished (time.time())."""

# What a worker sends back per batch: its pid, when it became ready, an outcome per job.
_Reply = tuple[int, float, list[_Wire]]


def _run_batch(parts: list[_Part]) -> _Reply:
    """Worker side: run a batch's jobs, one outcome per job, in order."""
    results: list[_Wire] = []
    for part in parts:
        if isinstance(part, BaseException):
            results.append(_error_wire(part))
            continue
        count, blob = part
        try:
            specs: list[JobSpec] = pickle.loads(blob)
        except Exception as exc:  # e.g. a task's module does not import in the worker
            tb = "".join(traceback.format_exception(exc))
            results.extend(_error_wire(exc, tb) for _ in range(count))
            continue
        results.extend(_run_remote(spec) for spec in specs)
    return os.getpid(), _READY_AT, results


def _preload(modules: tuple[str, ...]) -> None:
    """Worker initializer: import the modules of the first jobs' tasks right away.

    A worker would import them anyway with its first job (to unpickle the task), but
    it would hold that job, and the jobs batched with it, while it imports; importing
    first, it takes jobs off the shared queue only once it can run them at once, and
    workers started together import in parallel. A module that fails to import is left
    for its jobs to report.
    """
    global _READY_AT
    for name in modules:
        with contextlib.suppress(Exception):
            importlib.import_module(name)
    _READY_AT = time.time()


# -- scheduler side ---------------------------------------------------------------------

GROW_AFTER_SECONDS = 0.5
"""Jobs waiting and none finished for this long: they are slow, start more workers."""

WORKER_START_SECONDS = 0.5
"""Assumed start-up time of a worker (interpreter, imports) until one has been measured."""

_POOL_INTERNALS = (
    "_max_workers",
    "_processes",
    "_spawn_process",
    "_shutdown_lock",
    "_broken",
    "_shutdown_thread",
    "_executor_manager_thread_wakeup",
)


def _unpack(wires: list[_Wire], futures: list[Future[JobOutcome]]) -> None:
    """Runs in the pool's callback thread: unpickle results off the scheduler thread."""
    for wire, fut in zip(wires, futures, strict=True):
        err, tb, digest, data, data_error, has_expressions, files, started, finished = wire
        out = JobOutcome(
            remote_traceback=tb,
            digest=digest,
            data=data,
            data_error=data_error,
            has_expressions=has_expressions,
            files=files,
            started=started,
            finished=finished,
        )
        try:
            if err is not None:
                out.error = pickle.loads(err)
            elif data is not None:
                out.value = pickle.loads(data)
                if has_expressions:
                    out.data = None  # not a value for the store
        except BaseException as exc:  # the result did not unpickle here
            out = JobOutcome(error=exc)
        fut.set_result(out)


def _task_modules(specs: Iterable[JobSpec]) -> tuple[str, ...]:
    """Modules a worker will import to unpickle these jobs' tasks (by reference)."""
    names: dict[str, None] = {}
    for spec in specs:
        name = getattr(spec.task.func, "__module__", None)
        if not isinstance(name, str) or name == "__main__" or name in names:
            continue
        if getattr(sys.modules.get(name), "__spec__", None) is not None:
            names[name] = None
    return tuple(names)


class ProcessExecutor(Executor):
    """Runs jobs in a pool of worker processes, started as the work warrants.

    `max_workers` is a ceiling. The pool starts as many workers as the first jobs sent
    to it (up to the ceiling): jobs sent together can run in parallel, and nothing is
    known yet about how long they take. Later workers start only when they can pay for
    their start-up (`WORKER_START_SECONDS`, then as measured): when the measured run time
    of the jobs in flight, per running worker, is more than twice that, or when jobs
    wait and none has finished for `GROW_AFTER_SECONDS` (their run time is unknown but
    long). A thousand tiny jobs behind one task that returns them are thus run by the one
    worker that is already warm, rather than by a second worker that would spend more
    CPU importing than the jobs need, taking it from the scheduler on a busy machine.
    Growing relies on `ProcessPoolExecutor` internals; on a Python whose pool lacks them,
    the pool starts workers on demand as the standard library does.
    """

    name = "processes"

    def __init__(self, max_workers: int | None = None) -> None:
        self.max_workers = max_workers or os.cpu_count() or 1
        self._pool: ProcessPoolExecutor | None = None
        self._buffer: list[tuple[JobSpec, Future[JobOutcome]]] = []
        self._buffered = 0.0  # expected run time of the jobs in `_buffer`
        # Bookkeeping for starting workers, shared with the pool's callback thread and
        # the watcher thread; guarded by `_cond`.
        self._cond = threading.Condition()
        self._growable = False  # `_pool` exposes the internals `_grow` needs
        self._watching = False  # a `_watch` thread runs for `_pool`
        self._workers = 0  # worker processes started for `_pool` (when growable)
        self._inflight: dict[str, int] = {}  # task name -> jobs sent, not yet finished
        self._jobs = 0  # sum of `_inflight`
        self._runtime: dict[str, tuple[int, float]] = {}  # task name -> (jobs, seconds)
        # Monotonic time a batch last finished, workers started or jobs began to wait.
        self._progress = 0.0
        self._fresh = False  # `_pool` has not been sent a job yet
        self._spawned: dict[int, float] = {}  # pid -> time.time() it was started
        self._startup = WORKER_START_SECONDS  # seconds, last measured

    def start(self, preload: tuple[str, ...] = (), workers: int = 1) -> None:
        """Start the pool with `workers` processes (more start as the work warrants); they
        import the `preload` modules first. Optional: `flush` starts the pool if needed,
        but starting it ahead (say, while a store opens) hides some of its start-up."""
        if self._pool is not None:
            return
        pool = ProcessPoolExecutor(
            self.max_workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_preload,
            initargs=(preload,),
        )
        with self._cond:
            self._pool = pool
            self._growable = all(hasattr(pool, name) for name in _POOL_INTERNALS)
            self._inflight = {}
            self._jobs = 0
            self._workers = 0
            self._progress = time.monotonic()
            self._fresh = True
            self._spawned = {}
        if self._growable:
            self._grow(pool, min(self.max_workers, max(workers, 1)))
        # else: the standard library's on-demand start, up to max_workers

    def submit(self, spec: JobSpec) -> Future[JobOutcome]:
        """Buffer the job; `flush` sends buffered jobs to the workers in batches.

        A long stream of submissions is sent as it builds up, once there is enough
        for two full batches per worker, so the workers start while the scheduler is
        still submitting.
        """
        outer: Future[JobOutcome] = Future()
        self._buffer.append((spec, outer))
        self._buffered += self._cost(spec.task.name)
        if self._buffered >= 2 * BATCH_SECONDS * self.max_workers * 0.999:
            self.flush()
        return outer

    def _cost(self, name: str) -> float:
        """Expected run time of a job of task `name`, in a worker (read without the lock:
        a stale figure only changes how jobs are batched)."""
        ran = self._runtime.get(name)
        if ran is None:
            return BATCH_SECONDS / MAX_BATCH
        return max(ran[1] / ran[0], BATCH_SECONDS / MAX_BATCH_JOBS)

    def flush(self) -> None:
        """Send buffered jobs: one message per batch, so tiny jobs share the IPC cost.

        A batch holds about `BATCH_SECONDS` of measured run time: a task measured to
        take microseconds goes hundreds of calls to a message, one taking seconds goes
        alone, so work spreads evenly and results come back soon. Jobs of a task not
        measured yet count as 1/`MAX_BATCH` of that. Batches are smaller when there is
        little work, so that every worker gets some (two batches per worker).
        """
        if not self._buffer:
            return
        jobs, self._buffer = self._buffer, []
        self._buffered = 0.0
        if self._pool is None:
            self.start(_task_modules(spec for spec, _ in jobs), workers=len(jobs))
        elif self._fresh and self._growable and self._workers < len(jobs):
            # The first jobs, sent together: they can run in parallel, and nothing is
            # known about how long they take.
            self._grow(self._pool, min(self.max_workers, len(jobs)))
        self._fresh = False
        costs = [self._cost(spec.task.name) for spec, _ in jobs]
        # (a hair under, so that float rounding does not spill a job into the next batch)
        target = min(BATCH_SECONDS, sum(costs) / (2 * self.max_workers)) * 0.999
        start, cost = 0, 0.0
        for i, job_cost in enumerate(costs):
            cost += job_cost
            if cost >= target or i + 1 - start >= MAX_BATCH_JOBS or i + 1 == len(jobs):
                batch = jobs[start : i + 1]
                self._send([spec for spec, _ in batch], [fut for _, fut in batch])
                start, cost = i + 1, 0.0

    def _send(self, specs: list[JobSpec], futures: list[Future[JobOutcome]]) -> None:
        """Submit one batch; a pool broken by a crashed worker is replaced first."""
        pool = self._pool
        assert pool is not None  # for mypy: flush started it
        names = [spec.task.name for spec in specs]
        watch = False
        with self._cond:
            if self._jobs <= self._workers:
                self._progress = time.monotonic()  # jobs begin to wait now, not before
            for name in names:
                self._inflight[name] = self._inflight.get(name, 0) + 1
            self._jobs += len(names)
            if (
                self._growable
                and not self._watching
                and self._workers < min(self.max_workers, self._jobs)
            ):
                self._watching = watch = True
        if watch:
            try:
                threading.Thread(
                    target=self._watch, args=(pool,), name="lazyflow-pool-watch", daemon=True
                ).start()
            except RuntimeError:  # no thread to spare: the pool keeps the workers it has
                with self._cond:
                    self._watching = False
        try:
            inner = pool.submit(_run_batch, _Batch(specs))  # type: ignore[arg-type]
        except BrokenProcessPool:
            # A worker died (its jobs failed with this error): later jobs, such as
            # retries, get a new pool rather than the same error forever.
            self._drop_pool(pool)
            pool.shutdown(wait=False)
            self.start(_task_modules(specs), workers=len(specs))
            self._fresh = False
            self._send(specs, futures)
            return
        inner.add_done_callback(
            functools.partial(self._finished, pool=pool, futures=futures, names=names)
        )

    def _finished(
        self,
        done: Future[_Reply],
        pool: ProcessPoolExecutor,
        futures: list[Future[JobOutcome]],
        names: list[str],
    ) -> None:
        """Pool callback thread: book the batch, then resolve its jobs' futures."""
        try:
            pid, ready_at, wires = done.result()
        except BaseException as exc:  # the worker died, or the batch did not pickle
            self._book(pool, names, [])
            for fut in futures:
                fut.set_result(JobOutcome(error=exc))
            return
        self._book(pool, names, wires, pid, ready_at)
        try:
            _unpack(wires, futures)
        except BaseException as exc:  # never leave a job without an outcome: runs would hang
            for fut in futures:
                if not fut.done():
                    fut.set_result(JobOutcome(error=exc))

    def _book(
        self,
        pool: ProcessPoolExecutor,
        names: list[str],
        wires: list[_Wire],
        pid: int = 0,
        ready_at: float = 0.0,
    ) -> None:
        """Jobs `names` of `pool` are no longer in flight; record the run times in
        `wires`, and how long worker `pid` took to start (interpreter, lazyflow, the
        tasks' modules) if it is its first batch."""
        with self._cond:
            spawned = self._spawned.pop(pid, None)
            if spawned is not None and ready_at:
                self._startup = max(0.05, ready_at - spawned)
            for name, wire in zip(names, wires, strict=False):
                started, finished = wire[7], wire[8]
                if not finished:
                    continue
                count, seconds = self._runtime.get(name, (0, 0.0))
                self._runtime[name] = (count + 1, seconds + finished - started)
            if pool is not self._pool:
                return  # a pool since replaced: its jobs are not counted any more
            for name in names:
                left = self._inflight.get(name, 0) - 1
                if left > 0:
                    self._inflight[name] = left
                else:
                    self._inflight.pop(name, None)
            self._jobs = max(0, self._jobs - len(names))
            self._progress = time.monotonic()

    def _wanted(self) -> int:
        """How many workers the jobs in flight warrant (call with `_cond` held)."""
        workers, jobs = self._workers, self._jobs
        if workers >= self.max_workers or jobs <= workers:
            return workers
        if time.monotonic() - self._progress > GROW_AFTER_SECONDS:
            return min(self.max_workers, jobs)  # none finished lately: the jobs are long
        known = 0.0
        for name, count in self._inflight.items():
            ran = self._runtime.get(name)
            if ran is not None:
                known += count * ran[1] / ran[0]
        budget = 2 * self._startup
        if known <= budget * workers:
            return workers
        return min(self.max_workers, jobs, math.ceil(known / budget))

    def _watch(self, pool: ProcessPoolExecutor) -> None:
        """Watcher thread: start workers while jobs wait for one; exit when none wait.

        It lives only while jobs wait, so it never keeps an unused pool alive.
        """
        while True:
            with self._cond:
                if self._pool is pool and self._workers < min(self.max_workers, self._jobs):
                    self._cond.wait(GROW_AFTER_SECONDS / 2)
                if self._pool is not pool or self._workers >= min(self.max_workers, self._jobs):
                    self._watching = self._watching and self._pool is not pool
                    return
                wanted = self._wanted()
            if wanted > self._workers:
                self._grow(pool, wanted)

    def _grow(self, pool: ProcessPoolExecutor, workers: int) -> None:
        """Have `pool` run `workers` processes, starting the missing ones now.

        Setting the pool's private worker limit keeps it from starting processes on its
        own (it starts one per job submitted while none is idle); its manager thread is
        woken so that it watches the new processes for crashes.
        """
        p: Any = pool
        failure: Exception | None = None
        with p._shutdown_lock:
            if p._broken or p._shutdown_thread:
                return
            p._max_workers = max(workers, 1)
            try:
                while len(p._processes) < p._max_workers:
                    before, now = set(p._processes), time.time()
                    p._spawn_process()
                    with self._cond:
                        self._spawned.update(dict.fromkeys(set(p._processes) - before, now))
            except Exception as exc:  # e.g. out of processes: keep the workers there are
                failure = exc
                p._max_workers = max(len(p._processes), 1)
            finally:
                if getattr(p, "_executor_manager_thread", None) is not None:
                    p._executor_manager_thread_wakeup.wakeup()
            started = len(p._processes)
        with self._cond:
            if self._pool is pool:
                self._workers = started
                self._progress = time.monotonic()
                if failure is not None:
                    self._growable = False
        if failure is not None:
            if not started:
                raise failure  # no worker at all: the jobs cannot run
            log.warning("lazyflow: could not start more worker processes: %s", failure)

    def _drop_pool(self, pool: ProcessPoolExecutor) -> None:
        with self._cond:
            if self._pool is pool:
                self._pool = None
                self._watching = False
                self._cond.notify_all()  # its watcher exits

    def shutdown(self, *, cancel: bool = False) -> None:
        if not cancel:
            self.flush()
        self._buffer = []
        self._buffered = 0.0
        pool = self._pool
        if pool is None:
            return
        self._drop_pool(pool)
        if cancel:
            for proc in list(getattr(pool, "_processes", {}).values()):
                proc.terminate()
        pool.shutdown(wait=True, cancel_futures=cancel)
