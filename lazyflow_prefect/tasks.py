"""`run_lazyflow` and `arun_lazyflow`: a whole lazyflow workflow as one Prefect task.

Prefect schedules, retries and shows the task; lazyflow runs the dynamic graph inside it
and caches every call. One task run does this:

1. load the workflow (a lazyflow `Task`, or ``"pkg.module:task"`` / ``"path/wf.py:task"``
   through `lazyflow_core.load_task`) and resolve ``db`` (URL, `LazyFlowStore` block,
   ``"lazyflow-store/<name>"`` block reference, store object or None);
2. build a `Scheduler` whose listener (`report.JobCollector`) logs each job to the Prefect
   run logger and keeps one row per job;
3. run ``workflow(*args, **kwargs)`` tagged with the Prefect flow run id, flow name and
   task run id, so ``lazyflow log`` can be traced back to the Prefect run;
4. publish a markdown summary and a job table as artifacts with stable keys, log a
   summary line, and end in ``Completed("120 jobs, 118 cached")``.

Prefect's result caching and persistence are off: lazyflow owns caching. A Prefect retry
(``run_lazyflow.with_options(retries=2)``) runs the workflow again, and lazyflow's cache
turns that into "re-run only the calls that failed". Errors that a retry cannot fix (a bad
workflow reference, wrong arguments, an unhashable argument) are not retried.

The final state message needs the task function to return a `Completed` state, and Prefect
hands a returned state to a direct caller as is; `LazyflowPrefectTask.__call__` unwraps it
so ``run_lazyflow(...)`` returns the workflow's value like any task.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
from prefect import Task
from prefect.artifacts import (
    acreate_link_artifact,
    acreate_markdown_artifact,
    acreate_table_artifact,
    create_link_artifact,
    create_markdown_artifact,
    create_table_artifact,
)
from prefect.cache_policies import NO_CACHE
from prefect.context import FlowRunContext, TaskRunContext
from prefect.exceptions import MissingContextError
from prefect.logging import get_run_logger
from prefect.results import ResultRecord
from prefect.states import Completed, State
from typing_extensions import ParamSpec

from lazyflow_prefect.assets import declare_output_assets
from lazyflow_prefect.blocks import LazyFlowStore, is_block_reference, mask_url
from lazyflow_prefect.inner import InnerTaskRuns, inner_mode
from lazyflow_prefect.report import ArtifactKeys, JobCollector, RunReport, call_preview

if TYPE_CHECKING:
    from prefect.client.schemas.objects import TaskRun

P = ParamSpec("P")
R = TypeVar("R")

LOGGER_NAME = "lazyflow.prefect"

# Tag keys recorded on each lazyflow execution (see `lazyflow log`).
TAG_FLOW_RUN_ID = "prefect.flow_run_id"
TAG_FLOW_RUN_NAME = "prefect.flow_run_name"
TAG_FLOW_NAME = "prefect.flow_name"
TAG_TASK_RUN_ID = "prefect.task_run_id"
TAG_DEPLOYMENT_ID = "prefect.deployment_id"


# -- the Prefect task class ------------------------------------------------------------


class LazyflowPrefectTask(Task[P, R]):
    """A Prefect `Task` whose direct calls return the workflow's value.

    The task function returns ``Completed(message=..., data=value)`` so the task run's final
    state says how many jobs ran and how many were cached. Futures and ``return_state=True``
    already unwrap such a state; a direct call would hand the state itself back, so
    `__call__` unwraps it. `with_options` keeps the class.
    """

    def __call__(  # type: ignore[override]
        self,
        *args: Any,
        return_state: bool = False,
        wait_for: Any = None,
        **kwargs: Any,
    ) -> Any:
        parent: Any = super()
        result = parent.__call__(*args, return_state=return_state, wait_for=wait_for, **kwargs)
        if return_state:
            return result
        if self.isasync:
            return _unwrap_later(result)
        return _unwrap(result)

    def with_options(self, **options: Any) -> LazyflowPrefectTask[P, R]:
        new: Any = super().with_options(**options)
        new.__class__ = type(self)
        new.lazyflow_mapped = self.lazyflow_mapped
        return new

    # Set on the copy `map` submits: its runs publish artifacts under per-argument keys.
    lazyflow_mapped = False

    def map(
        self,
        *args: Any,
        return_state: bool = False,
        wait_for: Any = None,
        deferred: bool = False,
        **kwargs: Any,
    ) -> Any:
        """Map every argument of the workflow (positional ones too) like Prefect maps a
        task's parameters: one run per element, see `lazyflow_prefect.mapping`."""
        from prefect.futures import PrefectFutureList
        from prefect.utilities.callables import get_call_parameters

        from lazyflow_prefect.mapping import expand

        if "workflow" in kwargs:
            args = (kwargs.pop("workflow"), *args)
        calls, dependencies = expand(args, kwargs)
        variant = self.with_options()
        variant.lazyflow_mapped = True
        if deferred:
            futures = PrefectFutureList(  # type: ignore[abstract]
                variant.apply_async(args=c.args, kwargs=c.kwargs, wait_for=wait_for) for c in calls
            )
        else:
            task_runner = getattr(FlowRunContext.get(), "task_runner", None)
            if task_runner is None:
                from lazyflow_core.integration import IntegrationError

                raise IntegrationError(
                    "run_lazyflow.map: no flow run to map in; call it inside a @flow, or "
                    "pass deferred=True to submit the runs for task workers."
                )
            futures = PrefectFutureList(  # type: ignore[abstract]
                task_runner.submit(
                    task=variant,
                    parameters=get_call_parameters(variant.fn, c.args, c.kwargs),
                    wait_for=wait_for,
                    dependencies=dependencies,
                )
                for c in calls
            )
        if not return_state:
            return futures
        states = []
        for future in futures:
            future.wait()
            states.append(future.state)
        return states


