"""Provenance queries: read-only answers from the store's tables.

The store keeps a Merkle graph of calls (``lf_calls``: task hash, result hash; arguments
in ``lf_call_args``; child calls in ``lf_call_children``) and, per execution, the jobs
that ran or reused those calls (``lf_jobs``, linked to their parent job). This module
answers the questions people ask of that graph:

- what produced this value or file: `Provenance.producer`, `Provenance.file_producers`,
  and recursively, with inputs, code and execution, `Provenance.lineage`;
- which calls consumed a value: `Provenance.consumers`, recursively `consumer_tree`;
- what a run executed and what it reused: `Provenance.run_report`, `Provenance.call_tree`;
- every call in effect in a run, for comparing runs: `Provenance.execution_calls`.

Ids may be given as unique prefixes everywhere; an unknown id raises `NoSuchRecord`, a
prefix matching several records raises `AmbiguousPrefix`. Nothing here writes.

Choosing a producer. Several calls may have returned the same value: ``inc(0)`` and
``dec(2)`` both give 1, and a call that returns its child's result has that result too.
The producer is the *innermost* call that returned the value (descend while a child call
returned the same hash), preferring calls near the consumer: a sibling under the same
parent call first, then a call of the same execution, then the most recent one.

Container arguments. ``total([inc(i) for i in ...])`` passes one list that no call
returned. Its parts are found by loading the stored list (built-in containers only) and
hashing each item, so lineage goes through the list to the ``inc`` calls, and the
consumers of an ``inc`` result include ``total``.
"""

from __future__ import annotations

import contextlib
import os
import pickle
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import and_, case, exists, func, or_, select
from sqlalchemy.exc import DBAPIError

from .errors import LazyflowError, StoreError
from .store import schema
from .store.sql import Store, open_store, redact, resolve_db_url

_CHUNK = 500
_HEX = frozenset("0123456789abcdef")
_CONTAINERS = frozenset({"list", "tuple", "dict", "set", "frozenset"})
_MAX_PART_BYTES = 8 << 20
MAX_PARTS = 1000
"""Items hashed per container value; bigger containers are cut (reported as ``more``)."""


class ProvenanceError(LazyflowError, LookupError):
    """A provenance query names something the store does not hold."""


class NoSuchRecord(ProvenanceError):
    """No execution, job, call, value or file matches the given id or path."""


class AmbiguousPrefix(ProvenanceError):
    """An id prefix matches several records; give more characters."""


# -- records -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Execution:
    id: str
    started_at: float
    finished_at: float | None
    status: str
    root_task: str | None
    root_call_hash: str | None
    result_hash: str | None
    command: str | None
    hostname: str | None
    pid: int | None
    jobs: int
    cached: int
    executed: int
    failed: int
    error: str | None
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def seconds(self) -> float | None:
        return None if self.finished_at is None else self.finished_at - self.started_at


@dataclass(frozen=True, slots=True)
class Job:
    id: str
    execution_id: str
    call_hash: str | None
    task_name: str
    parent_id: str | None
    status: str
    cached: bool
    started_at: float | None
    finished_at: float | None
    attempts: int | None
    args_preview: str | None
    error: str | None

    @property
    def seconds(self) -> float | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return self.finished_at - self.started_at


@dataclass(frozen=True, slots=True)
class Value:
    hash: str
    type_name: str
    size: int | None
    preview: str | None
    blob: str | None
    created_at: float | None


@dataclass(frozen=True, slots=True)
class Arg:
    position: int
    name: str
    value_hash: str
    value: Value | None


@dataclass(frozen=True, slots=True)
class Call:
    """A recorded call: task version, arguments and result (``lf_calls``)."""

    call_hash: str
    task_hash: str
    task_name: str
    result_hash: str
    validation_hash: str
    execution_id: str | None
    job_id: str | None
    created_at: float | None
    preview: str
    args: tuple[Arg, ...] = ()
    result: Value | None = None


@dataclass(frozen=True, slots=True)
class TaskVersion:
    hash: str
    name: str
    module: str | None
    source: str | None
    created_at: float | None


@dataclass(frozen=True, slots=True)
class FileRecord:
    call_hash: str
    role: str  # "input" | "output"
    path: str
    file_hash: str | None
    created_at: float | None


@dataclass(eq=False)
class Step:
    """One call in a lineage tree, with the inputs it was given."""

    call: Call
    parent: Call | None = None
    inputs: list[Input] = field(default_factory=list)
    alternatives: int = 0  # other calls that returned the same value
    repeated: bool = False  # already expanded elsewhere in this tree
    truncated: bool = False  # the depth limit stopped here


@dataclass(eq=False)
class Input:
    """An argument (or an item of a container argument, or an input file) of a step."""

    name: str
    value_hash: str | None
    value: Value | None = None
    producer: Step | None = None
    parts: list[Input] = field(default_factory=list)
    more_parts: int = 0
    file: FileRecord | None = None
    # an argument of the call this step ran inside holds the same value (it was passed down)
    passed_by: tuple[Call, str] | None = None


@dataclass(eq=False)
class Lineage:
    """Where a value or file came from: its producing step, recursively."""

    target: str
    kind: str  # "value" | "file" | "call"
    value: Value | None = None
    file: FileRecord | None = None
    file_state: str | None = None  # "unchanged" | "modified" | "missing" (files only)
    producer: Step | None = None
    alternatives: int = 0


