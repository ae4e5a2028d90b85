"""``@task.lazyflow``: a lazyflow workflow as a TaskFlow task.

::

    from airflow.sdk import dag, task
    from lazyflow_core import task as lazy

    @lazy
    def inc(x: int) -> int:
        return x + 1

    @task.lazyflow(db="sqlite:////data/lazyflow.db")
    def total(n: int):
        return sum_all([inc(i) for i in range(n)])   # lazy calls, run by lazyflow

    @dag
    def pipeline():
        report(total(n=count_rows()))   # XCom in, XCom out

The decorated function is the workflow's entry point: a lazyflow ``Task``, or a plain
function that becomes one when the Airflow task runs. Its arguments come from XComs and
templates like any TaskFlow task; they are rendered, then hashed by lazyflow, so a second
run with the same arguments is served from the cache. The Airflow provider registers this
as ``@task.lazyflow``; ``from lazyflow_airflow import lazyflow_task`` is the same thing.
All `LazyFlowOperator` options (``db``, ``conn_id``, ``executor``, ``tags``, ...) are
accepted as decorator arguments.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any, ClassVar

from airflow.sdk.bases.decorator import DecoratedOperator, task_decorator_factory

from lazyflow_airflow.operator import LazyFlowOperator


class _LazyFlowDecoratedOperator(DecoratedOperator, LazyFlowOperator):
    """The operator behind ``@task.lazyflow``: a LazyFlowOperator fed by TaskFlow."""

    template_fields: Sequence[str] = LazyFlowOperator.template_fields
    template_fields_renderers: ClassVar[dict[str, str]] = {
        **LazyFlowOperator.template_fields_renderers
    }
    custom_operator_name = "@task.lazyflow"

    def __init__(
        self,
        *,
        python_callable: Callable[..., Any],
        op_args: Collection[Any] | None = None,
        op_kwargs: Mapping[str, Any] | None = None,
        workflow: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            python_callable=python_callable,
            op_args=op_args,
            op_kwargs=op_kwargs,
            kwargs_to_upstream={
                "workflow": workflow if workflow is not None else python_callable,
                "op_args": op_args,
                "op_kwargs": op_kwargs,
            },
            **kwargs,
        )


def _as_lazyflow_task(fn: Any) -> Any:
    """`fn` itself when it is a lazyflow Task, else None.

    A Task can only exist once lazyflow_core was imported, so a DAG file that decorates
    plain functions does not pay for importing the engine at parse time.
    """
    core = sys.modules.get("lazyflow_core")
    task_cls = getattr(core, "Task", None)
    if isinstance(task_cls, type) and isinstance(fn, task_cls):
        return fn
    return None


def lazyflow_task(
    python_callable: Callable[..., Any] | None = None,
    *,
    multiple_outputs: bool | None = None,
    **kwargs: Any,
) -> Any:
    """Turn a lazyflow task (or a plain function) into an Airflow TaskFlow task.

    Used as ``@task.lazyflow`` or ``@task.lazyflow(db=..., executor=...)``; keyword
    arguments are `LazyFlowOperator` and BaseOperator options.
    """

    def wrap(fn: Callable[..., Any]) -> Any:
        lazy = _as_lazyflow_task(fn)
        func = lazy.func if lazy is not None else fn
        options = dict(kwargs)
        if lazy is not None:
            options["workflow"] = lazy
        return task_decorator_factory(
            python_callable=func,
            multiple_outputs=multiple_outputs,
            decorated_operator_class=_LazyFlowDecoratedOperator,
            **options,
        )

    if python_callable is not None:
        return wrap(python_callable)
    return wrap