def _unwrap(result: Any) -> Any:
    if isinstance(result, State):
        if isinstance(result.data, ResultRecord):
            return result.data.result
        return result.result()
    return result


async def _unwrap_later(result: Any) -> Any:
    value = await result
    if isinstance(value, State) and not isinstance(value.data, ResultRecord):
        return await value.aresult()
    return _unwrap(value)


def _no_retry_for_permanent_errors(task: Task[..., Any], task_run: TaskRun, state: State) -> bool:
    """Prefect retry condition: a retry cannot fix a bad reference, bad arguments, an
    unknown executor or a cancelled run, so those fail at once."""
    from lazyflow_core import (
        ExecutorError,
        HashingError,
        RunCancelled,
        TaskCallError,
        TaskResultError,
        WorkflowImportError,
    )

    permanent = (
        WorkflowImportError,
        TaskCallError,
        HashingError,
        TaskResultError,
        ExecutorError,
        RunCancelled,
    )
    return not isinstance(state.data, permanent)


def _task_run_name(parameters: dict[str, Any]) -> str:
    """``lazyflow wf.main(3, day='2024-01-02')``: mapped runs tell themselves apart."""
    label = workflow_label(parameters.get("workflow"))
    preview = call_preview(parameters.get("args", ()), parameters.get("kwargs", {}))
    return f"lazyflow {label}({preview})"


def workflow_label(workflow: Any) -> str:
    """A short human name for a workflow argument (a Task or a reference string)."""
    if isinstance(workflow, str):  # "path/to/wf.py:main" -> "wf.main", "pkg.mod:main" -> same
        return workflow.rsplit("/", 1)[-1].replace(".py:", ":").replace(":", ".")
    return str(getattr(workflow, "name", None) or getattr(workflow, "__name__", workflow))


# -- one run --------------------------------------------------------------------------


