"""Where a LazyFlowOperator's link points, and connections read outside a task."""

from __future__ import annotations

import datetime
import json
import threading
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest


def test_extra_link_opens_the_execution_page_of_lazyflow_ui(
    run_dag: Any,
    counter_dir: Path,
    xcom: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """With a UI base URL in the connection, the link is that UI's page of the execution,
    which the provenance browser serves; viz_dir pages are rendered after the task."""
    db = f"sqlite:///{tmp_path}/lf.db"
    conn = {"conn_type": "lazyflow", "extra": {"db": db, "ui_url": "http://lazyflow-ui.test:8765/"}}
    monkeypatch.setenv("AIRFLOW_CONN_LAZYFLOW_DEFAULT", json.dumps(conn))
    monkeypatch.setenv("AIRFLOW__LAZYFLOW__VIZ_DIR", str(tmp_path / "views"))

    dr = run_dag("lf_conn", counter_dir=counter_dir)

    execution_id = xcom(dr, "lf", "lazyflow_summary")["execution_id"]
    link = xcom(dr, "lf", "_link_LazyFlowExecutionLink")
    assert link == f"http://lazyflow-ui.test:8765/executions/{execution_id}"
    from fastapi.testclient import TestClient

    from lazyflow_core.ui.app import create_app

    with TestClient(create_app(db)) as client:
        page = client.get(urlsplit(link).path)
    assert page.status_code == 200 and execution_id in page.text
    # The call-graph page is rendered in the background, after the result was pushed.
    view = tmp_path / "views" / f"{execution_id}.html"
    for thread in threading.enumerate():
        if thread.name == f"lazyflow-viz-{execution_id[:8]}":
            thread.join(timeout=120)
    assert execution_id[:8] in view.read_text()
    assert view.stat().st_mtime > _xcom_pushed_at(dr, "lf").timestamp()
    assert "call graph written to" in "".join(capfd.readouterr())


def _xcom_pushed_at(dag_run: Any, task_id: str) -> datetime.datetime:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        return session.scalars(
            select(XComModel.timestamp).where(
                XComModel.run_id == dag_run.run_id,
                XComModel.task_id == task_id,
                XComModel.key == "return_value",
            )
        ).one()


def test_hook_and_load_result_read_a_metadata_db_connection_outside_a_task(
    airflow_db: Path, tmp_path: Path
) -> None:
    """A connection saved with `airflow connections add` (the metadata database) works in
    a script too, where Airflow 3's task SDK alone cannot see it."""
    from airflow.models.connection import Connection
    from airflow.utils.session import create_session

    from lazyflow_airflow import LazyFlowHook, load_result
    from lazyflow_core import Scheduler, task

    url = f"sqlite:///{tmp_path}/lf.db"
    with create_session() as session:
        session.add(
            Connection(conn_id="lf_saved", conn_type="lazyflow", extra=json.dumps({"db": url}))
        )

    assert LazyFlowHook("lf_saved").get_store_url() == url

    @task
    def make_set(n: int) -> set[int]:
        return set(range(n))

    with Scheduler(db=url) as sched:
        sched.run(make_set(3))
    assert sched.last_run is not None
    ref = {"lazyflow_ref": sched.last_run.result_hash, "db": "sqlite:///***", "conn_id": "lf_saved"}
    assert load_result(ref) == {0, 1, 2}
