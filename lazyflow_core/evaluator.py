"""The evaluator: the state machine that turns an expression into a value.

Every expression being evaluated gets a *frame* (`frames`: plain records). A frame waits
for the frames of the expressions it depends on (``pending`` counts them; each
dependency lists its ``waiters``); when ``pending`` drops to zero it goes on the
``ready`` queue. The main loop pops ready frames and hands each to the transition for
its type and phase (`Evaluator.on_ready`); it never recurses, so a chain of 100,000
dependent calls or a recursion 10,000 deep is a long queue, not a deep stack.

Every transition is a method of `Evaluator`, named after the stimulus it handles, and
only transitions change a frame's phase or state::

    stimulus                      transition               phase after
    a frame is ready              begin_value/_apply/_catch/_call     NEW -> ARGS
                                  value_ready, apply_operands_ready,  -> DONE (or RESULT)
                                  catch_inner_done, result_ready
                                  call_args_ready          ARGS -> LOOKUP | RUN | ALIAS
                                  alias_ready              ALIAS -> DONE
    cache lookups resolved        call_cached              LOOKUP -> DONE
                                  call_must_run            LOOKUP -> (queued to run)
                                  call_reduced             LOOKUP -> RESULT
    an executor finished a job    job_outcome              RUN -> DONE | RESULT | FAILED
                                                           (or queued again: a retry)
    a dependency failed           fail / catch_failure     -> FAILED (or a catch's RESULT)

A job's end is written in one place, `job_ended`: the run's counters, the job record and
the job event. Cache lookups are batched and read the store through a typed protocol
(`lookups`); calls that must run go to the `dispatch.Dispatcher` (executors, running on
this thread, limits, completions). What differs in a dry run (``explain``) is chosen once:
the `RunPolicy` (`ExecutePolicy` here, `explain.DryRunPolicy`) and a `NullWriter`; so is
cross-process dedup (`dedup`: `NO_DEDUP`, or a `StoreDedup` that leases calls before they
run and waits for the calls other runs hold).

Identical calls (same call hash) in flight are deduplicated: the later frame becomes an
alias of the first (a ``merged`` event). Failures propagate to waiters iteratively; a
`catch` frame may stop them. A run that can go no further with nothing running has a
cycle (a call whose result depends on itself): `CycleError` names its calls. Results and
provenance are queued to the store writer; the scheduler thread does no pickling and no
database writes.

Memory. Every frame lives until the run ends (a later identical call, or the same
expression object met again, must find it), so per-call bytes set how large a run fits:
a frame is kept on its expression rather than in a dict (`_frame_pointers`), frames share
empty placeholders instead of owning empty containers, a recorded call drops what only
running and recording needed (`release_call_state`), a fan-out is hashed, looked up and
run in waves of `WAVE_CALLS` calls, small scalar results are not kept in `known`, and
the scheduler waits for the store writer when its queue grows past
`WRITER_BACKLOG` records or lags `WRITER_LAG_SECONDS` behind (the crash bound), looking
every `BACKLOG_CHECK_EVERY` finished jobs or `BACKLOG_CHECK_SECONDS` (a round of
inline calls or a burst of completions can finish thousands between two dispatches; a
chain's calls run here one dispatch each) and before each dispatch of more than one call.
"""

from __future__ import annotations

import gc
import logging
import os
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from .awaiting import Awaiting
from .dataflow import arg_producers
from .dedup import NO_DEDUP, Dedup
from .dispatch import Dispatcher
from .errors import (
    CycleError,
    HashingError,
    LazyflowError,
    MissingFileError,
    RemoteTraceback,
    RunCancelled,
    TaskResultError,
)
from .events import JobEvent, Reason, RunSummary, TaskCounts
from .executors.base import Executor, JobOutcome
from .expression import (
    ApplyExpression,
    CallExpression,
    CatchExpression,
    Expression,
    collect,
    contains_expression,
    format_args,
)
from .expression import substitute as substitute_values
from .files import iter_files
from .frames import (
    ALIAS,
    ARGS,
    DONE,
    FAILED,
    LOOKUP,
    NO_CHILDREN,
    NO_ITEMS,
    NO_KWARGS,
    NO_WAITERS,
    PENDING,
    PHASES,
    RESULT,
    ApplyFrame,
    AwaitFrame,
    CallFrame,
    CatchFrame,
    Frame,
    ValueFrame,
    release_call_state,
)
from .functional import catch_call
from .hashing import (
    CHEAP_TO_HASH,
    CallKeys,
    UnhashableValue,
    hash_struct,
    list_digest,
    value_digest,
)
from .lookups import CacheLookups, StoreReader
from .recording import NullWriter, Recorder, Writer
from .records import JobRecord
from .tagging import TagsExpression, tag_items
from .task import Task
from .values import ATOMS

log = logging.getLogger("lazyflow.evaluator")

WRITER_BACKLOG = 200_000
"""Records the store writer may lag behind before the scheduler waits for it."""
WRITER_LAG_SECONDS = 0.2
"""How long a finished job's records may wait for the store before the scheduler waits
for the writer: what a crash loses at most (docs/store.md), in a run that produces
records faster than the store takes them."""
WAVE_CALLS = 8_192
"""Calls waiting for a cache lookup, or queued to run, at which the scheduler stops
hashing ready frames and looks them up or runs them first (`_send_wave`).

A fan-out's frames are all ready at once: hashing every one before looking up or running
any kept each call's hash, arguments and digests alive for all of them at once (a
million-call fan-out peaked at ~0.9 GB with all of them hashed). In waves only a wave's
calls hold what running and recording need; a wave is still large enough for batched
lookups (`store.sql.CHUNK` keys a query) and full executor batches
(`dispatch.MAX_INFLIGHT`)."""
GC_YOUNG_EVERY = 5_000
"""Calls between collections of the young generations while automatic GC is paused."""
BACKLOG_CHECK_EVERY = 256
"""Jobs finished between two looks at the store writer's backlog: a round of inline calls,
or a burst of completions from a pool, may finish thousands of calls, each queueing
records, between two passes of the dispatch loop."""
BACKLOG_CHECK_SECONDS = WRITER_LAG_SECONDS / 4
"""Time between two looks at the store writer's backlog at most, while jobs end: slow
jobs end fewer than `BACKLOG_CHECK_EVERY` in that time."""

