"""run_lazyflow / arun_lazyflow inside real Prefect flows (temporary Prefect server)."""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from prefect import flow
from prefect import task as prefect_task

from lazyflow_prefect import arun_lazyflow, run_lazyflow
from lazyflow_prefect.report import artifact_key
from tests.prefect.workflows import executions, expected_jobs, fanout, naps, square, total

pytestmark = pytest.mark.usefixtures("prefect_harness")

SUMMARY_KEY = artifact_key(fanout.name)
TABLE_KEY = artifact_key(fanout.name, "jobs")


@flow
def sum_of_squares(n: int, marker_dir: str, db: str) -> int:
    return run_lazyflow(fanout, n, marker_dir, db=db)


@flow
def state_message_of(n: int, marker_dir: str, db: str) -> str:
    state = run_lazyflow(fanout, n, marker_dir, db=db, return_state=True)
    assert state.is_completed()
    return state.message or ""


def squares_executed(marker_dir: Path, n: int) -> list[int]:
    return [executions(marker_dir, f"square-{i}") for i in range(n)]


def test_result_is_returned(marker_dir: Path, db_url: str) -> None:
    assert sum_of_squares(4, str(marker_dir), db_url) == 0 + 1 + 4 + 9


def test_final_state_message_counts_jobs_and_cached(marker_dir: Path, sqlite_url: str) -> None:
    first = state_message_of(3, str(marker_dir), sqlite_url)
    assert first == f"{expected_jobs(3)} jobs, 0 cached"
    second = state_message_of(3, str(marker_dir), sqlite_url)
    match = re.fullmatch(r"(\d+) jobs?, (\d+) cached", second)
    assert match, second
    assert match.group(1) == match.group(2), f"second run is fully cached: {second!r}"


def test_second_flow_run_executes_nothing_inside_the_workflow(
    marker_dir: Path, db_url: str, read_artifacts: Any
) -> None:
    assert sum_of_squares(4, str(marker_dir), db_url) == 14
    after_first = sorted(p.name for p in marker_dir.iterdir())
    state = sum_of_squares(4, str(marker_dir), db_url, return_state=True)
    assert state.result() == 14
    assert sorted(p.name for p in marker_dir.iterdir()) == after_first, "nothing re-ran"
    table = json.loads(read_artifacts(state.state_details.flow_run_id)[TABLE_KEY].data)
    assert table, "the cached run still reports its jobs"
    assert all(row["cached"] and row["status"] == "done" for row in table)


def test_artifacts_have_summary_and_one_row_per_job(
    marker_dir: Path, sqlite_url: str, read_artifacts: Any
) -> None:
    state = sum_of_squares(3, str(marker_dir), sqlite_url, return_state=True)
    artifacts = read_artifacts(state.state_details.flow_run_id)
    assert {SUMMARY_KEY, TABLE_KEY} <= set(artifacts)

    summary = artifacts[SUMMARY_KEY]
    assert summary.type == "markdown"
    execution_id = re.search(r"lazyflow log (\S+)", summary.data).group(1)
    assert f"| Execution | `{execution_id}` |" in summary.data
    assert f"| Jobs | {expected_jobs(3)} |" in summary.data
    assert f"| Executed | {expected_jobs(3)} |" in summary.data
    assert "| Cached | 0 |" in summary.data
    assert "| Failed | 0 |" in summary.data
    assert "| Duration |" in summary.data
    assert str(state.state_details.flow_run_id) in summary.data

    table = artifacts[TABLE_KEY]
    assert table.type == "table"
    rows = json.loads(table.data)
    assert len(rows) == expected_jobs(3)
    assert sorted(row["task"] for row in rows) == sorted(
        [fanout.name, total.name] + [square.name] * 3
    )
    for row in rows:
        assert row["status"] == "done"
        assert row["cached"] is False
        assert isinstance(row["seconds"], int | float) and row["seconds"] >= 0


def test_prefect_retry_reexecutes_only_the_failed_call(
    marker_dir: Path, db_url: str, read_artifacts: Any
) -> None:
    (marker_dir / "fail-once-2").touch()

    @flow
    def with_retry() -> int:
        retrying = run_lazyflow.with_options(retries=1, retry_delay_seconds=0)
        return retrying(fanout, 4, str(marker_dir), db=db_url)

    state = with_retry(return_state=True)
    assert state.result() == 14
    # square(2) failed once and ran again; every other leaf call ran exactly once.
    assert squares_executed(marker_dir, 4) == [1, 1, 2, 1]
    assert executions(marker_dir, "total") == 1
    # fanout only builds the graph; its call had not finished either, so it may re-run.
    assert executions(marker_dir, "fanout") in (1, 2)
    rows = json.loads(read_artifacts(state.state_details.flow_run_id)[TABLE_KEY].data)
    executed = [row for row in rows if not row["cached"]]
    assert {row["task"] for row in executed} >= {square.name}
    assert all(row["status"] == "done" for row in rows)


