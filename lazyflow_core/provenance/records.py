"""Provenance records: the frozen rows a query returns, the trees built from them, and
the errors a query raises.

`Execution`, `Job`, `Value`, `Arg`, `Call`, `TaskVersion` and `FileRecord` mirror the
store's tables; `Step`, `Input` and `Lineage` form a lineage tree, `Use` a consumer tree,
`CallNode` an execution's call tree, and `RunReport` sums up one execution. Nothing here
reads the store.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import LazyflowError


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
    heartbeat_at: float | None = None  # last sign of life of a running execution

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
    # The job's own result and task version (None in records older than schema 0005,
    # where readers fall back to the call's row) and a failed job's exception.
    result_hash: str | None = None
    task_hash: str | None = None
    error_type: str | None = None
    traceback: str | None = None

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
    # the call whose result this argument was, as recorded (None: given, or a store
    # older than schema 0005)
    producer: str | None = None


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


@dataclass(eq=False, slots=True)
class TaskCount:
    """One task's jobs in an execution, by state (``done``, ``cached``, ``failed``,
    ``running``...), and the seconds its executed jobs took in all."""

    name: str
    jobs: int = 0
    states: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


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


@dataclass(frozen=True, slots=True)
class JobFile:
    """A file a job's call read (``input``) or wrote (``output``); `cached` jobs reused a
    call of an earlier execution, so they did not write it in this one."""

    job_id: str
    task_name: str
    cached: bool
    role: str
    path: str
    file_hash: str | None


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
    job_tags: dict[str, str] = field(default_factory=dict)  # `apply_tags(job_tags=)`
    result_tags: dict[str, str] = field(default_factory=dict)  # tags on its result value


@dataclass(eq=False)
class RunReport:
    """What one execution executed, reused and failed."""

    execution: Execution
    executed: list[Job]
    cached: list[Job]
    failed: list[Job]
    reused_calls: int  # calls inside reused subtrees, the cached jobs included
