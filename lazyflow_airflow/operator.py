"""`LazyFlowOperator`: one Airflow task that runs a whole lazyflow workflow.

Airflow keeps what it is good at (scheduling the DAG, retries, the UI, connections) and
lazyflow keeps call-level caching and provenance inside the task. What ``execute()``
does, in order:

1. import the workflow (``"pkg.module:task"`` is imported here, never at DAG parse time)
   and convert its arguments: rendered templates are strings, so ``"9"`` becomes ``9``
   and a path becomes a ``File`` where the workflow's type hints say so, and an Airflow
   ``Asset`` passed as an argument becomes the path it names;
2. find the store: ``db=`` if given, else the Airflow connection ``conn_id`` (type
   ``lazyflow``, default ``lazyflow_default`` when it exists), else lazyflow's own
   resolution (``LAZYFLOW_DB``, the project's ``lazyflow.toml``, ``.lazyflow/``), see
   `lazyflow_core.config.scheduler_settings`;
3. run it with a `Scheduler` tagged with the task instance (dag_id, run_id, task_id,
   try_number, map_index) and a listener that writes job lines to the task log
   (``dry_run=True`` explains instead: nothing runs, the decisions are the result);
4. log a summary table, push ``sched.last_run.to_dict()`` to the XCom key
   ``lazyflow_summary`` (also when the run failed, and a summary with the error when it
   could not even start), emit asset events for the files it wrote (see `assets`), and
   return the result: as it is when it is small plain JSON, else as a reference that
   `load_result` loads back. The call-graph page, if configured, is rendered afterwards.

Errors: a workflow that cannot be imported or called (`WorkflowImportError`,
`ExecutorError`, `ConfigError`, `TaskCallError`, `HashingError`) will fail the same way on
every try, so it raises ``AirflowFailException`` and Airflow does not retry. Everything
else (a task's own exception, a lost database, a killed worker) propagates and Airflow
retries; since every finished call is in the store, the retry re-runs only what failed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException

from lazyflow_airflow import assets
from lazyflow_airflow.lineage import file_paths, operator_lineage, run_datasets
from lazyflow_airflow.links import (
    SUMMARY_XCOM_KEY,
    LazyFlowExecutionLink,
    execution_link,
    publish_viz_later,
    viz_dir,
)
from lazyflow_airflow.reporting import JobLogger, format_decisions, format_summary
from lazyflow_airflow.results import DEFAULT_XCOM_MAX_BYTES, fits_in_xcom, make_ref
from lazyflow_airflow.store import StoreChoice, default_conn_id, resolve_store

if TYPE_CHECKING:
    from airflow.sdk import Context

__all__ = ["LazyFlowOperator", "default_conn_id", "failure_summary"]

# The link of the execution (UI page or published view), for templates and other tasks.
LINK_XCOM_KEY = "lazyflow_viz_url"


class LazyFlowOperator(BaseOperator):
    """Run a lazyflow workflow as one Airflow task.

    :param workflow: the lazyflow task to run: a reference ``"pkg.module:task"`` or
        ``"path/to/workflow.py:task"`` (imported when the task runs), or a ``Task``.
    :param op_args: positional arguments of the workflow (templated).
    :param op_kwargs: keyword arguments of the workflow (templated).
    :param db: store URL (templated). ``None`` means the Airflow connection `conn_id`.
    :param conn_id: Airflow connection of type ``lazyflow`` that holds the store URL.
        ``None`` means ``[lazyflow] conn_id`` (default ``lazyflow_default``) if it exists,
        else lazyflow's own default (``LAZYFLOW_DB``, the project's ``lazyflow.toml``,
        or ``.lazyflow/lazyflow.db``).
    :param executor: lazyflow executor: ``"threads"`` (default), ``"processes"``, a name
        from the project's ``lazyflow.toml`` or an executor object. The Airflow executor
        of this task is ``airflow_executor``.
    :param max_workers: lazyflow worker threads or processes (default: lazyflow's).
    :param tags: extra tags of the lazyflow execution (the task instance is always tagged).
    :param cache: ``False`` re-runs every call (results are still recorded).
    :param dry_run: explain what would run and why, running nothing (``lazyflow
        explain``): the XCom ``return_value`` holds the counts and the decisions.
    :param emit_assets: attach an asset event for every File/Dir in the result to the
        outlet ``AssetAlias("lazyflow.<dag_id>.<task_id>")`` (see `assets`).
    :param inner_assets: also emit asset events for the files inner calls wrote.
    :param xcom_max_bytes: plain-JSON results up to this size are pushed as they are;
        larger or non-JSON results are pushed as a reference.
    :param max_job_lines: job lines (started, done, cached) written to the task log at
        INFO before further ones go to DEBUG; failures are always logged, at ERROR.
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
        dry_run: bool = False,
        emit_assets: bool = True,
        inner_assets: bool = False,
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
        # Not `self.dry_run`: BaseOperator.dry_run() renders the templates of a task.
        self.lazyflow_dry_run = dry_run
        self.emit_assets = emit_assets
        self.inner_assets = inner_assets
        self.xcom_max_bytes = xcom_max_bytes
        self.max_job_lines = max_job_lines
        self._declare_assets()
        self.lazyflow_execution_id: str | None = None
        self.lazyflow_reported = False
        self.lazyflow_link = ""
        self._scheduler: Any = None
        self._summary: Any = None
        self._store_url: str | None = None
        self._lineage_inputs: list[str] = []
        self._lineage_outputs: list[str] = []

    def _declare_assets(self) -> None:
        """Files and Assets among the arguments become inlets; the alias an outlet."""
        self.inlets = [*self.inlets, *assets.inlet_assets([self.op_args, self.op_kwargs])]
        if self.emit_assets or self.inner_assets:
            from airflow.sdk import AssetAlias

            self.outlets = [*self.outlets, AssetAlias(self.asset_alias)]

    @property
    def asset_alias(self) -> str:
        """Name of the `AssetAlias` outlet this task's asset events are attached to."""
        return assets.alias_name(self.dag_id, self.task_id)

    # -- execution -----------------------------------------------------------------
    def execute(self, context: Context) -> Any:
        self.lazyflow_reported = False
        try:
            if self.lazyflow_dry_run:
                return self._explain(context)
            return self._run(context)
        except BaseException as exc:
            if not self.lazyflow_reported:  # it failed before a run existed
                self._push_summary(context, failure_summary(exc))
            raise

    def _run(self, context: Context) -> Any:
        from lazyflow_core import HashingError, TaskCallError

        workflow, args, kwargs, store = self._prepare()
        tags = self._tags(context)
        sched = self._scheduler_for(store, [JobLogger(self.log, self.max_job_lines)])
        self._scheduler = sched
        self._lineage_inputs = file_paths([args, kwargs])
        self.log.info(
            "lazyflow: running %s with store %s, tags %s",
            _workflow_name(workflow),
            store.label,
            tags,
        )
        finished = False
        try:
            expr = workflow(*args, **kwargs)
            result = sched.run(expr, cache=self.cache, tags=tags)
            finished = True
        except (TaskCallError, HashingError) as exc:
            raise AirflowFailException(
                f"lazyflow workflow {_workflow_name(workflow)} rejected its arguments "
                f"(retrying cannot help): {exc}"
            ) from exc
        finally:
            self._scheduler = None
            self._store_url = _store_url(sched)
            self._report(context, sched, store)
            _close(sched, cancel=not finished)

        self._lineage_outputs = file_paths(result)
        if self.emit_assets or self.inner_assets:
            self._emit_assets(context, self._lineage_outputs)
        self._publish_view(sched)
        if not self.do_xcom_push:
            return None
        return self._to_xcom(result, self._store_url or "", store.conn_id)

    def _prepare(self) -> tuple[Any, tuple[Any, ...], dict[str, Any], StoreChoice]:
        """The workflow, its converted arguments and the store; permanent errors fail."""
        from lazyflow_core import LazyflowError, WorkflowImportError
        from lazyflow_core.integration import coerce_arguments

        try:
            workflow = self._load_workflow()
        except WorkflowImportError as exc:
            raise AirflowFailException(f"lazyflow workflow cannot be imported: {exc}") from exc
        raw_args = assets.assets_to_paths(list(self.op_args))
        raw_kwargs = assets.assets_to_paths(dict(self.op_kwargs))
        try:
            args, kwargs = coerce_arguments(workflow, raw_args, raw_kwargs)
        except LazyflowError as exc:
            raise AirflowFailException(
                f"lazyflow workflow {_workflow_name(workflow)} rejected its arguments "
                f"(retrying cannot help): {exc}"
            ) from exc
        store = resolve_store(self.db, self.conn_id, self.lazyflow_executor, self.log)
        return workflow, args, kwargs, store

    def _scheduler_for(self, store: StoreChoice, listeners: list[Any]) -> Any:
        from lazyflow_core import ExecutorError, Scheduler
        from lazyflow_core.integration import ConfigError

        options: dict[str, Any] = {"listeners": listeners, **store.scheduler_kwargs}
        if self.max_workers is not None:
            options["max_workers"] = self.max_workers
        try:
            return Scheduler(**options)
        except (ExecutorError, ConfigError) as exc:
            raise AirflowFailException(f"lazyflow executor is misconfigured: {exc}") from exc

    def _explain(self, context: Context) -> Any:
        """``dry_run=True``: what would run and why, as the log and the XCom result."""
        workflow, args, kwargs, store = self._prepare()
        sched = self._scheduler_for(store, [])
        try:
            # a dry run never unpickles code from the store: cached results are read as
            # data (built-ins, File, Dir) only, as `lazyflow explain` does
            decisions = sched.explain(workflow(*args, **kwargs), cache=self.cache, values="data")
        finally:
            sched.close()
        self.lazyflow_reported = True  # no execution, hence no link and no summary
        self.log.info(
            "lazyflow: dry run of %s (nothing runs)\n%s",
            _workflow_name(workflow),
            format_decisions(decisions),
        )
        from lazyflow_core import decision_totals

        counts = decision_totals(decisions)  # predicted calls apart, never "cached"
        # `reason` is a StrEnum: plain str, or the XCom check sees no JSON and drops rows.
        rows = [{**dataclasses.asdict(d), "reason": str(d.reason)} for d in decisions]
        explained = {**counts, "decisions": rows}
        if not fits_in_xcom(explained, self.xcom_max_bytes):
            shown = [r for r in rows if r["action"] != "cached"][:1000]
            explained = {**counts, "decisions": shown, "decisions_left_out": len(rows) - len(shown)}
        return explained if self.do_xcom_push else None

    def on_kill(self) -> None:
        """Cancel the running workflow: no new job starts, running jobs are stopped."""
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

    def _report(self, context: Context, sched: Any, store: StoreChoice) -> None:
        """Summary table to the log, summary to XCom, where to look next; never raises."""
        summary = getattr(sched, "last_run", None)
        self._summary = summary
        if summary is None:
            return
        try:
            self.lazyflow_execution_id = str(summary.execution_id)
            text = format_summary(summary)
            if summary.status == "done":
                self.log.info("%s", text)
            else:
                self.log.error("%s", text)
            self._push_summary(context, summary.to_dict())
            self.log.info(
                "lazyflow: inspect it with: %s",
                store.inspect_command(self.lazyflow_execution_id, self._store_url),
            )
            self.lazyflow_link = execution_link(self.lazyflow_execution_id, store.ui_url)
            if self.lazyflow_link:
                self.log.info("lazyflow: execution page at %s", self.lazyflow_link)
                context["ti"].xcom_push(key=LINK_XCOM_KEY, value=self.lazyflow_link)
        except Exception:  # reporting must not hide the run's own outcome
            self.log.exception("lazyflow: could not report the run summary")

    def _push_summary(self, context: Context, summary: dict[str, Any]) -> None:
        try:
            context["ti"].xcom_push(key=SUMMARY_XCOM_KEY, value=summary)
        except Exception:
            self.log.exception("lazyflow: could not push the run summary to XCom")
        self.lazyflow_reported = True

    def _emit_assets(self, context: Context, result_paths: list[str]) -> None:
        # path -> (task, hash) of the calls of this run that wrote it. A parent returning a
        # child's File lists it too; jobs come in start order, so the innermost call wins.
        written: dict[str, tuple[str, str | None]] = {}
        for f in self._execution_files() if (result_paths or self.inner_assets) else []:
            wanted = self.inner_assets or f.path in result_paths
            if f.role == "output" and not f.cached and wanted:
                written[f.path] = (f.task_name, f.file_hash)
        try:
            uris = assets.emit_asset_events(
                context["outlet_events"],
                self.asset_alias,
                result_paths,
                written,
                execution_id=self.lazyflow_execution_id or "",
                inner=self.inner_assets,
            )
        except Exception:
            self.log.warning("lazyflow: could not emit asset events", exc_info=True)
            return
        if uris:
            self.log.info(
                "lazyflow: asset events for %d files (alias %r): %s",
                len(uris),
                self.asset_alias,
                ", ".join(uris[:20]) + (" ..." if len(uris) > 20 else ""),
            )

    def _execution_files(self) -> list[Any]:
        """Files the run's calls read and wrote, from the store (one query)."""
        if not (self.lazyflow_execution_id and self._store_url):
            return []
        from lazyflow_core.integration import Provenance

        try:
            with Provenance(self._store_url) as prov:
                return prov.execution_files(self.lazyflow_execution_id)
        except Exception:
            self.log.warning("lazyflow: could not read the files of the run", exc_info=True)
            return []

    def _publish_view(self, sched: Any) -> None:
        """Render the HTML call graph into ``[lazyflow] viz_dir``, after the task."""
        folder = viz_dir()
        if folder and self.lazyflow_execution_id and self._store_url:
            self.log.info("lazyflow: rendering the call graph into %s after the task", folder)
            publish_viz_later(self.lazyflow_execution_id, self._store_url, folder, self.log)

    def _to_xcom(self, result: Any, store_url: str, conn_id: str | None) -> Any:
        from lazyflow_airflow.hooks import redact_url

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
            from lazyflow_core.integration import IntegrationError

            raise IntegrationError(
                "lazyflow: the result is not plain JSON and the run reported no result hash "
                "(RunSummary.result_hash), so no reference can be pushed; return "
                "JSON-friendly data or set do_xcom_push=False."
            )
        return str(value_hash)

    # -- OpenLineage -----------------------------------------------------------------
    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """Files read from outside as inputs; result and inner files as outputs."""
        inputs, outputs = run_datasets(
            self._lineage_inputs, self._lineage_outputs, self._execution_files()
        )
        return operator_lineage(inputs, outputs, self.lazyflow_execution_id)


def failure_summary(exc: BaseException) -> dict[str, Any]:
    """The ``lazyflow_summary`` of a run that failed before it started."""
    from lazyflow_core import RunSummary

    cause = exc.__cause__ if isinstance(exc, AirflowFailException) and exc.__cause__ else exc
    summary = RunSummary(execution_id="", status="failed", error=f"{type(cause).__name__}: {cause}")
    data = summary.to_dict()
    data["execution_id"] = None
    return data


def _check_workflow(workflow: Any) -> None:
    """A bad `workflow` fails when the DAG is parsed, naming the argument and the fix
    (the engine's error classes are imported only then: parsing a DAG stays light)."""
    if isinstance(workflow, str):
        module, sep, name = workflow.rpartition(":")
        if not sep or not module or not name:
            from lazyflow_core.integration import IntegrationValueError

            raise IntegrationValueError(
                f"LazyFlowOperator(workflow={workflow!r}): a workflow reference is "
                "'package.module:task' or 'path/to/workflow.py:task'; pass one of those, "
                "or the lazyflow Task itself."
            )
    elif not callable(workflow):
        from lazyflow_core.integration import IntegrationTypeError

        raise IntegrationTypeError(
            f"LazyFlowOperator(workflow={workflow!r}): expected a lazyflow Task or a "
            "'package.module:task' reference, not a "
            f"{type(workflow).__name__}; pass the @task function or its reference."
        )


def _workflow_name(workflow: Any) -> str:
    return str(getattr(workflow, "name", None) or getattr(workflow, "__qualname__", workflow))


def _store_url(sched: Any) -> str | None:
    """The URL the scheduler opened (db=None resolves to LAZYFLOW_DB or the default)."""
    store = getattr(sched, "_store", None)
    url = getattr(store, "url", None)
    return str(url) if url is not None else None


def _close(sched: Any, *, cancel: bool) -> None:
    """Release the scheduler's pools and store connections.

    After a failed or interrupted run (an Airflow execution timeout raises inside
    ``Scheduler.run``), jobs may still be running: stop them rather than wait, so a
    killed Airflow task leaves no worker processes behind.
    """
    sched.close(cancel=cancel)