# How a job ended (`Evaluator.job_ended`): (event kind, job record status).
CACHED = ("cached", "cached")
DONE_ = ("done", "done")
FAILED_ = ("failed", "failed")
CAUGHT = ("caught", "failed")  # it raised (its record says so); a catch handled it
JobEnd = tuple[str, str]
Given = CallFrame | bytes | None
"""How an argument's digest is known, by position (`Evaluator._plain_results`): from the
call of this run that returned it, as the digest of a list of such calls' results, or
(None) by hashing it."""

_frame_pointers = threading.Lock()
"""Held by the one evaluator that keeps frames on expressions (``Expression._lf_frame``).

That evaluator clears every pointer it set when its run ends, then releases the lock, so
a finished run keeps nothing alive through expressions the user still holds. Evaluators
running meanwhile (another thread, a run inside a task) map ``id(expression) -> frame``
in a dict instead: sharing the pointers, they would overwrite each other's. If clearing
is ever interrupted (a second Ctrl-C), the lock stays held and stale pointers are never
read: every later run in the process uses the dict.
"""


class RunPolicy(Protocol):
    """What a run does where a real run and a dry run differ (chosen once per run)."""

    def must_run(self, frame: CallFrame, reason: Reason, detail: str) -> None:
        """`frame` is not reused (`reason`, `detail`): run it, or say it would run."""
        ...

    def reused(self, frame: CallFrame) -> None:
        """`frame` is reused from the store."""
        ...

    def reduced(self, frame: CallFrame, detail: str) -> None:
        """`frame`'s body does not run: its stored returned expression is evaluated
        (`detail`: which task below it changed)."""
        ...

    def stalled(self, frames: Iterable[Frame]) -> bool:
        """Nothing can progress and nothing runs: True to end the evaluation quietly."""
        ...


class ExecutePolicy:
    """A real run: calls that are not reused are dispatched to run."""

    def __init__(
        self, dispatcher: Dispatcher, listeners: list[Any], dedup: Dedup = NO_DEDUP
    ) -> None:
        self.dispatcher = dispatcher
        self.listeners = listeners
        self.dedup = dedup

    def must_run(self, frame: CallFrame, reason: Reason, detail: str) -> None:
        if self.listeners:
            self.dispatcher.reasons[frame] = reason  # for its queued / started event
        if not self.dedup.hold(frame, reason):  # with dedup: after it is leased
            self.dispatcher.put(frame)

    def reused(self, frame: CallFrame) -> None:
        pass

    def reduced(self, frame: CallFrame, detail: str) -> None:
        pass

    def stalled(self, frames: Iterable[Frame]) -> bool:
        return False


