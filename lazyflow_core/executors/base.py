"""The executor interface: where a job's function actually runs.

An executor receives a `JobSpec` and returns a `concurrent.futures.Future` of a
`JobOutcome`. Executors never touch scheduler state; the scheduler attaches a callback that
posts the finished future to its own queue. `run_job` is the worker-side half shared by
every backend: it calls the task, and does the expensive follow-up work *in the worker*
(hashing the result, pickling it for the store, stat-ing the files it returned) so the
scheduler thread only routes outcomes.
"""

from __future__ import annotations

import time
import traceback
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from enum import StrEnum
from types import CoroutineType
from typing import TYPE_CHECKING, Any, Protocol, Self

from ..errors import TaskResultError
from ..expression import contains_expression
from ..files import iter_files
from ..hashing import UnhashableValue, value_digest
from ..values import ATOMS, dumps_value

if TYPE_CHECKING:
    from ..task import Task


@dataclass(slots=True)
class JobSpec:
    """One call to run: the task, its evaluated arguments, and bookkeeping ids.

    `call_hash` is the call's cache key (task code and argument hashes) when a result of
    an earlier run could stand for this one, else None (``cache=False``, a ``--no-cache``
    run). Remote executors name their jobs after it, so that a restarted run finds the
    jobs it left running and waits for them instead of submitting the calls again.
    """

    job_id: str
    task: Task
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    attempt: int = 1
    call_hash: str | None = None


@dataclass
class JobOutcome:
    """What a worker sends back. `value` is the task's return value, or `error`."""

    value: Any = None
    error: BaseException | None = None
    remote_traceback: str | None = None
    digest: bytes | None = None
    data: bytes | None = None
    data_error: str | None = None
    has_expressions: bool = False
    files: list[tuple[str, bool, str | None]] = field(default_factory=list)
    started: float = 0.0
    finished: float = 0.0


def _hidden_expression(value: Any) -> str | None:
    """The attribute of a plain object that holds a lazy expression, if any.

    The scheduler evaluates expressions inside lists, tuples, dicts, sets, dataclasses and
    namedtuples; one hidden in another object's attributes would silently stay lazy.
    """
    attrs = getattr(value, "__dict__", None)
    if not isinstance(attrs, dict) or isinstance(value, type):
        return None
    for name, attr in attrs.items():
        if contains_expression(attr):
            return name
    return None


def finish_outcome(out: JobOutcome, value: Any, task_name: str = "") -> None:
    """Hash, pickle and stat a successful result (worker side)."""
    out.value = value
    if type(value) in ATOMS:  # a number or a string holds no expression, File or attribute
        out.digest = value_digest(value)
        out.data = dumps_value(value)
        return
    if contains_expression(value):
        out.has_expressions = True
        return
    hidden = _hidden_expression(value)
    if hidden is not None:
        out.error = TaskResultError(
            f"task {task_name!r} returned a {type(value).__name__} whose attribute "
            f"{hidden!r} holds a lazy expression, which the scheduler cannot see there. "
            "Return the expressions in a list, tuple, dict, set, dataclass or namedtuple, "
            "or build the object inside a task that receives the computed values."
        )
        return
    try:
        out.digest = value_digest(value)
    except UnhashableValue as exc:
        out.data_error = f"result cannot be hashed: {exc}"
        return
    try:
        out.data = dumps_value(value)
    except Exception as exc:
        out.data_error = f"result cannot be pickled: {type(exc).__name__}: {exc}"
    for f in iter_files(value):
        out.files.append((f.path, f.content_hash, f.current_hash()))


def run_job(spec: JobSpec) -> JobOutcome:
    """Run one job in the current thread/process and package the outcome."""
    return run_call(spec.task, spec.args, spec.kwargs)


