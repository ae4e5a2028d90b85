"""Task-log output of a lazyflow run: job lines, then a summary table.

The scheduler calls `JobLogger` for every job transition. How each kind is logged:

- ``failed`` at ERROR (with the stored traceback when the event carries one) and
  ``retry`` at WARNING: always, whatever the line cap, because they are what a user
  opens the log for;
- ``started``, ``done``, ``cached`` and ``merged`` (a call that joined an identical one)
  at INFO, for the first ``max_lines`` of them, then at DEBUG (one INFO line says so):
  a fully cached workflow can have a hundred thousand jobs;
- ``pending`` and ``queued`` (a call known, or waiting for a worker) at DEBUG: every call
  passes through them before it runs, so at INFO they would double the log for nothing.

Kinds added to the engine later are logged at DEBUG rather than dropped. The summary
table at the end counts every job.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

_KIND_WIDTH = 7
# Kinds that never count towards the cap: logged at these levels, always.
_ALWAYS = {"failed": logging.ERROR, "retry": logging.WARNING}
# Kinds logged at INFO up to the cap.
_CAPPED = frozenset({"started", "done", "cached", "merged"})


class JobLogger:
    """A scheduler listener that writes task-log lines for job transitions."""

    def __init__(self, log: logging.Logger | Any, max_lines: int = 1000) -> None:
        self._log = log
        self._max_lines = max_lines
        self._lines = 0
        self._lock = threading.Lock()

    def __call__(self, event: Any) -> None:
        kind = str(getattr(event, "kind", "?"))
        level = _ALWAYS.get(kind)
        if level is None:
            level = self._capped_level() if kind in _CAPPED else logging.DEBUG
        if level == logging.DEBUG and not _enabled_for_debug(self._log):
            return  # formatting 100,000 lines nobody sees costs real time
        text = format_job_event(event)
        tb = getattr(event, "traceback", None) if kind == "failed" else None
        if tb:
            text += "\n" + str(tb).rstrip()
        self._log.log(level, "%s", text)

    def _capped_level(self) -> int:
        with self._lock:
            self._lines += 1
            lines = self._lines
        if lines == self._max_lines + 1:
            self._log.info(
                "lazyflow: more than %d job lines; further ones are logged at DEBUG "
                "(failures and retries are always logged; the summary below counts every job)",
                self._max_lines,
            )
        return logging.INFO if lines <= self._max_lines else logging.DEBUG

    @property
    def lines(self) -> int:
        """How many capped job lines (started, done, cached, merged) this logger has seen."""
        return self._lines


def _enabled_for_debug(log: Any) -> bool:
    check = getattr(log, "isEnabledFor", None)
    if check is None:
        return True
    try:
        return bool(check(logging.DEBUG))
    except Exception:  # structlog-style loggers may not implement it
        return True


def format_job_event(event: Any) -> str:
    """``lazyflow job done    pkg.mod.inc(1)  0.02s`` (and the error for failures)."""
    kind = str(getattr(event, "kind", "?"))
    call = getattr(event, "args_preview", None) or getattr(event, "task_name", "?")
    text = f"lazyflow job {kind:<{_KIND_WIDTH}} {call}"
    seconds = getattr(event, "seconds", None)
    if seconds is not None:
        text += f"  {seconds:.2f}s"
    error = getattr(event, "error", None)
    if error:
        text += f"  error: {error}"
    return text


def format_summary(summary: Any) -> str:
    """The run summary as a headline and a fixed-width table of jobs per task.

    The ``job seconds`` column sums the run time of each task's jobs (jobs run in
    parallel, so the total can exceed the wall time); the wall time of the whole run is
    in the headline and on the last line, never mixed into the table.
    """
    head = (
        f"lazyflow execution {summary.execution_id} {summary.status} in "
        f"{summary.seconds:.2f}s: {summary.jobs} jobs, {summary.executed} executed, "
        f"{summary.cached} cached, {summary.failed} failed"
    )
    by_task = sorted((getattr(summary, "by_task", None) or {}).items())
    rows = [
        (name, str(c.executed), str(c.cached), str(c.failed), f"{c.seconds:.2f}")
        for name, c in by_task
    ]
    job_seconds = sum(float(c.seconds or 0.0) for _, c in by_task)
    total = (
        "TOTAL",
        str(summary.executed),
        str(summary.cached),
        str(summary.failed),
        f"{job_seconds:.2f}",
    )
    header = ("task", "executed", "cached", "failed", "job seconds")
    widths = [max(len(r[i]) for r in [header, *rows, total]) for i in range(len(header))]

    def line(cells: tuple[str, ...]) -> str:
        first = cells[0].ljust(widths[0])
        rest = (c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True))
        return "  ".join([first, *rest])

    rule = "-" * len(line(header))
    body = [line(header), rule, *(line(r) for r in rows), rule, line(total)]
    tail = [f"wall time {summary.seconds:.2f}s"]
    error = getattr(summary, "error", None)
    if error:
        tail.append(f"error: {error}")
    return "\n".join([head, *body, *tail])


def format_decisions(decisions: list[Any], max_lines: int = 1000) -> str:
    """A dry run as ``lazyflow explain`` prints it: counts (predicted calls apart), then one
    line per call that would run or is unknown, then the cached calls per task (with each
    code diff once); predicted decisions are marked ``?``."""
    from lazyflow_core import decision_totals

    totals = decision_totals(decisions)
    lines = [
        f"{totals['run']} calls would run, {totals['cached']} cached, {totals['unknown']} "
        "unknown (need results only running gives)"
    ]
    if totals["predicted"]:
        lines.append(
            "below calls that would run, predicted from their previous run: "
            f"{totals['predicted_run']} would run again, "
            f"{totals['predicted_cached']} would be reused"
        )
    cached: dict[tuple[str, str], int] = {}
    diffs: set[tuple[str, str]] = set()
    shown = 0
    for d in decisions:
        mark = "?" if d.predicted else ""
        if d.action == "cached":
            cached[mark, d.task_name] = cached.get((mark, d.task_name), 0) + 1
            continue
        shown += 1
        if shown > max_lines:
            continue
        detail = f": {d.detail}" if d.detail else ""
        lines.append(f"{d.action + mark:<8}{d.call}  {d.reason}{detail}")
        if d.diff and (d.task_name, d.diff) not in diffs:
            diffs.add((d.task_name, d.diff))
            lines += ["        " + line for line in d.diff.rstrip("\n").splitlines()]
    if shown > max_lines:
        lines.append(f"... and {shown - max_lines} more calls")
    for mark in ("", "?"):
        parts = [f"{n} {name}" for (m, name), n in sorted(cached.items()) if m == mark]
        if parts:
            lines.append(f"{'cached' + mark:<8}" + ", ".join(parts))
    return "\n".join(lines)
