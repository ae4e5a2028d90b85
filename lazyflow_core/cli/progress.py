"""What ``lazyflow run`` shows while a workflow runs.

Both reporters are `Scheduler` listeners: they receive a `JobEvent` per job transition on
the scheduler thread and only update counters (cheap). On a terminal, `LiveView` redraws a
rich table of jobs per task from rich's refresh thread; elsewhere `PlainLog` writes one
line per finished job, which reads well in CI logs.

The states a job is shown in, and where each comes from:

- *pending*: its arguments are known, it is not sent anywhere yet (``pending`` event);
- *merged*: a copy of a call already pending, running or done in this run, which the
  scheduler evaluates once (a ``merged`` event, or a second ``pending`` event with the
  same call hash): it never runs itself, so it is not left "pending" forever;
- *queued* and *running*: sent to an executor, waiting for a worker or running on one.
  An engine that reports when a job really starts (``queued`` then ``running``/``started``)
  is followed exactly; for ``started`` alone, which means "sent", the first `capacity`
  jobs in flight in the order they were sent are counted as running (executors' pools take
  jobs first in, first out), the others as queued;
- *cached*, *done*, *failed*: finished.

The header shows the rate of finished jobs over the last seconds and an estimate of the
time left for the calls known so far (a workflow that grows at run time adds more).
"""

from __future__ import annotations

import collections
import sys
import threading
import time
from dataclasses import dataclass, fields
from typing import Any, TextIO

from ..events import JobEvent
from .common import cut, fmt_seconds, short

RATE_WINDOW = 5.0  # seconds of finished jobs the rate is measured over


@dataclass
class Counts:
    pending: int = 0
    queued: int = 0
    running: int = 0
    merged: int = 0
    cached: int = 0
    done: int = 0
    failed: int = 0
    seconds: float = 0.0

    @property
    def finished(self) -> int:
        return self.merged + self.cached + self.done + self.failed

    @property
    def total(self) -> int:
        return self.pending + self.queued + self.running + self.finished

    def add(self, other: Counts) -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))


class Tally:
    """Jobs per task, updated from events. Guarded by a lock: rich reads it from its
    refresh thread while the scheduler thread writes."""

    def __init__(self, capacity: int | None = None) -> None:
        self.lock = threading.Lock()
        self.capacity = capacity
        self.tasks: dict[str, Counts] = {}
        self.errors: list[str] = []
        self.execution_id: str | None = None
        self.started = time.perf_counter()
        self.saw_pending = False
        self.pending: dict[str, str] = {}  # job id -> task, until it is sent or finished
        self.inflight: dict[str, str] = {}  # job id -> task, in the order they were sent
        self.running: set[str] = set()  # jobs the engine said are running (when it says)
        self.reports_running = False
        self.finished_at: collections.deque[float] = collections.deque()

    def update(self, ev: JobEvent) -> None:
        with self.lock:
            self.execution_id = ev.execution_id
            c = self.tasks.get(ev.task_name)
            if c is None:
                c = self.tasks[ev.task_name] = Counts()
            handler = _HANDLERS.get(ev.kind)
            if handler is not None:
                handler(self, ev, c)

    # -- transitions (called with the lock held) -------------------------------------------
    def _pending(self, ev: JobEvent, c: Counts) -> None:
        # A copy of a call already under way is pending too, until the engine's `merged`
        # event for it (the first of its calls does the work).
        self.saw_pending = True
        self.pending[ev.job_id] = ev.task_name
        c.pending += 1

    def _merged(self, ev: JobEvent, c: Counts) -> None:
        if self.pending.pop(ev.job_id, None) is not None:
            c.pending -= 1
        c.merged += 1
        self._finished()

    def _sent(self, ev: JobEvent, c: Counts) -> None:
        if ev.job_id in self.inflight:
            if ev.kind != "queued":  # queued before, started now: the engine says so
                self.reports_running = True
                self.running.add(ev.job_id)
            return
        if self.pending.pop(ev.job_id, None) is not None:
            c.pending -= 1
        self.inflight[ev.job_id] = ev.task_name
        if ev.kind == "running":
            self.reports_running = True
            self.running.add(ev.job_id)

    def _retry(self, ev: JobEvent, c: Counts) -> None:
        self.inflight.setdefault(ev.job_id, ev.task_name)

    def _end(self, ev: JobEvent, c: Counts) -> None:
        if self.pending.pop(ev.job_id, None) is not None:
            c.pending -= 1
        self.inflight.pop(ev.job_id, None)
        self.running.discard(ev.job_id)
        if ev.kind == "cached":
            c.cached += 1
        elif ev.kind == "done":
            c.done += 1
        else:
            c.failed += 1
            self.errors.append(f"{ev.args_preview}: {ev.error}")
        if ev.kind != "cached":
            c.seconds += ev.seconds or 0.0
        self._finished()

    def _finished(self) -> None:
        now = time.perf_counter()
        self.finished_at.append(now)
        while self.finished_at and now - self.finished_at[0] > RATE_WINDOW:
            self.finished_at.popleft()

    # -- reading -------------------------------------------------------------------------
    def snapshot(self) -> tuple[dict[str, Counts], Counts]:
        """Counts per task (queued and running filled in) and their sum."""
        with self.lock:
            rows = {
                name: Counts(c.pending, 0, 0, c.merged, c.cached, c.done, c.failed, c.seconds)
                for name, c in self.tasks.items()
            }
            for i, (job, name) in enumerate(self.inflight.items()):
                if self.reports_running:
                    running = job in self.running
                else:
                    running = self.capacity is None or i < self.capacity
                if running:
                    rows[name].running += 1
                else:
                    rows[name].queued += 1
        totals = Counts()
        for c in rows.values():
            totals.add(c)
        return rows, totals

    def rate(self) -> float | None:
        """Jobs finished per second over the last `RATE_WINDOW` seconds."""
        with self.lock:
            if not self.finished_at:
                return None
            now = time.perf_counter()
            recent = [t for t in self.finished_at if now - t <= RATE_WINDOW]
            span = min(RATE_WINDOW, now - self.started)
        return len(recent) / span if span > 0 and recent else None


