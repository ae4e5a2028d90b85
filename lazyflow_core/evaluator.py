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
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import pickle
import queue
import time
import uuid
from collections import deque
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

from .errors import (
    ExecutorError,
    HashingError,
    LazyflowError,
    RunCancelled,
    TaskResultError,
)
from .events import Decision, JobEvent, Reason, RunSummary, TaskCounts
from .executors.base import Executor, JobOutcome, JobSpec, run_job
from .expression import (
    ApplyExpression,
    CallExpression,
    CatchExpression,
    Expression,
    Quote,
    contains_expression,
    format_args,
    short_repr,
)
from .files import File, iter_files
from .hashing import UnhashableValue, hash_struct, value_digest
from .task import Task, get_task

if TYPE_CHECKING:
    from .store.writer import StoreWriter  # the evaluator only calls writer.put()

log = logging.getLogger("lazyflow.evaluator")

PENDING, DONE, FAILED = 0, 1, 2
ARGS, LOOKUP, RUN, RESULT = 0, 1, 2, 3

EMPTY: frozenset[Any] = frozenset()
_NO_CHILDREN: list[Any] = []  # shared placeholders, never appended to
_NO_WAITERS: list[Any] = []
_NO_ITEMS: list[Any] = []
INLINE_SECONDS = 100e-6
"""Calls of a task measured to take less than this run on the scheduler thread."""
WRITER_BACKLOG = 200_000
"""Records the store writer may lag behind before the scheduler waits for it."""
PROBE_CALLS = 4
PROBE_WINDOW = 16


class RemoteTraceback(Exception):
    """The traceback of an exception raised in another process (shown as the cause)."""

    def __init__(self, tb: str) -> None:
        super().__init__(tb)
        self.tb = tb

    def __str__(self) -> str:
        return f'\n"""\n{self.tb}"""'


class Frame:
    """Evaluation state of one expression."""

    __slots__ = ("begun", "context", "error", "pending", "state", "value", "waiters")

    def __init__(self, context: CallFrame | None) -> None:
        self.context = context
        self.waiters: list[Frame] = []
        self.pending = 0
        self.state = PENDING
        self.begun = False
        self.value: Any = None
        self.error: BaseException | None = None

    def begin(self, ev: Evaluator) -> None:
        raise NotImplementedError

    def step(self, ev: Evaluator) -> None:
        raise NotImplementedError


class ValueFrame(Frame):
    """A plain value (list, dict, dataclass...) holding expressions."""

    __slots__ = ("template",)

    def __init__(self, template: Any, context: CallFrame | None) -> None:
        super().__init__(context)
        self.template = template

    def begin(self, ev: Evaluator) -> None:
        ev.wait_for_value(self, self.template)

    def step(self, ev: Evaluator) -> None:
        ev.finish(self, ev.substitute(self.template))


class ApplyFrame(Frame):
    """An operator or control form applied on the scheduler thread."""

    __slots__ = ("expr", "phase", "result")

    def __init__(self, expr: ApplyExpression, context: CallFrame | None) -> None:
        super().__init__(context)
        self.expr = expr
        self.phase = ARGS
        self.result: Frame | None = None

    def begin(self, ev: Evaluator) -> None:
        ev.wait_for_value(self, (self.expr.args, self.expr.kwargs))

    def step(self, ev: Evaluator) -> None:
        if self.phase == RESULT:
            assert self.result is not None
            ev.finish(self, self.result.value)
            return
        expr = self.expr
        args = ev.substitute(expr.args)
        kwargs = ev.substitute(expr.kwargs)
        try:
            result = expr.fn(*args, **kwargs)
        except Exception as exc:
            exc.add_note(
                f"lazyflow: raised by lazy operation {expr.label} {format_args(args, kwargs)}"
            )
            ev.fail(self, exc)
            return
        ev.continue_with(self, result)