@dataclass(eq=False)
class Use:
    """A call that consumed a value, and (recursively) the calls that used its result."""

    call: Call
    arg: str
    uses: list[Use] = field(default_factory=list)
    repeated: bool = False
    truncated: bool = False


@dataclass(eq=False)
class CallNode:
    """A call in an execution's tree. ``job`` is None inside a reused (cached) subtree."""

    task_name: str
    preview: str
    status: str
    cached: bool
    call_hash: str | None
    job: Job | None
    seconds: float | None
    result: Value | None = None
    task_hash: str | None = None
    children: list[CallNode] = field(default_factory=list)
    repeated: bool = False


@dataclass(eq=False)
class RunReport:
    """What one execution executed, reused and failed."""

    execution: Execution
    executed: list[Job]
    cached: list[Job]
    failed: list[Job]
    reused_calls: int  # calls inside reused subtrees, the cached jobs included


# -- the query API -------------------------------------------------------------------


def job_ref(job_id: str, execution_id: str | None = None) -> str:
    """A short, unique way to write a job id.

    Job ids are the execution's id prefix plus a counter, so their first characters do
    not tell the jobs of one execution apart: ``EXECUTION.N`` (e.g. ``5c6607b5.17``) does,
    and `Provenance.resolve_job` accepts it. Other ids are shortened to 12 characters.
    """
    head, tail = job_id[:16], job_id[16:]
    if execution_id is not None:
        ours = execution_id[:16] == head
    else:
        ours = tail.startswith("0000")  # a counter, not the rest of a random id
    if ours and len(tail) == 16 and all(ch in "0123456789abcdef" for ch in tail):
        return f"{head[:8]}.{int(tail, 16)}"
    return job_id[:12]


def could_feed(
    producer_job: str, finished: float | None, consumer_job: str, started: float | None
) -> bool:
    """Whether a job's result can have been an argument of another job of the execution.

    The producer must have finished before the consumer started. And the evaluator
    creates a call before the calls its arguments need (``g(f(x))`` numbers ``g`` before
    ``f``), so a producer numbered before its consumer was not its argument: ``square(4)``
    returned 16 before ``square(16)`` started, but 16 came from ``range``.
    """
    if finished is None or started is None or finished > started:
        return False
    p, c = _job_number(producer_job), _job_number(consumer_job)
    if p is None or c is None or p[0] != c[0]:
        return True
    return p[1] > c[1]


def _job_number(job_id: str) -> tuple[str, int] | None:
    """(execution prefix, creation number) of a job id made of both, else None."""
    tail = job_id[16:]
    if len(job_id) == 32 and tail.startswith("0000") and all(ch in _HEX for ch in tail):
        return job_id[:16], int(tail, 16)
    return None


def _chunks(items: Sequence[Any], size: int = _CHUNK) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _prefix_range(column: Any, prefix: str) -> Any:
    # hex ids sort below "g": a range scan uses the primary-key index on every backend
    return and_(column >= prefix, column < prefix + "g")


