"""DAGs run by tests/airflow (Airflow parses this file from the session's dags folder).

Per-test values (store URL, counter directory) arrive as ``dag_run.conf`` and reach the
workflow through the operator's templated fields, so the DAGs themselves are static.
"""

from __future__ import annotations

import datetime
import importlib.util
import json
import os
import sys
import threading
from pathlib import Path
from types import ModuleType

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG, Asset, task

from lazyflow_airflow import LazyFlowOperator, lazyflow_task, load_result

WF = str(Path(__file__).resolve().parents[1] / "workflows.py")
START = datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)
CONF_DB = "{{ dag_run.conf['db'] }}"
CONF_DIR = "{{ dag_run.conf['counter_dir'] }}"
NO_DELAY = datetime.timedelta(seconds=0)


@task
def record(name: str, value: object, **context: object) -> None:
    """Write what arrived through XCom to <counter_dir>/<name>.json for the test to read."""
    conf = context["dag_run"].conf  # type: ignore[attr-defined]
    ti = context["ti"]
    summary = ti.xcom_pull(task_ids="lf", key="lazyflow_summary")  # type: ignore[attr-defined]
    loaded = load_result(value)
    if hasattr(loaded, "__dataclass_fields__"):
        loaded = {"type": type(loaded).__name__, **vars(loaded)}
    payload = {"value": value, "loaded": loaded, "summary": summary}
    Path(conf["counter_dir"], f"{name}.json").write_text(json.dumps(payload))


with DAG("lf_basic", schedule=None, start_date=START) as lf_basic:
    lf = LazyFlowOperator(
        task_id="lf",
        workflow=f"{WF}:report",
        op_kwargs={"day": "{{ ds }}", "n": 4, "counter_dir": CONF_DIR},
        db=CONF_DB,
        tags={"team": "tests"},
    )
    record("basic", lf.output)


with DAG("lf_counted", schedule=None, start_date=START) as lf_counted:
    lf = LazyFlowOperator(
        task_id="lf",
        workflow=f"{WF}:sum_of_squares",
        op_args=[5, CONF_DIR],
        db=CONF_DB,
    )
    record("counted", lf.output)


with DAG("lf_retry", schedule=None, start_date=START) as lf_retry:
    LazyFlowOperator(
        task_id="lf",
        workflow=f"{WF}:with_flaky_step",
        op_kwargs={"n": 3, "counter_dir": CONF_DIR},
        db=CONF_DB,
        retries=1,
        retry_delay=NO_DELAY,
    )


with DAG("lf_fail_fast", schedule=None, start_date=START) as lf_fail_fast:
    LazyFlowOperator(
        task_id="bad_import",
        workflow="lazyflow_no_such_module:main",
        db=CONF_DB,
        retries=3,
        retry_delay=NO_DELAY,
    )
    LazyFlowOperator(
        task_id="bad_args",
        workflow=f"{WF}:square",
        op_kwargs={"x": 1, "counter_dir": CONF_DIR, "no_such_argument": 2},
        db=CONF_DB,
        retries=3,
        retry_delay=NO_DELAY,
    )
    LazyFlowOperator(
        task_id="unhashable_arg",
        workflow=f"{WF}:square",
        op_kwargs={"x": threading.Lock(), "counter_dir": CONF_DIR},
        db=CONF_DB,
        retries=3,
        retry_delay=NO_DELAY,
    )
    LazyFlowOperator(
        task_id="unknown_executor",
        workflow=f"{WF}:square",
        op_kwargs={"x": 1, "counter_dir": CONF_DIR},
        db=CONF_DB,
        executor="no_such_executor",
        retries=3,
        retry_delay=NO_DELAY,
    )
    LazyFlowOperator(
        task_id="missing_connection",
        workflow=f"{WF}:square",
        op_kwargs={"x": 1, "counter_dir": CONF_DIR},
        conn_id="lazyflow_no_such_connection",
        retries=3,
        retry_delay=NO_DELAY,
    )
    LazyFlowOperator(
        task_id="bad_typed_arg",
        workflow=f"{WF}:square",
        op_kwargs={"x": "not a number", "counter_dir": CONF_DIR},
        db=CONF_DB,
        retries=3,
        retry_delay=NO_DELAY,
    )


with DAG("lf_conn", schedule=None, start_date=START) as lf_conn:
    # No db=: the store comes from the Airflow connection lazyflow_default.
    lf = LazyFlowOperator(task_id="lf", workflow=f"{WF}:sum_of_squares", op_args=[3, CONF_DIR])
    record("conn", lf.output)


with DAG("lf_reference", schedule=None, start_date=START) as lf_reference:
    lf = LazyFlowOperator(
        task_id="lf",
        workflow=f"{WF}:stats",
        op_kwargs={"n": 3, "counter_dir": CONF_DIR},
        db=CONF_DB,
    )
    record("reference", lf.output)


def _workflows_module() -> ModuleType:
    """tests/airflow/workflows.py, imported at parse time (TaskFlow needs the functions)."""
    name = "lazyflow_airflow_test_workflows"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, WF)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