class Evaluator:
    """Evaluates one expression for one `Scheduler.run` (or one dry run)."""

    def __init__(
        self,
        *,
        execution_id: str,
        executors: dict[str, Executor],
        default_executor: str,
        store: StoreReader,
        writer: Writer | None,
        use_cache: bool,
        listeners: list[Callable[[JobEvent], None]],
        limits: dict[str, int],
        policy: Callable[[Evaluator], RunPolicy] | None = None,
        dedup: Callable[[Evaluator], Dedup] | None = None,
    ) -> None:
        """`writer` None records nothing (`NullWriter`); `policy` makes the run's
        `RunPolicy` (default: `ExecutePolicy`, a real run); `dedup` its cross-process
        dedup (`dedup.StoreDedup`; default `NO_DEDUP`)."""
        self.execution_id = execution_id
        self.use_cache = use_cache
        self.listeners = listeners
        # Frames of the expressions being evaluated: on the expressions themselves
        # (see `_frame_pointers`; `frame_list` remembers them, to clear and list them),
        # or, when another run holds the pointers, in `frames` by id(expression).
        self.frames: dict[int, Frame] | None = {}
        self.frame_list: list[Frame] = []
        self.calls: dict[str, CallFrame] = {}  # call hash -> first frame (dedup)
        self.known: dict[int, bytes] = {}  # id(value) -> digest, for results in hand
        self.call_keys = CallKeys()
        self.ready: deque[Frame] = deque()
        self.job_counter = 0
        self.collected_at = 0
        self.resume_collection = False  # automatic collection was on: `release` resumes it
        self.ended = 0  # jobs ended (for the writer backlog checks)
        self.writer_checked = 0.0  # when a job end last looked at the writer (time.time)
        self.summary = RunSummary(execution_id=execution_id)
        self.writer: Writer = writer if writer is not None else NullWriter()
        self.lookups = CacheLookups(store)
        self.store = store
        self.recorder = Recorder(execution_id, self.writer, self.lookups.unreadable)
        self.dispatcher = Dispatcher(
            executors=executors,
            default_executor=default_executor,
            limits=limits,
            job_id=self.recorder.job_id,
            keyed=use_cache,
            outcome=self.job_outcome,
            failed=self.dispatch_failed,
            notify=self._notify if listeners else None,
            awaited=self.call_awaits,
        )
        self.dedup: Dedup = dedup(self) if dedup is not None else NO_DEDUP
        self.policy: RunPolicy = (
            policy(self)
            if policy is not None
            else ExecutePolicy(self.dispatcher, listeners, self.dedup)
        )
        self.root: Frame | None = None
        self.root_call: CallFrame | None = None
        # The transitions of a ready frame, by frame type and phase (see the module doc).
        invalid = self._not_ready
        self.on_ready: dict[type[Frame], tuple[Callable[[Any], None], ...]] = {
            ValueFrame: (self.begin_value, self.value_ready, invalid, invalid, invalid, invalid),
            AwaitFrame: (self.begin_value, self.await_ready, invalid, invalid, invalid, invalid),
            ApplyFrame: (
                self.begin_apply,
                self.apply_operands_ready,
                invalid,
                invalid,
                self.result_ready,
                invalid,
            ),
            CatchFrame: (
                self.begin_catch,
                self.catch_inner_done,
                invalid,
                invalid,
                self.result_ready,
                invalid,
            ),
            CallFrame: (
                self.begin_call,
                self.call_args_ready,
                invalid,
                invalid,
                self.call_result_ready,
                self.alias_ready,
            ),
        }

    # -- public ------------------------------------------------------------------------
    def evaluate(self, expr: Any) -> Any:
        if not contains_expression(expr):
            return expr
        # The frames of a run live until it ends, so every automatic full collection
        # would walk all of them again (14% of a 100k-call run, more at 1M). Automatic
        # collection pauses until `release` (after the run's end is recorded); young
        # generations are still collected every few thousand calls (cheap: only new
        # objects).
        self.resume_collection = self.resume_collection or gc.isenabled()
        gc.disable()
        pointers = _frame_pointers.acquire(blocking=False)
        if pointers:
            self.frames = None
        try:
            return self._evaluate(expr)
        finally:
            if pointers:
                for frame in self.frame_list:
                    frame.expr._lf_frame = None  # type: ignore[attr-defined]
                _frame_pointers.release()

    def release(self) -> None:
        """The run is over and recorded: let reference counting free its frames now.

        Frames refer to each other both ways (a frame's ``context`` and ``waiters``, its
        parent's ``children``, a call's ``result``), and the evaluator to itself (its
        dispatch table's bound methods), so only a full collection would free them,
        walking every one; and with collection back on, the first full one came while
        the run was still recording its end, walking them all for nothing (a 100k-call
        run: 120 ms there, 96 ms more to free them later). Cutting the edges up the
        tree and dropping everything the evaluator holds leaves none of that to the
        collector; automatic collection, paused by `evaluate`, then resumes. The
        evaluator is not usable afterwards."""
        resume = self.resume_collection
        for frame in self.all_frames():
            frame.context = None
            frame.waiters = NO_WAITERS
            frame.value = None  # (a failed frame's error: its traceback holds frames)
            if isinstance(frame, CallFrame):
                frame.children = NO_CHILDREN
                frame.result = None
            elif isinstance(frame, ApplyFrame | CatchFrame):
                frame.result = None
        self.__dict__.clear()  # (its recorder, dispatcher, lookups, root frame...)
        if resume:
            gc.enable()

    def keep_arrived(self) -> None:
        """The run was interrupted (Ctrl-C, SIGTERM unwinding it from wherever it was):
        record the jobs whose outcomes had arrived, best effort, before it ends."""
        try:
            self.dispatcher.keep_arrived()
        except Exception as exc:  # the state machine was cut mid-step: keep what we have
            log.debug("lazyflow: outcomes of an interrupted run not recorded: %s", exc)

    def cancel(self) -> None:
        """Stop the run (thread-safe): `evaluate` raises `RunCancelled`."""
        self.dispatcher.cancel()

    def all_frames(self) -> Iterable[Frame]:
        return self.frame_list if self.frames is None else self.frames.values()

    def _evaluate(self, expr: Any) -> Any:
        root = self.root = self.frame_for_value(expr, None)
        if isinstance(root, CallFrame):
            self.root_call = root
        ready, on_ready = self.ready, self.on_ready
        lookups, dispatcher = self.lookups, self.dispatcher
        while root.state == PENDING:
            if dispatcher.cancelled:
                self.keep_arrived()  # finished jobs are recorded, not dropped
                raise RunCancelled(f"execution {self.execution_id} was cancelled")
            while ready:
                frame = ready.popleft()
                if frame.state == PENDING:
                    on_ready[type(frame)][frame.phase](frame)
                    if root.state != PENDING:
                        break
                    if len(lookups.waiting) >= WAVE_CALLS or len(dispatcher.queue) >= WAVE_CALLS:
                        break  # look up / run this wave before hashing more (WAVE_CALLS)
            if root.state != PENDING:
                break
            if waiting := len(lookups.waiting):
                if waiting > 64:  # a wave (not a chain's next call): its records come soon
                    self.writer.expect(waiting)
                lookups.resolve(self.call_cached, self.call_must_run, self.call_reduced)
                continue
            if ready and len(dispatcher.queue) >= WAVE_CALLS:
                self._send_wave()
                continue
            if self._advance(expr):  # stalled, and the policy ends the run without a value
                return None
        if root.state == FAILED:
            dispatcher.drain()
            error = root.error
            assert error is not None
            try:
                raise error
            finally:  # no cycle through this frame's locals: the error's traceback
                del error, root  # holds the frame, the frame would hold it back
        return root.value

    def _advance(self, expr: Any) -> bool:
        """One step of a run with no ready frame and no lookup waiting: settle dedup
        leases, send queued calls, or wait for a job to end. True when nothing can move
        and the failure policy ends the run quietly (else the stall is an error)."""
        lookups, dispatcher, dedup = self.lookups, self.dispatcher, self.dedup
        if dedup.pending or dedup.ended:
            dedup.settle()  # release ended jobs' leases, lease the calls to run
            if lookups.waiting:  # calls other runs stored meanwhile
                return False
        if self.job_counter - self.collected_at >= GC_YOUNG_EVERY:
            gc.collect(1)
            self.collected_at = self.job_counter
        if dispatcher.queue and not dispatcher.full:
            if dispatcher.inflight or len(dispatcher.queue) > 1:
                # A lone call (a chain's) runs here and its job end looks (`job_ended`).
                self.wait_for_writer()
            dispatcher.dispatch()
        elif dedup.waiting:  # calls other runs compute: poll for them, run ours
            dedup.wait()
        elif dispatcher.inflight == 0:
            if self.policy.stalled(self.all_frames()):
                return True
            raise self._stall_error(expr)
        else:
            dispatcher.wait()
        return False

    def _send_wave(self) -> None:
        """Run (or send) a wave of `WAVE_CALLS` queued calls while ready frames wait.

        A task whose first calls are being timed in a pool (`dispatch.PROBE_CALLS`) gets
        its verdict first: the wave would otherwise only wait for it. While a pool has
        `dispatch.MAX_INFLIGHT` jobs out and a wave still queued, outcomes are taken in
        (and their slots refilled) before more calls are hashed."""
        dispatcher = self.dispatcher
        if self.job_counter - self.collected_at >= GC_YOUNG_EVERY:
            gc.collect(1)
            self.collected_at = self.job_counter
        if dispatcher.deferred and dispatcher.inflight:
            dispatcher.wait()
        self.wait_for_writer()
        dispatcher.dispatch()
        while len(dispatcher.queue) >= WAVE_CALLS and dispatcher.full:
            if dispatcher.cancelled:
                return  # (the run loop raises RunCancelled)
            dispatcher.wait()
            dispatcher.dispatch()

    # -- frames ------------------------------------------------------------------------
    def frame_for(self, expr: Expression, context: CallFrame | None) -> Frame:
        """The frame of `expr` in this run, created (and queued) on first sight."""
        frames = self.frames
        if frames is None:
            try:
                frame: Frame | None = expr._lf_frame
            except AttributeError:  # an Expression subclass that never set it
                frame = None
        else:
            frame = frames.get(id(expr))
        if frame is None:
            if isinstance(expr, CallExpression):
                self.job_counter += 1
                frame = CallFrame(expr, context, self.job_counter)
                if context is not None:
                    if context.children is NO_CHILDREN:  # a shared placeholder
                        context.children = [frame]
                    else:
                        context.children.append(frame)
            elif isinstance(expr, ApplyExpression):
                frame = ApplyFrame(expr, context)
            elif isinstance(expr, CatchExpression):
                frame = CatchFrame(expr, context)
            else:
                raise TaskResultError(f"unknown expression type {type(expr).__name__}")
            if frames is None:
                expr._lf_frame = frame
                self.frame_list.append(frame)
            else:
                frames[id(expr)] = frame
            self.ready.append(frame)
        elif isinstance(frame, CallFrame) and context is not None and frame.context is not context:
            if context.children is NO_CHILDREN:
                context.children = [frame]
            else:
                context.children.append(frame)
        return frame

    def frame_for_value(self, value: Any, context: CallFrame | None) -> Frame:
        if isinstance(value, Expression):
            return self.frame_for(value, context)
        frame = ValueFrame(value, context)
        self.ready.append(frame)
        return frame

    def wait_for_value(self, frame: Frame, value: Any) -> None:
        """`frame` (phase ARGS) waits for every expression inside `value`."""
        frame.phase = ARGS
        deps: list[Expression] = []
        collect(value, deps)
        self.wait_for_frames(frame, deps)

    def wait_for_frames(self, frame: Frame, deps: Iterable[Expression]) -> None:
        """`frame` waits for the frames of the expressions `deps`."""
        context = frame.context
        for expr in deps:
            dep = self.frame_for(expr, context)
            if dep.state == DONE:
                continue
            if dep.state == FAILED:
                assert dep.error is not None
                self.fail(frame, dep.error)
                return
            if dep.waiters is NO_WAITERS:  # a shared placeholder
                dep.waiters = [frame]
            else:
                dep.waiters.append(frame)
            frame.pending += 1
        if frame.pending == 0:
            self.ready.append(frame)

    def wait_on(self, frame: Frame, dep: Frame) -> None:
        """`frame` waits for the one frame `dep`."""
        if dep.state == DONE:
            self.ready.append(frame)
        elif dep.state == FAILED:
            assert dep.error is not None
            self.fail(frame, dep.error)
        elif dep.waiters is NO_WAITERS:  # a shared placeholder
            dep.waiters = [frame]
            frame.pending += 1
        else:
            dep.waiters.append(frame)
            frame.pending += 1

    def continue_with(self, frame: ApplyFrame | CatchFrame, result: Any) -> None:
        """Finish `frame` with `result`, evaluating it first (phase RESULT) if it holds
        expressions."""
        if not contains_expression(result):
            self.finish(frame, result)
            return
        frame.phase = RESULT
        sub = self.frame_for_value(result, frame.context)
        frame.result = sub
        self.wait_on(frame, sub)

    def substitute(self, value: Any) -> Any:
        """`value` with every expression replaced by its computed value."""
        return substitute_values(value, self.frames)

    def finish(self, frame: Frame, value: Any) -> None:
        """`frame` is DONE with `value`: wake what waits for it."""
        frame.value = value
        frame.state = DONE
        for waiter in frame.waiters:
            waiter.pending -= 1
            if waiter.pending == 0 and waiter.state == PENDING:
                self.ready.append(waiter)
        frame.waiters = NO_WAITERS  # a finished frame never gets new waiters

    def fail(self, frame: Frame, exc: BaseException, job: CallFrame | None = None) -> None:
        """Fail `frame` and, iteratively, everything waiting on it (unless a catch takes
        it). `job`: the call whose job raised `exc`, if it was one.

        Jobs end here: the job that raised, and every call whose own job had returned
        but a call in its result fails with it (``a call it made failed``). They end
        *caught* if the failure did not reach the root (a catch handled it), else failed.
        """
        # (job, error text, exception, whether the job itself raised it: traceback kept)
        ended: list[tuple[CallFrame, str, BaseException, bool]] = []
        if job is not None:
            ended.append((job, f"{type(exc).__name__}: {exc}", exc, True))
        stack: list[tuple[Frame, BaseException]] = [(frame, exc)]
        while stack:
            f, err = stack.pop()
            if f.state != PENDING:
                continue
            f.state = FAILED
            f.value = err  # read back as f.error
            if type(f) is AwaitFrame:  # the awaiting coroutine gets the exception
                f.awaiting.reject(err)
            if type(f) is CallFrame and f.phase == RESULT:
                ended.append((f, f"a call it made failed: {type(err).__name__}: {err}", err, False))
            for waiter in f.waiters:
                if type(waiter) is CatchFrame and self.catch_failure(waiter, err):
                    continue
                stack.append((waiter, err))
            f.waiters = NO_WAITERS
        if ended:
            root = self.root
            how = FAILED_ if root is None or root.state == FAILED else CAUGHT
            now = time.time()
            for f, error, err, raised in ended:
                self.job_ended(f, how, now, error, err, raised)

    def _not_ready(self, frame: Frame) -> None:
        raise LazyflowError(
            f"internal error: a {type(frame).__name__} in phase {PHASES[frame.phase]} was "
            "queued as ready. Please report this with the workflow."
        )

    # -- transitions: values, operations, catch ---------------------------------------
    def begin_value(self, frame: ValueFrame) -> None:
        self.wait_for_value(frame, frame.template)

    def value_ready(self, frame: ValueFrame) -> None:
        self.finish(frame, self.substitute(frame.template))

    def call_awaits(self, aw: Awaiting) -> None:
        """A coroutine of `aw.frame`'s job awaits an expression: evaluate it (its calls
        are children of that call), then hand the value back (`await_ready`)."""
        if aw.frame.state != PENDING or self.dispatcher.stopping:
            aw.reject(RunCancelled(f"execution {self.execution_id} is ending"))
            return
        self.ready.append(AwaitFrame(aw.expr, aw.frame, aw))

    def await_ready(self, frame: AwaitFrame) -> None:
        value = self.substitute(frame.template)
        self.finish(frame, value)
        frame.awaiting.resolve(value)

    def begin_apply(self, frame: ApplyFrame) -> None:
        self.wait_for_value(frame, (frame.expr.args, frame.expr.kwargs))

    def apply_operands_ready(self, frame: ApplyFrame) -> None:
        expr = frame.expr
        args = self.substitute(expr.args)
        kwargs = self.substitute(expr.kwargs)
        try:
            result = expr.fn(*args, **kwargs)
        except Exception as exc:
            exc.add_note(
                f"lazyflow: raised by lazy operation {expr.label} {format_args(args, kwargs)}"
            )
            self.fail(frame, exc)
            return
        if type(expr) is TagsExpression:
            try:
                self.record_tags(frame, expr, *args)
            except LazyflowError as exc:
                self.fail(frame, exc)
                return
        self.continue_with(frame, result)

    def record_tags(
        self, frame: ApplyFrame, expr: TagsExpression, value: Any, tags: Any, jobs: Any, runs: Any
    ) -> None:
        """`apply_tags` evaluated: its tags go on the value, on the job of the call whose
        body returned it (outside a task: the call `value` is) and on the execution."""
        value_tags = tag_items(tags, "tags")
        job_tags = tag_items(jobs, "job_tags")
        job = frame.context
        if job is None and expr.target_call is not None:
            target = self.frame_for(expr.target_call, None)
            job = target if isinstance(target, CallFrame) else None
        if job_tags and job is None:
            raise LazyflowError(
                f"apply_tags(): job_tags {dict(job_tags)!r} have no job to go on: this "
                "apply_tags is outside every task and its value is not a task call. Return "
                "it from a task, or tag the call itself: apply_tags(my_task(x), job_tags=...)."
            )
        digest = None
        if value_tags:
            try:
                digest = value_digest(value, self.known).hex()
            except UnhashableValue as exc:
                raise LazyflowError(
                    f"apply_tags(): the value {value!r:.80} cannot be hashed ({exc.reason}), "
                    "so tags cannot be attached to it; tag the job instead (job_tags=...)."
                ) from None
        self.recorder.tags(digest, job, value_tags, job_tags, tag_items(runs, "execution_tags"))

    def result_ready(self, frame: ApplyFrame | CatchFrame) -> None:
        """What an operation or a catch handler returned is evaluated."""
        assert frame.result is not None
        self.finish(frame, frame.result.value)

    def begin_catch(self, frame: CatchFrame) -> None:
        if frame.context is None:
            call = catch_call(frame.expr)
            if call is not None:
                # A catch outside any task is evaluated as a call, cached like one inside
                # a task (`functional.cached_catch`); its failures are that call's own.
                frame.handled = True
                frame.phase = RESULT
                sub = frame.result = self.frame_for(call, None)
                self.wait_on(frame, sub)
                return
        # A single dependency: once it fails, nothing else can wake this frame.
        frame.phase = ARGS
        inner = frame.inner = self.frame_for_value(frame.expr.expr, frame.context)
        if inner.state == FAILED and self.catch_failure(frame, inner.value):
            return  # it had failed already: the handler took it
        self.wait_on(frame, inner)

    def catch_inner_done(self, frame: CatchFrame) -> None:
        assert frame.inner is not None
        self.finish(frame, frame.inner.value)

    def catch_failure(self, frame: CatchFrame, exc: BaseException) -> bool:
        """A failure reached a catch: True if its handler took it (the catch then
        evaluates the handler's result), False to let it propagate."""
        if frame.handled or frame.state != PENDING:
            return False
        handler = frame.expr.handler_for(exc)
        if handler is None:
            return False
        frame.handled = True
        frame.pending = 0
        try:
            result = handler(exc)
        except Exception as err:
            self.fail(frame, err)
            return True
        self.continue_with(frame, result)
        return True

    # -- transitions: calls ------------------------------------------------------------
    def begin_call(self, frame: CallFrame) -> None:
        expr = frame.expr
        if not expr.kwargs:
            args = expr.args
            if _atoms(args):  # inc(i): nothing to wait for or walk
                frame.phase = ARGS
                self.call_known(frame, args, NO_KWARGS, True)
                return
            calls = _call_args(args)
            if calls is not None:  # inc(x), x a call: its frame is all there is to wait for
                frame.phase = ARGS
                self.wait_for_frames(frame, calls)
                return
        self.wait_for_value(frame, (expr.args, expr.kwargs))

    def call_args_ready(self, frame: CallFrame) -> None:
        """Arguments are known: hash the call, deduplicate, then look up or run."""
        expr = frame.expr
        if not expr.kwargs and frame.task._simple:
            given = self._plain_results(expr.args)
            if given is not None:  # x = inc(x): the results in hand, nothing to walk
                self.call_known(frame, given[0], NO_KWARGS, True, given[1])
                return
        self.call_known(frame, self.substitute(expr.args), self.substitute(expr.kwargs), False)

    def _plain_results(self, args: tuple[Any, ...]) -> tuple[tuple[Any, ...], list[Given]] | None:
        """`args`' values and, by position, the frame of each argument that is a call
        (or the digest of a list of calls' results), when every argument is a plain value
        (`values.ATOMS`), a call whose result is one, with its digest, or a list of such
        calls; else None (the general walk: `substitute`, File search).

        A chain of dependent calls (``x = inc(x)``) takes this way: the digest its
        argument's call computed for its result is the argument's digest (what hashing
        the value again would give), and that call is the argument's producer. So does a
        fan-in (``total([inc(i) for i in ...])``): the list's digest is made of its
        items' digests, as hashing it would (`hashing.list_digest`), without hashing
        each result again; a list has no producer (as in `dataflow.arg_producers`)."""
        values: list[Any] = []
        results: list[Given] = []
        frames = self.frames
        for arg in args:
            cls = type(arg)
            if cls is CallExpression:
                dep = _plain_result(arg, frames)
                if dep is None:
                    return None
                values.append(dep.value)
                results.append(dep)
            elif cls in ATOMS:
                values.append(arg)
                results.append(None)
            elif cls is list and arg:
                got = _list_of_results(arg, frames)
                if got is None:
                    return None
                values.append(got[0])
                results.append(got[1])
            else:
                return None
        return tuple(values), results

    def call_known(
        self,
        frame: CallFrame,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        atoms: bool,
        results: list[Given] | None = None,
    ) -> None:
        """The call's argument values are `args`, `kwargs` (`atoms`: all of them plain
        numbers, strings or bytes, which hold no File; `results`: by position, the frame
        of each that a call of this run returned, whose digest it is, see
        `_plain_results`): hash, deduplicate, then look up or run."""
        task = frame.task
        frame.args, frame.kwargs = args, kwargs
        frame.phase = LOOKUP
        cache_task = task.options.cache
        try:
            bound = task.bind(args, kwargs)
            known = self.known
            digests: list[tuple[str, bytes]] | None
            if results is None:
                digests = [(name, value_digest(value, known, root=name)) for name, value in bound]
            else:
                digests = _reused_digests(bound, results, known)
        except UnhashableValue as exc:
            if cache_task:
                self.fail(frame, _hashing_error(task, args, kwargs, exc))
                return
            digests = None  # cache=False: such a call is never merged with another
        except TypeError as exc:  # binding failed after substitution (e.g. **kwargs)
            self.fail(frame, exc)
            return
        self._note_inputs(frame, bound, digests, atoms, results)
        task_hash = task.hash  # a property (checked against the run's epoch): read once
        if digests is not None and cache_task:  # the usual call: no `_call_hash` hop
            call_hash = self.call_keys.call(task_hash, digests)
        else:
            call_hash = _call_hash(task, task_hash, digests, self.execution_id, self.call_keys)
        frame.call_hash = call_hash
        if self.listeners:
            self._emit("pending", frame)
        first = self.calls.get(call_hash)
        if first is not None and first is not frame:
            frame.phase = ALIAS
            frame.result = first
            if self.listeners:
                self._emit("merged", frame)
            self.wait_on(frame, first)
            return
        self.calls[call_hash] = frame
        # (the policy directly, not through `call_must_run`: one hop less per call)
        if not self.use_cache:
            self.policy.must_run(frame, Reason.CACHE_DISABLED, "caching is off for this run")
        elif not cache_task:
            self.policy.must_run(frame, Reason.CACHE_DISABLED, "caching is off on the task")
        elif self.lookups.worth_asking(task_hash):
            self.lookups.waiting.append(frame)
        else:
            self.policy.must_run(frame, Reason.NOT_CACHED, "no call of this task version is stored")

    def _note_inputs(
        self,
        frame: CallFrame,
        bound: list[tuple[str, Any]],
        digests: list[tuple[str, bytes]] | None,
        atoms: bool,
        results: list[Given] | None = None,
    ) -> None:
        """What recording the call needs of its arguments: the files among them (those
        of defaults too), their digests and which calls produced them (`dataflow`).
        `atoms`: the argument values are plain values (no File among them), given as
        such (no call among them) unless `results` names the calls that produced them."""
        args, kwargs = frame.args, frame.kwargs
        found = NO_ITEMS if atoms else iter_files(args)
        if kwargs:
            found = found + iter_files(kwargs)
        if len(bound) > len(args) + len(kwargs):  # defaults: their files are inputs too
            found = found + iter_files(defaulted(bound, len(args), kwargs))
        if found:
            frame.arg_files = [(f.path, f.content_hash, f.current_hash()) for f in found]
        # Kept until the call is recorded; a tuple is the smallest container.
        frame.arg_digests = tuple(digests or ())
        recorded = self.recorder.producers
        if results is not None:
            direct = [dep.call_hash if type(dep) is CallFrame else None for dep in results]
            producers = arg_producers(frame, digests or (), self.frames, recorded, direct)
            if producers is not None:
                recorded[frame] = producers
            return
        # Given plain values, an argument can only have been passed on from the caller's.
        if digests and (not atoms or (frame.context is not None and frame.context in recorded)):
            producers = arg_producers(frame, digests, self.frames, recorded)
            if producers is not None:
                self.recorder.producers[frame] = producers

    def alias_ready(self, frame: CallFrame) -> None:
        """An alias takes the result of the identical call that ran first."""
        first = frame.result
        assert isinstance(first, CallFrame)
        frame.digest = first.digest
        frame.tasks, frame.files, frame.vset_hash = first.tasks, first.files, first.vset_hash
        value = first.value
        release_call_state(frame)
        self.finish(frame, value)

    def call_cached(self, frame: CallFrame, value: Any, result_hash: str, vset_hash: str) -> None:
        """The store has the call's result, and it is still valid: reuse it."""
        digest = bytes.fromhex(result_hash)
        frame.digest = digest
        if type(value) not in CHEAP_TO_HASH:
            self.known[id(value)] = digest
        frame.tasks, frame.files = self.lookups.vsets[vset_hash]
        frame.vset_hash = vset_hash
        recorder = self.recorder
        recorder.stored_values.add(digest)
        if recorder.producers:
            recorder.producers.pop(frame, None)
        self.policy.reused(frame)
        self.job_ended(frame, CACHED, time.time(), result_hash=result_hash)
        release_call_state(frame)
        self.finish(frame, value)

    def call_must_run(self, frame: CallFrame, reason: Reason, detail: str) -> None:
        """The call is not reused (`reason`): it runs (a real run), or would (dry run)."""
        self.policy.must_run(frame, reason, detail)

    def call_reduced(self, frame: CallFrame, expr: Any, detail: str) -> None:
        """A task below the call changed, but not its code or arguments: the expression
        its body returned last time is evaluated instead of running the body (phase
        RESULT, as if the body had just returned it). Its job ends ``cached``: no body
        ran, though the result is new and recorded."""
        self.policy.reduced(frame, detail)
        frame.phase = RESULT
        frame.started = time.time()
        sub = self.frame_for_value(expr, frame)
        frame.result = sub
        self.wait_on(frame, sub)

    def job_outcome(self, frame: CallFrame, out: JobOutcome) -> None:
        """A job ended on an executor (or here): it raised, returned expressions, or
        returned its value."""
        if out.error is not None:
            self._job_raised(frame, out)
        elif out.has_expressions:
            if self.dispatcher.stopping:
                return
            if frame.task.options.cache:
                self.recorder.reduction(frame, out.value)
            frame.phase = RESULT
            sub = self.frame_for_value(out.value, frame)
            frame.result = sub
            self.wait_on(frame, sub)
        else:
            if out.data_error:
                log.warning(
                    "lazyflow: result of %s is not cached: %s", frame.task.name, out.data_error
                )
            self._call_returned(frame, out.value, out.digest, out)

    def call_result_ready(self, frame: CallFrame) -> None:
        """What the task returned is evaluated: that is the call's value."""
        assert frame.result is not None
        self._call_returned(frame, frame.result.value, None, None)

    def dispatch_failed(self, frame: CallFrame, exc: BaseException) -> None:
        """The call could not be started (no such executor, a limit it can never get, a
        refused submission): its job fails, and is recorded as failed."""
        self.fail(frame, exc, job=frame)

    def _job_raised(self, frame: CallFrame, out: JobOutcome) -> None:
        task = frame.task
        exc = out.error
        assert exc is not None
        if frame.attempts <= task.options.retries and not self.dispatcher.stopping:
            log.info(
                "lazyflow: %s failed (%s: %s); retry %d of %d",
                task.name,
                type(exc).__name__,
                exc,
                frame.attempts,
                task.options.retries,
            )
            if self.listeners:
                self._emit("retry", frame, error=f"{type(exc).__name__}: {exc}")
            self.dispatcher.put(frame)
            return
        if out.remote_traceback and exc.__traceback__ is None and exc.__cause__ is None:
            exc.__cause__ = RemoteTraceback(out.remote_traceback)
        if isinstance(exc, FileNotFoundError) and frame.arg_files:
            exc = _missing_file_error(frame, exc)
        note = (
            f"lazyflow: raised in task {task.name} called as "
            f"{task.short_name}({format_args(frame.args, frame.kwargs)})"
            f" [job {self.execution_id[:8]}.{frame.job_no}, attempt {frame.attempts}]"
        )
        if note not in getattr(exc, "__notes__", ()):
            exc.add_note(note)
        self.fail(frame, exc, job=frame)

    def _call_returned(
        self, frame: CallFrame, value: Any, digest: bytes | None, out: JobOutcome | None
    ) -> None:
        """An executed call has its final value: record it and wake its waiters."""
        task = frame.task
        now = time.time()
        result_files: list[tuple[str, bool, str | None]]
        if out is None:  # the value came from evaluating returned expressions
            result_files = [(f.path, f.content_hash, f.current_hash()) for f in iter_files(value)]
            try:
                digest = value_digest(value, self.known)
            except UnhashableValue as exc:
                log.warning("lazyflow: result of %s is not cached: %s", task.name, exc)
                digest = None
        else:
            result_files = out.files
        frame.digest = digest
        if digest is not None and type(value) not in CHEAP_TO_HASH:
            self.known[id(value)] = digest
        recorder = self.recorder
        recorder.validation_set(frame, result_files)
        # attempts == 0: its body never ran, its stored expression was evaluated again
        job = self.job_ended(frame, DONE_ if frame.attempts else CACHED, now)
        if digest is not None and not (out is not None and out.data is None and out.data_error):
            recorder.call(frame, job, value, digest, out, result_files, now)
        release_call_state(frame)
        self.finish(frame, value)

    # -- a job ended -------------------------------------------------------------------
    def job_ended(
        self,
        frame: CallFrame,
        how: JobEnd,
        finished: float,
        error: str | None = None,
        exc: BaseException | None = None,
        raised: bool = False,
        result_hash: str | None = None,
    ) -> JobRecord:
        """The one place a job ends: the run's counters, the job's record, its event.

        `how` is `CACHED`, `DONE_`, `FAILED_` or `CAUGHT` (it raised, a catch handled it:
        recorded as failed, counted as executed and caught, not as failed). `result_hash`:
        the hex of ``frame.digest`` where the caller has it (a cache hit's, from the store).
        """
        s = self.summary
        counts = s.by_task.get(frame.task.name)
        if counts is None:
            counts = s.by_task[frame.task.name] = TaskCounts()
        if how is CACHED:
            started = finished
            s.cached += 1
            counts.cached += 1
        else:
            started = frame.started
            counts.seconds += finished - started
            self.dedup.job_ended(frame)
            if how is FAILED_:
                s.failed += 1
                counts.failed += 1
            else:
                s.executed += 1
                counts.executed += 1
                if how is CAUGHT:
                    s.caught += 1
        job = self.recorder.job(frame, how[1], started, finished, error, exc, raised, result_hash)
        self.ended += 1
        if (
            self.ended % BACKLOG_CHECK_EVERY == 0
            or finished > self.writer_checked + BACKLOG_CHECK_SECONDS
        ):
            self.writer_checked = finished
            self.wait_for_writer()
        if self.listeners:
            reason = None
            if how is CACHED:  # phase RESULT: its stored returned expression was reused
                reason = Reason.EXPRESSION_REUSED if frame.phase == RESULT else Reason.CACHED
            self._emit(how[0], frame, finished - started, error, reason, job.traceback)
        return job

    def wait_for_writer(self) -> None:
        """If the store writer is far behind, let it catch up: queued records hold memory,
        and a crash loses what is not stored yet."""
        writer = self.writer
        if writer.backlog > WRITER_BACKLOG:
            writer.wait_below(WRITER_BACKLOG // 2)
        if writer.lag > WRITER_LAG_SECONDS:
            writer.wait_lag(WRITER_LAG_SECONDS / 2)

    # -- events and errors -------------------------------------------------------------
    def _notify(self, kind: str, frame: CallFrame, reason: Reason | None) -> None:
        self._emit(kind, frame, reason=reason)

    def _emit(
        self,
        kind: str,
        frame: CallFrame,
        seconds: float | None = None,
        error: str | None = None,
        reason: Reason | None = None,
        traceback: str | None = None,
    ) -> None:
        event = JobEvent(
            kind=kind,
            execution_id=self.execution_id,
            job_id=self.recorder.job_id(frame),
            task_name=frame.task.name,
            call_hash=frame.call_hash,
            args_preview=f"{frame.task.short_name}({format_args(frame.args, frame.kwargs)})",
            seconds=seconds,
            error=error,
            reason=reason,
            traceback=traceback,
        )
        for listener in self.listeners:
            try:
                listener(event)
            except Exception:
                log.exception("lazyflow: job listener %r failed", listener)

    def _stall_error(self, expr: Any) -> LazyflowError:
        """Nothing is ready, looked up, queued or running, yet the root is pending: a
        cycle of calls that wait for each other, or (if none is found) a bug."""
        cycle = find_cycle(self.all_frames())
        if cycle:
            calls = " -> ".join(
                f"{f.task.short_name}({format_args(f.args, f.kwargs)})" for f in cycle
            )
            return CycleError(
                f"these calls wait for each other's results, so none can finish: {calls}. "
                f"A call's result must not depend on the same call (task {cycle[0].task.name!r} "
                "with the same arguments): change the arguments of the inner call, or "
                "stop the recursion with cond(...)."
            )
        return LazyflowError(
            "internal error: evaluation stalled with no job running. Please report "
            f"this with the workflow; root expression: {expr!r:.200}"
        )


def find_cycle(frames: Iterable[Frame]) -> list[CallFrame]:
    """The calls of a cycle among pending frames (each waits, through frames that are
    not calls, for the next; the last waits for the first), outermost first; [] if none.

    A frame waits for each frame that lists it among its ``waiters``. Iterative depth
    first search: a cycle may run through thousands of frames.
    """
    waits_for: dict[int, list[Frame]] = {}
    pending = [f for f in frames if f.state == PENDING]
    seen = {id(f) for f in pending}
    todo = list(pending)  # and the frames only a waiters list knows (values' frames)
    while todo:
        f = todo.pop()
        for w in f.waiters:
            if w.state == PENDING:
                waits_for.setdefault(id(w), []).append(f)
                if id(w) not in seen:
                    seen.add(id(w))
                    pending.append(w)
                    todo.append(w)
    color: dict[int, int] = {}  # 1: on the current path, 2: done
    for start in sorted(pending, key=_order):
        if id(start) in color:
            continue
        path: list[Frame] = [start]
        color[id(start)] = 1
        nexts = [iter(waits_for.get(id(start), ()))]
        while path:
            nxt = next(nexts[-1], None)
            if nxt is None:
                color[id(path.pop())] = 2
                nexts.pop()
                continue
            state = color.get(id(nxt))
            if state == 1:  # back to a frame on the path: that is the cycle
                cycle = path[[id(f) for f in path].index(id(nxt)) :]
                return [f for f in cycle if isinstance(f, CallFrame)]
            if state is None:
                color[id(nxt)] = 1
                path.append(nxt)
                nexts.append(iter(waits_for.get(id(nxt), ())))
    return []


def _order(frame: Frame) -> int:
    """Calls in the order they were made (the outermost first), then other frames."""
    return frame.job_no if isinstance(frame, CallFrame) else 1 << 62


def _atoms(args: tuple[Any, ...]) -> bool:
    """Whether every argument is a plain number, string or bytes (`values.ATOMS`)."""
    return ATOMS.issuperset(map(type, args))


def _call_args(args: tuple[Any, ...]) -> list[CallExpression] | None:
    """The arguments that are calls, if every other one is a plain value (`values.ATOMS`),
    else None: what `collect` would find in `args`, without the walk."""
    calls: list[CallExpression] = []
    for arg in args:
        if type(arg) is CallExpression:
            calls.append(arg)
        elif type(arg) not in ATOMS:
            return None
    return calls


def _reused_digests(
    bound: list[tuple[str, Any]], results: list[Given], known: dict[int, bytes]
) -> list[tuple[str, bytes]]:
    """Argument digests of `bound` (a simple task's: by position, then defaults): the
    digest of the call that returned an argument where `results` has one, else hashed."""
    digests: list[tuple[str, bytes]] = []
    given = len(results)
    for i, (name, value) in enumerate(bound):
        dep = results[i] if i < given else None
        if isinstance(dep, CallFrame):
            digest = dep.digest
        else:  # the digest itself (a list of results), or None: hash the value
            digest = dep
        digests.append((name, value_digest(value, known, root=name) if digest is None else digest))
    return digests


def _list_of_results(
    items: list[Any], frames: dict[int, Frame] | None
) -> tuple[list[Any], bytes] | None:
    """The values of a list of calls of this run that all returned a plain value
    (`values.ATOMS`), and the list's digest from theirs; None for any other list."""
    values: list[Any] = []
    digests: list[bytes] = []
    for item in items:
        dep = _plain_result(item, frames) if type(item) is CallExpression else None
        if dep is None:
            return None
        values.append(dep.value)
        digests.append(dep.digest)  # type: ignore[arg-type]  # not None: _plain_result
    return values, list_digest(digests)


def _plain_result(expr: CallExpression, frames: dict[int, Frame] | None) -> CallFrame | None:
    """The frame of `expr` if it is a call of this run that returned a plain value
    (`values.ATOMS`) whose digest it holds, else None."""
    dep = expr._lf_frame if frames is None else frames.get(id(expr))
    if (
        type(dep) is not CallFrame
        or dep.state != DONE
        or dep.digest is None
        or type(dep.value) not in ATOMS
    ):
        return None
    return dep


def defaulted(bound: list[tuple[str, Any]], n_args: int, kwargs: Any) -> list[Any]:
    """The values of `bound` that came from the task's defaults (not given)."""
    return [v for i, (n, v) in enumerate(bound) if i >= n_args and n not in kwargs]


def _call_hash(
    task: Task,
    task_hash: str,
    digests: list[tuple[str, bytes]] | None,
    execution_id: str,
    keys: CallKeys,
) -> str:
    """A call's hash: its task's (`task_hash`: ``task.hash``) and its arguments' (`keys`:
    the run's `CallKeys`). A
    ``cache=False`` call's hash is its run's own (identical ones in a run are merged,
    never reused across runs); one whose arguments cannot be hashed (`digests` None) is
    merged with nothing."""
    if digests is None:
        return hash_struct("Uncached", task_hash, uuid.uuid4().hex)
    if task.options.cache:
        return keys.call(task_hash, digests)
    parts = [n.encode() + b"=" + d for n, d in digests]
    return hash_struct("Uncached", task_hash, execution_id, *parts)


def _hashing_error(task: Task, args: Any, kwargs: Any, exc: UnhashableValue) -> HashingError:
    return HashingError(
        f"task {task.name!r}: argument {exc.path} = {exc.value!r:.80} cannot be hashed "
        f"({exc.reason}), so the call {task.short_name}({format_args(args, kwargs)}) "
        "cannot be cached. Pass a plain value instead, teach lazyflow to hash the type "
        "with lazyflow_core.register_hasher(Type, fn), or mark the task "
        "@task(cache=False)."
    )


def _missing_file_error(frame: CallFrame, exc: FileNotFoundError) -> FileNotFoundError:
    """`exc` as a `MissingFileError` naming the task and the argument, if the file the
    task did not find is an argument that was absent when the call was made."""
    if isinstance(exc, LazyflowError):
        return exc
    missing = str(exc.filename or "")
    absent = [path for path, _content, file_hash in frame.arg_files if file_hash is None]
    path = next((p for p in absent if _same_path(p, missing)), None)
    if path is None:
        return exc
    task = frame.task
    name = next(
        (
            n
            for n, v in task.bind(frame.args, frame.kwargs)
            for f in iter_files(v)
            if f.path == path
        ),
        "?",
    )
    error = MissingFileError(
        f"task {task.name!r}: argument {name} = {path!r} does not exist (it did not when "
        f"{task.short_name}({format_args(frame.args, frame.kwargs)}) was called), and the "
        "task reads it. Create the file before the run, or pass the result of the task "
        "that writes it instead of a File of its path, so that call runs first."
    )
    error.filename = path
    error.__cause__ = exc
    return error


def _same_path(path: str, missing: str) -> bool:
    """Whether the path an OSError names is `path` (a local path, or a URL's path)."""
    if not missing:
        return False
    if os.path.abspath(path.removeprefix("file://")) == os.path.abspath(missing):
        return True
    return path.split("://", 1)[-1].strip("/") == missing.split("://", 1)[-1].strip("/")
