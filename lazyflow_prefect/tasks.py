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
import os
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
from prefect import Task
from prefect.artifacts import (
    acreate_markdown_artifact,
    acreate_table_artifact,
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

from lazyflow_prefect.blocks import LazyFlowStore, is_block_reference, mask_url
from lazyflow_prefect.report import JobCollector, RunReport, artifact_key

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
        new = super().with_options(**options)
        new.__class__ = type(self)
        return new  # type: ignore[return-value]


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
    return f"lazyflow {workflow_label(parameters.get('workflow'))}"


def workflow_label(workflow: Any) -> str:
    """A short human name for a workflow argument (a Task or a reference string)."""
    if isinstance(workflow, str):  # "path/to/wf.py:main" -> "wf.main", "pkg.mod:main" -> same
        return workflow.rsplit("/", 1)[-1].replace(".py:", ":").replace(":", ".")
    return str(getattr(workflow, "name", None) or getattr(workflow, "__name__", workflow))


# -- one run --------------------------------------------------------------------------


class WorkflowRun:
    """Everything one `run_lazyflow` call needs, set up before the scheduler starts."""

    def __init__(
        self,
        workflow: Any,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        *,
        db: Any,
        executor: Any,
        tags: Mapping[str, Any] | None,
    ) -> None:
        self.task = load_workflow(workflow)
        self.name = str(getattr(self.task, "name", workflow_label(workflow)))
        self.args = args
        self.kwargs = kwargs
        self.db, self.db_display = resolve_db(db)
        self.executor = executor
        self.logger = run_logger()
        self.collector = JobCollector(self.logger)
        self.prefect_ids = prefect_run_ids()
        self.tags = {**{str(k): str(v) for k, v in (tags or {}).items()}, **self.prefect_ids}
        self.scheduler: Any = None
        self.started: float | None = None

    def execute(self) -> Any:
        """Build the scheduler and run the workflow; the caller publishes the report."""
        from lazyflow_core import Scheduler

        options: dict[str, Any] = {"db": self.db, "listeners": [self.collector]}
        if self.executor is not None:
            options["executor"] = self.executor
        self.started = time.perf_counter()
        self.logger.info(
            "lazyflow %s: starting (store %s)", self.name, self.db_display or "default"
        )
        expression = self.task(*self.args, **self.kwargs)  # checks the arguments
        self.scheduler = Scheduler(**options)
        try:
            return self.scheduler.run(expression, tags=self.tags)
        except BaseException:
            # A Prefect timeout or cancellation interrupts this thread: stop the workers too.
            with contextlib.suppress(Exception):
                self.scheduler.cancel()
            raise
        finally:
            close_scheduler(self.scheduler)

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
            table_key=artifact_key(self.name, "jobs"),
            prefect={k: v for k, v in prefect_rows.items() if v},
        )

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
                key=artifact_key(self.name),
                description=f"lazyflow run summary of {self.name}",
            )
            create_table_artifact(
                table=self.collector.rows(),
                key=artifact_key(self.name, "jobs"),
                description=f"lazyflow jobs of {self.name}",
            )
        except Exception as exc:  # artifacts are a report, never a reason to fail the run
            self.logger.warning("could not publish lazyflow artifacts: %s", exc)

    async def apublish(self, report: RunReport) -> None:
        if not in_prefect_run():
            return
        try:
            await acreate_markdown_artifact(
                markdown=report.markdown(),
                key=artifact_key(self.name),
                description=f"lazyflow run summary of {self.name}",
            )
            await acreate_table_artifact(
                table=self.collector.rows(),
                key=artifact_key(self.name, "jobs"),
                description=f"lazyflow jobs of {self.name}",
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
        **kwargs: keyword arguments of the workflow task. ``db``, ``executor`` and ``tags``
            are taken by this task: pass workflow parameters with those names positionally.
    """
    run = WorkflowRun(workflow, args, kwargs, db=db, executor=executor, tags=tags)
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
    return _finish(report, value, _run_lazyflow)


async def _arun_lazyflow(
    workflow: Any,
    *args: Any,
    db: Any = None,
    executor: Any = None,
    tags: Mapping[str, Any] | None = None,
    **kwargs: Any,
) -> Any:
    """Async twin of `run_lazyflow` for async flows; the workflow runs in a worker thread
    so the event loop stays free. Same arguments and behaviour."""
    # Setting up may import the workflow module and load a block: keep it off the loop.
    run = await asyncio.to_thread(
        WorkflowRun, workflow, args, kwargs, db=db, executor=executor, tags=tags
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


def resolve_db(db: Any) -> tuple[Any, str | None]:
    """What to hand the scheduler for ``db``, and how to show it (password masked)."""
    if is_block_reference(db):
        db = LazyFlowStore.load(db.split("/", 1)[1])
    if isinstance(db, LazyFlowStore):
        return db.get_url(), db.display_url()
    if hasattr(db, "get_secret_value"):  # a pydantic SecretStr
        url = db.get_secret_value()
        return url, mask_url(url)
    if isinstance(db, str):
        return db, mask_url(db)
    if db is None:
        url = os.environ.get("LAZYFLOW_DB")
        if url:
            return None, mask_url(url)
        path = os.path.abspath(os.path.join(".lazyflow", "lazyflow.db"))
        return None, f"sqlite:///{path}"
    return db, None  # a store object: the scheduler knows what to do with it


def run_logger() -> logging.Logger | logging.LoggerAdapter[Any]:
    """The Prefect run logger inside a flow or task run, else ``lazyflow.prefect``."""
    try:
        return get_run_logger()
    except MissingContextError:
        return logging.getLogger(LOGGER_NAME)


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
