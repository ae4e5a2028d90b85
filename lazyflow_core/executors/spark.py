"""Spark: tasks that run as Spark jobs of one Spark application, with lazyflow values in
and out.

``Scheduler(executors={"spark": SparkExecutor(master="local[2]")})`` and
``@task(executor="spark")``: the executor is the *driver* of a Spark application (one
`SparkSession`, started with its first job, in this process — client mode), and runs each
task on a driver thread where ``spark_session()`` returns that session. What crosses the
task boundary stays a lazyflow value:

- a task that returns a Spark ``DataFrame`` (alone or inside a list, dict, dataclass...)
  returns a `SparkFrame` instead: the DataFrame written as Parquet under the executor's
  `scratch` location, a `Dir` whose hash follows the files (so a downstream call re-runs
  when they change, and a cached result whose files are gone is computed again);
- a `SparkFrame` passed to a Spark task arrives as a DataFrame read from that Parquet.

Other tasks see a `SparkFrame` as a `Dir` of Parquet files (pandas and pyarrow read it).
Caching, retries, provenance and the rest are those of every executor: the scheduler
stays the only writer of its store.

`master` is any Spark master URL: ``local[N]``, ``spark://host:7077``, ``yarn`` (on an
EMR or Dataproc primary node), ``k8s://https://...`` (with the image in `conf`), or
``sc://host:15002`` for Spark Connect (Databricks Connect passes its own session with
`session=`). For a cluster, `scratch` must be storage both Spark and fsspec reach
(``s3://`` on EMR, ``gs://`` on Dataproc, ``dbfs:/`` paths through a mount): the Parquet
files are written by the cluster and hashed by the scheduler.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

from ..errors import ExecutorError, LazyflowError
from ..files import Dir
from ..values import Walk, is_instance_of
from .base import Inline, JobOutcome, JobSpec, run_call
from .threads import ThreadExecutor

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

__all__ = ["SparkExecutor", "SparkFrame", "spark_session"]

_current = threading.local()  # .session on the driver thread running a Spark task


class SparkFrame(Dir):
    """A Spark DataFrame a task returned, as the directory of Parquet files it was
    written to; a Spark task that receives it gets the DataFrame back."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"SparkFrame({self.path!r})"

    def to_spark(self, spark: SparkSession | None = None) -> Any:
        """The DataFrame (read with `spark`, default: the running task's session)."""
        return (spark or spark_session()).read.parquet(self.path)


def spark_session() -> SparkSession:
    """The `SparkSession` of the Spark task running on this thread."""
    session = getattr(_current, "session", None)
    if session is None:
        raise LazyflowError(
            "spark_session() is only available inside a task run by a SparkExecutor: give "
            'the task @task(executor="spark") and the scheduler '
            'Scheduler(executors={"spark": SparkExecutor(master="local[2]")}).'
        )
    return session


_FRAMES = Walk(is_instance_of(SparkFrame))
_dataframes: list[Walk] = []  # made on first use: pyspark is imported only then


def _dataframe_walk() -> Walk:
    if not _dataframes:
        from pyspark.sql import DataFrame

        _dataframes.append(Walk(is_instance_of(DataFrame)))
    return _dataframes[0]