def run_call(
    task: Task,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    convert: Callable[[Any], Any] | None = None,
) -> JobOutcome:
    """`run_job` without a `JobSpec`: the scheduler thread runs tiny calls this way, with
    no job id to format and no spec to build per call. `convert` turns the task's value
    into the result (the Spark executor writes DataFrames out); what it raises is the
    task's error."""
    out = JobOutcome(started=time.time())
    try:
        value = task.func(*args, **kwargs)
        if type(value) is CoroutineType:  # an `async def` task (inspect.iscoroutine)
            import asyncio  # here: ~15-20 ms a process-pool worker need not pay

            value = asyncio.run(value)
        if convert is not None:
            value = convert(value)
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt | SystemExit):
            raise
        out.error = exc
        out.remote_traceback = "".join(traceback.format_exception(exc))
        out.finished = time.time()
        return out
    finish_outcome(out, value, task.name)
    out.finished = time.time()
    return out


class Inline(StrEnum):
    """Whether the scheduler may run an executor's jobs on its own thread (`Executor.inline`).

    ``NEVER``: every job goes to `Executor.submit` (another process, another machine).
    ``WHEN_CHEAP``: the jobs run in this process anyway, so the scheduler runs a job itself
    when handing it over would cost more than it can gain (a lone job with nothing else
    to do, or a task measured to take microseconds; see `dispatch`). ``ALWAYS``: every
    job runs on the scheduler thread, one at a time, in submission order (the ``inline``
    executor: deterministic, and a debugger stops inside the task).
    """

    NEVER = "never"
    WHEN_CHEAP = "when_cheap"
    ALWAYS = "always"


class Executor(ABC):
    """Runs jobs somewhere and returns futures of their outcomes.

    Capabilities are declared as class attributes, so the scheduler never guesses from
    an executor's type: `inline` (`Inline`) says whether its jobs may run on the
    scheduler's own thread; `reports_start` that its `submit` takes ``on_start``, a
    callable it calls (from any thread, once) when a worker begins the job, so that a
    job is shown ``queued`` until then (`ReportsStart`); `posts_outcomes` that it also
    has `PostsOutcomes.post`, which hands outcomes back in lists, with no future per job.
    """

    name: str = "executor"
    inline: Inline = Inline.NEVER
    reports_start: bool = False
    posts_outcomes: bool = False

    def start(self) -> None:  # noqa: B027 - optional hook
        """Acquire resources (pools, clusters). Called lazily on first submit."""

    def warm(self, tasks: Sequence[Task]) -> None:  # noqa: B027 - optional hook
        """A run is about to send calls of `tasks` here: start now what is slow to start
        (a pool's worker processes), so that it starts while the run sets up (opens the
        store, records the execution, looks up the root call). Jobs run whether or not
        it was called."""

    @abstractmethod
    def submit(self, spec: JobSpec) -> Future[JobOutcome]:
        """Schedule `spec` and return a future of its outcome."""

    def flush(self) -> None:  # noqa: B027 - optional hook
        """Send jobs buffered by `submit` (called after each round of submissions)."""

    @abstractmethod
    def shutdown(self, *, cancel: bool = False) -> None:
        """Release resources; with `cancel`, drop queued jobs and stop running ones."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        """The end of ``with executor:``: wait for its jobs, then release its resources
        (an executor passed to a `Scheduler` is not shut down by the scheduler)."""
        self.shutdown()


Sink = Callable[[list[tuple[Any, JobOutcome]]], None]
"""Where `PostsOutcomes.post` hands outcomes: a list of ``(token, outcome)`` pairs."""


class PostsOutcomes(Protocol):
    """An executor whose `Executor.posts_outcomes` is true: jobs can be posted."""

    def post(self, spec: JobSpec, token: Any, sink: Sink) -> None:
        """`Executor.submit` without a future: the job's outcome goes to `sink` with
        `token`, exactly once, from any thread (with its executor's failures as the
        outcome's error, like a future's), in one list with the other outcomes that
        arrived together (a process pool reads many from one pipe read): the scheduler
        takes each list from its queue at once, and no `Future` is made, locked, set,
        called back and read per job."""


class ReportsStart(Protocol):
    """An executor whose `Executor.reports_start` is true: `submit` takes ``on_start``."""

    def submit(
        self, spec: JobSpec, on_start: Callable[[], None] | None = None
    ) -> Future[JobOutcome]: ...
