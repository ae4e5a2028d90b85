"""The report pieces without a Prefect server: job rows, caps, markdown, state message."""

from __future__ import annotations

import logging

from lazyflow_core import JobEvent, RunSummary, TaskCounts
from lazyflow_prefect.report import (
    MAX_TABLE_ROWS,
    JobCollector,
    RunReport,
    artifact_key,
    format_seconds,
)

LOG = logging.getLogger("lazyflow.prefect.test")


def event(kind: str, job: int, task: str = "wf.step", **fields: object) -> JobEvent:
    return JobEvent(
        kind=kind,
        execution_id="e" * 32,
        job_id=f"job-{job}",
        task_name=task,
        call_hash=None,
        args_preview=f"step({job})",
        seconds=fields.pop("seconds", None),  # type: ignore[arg-type]
        error=fields.pop("error", None),  # type: ignore[arg-type]
    )


def test_one_row_per_job_with_its_final_state() -> None:
    collector = JobCollector(LOG)
    for e in [
        event("started", 1),
        event("cached", 2),
        event("started", 3),
        event("done", 1, seconds=0.5),
        event("retry", 3, error="boom"),
        event("failed", 3, seconds=0.1, error="ValueError: boom"),
    ]:
        collector(e)
    rows = {row["job_id"]: row for row in collector.rows()}
    assert rows["job-1"] == {
        "task": "wf.step",
        "status": "done",
        "cached": False,
        "seconds": 0.5,
        "call": "step(1)",
        "job_id": "job-1",
        "error": None,
    }
    assert rows["job-2"]["status"] == "done" and rows["job-2"]["cached"] is True
    assert rows["job-3"]["status"] == "failed" and rows["job-3"]["error"] == "ValueError: boom"
    assert collector.counts() == {"jobs": 3, "cached": 1, "executed": 1, "failed": 1}
    assert collector.execution_id == "e" * 32


def test_table_is_capped_but_keeps_late_failures() -> None:
    collector = JobCollector(LOG, max_log_lines=10)
    total = MAX_TABLE_ROWS + 500
    for i in range(total):
        collector(event("done", i, seconds=0.0))
    collector(event("failed", total, error="late failure"))
    rows = collector.rows()
    assert len(rows) == MAX_TABLE_ROWS
    assert rows[-1]["job_id"] == f"job-{total}" and rows[-1]["status"] == "failed"
    assert collector.counts()["jobs"] == total + 1


def test_job_lines_switch_to_debug_after_the_cap(caplog) -> None:  # type: ignore[no-untyped-def]
    collector = JobCollector(LOG, max_log_lines=3)
    with caplog.at_level(logging.DEBUG, logger=LOG.name):
        for i in range(6):
            collector(event("done", i, seconds=0.01))
        collector(event("failed", 99, error="boom"))
    levels = [(r.levelno, r.getMessage()) for r in caplog.records]
    assert [lvl for lvl, _ in levels[:3]] == [logging.INFO] * 3
    assert "further job lines are logged at DEBUG" in levels[3][1]
    assert levels[-1] == (logging.ERROR, "job step(99) failed: boom")
    assert all(lvl == logging.DEBUG for lvl, _ in levels[4:-1])


def test_a_broken_logger_never_breaks_the_run() -> None:
    class Broken(logging.Logger):
        def _log(self, *args: object, **kwargs: object) -> None:  # type: ignore[override]
            raise RuntimeError("handler down")

    collector = JobCollector(Broken("broken"))
    collector(event("done", 1, seconds=0.1))  # no exception
    assert collector.counts()["executed"] == 1


def test_markdown_and_state_message_from_the_run_summary() -> None:
    collector = JobCollector(LOG)
    collector(event("done", 1, seconds=0.2))
    summary = RunSummary(
        execution_id="abc123",
        status="done",
        cached=118,
        executed=2,
        failed=0,
        seconds=1.5,
        by_task={"wf.step": TaskCounts(executed=2, cached=118, failed=0, seconds=0.4)},
    )
    report = RunReport.build(
        "wf.main", summary, collector, db="sqlite:////data/lf.db", table_key="lazyflow-wf-main-jobs"
    )
    assert report.state_message() == "120 jobs, 118 cached"
    md = report.markdown()
    assert "| Execution | `abc123` |" in md
    assert "| Executed | 2 |" in md and "| Cached | 118 |" in md and "| Failed | 0 |" in md
    assert "| Duration | 1.50 s |" in md
    assert "lazyflow log abc123 --db 'sqlite:////data/lf.db'" in md
    assert "| `wf.step` | 2 | 118 | 0 | 0.400 |" in md
    assert "shows 1 of 120 jobs (capped at 1,000 rows" in md


def test_report_without_a_summary_uses_the_collected_jobs() -> None:
    collector = JobCollector(LOG)
    collector(event("failed", 1, error="KeyError: 'x'"))
    report = RunReport.build("wf.main", None, collector, error=KeyError("x"))
    assert report.status == "failed"
    assert (report.jobs, report.failed) == (1, 1)
    assert report.error == "KeyError: 'x'"
    assert report.state_message() == "1 job, 0 cached, 1 failed"


def test_artifact_keys_are_stable_and_valid() -> None:
    assert artifact_key("examples.prefect.wordcount.word_report") == (
        "lazyflow-examples-prefect-wordcount-word-report"
    )
    assert artifact_key("Wf.Main", "jobs") == "lazyflow-wf-main-jobs"
    long = artifact_key("x" * 300)
    assert len(long) <= len("lazyflow-") + 80


def test_format_seconds() -> None:
    assert format_seconds(None) == "-"
    assert format_seconds(1.234) == "1.23 s"
    assert format_seconds(125) == "2 min 5 s"
    assert format_seconds(7500) == "2 h 5 min"


def test_real_run_events_pending_lines_neither_fill_the_cap_nor_say_done(
    tmp_path,
    caplog,  # type: ignore[no-untyped-def]
) -> None:
    """Every job passes through `pending` (and `started`) before it ends: those are DEBUG,
    never a ``done in -`` line, and never count towards the cap; the failure is an ERROR."""
    import pytest

    from lazyflow_core import Scheduler
    from tests.prefect.workflows import fanout

    marker = tmp_path / "calls"
    marker.mkdir()
    (marker / "fail-once-5").touch()
    collector = JobCollector(LOG, max_log_lines=3)
    with (
        caplog.at_level(logging.DEBUG, logger=LOG.name),
        Scheduler(db=f"sqlite:///{tmp_path}/lf.db", listeners=[collector]) as sched,
        pytest.raises(RuntimeError, match="injected failure for x=5"),
    ):
        sched.run(fanout(6, str(marker)))
    records = [(r.levelno, r.getMessage()) for r in caplog.records]
    assert not [m for _, m in records if m.endswith("done in -")], records
    info = [m for lvl, m in records if lvl == logging.INFO]
    assert len([m for m in info if m.startswith("job ")]) == 3, info  # the cap, done lines
    assert any(m.startswith("more than 3 jobs") for m in info)
    errors = [m for lvl, m in records if lvl == logging.ERROR]
    assert any(m.startswith("job square(5, ") and "injected failure" in m for m in errors)
    assert any(m.endswith(" pending") for lvl, m in records if lvl == logging.DEBUG)
    assert collector.counts()["failed"] >= 1
    statuses = {row["status"] for row in collector.rows()}
    assert "pending" not in statuses and "failed" in statuses
