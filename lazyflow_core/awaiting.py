"""``await`` of lazyflow expressions inside ``async def`` tasks (redun's await-able
expressions), without a worker thread per waiting task.

An ``async def`` task run by an in-process executor (threads, inline) does not take a
pool thread: its coroutine runs on one event loop thread shared by the whole process
(`AsyncRunner`), next to every other async task. When the coroutine awaits an
expression (``await align(sample)``, ``await asyncio.gather(a(1), b(2))``),
`Expression.__await__` posts an `Awaiting` to its run's completion queue and suspends on
an asyncio future. The scheduler thread evaluates the expression like any other — cached,
recorded, its calls children of the awaiting call, in parallel with everything else —
and resolves the future with the value, or the exception, which the coroutine then sees
at its ``await``. Thousands of tasks can wait at once: a waiting coroutine is an object
on the loop, not a blocked thread.

Which run a coroutine belongs to travels in a context variable (`_CHANNEL`), which
asyncio copies into every task the coroutine starts (``gather``, ``create_task``). Out of
any run, or in a process/remote worker (no scheduler there to evaluate anything), awaiting
an expression raises a `LazyflowError` that says so.
"""

from __future__ import annotations

import contextvars
import threading
import time
import traceback
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .errors import LazyflowError

if TYPE_CHECKING:
    import asyncio
    from concurrent.futures import Future

    from .executors.base import JobOutcome
    from .frames import CallFrame
    from .task import Task

__all__ = ["AsyncRunner", "Awaiting", "Channel", "await_expression", "runner"]


@dataclass(slots=True)
class Awaiting:
    """A coroutine of `frame`'s job waits for `expr`: resolve `future` on `loop`."""

    frame: CallFrame
    expr: Any
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]

    def resolve(self, value: Any) -> None:
        self.loop.call_soon_threadsafe(_settle, self.future, value, None)

    def reject(self, exc: BaseException) -> None:
        self.loop.call_soon_threadsafe(_settle, self.future, None, exc)


def _settle(future: asyncio.Future[Any], value: Any, exc: BaseException | None) -> None:
    if future.done():  # the coroutine was cancelled meanwhile
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(value)


@dataclass(slots=True)
class Channel:
    """How a coroutine reaches its run: the awaiting call and the run's queue."""

    frame: CallFrame
    post: Callable[[Any], None]


_CHANNEL: contextvars.ContextVar[Channel | None] = contextvars.ContextVar(
    "lazyflow_await_channel", default=None
)


def await_expression(expr: Any) -> Generator[Any, None, Any]:
    """`Expression.__await__`: hand `expr` to the scheduler and wait for its value."""
    channel = _CHANNEL.get()
    if channel is None:
        raise LazyflowError(
            f"await {expr!r}: a lazyflow expression can only be awaited inside an "
            "`async def` task run by an in-process executor (threads or inline), where "
            "the scheduler evaluates it. In a process or remote executor, return the "
            "expression instead (or give the task executor='threads')."
        )
    import asyncio  # loaded already: a coroutine of an async task is running

    loop = asyncio.get_running_loop()
    future = loop.create_future()
    channel.post((channel.frame, Awaiting(channel.frame, expr, loop, future)))
    return (yield from future.__await__())


class AsyncRunner:
    """One event loop thread for the process: the coroutines of async tasks run on it."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()

    def loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None or self._loop.is_closed():
                # asyncio (~30 ms, with ssl) loads with the first async task, not with
                # `import lazyflow_core` (start-up of the CLI, benchmarks/README.md)
                import asyncio

                loop = asyncio.new_event_loop()
                thread = threading.Thread(
                    target=loop.run_forever, name="lazyflow-async", daemon=True
                )
                thread.start()
                self._loop = loop
            return self._loop

    def submit(
        self, task: Task, args: tuple[Any, ...], kwargs: dict[str, Any], channel: Channel
    ) -> Future[JobOutcome]:
        """Start `task`'s coroutine on the loop; a future of its job's outcome."""
        loop = self.loop()
        import asyncio  # loaded by loop()

        return asyncio.run_coroutine_threadsafe(_drive(task, args, kwargs, channel), loop)


async def _drive(
    task: Task, args: tuple[Any, ...], kwargs: dict[str, Any], channel: Channel
) -> JobOutcome:
    from .executors.base import JobOutcome, finish_outcome

    _CHANNEL.set(channel)  # this asyncio task's own context: seen by what it starts
    out = JobOutcome(started=time.time())
    try:
        value = await task.func(*args, **kwargs)
    except Exception as exc:
        out.error = exc
        out.remote_traceback = "".join(traceback.format_exception(exc))
    else:
        finish_outcome(out, value, task.name)
    out.finished = time.time()
    return out


runner = AsyncRunner()
"""The process's runner (its loop thread starts with the first async task)."""
