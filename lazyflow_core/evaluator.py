"""The evaluator: turns an expression into a value, one ready frame at a time.

State machine. Every expression being evaluated gets a *frame*. A frame waits for the
frames of the expressions it depends on (``pending`` counts them; each dependency lists
its ``waiters``). When ``pending`` drops to zero the frame goes on the ``ready`` queue.
The main loop pops ready frames and *steps* them; it never recurses, so a chain of
100,000 dependent calls or a recursion 10,000 deep is just a long queue, not a deep stack.

A call frame moves through phases::

    ARGS    its argument expressions are being evaluated
    LOOKUP  call hash known; waiting for a batched cache lookup
    RUN     submitted to an executor
    RESULT  the task returned expressions; evaluating them (context = this call)
    DONE / FAILED

Cache lookups are batched: every frame that reaches LOOKUP during one pass over the ready
queue is looked up in one query. A cached call is reused only if every task below it
still has the hash it had (its *validation set*) and every File it touched is unchanged;
then its subtree is not walked at all, which is why a fully cached run costs
O(distinct tasks + files), not O(calls).

Identical calls (same call hash) in flight are deduplicated: the later frame becomes an
alias of the first. Failures propagate to waiters iteratively; a `catch` frame may stop
them. Results and provenance are queued to the store writer; the scheduler thread does no
pickling and no database writes.

Memory. Every frame lives until the run ends (a later identical call, or the same
expression object met again, must find it), so per-call bytes set how large a run fits:
a frame is kept on its expression rather than in a dict (`_frame_pointers`), frames share
empty placeholders instead of owning empty containers, a recorded call drops what only
running and recording needed (`release_call_state`), small scalar results are not kept in
`known`, and the scheduler waits for the store writer when its queue grows past
`WRITER_BACKLOG` records, looking every `BACKLOG_CHECK_EVERY` finished jobs (a round of
inline calls or a burst of completions can finish thousands between two dispatches).
"""

from __future__ import annotations

import gc
import logging
import pickle
import queue
import threading
import time
import uuid
from collections import deque
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

from . import explain
from .errors import (
    ExecutorError,
    HashingError,
    LazyflowError,
    RemoteTraceback,
    RunCancelled,
    TaskResultError,
)
from .events import Decision, JobEvent, Reason, RunSummary, TaskCounts
from .executors.base import Executor, JobOutcome, JobSpec, run_call
from .expression import (
    ApplyExpression,
    CallExpression,
    CatchExpression,
    Expression,
    contains_expression,
    format_args,
)
from .files import iter_files
from .frames import (
    ALIAS,
    DONE,
    FAILED,
    LOOKUP,
    NO_CHILDREN,
    NO_DIGESTS,
    NO_ITEMS,
    NO_KWARGS,
    NO_WAITERS,
    NOT_BEGUN,
    PENDING,
    RESULT,
    RUN,
    ApplyFrame,
    CallFrame,
    CatchFrame,
    Frame,
    ValueFrame,
    collect,
)
from .frames import substitute as substitute_values
from .hashing import CHEAP_TO_HASH, UnhashableValue, hash_struct, value_digest
from .recording import Recorder, changed_file, stale_task
from .task import Task

if TYPE_CHECKING:
    from .store.writer import StoreWriter  # the evaluator only calls writer.put()

log = logging.getLogger("lazyflow.evaluator")

INLINE_SECONDS = 100e-6
"""Calls of a task measured to take less than this run on the scheduler thread."""
WRITER_BACKLOG = 200_000
"""Records the store writer may lag behind before the scheduler waits for it."""
GC_YOUNG_EVERY = 5_000
"""Calls between collections of the young generations while automatic GC is paused."""
BACKLOG_CHECK_EVERY = 256
"""Jobs finished between two looks at the store writer's backlog: a round of inline calls,
or a burst of completions from a pool, may finish thousands of calls, each queueing
records, between two passes of the dispatch loop."""
PROBE_CALLS = 4
PROBE_WINDOW = 16


_frame_pointers = threading.Lock()
"""Held by the one evaluator that keeps frames on expressions (``Expression._lf_frame``).

That evaluator clears every pointer it set when its run ends, then releases the lock, so
a finished run keeps nothing alive through expressions the user still holds. Evaluators
running meanwhile (another thread, a run inside a task) map ``id(expression) -> frame``
in a dict instead: sharing the pointers, they would overwrite each other's. If clearing
is ever interrupted (a second Ctrl-C), the lock stays held and stale pointers are never
read: every later run in the process uses the dict.
"""


