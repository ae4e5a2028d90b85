"""`explain_lazyflow`: what ``lazyflow explain`` would say, as a Prefect task and artifact.

A dry run from the orchestrator: before a long or costly workflow, a flow can ask which
calls would be reused and which would run, and why (new task, code changed, argument or
file changed), without running any of them. The task returns the counts and the
decisions as plain data and publishes them as a markdown artifact
(``lazyflow-<workflow>-explain``). Cached results are read as data only, as
``lazyflow explain`` reads them (a shared store's pickles may be planted); with
``load_values=True`` values signed with the store's key are unpickled too, to explain
past them.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from lazyflow_prefect.report import decisions_markdown
from lazyflow_prefect.tasks import (
    LazyflowPrefectTask,
    WorkflowRun,
    _task_run_name,
    close_scheduler,
    in_prefect_run,
)


def _explain_lazyflow(
    workflow: Any,
    *args: Any,
    db: Any = None,
    executor: Any = None,
    load_values: bool = False,
    **kwargs: Any,
) -> dict[str, Any]:
    """Explain what running the workflow would do, running nothing.

    Same `workflow`, arguments, `db` and `executor` as `run_lazyflow`. Returns
    ``{"run": n, "cached": n, "unknown": n, "predicted": n, "predicted_run": n,
    "predicted_cached": n, "decisions": [...]}``, one decision per call:
    ``task_name``, ``call``, ``action`` (``run``/``cached``/``unknown``), ``reason``,
    ``detail``, ``diff`` (of the code, when it changed) and ``predicted``. The totals
    ``run``/``cached``/``unknown`` count the calls the run reaches; ``predicted`` counts the
    calls recorded below ones that would run, judged from their previous run, apart.
    """
    from lazyflow_core import Scheduler

    run = WorkflowRun(workflow, args, kwargs, db=db, executor=executor, tags=None)
    expression = run.prepare()
    options: dict[str, Any] = {"db": run.db, "executor": run.executor}
    if run.signing_key is not None:
        options["signing_key"] = run.signing_key
    scheduler = Scheduler(**options)
    try:
        decisions = scheduler.explain(expression, values="signed" if load_values else "data")
    finally:
        close_scheduler(scheduler)
    rows = [{**dataclasses.asdict(d), "reason": str(d.reason)} for d in decisions]
    from lazyflow_core import decision_totals

    counts = decision_totals(decisions)  # predicted calls apart, never "cached"
    run.logger.info(
        "lazyflow %s, dry run: %d calls would run, %d cached, %d unknown, %d predicted "
        "below them (nothing ran)",
        run.name,
        counts["run"],
        counts["cached"],
        counts["unknown"],
        counts["predicted"],
    )
    if in_prefect_run():
        try:
            create_markdown_artifact(
                markdown=decisions_markdown(run.name, counts, rows),
                key=run.keys.explain,
                description=f"lazyflow dry run of {run.name}",
            )
        except Exception as exc:  # a report, never a reason to fail
            run.logger.warning("could not publish the lazyflow dry run: %s", exc)
    return {**counts, "decisions": rows}


def _explain_run_name(parameters: dict[str, Any]) -> str:
    return "explain " + _task_run_name(parameters)


_OPTIONS: dict[str, Any] = {
    "cache_policy": NO_CACHE,  # a dry run reads the store as it is now, every time
    "persist_result": False,
    "task_run_name": _explain_run_name,
}

explain_lazyflow: LazyflowPrefectTask[..., dict[str, Any]] = LazyflowPrefectTask(
    fn=_explain_lazyflow,
    name="explain_lazyflow",
    description="Dry run of a lazyflow workflow: what would run and why; nothing runs.",
    **_OPTIONS,
)
explain_lazyflow.__doc__ = _explain_lazyflow.__doc__