class CatchFrame(Frame):
    """Evaluates its expression; on a matching failure, evaluates the handler's result."""

    __slots__ = ("expr", "handled", "inner", "result")

    def __init__(self, expr: CatchExpression, context: CallFrame | None) -> None:
        super().__init__(context)
        self.expr = expr
        self.inner: Frame | None = None
        self.handled = False
        self.result: Frame | None = None

    def begin(self, ev: Evaluator) -> None:
        # A single dependency: once it fails, nothing else can wake this frame.
        self.inner = ev.frame_for_value(self.expr.expr, self.context)
        ev.wait_on(self, self.inner)

    def step(self, ev: Evaluator) -> None:
        done = self.result if self.result is not None else self.inner
        assert done is not None
        ev.finish(self, done.value)

    def handle(self, ev: Evaluator, exc: BaseException) -> bool:
        """Try to recover from `exc`; True if a handler took it."""
        if self.handled or self.state != PENDING:
            return False
        handler = self.expr.handler_for(exc)
        if handler is None:
            return False
        self.handled = True
        self.pending = 0
        try:
            result = handler(exc)
        except Exception as err:
            ev.fail(self, err)
            return True
        ev.continue_with(self, result)
        return True


class CallFrame(Frame):
    """A task call: arguments, then cache lookup or execution, then its result."""

    __slots__ = (
        "alias",
        "arg_digests",
        "arg_files",
        "args",
        "attempts",
        "cached",
        "call_hash",
        "children",
        "digest",
        "expr",
        "files",
        "job_no",
        "kwargs",
        "phase",
        "result",
        "started",
        "task",
        "tasks",
        "vset_hash",
    )

    def __init__(self, expr: CallExpression, context: CallFrame | None, job_no: int) -> None:
        super().__init__(context)
        self.expr = expr
        self.task: Task = expr.task
        self.phase = ARGS
        self.children: list[CallFrame] = []
        self.call_hash: str | None = None
        self.arg_digests: list[tuple[str, bytes]] = []
        self.arg_files: list[tuple[str, bool, str | None]] = []
        self.args: tuple[Any, ...] = ()
        self.kwargs: dict[str, Any] = {}
        self.job_no = job_no
        self.attempts = 0
        self.cached = False
        self.alias: CallFrame | None = None
        self.result: Frame | None = None
        self.digest: bytes | None = None
        self.started = 0.0
        self.tasks: frozenset[tuple[str, str]] = EMPTY
        self.files: frozenset[tuple[str, bool, str | None]] = EMPTY
        self.vset_hash: str | None = None

    def begin(self, ev: Evaluator) -> None:
        ev.wait_for_value(self, (self.expr.args, self.expr.kwargs))

    def step(self, ev: Evaluator) -> None:
        if self.phase == ARGS:
            ev.prepare_call(self)
        elif self.phase == RESULT:
            assert self.result is not None
            ev.finish_call(self, self.result.value, None, None)
        elif self.alias is not None:
            ev.adopt(self, self.alias)


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
        self.frames: dict[int, Frame] = {}
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
        self.cancelled = False
        self.stopping = False
        self.summary = RunSummary(execution_id=execution_id)
        # Digests (the bytes objects frames already hold) of values known to be stored.
        self.stored_values: set[bytes] = set()
        self.corrupt_values: set[str] = set()
        self.recorded_tasks: set[str] = set()
        self.vsets: dict[tuple[frozenset[Any], frozenset[Any]], str] = {}
        self.own_tasks: dict[str, frozenset[tuple[str, str]]] = {}
        self.loaded_vsets: dict[str, tuple[frozenset[Any], frozenset[Any]]] = {}
        self.valid_task_sets: dict[str, bool] = {}
        self.root_call: CallFrame | None = None

    # -- public ------------------------------------------------------------------------
    def evaluate(self, expr: Any) -> Any:
        if not contains_expression(expr):
            return expr
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
                if frame.begun:
                    frame.step(self)
                else:
                    frame.begun = True
                    frame.begin(self)
                if root.state != PENDING:
                    break
            if root.state != PENDING:
                break
            if self.lookups:
                self.resolve_lookups()
                continue
            if self.to_submit:
                writer = self.writer
                if writer is not None and writer.backlog > WRITER_BACKLOG:
                    # The store is behind: queued records hold memory. Let it catch up.
                    writer.wait_below(WRITER_BACKLOG // 2)
                self.dispatch()
                continue
            if self.dry_run:
                self._explain_blocked()
                return None
            if self.inflight == 0:
                raise LazyflowError(
                    "internal error: evaluation stalled with no job running. Please report "
                    f"this with the workflow; root expression: {expr!r:.200}"
                )
            self.wait_for_jobs()
        if root.state == FAILED:
            self.drain()
            assert root.error is not None
            raise root.error
        return root.value

    def cancel(self) -> None:
        self.cancelled = True
        self.completions.put(None)

    # -- frames ------------------------------------------------------------------------
    def frame_for(self, expr: Expression, context: CallFrame | None) -> Frame:
        frame = self.frames.get(id(expr))
        if frame is None:
            if isinstance(expr, CallExpression):
                self.job_counter += 1
                frame = CallFrame(expr, context, self.job_counter)
                if context is not None:
                    context.children.append(frame)
            elif isinstance(expr, ApplyExpression):
                frame = ApplyFrame(expr, context)
            elif isinstance(expr, CatchExpression):
                frame = CatchFrame(expr, context)
            else:
                raise TaskResultError(f"unknown expression type {type(expr).__name__}")
            self.frames[id(expr)] = frame
            self.ready.append(frame)
        elif isinstance(frame, CallFrame) and context is not None and frame.context is not context:
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
        _collect(value, deps)
        context = frame.context
        for expr in deps:
            dep = self.frame_for(expr, context)
            if dep.state == DONE:
                continue
            if dep.state == FAILED:
                assert dep.error is not None
                self.fail(frame, dep.error)
                return
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
        else:
            dep.waiters.append(frame)
            frame.pending += 1

    def substitute(self, value: Any) -> Any:
        """`value` with every expression replaced by its computed value."""
        return _substitute(value, self.frames)

    def finish(self, frame: Frame, value: Any) -> None:
        frame.value = value
        frame.state = DONE
        for waiter in frame.waiters:
            waiter.pending -= 1
            if waiter.pending == 0 and waiter.state == PENDING:
                self.ready.append(waiter)
        frame.waiters = _NO_WAITERS  # a finished frame never gets new waiters

    def fail(self, frame: Frame, exc: BaseException) -> None:
        """Fail `frame` and, iteratively, everything waiting on it (unless caught)."""
        stack: list[tuple[Frame, BaseException]] = [(frame, exc)]
        while stack:
            f, err = stack.pop()
            if f.state != PENDING:
                continue
            f.state = FAILED
            f.error = err
            if isinstance(f, CallFrame) and f.phase == RESULT:
                # Its own job ran, but a call in its result failed: record it as failed
                # too, so the execution's call tree has its root.
                self._record_failed_parent(f, err)
            for waiter in f.waiters:
                if isinstance(waiter, CatchFrame) and waiter.handle(self, err):
                    continue
                stack.append((waiter, err))
            f.waiters = _NO_WAITERS

    def _record_failed_parent(self, frame: CallFrame, err: BaseException) -> None:
        now = time.time()
        self.summary.jobs += 1
        self.summary.failed += 1
        self._counts(frame.task).failed += 1
        error = f"a call it made failed: {type(err).__name__}: {err}"
        if self.writer is not None:
            self.writer.put(
                "job", job_row(self.execution_id, frame, "failed", frame.started, now, error=error)
            )
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
        frame.arg_digests = digests
        found = iter_files(args)
        if kwargs:
            found += iter_files(kwargs)
        if found:
            frame.arg_files = [(f.path, f.content_hash, f.current_hash()) for f in found]
        if cache_task:
            call_hash = hash_struct("Call", task.hash, *[n.encode() + b"=" + d for n, d in digests])
        else:
            call_hash = hash_struct("Uncached", task.hash, uuid.uuid4().hex)
        frame.call_hash = call_hash
        if self.listeners:
            self._emit("pending", frame, None)
        first = self.calls.get(call_hash)
        if first is not None and first is not frame:
            frame.alias = first
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
        frame.cached = first.cached
        frame.call_hash = first.call_hash
        self.finish(frame, first.value)

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
            if hit is not None and self._valid(*hit):
                valid.append((f, hit[0], hit[1]))
            else:
                if hit is not None and self.dry_run:
                    self.miss_reasons[id(f)] = self._invalid_reason(hit[1])
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
                self.corrupt_values.add(result_hash)
                self.miss_reasons[id(f)] = (Reason.VALUE_UNREADABLE, f"{type(exc).__name__}: {exc}")
                self.submit(f)
                continue
            self.finish_cached(f, value, result_hash, vset_hash)

    def _valid(self, result_hash: str, vset_hash: str) -> bool:
        vset = self.loaded_vsets.get(vset_hash)
        if vset is None:
            return False
        tasks, files = vset
        ok = self.valid_task_sets.get(vset_hash)
        if ok is None:
            ok = True
            for name, task_hash in tasks:
                current = get_task(name)
                if current is None or current.hash != task_hash:
                    ok = False
                    break
            self.valid_task_sets[vset_hash] = ok
        if not ok:
            return False
        for path, content, file_hash in files:
            if File(path, content_hash=content).current_hash() != file_hash:
                return False
        return True

    def finish_cached(self, frame: CallFrame, value: Any, result_hash: str, vset_hash: str) -> None:
        frame.cached = True
        frame.phase = RESULT
        digest = bytes.fromhex(result_hash)
        frame.digest = digest
        self.known[id(value)] = digest
        frame.tasks, frame.files = self.loaded_vsets[vset_hash]
        frame.vset_hash = vset_hash
        self.stored_values.add(digest)
        now = time.time()
        s = self.summary
        s.jobs += 1
        s.cached += 1
        self._counts(frame.task).cached += 1
        if self.writer is not None:
            self.writer.put("job", job_row(self.execution_id, frame, "cached", now, now))
        if self.listeners:
            self._emit("cached", frame, 0.0)
        if self.dry_run:
            self.decisions.append(self._decision(frame, "cached", Reason.CACHED))
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
            self.decisions.append(self._diagnose(frame))
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

    def _run_inline(self, frame: CallFrame) -> None:
        frame.phase = RUN
        frame.attempts += 1
        if frame.attempts == 1:
            frame.started = time.time()
            if self.listeners:
                self._emit("started", frame, None)
        spec = JobSpec(self.job_id(frame), frame.task, frame.args, frame.kwargs, frame.attempts)
        self.handle_outcome(frame, run_job(spec))

    def _submit_now(self, frame: CallFrame, executor: Executor) -> None:
        task = frame.task
        limits = task.options.limits
        if limits and not self._acquire(frame, limits):
            return
        frame.phase = RUN
        frame.attempts += 1
        if frame.attempts == 1:
            frame.started = time.time()
        spec = JobSpec(self.job_id(frame), task, frame.args, frame.kwargs, frame.attempts)
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
        if self.writer is not None:
            self.writer.put(
                "job",
                job_row(
                    self.execution_id,
                    frame,
                    "failed",
                    frame.started,
                    now,
                    error=f"{type(exc).__name__}: {exc}",
                ),
            )
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
        if digest is not None:
            self.known[id(value)] = digest
        self._validation_set(frame, result_files)
        s = self.summary
        s.jobs += 1
        s.executed += 1
        counts = self._counts(task)
        counts.executed += 1
        counts.seconds += now - frame.started
        if self.writer is not None:
            self._record(frame, value, digest, out, result_files, now)
        if self.listeners:
            self._emit("done", frame, now - frame.started)
        # Recorded: drop what only recording needed (a million-call run keeps every frame).
        frame.children = _NO_CHILDREN
        frame.arg_digests = frame.arg_files = _NO_ITEMS
        self.finish(frame, value)

    def _validation_set(
        self, frame: CallFrame, result_files: list[tuple[str, bool, str | None]]
    ) -> None:
        task = frame.task
        tasks = self.own_tasks.get(task.hash)
        if tasks is None:
            tasks = self.own_tasks[task.hash] = frozenset(((task.name, task.hash),))
        files: frozenset[tuple[str, bool, str | None]] = EMPTY
        own_files = frame.arg_files + result_files
        if own_files:
            files = frozenset(own_files)
        for child in frame.children:
            ct, cf = child.tasks, child.files
            if ct is not tasks and not ct <= tasks:
                tasks = tasks | ct
            if cf and cf is not files and not cf <= files:
                files = files | cf
        frame.tasks, frame.files = tasks, files
        key = (tasks, files)
        vhash = self.vsets.get(key)
        if vhash is None:
            vhash = hash_struct(
                "Validation",
                *sorted(f"t:{n}={h}" for n, h in tasks),
                *sorted(f"f:{p}:{int(c)}={h}" for p, c, h in files),
            )
            self.vsets[key] = vhash
            if self.writer is not None:
                self.writer.put(
                    "vset",
                    (
                        vhash,
                        json.dumps(sorted([n, h] for n, h in tasks)),
                        json.dumps(sorted([p, c, h] for p, c, h in files)),
                    ),
                )
        frame.vset_hash = vhash

    def _record(
        self,
        frame: CallFrame,
        value: Any,
        digest: bytes | None,
        out: JobOutcome | None,
        result_files: list[tuple[str, bool, str | None]],
        now: float,
    ) -> None:
        writer = self.writer
        assert writer is not None
        task = frame.task
        eid = self.execution_id
        writer.put("job", job_row(eid, frame, "done", frame.started, now))
        if digest is None or (out is not None and out.data is None and out.data_error):
            return  # not cacheable: keep the job, skip the call
        if task.hash not in self.recorded_tasks:
            self.recorded_tasks.add(task.hash)
            writer.put("task", (task.hash, task.name, task.module, task.source, now))
        result_hash = digest.hex()
        replace = result_hash in self.corrupt_values
        if replace or digest not in self.stored_values:
            self.stored_values.add(digest)
            self.corrupt_values.discard(result_hash)
            writer.put_value(result_hash, value, out.data if out is not None else None, replace)
        call_hash = frame.call_hash
        assert call_hash is not None and frame.vset_hash is not None
        for position, (name, arg_digest) in enumerate(frame.arg_digests):
            arg_hash = arg_digest.hex()
            writer.put("arg", (call_hash, position, name, arg_hash))
            if arg_digest not in self.stored_values:
                self.stored_values.add(arg_digest)
                writer.put_value(arg_hash, _bound_value(frame, position, name), None)
        if frame.children:
            writer.put("children_reset", (call_hash,))
            for position, child in enumerate(frame.children):
                if child.call_hash is not None and child.state == DONE:
                    writer.put("child", (call_hash, position, child.call_hash))
        for path, _content, file_hash in result_files:
            writer.put("file", (call_hash, "output", path, file_hash, now))
        for path, _content, file_hash in frame.arg_files:
            writer.put("file", (call_hash, "input", path, file_hash, now))
        writer.put(
            "call",
            (
                call_hash,
                task.hash,
                task.name,
                result_hash,
                frame.vset_hash,
                eid,
                self.job_id(frame),
                now,
            ),
        )

    # -- dry run (explain) ---------------------------------------------------------------
    def _decision(
        self, frame: CallFrame, action: str, reason: str, detail: str = "", diff: str | None = None
    ) -> Decision:
        return Decision(
            task_name=frame.task.name,
            call=f"{frame.task.short_name}({format_args(frame.args, frame.kwargs)})",
            call_hash=frame.call_hash,
            action=action,
            reason=reason,
            detail=detail,
            diff=diff,
        )

    def _invalid_reason(self, vset_hash: str) -> tuple[str, str]:
        """Why a cached call failed validation: which task below changed, or which file."""
        vset = self.loaded_vsets.get(vset_hash)
        if vset is None:
            return (Reason.CHILD_CHANGED, "its record of the tasks below it is missing")
        tasks, files = vset
        for name, task_hash in sorted(tasks):
            current = get_task(name)
            if current is None:
                return (Reason.CHILD_CHANGED, f"task {name} it called is not loaded any more")
            if current.hash != task_hash:
                return (Reason.CHILD_CHANGED, f"task {name} it called has changed")
        for path, content, file_hash in sorted(files):
            now = File(path, content_hash=content).current_hash()
            if now != file_hash:
                state = "was deleted" if now is None else "was modified"
                return (Reason.FILE_CHANGED, f"file {path} {state}")
        return (Reason.CHILD_CHANGED, "cached result is not valid any more")

    def _diagnose(self, frame: CallFrame) -> Decision:
        """A call that would run: say why (new task, code/argument/file change...)."""
        known = self.miss_reasons.get(id(frame))
        if known is not None:
            return self._decision(frame, "run", known[0], known[1])
        task = frame.task
        if not self.use_cache or not task.options.cache:
            where = "for this run" if not self.use_cache else "on the task (cache=False)"
            return self._decision(frame, "run", Reason.CACHE_DISABLED, f"caching is off {where}")
        history = self.store.history()
        latest = history.latest_task_hash(task.name)
        if latest is None:
            return self._decision(frame, "run", Reason.NEW_TASK, "no call of this task is stored")
        if latest != task.hash and not history.latest_call_args(task.hash):
            import difflib

            old = history.task_source(latest) or ""
            new = task.source
            diff = "\n".join(
                difflib.unified_diff(
                    old.splitlines(),
                    new.splitlines(),
                    f"{task.name} (cached)",
                    f"{task.name} (now)",
                    lineterm="",
                )
            )
            detail = (
                "its source changed"
                if diff
                else "its source is unchanged; code it uses (helpers, constants, classes) changed"
            )
            return self._decision(frame, "run", Reason.CODE_CHANGED, detail, diff or None)
        before = history.latest_call_args(task.hash) or history.latest_call_args(latest)
        changed = []
        file_changed = False
        for name, digest in frame.arg_digests:
            old_hash = before.get(name)
            if old_hash != digest.hex():
                was = history.value_preview(old_hash) if old_hash else None
                value = _bound_value(frame, [n for n, _ in frame.arg_digests].index(name), name)
                if isinstance(value, File):
                    file_changed = True
                changed.append(f"{name} (was {was}, now {short_repr(value)})")
        reason = Reason.FILE_CHANGED if file_changed else Reason.ARGS_CHANGED
        detail = "argument " + "; ".join(changed) if changed else "new argument values"
        return self._decision(frame, "run", reason, detail)

    def _explain_blocked(self) -> None:
        """Calls whose arguments wait on a call that would run: only running would tell."""
        for frame in self.frames.values():
            if isinstance(frame, CallFrame) and frame.state == PENDING and frame.phase == ARGS:
                self.decisions.append(
                    Decision(
                        task_name=frame.task.name,
                        call=repr(frame.expr),
                        call_hash=None,
                        action="unknown",
                        reason=Reason.NEEDS_RESULT,
                        detail="its arguments need results of calls that would run first",
                    )
                )

    # -- reporting ---------------------------------------------------------------------
    def job_id(self, frame: CallFrame) -> str:
        """A job's id: the execution's random prefix and the frame's counter.

        Built on demand: keeping a million id strings alive costs more than making them.
        """
        return f"{self.job_prefix}{frame.job_no:016x}"

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
            job_id=self.job_id(frame),
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


class ArgsPreview:
    """``task(args...)`` formatted only when written (by the writer thread)."""

    __slots__ = ("args", "kwargs", "name")

    def __init__(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        self.name, self.args, self.kwargs = name, args, kwargs

    def __str__(self) -> str:
        return f"{self.name}({format_args(self.args, self.kwargs)})"


def job_row(
    execution_id: str,
    frame: CallFrame,
    status: str,
    started: float,
    finished: float,
    error: str | None = None,
) -> tuple[Any, ...]:
    prefix = execution_id[:16]
    parent = f"{prefix}{frame.context.job_no:016x}" if frame.context is not None else None
    return (
        f"{prefix}{frame.job_no:016x}",
        execution_id,
        frame.call_hash,
        frame.task.name,
        parent,
        status,
        status == "cached",
        started,
        finished,
        frame.attempts,
        ArgsPreview(frame.task.short_name, frame.args, frame.kwargs),
        error,
    )


def _bound_value(frame: CallFrame, position: int, name: str) -> Any:
    args = frame.args
    if position < len(args) and frame.task._simple:
        return args[position]
    for n, v in frame.task.bind(frame.args, frame.kwargs):
        if n == name:
            return v
    return None


def _collect(value: Any, out: list[Expression]) -> None:
    """Append every Expression inside `value` (containers and dataclasses) to `out`."""
    cls = type(value)
    if cls is list or cls is tuple:
        for item in value:
            if isinstance(item, Expression):
                out.append(item)
            elif type(item) in _CONTAINERS or hasattr(type(item), "__dataclass_fields__"):
                _collect(item, out)
        return
    if isinstance(value, Expression):
        out.append(value)
    elif isinstance(value, dict):
        for k, v in value.items():
            _collect(k, out)
            _collect(v, out)
    elif isinstance(value, list | tuple | set | frozenset):
        for item in value:
            _collect(item, out)
    elif hasattr(cls, "__dataclass_fields__") and not isinstance(value, type):
        for name in cls.__dataclass_fields__:
            _collect(getattr(value, name, None), out)


_CONTAINERS = frozenset({list, tuple, dict, set, frozenset})


def _substitute(value: Any, frames: dict[int, Frame]) -> Any:
    if isinstance(value, Expression):
        return frames[id(value)].value
    cls = type(value)
    if cls in _ATOMS:
        return value
    if cls is Quote:
        return value.value
    if cls is list:
        return [_substitute(v, frames) for v in value]
    if cls is tuple:
        items = [_substitute(v, frames) for v in value]
        # Unchanged argument tuples are kept, not copied (a million calls' worth).
        return value if all(a is b for a, b in zip(items, value, strict=True)) else tuple(items)
    if cls is dict:
        if not value:
            return value
        return {_substitute(k, frames): _substitute(v, frames) for k, v in value.items()}
    if cls is set or cls is frozenset:
        return cls(_substitute(v, frames) for v in value)
    if isinstance(value, tuple) and hasattr(value, "_fields"):
        return cls._make(_substitute(v, frames) for v in value)
    if isinstance(value, dict):
        new = copy.copy(value)
        for k, v in value.items():
            new[k] = _substitute(v, frames)
        return new
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        if not contains_expression(value):
            return value
        new = copy.copy(value)  # type: ignore[arg-type]
        for field in dataclasses.fields(value):
            object.__setattr__(new, field.name, _substitute(getattr(value, field.name), frames))
        return new
    return value


_ATOMS = frozenset({int, float, str, bytes, bool, type(None)})
