"""`lazyflow_flow`: a lazyflow task as a Prefect flow with the same parameters.

Prefect derives a flow's parameter schema (the deployment form in the UI, validation and
type coercion of parameters) from the flow function's signature and docstring. The flow
built here has a generated function whose ``__signature__``, annotations and docstring are
the lazyflow task's, and whose body runs the workflow through `run_lazyflow`, so the run
gets the same logs, artifacts and state message as a hand-written flow.

Deployments locate a flow by ``<file>:<function name>``; the generated function is named
``<task name>_flow``, so bind the flow to that name at module level::

    report_flow = lazyflow_flow(report)        # entrypoint "pipeline.py:report_flow"
"""

from __future__ import annotations

import inspect
from typing import Any

from prefect import Flow

from lazyflow_prefect.tasks import load_workflow, run_lazyflow

# Keyword-only workflow parameters with these names cannot be forwarded by keyword.
_RESERVED = frozenset({"workflow", "db", "executor", "tags", "return_state", "wait_for"})


def lazyflow_flow(
    task: Any,
    *,
    db: Any = None,
    executor: Any = None,
    **flow_options: Any,
) -> Flow[..., Any]:
    """Turn a lazyflow task into a Prefect flow with the same parameters.

    Args:
        task: a lazyflow task, or a reference ``"pkg.module:task"``.
        db: the lazyflow store for every run of the flow (URL, `LazyFlowStore` block,
            ``"lazyflow-store/<name>"`` to load a saved block at run time, or None for
            ``LAZYFLOW_DB`` / the default SQLite file).
        executor: lazyflow executor name or object.
        **flow_options: passed to `prefect.flow` (``name``, ``retries``, ``log_prints``,
            ``timeout_seconds``, ...). The name defaults to the task's function name and
            the version to the task's code hash.

    Returns:
        A Prefect `Flow`. Calling it runs the workflow and returns its result.
    """
    workflow = load_workflow(task)
    func = workflow.func
    signature = _resolved_signature(func)
    clashes = sorted(
        name
        for name, param in signature.parameters.items()
        if param.kind is inspect.Parameter.KEYWORD_ONLY and name in _RESERVED
    )
    if clashes:
        raise TypeError(
            f"lazyflow_flow: task {workflow.name!r} has keyword-only parameters {clashes!r} "
            f"that run_lazyflow reserves for itself ({sorted(_RESERVED)!r}); rename them "
            "or make them positional-or-keyword."
        )

    def run_workflow(*args: Any, **kwargs: Any) -> Any:
        bound = signature.bind(*args, **kwargs)
        # Positional where possible, so a parameter called e.g. `db` still reaches the task.
        return run_lazyflow(workflow, *bound.args, db=db, executor=executor, **bound.kwargs)

    fn_name = f"{func.__name__}_flow"
    run_workflow.__name__ = fn_name
    run_workflow.__qualname__ = fn_name
    run_workflow.__module__ = func.__module__
    run_workflow.__doc__ = inspect.getdoc(func) or f"Run the lazyflow workflow {workflow.name}."
    run_workflow.__signature__ = signature  # type: ignore[attr-defined]
    run_workflow.__annotations__ = {
        name: param.annotation
        for name, param in signature.parameters.items()
        if param.annotation is not inspect.Parameter.empty
    }
    flow_options.setdefault("name", func.__name__.replace("_", "-"))
    # The flow's version follows the workflow's code hash, not this module's source.
    flow_options.setdefault("version", str(workflow.hash)[:16])
    return Flow(run_workflow, **flow_options)


def _resolved_signature(func: Any) -> inspect.Signature:
    """The function's signature with string annotations evaluated when possible
    (modules using ``from __future__ import annotations``)."""
    try:
        return inspect.signature(func, eval_str=True)
    except (NameError, TypeError, SyntaxError):
        return inspect.signature(func)
