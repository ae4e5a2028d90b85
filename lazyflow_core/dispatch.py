"""Dispatch: getting the calls a run must execute to executors, and their outcomes back.

The state machine (`evaluator`) queues call frames that must run (`Dispatcher.put`) and
asks for a round of dispatch when its ready queue and cache lookups are empty. A round
sends each queued call to its task's executor, or runs it right here on the scheduler
thread, and comes back with outcomes through `Dispatcher.outcome`, one callback into the
state machine for every finished job, whichever way it ran:

- **Inline.** An executor declares `Executor.inline`. ``ALWAYS`` (the ``inline``
  executor): every call runs here. ``WHEN_CHEAP`` (threads): a call runs here when
  handing it to a pool thread would cost more than it can gain, because it is the only
  work there is (a chain of dependent calls: no parallelism to gain), or because calls
  of its task are measured to finish in under `INLINE_SECONDS` (tiny tasks only contend
  for the GIL in a pool; two thread hand-offs per call cost more than the call). Until
  `PROBE_CALLS` calls of a task have been timed, at most `PROBE_WINDOW` go to the pool;
  the others wait here for the verdict. Timing is a `bundling.RunTimes` by task name,
  the record the process and batch executors keep too.
- **Limits.** ``@task(limits={"gpu": 1})`` calls wait here while their resource is used
  up (``Scheduler(limits=...)`` sets capacities), and go back into the queue when a call
  holding it finishes.
- **Async tasks.** An ``async def`` task of an in-process executor (threads, inline)
  runs as a coroutine on the process's event loop thread (`awaiting`); an expression it
  awaits comes back through the completion queue as an `Awaiting` (`awaited`), which
  the state machine evaluates while the coroutine waits.
- **Completions.** An executor returns a future; its callback (on whatever thread the
  executor finishes it) only posts ``(frame, future)`` to a queue that the scheduler
  thread drains (`wait`), so executors never touch scheduler state.

Events: a call that runs here or on an executor that cannot tell when a job starts is
``started`` when handed over; on one that can (`Executor.reports_start`), it is
``queued`` then, and ``started`` when a worker takes it.
"""

from __future__ import annotations

import functools
import inspect
import queue
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, cast

from .awaiting import Awaiting, Channel
from .awaiting import runner as async_runner
from .errors import ExecutorError, RunCancelled
from .events import Reason
from .executors.base import (
    Executor,
    Inline,
    JobOutcome,
    JobSpec,
    PostsOutcomes,
    ReportsStart,
    run_call,
)
from .executors.bundling import RunTimes
from .frames import PENDING, RUN, CallFrame
from .task import Task

INLINE_SECONDS = 100e-6
"""Calls of a task measured to take less than this run on the scheduler thread."""
PROBE_CALLS = 4
"""Calls of a task timed before the inline verdict."""
PROBE_WINDOW = 16
"""Calls of a task not timed yet that may be in a pool at once."""
MAX_INFLIGHT = 2048
"""Jobs handed to executors and not yet back, at most: the rest wait here. Pools of
tiny calls finish them faster than the scheduler thread takes their outcomes in, and an
outcome that has not reached the store is what a crash loses (docs/store.md): this keeps
that backlog to a fraction of a second, and still feeds every pool full batches."""

_HERE, _POOL, _LATER = "here", "pool", "later"

Outcome = Callable[[CallFrame, JobOutcome], None]
Failure = Callable[[CallFrame, BaseException], None]
Notify = Callable[[str, CallFrame, Reason | None], None]


