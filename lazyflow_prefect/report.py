"""What a lazyflow run looks like from Prefect: job lines, the summary and the job table.

`JobCollector` is the scheduler listener. The scheduler calls it once per job transition
(see `lazyflow_core.events`: `pending`, `merged`, `cached`, `queued`, `started`, `retry`,
`done`, `failed`, `caught`); it logs a line per finished job and folds the events into one
row per job. `RunReport` is the finished run in plain data, built from the
scheduler's `RunSummary` (or from the collected rows when the run failed before a summary
existed). The render functions turn a report into the markdown summary, the table rows and
the final state message. Nothing here talks to the Prefect API, so all of it is testable
without a server; `lazyflow_prefect.tasks` publishes the results.

A workflow can run 100,000 jobs, so both outputs are capped: the table keeps the first
`MAX_TABLE_ROWS` jobs plus every failed job, and the lines of finished jobs (`done`,
`cached`, `merged`, `caught`) go to INFO for the first `MAX_JOB_LOG_LINES` jobs and to
DEBUG after that. Failures (ERROR) and retries (WARNING) are always logged and never count
towards the cap; `pending`, `queued` and `started` only say a job is on its way (DEBUG),
and kinds the engine adds later are logged at DEBUG rather than mistaken for a finish.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

MAX_TABLE_ROWS = 1_000
MAX_JOB_LOG_LINES = 1_000
TABLE_COLUMNS = ("task", "status", "cached", "seconds", "call", "job_id", "error")
_ERROR_PREVIEW = 300
# Exceptions that stop a run from outside (Prefect timeouts, task cancellation, Ctrl-C).
_INTERRUPTIONS = (asyncio.CancelledError, TimeoutError, KeyboardInterrupt)


@dataclass
class JobRow:
    """The latest known state of one job, as shown in the table artifact."""

    job_id: str
    task: str
    call: str
    status: str = "running"
    cached: bool = False
    seconds: float | None = None
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "status": self.status,
            "cached": self.cached,
            "seconds": None if self.seconds is None else round(self.seconds, 3),
            "call": self.call,
            "job_id": self.job_id,
            "error": self.error,
        }


# How each event kind changes a row: (status, cached or None to keep).
_TRANSITIONS: dict[str, tuple[str, bool | None]] = {
    "pending": ("pending", None),
    "queued": ("queued", None),
    "started": ("running", None),
    "merged": ("merged", True),
    "cached": ("done", True),
    "done": ("done", False),
    "caught": ("caught", False),
    "failed": ("failed", False),
    "retry": ("retrying", False),
}
# How each final kind counts in the run totals (merged calls are not jobs of their own:
# they take an identical call's result, and the run summary does not count them).
_FINAL = {
    "cached": "cached",
    "done": "executed",
    "caught": "executed",
    "failed": "failed",
    "merged": "merged",
}
# Kinds whose line counts towards the INFO cap, and how each is worded.
_FINISHED = {
    "cached": "cached",
    "merged": "merged with an identical call",
    "caught": "failed, handled by catch",
}


class JobCollector:
    """Scheduler listener: logs one line per job transition and keeps one row per job.

    Cheap by design (it runs on the scheduler thread) and never raises: a broken log
    handler must not fail the workflow.
    """

    def __init__(
        self,
        logger: logging.Logger | logging.LoggerAdapter[Any],
        max_rows: int = MAX_TABLE_ROWS,
        max_log_lines: int = MAX_JOB_LOG_LINES,
    ) -> None:
        self.logger = logger
        self.max_rows = max_rows
        self.max_log_lines = max_log_lines
        self.execution_id: str | None = None
        self.total_jobs = 0
        self._rows: dict[str, JobRow] = {}
        # Failed jobs beyond the row cap are still shown: they are what users look for.
        self._overflow_failed: dict[str, JobRow] = {}
        self._final: dict[str, str] = {}  # job id -> "cached" / "executed" / "failed"
        self._logged_jobs = 0
        self._lock = threading.Lock()

    def __call__(self, event: Any) -> None:
        try:
            with self._lock:
                self._record(event)
            self._log(event)
        except Exception:  # a listener must never break the run
            logging.getLogger(__name__).debug("lazyflow job listener failed", exc_info=True)

    def _record(self, event: Any) -> None:
        if self.execution_id is None and getattr(event, "execution_id", None):
            self.execution_id = str(event.execution_id)
        job_id = str(event.job_id)
        status, cached = _TRANSITIONS.get(event.kind, (str(event.kind), None))
        row = self._rows.get(job_id) or self._overflow_failed.get(job_id)
        if row is None:
            if job_id not in self._final:
                self.total_jobs += 1
                self._final[job_id] = "running"
            row = JobRow(job_id=job_id, task=str(event.task_name), call=_preview(event))
            if len(self._rows) < self.max_rows:
                self._rows[job_id] = row
            elif status == "failed" and len(self._overflow_failed) < self.max_rows:
                self._overflow_failed[job_id] = row
        row.status = status
        if cached is not None:
            row.cached = cached
        if event.seconds is not None:
            row.seconds = float(event.seconds)
        if event.error:
            row.error = _shorten(str(event.error), _ERROR_PREVIEW)
        final = _FINAL.get(event.kind)
        if final is not None:
            self._final[job_id] = final

    def _log(self, event: Any) -> None:
        kind = event.kind
        what = _call_label(event)
        if kind == "failed":
            tb = getattr(event, "traceback", None)  # of the job that raised, not its callers
            self.logger.error(
                "job %s failed: %s%s",
                what,
                event.error or "unknown error",
                "\n" + str(tb).rstrip() if tb else "",
            )
            return
        if kind == "retry":
            self.logger.warning("job %s will be retried: %s", what, event.error or "")
            return
        if kind != "done" and kind not in _FINISHED:
            self.logger.debug("job %s %s", what, kind)  # pending, queued, started, ...
            return
        self._logged_jobs += 1
        level = logging.INFO if self._logged_jobs <= self.max_log_lines else logging.DEBUG
        if self._logged_jobs == self.max_log_lines + 1:
            self.logger.info(
                "more than %d jobs: further job lines are logged at DEBUG level",
                self.max_log_lines,
            )
        if kind == "done":
            self.logger.log(level, "job %s done in %s", what, format_seconds(event.seconds))
        else:
            self.logger.log(level, "job %s %s", what, _FINISHED[kind])

    # -- results ------------------------------------------------------------------------

    def counts(self) -> dict[str, int]:
        finals = [final for final in self._final.values() if final != "merged"]
        return {
            "jobs": len(finals),
            "cached": finals.count("cached"),
            "executed": finals.count("executed"),
            "failed": finals.count("failed"),
        }

    def rows(self) -> list[dict[str, Any]]:
        """Table rows, in the order jobs first appeared; extra failed jobs at the end."""
        with self._lock:
            shown = list(self._rows.values())
            extra = list(self._overflow_failed.values())
        if extra:
            # Make room for failures that happened after the cap was reached.
            shown = shown[: max(0, self.max_rows - len(extra))] + extra[: self.max_rows]
        return [row.as_dict() for row in shown]


@dataclass
class RunReport:
    """A finished (or failed) lazyflow run, as plain data for rendering."""

    workflow: str
    execution_id: str | None
    status: str
    jobs: int
    executed: int
    cached: int
    failed: int
    seconds: float | None
    error: str | None = None
    by_task: dict[str, dict[str, Any]] = field(default_factory=dict)
    db: str | None = None
    table_key: str | None = None
    rows_shown: int = 0
    prefect: dict[str, str] = field(default_factory=dict)
    ui_base: str | None = None
    inspect: str | None = None

    @property
    def ui_url(self) -> str | None:
        """The execution's page in ``lazyflow ui``, when a UI URL is configured."""
        if not self.ui_base or not self.execution_id:
            return None
        return f"{self.ui_base.rstrip('/')}/executions/{self.execution_id}"

    @classmethod
    def build(
        cls,
        workflow: str,
        summary: Any,
        collector: JobCollector,
        *,
        error: BaseException | None = None,
        seconds: float | None = None,
        db: str | None = None,
        table_key: str | None = None,
        prefect: Mapping[str, str] | None = None,
        ui_base: str | None = None,
        inspect: str | None = None,
    ) -> RunReport:
        """Combine the scheduler's `RunSummary` (None if the run never started) with the
        collector's view; the summary wins where both know a number."""
        counts = collector.counts()
        if summary is not None:
            jobs, executed = int(summary.jobs), int(summary.executed)
            cached, failed = int(summary.cached), int(summary.failed)
            execution_id = str(summary.execution_id) if summary.execution_id else None
            status = str(summary.status)
            seconds = float(summary.seconds) if summary.seconds is not None else seconds
            summary_error = summary.error
            by_task = {
                str(name): {
                    "executed": int(tc.executed),
                    "cached": int(tc.cached),
                    "failed": int(tc.failed),
                    "seconds": float(tc.seconds or 0.0),
                }
                for name, tc in (summary.by_task or {}).items()
            }
        else:
            jobs, executed = counts["jobs"], counts["executed"]
            cached, failed = counts["cached"], counts["failed"]
            execution_id = collector.execution_id
            status = "failed" if error is not None else "done"
            if isinstance(error, _INTERRUPTIONS):
                status = "cancelled"  # timed out or cancelled while the scheduler ran
            summary_error = None
            by_task = {}
        message = summary_error or (_describe(error) if error is not None else None)
        if error is not None and status == "done":
            status = "failed"
        return cls(
            workflow=workflow,
            execution_id=execution_id or collector.execution_id,
            status=status,
            jobs=jobs,
            executed=executed,
            cached=cached,
            failed=failed,
            seconds=seconds,
            error=message,
            by_task=by_task,
            db=db,
            table_key=table_key,
            rows_shown=len(collector.rows()),
            prefect=dict(prefect or {}),
            ui_base=ui_base,
            inspect=inspect,
        )

    def state_message(self) -> str:
        """The Prefect final state message, e.g. ``"120 jobs, 118 cached"``."""
        message = f"{_plural(self.jobs, 'job')}, {self.cached} cached"
        if self.failed:
            message += f", {self.failed} failed"
        return message

    def log_line(self) -> str:
        """The one-line summary logged at the end of the run."""
        return (
            f"lazyflow {self.workflow} {self.status}: {_plural(self.jobs, 'job')}, "
            f"{self.executed} executed, {self.cached} cached, {self.failed} failed "
            f"in {format_seconds(self.seconds)} (execution {self.execution_id or '-'})"
        )

    def log_command(self) -> str | None:
        """How to look at the execution, runnable as printed: `inspect` when the run
        knows it (it never holds a password, masked or not), else from the shown URL."""
        if not self.execution_id:
            return None
        if self.inspect:
            return self.inspect
        command = f"lazyflow log {self.execution_id}"
        if self.db:
            command += f" --db '{self.db}'"
        return command

    def markdown(self) -> str:
        """The summary artifact: counts, timing, where to look next."""
        lines = [
            f"# lazyflow run: `{self.workflow}`",
            "",
            "| | |",
            "|---|---|",
            f"| Status | **{self.status}** |",
            f"| Execution | `{self.execution_id or 'not started'}` |",
            f"| Jobs | {self.jobs} |",
            f"| Executed | {self.executed} |",
            f"| Cached | {self.cached} |",
            f"| Failed | {self.failed} |",
            f"| Duration | {format_seconds(self.seconds)} |",
        ]
        if self.db:
            lines.append(f"| Store | `{self.db}` |")
        for label, value in self.prefect.items():
            lines.append(f"| {label} | `{value}` |")
        if self.ui_url:
            lines.append(f"| lazyflow ui | [{self.ui_url}]({self.ui_url}) |")
        if self.error:
            lines += ["", "## Error", "", "```", _shorten(self.error, 4_000), "```"]
        command = self.log_command()
        if command:
            lines += [
                "",
                "## Inspect",
                "",
                "Every call, its inputs, its code and where its result came from:",
                "",
                "```bash",
                command,
                "```",
            ]
        if self.by_task:
            lines += [
                "",
                "## By task",
                "",
                "Job seconds add up each task's jobs, which run in parallel: their sum may "
                "exceed the run's duration above.",
                "",
                "| Task | Executed | Cached | Failed | Job seconds |",
                "|---|---:|---:|---:|---:|",
            ]
            for name, tc in sorted(self.by_task.items()):
                lines.append(
                    f"| `{name}` | {tc['executed']} | {tc['cached']} | {tc['failed']} "
                    f"| {tc['seconds']:.3f} |"
                )
        if self.table_key:
            lines += ["", "## Jobs", ""]
            if self.rows_shown < self.jobs:
                lines.append(
                    f"The table artifact `{self.table_key}` shows {self.rows_shown:,} of "
                    f"{self.jobs:,} jobs (capped at {MAX_TABLE_ROWS:,} rows; failed jobs "
                    "are always included). `lazyflow log` lists them all."
                )
            else:
                lines.append(f"The table artifact `{self.table_key}` lists all {self.jobs:,} jobs.")
        return "\n".join(lines) + "\n"