class WorkflowRun:
    """Everything one `run_lazyflow` call needs. The constructor cannot fail; loading the
    workflow and resolving the store happen in `execute`, so a bad reference, bad
    arguments or an unknown executor still end in a published summary."""

    def __init__(
        self,
        workflow: Any,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        *,
        db: Any,
        executor: Any,
        tags: Mapping[str, Any] | None,
        inner_task_runs: Any = False,
    ) -> None:
        self.workflow = workflow
        self.task: Any = None
        self.name = workflow_label(workflow)
        self.args = args
        self.kwargs = kwargs
        self.db_argument = db
        self.db: Any = None
        self.db_display: str | None = None
        self.signing_key: str | None = None
        self.ui_base: str | None = None  # a `lazyflow ui` serving the store, if configured
        self.executor = executor
        self.inner_task_runs = inner_task_runs
        self.logger = run_logger()
        self.collector = JobCollector(self.logger)
        self.prefect_ids = prefect_run_ids()
        self.tags = {**{str(k): str(v) for k, v in (tags or {}).items()}, **self.prefect_ids}
        self.keys = ArtifactKeys.of(self.name, args, kwargs, mapped=_in_mapped_run())
        self.scheduler: Any = None
        self.started: float | None = None

    def prepare(self) -> Any:
        """Load the workflow, resolve store and executor (the project's lazyflow.toml
        included), convert text arguments by the type hints; return the expression."""
        from lazyflow_core.integration import coerce_arguments, scheduler_settings

        self.started = time.perf_counter()
        self.task = load_workflow(self.workflow)
        self.name = str(getattr(self.task, "name", self.name))
        self.keys = self.keys.renamed(self.name)
        db, self.db_display, self.signing_key, block_ui = resolve_db(self.db_argument)
        settings = scheduler_settings(db, self.executor)
        self.db = settings.db
        if db is None and self.db_display is None:
            self.db_display = mask_url(str(settings.db))
        self.executor = settings.executor
        config_ui = settings.config.ui.url if settings.config is not None else None
        self.ui_base = (block_ui or config_ui or "").strip() or None
        self.args, self.kwargs = coerce_arguments(self.task, self.args, self.kwargs)
        return self.task(*self.args, **self.kwargs)  # checks the arguments

    def execute(self) -> Any:
        """Build the scheduler and run the workflow; the caller publishes the report."""
        from lazyflow_core import Scheduler

        expression = self.prepare()
        options: dict[str, Any] = {"db": self.db, "listeners": [self.collector]}
        if self.signing_key is not None:
            options["signing_key"] = self.signing_key
        if self.executor is not None:
            options["executor"] = self.executor
        self.logger.info(
            "lazyflow %s: starting (store %s)", self.name, self.db_display or "default"
        )
        mirror = self._mirror()
        if mirror is not None:
            options["listeners"].append(mirror)
        self.scheduler = Scheduler(**options)
        try:
            value = self.scheduler.run(expression, tags=self.tags)
        except BaseException as exc:
            # A Prefect timeout or cancellation interrupts this thread: stop the workers too.
            with contextlib.suppress(Exception):
                self.scheduler.cancel()
            if mirror is not None:
                mirror.close(exc)
            raise
        finally:
            close_scheduler(self.scheduler)
        if mirror is not None:
            mirror.close()
        return value

    def _mirror(self) -> InnerTaskRuns | None:
        """The listener that mirrors inner calls as task runs, if asked for and possible."""
        mode = inner_mode(self.inner_task_runs)
        flow_run_id = self.prefect_ids.get(TAG_FLOW_RUN_ID)
        if mode is None:
            return None
        if flow_run_id is None:
            self.logger.info("lazyflow: inner_task_runs needs a Prefect flow run; none here")
            return None
        task_run_id = self.prefect_ids.get(TAG_TASK_RUN_ID)
        return InnerTaskRuns(
            mode,
            uuid.UUID(flow_run_id),
            uuid.UUID(task_run_id) if task_run_id else None,
            self.logger,
        )

    def report(self, error: BaseException | None = None) -> RunReport:
        summary = getattr(self.scheduler, "last_run", None) if self.scheduler else None
        elapsed = None if self.started is None else time.perf_counter() - self.started
        prefect_rows = {
            "Prefect flow run": self.prefect_ids.get(TAG_FLOW_RUN_ID),
            "Prefect task run": self.prefect_ids.get(TAG_TASK_RUN_ID),
        }
        return RunReport.build(
            self.name,
            summary,
            self.collector,
            error=error,
            seconds=elapsed,
            db=self.db_display,
            table_key=self.keys.table,
            prefect={k: v for k, v in prefect_rows.items() if v},
            ui_base=self.ui_base,
            inspect=self._inspect_command(summary),
        )

    def _inspect_command(self, summary: Any) -> str | None:
        """``lazyflow log ID --db URL`` without the password (from PGPASSWORD then)."""
        from lazyflow_core.integration import inspect_command

        execution_id = getattr(summary, "execution_id", None) or self.collector.execution_id
        if not execution_id or not isinstance(self.db, str):
            return None
        return inspect_command(str(execution_id), self.db)

    def log_report(self, report: RunReport) -> None:
        if report.status == "done":
            self.logger.info(report.log_line())
        else:
            self.logger.error("%s: %s", report.log_line(), report.error or "")
        command = report.log_command()
        if command:
            self.logger.info("inspect it with: %s", command)

    def publish(self, report: RunReport) -> None:
        """Create the summary and job table artifacts (only inside a Prefect run)."""
        if not in_prefect_run():
            return
        try:
            create_markdown_artifact(
                markdown=report.markdown(),
                key=self.keys.summary,
                description=f"lazyflow run summary of {self.name}",
            )
            create_table_artifact(
                table=self.collector.rows(),
                key=self.keys.table,
                description=f"lazyflow jobs of {self.name}",
            )
            if report.ui_url:
                create_link_artifact(
                    link=report.ui_url,
                    link_text=f"{self.name} in lazyflow ui",
                    key=self.keys.ui,
                    description=f"the lazyflow ui page of this run of {self.name}",
                )
        except Exception as exc:  # artifacts are a report, never a reason to fail the run
            self.logger.warning("could not publish lazyflow artifacts: %s", exc)

    async def apublish(self, report: RunReport) -> None:
        if not in_prefect_run():
            return
        try:
            await acreate_markdown_artifact(
                markdown=report.markdown(),
                key=self.keys.summary,
                description=f"lazyflow run summary of {self.name}",
            )
            await acreate_table_artifact(
                table=self.collector.rows(),
                key=self.keys.table,
                description=f"lazyflow jobs of {self.name}",
            )
            if report.ui_url:
                await acreate_link_artifact(
                    link=report.ui_url,
                    link_text=f"{self.name} in lazyflow ui",
                    key=self.keys.ui,
                    description=f"the lazyflow ui page of this run of {self.name}",
                )
        except Exception as exc:
            self.logger.warning("could not publish lazyflow artifacts: %s", exc)


