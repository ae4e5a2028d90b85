"""What ``lazyflow run`` shows while a workflow runs.

Both reporters are `Scheduler` listeners: they receive a `JobEvent` per job transition on
the scheduler thread and only update counters (cheap). On a terminal, `LiveView` redraws a
rich table of jobs per task (pending, running, cached, done, failed) from rich's refresh
thread; elsewhere `PlainLog` writes one line per finished job, which reads well in CI logs.
"""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any, TextIO

from ..events import JobEvent
from .common import cut, fmt_seconds, short


@dataclass
class _Counts:
    pending: int = 0
    running: int = 0
    cached: int = 0
    done: int = 0
    failed: int = 0
    seconds: float = 0.0
    running_ids: set[str] = field(default_factory=set)

    @property
    def total(self) -> int:
        return self.pending + self.running + self.cached + self.done + self.failed


class _Tally:
    """Jobs per task, updated from events. Guarded by a lock: rich reads it from its
    refresh thread while the scheduler thread writes."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.tasks: dict[str, _Counts] = {}
        self.errors: list[str] = []
        self.execution_id: str | None = None
        self.started = time.perf_counter()
        self.saw_pending = False

    def update(self, ev: JobEvent) -> None:
        with self.lock:
            self.execution_id = ev.execution_id
            c = self.tasks.get(ev.task_name)
            if c is None:
                c = self.tasks[ev.task_name] = _Counts()
            kind = ev.kind
            if kind in ("pending", "queued"):
                # reported by cores that announce calls before they run
                self.saw_pending = True
                c.pending += 1
                return
            if ev.job_id in c.running_ids:
                c.running_ids.discard(ev.job_id)
                c.running -= 1
            elif self.saw_pending and kind != "retry" and c.pending > 0:
                c.pending -= 1
            if kind == "started" or kind == "retry":
                c.running_ids.add(ev.job_id)
                c.running += 1
            elif kind == "cached":
                c.cached += 1
            elif kind == "done":
                c.done += 1
                c.seconds += ev.seconds or 0.0
            elif kind == "failed":
                c.failed += 1
                c.seconds += ev.seconds or 0.0
                self.errors.append(f"{ev.args_preview}: {ev.error}")


class LiveView:
    """A live rich table of jobs per task, on stderr."""

    def __init__(self, console: Any) -> None:
        from rich.live import Live

        self.tally = _Tally()
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
        from rich.progress_bar import ProgressBar
        from rich.table import Table
        from rich.text import Text

        t = self.tally
        with t.lock:
            rows = [
                (name, _Counts(c.pending, c.running, c.cached, c.done, c.failed, c.seconds))
                for name, c in t.tasks.items()
            ]
            errors = list(t.errors[-3:])
            eid = t.execution_id
            show_pending = t.saw_pending
        table = Table(box=None, pad_edge=False, header_style="bold")
        table.add_column("task", no_wrap=True, overflow="ellipsis", max_width=48)
        if show_pending:
            table.add_column("pending", justify="right")
        for name, style in (
            ("running", "yellow"),
            ("cached", "cyan"),
            ("done", "green"),
            ("failed", "red"),
        ):
            table.add_column(name, justify="right", style=style)
        table.add_column("progress", width=24)
        totals = _Counts()
        for name, c in rows:
            finished = c.cached + c.done + c.failed
            cells: list[Any] = [name]
            if show_pending:
                cells.append(str(c.pending))
            cells += [str(c.running), str(c.cached), str(c.done), str(c.failed)]
            cells.append(ProgressBar(total=max(c.total, 1), completed=finished, width=24))
            table.add_row(*cells)
            for f in ("pending", "running", "cached", "done", "failed"):
                setattr(totals, f, getattr(totals, f) + getattr(c, f))
        elapsed = time.perf_counter() - t.started
        head = Text.assemble(
            ("lazyflow ", "bold"),
            f"execution {short(eid)} " if eid else "starting ",
            (f"{fmt_seconds(elapsed)}  ", "dim"),
            f"{totals.done} done, {totals.cached} cached, {totals.running} running",
            (f", {totals.failed} failed" if totals.failed else "", "red"),
        )
        parts: list[Any] = [head, table]
        parts += [Text(f"failed: {cut(e, 150)}", style="red") for e in errors]
        return Group(*parts)


class PlainLog:
    """One line per finished job (and per retry), for logs and pipes."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.lock = threading.Lock()
        self.announced = False

    def __call__(self, ev: JobEvent) -> None:
        if ev.kind in ("started", "pending", "queued"):
            if not self.announced:
                self._write(f"lazyflow: execution {short(ev.execution_id)} started")
                self.announced = True
            return
        if not self.announced:
            self._write(f"lazyflow: execution {short(ev.execution_id)} started")
            self.announced = True
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
