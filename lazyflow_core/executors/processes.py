"""Process executor: tasks run in worker processes of its own (true CPU parallelism).

A worker (`process_worker`) is a fresh interpreter started with ``subprocess`` that
imports ``lazyflow_core`` and the modules its tasks live in before it runs anything:
0.1-0.5 s of CPU, more than a thousand tiny jobs need. It never imports the parent's
``__main__`` (plain scripts need no ``if __name__ == "__main__":`` guard). Hence:

- Workers start as the work warrants: as many as the first jobs sent together, more
  only when the jobs in flight are measured (or seen) to be long enough to pay for a
  worker's start-up (`_wanted`). A fan-out of tiny jobs stays on the worker that is
  already warm instead of having a second interpreter import lazyflow on the CPU the
  scheduler needs.
- A worker imports the modules of the first jobs' tasks as soon as it starts and is
  sent jobs only once it says it is ready, so a late worker does not sit on jobs while
  it imports.
- Jobs travel in batches sized by the measured run time of their task (`BATCH_SECONDS`
  per message; `MAX_BATCH` jobs while unmeasured), so tiny jobs share the cost of a
  message and long ones spread over the workers (`bundling`, shared with the Batch
  executors). Batches are pickled (`process_wire`)
  by the feeder thread, never on the scheduler thread, and handed to a ready worker
  with room: an idle one, or one whose queued work is measured to be short (a slow or
  unmeasured job waits here, where any worker that frees up can take it).
- Each job's outcome comes back as soon as it finishes (not with its batch), read and
  unpickled by the thread that started that worker: a run killed mid-batch keeps what
  its workers finished. The scheduler posts its jobs (`post`) rather than submitting
  them: the outcomes read from one pipe read reach its queue as one list, with no
  `Future` per job (a future costs more, on two threads, than a tiny job's message).

Failures stay with the jobs they belong to: an argument that does not pickle fails its
own job (`SerializationError` naming the argument); a task module that does not import
in the worker fails its batch's jobs; a value or exception that does not unpickle here
fails its job. A worker that dies fails the job it was running with `WorkerLost`; the
jobs it had not started go to another worker, a new one if needed.

Nothing outlives its run: a worker exits when its pipe from this process closes, which
the kernel does when this process dies however it dies (``kill -9`` included), and on
Linux it also gets the parent-death signal (`lifeline`). Nothing here uses
``multiprocessing``: no semaphores to leak, no resource tracker process.
"""

from __future__ import annotations

import contextlib
import logging
import marshal
import math
import os
import pickle
import subprocess
import sys
import threading
import time
from collections import Counter, deque
from collections.abc import Iterable, Sequence
from concurrent.futures import CancelledError, Future
from typing import TYPE_CHECKING, Any

from ..errors import ExecutorError, WorkerLost
from .base import Executor, JobOutcome, JobSpec, Sink
from .bundling import RunTimes, cut
from .process_wire import FrameReader, batch_payload, frame, unsendable, write_all
from .process_worker import BOOTSTRAP
from .wire import outcome

if TYPE_CHECKING:
    from ..task import Task

log = logging.getLogger("lazyflow.executors")

BATCH_SECONDS = 0.01
"""Run time of the jobs sent to a worker in one message (as measured per task)."""

MAX_BATCH = 32
"""Jobs per message while their task's run time is unknown."""

MAX_BATCH_JOBS = 1024
"""Most jobs sent to a worker in one message, however short."""

GROW_AFTER_SECONDS = 0.5
"""Jobs waiting and none finished for this long: they are slow, start more workers."""

WORKER_START_SECONDS = 0.5
"""Assumed start-up time of a worker (interpreter, imports) until one has been measured."""

PREFETCH_SECONDS = 2 * BATCH_SECONDS
"""A busy worker is sent another batch only while its queued work is measured to take
less than this (so it never waits for the next message, and slow jobs stay here)."""

STOP_SECONDS = 2.0
"""How long cancelled workers get to exit after SIGTERM before SIGKILL."""

_UNKNOWN = float("inf")


