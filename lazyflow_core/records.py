"""Records: what a run tells its store, one typed record per kind.

The scheduler thread describes everything it learns as records and hands them to the
store writer (`StoreWriter.put`); it never builds SQL and never touches the database.
Each record class below is a ``NamedTuple`` whose fields are columns of one table of
`lazyflow_core.store.schema`, with the same names, key columns first:

- `KINDS` gives each record type its table, its name in the writer's batches (the wire
  to the writer process) and how it is written: ``"insert"`` (a row that never
  changes: an existing row with the same key is kept), ``"upsert"`` (the latest record
  of a key wins), ``"update"`` (set the other fields of the row whose key is the
  *last* fields) or ``"delete"`` (delete the rows matching every field).
- `KINDS` is in the order the kinds of one batch are written: a call's value rows
  land in the same transaction as, or before, the call; a call's old child rows are
  deleted before its new ones are inserted.

The store derives every statement from this and from the table (`store.statements`),
and checks that the two agree; a test does too. Records are tuples, so the writer
thread sends them to the writer process as plain tuples with ``marshal`` (no pickling,
no per-row conversion on the scheduler thread).

Two records are not rows yet: `PendingValue` holds a Python object the writer thread
pickles into a `ValueRecord` (work kept off the scheduler thread), and `JobRecord`'s
``args_preview`` may hold the call's `CallParts`, formatted by the writer thread. (Not to be
confused with `lazyflow_core.provenance.records`: the frozen rows that queries *read*.)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

from .expression import format_args


class ExecutionRecord(NamedTuple):
    """A run started (written first, so a killed run still shows in ``lazyflow log``)."""

    id: str
    started_at: float
    status: str
    root_task: str | None
    command: str
    hostname: str
    pid: int
    jobs: int = 0
    cached: int = 0
    executed: int = 0
    failed: int = 0


class ExecutionEndRecord(NamedTuple):
    """A run ended: its status and counts (an update of its `ExecutionRecord`)."""

    finished_at: float
    status: str
    root_call_hash: str | None
    result_hash: str | None
    jobs: int
    cached: int
    executed: int
    failed: int
    error: str | None
    id: str  # the key, last: UPDATE ... SET (the fields above) WHERE id = ...


class HeartbeatRecord(NamedTuple):
    """A running execution is alive: written by its store writer's timer, every
    `liveness.HEARTBEAT_SECONDS` (never per job), with the host it runs on."""

    heartbeat_at: float
    host_id: str
    id: str  # the key, last


class TagRecord(NamedTuple):
    execution_id: str
    key: str
    value: str


class EntityTagRecord(NamedTuple):
    """A tag `apply_tags` set on a value (`entity_id`: its hash) or a job (its id)."""

    entity_kind: str  # "value" | "job"
    entity_id: str
    key: str
    execution_id: str
    value: str
    created_at: float


class TaskRecord(NamedTuple):
    """A task version (its hash), with its source and what its code hash covers."""

    hash: str
    name: str
    module: str | None
    source: str | None
    created_at: float
    dependencies: str  # JSON {global name: hash}
    dependency_sources: str  # JSON {global name: source} of the user's own code it reaches


class ValidationSetRecord(NamedTuple):
    """What a cached result depends on: tasks (JSON [name, hash]) and files (JSON
    [path, content, hash]); reused calls are checked against it."""

    hash: str
    tasks: str
    files: str


class ValueRecord(NamedTuple):
    """A stored value's row (built by the writer thread from a `PendingValue`), with the
    seal of its bytes (`store.signing`: a signature with a key, else a checksum)."""

    hash: str
    type_name: str
    size: int | None
    preview: str
    data: bytes | None
    blob: str | None
    created_at: float
    signature: str | None


class ValueReplaceRecord(NamedTuple):
    """A value row written over an unreadable one (its blob was missing, ...)."""

    hash: str
    type_name: str
    size: int | None
    preview: str
    data: bytes | None
    blob: str | None
    created_at: float
    signature: str | None


class ValidationSetReplaceRecord(NamedTuple):
    """A validation set written over a stored row that could not be read (the writer
    turns a `ValidationSetRecord` of a set the store found damaged into this)."""

    hash: str
    tasks: str
    files: str


class ChildrenResetRecord(NamedTuple):
    """Forget a call's child rows before its children are written again."""

    parent_hash: str


class CallRecord(NamedTuple):
    """A cacheable call: its result and validation set (a later run reuses it)."""

    call_hash: str
    task_hash: str
    task_name: str
    result_hash: str
    validation_hash: str
    execution_id: str
    job_id: str
    created_at: float


class ReductionRecord(NamedTuple):
    """A call's first reduction: `value_hash` is the expression its body returned
    (`lookups`: reused when a task below the call changed, so the body need not run)."""

    call_hash: str
    value_hash: str
    execution_id: str
    created_at: float