def test_failure_without_retry_fails_the_task_with_the_original_error(
    marker_dir: Path, sqlite_url: str, read_artifacts: Any
) -> None:
    (marker_dir / "fail-once-1").touch()

    @flow
    def failing() -> tuple[bool, str]:
        state = run_lazyflow(fanout, 3, str(marker_dir), db=sqlite_url, return_state=True)
        error = state.result(raise_on_failure=False)
        return state.is_failed(), f"{type(error).__name__}: {error}"

    flow_state = failing(return_state=True)
    assert flow_state.result() == (True, "RuntimeError: injected failure for x=1")
    artifacts = read_artifacts(flow_state.state_details.flow_run_id)
    assert "| Status | **failed** |" in artifacts[SUMMARY_KEY].data
    assert "injected failure for x=1" in artifacts[SUMMARY_KEY].data
    rows = json.loads(artifacts[TABLE_KEY].data)
    failed = {row["task"]: row for row in rows if row["status"] == "failed"}
    # The failing call, and the parent whose result needed it.
    assert set(failed) == {square.name, fanout.name}, failed
    assert failed[square.name]["call"].startswith("square(1, ")
    assert "injected failure for x=1" in failed[square.name]["error"]
    assert "a call it made failed" in failed[fanout.name]["error"]


def test_bad_reference_or_arguments_fail_clearly_and_are_not_retried() -> None:
    from prefect.client.orchestration import get_client

    from lazyflow_core import TaskCallError, WorkflowImportError

    retrying = run_lazyflow.with_options(retries=3, retry_delay_seconds=0)

    @flow
    def bad() -> list[tuple[str, Any, Any]]:
        states = [
            retrying("no_such_module_for_lazyflow:main", return_state=True),
            retrying(fanout, 1, 2, 3, return_state=True),  # wrong arguments
        ]
        return [
            (s.message or "", s.result(raise_on_failure=False), s.state_details.task_run_id)
            for s in states
        ]

    (message, error, bad_ref_run), (_, call_error, bad_args_run) = bad()
    assert isinstance(error, WorkflowImportError)
    assert "no_such_module_for_lazyflow" in str(error)
    assert "no_such_module_for_lazyflow" in message
    assert isinstance(call_error, TaskCallError)
    assert "fanout" in str(call_error)
    with get_client(sync_client=True) as client:
        run_counts = [client.read_task_run(i).run_count for i in (bad_ref_run, bad_args_run)]
    assert run_counts == [1, 1], "a retry cannot fix a bad reference or bad arguments"


def test_not_a_workflow_is_rejected_with_a_hint() -> None:
    from lazyflow_core import LazyflowError

    @prefect_task
    def plain() -> int:
        return 1

    @flow
    def wrong() -> Any:
        return run_lazyflow(plain)

    with pytest.raises(LazyflowError, match=r"decorate it with lazyflow_core\.task"):
        wrong()


def test_workflow_by_module_reference_and_by_file(marker_dir: Path, sqlite_url: str) -> None:
    path = Path(__file__).with_name("workflows.py")

    @flow
    def by_reference() -> tuple[int, int]:
        a = run_lazyflow("tests.prefect.workflows:fanout", 3, str(marker_dir), db=sqlite_url)
        b = run_lazyflow(f"{path}:fanout", n=3, marker_dir=str(marker_dir), db=sqlite_url)
        return a, b

    assert by_reference() == (5, 5)


def test_submit_and_ordinary_prefect_tasks_mix(marker_dir: Path, sqlite_url: str) -> None:
    @prefect_task
    def make_n() -> int:
        return 3

    @prefect_task
    def double(x: int) -> int:
        return 2 * x

    @flow
    def mixed() -> int:
        n = make_n.submit()
        future = run_lazyflow.submit(fanout, n, str(marker_dir), db=sqlite_url)
        return double(future)

    assert mixed() == 10


# Prefect's async client leaves a keep-alive socket to the API server behind when the
# event loop of an async flow closes (happens without lazyflow too); collected below.
@pytest.mark.filterwarnings("ignore:unclosed <socket.socket:ResourceWarning")
@pytest.mark.filterwarnings(
    "ignore:Exception ignored in. <socket.socket:pytest.PytestUnraisableExceptionWarning"
)
def test_async_flow_with_arun_lazyflow(marker_dir: Path, sqlite_url: str) -> None:
    @flow
    async def async_flow() -> tuple[int, str]:
        value = await arun_lazyflow(fanout, 3, str(marker_dir), db=sqlite_url)
        state = await arun_lazyflow(fanout, 3, str(marker_dir), db=sqlite_url, return_state=True)
        return value, state.message or ""

    value, message = asyncio.run(async_flow())
    gc.collect()  # surface Prefect's leaked socket here, under this test's filters
    assert value == 5
    assert re.fullmatch(r"(\d+) jobs?, \1 cached", message), message
    assert squares_executed(marker_dir, 3) == [1, 1, 1]


