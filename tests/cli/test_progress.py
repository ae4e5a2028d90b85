"""The live progress table, fed by the events of real runs."""

from __future__ import annotations

import io
import time

from rich.console import Console

from lazyflow_core import Scheduler, task
from lazyflow_core.cli.progress import LiveView, Tally, eta
from lazyflow_core.events import JobEvent
from lazyflow_core.executors import ThreadExecutor


@task(version="1")
def nap(x: int) -> int:
    time.sleep(0.2)
    return x


@task(version="1")
def copies() -> list[int]:
    return [nap(1), nap(1), nap(2), nap(1)]


@task(version="1")
def wide(n: int) -> list[int]:
    return [nap(i) for i in range(n)]


def test_copies_of_a_call_are_merged_not_pending_forever(sqlite_url: str) -> None:
    tally = Tally(capacity=4)
    with Scheduler(db=sqlite_url, listeners=[tally.update]) as sched:
        assert sched.run(copies()) == [1, 1, 2, 1]
    rows, totals = tally.snapshot()
    assert rows["tests.cli.test_progress.nap"].merged == 2
    assert (totals.pending, totals.queued, totals.running) == (0, 0, 0)
    assert totals.done == 3  # copies(), nap(1), nap(2)
    assert eta(totals, tally.rate()) == 0.0


class Sampler:
    """Records what the table would show after every event."""

    def __init__(self, tally: Tally) -> None:
        self.tally = tally
        self.samples: list[tuple[int, int]] = []

    def __call__(self, ev: JobEvent) -> None:
        self.tally.update(ev)
        _rows, totals = self.tally.snapshot()
        self.samples.append((totals.running, totals.queued))


def test_running_counts_jobs_on_workers_not_jobs_waiting_for_one(sqlite_url: str) -> None:
    sampler = Sampler(Tally(capacity=2))
    with Scheduler(db=sqlite_url, executor=ThreadExecutor(2), listeners=[sampler]) as sched:
        sched.run(wide(8))
    assert max(r for r, _ in sampler.samples) == 2  # two workers
    assert max(q for _, q in sampler.samples) >= 1  # the others waited, shown as queued
    _rows, totals = sampler.tally.snapshot()
    assert (totals.running, totals.queued, totals.done) == (0, 0, 9)


def test_the_table_shows_merged_calls_rate_and_eta(sqlite_url: str) -> None:
    out = io.StringIO()
    view = LiveView(Console(file=out, width=160, color_system=None), capacity=2)
    seen: list[str] = []

    def listen(ev: JobEvent) -> None:
        view(ev)
        if ev.kind == "done" and "nap(2)" in ev.args_preview:
            probe = Console(file=io.StringIO(), width=160, color_system=None, record=True)
            probe.print(view.__rich__())
            seen.append(probe.export_text())

    with Scheduler(db=sqlite_url, executor=ThreadExecutor(2), listeners=[listen]) as sched:
        sched.run(copies())
    text = seen[0]
    header, columns = text.splitlines()[:2]
    assert columns.split()[:8] == [
        "task",
        "pending",
        "queued",
        "running",
        "merged",
        "cached",
        "done",
        "failed",
    ]
    assert "merged" in header and "jobs/s" in header
    row = next(line for line in text.splitlines() if line.startswith("tests.cli.test_progress.nap"))
    assert row.split()[4] == "2"  # merged
