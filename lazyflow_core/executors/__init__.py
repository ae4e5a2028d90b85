"""Executors: inline, thread and process pools, and remote backends that plug in the same way.

The remote executors import their SDKs only when they are used:
``from lazyflow_core.executors import DaskExecutor`` needs the ``dask`` extra,
`AWSBatchExecutor` the ``aws`` extra, `GCPBatchExecutor` the ``gcp`` extra,
`SparkExecutor` the ``spark`` extra (and Java); importing lazyflow never imports dask,
pyspark or a cloud SDK.
"""

from typing import TYPE_CHECKING, Any

from .base import Executor, Inline, JobOutcome, JobSpec, run_job
from .processes import ProcessExecutor
from .threads import InlineExecutor, ThreadExecutor

if TYPE_CHECKING:
    from .dask import DaskExecutor

_LAZY = {
    "AWSBatchExecutor": ".aws_batch",
    "DaskExecutor": ".dask",
    "GCPBatchExecutor": ".gcp_batch",
    "SparkExecutor": ".spark",
    "SparkFrame": ".spark",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module, __name__), name)


__all__ = [
    "AWSBatchExecutor",
    "DaskExecutor",
    "Executor",
    "GCPBatchExecutor",
    "Inline",
    "InlineExecutor",
    "JobOutcome",
    "JobSpec",
    "ProcessExecutor",
    "SparkExecutor",
    "SparkFrame",
    "ThreadExecutor",
    "run_job",
]