class SparkExecutor(ThreadExecutor):
    """Runs tasks on driver threads of one Spark application (see the module doc)."""

    name = "spark"
    inline = Inline.NEVER  # a Spark task needs a driver thread with the session set

    def __init__(
        self,
        master: str = "local[2]",
        conf: Mapping[str, Any] | None = None,
        *,
        app_name: str = "lazyflow",
        scratch: str | os.PathLike[str] | None = None,
        max_workers: int = 4,
        session: SparkSession | None = None,
    ) -> None:
        """`max_workers` tasks run at once (each may start many Spark tasks on the
        cluster); `session` uses a session made elsewhere (Databricks) instead of
        building one from `master` and `conf`."""
        super().__init__(max_workers)
        self.master = master
        self.conf = dict(conf or {})
        self.app_name = app_name
        self.scratch = os.fspath(scratch) if scratch is not None else None
        self._session = session
        self._lock = threading.Lock()

    @property
    def session(self) -> SparkSession:
        """The application's session, started on first use."""
        with self._lock:
            if self._session is None:
                self._session = self._build()
            return self._session

    def _build(self) -> SparkSession:
        try:
            from pyspark.sql import SparkSession
        except ImportError as exc:
            raise ExecutorError(
                "SparkExecutor needs pyspark: pip install 'lazyflow[spark]' (and Java 17+)."
            ) from exc
        builder = SparkSession.builder.appName(self.app_name)
        if self.master.startswith("sc://"):
            builder = builder.remote(self.master)
        else:
            builder = builder.master(self.master)
        for key, value in self.conf.items():
            builder = builder.config(key, str(value))
        return builder.getOrCreate()

    def frames_root(self) -> str:
        """Where returned DataFrames are written (`scratch`, else under the current
        directory's ``.lazyflow``)."""
        if self.scratch is not None:
            return self.scratch.rstrip("/")
        return os.path.abspath(os.path.join(".lazyflow", "spark"))

    def submit(
        self, spec: JobSpec, on_start: Callable[[], None] | None = None
    ) -> Future[JobOutcome]:
        if self._pool is None:
            self.start()
        assert self._pool is not None  # for mypy: start() set it
        return self._pool.submit(self._run, spec, on_start)

    def _run(self, spec: JobSpec, on_start: Callable[[], None] | None) -> JobOutcome:
        if on_start is not None:
            on_start()
        try:
            spark = self.session
        except Exception as exc:  # no pyspark, no Java, a master that refuses us
            return JobOutcome(error=_session_error(self, exc))
        _current.session = spark
        context = _context(spark)
        if context is not None:  # cancel() stops this job's Spark jobs by their group
            context.setJobGroup(spec.job_id, f"lazyflow {spec.task.name}", True)
        try:
            args = _FRAMES.replace(spec.args, lambda f: f.to_spark(spark))
            kwargs = _FRAMES.replace(spec.kwargs, lambda f: f.to_spark(spark))
            return run_call(spec.task, args, kwargs, convert=lambda v: self._store(spec, v))
        finally:
            _current.session = None

    def _store(self, spec: JobSpec, value: Any) -> Any:
        """`value` with each DataFrame in it written as Parquet and replaced by its
        `SparkFrame` (``ROOT/JOB_ID/N``: a retry writes over its own attempt)."""
        walk = _dataframe_walk()
        if not walk.contains(value):
            return value
        root, count = f"{self.frames_root()}/{spec.job_id}", [0]

        def write(df: Any) -> SparkFrame:
            path = f"{root}/{count[0]}"
            count[0] += 1
            df.write.mode("overwrite").parquet(path)
            return SparkFrame(path)

        return walk.replace(value, write)

    def shutdown(self, *, cancel: bool = False) -> None:
        """Stop the driver threads (with `cancel`, also the Spark jobs running); the
        session stays up for the next run (`stop` ends the application)."""
        if cancel and self._session is not None:
            context = _context(self._session)
            if context is not None:
                context.cancelAllJobs()
        super().shutdown(cancel=cancel)

    def stop(self) -> None:
        """End the Spark application (the next job starts a new one)."""
        self.shutdown()
        with self._lock:
            if self._session is not None:
                self._session.stop()
                self._session = None


def _context(spark: Any) -> Any:
    """The session's SparkContext; None for Spark Connect, which has none."""
    try:
        return spark.sparkContext
    except Exception:
        return None


def _session_error(executor: SparkExecutor, exc: Exception) -> ExecutorError:
    if isinstance(exc, ExecutorError):
        return exc
    return ExecutorError(
        f"SparkExecutor could not start a Spark session on master {executor.master!r}: "
        f"{type(exc).__name__}: {exc}. Check that Java 17+ is installed (java -version) "
        "and that the master URL and conf are right."
    )
