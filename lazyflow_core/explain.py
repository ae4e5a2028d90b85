"""Explaining cache decisions: why a call would be reused or would run (dry runs).

`Scheduler.explain` evaluates with `DryRunPolicy`, the evaluator's `RunPolicy` for a run
that executes nothing: every call gets a `Decision` instead. The evaluator's cache
lookups give each call the reason a real run gives too (`lookups`: reused, caching off,
a task below changed, a file changed, an unreadable value, or no stored call); where
that is ``NOT_CACHED``, `diagnose` works out more from the store's history of the task:
new task, code changed (with a diff of the normalized source), or which argument or
file changed. Below a call that would run, `predict` judges the calls its previous run
made (marked ``predicted``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from .codechange import CodeVersion, summary, unified_diff
from .events import Decision, Reason
from .expression import format_args, short_repr
from .files import File
from .frames import ARGS, PENDING, CallFrame, Frame
from .predict import RecordHistory, predict_below
from .recording import bound_value
from .task import Task, get_task


class History(RecordHistory, Protocol):
    """The store's answers about past calls of a task (`store.sql.CallHistory`)."""

    def latest_task_hash(self, task_name: str) -> str | None: ...
    def task_source(self, task_hash: str) -> str | None: ...
    def task_dependencies(self, task_hash: str) -> dict[str, str]: ...
    def latest_call_args(self, task_hash: str) -> dict[str, str]: ...
    def value_preview(self, value_hash: str) -> str | None: ...
    def task_version(self, task_hash: str) -> CodeVersion | None: ...
    def called_tasks(self, call_hash: str) -> list[tuple[str, str]]: ...


class HasHistory(Protocol):
    def history(self) -> History: ...


class DryRunPolicy:
    """A run that executes nothing (the evaluator's `RunPolicy` for ``explain``): each
    call gets a `Decision` in `decisions`; evaluation stops where only running would
    tell what comes next (those calls are ``unknown``)."""

    def __init__(self, store: HasHistory) -> None:
        self.store = store
        self.decisions: list[Decision] = []
        self._history: History | None = None

    def must_run(self, frame: CallFrame, reason: Reason, detail: str) -> None:
        if reason is Reason.VALUE_NOT_LOADED:  # reused, but evaluation stops there
            self.decisions.append(decision(frame, "cached", reason, detail))
        else:
            history = self.history()
            if reason is Reason.NOT_CACHED:
                d = diagnose(frame, history)
            elif reason is Reason.CHILD_CHANGED and frame.call_hash is not None:
                detail, diff = child_changed(frame.call_hash, history, detail)
                d = decision(frame, "run", reason, detail, diff)
            else:
                d = decision(frame, "run", reason, detail)
            self.decisions.append(d)
            self.decisions += predict_below(frame.call_hash, frame.task.name, d.reason, history)

    def history(self) -> History:
        if self._history is None:
            self._history = self.store.history()
        return self._history

    def reused(self, frame: CallFrame) -> None:
        self.decisions.append(decision(frame, "cached", Reason.CACHED))

    def reduced(self, frame: CallFrame, detail: str) -> None:
        self.decisions.append(
            decision(
                frame,
                "cached",
                Reason.EXPRESSION_REUSED,
                f"its body would not run: {detail}, so the expression it returned is "
                "evaluated again",
            )
        )

    def stalled(self, frames: Iterable[Frame]) -> bool:
        self.decisions += blocked(frames)
        return True


def decision(
    frame: CallFrame, action: str, reason: str, detail: str = "", diff: str | None = None
) -> Decision:
    """A Decision about `frame` (its arguments must be known)."""
    return Decision(
        task_name=frame.task.name,
        call=f"{frame.task.short_name}({format_args(frame.args, frame.kwargs)})",
        call_hash=frame.call_hash,
        action=action,
        reason=reason,
        detail=detail,
        diff=diff,
    )


def diagnose(frame: CallFrame, history: History) -> Decision:
    """A call with no stored result would run: say why from the task's history (new
    task, code changed and how, which argument or file changed)."""
    task = frame.task
    latest = history.latest_task_hash(task.name)
    if latest is None:
        return decision(frame, "run", Reason.NEW_TASK, "no call of this task is stored")
    if latest != task.hash and not history.latest_call_args(task.hash):
        old = history.task_version(latest) or CodeVersion(task.name, "")
        now = current_version(task)
        diff = unified_diff(old, now) or None
        return decision(frame, "run", Reason.CODE_CHANGED, summary(old, now), diff)
    before = history.latest_call_args(task.hash) or history.latest_call_args(latest)
    changed = []
    file_changed = False
    for name, digest in frame.arg_digests:
        old_hash = before.get(name)
        if old_hash != digest.hex():
            was = history.value_preview(old_hash) if old_hash else None
            value = bound_value(frame, [n for n, _ in frame.arg_digests].index(name), name)
            if isinstance(value, File):
                file_changed = True
                if was == short_repr(value):  # same path: its content changed
                    changed.append(f"{name} (file {value.path} changed)")
                    continue
            changed.append(f"{name} (was {was}, now {short_repr(value)})")
    reason = Reason.FILE_CHANGED if file_changed else Reason.ARGS_CHANGED
    detail = "argument " + "; ".join(changed) if changed else "new argument values"
    return decision(frame, "run", reason, detail)


def current_version(task: Task) -> CodeVersion:
    return CodeVersion(task.name, task.source, task.dependencies, task.dependency_sources)


def child_changed(call_hash: str, history: History, detail: str) -> tuple[str, str | None]:
    """A cached call is invalid because a task below it changed: which task, and what in
    its code (the helper, constant or class), with the diff (`codechange`)."""
    details, diffs = [], []
    for name, stored_hash in history.called_tasks(call_hash):
        task = get_task(name)
        if task is None or task.hash == stored_hash:
            continue
        before = history.task_version(stored_hash) or CodeVersion(name, "")
        now = current_version(task)
        details.append(f"task {name} it called has changed: {summary(before, now)}")
        diffs.append(unified_diff(before, now))
    if not details:
        return detail, None
    return "; ".join(details), "\n".join(d for d in diffs if d) or None


def blocked(frames: Iterable[Frame]) -> list[Decision]:
    """Calls whose arguments wait on a call that would run: only running would tell."""
    out = []
    for frame in frames:
        if isinstance(frame, CallFrame) and frame.state == PENDING and frame.phase == ARGS:
            out.append(
                Decision(
                    task_name=frame.task.name,
                    call=repr(frame.expr),
                    call_hash=None,
                    action="unknown",
                    reason=Reason.NEEDS_RESULT,
                    detail="its arguments need results of calls that would run first "
                    "(or cached results a dry run does not load)",
                )
            )
    return out