def decisions_markdown(
    workflow: str, counts: Mapping[str, int], decisions: list[dict[str, Any]]
) -> str:
    """The dry-run artifact: counts, the calls that would run or are unknown (with why),
    then the cached calls per task, and each code diff once."""
    lines = [
        f"# lazyflow dry run: `{workflow}`",
        "",
        f"**{counts.get('run', 0)}** calls would run, **{counts.get('cached', 0)}** cached, "
        f"**{counts.get('unknown', 0)}** unknown (they need results only running gives). "
        "Nothing ran.",
    ]
    if counts.get("predicted", 0):
        lines += [
            "",
            "Below calls that would run, predicted from their previous run: "
            f"**{counts.get('predicted_run', 0)}** would run again, "
            f"**{counts.get('predicted_cached', 0)}** would be reused.",
        ]
    shown = [d for d in decisions if d["action"] != "cached"]
    if shown:
        lines += ["", "| Action | Call | Reason | Detail |", "|---|---|---|---|"]
        for d in shown[:MAX_TABLE_ROWS]:
            call = _shorten(str(d["call"]), 120).replace("|", "\\|")
            detail = _shorten(str(d.get("detail") or ""), 200).replace("|", "\\|")
            action = d["action"] + ("?" if d.get("predicted") else "")
            lines.append(f"| {action} | `{call}` | {d['reason']} | {detail} |")
        if len(shown) > MAX_TABLE_ROWS:
            lines.append(f"\n... and {len(shown) - MAX_TABLE_ROWS:,} more calls")
    for predicted, label in ((False, "Cached"), (True, "Cached (predicted)")):
        cached: dict[str, int] = {}
        for d in decisions:
            if d["action"] == "cached" and bool(d.get("predicted")) == predicted:
                cached[d["task_name"]] = cached.get(d["task_name"], 0) + 1
        if cached:
            names = ", ".join(f"{n} `{t}`" for t, n in sorted(cached.items()))
            lines += ["", f"{label}: {names}"]
    diffs = {(d["task_name"], d["diff"]) for d in shown if d.get("diff")}
    for task_name, diff in sorted(diffs):
        lines += ["", f"## Code of `{task_name}`", "", "```diff", diff, "```"]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class ArtifactKeys:
    """The keys of a run's summary and job table artifacts.

    One workflow keeps one pair of keys, so the Artifacts page shows its history; the
    runs of one ``run_lazyflow.map`` would overwrite each other there (the "latest"
    summary of a map over seven days would show one day), so each mapped run's keys also
    name its arguments: ``lazyflow-wf-main-2024-01-02-3f9a1c``.
    """

    summary: str
    table: str
    variant: str = ""

    @property
    def ui(self) -> str:
        """The link artifact to the run's ``lazyflow ui`` page."""
        return f"{self.summary}-ui"

    @property
    def explain(self) -> str:
        """The dry run's artifact (`explain_lazyflow`)."""
        return f"{self.summary}-explain"

    @classmethod
    def of(
        cls, workflow_name: str, args: Any, kwargs: Mapping[str, Any], *, mapped: bool
    ) -> ArtifactKeys:
        variant = argument_slug(args, kwargs) if mapped else ""
        return cls._build(workflow_name, variant)

    @classmethod
    def _build(cls, workflow_name: str, variant: str) -> ArtifactKeys:
        base = artifact_key(workflow_name, variant)
        return cls(summary=base, table=f"{base}-jobs", variant=variant)

    def renamed(self, workflow_name: str) -> ArtifactKeys:
        """The same keys for the workflow's full name (known once it is loaded)."""
        return self._build(workflow_name, self.variant)


