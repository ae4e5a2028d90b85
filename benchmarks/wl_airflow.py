"""Airflow workloads: N calls as N mapped Airflow tasks vs one LazyFlowOperator.

Each case gets a throwaway ``AIRFLOW_HOME`` in its work directory with a SQLite metadata
database and a dags folder holding one generated DAG file (``dag.test()`` needs the DAG to
be parsable from a bundle). The metadata DB is created before timing; the timed part is
``dag.test()``, which parses the DAG, creates the run and executes every task in-process.

* ``mapped``: ``total(inc.expand(x=range(n)))`` with Airflow's TaskFlow API.
* ``operator``: one ``LazyFlowOperator`` running ``benchmarks.wl_lazyflow:main`` with
  ``op_args=[n]`` (if ``lazyflow_airflow`` does not provide it yet, a TaskFlow task that
  runs the same workflow with ``lazyflow_core.Scheduler``, reported with a note).

The sum is written to ``result.json`` by the last task (or read from the operator's
XCom), so the runner can check the value.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

MAPPED_DAG = """
import json, os
import pendulum
from airflow.sdk import dag, task

N = int(os.environ["BENCH_N"])
OUT = os.environ["BENCH_OUT"]


@dag(dag_id="bench_mapped", schedule=None, catchup=False,
     start_date=pendulum.datetime(2024, 1, 1))
def bench_mapped():
    @task
    def inc(x):
        return x + 1

    @task
    def total(xs):
        value = sum(xs)
        with open(OUT, "w") as fh:
            json.dump(value, fh)
        return value

    total(inc.expand(x=list(range(N))))


DAG = bench_mapped()
"""

OPERATOR_DAG = """
import os
import pendulum
from airflow.sdk import DAG

N = int(os.environ["BENCH_N"])
DB = os.environ["BENCH_LAZYFLOW_DB"]

with DAG(dag_id="bench_operator", schedule=None, catchup=False,
         start_date=pendulum.datetime(2024, 1, 1)) as DAG_:
    try:
        from lazyflow_airflow import LazyFlowOperator
    except ImportError:
        from airflow.sdk import task

        @task(task_id="lazyflow")
        def run_lazyflow(n):
            from lazyflow_core import Scheduler
            from benchmarks.wl_lazyflow import main
            return Scheduler(db=DB).run(main(n))

        run_lazyflow(N)
    else:
        LazyFlowOperator(task_id="lazyflow", workflow="benchmarks.wl_lazyflow:main",
                         op_args=[N], db=DB)
DAG = DAG_
"""


def _setup(workdir: str, name: str, source: str, n: int) -> Any:
    """Configure a throwaway AIRFLOW_HOME, create its DB, and load the DAG file."""
    home = Path(workdir) / "airflow"
    dags = home / "dags"
    dags.mkdir(parents=True, exist_ok=True)
    os.environ.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
            "BENCH_N": str(n),
            "BENCH_OUT": str(Path(workdir) / "result.json"),
            "BENCH_LAZYFLOW_DB": f"sqlite:///{Path(workdir) / 'lazyflow.db'}",
        }
    )
    path = dags / f"{name}.py"
    path.write_text(textwrap.dedent(source))
    from airflow.utils import db

    db.initdb()
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None  # a file we just wrote
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module.DAG


def _xcom(dag_run: Any, task_id: str) -> Any:
    """The ``return_value`` XCom of ``task_id`` in ``dag_run`` (None if not found)."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = (
            session.query(XComModel)
            .filter_by(run_id=dag_run.run_id, task_id=task_id, key="return_value")
            .first()
        )
        if row is None:
            return None
        value = row.value
    return json.loads(value) if isinstance(value, str | bytes) else value


def mapped(n: int, workdir: str, **_: Any) -> dict[str, Any]:
    dag = _setup(workdir, "bench_mapped", MAPPED_DAG, n)
    t0 = time.perf_counter()
    dag_run = dag.test()
    wall = time.perf_counter() - t0
    out = Path(workdir) / "result.json"
    value = json.loads(out.read_text()) if out.exists() else None
    return {
        "wall": wall,
        "calls": n + 1,
        "value": value,
        "state": str(dag_run.state),
        "airflow_tasks": n + 1,
    }


def operator(n: int, workdir: str, **_: Any) -> dict[str, Any]:
    dag = _setup(workdir, "bench_operator", OPERATOR_DAG, n)
    t0 = time.perf_counter()
    dag_run = dag.test()
    wall = time.perf_counter() - t0
    result: dict[str, Any] = {
        "wall": wall,
        "calls": n + 2,
        "state": str(dag_run.state),
        "airflow_tasks": 1,
        "value": _xcom(dag_run, "lazyflow"),
    }
    if importlib.util.find_spec("lazyflow_airflow") is None or not hasattr(
        importlib.import_module("lazyflow_airflow"), "LazyFlowOperator"
    ):
        result["note"] = (
            "LazyFlowOperator not available: measured a TaskFlow task running lazyflow's Scheduler"
        )
    return result
