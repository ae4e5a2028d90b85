"""Explaining cache decisions: why a call would be reused or would run (dry runs).

`Scheduler.explain` evaluates with executors switched off. Each call that would run gets
a `Decision` whose reason these functions work out from the store's history of the task:
new task, code changed (with a diff of the normalized source), an argument or file
changed, or a task below a cached parent changed.
"""

from __future__ import annotations

import difflib
from typing import TYPE_CHECKING, Any

from .events import Decision, Reason
from .expression import format_args, short_repr
from .files import File
from .frames import ARGS, PENDING, CallFrame
from .recording import bound_value, changed_file, stale_task
from .task import get_task

if TYPE_CHECKING:
    from .evaluator import Evaluator


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


def invalid_reason(vset: tuple[frozenset[Any], frozenset[Any]] | None) -> tuple[str, str]:
    """Why a cached call failed validation: which task below changed, or which file."""
    if vset is None:
        return (Reason.CHILD_CHANGED, "its record of the tasks below it is missing")
    tasks, files = vset
    name = stale_task(tasks)
    if name is not None:
        state = "is not loaded any more" if get_task(name) is None else "has changed"
        return (Reason.CHILD_CHANGED, f"task {name} it called {state}")
    changed = changed_file(files)
    if changed is not None:
        path, now = changed
        return (
            Reason.FILE_CHANGED,
            f"file {path} {'was deleted' if now is None else 'was modified'}",
        )
    return (Reason.CHILD_CHANGED, "cached result is not valid any more")


def diagnose(ev: Evaluator, frame: CallFrame) -> Decision:
    """A call that would run: say why (new task, code/argument/file change...)."""
    known = ev.miss_reasons.get(id(frame))
    if known is not None:
        return decision(frame, "run", known[0], known[1])
    task = frame.task
    if not ev.use_cache or not task.options.cache:
        where = "for this run" if not ev.use_cache else "on the task (cache=False)"
        return decision(frame, "run", Reason.CACHE_DISABLED, f"caching is off {where}")
    history = ev.store.history()
    latest = history.latest_task_hash(task.name)
    if latest is None:
        return decision(frame, "run", Reason.NEW_TASK, "no call of this task is stored")
    if latest != task.hash and not history.latest_call_args(task.hash):
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
        before_deps = history.task_dependencies(latest)
        now_deps = task.dependencies
        changed_deps = sorted(
            name
            for name in set(before_deps) | set(now_deps)
            if before_deps.get(name) != now_deps.get(name)
        )
        uses = f"; what it uses changed: {', '.join(changed_deps)}" if changed_deps else ""
        if diff:
            detail = "its source changed" + uses
        elif changed_deps:
            detail = f"its source is unchanged; what it uses changed: {', '.join(changed_deps)}"
        else:
            detail = "its source is unchanged; code it uses (helpers, constants, classes) changed"
        return decision(frame, "run", Reason.CODE_CHANGED, detail, diff or None)
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
            changed.append(f"{name} (was {was}, now {short_repr(value)})")
    reason = Reason.FILE_CHANGED if file_changed else Reason.ARGS_CHANGED
    detail = "argument " + "; ".join(changed) if changed else "new argument values"
    return decision(frame, "run", reason, detail)


def blocked(frames: Any) -> list[Decision]:
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
                    detail="its arguments need results of calls that would run first",
                )
            )
    return out
