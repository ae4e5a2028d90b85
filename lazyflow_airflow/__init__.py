"""Airflow 3 provider for lazyflow: run whole lazyflow workflows as Airflow tasks.

- `LazyFlowOperator` runs a workflow (``"pkg.module:task"`` or a Task) as one task;
- `lazyflow_task` is the ``@task.lazyflow`` TaskFlow decorator;
- `load_result` loads a result that was pushed to XCom as a reference;
- `LazyFlowHook` reads the store URL from a ``lazyflow`` Airflow connection;
- `LazyFlowExecutionLink` is the "lazyflow run" extra link.

Names are imported on first use, so Airflow's provider discovery (which imports
``lazyflow_airflow.provider``) stays cheap.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from lazyflow_airflow._version import __version__

if TYPE_CHECKING:
    from lazyflow_airflow.decorator import lazyflow_task
    from lazyflow_airflow.hooks import LazyFlowHook
    from lazyflow_airflow.links import LazyFlowExecutionLink
    from lazyflow_airflow.operator import LazyFlowOperator
    from lazyflow_airflow.provider import get_provider_info
    from lazyflow_airflow.results import is_result_ref, load_result

__all__ = [
    "LazyFlowExecutionLink",
    "LazyFlowHook",
    "LazyFlowOperator",
    "__version__",
    "get_provider_info",
    "is_result_ref",
    "lazyflow_task",
    "load_result",
]

_LAZY = {
    "LazyFlowExecutionLink": "lazyflow_airflow.links",
    "LazyFlowHook": "lazyflow_airflow.hooks",
    "LazyFlowOperator": "lazyflow_airflow.operator",
    "get_provider_info": "lazyflow_airflow.provider",
    "is_result_ref": "lazyflow_airflow.results",
    "lazyflow_task": "lazyflow_airflow.decorator",
    "load_result": "lazyflow_airflow.results",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'lazyflow_airflow' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
