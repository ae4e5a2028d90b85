"""Executors: inline, thread and process pools, and remote backends that plug in the same way.

The remote executors import their SDKs only when they are used:
``from lazyflow_core.executors import DaskExecutor`` needs the ``dask`` extra,
`AWSBatchExecutor` the ``aws`` extra, `GCPBatchExecutor` the ``gcp`` extra,
`SparkExecutor` the ``spark`` extra (and Java); importing lazyflow never imports dask,
pyspark or a cloud SDK. The pools load on first use too: a process-pool worker imports
this package (its `process_worker` module) and needs neither pool.
"""

from typing import TYPE_CHECKING

from ..lazy import lazy_attributes
from .base import Executor, Inline, JobOutcome, JobSpec, run_job

if TYPE_CHECKING:
    from .aws_batch import AWSBatchExecutor
    from .dask import DaskExecutor
    from .gcp_batch import GCPBatchExecutor
    from .processes import ProcessExecutor
    from .spark import SparkExecutor, SparkFrame
    from .threads import InlineExecutor, ThreadExecutor

_LAZY = {
    "AWSBatchExecutor": "aws_batch",
    "DaskExecutor": "dask",
    "GCPBatchExecutor": "gcp_batch",
    "InlineExecutor": "threads",
    "ProcessExecutor": "processes",
    "SparkExecutor": "spark",
    "SparkFrame": "spark",
    "ThreadExecutor": "threads",
}

__getattr__ = lazy_attributes(__name__, _LAZY, globals())


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
