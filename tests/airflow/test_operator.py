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
    run_dag: Any,
    counter_dir: Path,
    executions: Any,
    xcom: Any,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """Import, argument, hashing, executor and connection errors raise AirflowFailException
    (no retry), and each still pushes a failed lazyflow_summary naming the problem."""
    dr = run_dag("lf_fail_fast", db=f"sqlite:///{tmp_path}/lf.db", counter_dir=counter_dir)

    assert run_dag.states(dr) == {
        "bad_import": (FAILED, 1),
        "bad_args": (FAILED, 1),
        "unhashable_arg": (FAILED, 1),
        "unknown_executor": (FAILED, 1),
        "missing_connection": (FAILED, 1),
        "bad_typed_arg": (FAILED, 1),
    }
    assert executions(counter_dir, "square") == 0
    reasons = {
        "bad_import": "lazyflow_no_such_module",
        "bad_args": "no_such_argument",
        "unhashable_arg": "lock",
        "unknown_executor": "no_such_executor",
        "missing_connection": "lazyflow_no_such_connection",
        "bad_typed_arg": "'x' = 'not a number' is not an integer",
    }
    for task_id, reason in reasons.items():
        summary = xcom(dr, task_id, "lazyflow_summary")
        assert summary["status"] == "failed", (task_id, summary)
        assert reason in summary["error"], (task_id, summary["error"])
    assert "XCom not found" not in "".join(capfd.readouterr())


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
    capfd: pytest.CaptureFixture[str],
) -> None:
    """Without db=, the store is the Airflow connection lazyflow_default (type lazyflow);
    the log says how to inspect the run with a command that works as printed."""
    if store == "sqlite":
        url = f"sqlite:///{tmp_path}/from_conn.db"
        conn = {"conn_type": "lazyflow", "extra": {"db": url}}
        monkeypatch.setenv("AIRFLOW_CONN_LAZYFLOW_DEFAULT", json.dumps(conn))
    else:  # built from the connection's fields, as a PostgreSQL central cache would be
        url = request.getfixturevalue("pg_url")
        database = url.rsplit("/", 1)[1]
        # (the local server trusts every login, so any password works)
        monkeypatch.setenv(
            "AIRFLOW_CONN_LAZYFLOW_DEFAULT",
            f"lazyflow://postgres:s3cret@127.0.0.1:5432/{database}?dialect=postgresql%2Bpsycopg",
        )

    dr = run_dag("lf_conn", counter_dir=counter_dir)

    assert run_dag.states(dr)["lf"] == (SUCCESS, 1)
    execution_id = xcom_record(counter_dir, "conn")["summary"]["execution_id"]
    hint = next(
        line for line in "".join(capfd.readouterr()).splitlines() if "inspect it with" in line
    )
    assert "***" not in hint and "s3cret" not in hint
    if store == "postgres":  # the password stays in the connection: the command names it
        command = f"python -m lazyflow_airflow --conn-id lazyflow_default log {execution_id}"
        assert command in hint
        shown = subprocess.run(
            [sys.executable, *command.split()[1:]],
            capture_output=True,
            text=True,
            env=os.environ.copy(),
            timeout=180,
        )
        assert shown.returncode == 0, shown.stderr[-2000:]
        assert execution_id in shown.stdout
    else:
        assert f"lazyflow log {execution_id} --db '{url}'" in hint
    assert xcom_record(counter_dir, "conn")["value"] == 0 + 1 + 4
    assert executions(counter_dir, "square") == 3
    # The run's calls are in that store: running the workflow there is fully cached.
    from lazyflow_core import Scheduler, load_task

    wf = load_task(f"{Path(__file__).parent / 'workflows.py'}:sum_of_squares")
    with Scheduler(db=url) as sched:
        assert sched.run(wf(3, str(counter_dir))) == 5
    assert sched.last_run is not None and sched.last_run.executed == 0
    assert executions(counter_dir, "square") == 3


