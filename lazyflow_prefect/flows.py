"""`lazyflow_flow`: a lazyflow task as a Prefect flow with the same parameters.

Prefect derives a flow's parameter schema (the deployment form in the UI, validation and
type coercion of parameters) from the flow function's signature and docstring. The flow
built here has a generated function whose ``__signature__``, annotations and docstring are
the lazyflow task's, and whose body runs the workflow through `run_lazyflow`, so the run
gets the same logs, artifacts and state message as a hand-written flow.

Deployments locate a flow by ``<file>:<function name>``. The generated function belongs
to the module that calls `lazyflow_flow` (not the task's: the task usually lives in a
library module, the flow in a deployment script), and when a deployment is made
(``serve``, ``to_deployment``, ``deploy``) it takes the name the flow is bound to in that
module, so any variable name works::

    nightly = lazyflow_flow(report)            # entrypoint "deploy.py:nightly"

Parameters from a form, ``prefect deployment run -p`` or an automation's template arrive
as JSON, often as strings: ``File``/``Dir`` parameters are path strings in the schema
(and in the form), and the run converts text by the task's type hints
(`lazyflow_core.integration.coerce_arguments`). So that a templated ``"9"`` for an
``int`` reaches that conversion, deployments of these flows default to
``enforce_parameter_schema=False`` (pass True to have the server reject it instead).
"""

from __future__ import annotations

import inspect
import sys
import types
import typing
from typing import Any

from prefect import Flow

from lazyflow_prefect.tasks import load_workflow, run_lazyflow

# Keyword-only workflow parameters with these names cannot be forwarded by keyword.
_RESERVED = frozenset(
    {"workflow", "db", "executor", "tags", "inner_task_runs", "return_state", "wait_for"}
)


def lazyflow_flow(
    task: Any,
    *,
    db: Any = None,
    executor: Any = None,
    inner_task_runs: bool | str = False,
    **flow_options: Any,
) -> Flow[..., Any]:
    """Turn a lazyflow task into a Prefect flow with the same parameters.

    Args:
        task: a lazyflow task, or a reference ``"pkg.module:task"``.
        db: the lazyflow store for every run of the flow (URL, `LazyFlowStore` block,
            ``"lazyflow-store/<name>"`` to load a saved block at run time, or None for
            ``LAZYFLOW_DB`` / the default SQLite file).
        executor: lazyflow executor name or object.
        inner_task_runs: mirror inner calls as Prefect task runs (see `run_lazyflow`).
        **flow_options: passed to `prefect.flow` (``name``, ``retries``, ``log_prints``,
            ``timeout_seconds``, ...). The name defaults to the task's function name and
            the version to the task's code hash.

    Returns:
        A Prefect `Flow`. Calling it runs the workflow and returns its result.
    """
    workflow = load_workflow(task)
    func = workflow.func
    caller = sys._getframe(1).f_globals.get("__name__") or func.__module__
    signature = _resolved_signature(func)
    clashes = sorted(
        name
        for name, param in signature.parameters.items()
        if param.kind is inspect.Parameter.KEYWORD_ONLY and name in _RESERVED
    )
    if clashes:
        from lazyflow_core.integration import IntegrationTypeError

        raise IntegrationTypeError(
            f"lazyflow_flow: task {workflow.name!r} has keyword-only parameters {clashes!r} "
            f"that run_lazyflow reserves for itself ({sorted(_RESERVED)!r}); rename them "
            "or make them positional-or-keyword."
        )

    def run_workflow(*args: Any, **kwargs: Any) -> Any:
        bound = signature.bind(*args, **kwargs)
        # Positional where possible, so a parameter called e.g. `db` still reaches the task.
        return run_lazyflow(
            workflow,
            *bound.args,
            db=db,
            executor=executor,
            inner_task_runs=inner_task_runs,
            **bound.kwargs,
        )

    fn_name = f"{func.__name__}_flow"
    run_workflow.__name__ = fn_name
    run_workflow.__qualname__ = fn_name
    run_workflow.__module__ = caller
    run_workflow.__doc__ = inspect.getdoc(func) or f"Run the lazyflow workflow {workflow.name}."
    form = signature.replace(
        parameters=[
            p.replace(annotation=form_annotation(p.annotation))
            for p in signature.parameters.values()
        ]
    )
    run_workflow.__signature__ = form  # type: ignore[attr-defined]
    run_workflow.__annotations__ = {
        name: param.annotation
        for name, param in form.parameters.items()
        if param.annotation is not inspect.Parameter.empty
    }
    flow_options.setdefault("name", func.__name__.replace("_", "-"))
    # The flow's version follows the workflow's code hash, not this module's source.
    flow_options.setdefault("version", str(workflow.hash)[:16])
    return LazyflowFlow(run_workflow, **flow_options)