class Evaluator:
    """Evaluates one expression for one `Scheduler.run`."""

    def __init__(
        self,
        *,
        execution_id: str,
        executors: dict[str, Executor],
        default_executor: str,
        store: Any,
        writer: StoreWriter | None,
        use_cache: bool,
        listeners: list[Any],
        limits: dict[str, int],
        dry_run: bool = False,
    ) -> None:
        self.execution_id = execution_id
        # Dry run (explain): nothing executes; each call gets a Decision instead.
        self.dry_run = dry_run
        self.decisions: list[Decision] = []
        self.miss_reasons: dict[int, tuple[str, str]] = {}
        self.executors = executors
        self.default_executor = default_executor
        self.store = store
        self.writer = writer
        self.use_cache = use_cache
        self.listeners = listeners
        self.limit_capacity = limits
        self.limit_used: dict[str, int] = {}
        self.limit_waiting: deque[CallFrame] = deque()
        # Frames of the expressions being evaluated: on the expressions themselves
        # (see `_frame_pointers`; `frame_list` remembers them, to clear and list them),
        # or, when another run holds the pointers, in `frames` by id(expression).
        self.frames: dict[int, Frame] | None = {}
        self.frame_list: list[Frame] = []
        self.calls: dict[str, CallFrame] = {}
        self.known: dict[int, bytes] = {}
        self.ready: deque[Frame] = deque()
        self.lookups: list[CallFrame] = []
        self.to_submit: list[CallFrame] = []
        # Task hashes with no call in the store at the start of this run: their calls
        # skip the lookup (a cold run of a new task issues one query, not one per call).
        self.task_has_calls: dict[str, bool] = {}
        # task hash -> (calls measured, seconds spent): decides inline execution.
        self.durations: dict[str, tuple[int, float]] = {}
        self.probing: dict[str, int] = {}
        self.deferred: dict[str, list[CallFrame]] = {}
        self.completions: queue.SimpleQueue[tuple[CallFrame, Future[JobOutcome]] | None] = (
            queue.SimpleQueue()
        )
        self.inflight = 0
        # Job ids: the execution's random prefix plus a counter (unique, and no uuid4
        # per job on the hot path).
        self.job_prefix = execution_id[:16]
        self.job_counter = 0
        self.collected_at = 0
        self.cancelled = False
        self.stopping = False
        self.summary = RunSummary(execution_id=execution_id)
        self.recorder = Recorder(execution_id, writer)
        self.loaded_vsets: dict[str, tuple[frozenset[Any], frozenset[Any]]] = {}
        self.valid_task_sets: dict[str, bool] = {}
        self.root_call: CallFrame | None = None

    # -- public ------------------------------------------------------------------------
    def evaluate(self, expr: Any) -> Any:
        if not contains_expression(expr):
            return expr
        # The frames of a run live until it ends, so every automatic full collection
        # would walk all of them again (14% of a 100k-call run, more at 1M). Automatic
        # collection pauses; young generations are still collected every few thousand
        # calls (cheap: only new objects), and everything is collected after the run.
        was_enabled = gc.isenabled()
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
            if was_enabled:
                gc.enable()

    def _evaluate(self, expr: Any) -> Any:
        root = self.frame_for_value(expr, None)
        if isinstance(root, CallFrame):
            self.root_call = root
        while root.state == PENDING:
            if self.cancelled:
                raise RunCancelled(f"execution {self.execution_id} was cancelled")
            while self.ready:
                frame = self.ready.popleft()
                if frame.state != PENDING:
                    continue
                if frame.pending == NOT_BEGUN:
                    frame.pending = 0
                    frame.begin(self)
                else:
                    frame.step(self)
                if root.state != PENDING:
                    break
            if root.state != PENDING:
                break
            if self.lookups:
                self.resolve_lookups()
                continue
            if self.job_counter - self.collected_at >= GC_YOUNG_EVERY:
                gc.collect(1)
                self.collected_at = self.job_counter
            if self.to_submit:
                self.wait_for_writer()
                self.dispatch()
                continue
            if self.dry_run:
                frames = self.frame_list if self.frames is None else self.frames.values()
                self.decisions += explain.blocked(frames)
                return None
            if self.inflight == 0:
                raise LazyflowError(
                    "internal error: evaluation stalled with no job running. Please report "
                    f"this with the workflow; root expression: {expr!r:.200}"
                )
            self.wait_for_jobs()
        if root.state == FAILED:
            self.drain()
            error = root.error
            assert error is not None
            raise error
        return root.value

    def cancel(self) -> None:
        self.cancelled = True
        self.completions.put(None)

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
        """Make `frame` wait for every expression inside `value`."""
        deps: list[Expression] = []
        collect(value, deps)
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

    def continue_with(self, frame: ApplyFrame | CatchFrame, result: Any) -> None:
        """Finish `frame` with `result`, evaluating it first if it holds expressions."""
        if not contains_expression(result):
            self.finish(frame, result)
            return
        if isinstance(frame, ApplyFrame):
            frame.phase = RESULT
        sub = self.frame_for_value(result, frame.context)
        frame.result = sub
        self.wait_on(frame, sub)

    def wait_on(self, frame: Frame, dep: Frame) -> None:
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

    def substitute(self, value: Any) -> Any:
        """`value` with every expression replaced by its computed value."""
        return substitute_values(value, self.frames)

    def finish(self, frame: Frame, value: Any) -> None:
        frame.value = value
        frame.state = DONE
        for waiter in frame.waiters:
            waiter.pending -= 1
            if waiter.pending == 0 and waiter.state == PENDING:
                self.ready.append(waiter)
        frame.waiters = NO_WAITERS  # a finished frame never gets new waiters

    def fail(self, frame: Frame, exc: BaseException) -> None:
        """Fail `frame` and, iteratively, everything waiting on it (unless caught)."""
        stack: list[tuple[Frame, BaseException]] = [(frame, exc)]
        while stack:
            f, err = stack.pop()
            if f.state != PENDING:
                continue
            f.state = FAILED
            f.value = err  # read back as f.error
            if isinstance(f, CallFrame) and f.phase == RESULT:
                # Its own job ran, but a call in its result failed: record it as failed
                # too, so the execution's call tree has its root.
                self._record_failed_parent(f, err)
            for waiter in f.waiters:
                if isinstance(waiter, CatchFrame) and waiter.handle(self, err):
                    continue
                stack.append((waiter, err))
            f.waiters = NO_WAITERS

    def _record_failed_parent(self, frame: CallFrame, err: BaseException) -> None:
        now = time.time()
        self.summary.jobs += 1
        self.summary.failed += 1
        self._counts(frame.task).failed += 1
        error = f"a call it made failed: {type(err).__name__}: {err}"
        self.recorder.job(frame, "failed", frame.started, now, error)
        if self.listeners:
            self._emit("failed", frame, now - frame.started, error)

    # -- calls -------------------------------------------------------------------------
    def prepare_call(self, frame: CallFrame) -> None:
        """Arguments are known: hash the call, deduplicate, then look up or run."""
        task = frame.task
        expr = frame.expr
        args = self.substitute(expr.args)
        kwargs = self.substitute(expr.kwargs)
        frame.args, frame.kwargs = args, kwargs
        frame.phase = LOOKUP
        cache_task = task.options.cache
        try:
            bound = task.bind(args, kwargs)
            known = self.known
            digests = [(name, value_digest(value, known, root=name)) for name, value in bound]
        except UnhashableValue as exc:
            if cache_task:
                self.fail(frame, self._hashing_error(task, args, kwargs, exc))
                return
            digests = []
        except TypeError as exc:  # binding failed after substitution (e.g. **kwargs)
            self.fail(frame, exc)
            return
        found = iter_files(args)
        if kwargs:
            found += iter_files(kwargs)
        if found:
            frame.arg_files = [(f.path, f.content_hash, f.current_hash()) for f in found]
        # Kept until the call is recorded; a tuple is the smallest container.
        frame.arg_digests = tuple(digests)
        if cache_task:
            call_hash = hash_struct("Call", task.hash, *[n.encode() + b"=" + d for n, d in digests])
        else:
            call_hash = hash_struct("Uncached", task.hash, uuid.uuid4().hex)
        frame.call_hash = call_hash
        if self.listeners:
            self._emit("pending", frame, None)
        first = self.calls.get(call_hash)
        if first is not None and first is not frame:
            frame.phase = ALIAS
            frame.result = first
            self.wait_on(frame, first)
            return
        self.calls[call_hash] = frame
        if self.use_cache and cache_task and self.task_has_calls.get(task.hash, True):
            self.lookups.append(frame)
        else:
            self.submit(frame)

    def _hashing_error(
        self, task: Task, args: Any, kwargs: Any, exc: UnhashableValue
    ) -> HashingError:
        return HashingError(
            f"task {task.name!r}: argument {exc.path} = {exc.value!r:.80} cannot be hashed "
            f"({exc.reason}), so the call {task.short_name}({format_args(args, kwargs)}) "
            "cannot be cached. Pass a plain value instead, teach lazyflow to hash the type "
            "with lazyflow_core.register_hasher(Type, fn), or mark the task "
            "@task(cache=False)."
        )

    def adopt(self, frame: CallFrame, first: CallFrame) -> None:
        """An alias takes the result of the identical call that ran first."""
        frame.digest = first.digest
        frame.tasks, frame.files, frame.vset_hash = first.tasks, first.files, first.vset_hash
        frame.call_hash = first.call_hash
        value = first.value
        release_call_state(frame)
        self.finish(frame, value)

    def resolve_lookups(self) -> None:
        frames, self.lookups = self.lookups, []
        unknown = {f.task.hash for f in frames} - self.task_has_calls.keys()
        if unknown:
            found = self.store.tasks_with_calls(sorted(unknown))
            for h in unknown:
                self.task_has_calls[h] = h in found
        hopeless = [f for f in frames if not self.task_has_calls[f.task.hash]]
        if hopeless:
            for f in hopeless:
                self.submit(f)
            frames = [f for f in frames if self.task_has_calls[f.task.hash]]
            if not frames:
                return
        hits = self.store.lookup_calls([f.call_hash for f in frames])
        if not hits:
            for f in frames:
                self.submit(f)
            return
        missing_vsets = [v for _, v in hits.values() if v not in self.loaded_vsets]
        if missing_vsets:
            for h, (tasks, files) in self.store.load_validation_sets(
                sorted(set(missing_vsets))
            ).items():
                self.loaded_vsets[h] = (
                    frozenset((n, th) for n, th in tasks),
                    frozenset((p, bool(c), fh) for p, c, fh in files),
                )
        valid: list[tuple[CallFrame, str, str]] = []
        for f in frames:
            hit = hits.get(f.call_hash)
            if hit is not None and self._valid(hit[1]):
                valid.append((f, hit[0], hit[1]))
            else:
                if hit is not None and self.dry_run:
                    self.miss_reasons[id(f)] = explain.invalid_reason(self.loaded_vsets.get(hit[1]))
                self.submit(f)
        if not valid:
            return
        datas = self.store.load_value_data(sorted({r for _, r, _ in valid}))
        for f, result_hash, vset_hash in valid:
            data = datas.get(result_hash)
            try:
                if data is None:
                    raise LookupError("the stored value or its blob is missing")
                value = pickle.loads(data)
            except Exception as exc:
                log.warning(
                    "lazyflow: cached result of %s (value %s) cannot be loaded (%s: %s); "
                    "re-running the call",
                    f.task.name,
                    result_hash[:12],
                    type(exc).__name__,
                    exc,
                )
                self.recorder.corrupt_values.add(result_hash)
                self.miss_reasons[id(f)] = (Reason.VALUE_UNREADABLE, f"{type(exc).__name__}: {exc}")
                self.submit(f)
                continue
            self.finish_cached(f, value, result_hash, vset_hash)

    def _valid(self, vset_hash: str) -> bool:
        """A cached call is reusable: no task below it changed and no file it touched."""
        vset = self.loaded_vsets.get(vset_hash)
        if vset is None:
            return False
        tasks, files = vset
        ok = self.valid_task_sets.get(vset_hash)  # tasks don't change during a run
        if ok is None:
            ok = self.valid_task_sets[vset_hash] = stale_task(tasks) is None
        return ok and (not files or changed_file(files) is None)

    def finish_cached(self, frame: CallFrame, value: Any, result_hash: str, vset_hash: str) -> None:
        frame.phase = RESULT
        digest = bytes.fromhex(result_hash)
        frame.digest = digest
        if type(value) not in CHEAP_TO_HASH:
            self.known[id(value)] = digest
        frame.tasks, frame.files = self.loaded_vsets[vset_hash]
        frame.vset_hash = vset_hash
        self.recorder.stored_values.add(digest)
        now = time.time()
        s = self.summary
        s.jobs += 1
        s.cached += 1
        self._counts(frame.task).cached += 1
        self.recorder.job(frame, "cached", now, now)
        if s.jobs % BACKLOG_CHECK_EVERY == 0:
            self.wait_for_writer()
        if self.listeners:
            self._emit("cached", frame, 0.0)
        if self.dry_run:
            self.decisions.append(explain.decision(frame, "cached", Reason.CACHED))
        release_call_state(frame)
        self.finish(frame, value)

    # -- running -----------------------------------------------------------------------
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

    def submit(self, frame: CallFrame) -> None:
        """Queue `frame` to run; `dispatch` sends the queue to executors."""
        if self.dry_run:
            self.decisions.append(explain.diagnose(self, frame))
        elif not self.stopping and frame.state == PENDING:
            self.to_submit.append(frame)

    def dispatch(self) -> None:
        """Send queued jobs to their executors, or run them right here.

        A thread-executor job runs on the scheduler thread itself when handing it to a
        pool thread would cost more than it can gain: when it is the only work there is
        (a chain of dependent calls: no parallelism to gain), or when calls of its task
        have been measured to finish in under `INLINE_SECONDS` (tiny tasks only contend
        for the GIL in a pool; two thread hand-offs per call cost more than the call).
        """
        frames, self.to_submit = self.to_submit, []
        lone = len(frames) == 1 and self.inflight == 0 and not self.ready and not self.lookups
        for frame in frames:
            if self.stopping or frame.state != PENDING:
                continue
            task = frame.task
            try:
                executor = self.executor_for(task)
            except ExecutorError as exc:
                self.fail(frame, exc)
                continue
            if getattr(executor, "inline", False) and not task.options.limits:
                stats = self.durations.get(task.hash)
                measured = stats is not None and stats[0] >= PROBE_CALLS
                if lone or (measured and stats[1] < INLINE_SECONDS * stats[0]):  # type: ignore[index]
                    self._run_inline(frame)
                    continue
                if not measured:
                    # Until a few calls of this task have been timed, keep only a small
                    # window in the pool; the rest wait here for the verdict.
                    probing = self.probing.get(task.hash, 0)
                    if probing >= PROBE_WINDOW:
                        self.deferred.setdefault(task.hash, []).append(frame)
                        continue
                    self.probing[task.hash] = probing + 1
            self._submit_now(frame, executor)
        for executor in self.executors.values():
            executor.flush()

    def wait_for_writer(self) -> None:
        """If the store writer is far behind, let it catch up: queued records hold memory."""
        writer = self.writer
        if writer is not None and writer.backlog > WRITER_BACKLOG:
            writer.wait_below(WRITER_BACKLOG // 2)

    def _run_inline(self, frame: CallFrame) -> None:
        frame.phase = RUN
        frame.attempts += 1
        if frame.attempts == 1:
            frame.started = time.time()
            if self.listeners:
                self._emit("started", frame, None)
        self.handle_outcome(frame, run_call(frame.task, frame.args, frame.kwargs))

    def _submit_now(self, frame: CallFrame, executor: Executor) -> None:
        task = frame.task
        limits = task.options.limits
        if limits and not self._acquire(frame, limits):
            return
        frame.phase = RUN
        frame.attempts += 1
        if frame.attempts == 1:
            frame.started = time.time()
        spec = JobSpec(self.recorder.job_id(frame), task, frame.args, frame.kwargs, frame.attempts)
        try:
            future = executor.submit(spec)
        except Exception as exc:
            self._release(task)
            self.fail(frame, exc)
            return
        self.inflight += 1
        put = self.completions.put
        future.add_done_callback(lambda fut, f=frame: put((f, fut)))  # type: ignore[misc]
        if self.listeners and frame.attempts == 1:
            self._emit("started", frame, None)

    def _acquire(self, frame: CallFrame, limits: dict[str, int]) -> bool:
        for name, amount in limits.items():
            capacity = self.limit_capacity.get(name, 1)
            if amount > capacity:
                self.fail(
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
        limits = task.options.limits
        if not limits:
            return
        for name, amount in limits.items():
            self.limit_used[name] -= amount
        waiting, self.limit_waiting = self.limit_waiting, deque()
        for frame in waiting:
            self.submit(frame)  # back through dispatch

    def wait_for_jobs(self) -> None:
        item = self.completions.get()
        while True:
            if item is None:
                if self.cancelled:
                    return
            else:
                self.inflight -= 1
                self.handle_outcome(*item)
            try:
                item = self.completions.get_nowait()
            except queue.Empty:
                return

    def drain(self) -> None:
        """After a fatal failure: let running jobs finish and record them."""
        self.stopping = True
        self.limit_waiting.clear()
        self.deferred.clear()
        while self.inflight > 0 and not self.cancelled:
            self.wait_for_jobs()

    def handle_outcome(self, frame: CallFrame, result: Future[JobOutcome] | JobOutcome) -> None:
        task = frame.task
        self._release(task)
        if isinstance(result, JobOutcome):
            out = result
        else:
            try:
                out = result.result()
            except BaseException as exc:  # executor failure (e.g. a killed worker)
                out = JobOutcome(error=exc, started=frame.started, finished=time.time())
        if task.hash in self.probing:
            self.probing[task.hash] -= 1
            waiting = self.deferred.pop(task.hash, None)
            if waiting:
                self.to_submit.extend(waiting)
        if out.finished:
            stats = self.durations.get(task.hash)
            spent = out.finished - out.started
            self.durations[task.hash] = (
                (1, spent) if stats is None else (stats[0] + 1, stats[1] + spent)
            )
        if out.error is not None:
            self._job_failed(frame, out)
            return
        if out.has_expressions:
            if self.stopping:
                return
            frame.phase = RESULT
            sub = self.frame_for_value(out.value, frame)
            frame.result = sub
            self.wait_on(frame, sub)
            return
        if out.data_error and self.writer is not None:
            log.warning("lazyflow: result of %s is not cached: %s", task.name, out.data_error)
        self.finish_call(frame, out.value, out.digest, out)

    def _job_failed(self, frame: CallFrame, out: JobOutcome) -> None:
        task = frame.task
        exc = out.error
        assert exc is not None
        if frame.attempts <= task.options.retries and not self.stopping:
            log.info(
                "lazyflow: %s failed (%s: %s); retry %d of %d",
                task.name,
                type(exc).__name__,
                exc,
                frame.attempts,
                task.options.retries,
            )
            if self.listeners:
                self._emit("retry", frame, None, f"{type(exc).__name__}: {exc}")
            self.submit(frame)
            return
        if out.remote_traceback and exc.__traceback__ is None and exc.__cause__ is None:
            exc.__cause__ = RemoteTraceback(out.remote_traceback)
        note = (
            f"lazyflow: raised in task {task.name} called as "
            f"{task.short_name}({format_args(frame.args, frame.kwargs)})"
            f" [job {self.execution_id[:8]}.{frame.job_no}, attempt {frame.attempts}]"
        )
        if note not in getattr(exc, "__notes__", ()):
            exc.add_note(note)
        now = time.time()
        s = self.summary
        s.jobs += 1
        s.failed += 1
        counts = self._counts(task)
        counts.failed += 1
        counts.seconds += now - frame.started
        self.recorder.job(frame, "failed", frame.started, now, f"{type(exc).__name__}: {exc}")
        if self.listeners:
            self._emit("failed", frame, now - frame.started, f"{type(exc).__name__}: {exc}")
        self.fail(frame, exc)

    def finish_call(
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
        self.recorder.validation_set(frame, result_files)
        s = self.summary
        s.jobs += 1
        s.executed += 1
        counts = self._counts(task)
        counts.executed += 1
        counts.seconds += now - frame.started
        if self.writer is not None:
            self.recorder.record(frame, value, digest, out, result_files, now)
            if s.jobs % BACKLOG_CHECK_EVERY == 0:
                self.wait_for_writer()
        if self.listeners:
            self._emit("done", frame, now - frame.started)
        release_call_state(frame)
        self.finish(frame, value)

    # -- reporting ---------------------------------------------------------------------
    def _counts(self, task: Task) -> TaskCounts:
        counts = self.summary.by_task.get(task.name)
        if counts is None:
            counts = self.summary.by_task[task.name] = TaskCounts()
        return counts

    def _emit(
        self, kind: str, frame: CallFrame, seconds: float | None, error: str | None = None
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
        )
        for listener in self.listeners:
            try:
                listener(event)
            except Exception:
                log.exception("lazyflow: job listener %r failed", listener)


def release_call_state(frame: CallFrame) -> None:
    """Drop what only running and recording a call needed, once it is recorded.

    A run keeps every call frame until it ends (a later identical call reuses it), so
    what stays must be what reuse needs: value, digest, call hash and validation set.
    The job row already queued keeps the arguments it shows until it is written.
    """
    frame.children = NO_CHILDREN
    frame.arg_digests = NO_DIGESTS
    frame.arg_files = NO_ITEMS
    frame.args = ()
    frame.kwargs = NO_KWARGS
    frame.result = None
    frame.started = 0.0
