"""Reading a flow run's task runs back from the Prefect server, as tests need them."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def read_task_runs(
    flow_run_id: Any, until: Callable[[list[Any]], bool], timeout: float = 30.0
) -> list[Any]:
    """The task runs of a flow run, read until `until(runs)` holds (or `timeout` passes).

    Prefect 3 records task-run states from events that the server consumes on its own
    schedule, so right after a flow returns the last task runs may not be readable yet; a
    test that counts them reads again until they have all arrived."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while True:
            runs = client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
            )
            if until(runs) or time.monotonic() > deadline:
                return runs
            time.sleep(0.25)
