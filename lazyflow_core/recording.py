"""Recording: what the store learns about each call (jobs, calls, values, files).

The `Recorder` turns a finished call into rows for the store writer and computes the
call's *validation set*: the tasks and files its cached result depends on, so a later
run can reuse the whole subtree after checking only those. It remembers, per run, what
it already queued (task versions, values, validation sets) so nothing is written twice.
Nothing here touches the database: rows go to the writer's queue.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from .executors.base import JobOutcome
from .expression import format_args
from .files import File
from .frames import DONE, EMPTY, CallFrame
from .hashing import hash_struct
from .task import get_task

if TYPE_CHECKING:
    from .store.writer import StoreWriter  # only put() and put_value() are used


class Recorder:
    """Queues one execution's records; `writer` None (a dry run) records nothing."""

    def __init__(self, execution_id: str, writer: StoreWriter | None) -> None:
        self.execution_id = execution_id
        self.writer = writer
        # Digests (the bytes objects frames already hold) of values known to be stored.
        self.stored_values: set[bytes] = set()
        self.corrupt_values: set[str] = set()
        self.recorded_tasks: set[str] = set()
        self.vsets: dict[tuple[frozenset[Any], frozenset[Any]], str] = {}
        self.own_tasks: dict[str, frozenset[tuple[str, str]]] = {}

    def job_id(self, frame: CallFrame) -> str:
        """A job's id: the execution's random prefix and the frame's counter.

        Built on demand: keeping a million id strings alive costs more than making them.
        """
        return f"{self.execution_id[:16]}{frame.job_no:016x}"

    def job(
        self,
        frame: CallFrame,
        status: str,
        started: float,
        finished: float,
        error: str | None = None,
    ) -> None:
        if self.writer is not None:
            self.writer.put(
                "job", job_row(self.execution_id, frame, status, started, finished, error)
            )

    def validation_set(
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

    def record(
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
        job = job_row(eid, frame, "done", frame.started, now)
        writer.put("job", job)
        if digest is None or (out is not None and out.data is None and out.data_error):
            return  # not cacheable: keep the job, skip the call
        if task.hash not in self.recorded_tasks:
            self.recorded_tasks.add(task.hash)
            writer.put(
                "task",
                (
                    task.hash,
                    task.name,
                    task.module,
                    task.source,
                    now,
                    json.dumps(task.dependencies),
                ),
            )
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
                writer.put_value(arg_hash, bound_value(frame, position, name), None)
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
                job[0],  # the job's id
                now,
            ),
        )


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


def bound_value(frame: CallFrame, position: int, name: str) -> Any:
    args = frame.args
    if position < len(args) and frame.task._simple:
        return args[position]
    for n, v in frame.task.bind(frame.args, frame.kwargs):
        if n == name:
            return v
    return None


def stale_task(tasks: frozenset[tuple[str, str]]) -> str | None:
    """The first task of a validation set that changed or is no longer loaded, if any."""
    for name, task_hash in sorted(tasks):
        current = get_task(name)
        if current is None or current.hash != task_hash:
            return name
    return None


def changed_file(files: frozenset[tuple[str, bool, str | None]]) -> tuple[str, str | None] | None:
    """The first file of a validation set whose hash is not the recorded one: (path, now)."""
    for path, content, file_hash in sorted(files, key=lambda f: f[0]):
        now = File(path, content_hash=content).current_hash()
        if now != file_hash:
            return path, now
    return None
