"""Task-log output of a lazyflow run: one line per job, then a summary table.

The scheduler calls `JobLogger` for every job transition (started, cached, done, failed,
retry). A fully cached workflow can have a hundred thousand jobs, so after
``max_lines`` lines the logger says so once and stays quiet; the summary table at the
end still counts every job.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

_KIND_WIDTH = 7


class JobLogger:
    """A scheduler listener that writes one task-log line per job transition."""

    def __init__(self, log: logging.Logger | Any, max_lines: int = 1000) -> None:
        self._log = log
        self._max_lines = max_lines
        self._lines = 0
        self._lock = threading.Lock()

    def __call__(self, event: Any) -> None:
        with self._lock:
            self._lines += 1
            lines = self._lines
        if lines > self._max_lines:
            if lines == self._max_lines + 1:
                self._log.info(
                    "lazyflow: more than %d job lines; the rest are left out "
                    "(the summary below counts every job)",
                    self._max_lines,
                )
            return
        self._log.info("%s", format_job_event(event))

    @property
    def lines(self) -> int:
        """How many job events this logger has seen."""
        return self._lines


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
    """The run summary as a headline and a fixed-width table of jobs per task."""
    head = (
        f"lazyflow execution {summary.execution_id} {summary.status} in "
        f"{summary.seconds:.2f}s: {summary.jobs} jobs, {summary.executed} executed, "
        f"{summary.cached} cached, {summary.failed} failed"
    )
    rows = [
        (name, str(c.executed), str(c.cached), str(c.failed), f"{c.seconds:.2f}")
        for name, c in sorted((getattr(summary, "by_task", None) or {}).items())
    ]
    rows.append(
        (
            "TOTAL",
            str(summary.executed),
            str(summary.cached),
            str(summary.failed),
            f"{summary.seconds:.2f}",
        )
    )
    header = ("task", "executed", "cached", "failed", "seconds")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: tuple[str, ...]) -> str:
        first = cells[0].ljust(widths[0])
        rest = (c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True))
        return "  ".join([first, *rest])

    rule = "-" * len(line(header))
    body = [line(header), rule, *(line(r) for r in rows[:-1]), rule, line(rows[-1])]
    error = getattr(summary, "error", None)
    tail = [f"error: {error}"] if error else []
    return "\n".join([head, *body, *tail])