class _Posted:
    """Where the outcome of a job posted by the scheduler goes (`post`): its sink, with
    its token, once (`done`, guarded by the pool's lock); no future."""

    __slots__ = ("done", "sink", "token")

    def __init__(self, token: Any, sink: Sink) -> None:
        self.token = token
        self.sink = sink
        self.done = False


_End = Future[JobOutcome] | _Posted
"""Where a job's outcome goes: the future `submit` returned, or the sink it was posted to."""


class _Batch:
    """Jobs sent to a worker in one message: their specs, their ends and the payload."""

    __slots__ = ("cost", "ends", "payload", "specs")

    def __init__(self, specs: list[JobSpec], ends: list[_End]) -> None:
        self.specs = specs
        self.ends = ends
        self.payload: bytes | None = None
        self.cost = 0.0  # expected run time, set when assigned

    def pickle(self) -> list[tuple[JobSpec, _End, BaseException]]:
        """Pickle the jobs (feeder thread). A job that does not pickle is taken out of
        the batch and returned with its error, to fail alone."""
        try:
            blob = batch_payload(self.specs)
        except Exception:
            specs: list[JobSpec] = []
            ends: list[_End] = []
            failed: list[tuple[JobSpec, _End, BaseException]] = []
            for spec, end in zip(self.specs, self.ends, strict=True):
                try:
                    batch_payload([spec])
                except Exception as exc:
                    failed.append((spec, end, unsendable(spec, exc)))
                else:
                    specs.append(spec)
                    ends.append(end)
            self.specs, self.ends = specs, ends
            if specs:
                self.payload = frame(len(specs).to_bytes(4, "big") + batch_payload(specs))
            return failed
        self.payload = frame(len(self.specs).to_bytes(4, "big") + blob)
        return []


class _Worker:
    """One worker process, as the pool sees it (fields guarded by the pool's lock)."""

    __slots__ = (
        "batches",
        "cost",
        "done",
        "lock",
        "proc",
        "ready",
        "retiring",
        "spawned",
        "to_fd",
    )

    def __init__(self) -> None:
        self.proc: subprocess.Popen[bytes] | None = None
        self.to_fd = -1  # the pipe to the worker; -1 once closed
        self.lock = threading.Lock()  # held to write to `to_fd` or close it
        self.ready = False  # preloaded, said so: may be sent jobs
        self.retiring = False  # the pool is done with it: its end is not a crash
        self.batches: deque[_Batch] = deque()  # sent, not finished (oldest first)
        self.done = 0  # outcomes received of batches[0]
        self.cost = 0.0  # expected run time of the batches sent
        self.spawned = time.time()

    def write(self, data: bytes) -> None:
        with self.lock:
            if self.to_fd < 0:
                raise BrokenPipeError("the pipe to the worker is closed")
            write_all(self.to_fd, data)

    def close_input(self) -> None:
        """End the worker's input (it exits when it reads the end). Exactly once: a
        closed fd number may be reused by anything the process opens next."""
        with self.lock:
            if self.to_fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(self.to_fd)
                self.to_fd = -1


def _task_modules(tasks: Iterable[Task]) -> tuple[str, ...]:
    """Modules a worker will import to unpickle these tasks (by reference)."""
    names: dict[str, None] = {}
    for task in tasks:
        name = getattr(task.func, "__module__", None)
        if not isinstance(name, str) or name == "__main__" or name in names:
            continue
        if getattr(sys.modules.get(name), "__spec__", None) is not None:
            names[name] = None
    return tuple(names)


def _interpreter_flags() -> list[str]:
    """The options this interpreter was started with (-X, -W, -O...), for the workers."""
    flags = getattr(subprocess, "_args_from_interpreter_flags", None)
    return list(flags()) if flags is not None else []


def _death(code: int | None) -> str:
    if code is None:
        return "ended"
    if code < 0:
        with contextlib.suppress(ValueError):
            import signal

            name = signal.Signals(-code).name
            hint = " (out of memory?)" if -code == signal.SIGKILL else ""
            return f"was killed by {name}{hint}"
    return f"exited with code {code}"


