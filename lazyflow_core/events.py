"""Run summaries and job events: what a scheduler reports to its callers and listeners."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(slots=True)
class JobEvent:
    """One job transition, delivered to `Scheduler(listeners=[...])` callables."""

    kind: str  # "pending" | "started" | "cached" | "done" | "failed" | "retry"
    execution_id: str
    job_id: str
    task_name: str
    call_hash: str | None
    args_preview: str
    seconds: float | None = None
    error: str | None = None


@dataclass(slots=True)
class TaskCounts:
    executed: int = 0
    cached: int = 0
    failed: int = 0
    seconds: float = 0.0


@dataclass
class RunSummary:
    """What one `Scheduler.run` did. ``to_dict()`` is JSON-friendly."""

    execution_id: str
    status: str = "running"  # "done" | "failed" | "cancelled"
    jobs: int = 0
    cached: int = 0
    executed: int = 0
    failed: int = 0
    seconds: float = 0.0
    by_task: dict[str, TaskCounts] = field(default_factory=dict)
    error: str | None = None
    result_hash: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        return (
            f"execution {self.execution_id[:8]} {self.status}: {self.jobs} jobs, "
            f"{self.executed} executed, {self.cached} cached, {self.failed} failed "
            f"in {self.seconds:.2f}s"
        )


class Reason:
    """Why a call would be reused or run (the ``reason`` of a `Decision`)."""

    CACHED = "cached"
    NEW_TASK = "new_task"
    CODE_CHANGED = "code_changed"
    ARGS_CHANGED = "args_changed"
    FILE_CHANGED = "file_changed"
    CACHE_DISABLED = "cache_disabled"
    VALUE_UNREADABLE = "value_unreadable"
    CHILD_CHANGED = "child_changed"
    NEEDS_RESULT = "needs_result"


@dataclass(frozen=True, slots=True)
class Decision:
    """One cache decision of `Scheduler.explain` (a dry run that executes nothing).

    `action` is ``"cached"`` (would be reused), ``"run"`` (would execute) or ``"unknown"``
    (its arguments need a result that only running would give). `reason` is a `Reason`
    value; `detail` says which argument, file or task; `diff` is a unified diff of the
    task's normalized source when its code changed.
    """

    task_name: str
    call: str
    call_hash: str | None
    action: str
    reason: str
    detail: str = ""
    diff: str | None = None
