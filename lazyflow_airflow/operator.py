"""`LazyFlowOperator`: one Airflow task that runs a whole lazyflow workflow.

Airflow keeps what it is good at (scheduling the DAG, retries, the UI, connections) and
lazyflow keeps call-level caching and provenance inside the task. What ``execute()``
does, in order:

1. import the workflow (``"pkg.module:task"`` is imported here, never at DAG parse time);
2. find the store: ``db=`` if given, else the Airflow connection ``conn_id`` (type
   ``lazyflow``, default ``lazyflow_default`` when it exists), else lazyflow's default;
3. run it with a `Scheduler` tagged with the task instance (dag_id, run_id, task_id,
   try_number, map_index) and a listener that writes job lines to the task log;
4. log a summary table, push ``sched.last_run.to_dict()`` to the XCom key
   ``lazyflow_summary`` (also when the run failed), and return the result: as it is when
   it is small plain JSON, else as a reference that `load_result` loads back.

Errors: a workflow that cannot be imported or called (`WorkflowImportError`, `ExecutorError`,
`TaskCallError`, `HashingError`) will fail the same way on every try, so it raises
``AirflowFailException`` and Airflow does not retry. Everything else (a task's own
exception, a lost database, a killed worker) propagates and Airflow retries; since every
finished call is in the store, the retry re-runs only what failed.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException, AirflowNotFoundException

from lazyflow_airflow.hooks import DEFAULT_CONN_ID, LazyFlowHook, redact_url
from lazyflow_airflow.lineage import file_paths, operator_lineage
from lazyflow_airflow.links import (
    SUMMARY_XCOM_KEY,
    LazyFlowExecutionLink,
    publish_viz,
    viz_dir,
    viz_url,
)
from lazyflow_airflow.reporting import JobLogger, format_summary
from lazyflow_airflow.results import DEFAULT_XCOM_MAX_BYTES, fits_in_xcom, make_ref

if TYPE_CHECKING:
    from airflow.sdk import Context

VIZ_URL_XCOM_KEY = "lazyflow_viz_url"


def default_conn_id() -> str:
    """Airflow config ``[lazyflow] conn_id``, else ``lazyflow_default``."""
    from airflow.sdk import conf

    return conf.get("lazyflow", "conn_id", fallback=DEFAULT_CONN_ID) or DEFAULT_CONN_ID


class LazyFlowOperator(BaseOperator):
    """Run a lazyflow workflow as one Airflow task.

    :param workflow: the lazyflow task to run: a reference ``"pkg.module:task"`` or
        ``"path/to/workflow.py:task"`` (imported when the task runs), or a ``Task``.
    :param op_args: positional arguments of the workflow (templated).
    :param op_kwargs: keyword arguments of the workflow (templated).
    :param db: store URL (templated). ``None`` means the Airflow connection `conn_id`.
    :param conn_id: Airflow connection of type ``lazyflow`` that holds the store URL.
        ``None`` means ``[lazyflow] conn_id`` (default ``lazyflow_default``) if it exists,
        else lazyflow's own default (``LAZYFLOW_DB`` or ``.lazyflow/lazyflow.db``).
    :param executor: lazyflow executor: ``"threads"`` (default), ``"processes"`` or an
        executor object. The Airflow executor of this task is ``airflow_executor``.
    :param max_workers: lazyflow worker threads or processes (default: lazyflow's).
    :param tags: extra tags of the lazyflow execution (the task instance is always tagged).
    :param cache: ``False`` re-runs every call (results are still recorded).
    :param xcom_max_bytes: plain-JSON results up to this size are pushed as they are;
        larger or non-JSON results are pushed as a reference.
    :param max_job_lines: job lines written to the task log before they are left out.
    :param airflow_executor: Airflow's ``executor=`` argument of BaseOperator.
    """

    template_fields: Sequence[str] = ("op_args", "op_kwargs", "db")
    template_fields_renderers: ClassVar[dict[str, str]] = {
        "op_args": "json",
        "op_kwargs": "json",
    }
    operator_extra_links = (LazyFlowExecutionLink(),)
    ui_color = "#e3f1df"

    def __init__(
        self,
        *,
        workflow: str | Callable[..., Any],
        op_args: Sequence[Any] | None = None,
        op_kwargs: Mapping[str, Any] | None = None,
        db: str | None = None,
        executor: Any = None,
        tags: Mapping[str, Any] | None = None,
        conn_id: str | None = None,
        max_workers: int | None = None,
        cache: bool = True,
        xcom_max_bytes: int = DEFAULT_XCOM_MAX_BYTES,
        max_job_lines: int = 1000,
        airflow_executor: str | None = None,
        **kwargs: Any,
    ) -> None:
        if airflow_executor is not None:
            kwargs["executor"] = airflow_executor
        super().__init__(**kwargs)
        _check_workflow(workflow)
        self.workflow = workflow
        self.op_args: Collection[Any] = list(op_args or [])
        self.op_kwargs: Mapping[str, Any] = dict(op_kwargs or {})
        self.db = db
        self.conn_id = conn_id
        # Not `self.executor`: BaseOperator.executor names the *Airflow* executor.
        self.lazyflow_executor = executor
        self.max_workers = max_workers
        self.lazyflow_tags = dict(tags or {})
        self.cache = cache
        self.xcom_max_bytes = xcom_max_bytes
        self.max_job_lines = max_job_lines
        self.lazyflow_execution_id: str | None = None
        self._scheduler: Any = None
        self._summary: Any = None
        self._lineage_inputs: list[str] = []
        self._lineage_outputs: list[str] = []

    # -- execution -----------------------------------------------------------------
    def execute(self, context: Context) -> Any:
        from lazyflow_core import (
            ExecutorError,
            HashingError,
            Scheduler,
            TaskCallError,
            WorkflowImportError,
        )

        try:
            workflow = self._load_workflow()
        except WorkflowImportError as exc:
            raise AirflowFailException(f"lazyflow workflow cannot be imported: {exc}") from exc

        db, conn_id = self._resolve_store()
        tags = self._tags(context)
        scheduler_kwargs: dict[str, Any] = {"listeners": [JobLogger(self.log, self.max_job_lines)]}
        if self.lazyflow_executor is not None:
            scheduler_kwargs["executor"] = self.lazyflow_executor
        if self.max_workers is not None:
            scheduler_kwargs["max_workers"] = self.max_workers
        try:
            sched = Scheduler(db=db, **scheduler_kwargs)
        except ExecutorError as exc:
            raise AirflowFailException(f"lazyflow executor is misconfigured: {exc}") from exc
        self._scheduler = sched
        self._lineage_inputs = file_paths([self.op_args, self.op_kwargs])
        self.log.info(
            "lazyflow: running %s with store %s, tags %s",
            _workflow_name(workflow),
            _store_label(db, conn_id),
            tags,
        )
        finished = False
        try:
            expr = workflow(*self.op_args, **self.op_kwargs)
            result = sched.run(expr, cache=self.cache, tags=tags)
            finished = True
        except (TaskCallError, HashingError) as exc:
            raise AirflowFailException(
                f"lazyflow workflow {_workflow_name(workflow)} rejected its arguments "
                f"(retrying cannot help): {exc}"
            ) from exc
        finally:
            self._scheduler = None
            self._report(context, sched)
            _close(sched, cancel=not finished)

        self._lineage_outputs = file_paths(result)
        if not self.do_xcom_push:
            return None
        # The URL the scheduler resolved (db=None means LAZYFLOW_DB or lazyflow's default).
        return self._to_xcom(result, str(sched.store.url), conn_id)

    def on_kill(self) -> None:
        """Cancel the running workflow: running jobs are stopped, nothing new starts."""
        sched = self._scheduler
        if sched is not None:
            self.log.info("lazyflow: task killed, cancelling the scheduler")
            sched.cancel()

    # -- steps of execute ------------------------------------------------------------
    def _load_workflow(self) -> Callable[..., Any]:
        from lazyflow_core import Task, load_task, task

        if isinstance(self.workflow, str):
            return load_task(self.workflow)
        if isinstance(self.workflow, Task):
            return self.workflow
        # A plain function (from @task.lazyflow) becomes the entry task. DAG files are
        # imported under generated module names, so name it after the DAG instead.
        name = getattr(self.workflow, "__name__", None) or self.task_id
        return task(name=name, namespace=f"airflow.{self.dag_id}")(self.workflow)

    def _resolve_store(self) -> tuple[str | None, str | None]:
        """(store URL or None for lazyflow's default, Airflow connection id used)."""
        if self.db:
            return str(self.db), None
        conn_id = self.conn_id or default_conn_id()
        try:
            return LazyFlowHook(conn_id).get_store_url(), conn_id
        except AirflowNotFoundException:
            if self.conn_id:  # a connection named explicitly must exist
                raise
        self.log.info(
            "lazyflow: no db= and no Airflow connection %r; using lazyflow's default store "
            "(LAZYFLOW_DB, else .lazyflow/lazyflow.db under %s)",
            conn_id,
            os.getcwd(),
        )
        return None, None

    def _tags(self, context: Context) -> dict[str, str]:
        ti = context["ti"]
        airflow_tags = {
            "dag_id": ti.dag_id,
            "run_id": ti.run_id,
            "task_id": ti.task_id,
            "try_number": ti.try_number,
            "map_index": ti.map_index,
        }
        merged = {**self.lazyflow_tags, **airflow_tags}
        return {str(k): str(v) for k, v in merged.items()}

    def _report(self, context: Context, sched: Any) -> None:
        """Summary table to the log, summary and view URL to XCom; never raises."""
        summary = getattr(sched, "last_run", None)
        self._summary = summary
        if summary is None:
            return
        try:
            self.lazyflow_execution_id = str(summary.execution_id)
            self.log.info("%s", format_summary(summary))
            ti = context["ti"]
            ti.xcom_push(key=SUMMARY_XCOM_KEY, value=summary.to_dict())
        except Exception:  # reporting must not hide the run's own outcome
            self.log.exception("lazyflow: could not report the run summary")
            return
        self._publish_view(context, sched, self.lazyflow_execution_id)

    def _publish_view(self, context: Context, sched: Any, execution_id: str) -> None:
        """Write the HTML call graph to ``[lazyflow] viz_dir`` and push its URL."""
        try:
            folder = viz_dir()
            if folder:
                page = publish_viz(execution_id, str(sched.store.url), folder)
                self.log.info("lazyflow: call graph written to %s", page)
            url = viz_url(execution_id)
            if url:
                self.log.info("lazyflow: call graph at %s", url)
                context["ti"].xcom_push(key=VIZ_URL_XCOM_KEY, value=url)
        except Exception:
            self.log.warning("lazyflow: could not publish the call graph", exc_info=True)

    def _to_xcom(self, result: Any, store_url: str, conn_id: str | None) -> Any:
        if fits_in_xcom(result, self.xcom_max_bytes):
            return result
        ref = make_ref(result, self._result_hash(), db=redact_url(store_url), conn_id=conn_id)
        self.log.info(
            "lazyflow: result (%s) is not small plain JSON; pushing reference %s",
            ref["type"],
            ref,
        )
        return ref

    def _result_hash(self) -> str:
        summary = self._summary
        value_hash = getattr(summary, "result_hash", None)
        if not value_hash:
            raise RuntimeError(
                "lazyflow: the result is not plain JSON and the run reported no result hash "
                "(RunSummary.result_hash), so no reference can be pushed; return "
                "JSON-friendly data or set do_xcom_push=False."
            )
        return str(value_hash)

    # -- OpenLineage -----------------------------------------------------------------
    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """File/Dir arguments as inputs, File/Dir in the result as outputs."""
        return operator_lineage(
            self._lineage_inputs, self._lineage_outputs, self.lazyflow_execution_id
        )


def _check_workflow(workflow: Any) -> None:
    if isinstance(workflow, str):
        module, sep, name = workflow.rpartition(":")
        if not sep or not module or not name:
            raise ValueError(
                f"LazyFlowOperator(workflow={workflow!r}): a workflow reference is "
                "'package.module:task' or 'path/to/workflow.py:task'."
            )
    elif not callable(workflow):
        raise TypeError(
            f"LazyFlowOperator(workflow={workflow!r}): expected a lazyflow Task or a "
            "'package.module:task' reference."
        )


def _workflow_name(workflow: Any) -> str:
    return str(getattr(workflow, "name", None) or getattr(workflow, "__qualname__", workflow))


def _store_label(db: str | None, conn_id: str | None) -> str:
    if db is None:
        return "lazyflow default"
    label = redact_url(db)
    return f"{label} (connection {conn_id!r})" if conn_id else label


def _close(sched: Any, *, cancel: bool) -> None:
    """Release the scheduler's pools and store connections.

    After a failed or interrupted run (an Airflow execution timeout raises inside
    ``Scheduler.run``), jobs may still be running: stop them rather than wait, so a
    killed Airflow task leaves no worker processes behind.
    """
    if cancel:
        for executor in getattr(sched, "executors", {}).values():
            executor.shutdown(cancel=True)
    sched.close()