def test_the_connection_carries_the_signing_key(
    run_dag: Any,
    counter_dir: Path,
    executions: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """extra["signing_key"] signs every value the run stores; a reader without the key
    finds nothing it may reuse, one with it reuses everything."""
    from sqlalchemy import text

    from lazyflow_core import Scheduler, load_task
    from lazyflow_core.store.signing import key_id

    key = "airflow-team-key-0123456789"
    url = f"sqlite:///{tmp_path}/signed.db"
    conn = {"conn_type": "lazyflow", "extra": {"db": url, "signing_key": key}}
    monkeypatch.setenv("AIRFLOW_CONN_LAZYFLOW_DEFAULT", json.dumps(conn))

    dr = run_dag("lf_conn", counter_dir=counter_dir)

    assert run_dag.states(dr)["lf"] == (SUCCESS, 1)
    wf = load_task(f"{Path(__file__).parent / 'workflows.py'}:sum_of_squares")
    with Scheduler(db=url, signing_key=key) as sched:
        seals = sched.store.query(text("SELECT DISTINCT substr(signature, 1, 11) FROM lf_values"))
        assert [s for (s,) in seals] == [f"s1:{key_id(key.encode())}"]
        assert sched.run(wf(3, str(counter_dir))) == 5
        assert sched.last_run is not None and sched.last_run.executed == 0
    with Scheduler(db=url, signing_key="some-other-key-0123456789") as other:
        assert other.run(wf(3, str(counter_dir))) == 5
        assert other.last_run is not None and other.last_run.cached == 0
    assert executions(counter_dir, "square") == 6


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
    for thread in threading.enumerate():  # the page is rendered after the task
        if thread.name == f"lazyflow-viz-{execution_id[:8]}":
            thread.join(timeout=120)
    page = (tmp_path / "views" / f"{execution_id}.html").read_text()
    assert 'id="lf-graph-data"' in page and "cytoscape" in page  # the viz front end, inlined
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


def test_execution_timeout_records_the_jobs_that_ran(
    run_dag: Any, counter_dir: Path, tmp_path: Path, xcom: Any
) -> None:
    """A chain of 1.5 s calls on threads under a 2.5 s execution_timeout: the call that
    finished is in the summary and in the store; the call running at the timeout may
    finish (a thread cannot be stopped), no later call starts."""
    import json
    import subprocess
    import sys

    db = f"sqlite:///{tmp_path}/lf.db"
    dr = run_dag("lf_timeout", db=db, counter_dir=counter_dir)
    assert run_dag.states(dr)["lf"][0] == FAILED
    summary = xcom(dr, "lf", "lazyflow_summary")
    assert summary["status"] in ("cancelled", "failed"), summary
    assert summary["jobs"] >= 1 and summary["executed"] >= 1, summary
    time.sleep(3.5)  # two more naps, had the chain gone on
    assert len(list(counter_dir.glob("nap-*"))) <= 2
    lazyflow = Path(sys.executable).with_name("lazyflow")
    found = subprocess.run(
        [lazyflow, "log", "--db", db, "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    [execution] = json.loads(found.stdout)
    assert execution["jobs"] >= 1, execution


def test_executor_named_in_the_project_config(
    run_dag: Any,
    counter_dir: Path,
    tmp_path: Path,
    xcom: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """executor="local4" is found in the lazyflow.toml of the working directory."""
    project = tmp_path / "project"
    project.mkdir()
    (project / "lazyflow.toml").write_text(
        '[executors.local4]\ntype = "threads"\nmax_workers = 4\n'
    )
    monkeypatch.chdir(project)
    dr = run_dag("lf_config_executor", db=f"sqlite:///{tmp_path}/lf.db", counter_dir=counter_dir)

    assert run_dag.states(dr)["lf"] == ("success", 1)
    summary = xcom(dr, "lf", "lazyflow_summary")
    assert summary["status"] == "done" and summary["executed"] == 3 + 2