class Provenance:
    """Read-only queries over a lazyflow store (URL, `Store`, or None for the default).

    A missing SQLite file is an error (`StoreError`) rather than a new empty store.
    """

    def __init__(self, db: str | Store | None = None) -> None:
        if isinstance(db, Store):
            self.store = db
        else:
            url = resolve_db_url(db)
            store = open_store(url)
            path = store.sqlite_path
            if path is not None and not os.path.exists(path):
                raise StoreError(
                    f"no lazyflow store at {path} (the file does not exist). Run a workflow "
                    "first, or point --db / LAZYFLOW_DB at an existing store."
                )
            self.store = store
        self.store.ensure_schema()
        self._parts_cache: dict[str, list[tuple[str, str]] | None] = {}

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Provenance:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing --------------------------------------------------------------------
    def _rows(self, statement: Any) -> list[Any]:
        try:
            with self.store.engine.connect() as conn:
                return list(conn.execute(statement))
        except DBAPIError as exc:
            raise StoreError(
                f"reading the lazyflow store at {redact(self.store.url)!r} failed: "
                f"{exc.orig if exc.orig is not None else exc}"
            ) from exc

    def _resolve(self, column: Any, ident: str, what: str, hint: str) -> str:
        """The full id in `column` starting with `ident` (exact match wins)."""
        prefix = ident.strip().lower()
        if not prefix or any(ch not in "0123456789abcdef" for ch in prefix):
            raise NoSuchRecord(f"{ident!r} is not a valid {what} id (ids are hexadecimal). {hint}")
        found = [
            r[0]
            for r in self._rows(
                select(column).where(_prefix_range(column, prefix)).order_by(column).limit(6)
            )
        ]
        if prefix in found:
            return prefix
        if not found:
            raise NoSuchRecord(f"no {what} matches {ident!r} in {redact(self.store.url)}. {hint}")
        if len(found) > 1:
            if what == "job":
                shown = ", ".join(job_ref(f) for f in found[:5])
            else:
                shown = ", ".join(f[: max(len(prefix) + 4, 8)] for f in found[:5])
            more = " and more" if len(found) > 5 else ""
            raise AmbiguousPrefix(
                f"{what} id prefix {ident!r} is ambiguous: it matches {shown}{more}. "
                "Give more characters"
                + (" or write the job as EXECUTION.N." if what == "job" else ".")
            )
        return str(found[0])

    # -- executions ------------------------------------------------------------------
    def resolve_execution(self, ident: str) -> str:
        return self._resolve(
            schema.executions.c.id, ident, "execution", "`lazyflow log` lists executions."
        )

    def execution(self, ident: str) -> Execution:
        """One execution by id or unique prefix, with its tags."""
        eid = self.resolve_execution(ident)
        e = schema.executions
        row = self._rows(select(e).where(e.c.id == eid))[0]
        return self._execution(row, self._tags([eid]).get(eid, {}))

    def executions(
        self,
        *,
        task: str | None = None,
        tags: Mapping[str, str] | None = None,
        status: str | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int | None = None,
    ) -> list[Execution]:
        """Executions, newest first. `task` matches the root task or any task that ran,
        by full name (``wf.main``) or short name (``main``)."""
        e = schema.executions
        query = select(e).order_by(e.c.started_at.desc(), e.c.id)
        if task:
            j = schema.jobs
            query = query.where(
                or_(
                    _name_matches(e.c.root_task, task),
                    exists(
                        select(j.c.id).where(
                            j.c.execution_id == e.c.id, _name_matches(j.c.task_name, task)
                        )
                    ),
                )
            )
        for key, value in (tags or {}).items():
            t = schema.execution_tags
            query = query.where(
                exists(
                    select(t.c.key).where(
                        t.c.execution_id == e.c.id, t.c.key == key, t.c.value == value
                    )
                )
            )
        if status:
            query = query.where(e.c.status == status)
        if since is not None:
            query = query.where(e.c.started_at >= since)
        if until is not None:
            query = query.where(e.c.started_at < until)
        if limit is not None:
            query = query.limit(limit)
        rows = self._rows(query)
        tag_map = self._tags([r.id for r in rows])
        return [self._execution(r, tag_map.get(r.id, {})) for r in rows]

    def _tags(self, ids: Sequence[str]) -> dict[str, dict[str, str]]:
        t = schema.execution_tags
        out: dict[str, dict[str, str]] = {}
        for chunk in _chunks(ids):
            for eid, key, value in self._rows(
                select(t.c.execution_id, t.c.key, t.c.value)
                .where(t.c.execution_id.in_(chunk))
                .order_by(t.c.key)
            ):
                out.setdefault(eid, {})[key] = value
        return out

    @staticmethod
    def _execution(r: Any, tags: dict[str, str]) -> Execution:
        return Execution(
            id=r.id,
            started_at=r.started_at,
            finished_at=r.finished_at,
            status=r.status,
            root_task=r.root_task,
            root_call_hash=r.root_call_hash,
            result_hash=r.result_hash,
            command=r.command,
            hostname=r.hostname,
            pid=r.pid,
            jobs=r.jobs or 0,
            cached=r.cached or 0,
            executed=r.executed or 0,
            failed=r.failed or 0,
            error=r.error,
            tags=tags,
        )

    # -- jobs ------------------------------------------------------------------------
    def resolve_job(self, ident: str) -> str:
        """A job id from a prefix, or from the short form ``EXECUTION.N`` (`job_ref`)."""
        hint = "`lazyflow log EXECUTION` shows job ids."
        execution, dot, number = ident.strip().partition(".")
        if dot and number.isdigit():
            eid = self.resolve_execution(execution)
            jid = f"{eid[:16]}{int(number):016x}"
            j = schema.jobs
            if self._rows(select(j.c.id).where(j.c.id == jid, j.c.execution_id == eid)):
                return jid
            raise NoSuchRecord(f"execution {eid[:8]} has no job {number}. {hint}")
        return self._resolve(schema.jobs.c.id, ident, "job", hint)

    def job(self, ident: str) -> Job:
        jid = self.resolve_job(ident)
        j = schema.jobs
        return _job(self._rows(select(j).where(j.c.id == jid))[0])

    def jobs(self, execution_id: str) -> list[Job]:
        """Every job of an execution, in start order."""
        j = schema.jobs
        rows = self._rows(
            select(j).where(j.c.execution_id == execution_id).order_by(j.c.started_at, j.c.id)
        )
        return [_job(r) for r in rows]

    def _jobs_by_id(self, ids: Iterable[str]) -> dict[str, Job]:
        j = schema.jobs
        out: dict[str, Job] = {}
        for chunk in _chunks(sorted(set(ids))):
            for r in self._rows(select(j).where(j.c.id.in_(chunk))):
                out[r.id] = _job(r)
        return out

    # -- values, tasks, files ----------------------------------------------------------
    def resolve_value(self, ident: str) -> str:
        return self._resolve(schema.values.c.hash, ident, "value", "")

    def value(self, ident: str) -> Value:
        vid = self.resolve_value(ident)
        return self.values([vid])[vid]

    def values(self, hashes: Iterable[str]) -> dict[str, Value]:
        v = schema.values
        out: dict[str, Value] = {}
        for chunk in _chunks(sorted(set(hashes))):
            for r in self._rows(
                select(
                    v.c.hash, v.c.type_name, v.c.size, v.c.preview, v.c.blob, v.c.created_at
                ).where(v.c.hash.in_(chunk))
            ):
                out[r.hash] = Value(r.hash, r.type_name, r.size, r.preview, r.blob, r.created_at)
        return out

    def load_value(self, value_hash: str) -> Any:
        """The stored value itself (unpickled). Raises KeyError when it is not readable."""
        return self.store.load_value(self.resolve_value(value_hash))

    def task(self, task_hash: str) -> TaskVersion | None:
        """The recorded task version (name, module, normalized source) with this hash."""
        t = schema.tasks
        rows = self._rows(select(t).where(t.c.hash == task_hash))
        return _task(rows[0]) if rows else None

    def task_versions(self, name: str) -> list[TaskVersion]:
        """Every recorded version of a task (full or short name), newest first."""
        t = schema.tasks
        rows = self._rows(
            select(t).where(_name_matches(t.c.name, name)).order_by(t.c.created_at.desc())
        )
        return [_task(r) for r in rows]

    def files(self, call_hash: str) -> list[FileRecord]:
        """Input and output files recorded for a call."""
        f = schema.files
        rows = self._rows(select(f).where(f.c.call_hash == call_hash).order_by(f.c.role, f.c.path))
        return [_file(r) for r in rows]

    # -- calls -----------------------------------------------------------------------
    def resolve_call(self, ident: str) -> str:
        return self._resolve(schema.calls.c.call_hash, ident, "call", "")

    def call(self, ident: str) -> Call:
        """One recorded call with its arguments and result."""
        h = self.resolve_call(ident)
        return self.calls([h])[h]

    def calls(self, hashes: Iterable[str], *, details: bool = True) -> dict[str, Call]:
        """Recorded calls by hash; with `details`, their arguments and result values."""
        c = schema.calls
        rows: list[Any] = []
        for chunk in _chunks(sorted(set(hashes))):
            rows += self._rows(select(c).where(c.c.call_hash.in_(chunk)))
        if not rows:
            return {}
        previews = {
            jid: job.args_preview
            for jid, job in self._jobs_by_id(r.job_id for r in rows if r.job_id).items()
        }
        args: dict[str, list[tuple[int, str, str]]] = {}
        values: dict[str, Value] = {}
        if details:
            a = schema.call_args
            for chunk in _chunks([r.call_hash for r in rows]):
                for ch, pos, name, vh in self._rows(
                    select(a.c.call_hash, a.c.position, a.c.name, a.c.value_hash)
                    .where(a.c.call_hash.in_(chunk))
                    .order_by(a.c.call_hash, a.c.position)
                ):
                    args.setdefault(ch, []).append((pos, name, vh))
            wanted = {r.result_hash for r in rows}
            wanted.update(vh for lst in args.values() for _, _, vh in lst)
            values = self.values(wanted)
        out: dict[str, Call] = {}
        for r in rows:
            call_args = tuple(
                Arg(p, n, vh, values.get(vh)) for p, n, vh in args.get(r.call_hash, [])
            )
            preview = previews.get(r.job_id) or _preview(r.task_name, call_args)
            out[r.call_hash] = Call(
                call_hash=r.call_hash,
                task_hash=r.task_hash,
                task_name=r.task_name,
                result_hash=r.result_hash,
                validation_hash=r.validation_hash,
                execution_id=r.execution_id,
                job_id=r.job_id,
                created_at=r.created_at,
                preview=preview,
                args=call_args,
                result=values.get(r.result_hash),
            )
        return out

    def children(self, call_hash: str) -> list[str]:
        """Child calls (in call order) that a call made while computing its result."""
        return self._children([call_hash]).get(call_hash, [])

    def _children(self, hashes: Sequence[str]) -> dict[str, list[str]]:
        cc = schema.call_children
        out: dict[str, list[str]] = {}
        for chunk in _chunks(sorted(set(hashes))):
            for parent, child in self._rows(
                select(cc.c.parent_hash, cc.c.child_hash)
                .where(cc.c.parent_hash.in_(chunk))
                .order_by(cc.c.parent_hash, cc.c.position)
            ):
                out.setdefault(parent, []).append(child)
        return out

    def parents(self, call_hash: str) -> list[str]:
        """Calls that made this call (usually one)."""
        cc = schema.call_children
        return sorted(
            {r[0] for r in self._rows(select(cc.c.parent_hash).where(cc.c.child_hash == call_hash))}
        )

    # -- producers ---------------------------------------------------------------------
    def producers(self, value_hash: str, limit: int = 200) -> list[Call]:
        """The innermost calls that returned `value_hash`, most recent first."""
        c = schema.calls
        hashes = [
            r[0]
            for r in self._rows(
                select(c.c.call_hash)
                .where(c.c.result_hash == value_hash)
                .order_by(c.c.created_at.desc())
                .limit(limit)
            )
        ]
        inner = self._innermost(hashes, value_hash)
        calls = self.calls(inner)
        return sorted(calls.values(), key=lambda x: -(x.created_at or 0))

    def producer(self, value_hash: str, *, consumer: str | None = None) -> tuple[Call | None, int]:
        """The call that produced `value_hash`, and how many other calls also returned it.

        With `consumer` (a call hash), the producer is looked for in the execution where
        the consumer ran, among calls that finished before it started, a sibling under the
        same parent first; if there is none the value was given, not produced (None).
        Without it, the most recent producer is returned.
        """
        c = schema.calls
        hashes = [
            r[0]
            for r in self._rows(
                select(c.c.call_hash)
                .where(c.c.result_hash == value_hash)
                .order_by(c.c.created_at.desc())
                .limit(200)
            )
        ]
        if not hashes:
            return None, 0
        alternatives = max(len(self._innermost(hashes, value_hash)) - 1, 0)
        chosen: str | None = hashes[0]
        if consumer is not None:
            known, found = self._producer_before(value_hash, consumer)
            if known:
                chosen = found
        if chosen is None:
            return None, alternatives + 1
        chosen = self._descend(chosen, value_hash)
        return self.calls([chosen]).get(chosen), alternatives

    def _producer_before(self, value_hash: str, consumer: str) -> tuple[bool, str | None]:
        """A call of the consumer's execution that returned the value and can have fed
        the consumer (see `could_feed`): ``(True, hash or None)``; ``(False, None)`` when
        the consumer's job is not recorded."""
        c, j = schema.calls, schema.jobs
        rows = self._rows(
            select(j.c.id, j.c.execution_id, j.c.started_at, j.c.parent_id)
            .join(c, c.c.job_id == j.c.id)
            .where(c.c.call_hash == consumer)
        )
        if not rows or rows[0].started_at is None:
            return False, None
        consumer_job = rows[0]
        found = self._rows(
            select(j.c.call_hash, j.c.id, j.c.finished_at, j.c.execution_id)
            .join(c, c.c.call_hash == j.c.call_hash)
            .where(
                j.c.execution_id == consumer_job.execution_id,
                c.c.result_hash == value_hash,
                j.c.status.in_(("done", "cached")),
                j.c.finished_at <= consumer_job.started_at,
                j.c.call_hash != consumer,
            )
            .order_by(
                case((j.c.parent_id == consumer_job.parent_id, 0), else_=1),
                j.c.finished_at.desc(),
            )
            .limit(50)
        )
        for call_hash, job_id, finished, _ in found:
            if could_feed(job_id, finished, consumer_job.id, consumer_job.started_at):
                return True, call_hash
        return True, None

    def flows(self, producer: str, consumer: str) -> bool:
        """Whether the result of call `producer` can have reached call `consumer`: in
        some execution that recorded both, the producer could feed the consumer (see
        `could_feed`); with no such execution, whether one parent call made both."""
        j1, j2 = schema.jobs.alias("jp"), schema.jobs.alias("jc")
        both = self._rows(
            select(j1.c.id, j1.c.finished_at, j2.c.id, j2.c.started_at)
            .join(j2, j2.c.execution_id == j1.c.execution_id)
            .where(j1.c.call_hash == producer, j2.c.call_hash == consumer)
            .limit(50)
        )
        if both:
            return any(could_feed(*r) for r in both)
        return bool(set(self.parents(producer)) & set(self.parents(consumer)))

    def _descend(self, call_hash: str, value_hash: str) -> str:
        """Follow child calls that returned the same value down to the innermost one."""
        c, cc = schema.calls, schema.call_children
        seen = {call_hash}
        while True:
            rows = self._rows(
                select(c.c.call_hash)
                .join(cc, cc.c.child_hash == c.c.call_hash)
                .where(cc.c.parent_hash == call_hash, c.c.result_hash == value_hash)
                .order_by(cc.c.position.desc())
                .limit(1)
            )
            if not rows or rows[0][0] in seen:
                return call_hash
            call_hash = rows[0][0]
            seen.add(call_hash)

    def _innermost(self, hashes: Sequence[str], value_hash: str) -> list[str]:
        if len(hashes) < 2:
            return list(hashes)
        cands = set(hashes)
        cc = schema.call_children
        outer: set[str] = set()
        for chunk in _chunks(sorted(cands)):
            for parent, child in self._rows(
                select(cc.c.parent_hash, cc.c.child_hash).where(cc.c.parent_hash.in_(chunk))
            ):
                if child in cands and child != parent:
                    outer.add(parent)
        return [h for h in hashes if h not in outer] or list(hashes)

    def file_producers(self, path: str) -> list[tuple[FileRecord, Call]]:
        """Calls that wrote `path` (as given, absolute, or relative to the current
        directory), innermost only, newest first."""
        f = schema.files
        rows = self._rows(
            select(f)
            .where(f.c.role == "output", f.c.path.in_(_path_variants(path)))
            .order_by(f.c.created_at.desc())
        )
        if not rows:
            return []
        by_hash: dict[str | None, list[Any]] = {}
        for r in rows:
            by_hash.setdefault(r.file_hash, []).append(r)
        out: list[tuple[FileRecord, Call]] = []
        for group in by_hash.values():
            hashes = [r.call_hash for r in group]
            inner = set(self._innermost(hashes, ""))
            calls = self.calls(inner)
            out += [(_file(r), calls[r.call_hash]) for r in group if r.call_hash in calls]
        out.sort(key=lambda fc: -(fc[0].created_at or 0))
        return out

    # -- container parts -----------------------------------------------------------------
    def parts(self, value_hash: str) -> list[tuple[str, str]] | None:
        """``[(label, item_hash)]`` for a stored built-in container, else None.

        Labels are ``[0]``, ``['key']``...; nested containers are flattened
        (``[0][1]``). At most `MAX_PARTS` items.
        """
        if value_hash in self._parts_cache:
            return self._parts_cache[value_hash]
        result: list[tuple[str, str]] | None = None
        value = self.values([value_hash]).get(value_hash)
        if (
            value is not None
            and value.type_name in _CONTAINERS
            and (value.size is None or value.size <= _MAX_PART_BYTES)
        ):
            data = self.store.load_value_data([value_hash]).get(value_hash)
            if data is not None:
                try:
                    obj = pickle.loads(data)
                    result = []
                    _flatten(obj, "", result, 0)
                except Exception:
                    result = None
        self._parts_cache[value_hash] = result
        return result

    # -- lineage -----------------------------------------------------------------------
    def lineage(self, target: str, depth: int = 5) -> Lineage:
        """Where `target` came from: a file path, a value hash or a call hash (prefixes
        accepted), as a tree of producing calls down to `depth` levels."""
        walker = _LineageWalker(self, depth)
        records = self.file_producers(target)
        if not records and not _is_hex(target):
            raise NoSuchRecord(
                f"no file {target!r} was written by a recorded call, and it is not a value "
                "or call hash. Give the path as the workflow saw it, or a hash from "
                "`lazyflow log --job JOB`."
            )
        if records:
            state_hash = _current_file_hash(records[0][0].path)
            chosen = next((fc for fc in records if fc[0].file_hash == state_hash), records[0])
            record, call = chosen
            if state_hash is None:
                state = "missing"
            elif state_hash == record.file_hash:
                state = "unchanged"
            else:
                state = "modified"
            others = len({fc[1].call_hash for fc in records}) - 1
            return Lineage(
                target=target,
                kind="file",
                file=record,
                file_state=state,
                producer=walker.step(call, 0),
                alternatives=others,
            )
        kind, full = self.resolve_hash(target)
        if kind == "call":
            call = self.calls([full])[full]
            return Lineage(
                target=target, kind="call", value=call.result, producer=walker.step(call, 0)
            )
        value = self.values([full]).get(full)
        producer, others = self.producer(full)
        lineage = Lineage(target=target, kind="value", value=value, alternatives=others)
        if producer is not None:
            lineage.producer = walker.step(producer, 0)
        return lineage

    def resolve_hash(self, ident: str) -> tuple[str, str]:
        """("value" | "call", full hash) for a hash prefix found in either table."""
        found: list[tuple[str, str]] = []
        errors: list[ProvenanceError] = []
        for kind, resolve in (("value", self.resolve_value), ("call", self.resolve_call)):
            try:
                found.append((kind, resolve(ident)))
            except AmbiguousPrefix as exc:
                raise exc
            except NoSuchRecord as exc:
                errors.append(exc)
        if not found:
            raise NoSuchRecord(
                f"no file, value or call matches {ident!r} in {redact(self.store.url)}. "
                "Pass a path written by a task, or a value/call hash (prefix)."
            )
        exact = [f for f in found if f[1] == ident.lower()]
        if len(found) > 1 and not exact:
            raise AmbiguousPrefix(
                f"{ident!r} matches both value {found[0][1][:12]} and call "
                f"{found[1][1][:12]}. Give more characters."
            )
        return (exact or found)[0]

    # -- consumers ---------------------------------------------------------------------
    def consumers(self, value_hash: str, limit: int = 500) -> list[tuple[Call, str]]:
        """Calls that took `value_hash` as an argument, or as an item of a container
        argument next to the value's producer: ``[(call, argument name)]``."""
        a = schema.call_args
        rows = self._rows(
            select(a.c.call_hash, a.c.name).where(a.c.value_hash == value_hash).limit(limit)
        )
        found: dict[str, str] = {ch: name for ch, name in rows}
        for ch, label in self._part_consumers(value_hash):
            found.setdefault(ch, label)
        calls = self.calls(found)
        out = [(calls[h], found[h]) for h in found if h in calls]
        out.sort(key=lambda cu: (cu[0].created_at or 0, cu[0].call_hash))
        return out

    def _part_consumers(self, value_hash: str) -> list[tuple[str, str]]:
        c, cc, a, v = schema.calls, schema.call_children, schema.call_args, schema.values
        producers = select(c.c.call_hash).where(c.c.result_hash == value_hash).limit(50)
        parents = select(cc.c.parent_hash).where(cc.c.child_hash.in_(producers))
        rows = self._rows(
            select(a.c.call_hash, a.c.name, a.c.value_hash)
            .join(cc, cc.c.child_hash == a.c.call_hash)
            .join(v, v.c.hash == a.c.value_hash)
            .where(cc.c.parent_hash.in_(parents), v.c.type_name.in_(sorted(_CONTAINERS)))
            .limit(200)
        )
        out: list[tuple[str, str]] = []
        for call_hash, name, container in rows:
            for label, item in self.parts(container) or []:
                if item == value_hash:
                    out.append((call_hash, name + label))
                    break
        return out

    def consumer_tree(self, value_hash: str, depth: int = 3) -> list[Use]:
        """`consumers` of a value, then recursively the calls its consumers' results
        reached (checked with `flows`, so equal values made elsewhere are left out)."""
        seen: set[str] = set()

        def uses(vh: str, producer: str | None, level: int) -> list[Use]:
            out = []
            for call, arg in self.consumers(vh):
                if producer is not None and not self.flows(producer, call.call_hash):
                    continue
                use = Use(call=call, arg=arg)
                if call.call_hash in seen:
                    use.repeated = True
                elif level + 1 >= depth:
                    use.truncated = True
                else:
                    seen.add(call.call_hash)
                    use.uses = uses(call.result_hash, call.call_hash, level + 1)
                out.append(use)
            return out

        return uses(value_hash, None, 0)

    def file_consumers(self, path: str) -> list[tuple[FileRecord, Call]]:
        """Calls that took `path` as an input file, newest first."""
        f = schema.files
        rows = self._rows(
            select(f)
            .where(f.c.role == "input", f.c.path.in_(_path_variants(path)))
            .order_by(f.c.created_at.desc())
        )
        calls = self.calls([r.call_hash for r in rows])
        return [(_file(r), calls[r.call_hash]) for r in rows if r.call_hash in calls]

    # -- executions in depth ---------------------------------------------------------------
    def call_tree(
        self, execution_id: str, *, expand_cached: bool = False, max_nodes: int = 200_000
    ) -> list[CallNode]:
        """The execution's calls as a tree (from job parent links). With `expand_cached`,
        each reused call lists the calls under it, as recorded when they ran."""
        jobs = self.jobs(execution_id)
        call_rows = self.calls([j.call_hash for j in jobs if j.call_hash], details=False)
        results = self.values(c.result_hash for c in call_rows.values())
        nodes: dict[str, CallNode] = {}
        for j in jobs:
            call = call_rows.get(j.call_hash or "")
            nodes[j.id] = CallNode(
                task_name=j.task_name,
                preview=j.args_preview or j.task_name,
                status=j.status,
                cached=j.cached,
                call_hash=j.call_hash,
                job=j,
                seconds=j.seconds,
                result=results.get(call.result_hash) if call else None,
                task_hash=call.task_hash if call else None,
            )
        roots: list[CallNode] = []
        for j in jobs:
            parent = nodes.get(j.parent_id or "")
            (parent.children if parent is not None else roots).append(nodes[j.id])
        if expand_cached:
            self._expand([n for n in nodes.values() if n.cached and n.call_hash], max_nodes)
        return roots

    def _expand(self, tops: list[CallNode], max_nodes: int) -> None:
        """Attach recorded child calls below reused calls, breadth first."""
        frontier = tops
        top_ids = {id(n) for n in tops}
        expanded: set[str] = set()
        count = 0
        while frontier and count < max_nodes:
            todo = []
            for n in frontier:
                if n.call_hash not in expanded:
                    expanded.add(n.call_hash or "")
                    todo.append(n)
                elif id(n) not in top_ids:
                    n.repeated = True
            kids = self._children([n.call_hash for n in todo if n.call_hash])
            calls = self.calls({h for hs in kids.values() for h in hs}, details=False)
            results = self.values(c.result_hash for c in calls.values())
            frontier = []
            for n in todo:
                for h in kids.get(n.call_hash or "", []):
                    call = calls.get(h)
                    if call is None:
                        continue
                    child = CallNode(
                        task_name=call.task_name,
                        preview=call.preview,
                        status="cached",
                        cached=True,
                        call_hash=h,
                        job=None,
                        seconds=None,
                        result=results.get(call.result_hash),
                        task_hash=call.task_hash,
                    )
                    n.children.append(child)
                    frontier.append(child)
                    count += 1

    def run_report(self, ident: str) -> RunReport:
        """What an execution executed, reused from the cache, and failed."""
        execution = self.execution(ident)
        jobs = self.jobs(execution.id)
        cached = [j for j in jobs if j.cached]
        reused: set[str] = set()
        frontier = [j.call_hash for j in cached if j.call_hash]
        while frontier:
            frontier = [h for h in frontier if h not in reused]
            reused.update(frontier)
            kids = self._children(frontier)
            frontier = [h for hs in kids.values() for h in hs]
        return RunReport(
            execution=execution,
            executed=[j for j in jobs if j.status == "done" and not j.cached],
            cached=cached,
            failed=[j for j in jobs if j.status == "failed"],
            reused_calls=len(reused),
        )

    def execution_calls(self, ident: str) -> dict[str, CallNode]:
        """Every call in effect in an execution, the calls under reused ones included,
        keyed by call hash (by job id for a call that could not be hashed)."""
        out: dict[str, CallNode] = {}
        stack = list(reversed(self.call_tree(self.resolve_execution(ident), expand_cached=True)))
        while stack:
            node = stack.pop()
            key = node.call_hash or (node.job.id if node.job else "")
            out.setdefault(key, node)
            stack.extend(reversed(node.children))
        return out

    def arg_hashes(self, call_hashes: Iterable[str]) -> dict[str, dict[str, str]]:
        """``{call_hash: {argument name: value hash}}`` for recorded calls."""
        a = schema.call_args
        out: dict[str, dict[str, str]] = {}
        for chunk in _chunks(sorted(set(call_hashes))):
            for ch, name, vh in self._rows(
                select(a.c.call_hash, a.c.name, a.c.value_hash)
                .where(a.c.call_hash.in_(chunk))
                .order_by(a.c.call_hash, a.c.position)
            ):
                out.setdefault(ch, {})[name] = vh
        return out

    # -- store statistics ----------------------------------------------------------------
    def counts(self) -> dict[str, int]:
        """Row count of every store table."""
        out: dict[str, int] = {}
        for table in schema.metadata.sorted_tables:
            out[table.name] = self._rows(select(func.count()).select_from(table))[0][0]
        return out


