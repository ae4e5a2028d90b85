"""Recording: what the store learns about each call (jobs, calls, values, files).

The `Recorder` turns a job that ended into records (`lazyflow_core.records`) for the
store writer: one `JobRecord` per job (`job`), and for a call that returned a cacheable
value the call, its arguments, children, files, task version and values (`call`). It
computes a call's *validation set*: the tasks and files its cached result depends on,
so a later run can reuse the whole subtree after checking only those. It remembers, per
run, what it already queued (task versions, values, validation sets) so nothing is
written twice. Nothing here touches the database: records go to the writer's queue,
a `Writer`; a dry run records into a `NullWriter`.
"""

from __future__ import annotations

import json
import logging
import time
import traceback
from typing import Any, Protocol

from .dataflow import Producers
from .executors.base import JobOutcome
from .frames import DONE, EMPTY, FAILED, UNCACHED, CallFrame
from .hashing import hash_struct, qualified_name
from .records import (
    ArgRecord,
    CallFileRecord,
    CallRecord,
    ChildRecord,
    ChildrenResetRecord,
    EntityTagRecord,
    JobRecord,
    PendingValue,
    Record,
    ReductionRecord,
    TagRecord,
    TaskRecord,
    ValidationSetRecord,
)
from .reductions import dumps_expression

log = logging.getLogger("lazyflow.evaluator")


class Writer(Protocol):
    """Where records go (`lazyflow_core.store.writer.StoreWriter` implements it)."""

    def put(self, record: Record | PendingValue) -> None:
        """Queue one record (cheap: called on the scheduler thread for every record)."""
        ...

    @property
    def backlog(self) -> int:
        """Records queued and not written yet."""
        ...

    def wait_below(self, records: int) -> None:
        """Block until fewer than `records` are queued (backpressure for huge runs)."""
        ...

    @property
    def lag(self) -> float:
        """Seconds the oldest record not yet safe in the store has waited at most."""
        ...

    def wait_lag(self, seconds: float) -> None:
        """Block until `lag` is under `seconds` (the crash bound of a busy run)."""
        ...

    def expect(self, records: int) -> None:
        """About `records` records are coming (a wave of calls is being looked up): a
        writer that keeps up better from another process can start it now."""
        ...


class NullWriter:
    """A writer that keeps nothing: a dry run (``explain``) records no history."""

    backlog = 0
    lag = 0.0

    def put(self, record: Record | PendingValue) -> None:
        pass

    def wait_below(self, records: int) -> None:
        pass

    def wait_lag(self, seconds: float) -> None:
        pass

    def expect(self, records: int) -> None:
        pass


