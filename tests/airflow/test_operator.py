"""LazyFlowOperator in real Airflow 3 DAG runs (``dag.test()``), against SQLite and PostgreSQL.

The DAGs are in tests/airflow/dags/lazyflow_test_dags.py, the workflows in
tests/airflow/workflows.py. Workflow tasks count their real executions in files, so a
test can tell a cached call from an executed one.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

SUCCESS, FAILED = "success", "failed"


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh lazyflow store: a SQLite file, or a new PostgreSQL database."""
    if request.param == "postgres":
        return str(request.getfixturevalue("pg_url"))
    return f"sqlite:///{tmp_path}/lazyflow.db"


def test_templated_args_render_and_result_reaches_downstream(
    run_dag: Any, counter_dir: Path, xcom_record: Any, tmp_path: Path
) -> None:
    """{{ ds }} and dag_run.conf render into op_kwargs/db; the result is XCom return_value."""
    dr = run_dag("lf_basic", db=f"sqlite:///{tmp_path}/lf.db", counter_dir=counter_dir)

    assert run_dag.states(dr) == {"lf": (SUCCESS, 1), "record": (SUCCESS, 1)}
    got = xcom_record(counter_dir, "basic")
    ds = dr.logical_date.strftime("%Y-%m-%d")
    assert got["value"] == {"day": ds, "total": 0 + 1 + 4 + 9}
    assert (tmp_path / "lf.db").exists()


def test_summary_is_pushed_to_xcom(
    run_dag: Any, counter_dir: Path, xcom_record: Any, tmp_path: Path
) -> None:
    """XCom key lazyflow_summary holds the run summary (id, jobs, executed, cached, ...)."""
    run_dag("lf_basic", db=f"sqlite:///{tmp_path}/lf.db", counter_dir=counter_dir)

    summary = xcom_record(counter_dir, "basic")["summary"]
    assert summary["status"] == "done"
    assert summary["execution_id"]
    assert summary["executed"] >= 4 + 1  # four squares and their sum, at least
    assert summary["failed"] == 0
    assert summary["jobs"] == summary["executed"] + summary["cached"]
    assert any("square" in name for name in summary["by_task"])


def test_second_dag_run_executes_nothing(
    run_dag: Any, counter_dir: Path, executions: Any, xcom_record: Any, store_url: str
) -> None:
    """A second DAG run with the same arguments is served entirely from the store."""
    first = run_dag("lf_counted", db=store_url, counter_dir=counter_dir)
    assert run_dag.states(first)["lf"] == (SUCCESS, 1)
    assert (executions(counter_dir, "square"), executions(counter_dir, "add_all")) == (5, 1)

    second = run_dag("lf_counted", db=store_url, counter_dir=counter_dir)

    assert run_dag.states(second)["lf"] == (SUCCESS, 1)
    assert (executions(counter_dir, "square"), executions(counter_dir, "add_all")) == (5, 1)
    got = xcom_record(counter_dir, "counted")
    assert got["value"] == 0 + 1 + 4 + 9 + 16
    assert got["summary"]["executed"] == 0
    assert got["summary"]["cached"] >= 1


def test_retry_reruns_only_the_failed_call(
    run_dag: Any, counter_dir: Path, executions: Any, store_url: str
) -> None:
    """Try 1 fails in one call; try 2 executes only that call (and what depends on it)."""
    (counter_dir / "fail_once").touch()

    dr = run_dag("lf_retry", db=store_url, counter_dir=counter_dir)

    assert run_dag.states(dr)["lf"] == (SUCCESS, 2)
    assert executions(counter_dir, "flaky") == 2
    assert executions(counter_dir, "square") == 3  # not 6: try 2 took them from the store
    assert executions(counter_dir, "add_all") == 1


def test_import_error_and_bad_arguments_fail_without_retry(
    run_dag: Any, counter_dir: Path, executions: Any, tmp_path: Path
) -> None:
    """Import, argument, hashing and executor errors raise AirflowFailException: no retry."""
    dr = run_dag("lf_fail_fast", db=f"sqlite:///{tmp_path}/lf.db", counter_dir=counter_dir)

    assert run_dag.states(dr) == {
        "bad_import": (FAILED, 1),
        "bad_args": (FAILED, 1),
        "unhashable_arg": (FAILED, 1),
        "unknown_executor": (FAILED, 1),
    }
    assert executions(counter_dir, "square") == 0


