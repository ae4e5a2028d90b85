"""The Spark executor with real PySpark in local mode: one Spark application for the whole
test session (starting a JVM costs seconds), DataFrames in and out of tasks as Parquet
`SparkFrame`s, caching of them, and the executor contract suite run on it."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lazyflow_core import Dir, LazyflowError, Scheduler, spark_session, task
from lazyflow_core.config import ExecutorConfig
from lazyflow_core.executors import Executor, SparkExecutor, SparkFrame

# The contract suite, run here once more with `executor` the Spark executor (below).
from .test_contract import (  # noqa: F401
    test_a_second_run_is_served_from_the_cache,
    test_a_task_exception_keeps_its_type_and_names_the_task,
    test_cancel_stops_the_run_and_the_jobs_not_started,
    test_files_flow_between_tasks_and_a_changed_file_reruns,
    test_results_of_a_fan_out_and_of_returned_expressions,
    test_task_retries_rerun_a_failing_call,
)

pytest.importorskip("pyspark")
pytestmark = pytest.mark.xdist_group("spark")  # one worker, one JVM (`--dist loadgroup`)


@pytest.fixture(scope="session")
def spark_executor(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SparkExecutor]:
    executor = SparkExecutor(
        master="local[1]",
        conf={
            "spark.ui.enabled": "false",
            "spark.sql.shuffle.partitions": "1",
            "spark.default.parallelism": "1",
            "spark.driver.memory": "512m",
        },
        scratch=tmp_path_factory.mktemp("spark-frames"),
        max_workers=2,
    )
    yield executor
    executor.stop()


@pytest.fixture
def executor(spark_executor: SparkExecutor) -> Executor:
    """The contract suite's executor, in this module: the Spark executor."""
    return spark_executor


@task(executor="spark")
def sp_numbers(n: int) -> Any:
    spark = spark_session()
    return spark.range(n).withColumnRenamed("id", "x")


@task(executor="spark")
def sp_sum(df: Any) -> int:
    """Receives the DataFrame its argument (a SparkFrame) holds."""
    return int(df.groupBy().sum("x").collect()[0][0])


@task(executor="spark")
def sp_split(df: Any, at: int) -> dict[str, Any]:
    return {"low": df.filter(df.x < at), "high": df.filter(df.x >= at)}


@task(executor="spark")
def sp_counts(parts: dict[str, Any]) -> dict[str, int]:
    return {name: part.count() for name, part in parts.items()}


@task
def sp_files(frame: Dir) -> list[str]:
    """A task on the default executor sees the SparkFrame as a Dir of Parquet files."""
    return sorted(Path(f.path).suffix for f in frame.files() if f.path.endswith(".parquet"))


@task(executor="spark")
def sp_fails(n: int) -> int:
    raise ValueError(f"no rows for {n}")


def test_dataframes_cross_tasks_as_parquet_spark_frames(
    spark_executor: SparkExecutor, sqlite_url: str
) -> None:
    with Scheduler(db=sqlite_url, executors={"spark": spark_executor}) as sched:
        frame = sched.run(sp_numbers(10))
        assert isinstance(frame, SparkFrame) and isinstance(frame, Dir)
        assert frame.path.startswith(spark_executor.frames_root())
        assert sched.run(sp_sum(sp_numbers(10))) == 45
        assert set(sched.run(sp_files(sp_numbers(10)))) == {".parquet"}
        parts = sched.run(sp_split(sp_numbers(10), 4))
        assert all(isinstance(p, SparkFrame) for p in parts.values())
        assert sched.run(sp_counts(sp_split(sp_numbers(10), 4))) == {"low": 4, "high": 6}


def test_spark_results_are_cached_and_recomputed_when_their_files_go(
    spark_executor: SparkExecutor, sqlite_url: str
) -> None:
    with Scheduler(db=sqlite_url, executors={"spark": spark_executor}) as sched:
        assert sched.run(sp_sum(sp_numbers(6))) == 15
        assert sched.run(sp_sum(sp_numbers(6))) == 15
        assert sched.last_run is not None and sched.last_run.executed == 0
        frame = sched.run(sp_numbers(6))
        shutil.rmtree(frame.path)  # the Parquet files of the cached result are gone
        assert sched.run(sp_sum(sp_numbers(6))) == 15
        assert sched.last_run.executed == 2  # both: sp_numbers(6) wrote its frame again
        assert Path(sched.run(sp_numbers(6)).path).is_dir()


def test_task_errors_and_spark_session_outside_a_spark_task(
    spark_executor: SparkExecutor, sqlite_url: str
) -> None:
    sched = Scheduler(db=sqlite_url, executors={"spark": spark_executor})
    with sched, pytest.raises(ValueError, match="no rows for 3"):
        sched.run(sp_fails(3))
    with pytest.raises(LazyflowError, match=r'executor="spark"'):
        spark_session()


def test_the_config_file_names_a_spark_executor(spark_executor: SparkExecutor) -> None:
    built = ExecutorConfig(
        name="spark", type="spark", options={"master": "local[1]"}, source="test"
    ).create()
    assert isinstance(built, SparkExecutor) and built.master == "local[1]"
