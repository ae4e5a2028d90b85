"""Predicting below a call that would run: what its previous run made, and what of that
would be reused.

A dry run (``explain``) stops at a call that would run: only running its body tells what
it calls now. The store tells what it called last time, though: the recorded children of
the same call (its stored result is invalid: a task below changed) or of the most recent
recorded call of the same task (its arguments or code changed). Each recorded call below
is judged from the store alone, never by running anything: it would be reused if its
task still has the recorded hash and its validation set still holds (the tasks and files
below it), else it would run, with the reason (the task's code changed and which helper,
constant or class it uses changed; a task below it changed; a file changed). Calls that
would run are followed further down; reused ones are not (their subtree is reused
whole). Every such `Decision` is marked ``predicted``: the call runs only if the new run
makes the same call again.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple, Protocol

from .events import Decision, Reason
from .lookups import FileSet, TaskSet, changed_file, invalid_reason, stale_task
from .task import get_task

MAX_PREDICTED = 500
"""Recorded calls judged below one explained call at most (a fan-out of 100,000 is
summarized by its first ones: the rest would be like them)."""

BELOW_AGAIN = (Reason.CHILD_CHANGED, Reason.VALUE_UNREADABLE)
"""Reasons whose call has a stored row of its own: predict from its own children. (Not
``cache_disabled``: with caching off everything below runs, nothing to predict.)"""
BELOW_LATEST = (Reason.ARGS_CHANGED, Reason.FILE_CHANGED, Reason.CODE_CHANGED)
"""Reasons whose call is new: predict from the latest recorded call of the same task."""


class RecordedCall(NamedTuple):
    """A recorded call below another one (`RecordHistory.recorded_children`)."""

    call_hash: str
    task_name: str
    task_hash: str
    validation_hash: str
    preview: str | None


class RecordHistory(Protocol):
    """What predicting reads from the store (`store.sql.CallHistory`)."""

    def latest_call(self, task_name: str) -> str | None: ...
    def recorded_children(self, call_hashes: Sequence[str]) -> dict[str, list[RecordedCall]]: ...
    def validation_sets(
        self, hashes: Sequence[str]
    ) -> dict[str, tuple[list[list[str]], list[list[Any]]]]: ...
    def task_dependencies(self, task_hash: str) -> dict[str, str]: ...
    def call_preview(self, call_hash: str) -> str | None: ...


def predict_below(
    call_hash: str | None, task_name: str, reason: str, history: RecordHistory
) -> list[Decision]:
    """Predicted decisions of the recorded calls below a call that would run (see the
    module docstring); [] when there is no previous call to predict from."""
    if reason in BELOW_AGAIN:
        previous = call_hash
    elif reason in BELOW_LATEST:
        previous = history.latest_call(task_name)
    else:
        return []
    if previous is None:
        return []
    source = history.call_preview(previous) or task_name
    out: list[Decision] = []
    level = [previous]
    seen = {previous}
    while level and len(out) < MAX_PREDICTED:
        children = history.recorded_children(level)
        below = [c for p in level for c in children.get(p, []) if c.call_hash not in seen]
        below = below[: MAX_PREDICTED - len(out)]
        seen.update(c.call_hash for c in below)
        vsets = _sets(history, {c.validation_hash for c in below})
        level = []
        for child in below:
            d = judge(child, vsets.get(child.validation_hash), history, source)
            out.append(d)
            if d.action == "run":
                level.append(child.call_hash)
    return out


def _sets(history: RecordHistory, hashes: set[str]) -> dict[str, tuple[TaskSet, FileSet]]:
    loaded = history.validation_sets(sorted(hashes)) if hashes else {}
    return {
        h: (
            frozenset((n, th) for n, th in tasks),
            frozenset((p, bool(c), fh) for p, c, fh in files),
        )
        for h, (tasks, files) in loaded.items()
    }


def judge(
    child: RecordedCall,
    vset: tuple[TaskSet, FileSet] | None,
    history: RecordHistory,
    source: str,
) -> Decision:
    """Would this recorded call be reused if the new run made it again?"""
    where = f"predicted from the calls {source} made last time"
    current = get_task(child.task_name)
    if current is None:
        return _decision(child, "run", Reason.CODE_CHANGED, f"its task is not loaded; {where}")
    if current.hash != child.task_hash:
        before = history.task_dependencies(child.task_hash)
        now = current.dependencies
        changed = sorted(n for n in set(before) | set(now) if before.get(n) != now.get(n))
        what = f"what it uses changed: {', '.join(changed)}" if changed else "its code changed"
        return _decision(child, "run", Reason.CODE_CHANGED, f"{what}; {where}")
    if vset is not None and stale_task(vset[0]) is None and changed_file(vset[1]) is None:
        return _decision(child, "cached", Reason.CACHED, f"if called again; {where}")
    reason, detail = invalid_reason(vset)
    return _decision(child, "run", reason, f"{detail}; {where}")


def _decision(child: RecordedCall, action: str, reason: Reason, detail: str) -> Decision:
    return Decision(
        task_name=child.task_name,
        call=child.preview or child.task_name,
        call_hash=child.call_hash,
        action=action,
        reason=reason,
        detail=detail,
        predicted=True,
    )