def _finish(report: RunReport, value: Any, fn: Callable[..., Any]) -> Any:
    """Inside our own task run, wrap the value in a state that carries the message."""
    context = TaskRunContext.get()
    if context is not None and context.task.fn is fn:
        return Completed(message=report.state_message(), data=value)
    return value


# -- the task functions ---------------------------------------------------------------


def _run_lazyflow(
    workflow: Any,
    *args: Any,
    db: Any = None,
    executor: Any = None,
    tags: Mapping[str, Any] | None = None,
    inner_task_runs: bool | str = False,
    **kwargs: Any,
) -> Any:
    """Run a lazyflow workflow and return its result.

    Args:
        workflow: a lazyflow task, or a reference ``"pkg.module:task"`` /
            ``"path/to/wf.py:task"``.
        *args: positional arguments of the workflow task.
        db: the lazyflow store: a SQLAlchemy URL, a `LazyFlowStore` block, the name of a
            saved block as ``"lazyflow-store/<name>"``, or None (``LAZYFLOW_DB``, else
            ``sqlite:///.lazyflow/lazyflow.db`` in the working directory).
        executor: lazyflow executor (``"threads"``, ``"processes"`` or an executor object).
        tags: extra tags recorded on the lazyflow execution.
        inner_task_runs: mirror the inner calls as Prefect task runs, nested under this
            one: True or ``"calls"`` (one per call), ``"tasks"`` (one per task name,
            summed), False (none). They are records only: lazyflow runs and caches.
        **kwargs: keyword arguments of the workflow task. ``db``, ``executor``, ``tags``
            and ``inner_task_runs`` are taken by this task: pass workflow parameters with
            those names positionally.
    """
    run = WorkflowRun(
        workflow, args, kwargs, db=db, executor=executor, tags=tags, inner_task_runs=inner_task_runs
    )
    try:
        value = run.execute()
    except BaseException as exc:
        report = run.report(error=exc)
        run.log_report(report)
        run.publish(report)
        raise
    report = run.report()
    run.log_report(report)
    run.publish(report)
    declare_output_assets(value, run.logger)
    return _finish(report, value, _run_lazyflow)


async def _arun_lazyflow(
    workflow: Any,
    *args: Any,
    db: Any = None,
    executor: Any = None,
    tags: Mapping[str, Any] | None = None,
    inner_task_runs: bool | str = False,
    **kwargs: Any,
) -> Any:
    """Async twin of `run_lazyflow` for async flows; the workflow runs in a worker thread
    so the event loop stays free. Same arguments and behaviour."""
    # Setting up may import the workflow module and load a block: keep it off the loop.
    run = await asyncio.to_thread(
        WorkflowRun,
        workflow,
        args,
        kwargs,
        db=db,
        executor=executor,
        tags=tags,
        inner_task_runs=inner_task_runs,
    )
    try:
        value = await asyncio.to_thread(run.execute)
    except BaseException as exc:
        if isinstance(exc, asyncio.CancelledError) and run.scheduler is not None:
            with contextlib.suppress(Exception):
                run.scheduler.cancel()
        report = run.report(error=exc)
        run.log_report(report)
        # After a timeout or cancellation every await is cancelled again: shield the
        # artifacts so the run's report still reaches Prefect.
        with anyio.CancelScope(shield=True):
            await run.apublish(report)
        raise
    report = run.report()
    run.log_report(report)
    await run.apublish(report)
    declare_output_assets(value, run.logger)
    return _finish(report, value, _arun_lazyflow)


