"""Prefect 3 integration for lazyflow.

- `run_lazyflow` / `arun_lazyflow`: Prefect tasks that run a whole lazyflow workflow;
- `lazyflow_flow`: a lazyflow task as a Prefect flow with the same parameters;
- `explain_lazyflow`: a dry run (what would run and why) as a task result and artifact;
- `LazyFlowStore`: a Prefect block holding the store URL as a secret.

Each run logs its jobs to the Prefect run logger, publishes a summary and a job table as
artifacts, and ends in a state such as ``Completed("120 jobs, 118 cached")``. The engine
itself (`lazyflow_core`) is imported when a workflow runs, not when this package loads:
Prefect imports it through the ``prefect.collections`` entry point to find the block.
"""

from lazyflow_prefect.blocks import LazyFlowStore
from lazyflow_prefect.explain import explain_lazyflow
from lazyflow_prefect.flows import lazyflow_flow
from lazyflow_prefect.tasks import LazyflowPrefectTask, arun_lazyflow, run_lazyflow

__all__ = [
    "LazyFlowStore",
    "LazyflowPrefectTask",
    "arun_lazyflow",
    "explain_lazyflow",
    "lazyflow_flow",
    "run_lazyflow",
]