# -- helpers -------------------------------------------------------------------------


class _LineageWalker:
    def __init__(self, prov: Provenance, depth: int) -> None:
        self.prov = prov
        self.depth = depth
        self.seen: set[str] = set()

    def step(self, call: Call, level: int) -> Step:
        step = Step(call=call)
        parents = self.prov.parents(call.call_hash)
        if parents:
            step.parent = self.prov.calls(parents[:1], details=False).get(parents[0])
        if call.call_hash in self.seen:
            step.repeated = True
            return step
        self.seen.add(call.call_hash)
        if level >= self.depth:
            step.truncated = True
            return step
        for arg in call.args:
            step.inputs.append(self.input(arg.name, arg.value_hash, arg.value, call, level))
        produced = {i.producer.call.call_hash for i in step.inputs if i.producer}
        for record in self.prov.files(call.call_hash):
            if record.role != "input":
                continue
            inp = Input(name=record.path, value_hash=None, file=record)
            writers = [
                fc
                for fc in self.prov.file_producers(record.path)
                if fc[0].file_hash == record.file_hash
            ]
            if writers and writers[0][1].call_hash in produced:
                continue  # already shown as the producer of an argument
            if writers:
                inp.producer = self.step(writers[0][1], level + 1)
            step.inputs.append(inp)
        return step

    def input(
        self, name: str, value_hash: str, value: Value | None, consumer: Call, level: int
    ) -> Input:
        inp = Input(name=name, value_hash=value_hash, value=value)
        producer = self._producer(inp, value_hash, consumer)
        if producer is not None:
            inp.producer = self.step(producer, level + 1)
            return inp
        parts = self.prov.parts(value_hash) if value is not None else None
        if parts:
            shown = parts[:10]
            inp.more_parts = len(parts) - len(shown)
            part_values = self.prov.values(h for _, h in shown)
            for label, item in shown:
                part = Input(name=name + label, value_hash=item, value=part_values.get(item))
                p = self._producer(part, item, consumer)
                if p is not None:
                    part.producer = self.step(p, level + 1)
                inp.parts.append(part)
        return inp

    def _producer(self, inp: Input, value_hash: str, consumer: Call) -> Call | None:
        """The producer of an argument; when the consumer got it from the call it ran in
        (``def outer(raw): return inner(raw)``), the producer of that call's argument."""
        call: Call | None = consumer
        for _ in range(8):
            assert call is not None
            producer, _ = self.prov.producer(value_hash, consumer=call.call_hash)
            if producer is not None and producer.call_hash != call.call_hash:
                return producer
            outer, arg = None, None
            for candidate in self.prov.calls(self.prov.parents(call.call_hash)[:5]).values():
                arg = next((a for a in candidate.args if a.value_hash == value_hash), None)
                if arg is not None:
                    outer = candidate
                    break
            if outer is None or arg is None:
                return None
            if inp.passed_by is None:
                inp.passed_by = (outer, arg.name)
            call = outer
        return None