class LazyflowFlow(Flow[..., Any]):
    """The flow `lazyflow_flow` builds: deployable from the module it is bound in, and
    accepting ``File``/``Dir`` values as well as path strings for those parameters."""

    def validate_parameters(self, parameters: dict[str, Any]) -> dict[str, Any]:
        # The schema says "string" for File/Dir parameters; a File given from Python is
        # checked as its path and handed on as it is (its hashing mode kept).
        from lazyflow_core import Dir, File

        given = {k: v for k, v in parameters.items() if isinstance(v, File | Dir)}
        checked = super().validate_parameters(
            {k: (v.path if k in given else v) for k, v in parameters.items()}
        )
        return {**checked, **given}

    def bind_entrypoint(self) -> None:
        """Name the flow function after the variable that holds this flow in its module,
        which is what a deployment's ``file.py:name`` entrypoint looks up."""
        module = sys.modules.get(self.fn.__module__)
        for name, value in vars(module or types.SimpleNamespace()).items():
            if value is self and not name.startswith("__"):
                self.fn.__name__ = self.fn.__qualname__ = name
                where = self.fn.__module__
                if where == "__main__" or where.startswith("__prefect_loader_"):
                    where = getattr(module, "__file__", None) or where  # as Prefect does
                self._entrypoint = f"{where}:{name}"
                return

    def to_deployment(self, *args: Any, **kwargs: Any) -> Any:
        self.bind_entrypoint()
        kwargs.setdefault("enforce_parameter_schema", False)
        return super().to_deployment(*args, **kwargs)

    async def ato_deployment(self, *args: Any, **kwargs: Any) -> Any:
        self.bind_entrypoint()
        kwargs.setdefault("enforce_parameter_schema", False)
        return await super().ato_deployment(*args, **kwargs)

    def serve(self, *args: Any, **kwargs: Any) -> Any:
        self.bind_entrypoint()
        kwargs.setdefault("enforce_parameter_schema", False)
        return super().serve(*args, **kwargs)

    def deploy(self, *args: Any, **kwargs: Any) -> Any:
        self.bind_entrypoint()
        kwargs.setdefault("enforce_parameter_schema", False)
        return super().deploy(*args, **kwargs)


def form_annotation(hint: Any) -> Any:
    """`hint` with ``File``/``Dir`` replaced by ``str`` (also inside ``Optional``,
    ``list[...]``, ``dict[str, ...]``): what a form or JSON parameter can carry."""
    from lazyflow_core import Dir, File

    if hint in (File, Dir):
        return str
    origin, items = typing.get_origin(hint), typing.get_args(hint)
    if not items:
        return hint
    mapped = tuple(form_annotation(item) for item in items)
    if mapped == items:
        return hint
    if origin is typing.Union or origin is types.UnionType:
        return typing.Union[mapped]  # noqa: UP007 (built from a tuple)
    if origin in (list, set, frozenset, tuple, dict):
        return origin[mapped]
    return hint


def _resolved_signature(func: Any) -> inspect.Signature:
    """The function's signature with string annotations evaluated when possible
    (modules using ``from __future__ import annotations``)."""
    try:
        return inspect.signature(func, eval_str=True)
    except (NameError, TypeError, SyntaxError):
        return inspect.signature(func)
