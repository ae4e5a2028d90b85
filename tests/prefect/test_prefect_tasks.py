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
from tests.prefect.runs import read_task_runs
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


def test_a_failed_job_is_logged_with_its_traceback(
    marker_dir: Path, sqlite_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    (marker_dir / "fail-once-1").touch()
    with (
        caplog.at_level(logging.INFO, logger="lazyflow.prefect"),
        pytest.raises(RuntimeError, match="injected failure"),
    ):
        run_lazyflow.fn(fanout, 3, str(marker_dir), db=sqlite_url)
    errors = [
        r.getMessage()
        for r in caplog.records
        if r.name == "lazyflow.prefect" and r.levelno == logging.ERROR
    ]
    (square_failed,) = [m for m in errors if m.startswith("job square(1, ")]
    assert "Traceback (most recent call last)" in square_failed
    assert 'raise RuntimeError(f"injected failure for x={x}")' in square_failed


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
            state = limited(
                naps,
                4,
                1.0,
                str(marker_dir),
                db=sqlite_url,
                inner_task_runs=True,
                return_state=True,
            )
            return state.name or ""

        flow_state = timed(return_state=True)
        name = flow_state.result()

        # The mirrored inner task runs are all closed: none left Running (a zombie).
        def inner_runs(runs: list[Any]) -> dict[str, Any]:
            return {r.name: r.state for r in runs if "lazyflow" in r.tags}

        def all_closed(runs: list[Any]) -> bool:
            inner = inner_runs(runs)
            return any(n.startswith("naps(4, ") for n in inner) and all(
                s is not None and s.is_final() for s in inner.values()
            )

        runs = read_task_runs(flow_state.state_details.flow_run_id, until=all_closed)
        inner = inner_runs(runs)
        assert any(n.startswith("naps(4, ") for n in inner), sorted(inner)
        assert all(s is not None and s.is_final() for s in inner.values()), inner
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
    # The timed-out execution is on record with the call that finished before the timeout.
    lazyflow = Path(sys.executable).with_name("lazyflow")
    found = subprocess.run(
        [lazyflow, "log", "--db", sqlite_url, "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    [execution] = json.loads(found.stdout)
    assert execution["status"] in ("cancelled", "failed"), execution
    assert execution["jobs"] >= 1, execution


def test_failures_before_the_run_starts_publish_a_summary(
    marker_dir: Path, sqlite_url: str, read_artifacts: Any
) -> None:
    """A bad reference, bad arguments and an unknown executor fail before any job; the
    summary artifact still says so, with the error."""

    @flow
    def broken() -> list[str]:
        states = [
            run_lazyflow("no_such_module_for_lazyflow:main", return_state=True),
            run_lazyflow(fanout, "three", str(marker_dir), db=sqlite_url, return_state=True),
            run_lazyflow(
                fanout, 2, str(marker_dir), db=sqlite_url, executor="nowhere", return_state=True
            ),
        ]
        return [s.type.value for s in states]

    state = broken(return_state=True)
    assert state.result() == ["FAILED"] * 3
    artifacts = read_artifacts(state.state_details.flow_run_id)
    bad_ref = artifacts[artifact_key("no_such_module_for_lazyflow.main")].data
    assert "| Status | **failed** |" in bad_ref and "| Execution | `not started` |" in bad_ref
    assert "no_such_module_for_lazyflow" in bad_ref
    # The two runs of fanout share its key: the latest is the unknown executor.
    summaries = sorted(
        (a for a in read_artifacts.all(state.state_details.flow_run_id) if a.key == SUMMARY_KEY),
        key=lambda a: a.created,
    )
    assert len(summaries) == 2
    assert "'three'" in summaries[0].data and "int" in summaries[0].data
    assert "nowhere" in summaries[1].data and "| Status | **failed** |" in summaries[1].data


def test_executor_named_in_the_project_config(
    marker_dir: Path, sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "lazyflow.toml").write_text(
        '[executors.local4]\ntype = "threads"\nmax_workers = 4\n'
    )
    monkeypatch.chdir(project)

    @flow
    def configured() -> str:
        state = run_lazyflow(
            fanout, 3, str(marker_dir), db=sqlite_url, executor="local4", return_state=True
        )
        return state.message or ""

    assert configured() == f"{expected_jobs(3)} jobs, 0 cached"


def test_explain_lazyflow_says_what_would_run_and_runs_nothing(
    marker_dir: Path, sqlite_url: str, read_artifacts: Any
) -> None:
    from lazyflow_prefect import explain_lazyflow

    md = str(marker_dir)

    @flow
    def dry() -> tuple[dict[str, Any], dict[str, Any]]:
        run_lazyflow(fanout, 2, md, db=sqlite_url)
        return explain_lazyflow(fanout, 2, md, db=sqlite_url), explain_lazyflow(
            fanout, "3", md, db=sqlite_url
        )

    state = dry(return_state=True)
    same, more = state.result()
    assert (same["run"], same["cached"], same["unknown"], same["predicted"]) == (0, 1, 0, 0)
    assert same["decisions"][0]["call"].startswith("fanout(2, ")
    # fanout(3) would run; below it, the calls fanout(2) made are predicted (reused if
    # called again), never run
    # predicted calls are counted apart: they are guesses, not calls found cached
    assert (more["run"], more["cached"], more["unknown"]) == (1, 0, 0)
    assert (more["predicted"], more["predicted_cached"], more["predicted_run"]) == (3, 3, 0)
    decision, *below = more["decisions"]
    assert [d["predicted"] for d in below] == [True, True, True]
    assert not decision["predicted"]
    assert (decision["action"], decision["reason"]) == ("run", "args_changed")
    assert "n (was 2, now 3)" in decision["detail"]
    assert squares_executed(marker_dir, 3) == [1, 1, 0], "the dry runs ran nothing"
    artifact = read_artifacts(state.state_details.flow_run_id)[f"{SUMMARY_KEY}-explain"]
    assert "**1** calls would run, **0** cached" in artifact.data
    assert "**0** would run again, **3** would be reused" in artifact.data
    assert "| run | `fanout(3, " in artifact.data and "args_changed" in artifact.data


def test_summary_links_to_lazyflow_ui_when_the_block_names_one(
    marker_dir: Path, sqlite_url: str, read_artifacts: Any
) -> None:
    from lazyflow_prefect import LazyFlowStore

    store = LazyFlowStore(url=sqlite_url, ui_url="http://lazyflow-ui.internal:8765/")

    @flow
    def linked() -> None:
        run_lazyflow(fanout, 2, str(marker_dir), db=store)

    state = linked(return_state=True)
    artifacts = read_artifacts(state.state_details.flow_run_id)
    execution_id = re.search(r"lazyflow log (\S+)", artifacts[SUMMARY_KEY].data).group(1)
    page = f"http://lazyflow-ui.internal:8765/executions/{execution_id}"
    assert page in artifacts[f"{SUMMARY_KEY}-ui"].data
    assert f"| lazyflow ui | [{page}]({page}) |" in artifacts[SUMMARY_KEY].data


def test_output_files_are_materialized_as_prefect_assets(tmp_path: Path, sqlite_url: str) -> None:
    from prefect.client.orchestration import get_client

    from tests.prefect.workflows import write_parts

    out = tmp_path / "out"
    out.mkdir()

    @prefect_task
    def consume(parts: dict[str, Any]) -> int:
        return len(parts["parts"])

    @flow
    def producing() -> int:
        return consume(run_lazyflow(write_parts, str(out), 2, db=sqlite_url))

    state = producing(return_state=True)
    assert state.result() == 2
    keys = {f"file://{out}/part-0.txt", f"file://{out}/part-1.txt"}
    deadline = time.monotonic() + 60
    found: dict[str, Any] = {}
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline and set(found) != keys:
            response = client.request(
                "POST",
                "/events/filter",
                json={"filter": {"event": {"prefix": ["prefect.asset.materialization."]}}},
            )
            for event in response.json()["events"]:
                found[event["resource"]["prefect.resource.id"]] = event
            time.sleep(0.5)
    assert keys <= set(found), sorted(found)
    event = found[f"file://{out}/part-0.txt"]
    assert event["event"] == "prefect.asset.materialization.succeeded"
    assert {
        "prefect.resource.id": "lazyflow",
        "prefect.resource.role": "asset-materialized-by",
    } in event["related"]


def test_inner_task_runs_mirror_each_call_or_each_task(marker_dir: Path, sqlite_url: str) -> None:
    """Inner calls as Prefect task runs nested under run_lazyflow, with their own states;
    none is left Running after a failure; per task name they are summed."""
    md = str(marker_dir)
    (marker_dir / "fail-once-1").touch()

    @flow
    def mirrored() -> list[str]:
        failed = run_lazyflow(fanout, 3, md, db=sqlite_url, inner_task_runs=True, return_state=True)
        again = run_lazyflow(
            fanout, 3, md, db=sqlite_url, inner_task_runs="calls", return_state=True
        )
        summed = run_lazyflow(
            fanout, 4, md, db=sqlite_url, inner_task_runs="tasks", return_state=True
        )
        return [str(s.state_details.task_run_id) for s in (failed, again, summed)]

    state = mirrored(return_state=True)
    failed_id, again_id, summed_id = state.result()

    def children_in(runs: list[Any], parent: str) -> dict[str, Any]:
        return {
            r.name: r.state
            for r in runs
            if any(
                str(getattr(i, "id", "")) == parent for i in r.task_inputs.get("__parents__", [])
            )
        }

    def all_recorded(runs: list[Any]) -> bool:
        kids = [children_in(runs, p) for p in (failed_id, again_id, summed_id)]
        return (
            len(kids[0]) >= 4
            and len(kids[2]) >= 3
            and all(s is not None and s.is_final() for k in kids for s in k.values())
        )

    runs = read_task_runs(state.state_details.flow_run_id, until=all_recorded)

    def children(parent: str) -> dict[str, Any]:
        return children_in(runs, parent)

    first = children(failed_id)
    assert len(first) == 4, sorted(first)  # fanout and three squares; total never ran
    square_1 = next(s for name, s in first.items() if name.startswith("square(1, "))
    assert square_1.type.value == "FAILED" and "injected failure" in (square_1.message or "")
    assert all(s.is_final() for s in first.values()), "no zombie task runs"
    assert sum(s.type.value == "COMPLETED" for s in first.values()) >= 2

    second = children(again_id)  # the retry by hand: square(1) runs, the rest is cached
    assert {s.name for n, s in second.items() if n.startswith("square(0, ")} == {"Cached"}
    assert next(s for n, s in second.items() if n.startswith("square(1, ")).name == "Completed"

    summed = children(summed_id)
    assert set(summed) == {fanout.name, square.name, total.name}
    assert summed[square.name].message == "1 executed, 3 cached"
    assert all(s.type.value == "COMPLETED" for s in summed.values())


def test_inspect_hint_is_runnable_and_never_shows_the_password(
    marker_dir: Path, pg_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    from sqlalchemy.engine import make_url

    url = make_url(pg_url).set(password="s3cret").render_as_string(hide_password=False)
    with caplog.at_level(logging.INFO, logger="lazyflow.prefect"):
        assert run_lazyflow.fn(fanout, 2, str(marker_dir), db=url) == 1
    [hint] = [r.getMessage() for r in caplog.records if "inspect it with" in r.getMessage()]
    assert "s3cret" not in hint and "***" not in hint, hint
    assert "PGPASSWORD" in hint
    bare = make_url(pg_url).render_as_string(hide_password=False)
    assert f"--db '{bare}'" in hint
