"""Run summaries, job events and cache decisions: what a scheduler reports.

Job events, in the order one job can see them (``kind``; every job's last event is one
of ``cached``, ``merged``, ``done``, ``failed`` or ``caught``)::

    pending   its arguments are known and its call hash computed: a cache lookup or a
              run follows
    merged    an identical call (same task, same arguments) is already in flight: this
              one takes that one's result and never runs (``call_hash`` is shared)
    cached    reused from the store (``reason`` CACHED); no run
    queued    handed to an executor that says when it starts a job (`Executor.reports_start`):
              waiting for a worker (``reason`` says why it runs)
    started   running (for executors that cannot tell, from when it was handed over;
              ``reason`` says why it runs)
    retry     failed, and runs again (``@task(retries=)``); ``error`` says how it failed
    done      returned; ``seconds`` from start to end
    failed    raised, and no ``catch`` handled it (or a call in what it returned did)
    caught    raised, and a ``catch`` handled it: the run goes on; the summary counts it
              as executed (and in ``caught``), not as failed

Events are delivered on the scheduler thread, in order, to `Scheduler(listeners=[...])`
callables; a listener that raises is logged and ignored.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any


class Reason(StrEnum):
    """Why a call was (or would be) reused or run: a `Decision`'s ``reason``, and the
    ``reason`` of a job's ``cached``/``queued``/``started`` events in real runs too.

    String-valued: ``Reason.CACHED == "cached"``. Real runs know the cheap reasons (no
    stored call, a changed task below, a changed file, an unreadable value, caching off);
    ``explain`` turns ``NOT_CACHED`` into ``NEW_TASK``, ``CODE_CHANGED``, ``ARGS_CHANGED``
    or ``FILE_CHANGED`` from the store's history of the task.
    """

    CACHED = "cached"
    NOT_CACHED = "not_cached"
    NEW_TASK = "new_task"
    CODE_CHANGED = "code_changed"
    ARGS_CHANGED = "args_changed"
    FILE_CHANGED = "file_changed"
    CACHE_DISABLED = "cache_disabled"
    VALUE_UNREADABLE = "value_unreadable"
    # a dry run's: the call is cached, but its value is not unpickled (explain loads
    # only data, or signed values with --values), so what needs it is unknown
    VALUE_NOT_LOADED = "value_not_loaded"
    CHILD_CHANGED = "child_changed"
    EXPRESSION_REUSED = "expression_reused"
    NEEDS_RESULT = "needs_result"


@dataclass(slots=True)
class JobEvent:
    """One job transition (see the module docstring for the kinds and their order)."""

    kind: str
    execution_id: str
    job_id: str
    task_name: str
    call_hash: str | None
    args_preview: str
    seconds: float | None = None
    error: str | None = None
    reason: str | None = None  # a `Reason`, on cached / queued / started events
    traceback: str | None = None  # on failed events of the job that raised


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
    cached: int = 0
    executed: int = 0
    failed: int = 0
    seconds: float = 0.0
    by_task: dict[str, TaskCounts] = field(default_factory=dict)
    error: str | None = None
    result_hash: str | None = None
    # records of the run that could not be stored (a read-only store, a full disk): the
    # results are right, but what they recorded is not cached for the next run
    records_lost: int = 0

    # of the executed jobs, those that raised an exception a `catch` handled
    caught: int = 0

    @property
    def jobs(self) -> int:
        """Every job of the run: ``cached + executed + failed``."""
        return self.cached + self.executed + self.failed

    def to_dict(self) -> dict[str, Any]:
        return {"jobs": self.jobs, **asdict(self)}

    def __str__(self) -> str:
        return (
            f"execution {self.execution_id[:8]} {self.status}: {self.jobs} jobs, "
            f"{self.executed} executed, {self.cached} cached, {self.failed} failed "
            f"in {self.seconds:.2f}s"
        )


@dataclass(frozen=True, slots=True)
class Decision:
    """One cache decision of `Scheduler.explain` (a dry run that executes nothing).

    `action` is ``"cached"`` (would be reused), ``"run"`` (would execute) or ``"unknown"``
    (its arguments need a result that only running would give). `reason` is a `Reason`
    value; `detail` says which argument, file or task; `diff` is a unified diff of the
    task's normalized source when its code changed. A `predicted` decision is about a
    call recorded below one that would run (what its previous run made, `predict`): it
    holds if the new run makes that call again.
    """

    task_name: str
    call: str
    call_hash: str | None
    action: str
    reason: str
    detail: str = ""
    diff: str | None = None
    predicted: bool = False  # below a call that would run, judged from the previous run


def decision_totals(decisions: Iterable[Decision]) -> dict[str, int]:
    """The totals of a dry run: ``run``, ``cached`` and ``unknown`` count the calls this
    run reaches; ``predicted`` counts the guesses below calls that would run (split into
    ``predicted_run`` and ``predicted_cached``), which are never counted as cached: they
    hold only if the new run makes the same calls as the previous one."""
    totals = dict.fromkeys(("run", "cached", "unknown"), 0)
    totals.update(predicted=0, predicted_run=0, predicted_cached=0)
    for d in decisions:
        if d.predicted:
            totals["predicted"] += 1
            key = f"predicted_{d.action}"
            totals[key] = totals.get(key, 0) + 1
        else:
            totals[d.action] = totals.get(d.action, 0) + 1
    return totals