class Recorder:
    """Queues one execution's records to `writer`."""

    def __init__(self, execution_id: str, writer: Writer, unreadable: set[str]) -> None:
        self.execution_id = execution_id
        self.writer = writer
        # Digests (the bytes objects frames already hold) of values known to be stored.
        self.stored_values: set[bytes] = set()
        # Result hashes whose stored value could not be read (`lookups`): written again.
        self.corrupt_values = unreadable
        self.recorded_tasks: set[str] = set()
        self.vsets: dict[tuple[frozenset[Any], frozenset[Any]], str] = {}
        self.own_tasks: dict[str, frozenset[tuple[str, str]]] = {}
        # Producers of the arguments of calls not recorded yet (`dataflow`): only calls
        # that have an argument some call produced are here.
        self.producers: dict[CallFrame, Producers] = {}
        self._prefix = execution_id[:16]
        # The parent of the last job recorded and its id: siblings come in runs (a
        # fan-out's hundred thousand calls share one parent), so its id is formatted once.
        self._parent: CallFrame | None = None
        self._parent_id: str | None = None

    def job_id(self, frame: CallFrame) -> str:
        """A job's id: the execution's random prefix and the frame's counter.

        Built on demand: keeping a million id strings alive costs more than making them.
        """
        return f"{self._prefix}{frame.job_no:016x}"

    def job_record(
        self,
        frame: CallFrame,
        status: str,
        started: float,
        finished: float,
        error: str | None = None,
        exc: BaseException | None = None,
        raised: bool = False,
        result_hash: str | None = None,
    ) -> JobRecord:
        """The job's record: its own result hash and task version (history: a later run
        of the same call rewrites the call's row, never this), and for a failed job the
        exception's type and, if the job itself `raised` it, its traceback.

        `result_hash` is the hex of ``frame.digest`` if the caller has it already (a
        cache hit has it from the store: no bytes -> hex per hit)."""
        parent = frame.context
        if parent is not self._parent:
            self._parent = parent
            self._parent_id = None if parent is None else f"{self._prefix}{parent.job_no:016x}"
        task = frame.task
        digest = frame.digest
        error_type = tb = None
        if exc is not None:
            error_type = qualified_name(type(exc))
            if raised:
                tb = "".join(traceback.format_exception(exc))
        # tuple.__new__ rather than JobRecord(...): a NamedTuple's own __new__ is a Python
        # function taking its sixteen fields by keyword, a measurable part of a cache hit.
        return _new_job(
            JobRecord,
            (
                f"{self._prefix}{frame.job_no:016x}",
                self.execution_id,
                frame.call_hash,
                task.name,
                self._parent_id,
                status,
                status == "cached",
                started,
                finished,
                frame.attempts,
                (task.short_name, frame.args, frame.kwargs),  # formatted by the writer thread
                error,
                (
                    None
                    if digest is None or exc is not None
                    else result_hash
                    if result_hash is not None
                    else digest.hex()
                ),
                task.hash,
                error_type,
                tb,
            ),
        )

    def job(
        self,
        frame: CallFrame,
        status: str,
        started: float,
        finished: float,
        error: str | None = None,
        exc: BaseException | None = None,
        raised: bool = False,
        result_hash: str | None = None,
    ) -> JobRecord:
        """Queue the job's one record (status "done", "cached" or "failed"); a job that
        raised also records its task version, so its page shows the code that failed."""
        job = self.job_record(frame, status, started, finished, error, exc, raised, result_hash)
        self.writer.put(job)
        tags = frame.task.options.tags
        if tags:  # @task(tags=...): on every job of the task, reused ones too
            for key, text in tags:
                self.writer.put(
                    EntityTagRecord("job", job.id, key, self.execution_id, text, finished)
                )
        if raised and frame.task.hash not in self.recorded_tasks:
            self.task_version(frame, finished)
        return job

    def tags(
        self,
        value_hash: str | None,
        job: CallFrame | None,
        value_tags: list[tuple[str, str]],
        job_tags: list[tuple[str, str]],
        execution_tags: list[tuple[str, str]],
    ) -> None:
        """Queue the tags `apply_tags` set on a value, a job and this execution."""
        eid, now, put = self.execution_id, time.time(), self.writer.put
        if value_hash is not None:
            for key, text in value_tags:
                put(EntityTagRecord("value", value_hash, key, eid, text, now))
        if job is not None:
            job_id = self.job_id(job)
            for key, text in job_tags:
                put(EntityTagRecord("job", job_id, key, eid, text, now))
        for key, text in execution_tags:
            put(TagRecord(eid, key, text))

    def task_version(self, frame: CallFrame, now: float) -> None:
        """Queue the frame's task version (once per run: `recorded_tasks`)."""
        task = frame.task
        self.recorded_tasks.add(task.hash)
        self.writer.put(
            TaskRecord(
                task.hash,
                task.name,
                task.module,
                task.source,
                now,
                json.dumps(task.dependencies),
                json.dumps(task.dependency_sources),
            )
        )

    def task_entry(self, frame: CallFrame) -> frozenset[tuple[str, str]]:
        """The call's own entry in validation sets: its task's (name, hash), the hash
        marked `UNCACHED` for a ``cache=False`` call (a result it is part of is never
        reused whole)."""
        task = frame.task
        own = task.hash if task.options.cache else UNCACHED + task.hash
        tasks = self.own_tasks.get(own)
        if tasks is None:
            tasks = self.own_tasks[own] = frozenset(((task.name, own),))
        return tasks

    def validation_set(
        self, frame: CallFrame, result_files: list[tuple[str, bool, str | None]]
    ) -> None:
        tasks = self.task_entry(frame)
        files: frozenset[tuple[str, bool, str | None]] = EMPTY
        if frame.arg_files or result_files:
            files = frozenset(frame.arg_files + result_files)
        for child in frame.children:
            ct, cf = child.tasks, child.files
            if child.state == FAILED:  # a caught failure: its result depends on that code
                ct = ct | self.task_entry(child)
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
            self.writer.put(
                ValidationSetRecord(
                    vhash,
                    json.dumps(sorted([n, h] for n, h in tasks)),
                    # h is None for a file that was absent (it must still be, to reuse)
                    json.dumps(sorted(([p, c, h] for p, c, h in files), key=_file_order)),
                )
            )
        frame.vset_hash = vhash

    def reduction(self, frame: CallFrame, expr: Any) -> None:
        """Queue the expression `frame`'s body returned (its first reduction): a later
        run whose task below changed evaluates it again instead of running the body.

        Pickled here with its tasks named, not copied (`reductions`); one that cannot be
        pickled is not stored (that call's body simply runs again). Its value key is
        derived from the call hash: one stored expression per call."""
        call_hash = frame.call_hash
        assert call_hash is not None
        try:
            data = dumps_expression(expr)
        except Exception as exc:
            log.debug("lazyflow: expression of %s not stored: %s", frame.task.name, exc)
            return
        value_hash = hash_struct("Reduction", call_hash)
        self.writer.put(PendingValue(value_hash, expr, data))
        self.writer.put(ReductionRecord(call_hash, value_hash, self.execution_id, time.time()))

    def call(
        self,
        frame: CallFrame,
        job: JobRecord,
        value: Any,
        digest: bytes,
        out: JobOutcome | None,
        result_files: list[tuple[str, bool, str | None]],
        now: float,
    ) -> None:
        """Queue the records of a call that returned a cacheable `value` in `job`."""
        task = frame.task
        eid = self.execution_id
        put = self.writer.put
        task_hash = job.task_hash  # (`task.hash`, read once for the job's record)
        if task_hash not in self.recorded_tasks:
            self.task_version(frame, now)
        result_hash = job.result_hash or digest.hex()
        replace = result_hash in self.corrupt_values
        if replace or digest not in self.stored_values:
            self.stored_values.add(digest)
            self.corrupt_values.discard(result_hash)
            data = out.data if out is not None else None
            put(_new(PendingValue, (result_hash, value, data, replace)))
        call_hash = frame.call_hash
        assert call_hash is not None and frame.vset_hash is not None
        producers = self.producers.pop(frame, None)
        for position, (name, arg_digest) in enumerate(frame.arg_digests):
            arg_hash = arg_digest.hex()
            producer = producers[position] if producers is not None else None
            put(_new(ArgRecord, (call_hash, position, name, arg_hash, producer)))
            if arg_digest not in self.stored_values:
                self.stored_values.add(arg_digest)
                arg_value = bound_value(frame, position, name)
                put(_new(PendingValue, (arg_hash, arg_value, None, False)))
        if frame.children:
            put(ChildrenResetRecord(call_hash))
            for position, child in enumerate(frame.children):
                if child.call_hash is not None and child.state == DONE:
                    put(_new(ChildRecord, (call_hash, position, child.call_hash)))
        for path, _content, file_hash in result_files:
            put(CallFileRecord(call_hash, "output", path, file_hash, now))
        for path, _content, file_hash in frame.arg_files:
            put(CallFileRecord(call_hash, "input", path, file_hash, now))
        put(
            _new(
                CallRecord,
                (call_hash, task_hash, task.name, result_hash, frame.vset_hash, eid, job.id, now),
            )
        )


# tuple.__new__(Record, fields) rather than Record(...): a NamedTuple's own __new__ is a
# Python function (the records of every job, per job).
_new_job = _new = tuple.__new__


def _file_order(entry: list[Any]) -> tuple[str, bool, str]:
    return entry[0], entry[1], entry[2] or ""


def bound_value(frame: CallFrame, position: int, name: str) -> Any:
    args = frame.args
    if position < len(args) and frame.task._simple:
        return args[position]
    for n, v in frame.task.bind(frame.args, frame.kwargs):
        if n == name:
            return v
    return None