with DAG("lf_taskflow", schedule=None, start_date=START) as lf_taskflow:
    wf = _workflows_module()

    @task
    def how_many() -> int:
        return 4

    @task.lazyflow(db=CONF_DB)
    def squares_total(n: int, counter_dir: str):  # a plain function as the entry task
        return wf.sum_of_squares(n, counter_dir)

    doubled = lazyflow_task(task_id="lf", db=CONF_DB)(wf.double)  # a lazyflow Task
    record("taskflow", doubled(squares_total(how_many(), CONF_DIR)))


_LINEAGE_DIR = os.path.join(os.environ.get("AIRFLOW_HOME", "/tmp"), "lineage")

with DAG("lf_lineage", schedule=None, start_date=START) as lf_lineage:
    from lazyflow_core import File

    LazyFlowOperator(
        task_id="lf",
        workflow=f"{WF}:upper_then_count",
        op_kwargs={"src": File(os.path.join(_LINEAGE_DIR, "in.txt")), "out_dir": _LINEAGE_DIR},
        db=CONF_DB,
    )


_ASSETS_DIR = os.path.join(os.environ.get("AIRFLOW_HOME", "/tmp"), "assets")

with DAG("lf_assets", schedule=None, start_date=START) as lf_assets:
    from lazyflow_core import File

    LazyFlowOperator(
        task_id="lf",
        workflow=f"{WF}:upper_then_count",
        op_kwargs={"src": File(os.path.join(_ASSETS_DIR, "in.txt")), "out_dir": _ASSETS_DIR},
        db=CONF_DB,
        inner_assets=True,
    )


with DAG(
    "lf_asset_consumer",
    # data-aware: runs when the lf_assets run writes count.txt
    schedule=[Asset("file://" + os.path.join(_ASSETS_DIR, "count.txt"))],
    start_date=START,
) as lf_asset_consumer:
    EmptyOperator(task_id="noop")


with DAG("lf_many_jobs", schedule=None, start_date=START) as lf_many_jobs:
    LazyFlowOperator(
        task_id="lf",
        workflow=f"{WF}:squares_then_fail",
        op_kwargs={"n": 12, "counter_dir": CONF_DIR},
        db=CONF_DB,
        max_job_lines=5,
    )


with DAG("lf_coerce", schedule=None, start_date=START) as lf_coerce:
    # Templates render to strings: "3" for n, "true" for shout, a path for the File.
    lf = LazyFlowOperator(
        task_id="lf",
        workflow=f"{WF}:head_lines",
        op_kwargs={
            "src": "{{ dag_run.conf['src'] }}",
            "n": "{{ dag_run.conf['n'] }}",
            "shout": "{{ dag_run.conf['shout'] }}",
        },
        db=CONF_DB,
    )
    record("coerce", lf.output)


with DAG("lf_explain", schedule=None, start_date=START) as lf_explain:
    ran = LazyFlowOperator(
        task_id="lf", workflow=f"{WF}:sum_of_squares", op_args=[3, CONF_DIR], db=CONF_DB
    )
    same = LazyFlowOperator(
        task_id="explain_same",
        workflow=f"{WF}:sum_of_squares",
        op_args=[3, CONF_DIR],
        db=CONF_DB,
        dry_run=True,
    )
    more = LazyFlowOperator(
        task_id="explain_more",
        workflow=f"{WF}:sum_of_squares",
        op_args=[4, CONF_DIR],
        db=CONF_DB,
        dry_run=True,
    )
    ran >> [same, more]


with DAG("lf_config_executor", schedule=None, start_date=START) as lf_config_executor:
    LazyFlowOperator(
        task_id="lf",
        workflow=f"{WF}:sum_of_squares",
        op_args=[3, CONF_DIR],
        db=CONF_DB,
        executor="local4",  # defined in the lazyflow.toml of the working directory
    )


with DAG("lf_timeout", schedule=None, start_date=START) as lf_timeout:
    LazyFlowOperator(
        task_id="lf",
        workflow=f"{WF}:naps",
        op_args=[4, 1.5, "{{ dag_run.conf['counter_dir'] }}"],
        db=CONF_DB,
        executor="threads",
        execution_timeout=datetime.timedelta(seconds=2.5),
    )


with DAG("lf_kill", schedule=None, start_date=START) as lf_kill:
    LazyFlowOperator(
        task_id="lf",
        workflow=f"{WF}:sleepy",
        op_kwargs={"seconds": 120, "pid_file": "{{ dag_run.conf['counter_dir'] }}/pid"},
        db=CONF_DB,
        executor="processes",
        execution_timeout=datetime.timedelta(seconds=10),
    )


with DAG("lf_cancel", schedule=None, start_date=START) as lf_cancel:
    LazyFlowOperator(
        task_id="lf",
        workflow=f"{WF}:sleepy",
        op_kwargs={"seconds": 120, "pid_file": "{{ dag_run.conf['counter_dir'] }}/pid"},
        db=CONF_DB,
        executor="processes",
    )