def test_job_lines_and_summary_go_to_the_run_logger(marker_dir: Path, sqlite_url: str) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
    from prefect.logging.handlers import APILogHandler

    state = sum_of_squares(2, str(marker_dir), sqlite_url, return_state=True)
    APILogHandler().flush()
    with get_client(sync_client=True) as client:
        logs = client.read_logs(
            log_filter=LogFilter(
                flow_run_id=LogFilterFlowRunId(any_=[state.state_details.flow_run_id])
            )
        )
    messages = [log.message for log in logs if log.task_run_id is not None]
    assert any(re.match(r"job square\(1, .*\) done in", m) for m in messages), messages
    assert any(m.startswith(f"lazyflow {fanout.name} done: 4 jobs") for m in messages)
    assert any(m.startswith("inspect it with: lazyflow log ") for m in messages)


def test_outside_a_run_it_logs_to_the_standard_logger(
    marker_dir: Path, sqlite_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="lazyflow.prefect"):
        assert run_lazyflow.fn(fanout, 2, str(marker_dir), db=sqlite_url) == 1
    messages = [r.getMessage() for r in caplog.records if r.name == "lazyflow.prefect"]
    assert any(m.startswith("job square(1, ") for m in messages), messages
    assert any(m.startswith(f"lazyflow {fanout.name} done: 4 jobs") for m in messages)


@pytest.mark.filterwarnings(
    # Prefect's own engine logs warn that a task run outside a flow cannot log to the API.
    "ignore:Logger 'prefect.task_runs' attempted to send logs to the API:UserWarning"
)
def test_task_run_outside_a_flow(marker_dir: Path, sqlite_url: str) -> None:
    assert run_lazyflow(fanout, 2, str(marker_dir), db=sqlite_url) == 1


def test_execution_is_tagged_with_the_prefect_run(marker_dir: Path, sqlite_url: str) -> None:
    @flow(name="tagged-flow")
    def tagged() -> str:
        state = run_lazyflow(
            fanout, 2, str(marker_dir), db=sqlite_url, tags={"team": "data"}, return_state=True
        )
        return str(state.state_details.task_run_id)

    flow_state = tagged(return_state=True)
    task_run_id = flow_state.result()
    flow_run_id = str(flow_state.state_details.flow_run_id)
    lazyflow = Path(sys.executable).with_name("lazyflow")
    found = subprocess.run(
        [
            lazyflow,
            "log",
            "--db",
            sqlite_url,
            "--json",
            "--tag",
            f"prefect.flow_run_id={flow_run_id}",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert found.returncode == 0, found.stderr
    [execution] = json.loads(found.stdout)
    assert execution["root_task"] == fanout.name
    tags = execution["tags"]
    assert tags["prefect.flow_run_id"] == flow_run_id
    assert tags["prefect.flow_name"] == "tagged-flow"
    assert tags["prefect.task_run_id"] == task_run_id
    assert tags["prefect.flow_run_name"]
    assert tags["team"] == "data"


def nap_count(marker_dir: Path) -> int:
    return len(list(marker_dir.glob("nap-*")))


@pytest.mark.filterwarnings("ignore:unclosed <socket.socket:ResourceWarning")
@pytest.mark.filterwarnings(
    "ignore:Exception ignored in. <socket.socket:pytest.PytestUnraisableExceptionWarning"
)
@pytest.mark.parametrize("kind", ["sync", "async"])
def test_prefect_timeout_cancels_the_workflow(marker_dir: Path, sqlite_url: str, kind: str) -> None:
    """A chain of four 1 s calls under a 1.5 s timeout: the call running at the timeout
    finishes, no later call starts."""
    if kind == "sync":

        @flow
        def timed() -> str:
            limited = run_lazyflow.with_options(timeout_seconds=1.5)
            state = limited(naps, 4, 1.0, str(marker_dir), db=sqlite_url, return_state=True)
            return state.name or ""

        name = timed()
    else:

        @flow
        async def atimed() -> str:
            limited = arun_lazyflow.with_options(timeout_seconds=1.5)
            state = await limited(naps, 4, 1.0, str(marker_dir), db=sqlite_url, return_state=True)
            return state.name or ""

        name = asyncio.run(atimed())
        gc.collect()
    assert name == "TimedOut"
    time.sleep(2.5)  # time for two more naps, had the workflow gone on
    assert nap_count(marker_dir) <= 2
