"""A DAG file that defines its lazyflow tasks itself. conftest copies it into two folders
of the dags folder (dags/site_a, dags/site_b): Airflow imports each copy under a module
name made from its path, yet both must name their tasks alike and share one cache."""

from __future__ import annotations

import datetime
import os
from pathlib import Path

from airflow.sdk import DAG

from lazyflow_airflow import LazyFlowOperator
from lazyflow_core import task


@task
def shout(word: str, counter_dir: str) -> str:
    with open(os.path.join(counter_dir, "shout.log"), "a") as fh:
        fh.write("x\n")
    return word.upper()


@task
def shout_all(words: list[str], counter_dir: str) -> list[str]:
    return [shout(w, counter_dir) for w in words]


with DAG(
    f"lf_moved_{Path(__file__).parent.name}",
    schedule=None,
    start_date=datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC),
):
    LazyFlowOperator(
        task_id="lf",
        workflow=shout_all,
        op_kwargs={"words": ["a", "b", "c"], "counter_dir": "{{ dag_run.conf['counter_dir'] }}"},
        db="{{ dag_run.conf['db'] }}",
    )