class ProcessExecutor(Executor):
    """Runs jobs in worker processes, started as the work warrants.

    `max_workers` is a ceiling. The pool starts as many workers as the first jobs sent
    to it (up to the ceiling): jobs sent together can run in parallel, and nothing is
    known yet about how long they take. Later workers start only when they can pay for
    their start-up (`WORKER_START_SECONDS`, then as measured): when the measured run time
    of the jobs in flight, per running worker, is more than twice that, or when jobs
    wait and none has finished for `GROW_AFTER_SECONDS` (their run time is unknown but
    long). A thousand tiny jobs behind one task that returns them are thus run by the one
    worker that is already warm, rather than by a second worker that would spend more
    CPU importing than the jobs need, taking it from the scheduler on a busy machine.
    """

    name = "processes"
    posts_outcomes = True

    def __init__(self, max_workers: int | None = None) -> None:
        self.max_workers = max_workers or os.cpu_count() or 1
        self._buffer: list[tuple[JobSpec, _End]] = []
        self._buffered = 0.0  # expected run time of the jobs in `_buffer`
        # Pool state, shared by the scheduler thread, the feeder, the workers' threads
        # and the watcher; guarded by `_cond`.
        self._cond = threading.Condition()
        self._started = False
        self._closing = False
        self._queue: deque[_Batch] = deque()  # batches waiting for a worker
        self._pool: list[_Worker] = []  # workers starting or running
        self._preload: tuple[str, ...] = ()
        self._threads: list[threading.Thread] = []
        self._watching = False  # a `_watch` thread runs
        self._growable = True  # False once a worker could not be started
        self._start_error: ExecutorError | None = None  # why, for jobs left without one
        self._inflight: Counter[str] = Counter()  # task name -> jobs sent, not finished
        self._jobs = 0  # sum of `_inflight`
        self._runtime = RunTimes(BATCH_SECONDS / MAX_BATCH, BATCH_SECONDS / MAX_BATCH_JOBS)
        # Monotonic time a job last finished, workers started or jobs began to wait.
        self._progress = 0.0
        self._fresh = False  # the pool has not been sent a job yet
        self._startup = WORKER_START_SECONDS  # seconds, last measured

    @property
    def _workers(self) -> int:
        """Worker processes starting or running."""
        return len(self._pool)

    # -- scheduler thread ------------------------------------------------------------
    def start(self, preload: tuple[str, ...] = (), workers: int = 1) -> None:
        """Start the pool with `workers` processes (more start as the work warrants); they
        import the `preload` modules first. Optional: `flush` starts the pool if needed,
        but starting it ahead (say, while a store opens) hides some of its start-up."""
        with self._cond:
            if self._started:
                return
            self._started = True
            self._closing = False
            self._preload = preload
            self._inflight = Counter()
            self._jobs = 0
            self._progress = time.monotonic()
            self._fresh = True
            self._growable = True
            self._start_error = None
        self._thread(self._feed, "lazyflow-pool-feeder")
        self._grow(min(self.max_workers, max(workers, 1)))

    def warm(self, tasks: Sequence[Task]) -> None:
        """Start the pool (one worker, importing the modules of `tasks`) unless it runs:
        the worker's start-up (a fresh interpreter importing lazyflow and the workflow,
        0.1-0.5 s) then overlaps the run's set-up instead of following it."""
        if not self._started:
            self.start(_task_modules(tasks))

    def submit(self, spec: JobSpec) -> Future[JobOutcome]:
        """Buffer the job; `flush` sends buffered jobs to the workers in batches.

        A long stream of submissions is sent as it builds up, once there is enough
        for two full batches per worker, so the workers start while the scheduler is
        still submitting.
        """
        outer: Future[JobOutcome] = Future()
        self._buffer.append((spec, outer))
        self._buffered += self._runtime.cost(spec.task.name)
        if self._buffered >= 2 * BATCH_SECONDS * self.max_workers * 0.999:
            self.flush()
        return outer

    def post(self, spec: JobSpec, token: Any, sink: Sink) -> None:
        """`submit` without a future (`base.PostsOutcomes`): the outcomes read from a
        worker in one go reach `sink` as one list."""
        self._buffer.append((spec, _Posted(token, sink)))
        self._buffered += self._runtime.cost(spec.task.name)
        if self._buffered >= 2 * BATCH_SECONDS * self.max_workers * 0.999:
            self.flush()

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
        if not self._started:
            self.start(_task_modules(spec.task for spec, _ in jobs), workers=len(jobs))
        elif self._fresh and self._workers < len(jobs):
            # The first jobs, sent together: they can run in parallel, and nothing is
            # known about how long they take.
            self._grow(min(self.max_workers, len(jobs)))
        self._fresh = False
        costs = [self._runtime.cost(spec.task.name) for spec, _ in jobs]
        target = min(BATCH_SECONDS, sum(costs) / (2 * self.max_workers))
        for start, stop in cut(costs, target, MAX_BATCH_JOBS):
            batch = jobs[start:stop]
            self._send([spec for spec, _ in batch], [end for _, end in batch])

    def _send(self, specs: list[JobSpec], ends: list[_End]) -> None:
        """Queue one batch for the feeder; start the watcher if jobs now wait."""
        watch = False
        with self._cond:
            if self._jobs <= self._workers:
                self._progress = time.monotonic()  # jobs begin to wait now, not before
            self._inflight.update(spec.task.name for spec in specs)
            self._jobs += len(specs)
            self._queue.append(_Batch(specs, ends))
            self._cond.notify_all()
            if (
                self._growable
                and not self._watching
                and self._workers < min(self.max_workers, self._jobs)
            ):
                self._watching = watch = True
        if watch and not self._thread(self._watch, "lazyflow-pool-watch"):
            with self._cond:
                self._watching = False  # no thread to spare: keep the workers there are

    # -- growing -----------------------------------------------------------------------
    def _wanted(self) -> int:
        """How many workers the jobs in flight warrant (call with `_cond` held)."""
        workers, jobs = self._workers, self._jobs
        if workers >= self.max_workers or jobs <= workers:
            return workers
        if time.monotonic() - self._progress > GROW_AFTER_SECONDS:
            return min(self.max_workers, jobs)  # none finished lately: the jobs are long
        known = 0.0
        for name, count in self._inflight.items():
            mean = self._runtime.mean(name)
            if mean is not None:
                known += count * mean
        budget = 2 * self._startup
        if known <= budget * workers:
            return workers
        return min(self.max_workers, jobs, math.ceil(known / budget))

    def _watch(self) -> None:
        """Watcher thread: start workers while jobs wait for one; exit when none wait."""
        while True:
            with self._cond:
                if self._waiting():
                    self._cond.wait(GROW_AFTER_SECONDS / 2)
                if not self._waiting():
                    self._watching = False
                    return
                wanted = self._wanted()
            if wanted > self._workers:
                self._grow(wanted)

    def _waiting(self) -> bool:
        """Jobs wait for a worker that could be started (call with `_cond` held)."""
        return (
            self._started
            and not self._closing
            and self._growable
            and self._workers < min(self.max_workers, self._jobs)
        )

    def _grow(self, workers: int) -> None:
        """Have `workers` worker processes, starting the missing ones now (each from a
        thread of its own that then serves it, see `lifeline` on why)."""
        with self._cond:
            new = self._add_workers(workers)
        self._start_workers(new)

    def _add_workers(self, workers: int) -> list[_Worker]:
        """Count in the workers `_grow` starts (call with `_cond` held)."""
        if self._closing or not self._started:
            return []
        new = [_Worker() for _ in range(max(workers, 1) - len(self._pool))]
        self._pool.extend(new)
        if new:
            self._progress = time.monotonic()
        return new

    def _start_workers(self, new: list[_Worker]) -> None:
        for worker in new:
            if not self._thread(self._serve, "lazyflow-pool-worker", worker):
                self._lost_start(worker, RuntimeError("no thread to start a worker from"))

    def _thread(self, target: Any, name: str, *args: Any) -> bool:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        try:
            thread.start()
        except RuntimeError:
            return False
        with self._cond:
            self._threads = [t for t in self._threads if t.is_alive()] + [thread]
        return True

    # -- a worker's thread ---------------------------------------------------------------
    def _popen(self, args: list[str], fds: tuple[int, int]) -> subprocess.Popen[bytes]:
        return subprocess.Popen(args, stdin=subprocess.DEVNULL, pass_fds=fds, close_fds=True)

    def _spawn(self, worker: _Worker) -> FrameReader:
        """Start `worker`'s process and send it its hello; the reader of its outcomes."""
        if not sys.executable:
            raise ExecutorError(
                "the processes executor cannot start workers: sys.executable is not set "
                '(an embedded interpreter?). Use executor="threads".'
            )
        to_child, to_worker = os.pipe()
        from_worker, to_parent = os.pipe()
        args = [sys.executable, *_interpreter_flags(), "-c", BOOTSTRAP]
        args += [str(to_child), str(to_parent), str(os.getpid())]
        try:
            worker.proc = self._popen(args, (to_child, to_parent))
        except BaseException:
            for fd in (to_worker, from_worker):
                os.close(fd)
            raise
        finally:
            os.close(to_child)
            os.close(to_parent)
        worker.to_fd = to_worker
        with self._cond:
            preload = self._preload
            retired = worker.retiring
        if retired:  # the pool shut down while this worker started: it is not needed
            with contextlib.suppress(OSError):
                worker.proc.terminate()
            worker.close_input()
            return FrameReader(from_worker)
        hello = marshal.dumps({"path": list(sys.path), "preload": list(preload)})
        with contextlib.suppress(OSError):  # if it died at once, reading says so
            worker.write(frame(hello))
        return FrameReader(from_worker)

    def _serve(self, worker: _Worker) -> None:
        """A worker's thread: start it, then hand over its jobs' outcomes as they come."""
        try:
            reader = self._spawn(worker)
        except Exception as exc:
            self._lost_start(worker, exc)
            return
        try:
            self._read(worker, reader)
        finally:
            os.close(reader.fd)
            assert worker.proc is not None
            code = worker.proc.wait()
            worker.close_input()
            self._ended(worker, code)

    def _read(self, worker: _Worker, reader: FrameReader) -> None:
        first = True
        while (messages := reader.read()) is not None:
            if first:
                _pid, ready_at = pickle.loads(messages.pop(0))
                first = False
                with self._cond:
                    worker.ready = True
                    self._startup = max(0.05, ready_at - worker.spawned)
                    self._cond.notify_all()
                if not messages:
                    continue
            self._resolve(worker, [outcome(pickle.loads(m)) for m in messages])

    def _resolve(self, worker: _Worker, outcomes: list[JobOutcome]) -> None:
        """Book the outcomes of `worker`'s oldest jobs, then hand them over."""
        ends: list[_End] = []
        names: list[str] = []
        record = self._runtime.record
        with self._cond:
            for out in outcomes:
                batch = worker.batches[0]
                ends.append(batch.ends[worker.done])
                name = batch.specs[worker.done].task.name
                names.append(name)
                record(name, out.started, out.finished)
                worker.done += 1
                if worker.done == len(batch.ends):
                    worker.batches.popleft()
                    worker.done = 0
                    worker.cost -= batch.cost
                    self._cond.notify_all()  # room for another batch
            self._finished(names)
        self._settle(ends, outcomes)

    def _settle(self, ends: list[_End], outcomes: list[JobOutcome]) -> None:
        """Hand each outcome to its job's end, unless it has one already (a cancelled run
        failed it): a future is set; posted jobs go to their sink, one list per sink."""
        futures: list[tuple[Future[JobOutcome], JobOutcome]] = []
        posted: dict[Sink, list[tuple[Any, JobOutcome]]] = {}
        with self._cond:
            for end, out in zip(ends, outcomes, strict=True):
                if type(end) is _Posted:
                    if not end.done:
                        end.done = True
                        posted.setdefault(end.sink, []).append((end.token, out))
                else:
                    futures.append((end, out))  # type: ignore[arg-type]
        for sink, items in posted.items():
            sink(items)
        for fut, out in futures:
            if not fut.done():
                fut.set_result(out)

    def _finished(self, names: list[str]) -> None:
        """Jobs of tasks `names` are no longer in flight (call with `_cond` held)."""
        self._inflight.subtract(names)
        for name in set(names):
            if self._inflight[name] <= 0:
                del self._inflight[name]
        self._jobs = max(0, self._jobs - len(names))
        self._progress = time.monotonic()

    def _lost_start(self, worker: _Worker, exc: BaseException) -> None:
        """`worker` could not be started: keep the workers there are; with none, the
        waiting jobs fail (they cannot run)."""
        error = ExecutorError(f"the processes executor could not start a worker process: {exc}")
        with self._cond:
            if worker in self._pool:
                self._pool.remove(worker)
            self._growable = False
            self._start_error = error
            failed = [] if self._pool else list(self._queue)
            if failed:
                self._queue.clear()
            self._cond.notify_all()  # a feeder waiting for room fails its batch too
        if not failed:
            log.warning("lazyflow: could not start more worker processes: %s", exc)
        for batch in failed:
            self._fail(batch, error)

    def _fail(self, batch: _Batch, error: BaseException) -> None:
        """Fail the jobs of `batch` that have no outcome yet."""
        with self._cond:
            self._finished([spec.task.name for spec in batch.specs])
        self._settle(batch.ends, [JobOutcome(error=error) for _ in batch.ends])

    def _ended(self, worker: _Worker, code: int | None) -> None:
        """`worker`'s process is gone. Unless the pool retired it, it died: the job it was
        running fails, the jobs it had not started go back to the queue, and a new worker
        starts if none is left for them. One that died before it was ready could not
        start (see `_lost_start`)."""
        if not worker.ready and not worker.retiring:
            self._lost_start(worker, RuntimeError(f"it {_death(code)} as it started"))
            return
        culprit: tuple[JobSpec, _End] | None = None
        with self._cond:
            if worker in self._pool:
                self._pool.remove(worker)
            batches, done = list(worker.batches), worker.done
            worker.batches.clear()
            self._cond.notify_all()
            if worker.retiring:
                return
            if batches:
                first = batches[0]
                culprit = (first.specs[done], first.ends[done])
                rest = _Batch(first.specs[done + 1 :], first.ends[done + 1 :])
                for batch in reversed((rest, *batches[1:])):
                    if batch.specs:
                        self._queue.appendleft(batch)  # ahead of later jobs, in order
                self._finished([culprit[0].task.name])
            # A replacement, if no worker is left for the jobs: counted in at once, so
            # that the feeder never sees an empty pool that is not meant to be.
            new = self._add_workers(1) if not self._pool and self._queue else []
        if culprit is not None:
            spec, end = culprit
            pid = worker.proc.pid if worker.proc is not None else "?"
            error = WorkerLost(
                f"the worker process (pid {pid}) running task {spec.task.name!r} "
                f"{_death(code)}; this job failed, the jobs it had not started run on "
                "another worker. A task that crashes its interpreter (a segfault in an "
                "extension module, os._exit, running out of memory) fails like this."
            )
            self._settle([end], [JobOutcome(error=error)])
        self._start_workers(new)

    # -- feeder thread -----------------------------------------------------------------
    def _feed(self) -> None:
        """Feeder thread: pickle queued batches and hand each to a worker with room.

        It takes a batch off the queue only once a worker has room for it, and then
        merges into it the batches queued behind it, up to a full batch (`_merge`):
        while the workers are busy, the small batches that a trickle of submissions
        makes (a few calls each time outcomes come back) pile up here and leave as one
        message, instead of one message, one pickling and one wake-up each.
        """
        while True:
            with self._cond:
                while not self._closing and not (self._queue and self._can_assign()):
                    self._cond.wait()
                if self._closing:
                    return
                batch = self._merge(self._queue.popleft())
            failed = batch.pickle()
            if failed:
                with self._cond:
                    self._finished([spec.task.name for spec, _, _ in failed])
                ends = [end for _, end, _ in failed]
                self._settle(ends, [JobOutcome(error=error) for _, _, error in failed])
            if not batch.specs:
                continue
            assert batch.payload is not None
            worker = self._assign(batch)
            if worker is None:
                continue  # its jobs failed
            with contextlib.suppress(OSError):  # it died: its thread deals with the jobs
                worker.write(batch.payload)

    def _can_assign(self) -> bool:
        """A worker has room for a batch, or none will ever have (`_assign` fails the
        batch then). Call with `_cond` held."""
        if not self._pool and self._start_error is not None:
            return True
        return self._room() is not None

    def _merge(self, batch: _Batch) -> _Batch:
        """`batch` with the batches queued behind it merged in, while they add up to no
        more than a full batch: `BATCH_SECONDS` of measured run time, at most
        `MAX_BATCH_JOBS` calls (call with `_cond` held).

        Only calls of measured tasks merge: `flush` spreads calls of unknown length
        over the workers on purpose (two one-hour calls must not share a worker because
        they were queued together), and measured ones are merged only up to what
        `flush` itself would have put in one batch.
        """
        if not self._measured(batch):
            return batch
        cost = sum(self._runtime.cost(spec.task.name) for spec in batch.specs)
        while self._queue:
            nxt = self._queue[0]
            if not self._measured(nxt):
                break
            more = sum(self._runtime.cost(spec.task.name) for spec in nxt.specs)
            if len(batch.specs) + len(nxt.specs) > MAX_BATCH_JOBS:
                break
            if cost + more > BATCH_SECONDS * 1.001:
                break
            self._queue.popleft()
            batch.specs = batch.specs + nxt.specs
            batch.ends = batch.ends + nxt.ends
            batch.payload = None  # (a batch put back by `_ended` was pickled already)
            cost += more
        return batch

    def _measured(self, batch: _Batch) -> bool:
        """Whether every call of `batch` is of a task measured to finish."""
        mean = self._runtime.mean
        return all(mean(name) is not None for name in {s.task.name for s in batch.specs})

    def _assign(self, batch: _Batch) -> _Worker | None:
        """Wait for a worker with room, and give it `batch` (None: the pool is closing)."""
        cost = sum(self._batch_costs(batch))
        with self._cond:
            while True:
                if self._closing:
                    error: BaseException = CancelledError("the pool was shut down")
                    break
                if not self._pool and self._start_error is not None:
                    error = self._start_error
                    break
                worker = self._room()
                if worker is not None:
                    worker.batches.append(batch)
                    batch.cost = cost
                    worker.cost += cost
                    return worker
                self._cond.wait()
        self._fail(batch, error)
        return None

    def _batch_costs(self, batch: _Batch) -> Iterable[float]:
        for spec in batch.specs:
            mean = self._runtime.mean(spec.task.name)
            yield _UNKNOWN if mean is None else mean

    def _room(self) -> _Worker | None:
        """An idle ready worker, else one whose queued work is short (`_cond` held)."""
        best: _Worker | None = None
        for worker in self._pool:
            if not worker.ready or worker.retiring:
                continue
            if not worker.batches:
                return worker
            short = worker.cost < PREFETCH_SECONDS and len(worker.batches) < 2
            if short and (best is None or worker.cost < best.cost):
                best = worker
        return best

    # -- shutting down -----------------------------------------------------------------
    def shutdown(self, *, cancel: bool = False) -> None:
        """Stop the workers: after their jobs are done, or (`cancel`) at once, failing
        the jobs not finished with `CancelledError`."""
        if not cancel:
            self.flush()
        self._buffer = []
        self._buffered = 0.0
        with self._cond:
            if not self._started:
                return
            if not cancel:
                while self._jobs and self._pool:
                    self._cond.wait(0.5)
            self._started = False
            self._closing = True
            pool, self._pool = self._pool, []
            pending = [end for b in self._queue for end in b.ends]
            self._queue.clear()
            for worker in pool:
                worker.retiring = True
                pending += [end for b in worker.batches for end in b.ends]
            self._watching = False
            self._cond.notify_all()
        self._settle(
            pending, [JobOutcome(error=CancelledError("the run was cancelled")) for _ in pending]
        )
        self._stop(pool, kill=cancel)

    def _stop(self, pool: list[_Worker], kill: bool) -> None:
        for worker in pool:
            # One still starting has no job: waiting for it to import would be for nothing
            # (a pool warmed for a run whose root call was cached).
            if (kill or not worker.ready) and worker.proc is not None:
                with contextlib.suppress(OSError):
                    worker.proc.terminate()
            worker.close_input()  # end of input: the worker exits
        deadline = time.monotonic() + STOP_SECONDS
        for worker in pool:
            if worker.proc is None:
                continue
            try:
                worker.proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                worker.proc.kill()
        with self._cond:
            threads, self._threads = self._threads, []
        for thread in threads:
            if thread is not threading.current_thread():
                thread.join(timeout=STOP_SECONDS)