@pytest.mark.parametrize("store", ["sqlite", "postgres"])
def test_connection_supplies_the_store(
    store: str,
    run_dag: Any,
    counter_dir: Path,
    executions: Any,
    xcom_record: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> None:
    """Without db=, the store is the Airflow connection lazyflow_default (type lazyflow)."""
    if store == "sqlite":
        url = f"sqlite:///{tmp_path}/from_conn.db"
        conn = {"conn_type": "lazyflow", "extra": {"db": url}}
        monkeypatch.setenv("AIRFLOW_CONN_LAZYFLOW_DEFAULT", json.dumps(conn))
    else:  # built from the connection's fields, as a PostgreSQL central cache would be
        url = request.getfixturevalue("pg_url")
        database = url.rsplit("/", 1)[1]
        monkeypatch.setenv(
            "AIRFLOW_CONN_LAZYFLOW_DEFAULT",
            f"lazyflow://postgres@127.0.0.1:5432/{database}?dialect=postgresql%2Bpsycopg",
        )

    dr = run_dag("lf_conn", counter_dir=counter_dir)

    assert run_dag.states(dr)["lf"] == (SUCCESS, 1)
    assert xcom_record(counter_dir, "conn")["value"] == 0 + 1 + 4
    assert executions(counter_dir, "square") == 3
    # The run's calls are in that store: running the workflow there is fully cached.
    from lazyflow_core import Scheduler, load_task

    wf = load_task(f"{Path(__file__).parent / 'workflows.py'}:sum_of_squares")
    with Scheduler(db=url) as sched:
        assert sched.run(wf(3, str(counter_dir))) == 5
    assert sched.last_run is not None and sched.last_run.executed == 0
    assert executions(counter_dir, "square") == 3


def test_non_json_result_is_pushed_as_reference(
    run_dag: Any, counter_dir: Path, xcom_record: Any, tmp_path: Path
) -> None:
    """A dataclass result goes to XCom as a reference; load_result() loads it back."""
    dr = run_dag("lf_reference", db=f"sqlite:///{tmp_path}/lf.db", counter_dir=counter_dir)

    assert run_dag.states(dr)["lf"] == (SUCCESS, 1)
    got = xcom_record(counter_dir, "reference")
    ref = got["value"]
    assert set(ref) >= {"lazyflow_ref", "db", "type"}
    assert ref["type"].endswith("Stats")
    assert got["loaded"] == {"type": "Stats", "n": 3, "total": 5}


def test_taskflow_decorator_passes_xcom_arguments(
    run_dag: Any, counter_dir: Path, executions: Any, xcom_record: Any
) -> None:
    """@task.lazyflow (plain function) and lazyflow_task (a Task) take and give XComs."""
    dr = run_dag("lf_taskflow", db=f"sqlite:///{counter_dir}/lf.db", counter_dir=counter_dir)

    states = run_dag.states(dr)
    assert states["squares_total"] == (SUCCESS, 1)
    assert states["lf"] == (SUCCESS, 1)
    got = xcom_record(counter_dir, "taskflow")
    assert got["value"] == 2 * (0 + 1 + 4 + 9)
    assert executions(counter_dir, "square") == 4


def test_execution_timeout_cancels_the_workflow(
    run_dag: Any, counter_dir: Path, tmp_path: Path
) -> None:
    """on_kill cancels the scheduler: the task fails fast and leaves no worker process."""
    started = time.monotonic()
    dr = run_dag("lf_kill", db=f"sqlite:///{tmp_path}/lf.db", counter_dir=counter_dir)

    assert run_dag.states(dr)["lf"] == (FAILED, 1)
    assert time.monotonic() - started < 45
    pid = int((counter_dir / "pid").read_text())
    deadline = time.monotonic() + 10
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(pid), f"lazyflow worker process {pid} outlived the cancelled task"


def test_sigterm_calls_on_kill_which_cancels_the_workflow(
    run_dag: Any, counter_dir: Path, tmp_path: Path
) -> None:
    """SIGTERM (how Airflow stops a task) runs on_kill: the run is cancelled, no orphans."""
    pid_file = counter_dir / "pid"

    def terminate_when_started() -> None:
        deadline = time.monotonic() + 30
        while not pid_file.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.2)
        os.kill(os.getpid(), signal.SIGTERM)

    previous = signal.getsignal(signal.SIGTERM)
    killer = threading.Thread(target=terminate_when_started, daemon=True)
    killer.start()
    try:
        started = time.monotonic()
        dr = run_dag("lf_cancel", db=f"sqlite:///{tmp_path}/lf.db", counter_dir=counter_dir)
    finally:
        killer.join(timeout=30)
        signal.signal(signal.SIGTERM, previous)  # Airflow's task runner installed its own

    assert run_dag.states(dr)["lf"] == (FAILED, 1)
    assert time.monotonic() - started < 45
    pid = int(pid_file.read_text())
    deadline = time.monotonic() + 10
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(pid), f"lazyflow worker process {pid} outlived the cancelled task"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is dead for our purpose
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(") ", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_execution_is_tagged_and_linked_from_the_task(
    run_dag: Any,
    counter_dir: Path,
    xcom_record: Any,
    xcom: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Tags find the run with `lazyflow log`; viz_dir gets the page the extra link names."""
    monkeypatch.setenv("AIRFLOW__LAZYFLOW__VIZ_DIR", str(tmp_path / "views"))
    monkeypatch.setenv("AIRFLOW__LAZYFLOW__VIZ_BASE_URL", "https://viz.example/runs/")
    db = f"sqlite:///{tmp_path}/lf.db"

    dr = run_dag("lf_basic", db=db, counter_dir=counter_dir)

    execution_id = xcom_record(counter_dir, "basic")["summary"]["execution_id"]
    assert xcom(dr, "lf", "_link_LazyFlowExecutionLink") == (
        f"https://viz.example/runs/{execution_id}.html"
    )
    assert "<svg" in (tmp_path / "views" / f"{execution_id}.html").read_text()
    listed = _lazyflow_cli(
        "log", "--db", db, "--json", "--tag", "dag_id=lf_basic", "--tag", f"run_id={dr.run_id}"
    )
    assert [e["id"] for e in json.loads(listed)] == [execution_id]
    for tag in ("task_id=lf", "try_number=1", "map_index=-1", "team=tests"):
        assert execution_id in _lazyflow_cli("log", "--db", db, "--json", "--tag", tag)


def _lazyflow_cli(*args: str) -> str:
    script = Path(sys.executable).with_name("lazyflow")
    return subprocess.run(
        [str(script), *args], check=True, capture_output=True, text=True, timeout=60
    ).stdout