_TASK_OPTIONS: dict[str, Any] = {
    # lazyflow owns caching: Prefect must neither cache nor persist the result.
    "cache_policy": NO_CACHE,
    "persist_result": False,
    "retry_condition_fn": _no_retry_for_permanent_errors,
    "task_run_name": _task_run_name,
}

run_lazyflow: LazyflowPrefectTask[..., Any] = LazyflowPrefectTask(
    fn=_run_lazyflow,
    name="run_lazyflow",
    description="Run a lazyflow workflow; lazyflow caches every call inside it.",
    **_TASK_OPTIONS,
)
run_lazyflow.__doc__ = _run_lazyflow.__doc__

arun_lazyflow: LazyflowPrefectTask[..., Any] = LazyflowPrefectTask(
    fn=_arun_lazyflow,
    name="arun_lazyflow",
    description="Run a lazyflow workflow from an async flow.",
    **_TASK_OPTIONS,
)
arun_lazyflow.__doc__ = _arun_lazyflow.__doc__


# -- helpers --------------------------------------------------------------------------


def load_workflow(workflow: Any) -> Any:
    """A lazyflow task from a `Task`, a `Task.partial(...)`, or a ``"module:task"`` /
    ``"file.py:task"`` reference."""
    from lazyflow_core import PartialTask, Task, WorkflowImportError, load_task

    if isinstance(workflow, Task | PartialTask):
        return workflow
    if isinstance(workflow, str):
        return load_task(workflow)
    raise WorkflowImportError(
        f"run_lazyflow: workflow must be a lazyflow task (decorated with @task) or a "
        f"reference like 'pkg.module:task', got {type(workflow).__name__} {workflow!r}. "
        "If this is a Prefect task or a plain function, decorate it with "
        "lazyflow_core.task instead."
    )


def resolve_db(db: Any) -> tuple[Any, str | None, str | None, str | None]:
    """What to hand the scheduler for ``db``, how to show it (password masked), the
    signing key and the ``lazyflow ui`` URL a `LazyFlowStore` block carries (None
    otherwise: lazyflow's own settings apply)."""
    if is_block_reference(db):
        db = LazyFlowStore.load(db.split("/", 1)[1])
    if isinstance(db, LazyFlowStore):
        return db.get_url(), db.display_url(), db.get_signing_key(), db.ui_url
    if hasattr(db, "get_secret_value"):  # a pydantic SecretStr
        url = db.get_secret_value()
        return url, mask_url(url), None, None
    if isinstance(db, str):
        return db, mask_url(db), None, None
    if db is None:  # LAZYFLOW_DB, the project's lazyflow.toml, else .lazyflow/ (config)
        return None, None, None, None
    return db, None, None, None  # a store object: the scheduler knows what to do with it


def run_logger() -> logging.Logger | logging.LoggerAdapter[Any]:
    """The Prefect run logger inside a flow or task run, else ``lazyflow.prefect``."""
    try:
        return get_run_logger()
    except MissingContextError:
        return logging.getLogger(LOGGER_NAME)


def _in_mapped_run() -> bool:
    """True inside a task run that `LazyflowPrefectTask.map` submitted."""
    context = TaskRunContext.get()
    return bool(context is not None and getattr(context.task, "lazyflow_mapped", False))


def in_prefect_run() -> bool:
    return TaskRunContext.get() is not None or FlowRunContext.get() is not None


def prefect_run_ids() -> dict[str, str]:
    """Tags that tie a lazyflow execution to the Prefect run that started it."""
    task_context = TaskRunContext.get()
    flow_context = FlowRunContext.get()
    ids: dict[str, Any] = {}
    if flow_context is not None and flow_context.flow_run is not None:
        flow_run = flow_context.flow_run
        ids[TAG_FLOW_RUN_ID] = flow_run.id
        ids[TAG_FLOW_RUN_NAME] = flow_run.name
        ids[TAG_FLOW_NAME] = flow_context.flow.name if flow_context.flow else None
        ids[TAG_DEPLOYMENT_ID] = flow_run.deployment_id
    else:
        # A task run outside a flow, or a worker process: prefect.runtime knows.
        from prefect.runtime import flow_run as runtime_flow_run

        ids[TAG_FLOW_RUN_ID] = runtime_flow_run.id
        ids[TAG_FLOW_NAME] = runtime_flow_run.flow_name if runtime_flow_run.id else None
    if task_context is not None:
        ids[TAG_TASK_RUN_ID] = task_context.task_run.id
    return {key: str(value) for key, value in ids.items() if value}


def close_scheduler(scheduler: Any) -> None:
    """Release the scheduler's store connections (each task run opens its own)."""
    close = getattr(scheduler, "close", None)
    if callable(close):
        close()