def _flatten(obj: Any, label: str, out: list[tuple[str, str]], depth: int) -> None:
    from .hashing import value_digest

    if isinstance(obj, dict):
        items: Iterable[tuple[str, Any]] = ((f"[{k!r}]", v) for k, v in obj.items())
    elif isinstance(obj, list | tuple | set | frozenset):
        items = ((f"[{i}]", v) for i, v in enumerate(obj))
    else:
        return
    for sub, item in items:
        if len(out) >= MAX_PARTS:
            return
        try:
            out.append((label + sub, value_digest(item).hex()))
        except Exception:
            continue
        if depth < 2 and isinstance(item, list | tuple | dict | set | frozenset):
            _flatten(item, label + sub, out, depth + 1)


def _name_matches(column: Any, name: str) -> Any:
    """Full task name, or the short name after the last dot."""
    return or_(column == name, column.endswith("." + name, autoescape=True))


def _path_variants(path: str) -> list[str]:
    variants = {path}
    if "://" not in path:
        absolute = os.path.abspath(path)
        variants.add(absolute)
        with contextlib.suppress(ValueError):
            variants.add(os.path.relpath(absolute))
    return sorted(variants)


def _is_hex(text: str) -> bool:
    return bool(text) and all(ch in "0123456789abcdefABCDEF" for ch in text)


def _current_file_hash(path: str) -> str | None:
    from .files import File

    try:
        return File(path).current_hash()
    except Exception:
        return None


def _preview(task_name: str, args: Sequence[Arg]) -> str:
    short = task_name.rsplit(".", 1)[-1]
    shown = ", ".join(
        f"{a.name}={_cut(a.value.preview if a.value and a.value.preview else '?')}" for a in args
    )
    return f"{short}({shown})"


def _cut(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _job(r: Any) -> Job:
    return Job(
        id=r.id,
        execution_id=r.execution_id,
        call_hash=r.call_hash,
        task_name=r.task_name,
        parent_id=r.parent_id,
        status=r.status,
        cached=bool(r.cached),
        started_at=r.started_at,
        finished_at=r.finished_at,
        attempts=r.attempts,
        args_preview=r.args_preview,
        error=r.error,
    )


def _task(r: Any) -> TaskVersion:
    return TaskVersion(r.hash, r.name, r.module, r.source, r.created_at)


def _file(r: Any) -> FileRecord:
    return FileRecord(r.call_hash, r.role, r.path, r.file_hash, r.created_at)