class Dispatcher:
    """The calls of one run on their way to executors and back (see the module doc).

    `outcome(frame, out)` is called for every finished job and `failed(frame, exc)` for
    a call that cannot be dispatched (unknown executor, a limit it can never get, an
    executor that refused it); `awaited(aw)` when an async task awaits an expression;
    `notify(kind, frame, reason)`, if given, emits the ``queued``/``started`` events.
    `reasons` holds why each queued call runs, for those events (filled by the state
    machine only when there are listeners).
    """

    def __init__(
        self,
        *,
        executors: dict[str, Executor],
        default_executor: str,
        limits: dict[str, int],
        job_id: Callable[[CallFrame], str],
        keyed: bool,
        outcome: Outcome,
        failed: Failure,
        notify: Notify | None,
        awaited: Callable[[Awaiting], None],
    ) -> None:
        self.executors = executors
        self.default_executor = default_executor
        self.job_id = job_id
        self.keyed = keyed  # JobSpec.call_hash may be given (cache on for this run)
        self.outcome = outcome
        self.failed = failed
        self.notify = notify
        self.queue: list[CallFrame] = []
        self.reasons: dict[CallFrame, Reason] = {}
        self.inflight = 0
        self.submitted = False  # this round handed a job to an executor (flush them)
        self.stopping = False  # after a fatal failure: nothing new starts
        self.cancelled = False
        self.times = RunTimes(unmeasured=0.0, floor=0.0)  # task name -> measured run time
        self.probing: dict[str, int] = {}
        self.deferred: dict[str, list[CallFrame]] = {}
        self.limit_capacity = limits
        self.limit_used: dict[str, int] = {}
        self.limit_waiting: deque[CallFrame] = deque()
        self.completions: queue.SimpleQueue[
            tuple[CallFrame, Future[JobOutcome] | Awaiting | None]
            | list[tuple[CallFrame, JobOutcome]]
            | None
        ]
        self.completions = queue.SimpleQueue()
        self.awaited = awaited
        self.async_funcs: dict[Callable[..., Any], bool] = {}
        self.lone_here: dict[Task, bool] = {}  # see `_lone_here`
        self.coroutines: set[Future[JobOutcome]] = set()  # async tasks' jobs running

    # -- the state machine's side --------------------------------------------------------
    def put(self, frame: CallFrame) -> None:
        """Queue `frame` to run in the next round."""
        if not self.stopping:
            self.queue.append(frame)

    def dispatch(self) -> None:
        """Send the queued calls to their executors, or run them right here.

        Called when nothing else can make progress (no ready frame, no lookup), so a
        single queued call with nothing running is *lone*: running it elsewhere gains
        nothing.
        """
        frames = self.queue
        lone = len(frames) == 1 and self.inflight == 0
        if lone and not (self.stopping or self.cancelled):
            frame = frames[0]
            if frame.state == PENDING and self._lone_here(frame.task):
                self.queue = []  # a chain's call: nothing else to send, nothing to flush
                self._run_here(frame)
                return
        self.queue = []
        self.submitted = False
        for index, frame in enumerate(frames):
            if self.stopping or frame.state != PENDING:
                continue
            if self.inflight >= MAX_INFLIGHT or self.cancelled:
                # sent as jobs come back (`full`); cancelled (SIGTERM, Ctrl-C) in a long
                # round of calls run here: the rest does not start
                self.queue[:0] = frames[index:]
                break
            try:
                executor = self.executor_for(frame.task)
            except ExecutorError as exc:
                self.failed(frame, exc)
                continue
            self._send(frame, executor)
        if self.submitted:  # a round that ran every call here has nothing to send
            for executor in self.executors.values():
                executor.flush()

    def _send(self, frame: CallFrame, executor: Executor) -> None:
        """One queued call of a round: started as a coroutine, run right here, kept for
        its task's timing verdict, or submitted to `executor`."""
        task = frame.task
        inline = executor.inline
        if inline is not Inline.NEVER and self._is_async(task):
            self._start_async(frame)
        elif inline is Inline.ALWAYS:
            if not task.options.limits or self._acquire(frame, task.options.limits):
                self._run_here(frame)
        elif inline is Inline.WHEN_CHEAP and not task.options.limits:
            where = self._where(frame)
            if where is _HERE:
                self._run_here(frame)
            elif where is _POOL:
                self._submit(frame, executor)
        else:
            self._submit(frame, executor)

    @property
    def full(self) -> bool:
        """`MAX_INFLIGHT` jobs are out: queued calls wait for outcomes to come back."""
        return self.inflight >= MAX_INFLIGHT

    def wait(self, timeout: float | None = None) -> None:
        """Block until a job finishes (or the run is cancelled, or `timeout` seconds
        pass); hand over every outcome that has arrived."""
        try:
            item = self.completions.get(timeout=timeout)
        except queue.Empty:
            return
        while True:
            if isinstance(item, list):  # outcomes posted together (`PostsOutcomes`)
                self._take(item)
            elif item is not None:
                frame, future = item
                if isinstance(future, Awaiting):  # an async task awaits an expression
                    self.awaited(future)
                elif future is None:  # a worker took the job: it runs now
                    if self.notify is not None:
                        self.notify("started", frame, self.reasons.pop(frame, None))
                else:
                    self.inflight -= 1
                    self._finished(frame, future)
            elif self.cancelled:
                return
            try:
                item = self.completions.get_nowait()
            except queue.Empty:
                return

    def drain(self) -> None:
        """After a fatal failure: start nothing new; let running jobs finish, recorded
        (coroutines of async tasks are cancelled: what they await will not be)."""
        self.stopping = True
        self._cancel_async()
        self.queue.clear()
        self.limit_waiting.clear()
        self.deferred.clear()
        while self.inflight > 0 and not self.cancelled:
            self.wait()

    def keep_arrived(self) -> None:
        """The run is cancelled: start nothing new, but hand over the outcomes that have
        arrived and were not taken in yet. Those jobs finished; recorded now, a cancelled
        run (SIGTERM, Ctrl-C) keeps them instead of computing them again next time."""
        self.stopping = True
        self._cancel_async()
        self.queue.clear()
        self.limit_waiting.clear()
        self.deferred.clear()
        while True:
            try:
                item = self.completions.get_nowait()
            except queue.Empty:
                return
            if isinstance(item, list):
                self._take(item)
                continue
            if item is None or item[1] is None:
                continue
            if isinstance(item[1], Awaiting):
                item[1].reject(RunCancelled("the run was cancelled"))
            else:
                self.inflight -= 1
                self._finished(item[0], item[1])

    def _take(self, outcomes: list[tuple[CallFrame, JobOutcome]]) -> None:
        """Hand over outcomes posted together. If the state machine raises on one, the
        rest go back into the queue: still in flight, they must be taken in (`drain`)."""
        taken = 0
        try:
            for frame, out in outcomes:
                taken += 1
                self.inflight -= 1
                self._finished(frame, out)
        except BaseException:
            if taken < len(outcomes):
                self.completions.put(outcomes[taken:])
            raise

    def cancel(self) -> None:
        """Wake `wait` (thread-safe): the run was cancelled."""
        self.cancelled = True
        self.completions.put(None)

    def executor_for(self, task: Task) -> Executor:
        name = task.options.executor
        if name == "default":
            name = self.default_executor
        executor = self.executors.get(name)
        if executor is None:
            raise ExecutorError(
                f"task {task.name!r} asks for executor {name!r}, which this scheduler does "
                f"not have (it has: {', '.join(sorted(self.executors))}). Pass it with "
                f"Scheduler(executors={{{name!r}: ...}}) or change @task(executor=...)."
            )
        return executor

    # -- inline --------------------------------------------------------------------------
    def _lone_here(self, task: Task) -> bool:
        """Whether a lone call of `task` runs right here with no more ado: its executor
        runs jobs in this process (``WHEN_CHEAP`` or ``ALWAYS``), and it is neither
        ``async`` nor limited. Decided once per task (`lone_here`); otherwise (or if its
        executor is unknown, which the round reports) the call takes the general round."""
        here = self.lone_here.get(task)
        if here is None:
            try:
                inline = self.executor_for(task).inline
            except ExecutorError:
                return False
            here = self.lone_here[task] = (
                inline is not Inline.NEVER and not task.options.limits and not self._is_async(task)
            )
        return here

    def _where(self, frame: CallFrame) -> str:
        """Where a call of a ``WHEN_CHEAP`` executor goes: `_HERE`, `_POOL`, or `_LATER`
        (it waits in `deferred` for its task's timing verdict). A lone call never comes
        here: `dispatch` runs it at once (`_lone_here`)."""
        name = frame.task.name
        mean = self.times.mean(name, at_least=PROBE_CALLS)
        if mean is not None and mean < INLINE_SECONDS:
            return _HERE
        if mean is None:
            probing = self.probing.get(name, 0)
            if probing >= PROBE_WINDOW:
                self.deferred.setdefault(name, []).append(frame)
                return _LATER
            self.probing[name] = probing + 1
        return _POOL

    def _begin_here(self, frame: CallFrame) -> None:
        """`frame` starts running in this process (here, or as a coroutine)."""
        frame.phase = RUN
        frame.attempts += 1
        if frame.attempts == 1:
            frame.started = time.time()
            if self.notify is not None:
                self.notify("started", frame, self.reasons.pop(frame, None))

    def _run_here(self, frame: CallFrame) -> None:
        self._begin_here(frame)
        self._finished(frame, run_call(frame.task, frame.args, frame.kwargs))
        if not self.completions.empty():
            # Jobs that finished in a pool meanwhile are taken in now, not after this
            # round: a round of tiny calls run here can last seconds (a fan-out's
            # remaining 40k calls), and an outcome not taken in is not recorded, which
            # is what a crash loses (docs/store.md). It lost the pool's first ~2,000
            # calls of a busy run, finished over a second before a kill.
            self.wait(0)

    # -- async tasks ---------------------------------------------------------------------
    def _is_async(self, task: Task) -> bool:
        found = self.async_funcs.get(task.func)
        if found is None:
            found = self.async_funcs[task.func] = inspect.iscoroutinefunction(task.func)
        return found

    def _start_async(self, frame: CallFrame) -> None:
        """Run an ``async def`` task's coroutine on the process's event loop thread
        (`awaiting`): it takes no pool thread while it waits for what it awaits."""
        task = frame.task
        if task.options.limits and not self._acquire(frame, task.options.limits):
            return
        self._begin_here(frame)
        put = self.completions.put
        future = async_runner.submit(task, frame.args, frame.kwargs, Channel(frame, put))
        self.inflight += 1
        self.coroutines.add(future)
        future.add_done_callback(lambda fut, f=frame: put((f, fut)))  # type: ignore[misc]

    def _cancel_async(self) -> None:
        for future in list(self.coroutines):
            future.cancel()

    # -- executors -----------------------------------------------------------------------
    def _submit(self, frame: CallFrame, executor: Executor) -> None:
        task = frame.task
        limits = task.options.limits
        if limits and not self._acquire(frame, limits):
            return
        frame.phase = RUN
        frame.attempts += 1
        first = frame.attempts == 1
        if first:
            frame.started = time.time()
        spec = JobSpec(
            self.job_id(frame),
            task,
            frame.args,
            frame.kwargs,
            frame.attempts,
            frame.call_hash if self.keyed and task.options.cache else None,
        )
        put = self.completions.put
        reports = first and self.notify is not None and executor.reports_start
        self.submitted = True  # even if submit raises: it may have buffered others
        if executor.posts_outcomes and not reports:
            try:
                cast(PostsOutcomes, executor).post(spec, frame, put)  # it declared so
            except Exception as exc:
                self._release(task)
                self.failed(frame, exc)
                return
            self.inflight += 1
            if first and self.notify is not None:
                self.notify("started", frame, self.reasons.pop(frame, None))
            return
        try:
            if reports:
                started = cast(ReportsStart, executor)  # it declared so (reports_start)
                future = started.submit(spec, on_start=functools.partial(put, (frame, None)))
            else:
                future = executor.submit(spec)
        except Exception as exc:
            self._release(task)
            self.failed(frame, exc)
            return
        self.inflight += 1
        future.add_done_callback(lambda fut, f=frame: put((f, fut)))  # type: ignore[misc]
        if first and self.notify is not None:
            if reports:
                self.notify("queued", frame, self.reasons.get(frame))
            else:
                self.notify("started", frame, self.reasons.pop(frame, None))

    def _finished(self, frame: CallFrame, result: Future[JobOutcome] | JobOutcome) -> None:
        """A job ended: free what it held, learn its run time, hand over its outcome."""
        task = frame.task
        if task.options.limits:
            self._release(task)
        if type(result) is JobOutcome:
            out = result
        else:
            if self.coroutines:
                self.coroutines.discard(result)
            try:
                out = result.result()  # type: ignore[union-attr]
            except BaseException as exc:  # executor failure (e.g. a killed worker)
                out = JobOutcome(error=exc, started=frame.started, finished=time.time())
        name = task.name
        if name in self.probing:
            self.probing[name] -= 1
            waiting = self.deferred.pop(name, None)
            if waiting:
                self.queue.extend(waiting)
        if out.finished:
            self.times.record(name, out.started, out.finished)
        self.outcome(frame, out)

    # -- limits --------------------------------------------------------------------------
    def _acquire(self, frame: CallFrame, limits: dict[str, int]) -> bool:
        for name, amount in limits.items():
            capacity = self.limit_capacity.get(name, 1)
            if amount > capacity:
                self.failed(
                    frame,
                    ExecutorError(
                        f"task {frame.task.name!r} needs {amount} of limit {name!r} but the "
                        f"scheduler allows {capacity}. Raise it with "
                        f"Scheduler(limits={{{name!r}: {amount}}})."
                    ),
                )
                return False
            if self.limit_used.get(name, 0) + amount > capacity:
                self.limit_waiting.append(frame)
                return False
        for name, amount in limits.items():
            self.limit_used[name] = self.limit_used.get(name, 0) + amount
        return True

    def _release(self, task: Task) -> None:
        for name, amount in task.options.limits.items():
            self.limit_used[name] -= amount
        waiting, self.limit_waiting = self.limit_waiting, deque()
        self.queue.extend(waiting)  # back through the next round