class ArgRecord(NamedTuple):
    """An argument of a call, and the call whose result it was (None: it was given)."""

    call_hash: str
    position: int
    name: str
    value_hash: str
    producer: str | None


class ChildRecord(NamedTuple):
    parent_hash: str
    position: int
    child_hash: str


class CallFileRecord(NamedTuple):
    """A file a call read (``role`` "input") or returned ("output"), with its hash."""

    call_hash: str
    role: str
    path: str
    file_hash: str | None
    created_at: float


class JobRecord(NamedTuple):
    """One job of an execution: a call run, reused or failed (never rewritten)."""

    id: str
    execution_id: str
    call_hash: str | None
    task_name: str
    parent_id: str | None
    status: str  # "done" | "cached" | "failed"
    cached: bool
    started_at: float
    finished_at: float
    attempts: int
    args_preview: str | CallParts  # CallParts: formatted by the writer thread
    error: str | None  # "Type: message"
    result_hash: str | None  # what this job produced or reused (lf_calls may move on)
    task_hash: str | None  # the task version it ran
    error_type: str | None  # a failed job's exception type (qualified name)
    traceback: str | None  # a failed job's formatted traceback


class LeaseReleaseRecord(NamedTuple):
    """A run is done with a call it leased (`store.leases`): its result, queued before
    this, is committed with or before the lease goes, so a waiter that sees the lease
    gone finds the result."""

    call_hash: str


Record = (
    ExecutionRecord
    | HeartbeatRecord
    | ExecutionEndRecord
    | TagRecord
    | EntityTagRecord
    | TaskRecord
    | ValidationSetRecord
    | ValidationSetReplaceRecord
    | ValueRecord
    | ValueReplaceRecord
    | ChildrenResetRecord
    | CallRecord
    | ReductionRecord
    | ArgRecord
    | ChildRecord
    | CallFileRecord
    | JobRecord
    | LeaseReleaseRecord
)


@dataclass(frozen=True, slots=True)
class Kind:
    """How one record type is written: its name on the wire, its table, and the write
    (``"insert"``, ``"upsert"``, ``"update"`` or ``"delete"``: see the module doc)."""

    record: type[Record]
    name: str
    table: str
    write: str


KINDS: tuple[Kind, ...] = (
    Kind(ExecutionRecord, "execution", "lf_executions", "insert"),
    Kind(HeartbeatRecord, "heartbeat", "lf_executions", "update"),
    Kind(TagRecord, "tag", "lf_execution_tags", "upsert"),
    Kind(EntityTagRecord, "entity_tag", "lf_tags", "upsert"),
    Kind(TaskRecord, "task", "lf_tasks", "insert"),
    Kind(ValidationSetRecord, "vset", "lf_validation_sets", "insert"),
    Kind(ValidationSetReplaceRecord, "vset_replace", "lf_validation_sets", "upsert"),
    Kind(ValueRecord, "value", "lf_values", "insert"),
    Kind(ValueReplaceRecord, "value_replace", "lf_values", "upsert"),
    Kind(ChildrenResetRecord, "children_reset", "lf_call_children", "delete"),
    Kind(CallRecord, "call", "lf_calls", "upsert"),
    Kind(ReductionRecord, "reduction", "lf_reductions", "upsert"),
    Kind(ArgRecord, "arg", "lf_call_args", "upsert"),
    Kind(ChildRecord, "child", "lf_call_children", "upsert"),
    Kind(CallFileRecord, "file", "lf_files", "upsert"),
    Kind(JobRecord, "job", "lf_jobs", "insert"),
    Kind(LeaseReleaseRecord, "lease_release", "lf_leases", "delete"),
    Kind(ExecutionEndRecord, "execution_end", "lf_executions", "update"),
)
"""Every record kind, in the order one batch writes them."""

KIND_OF: dict[type[Any], Kind] = {kind.record: kind for kind in KINDS}


class PendingValue(NamedTuple):
    """A value to store: the writer thread pickles `value` (unless `data` holds its
    pickled bytes already, from a worker) into a `ValueRecord`, or a
    `ValueReplaceRecord` when `replace` (the stored row could not be read)."""

    hash: str
    value: Any
    data: bytes | None
    replace: bool = False


CallParts = tuple[str, tuple[Any, ...], dict[str, Any]]
"""A call's short task name, arguments and keyword arguments: a `JobRecord`'s preview
before the writer thread formats it (`preview`), which keeps that off the scheduler."""


def preview(parts: str | CallParts) -> str:
    """``task(args...)``, the text of a job's ``args_preview``."""
    if isinstance(parts, str):
        return parts
    name, args, kwargs = parts
    if not kwargs and len(args) == 1 and type(args[0]) is int:  # a fan-out's inc(i)
        text = repr(args[0])  # what format_args shows, when it is this short
        if len(text) <= _ARG_LIMIT:
            return f"{name}({text})"
    return f"{name}({format_args(args, kwargs, _ARG_LIMIT)})"


_ARG_LIMIT = 40  # characters of one argument's preview (`format_args`)