_HANDLERS = {
    "pending": Tally._pending,
    "merged": Tally._merged,
    "queued": Tally._sent,
    "started": Tally._sent,
    "running": Tally._sent,
    "retry": Tally._retry,
    "cached": Tally._end,
    "done": Tally._end,
    "failed": Tally._end,
}


def eta(totals: Counts, rate: float | None) -> float | None:
    """Seconds left for the calls known so far at `rate`, or None when unknown."""
    left = totals.pending + totals.queued + totals.running
    if not left:
        return 0.0
    return left / rate if rate else None


class LiveView:
    """A live rich table of jobs per task, on stderr."""

    def __init__(self, console: Any, capacity: int | None = None) -> None:
        from rich.live import Live

        self.tally = Tally(capacity)
        self.console = console
        # prints from tasks show above the table when stdout is the same terminal; when
        # stdout is redirected they stay there
        self.live = Live(
            self,
            console=console,
            refresh_per_second=8,
            transient=False,
            redirect_stdout=sys.stdout.isatty(),
        )

    def __call__(self, ev: JobEvent) -> None:
        self.tally.update(ev)

    def __enter__(self) -> LiveView:
        self.live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.live.__exit__(*exc)

    def __rich__(self) -> Any:
        from rich.console import Group
        from rich.text import Text

        t = self.tally
        rows, totals = t.snapshot()
        with t.lock:
            errors = list(t.errors[-3:])
        parts: list[Any] = [self.header(totals), self.table(rows)]
        parts += [Text(f"failed: {cut(e, 150)}", style="red") for e in errors]
        return Group(*parts)

    def header(self, totals: Counts) -> Any:
        from rich.text import Text

        t = self.tally
        rate = t.rate()
        left = eta(totals, rate)
        eid = t.execution_id
        text = Text.assemble(
            ("lazyflow ", "bold"),
            f"execution {short(eid)} " if eid else "starting ",
            (f"{fmt_seconds(time.perf_counter() - t.started)}  ", "dim"),
            f"{totals.done} done, {totals.cached} cached, {totals.running} running",
            f", {totals.queued} queued" if totals.queued else "",
            f", {totals.merged} merged" if totals.merged else "",
            (f", {totals.failed} failed" if totals.failed else "", "red"),
        )
        if rate is not None:
            text.append(f"  {rate:.0f} jobs/s" if rate >= 10 else f"  {rate:.1f} jobs/s", "dim")
        if left is not None and left > 0:
            text.append(f"  ETA {fmt_seconds(left)} (of the calls known so far)", "dim")
        return text

    def table(self, rows: dict[str, Counts]) -> Any:
        from rich.progress_bar import ProgressBar
        from rich.table import Table

        shown = [
            ("pending", ""),
            ("queued", ""),
            ("running", "yellow"),
            ("merged", "blue"),
            ("cached", "cyan"),
            ("done", "green"),
            ("failed", "red"),
        ]
        if not self.tally.saw_pending:
            shown = shown[1:]
        table = Table(box=None, pad_edge=False, header_style="bold")
        table.add_column("task", no_wrap=True, overflow="ellipsis", max_width=48)
        for name, style in shown:
            table.add_column(name, justify="right", style=style or None)
        table.add_column("progress", width=24)
        for name, c in rows.items():
            cells: list[Any] = [name, *(str(getattr(c, col)) for col, _ in shown)]
            cells.append(ProgressBar(total=max(c.total, 1), completed=c.finished, width=24))
            table.add_row(*cells)
        return table


class PlainLog:
    """One line per finished job (and per retry), for logs and pipes."""

    QUIET = ("started", "pending", "queued", "running", "merged")

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.lock = threading.Lock()
        self.announced = False

    def __call__(self, ev: JobEvent) -> None:
        if not self.announced:
            self._write(f"lazyflow: execution {short(ev.execution_id)} started")
            self.announced = True
        if ev.kind in self.QUIET:
            return
        line = f"{time.strftime('%H:%M:%S')} {ev.kind:<7} {cut(ev.args_preview, 100)}"
        if ev.seconds is not None and ev.kind != "cached":
            line += f" ({fmt_seconds(ev.seconds)})"
        if ev.error:
            line += f": {cut(ev.error, 200)}"
        self._write(line)

    def _write(self, line: str) -> None:
        with self.lock:
            self.stream.write(line + "\n")
            self.stream.flush()