def argument_slug(args: Any, kwargs: Mapping[str, Any]) -> str:
    """A short key-safe name of some arguments: the start of their values, then a digest
    of all of them (distinct arguments, distinct slugs)."""
    text = call_preview(args, kwargs, limit=10_000)
    digest = hashlib.sha256(text.encode()).hexdigest()[:6]
    words = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:30].strip("-")
    return f"{words}-{digest}" if words else digest


def call_preview(args: Any, kwargs: Mapping[str, Any], limit: int = 60) -> str:
    """``3, 'a', day='2024-01-02'``, shortened to `limit` characters."""
    parts = [_short_repr(v) for v in (args or ())]
    parts += [f"{k}={_short_repr(v)}" for k, v in (kwargs or {}).items()]
    return _shorten(", ".join(parts), limit)


def _short_repr(value: Any) -> str:
    name = getattr(value, "name", None)
    if name is not None and hasattr(value, "func"):  # a lazyflow Task
        return str(name)
    try:
        return _shorten(repr(value), 40)
    except Exception:
        return type(value).__name__


def artifact_key(workflow_name: str, suffix: str = "") -> str:
    """A stable Prefect artifact key for a workflow: lowercase letters, digits, dashes.

    The same workflow always gets the same key, so the Artifacts page shows its history.
    """
    slug = re.sub(r"[^a-z0-9]+", "-", workflow_name.lower()).strip("-") or "workflow"
    slug = slug[-80:].lstrip("-")  # keep the end: the task name is the informative part
    key = f"lazyflow-{slug}"
    return f"{key}-{suffix}" if suffix else key


def format_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.2f} s"
    minutes, secs = divmod(seconds, 60)
    if minutes < 60:
        return f"{int(minutes)} min {secs:.0f} s"
    hours, minutes = divmod(minutes, 60)
    return f"{int(hours)} h {int(minutes)} min"


def _preview(event: Any) -> str:
    return _shorten(str(getattr(event, "args_preview", "") or ""), 200)


def _call_label(event: Any) -> str:
    """How a job is named in log lines: the scheduler's short call preview, e.g.
    ``square(1, 'a')``, or the task name when there is none."""
    return _preview(event) or str(event.task_name)


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
