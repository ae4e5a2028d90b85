"""Inner calls of a workflow as Prefect task runs (``run_lazyflow(..., inner_task_runs=...)``).

Prefect shows one task run for a whole lazyflow workflow. With ``inner_task_runs=True``
(or ``"calls"``) every inner call also gets a task run of its own, nested under the
``run_lazyflow`` task run, with its own state (Running, Completed, ``Cached``, Failed)
and timing; with ``"tasks"`` one task run per task *name* sums its calls (``"120
executed, 3 cached"``), which keeps a 100,000-call workflow readable and cheap. This is
the pattern prefect-dbt uses for dbt nodes: the task runs are records made through the
Prefect API, never run, retried or cached by Prefect; lazyflow still runs and caches
every call.

How the known pitfalls of that pattern are avoided:

- no zombie task runs: when the workflow ends, for whatever reason (failure, timeout,
  cancellation), every mirrored run still open is closed as Cancelled (or Failed, when the
  workflow failed), saying so; only a killed process can leave one Running;
- no logs on the wrong run: job lines stay in the ``run_lazyflow`` task run's log (the
  one logger Prefect attaches to this thread); a mirrored run carries its outcome and
  error in its state message instead;
- the scheduler never waits for the API: events are queued to one background thread,
  which is drained when the workflow ends.
"""

from __future__ import annotations

import logging
import queue
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from prefect import Task
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import TaskRunResult
from prefect.states import Cancelled, Completed, Failed, Running, State

MODES = ("calls", "tasks")
_KINDS = frozenset({"started", "cached", "done", "failed", "caught"})
_DRAIN_SECONDS = 60.0


def inner_mode(option: Any) -> str | None:
    """``"calls"``, ``"tasks"`` or None for an ``inner_task_runs=`` value."""
    if option is None or option is False:
        return None
    if option is True:
        return "calls"
    if option in MODES:
        return str(option)
    from lazyflow_core import TaskCallError

    raise TaskCallError(
        f"run_lazyflow: inner_task_runs={option!r}; use True or 'calls' (a Prefect task "
        "run per inner call), 'tasks' (one per task name) or False."
    )


@dataclass
class _Counts:
    executed: int = 0
    cached: int = 0
    failed: int = 0

    def message(self) -> str:
        text = f"{self.executed} executed, {self.cached} cached"
        return text + (f", {self.failed} failed" if self.failed else "")


def _mirror() -> None:
    """The function of the mirrored task runs: Prefect never calls it."""


class InnerTaskRuns:
    """Scheduler listener that mirrors job events as Prefect task runs (see module)."""

    def __init__(
        self,
        mode: str,
        flow_run_id: uuid.UUID,
        parent_task_run_id: uuid.UUID | None,
        logger: logging.Logger | logging.LoggerAdapter[Any],
    ) -> None:
        self.mode = mode
        self.flow_run_id = flow_run_id
        self.parent = parent_task_run_id
        self.logger = logger
        self._queue: queue.Queue[Any] = queue.Queue()
        self._tasks: dict[str, Task[..., None]] = {}
        self._runs: dict[str, uuid.UUID] = {}  # job id (calls) or task name (tasks)
        self._open: set[str] = set()
        self._counts: dict[str, _Counts] = {}
        self._thread = threading.Thread(target=self._work, name="lazyflow-prefect-mirror")
        self._thread.daemon = True
        self._broken = False
        self._thread.start()

    def __call__(self, event: Any) -> None:
        if event.kind in _KINDS:
            self._queue.put(event)

    def close(self, error: BaseException | None = None) -> None:
        """Drain the queue, then close every mirrored run still open."""
        self._queue.put(None)
        self._thread.join(_DRAIN_SECONDS)
        if self._thread.is_alive():
            self.logger.warning("lazyflow: mirrored Prefect task runs are still being written")
            return
        final = self._closing_state(error)
        try:
            with get_client(sync_client=True) as client:
                for key in sorted(self._open):
                    state = final() if self.mode == "calls" else self._task_state(key, error)
                    self._set(client, key, state)
        except Exception as exc:
            self.logger.warning("lazyflow: could not close mirrored task runs: %s", exc)

    # -- the background thread ---------------------------------------------------------

    def _work(self) -> None:
        try:
            with get_client(sync_client=True) as client:
                while (event := self._queue.get()) is not None:
                    if not self._broken:
                        self._apply(client, event)
        except Exception as exc:  # the mirror is a view: never fail the workflow
            self._broken = True
            self.logger.warning("lazyflow: stopped mirroring inner task runs: %s", exc)
            while self._queue.get() is not None:  # let close() find the queue drained
                pass

    def _apply(self, client: Any, event: Any) -> None:
        if self.mode == "tasks":
            self._apply_by_task(client, event)
            return
        key, kind = str(event.job_id), event.kind
        if kind == "started":
            self._create(client, key, event, Running())
        elif kind == "cached":
            self._create(client, key, event, Completed(name="Cached", message="from the store"))
            self._open.discard(key)
        else:
            if key not in self._runs:
                self._create(client, key, event, Running())
            seconds = f" in {event.seconds:.2f} s" if event.seconds is not None else ""
            if kind == "done":
                state: State[Any] = Completed(message=f"done{seconds}")
            elif kind == "caught":
                state = Completed(name="Caught", message=f"handled by catch: {event.error}")
            else:
                state = Failed(message=str(event.error or "failed"))
            self._set(client, key, state)

    def _apply_by_task(self, client: Any, event: Any) -> None:
        name = str(event.task_name)
        counts = self._counts.setdefault(name, _Counts())
        if name not in self._runs:
            self._create(client, name, event, Running())
        if event.kind == "cached":
            counts.cached += 1
        elif event.kind in ("done", "caught"):
            counts.executed += 1
        elif event.kind == "failed":
            counts.failed += 1

    def _create(self, client: Any, key: str, event: Any, state: State[Any]) -> None:
        name = str(event.task_name)
        task = self._tasks.get(name)
        if task is None:
            task = self._tasks[name] = Task(fn=_mirror, name=name, task_run_name=name)
        label = str(event.args_preview or name) if self.mode == "calls" else name
        inputs = {"__parents__": [TaskRunResult(id=self.parent)]} if self.parent else {}
        run = client.create_task_run(
            task=task,
            flow_run_id=self.flow_run_id,
            dynamic_key=f"{key}-{uuid.uuid4().hex[:8]}",
            name=label[:200],
            extra_tags=["lazyflow"],
            state=state,
            task_inputs=inputs,
        )
        self._runs[key] = run.id
        if not state.is_final():
            self._open.add(key)

    def _set(self, client: Any, key: str, state: State[Any]) -> None:
        client.set_task_run_state(self._runs[key], state, force=True)
        if state.is_final():
            self._open.discard(key)

    # -- closing -----------------------------------------------------------------------

    @staticmethod
    def _closing_state(error: BaseException | None) -> Callable[[], State[Any]]:
        if error is None:
            return lambda: Completed(message="the workflow finished")
        message = f"the lazyflow run stopped before this call finished ({type(error).__name__})"
        return lambda: Cancelled(message=message)

    def _task_state(self, name: str, error: BaseException | None) -> State[Any]:
        counts = self._counts.get(name, _Counts())
        if counts.failed:
            return Failed(message=counts.message())
        if error is not None and not (counts.executed or counts.cached):
            return Cancelled(message="the lazyflow run stopped before any call of it ended")
        return Completed(message=counts.message())
