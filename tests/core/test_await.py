"""``async def`` tasks that ``await`` lazyflow calls (redun's await-able expressions):
the awaited expression is evaluated by the scheduler — cached, recorded, a child of the
awaiting call — while the coroutine waits on the process's event loop, holding no thread."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from lazyflow_core import LazyflowError, Scheduler, task
from lazyflow_core.executors import Executor
from lazyflow_core.provenance import Provenance


@task
def aw_inc(x: int) -> int:
    return x + 1


@task
async def aw_double_inc(x: int) -> int:
    y = await aw_inc(x)  # evaluated by the scheduler, recorded as a child of this call
    return 2 * y


_barrier = threading.Barrier(3, timeout=20)


@task(cache=False)
def aw_meet(i: int) -> int:
    _barrier.wait()  # returns only once three calls wait here at the same time
    return i


@task
async def aw_gather(n: int) -> list[int]:
    return list(await asyncio.gather(*(aw_meet(i) for i in range(n))))


@task
def aw_fail(x: int) -> int:
    raise ValueError(f"bad sample {x}")


@task
async def aw_recover(x: int) -> str:
    try:
        await aw_fail(x)
    except ValueError as exc:
        return f"recovered: {exc}"
    return "not reached"


@task
async def aw_no_recover(x: int) -> int:
    return await aw_fail(x) + 1


_arrived: list[int] = []
_all_here: dict[str, asyncio.Event] = {}


@task(cache=False)
async def aw_wait_for_all(i: int, n: int) -> int:
    """Finishes only when all `n` coroutines are suspended at once (one thread each would
    never get there with a 2-thread pool)."""
    event = _all_here.setdefault("event", asyncio.Event())
    _arrived.append(i)
    if len(_arrived) == n:
        event.set()
    await asyncio.wait_for(event.wait(), timeout=30)
    return await aw_inc(i)


@task
def aw_threads() -> int:
    return threading.active_count()


@task
async def aw_lazy_result(x: int) -> Any:
    first = await aw_inc(x)
    return [aw_inc(first), aw_inc(first + 1)]  # returned expressions are evaluated too


@pytest.mark.parametrize("executor", ["inline", "threads"], indirect=True)
def test_await_one_call_is_a_recorded_child(sqlite_url: str, executor: Executor) -> None:
    with Scheduler(db=sqlite_url, executor=executor) as sched:
        assert sched.run(aw_double_inc(4)) == 10
        assert sched.last_run is not None
        eid = sched.last_run.execution_id
    with Provenance(sqlite_url) as prov:
        jobs = {j.task_name.rsplit(".", 1)[-1]: j for j in prov.jobs(eid)}
        parent, child = jobs["aw_double_inc"], jobs["aw_inc"]
        assert child.parent_id == parent.id and child.args_preview == "aw_inc(4)"
        assert parent.call_hash is not None and child.call_hash is not None
        assert prov.children(parent.call_hash) == [child.call_hash]


def test_gather_runs_the_awaited_calls_in_parallel(sqlite_url: str) -> None:
    with Scheduler(db=sqlite_url, max_workers=4) as sched:
        assert sched.run(aw_gather(3)) == [0, 1, 2]  # the barrier needs all three at once


def test_a_cached_rerun_runs_nothing(sqlite_url: str) -> None:
    with Scheduler(db=sqlite_url) as sched:
        assert sched.run(aw_double_inc(20)) == 42
        assert sched.run(aw_double_inc(20)) == 42
        assert sched.last_run is not None
        assert (sched.last_run.executed, sched.last_run.cached) == (0, 1)
        assert sched.run(aw_lazy_result(1)) == [3, 4]
        assert sched.run(aw_lazy_result(1)) == [3, 4]
        assert sched.last_run.executed == 0


def test_an_exception_reaches_the_coroutine(sqlite_url: str) -> None:
    with Scheduler(db=sqlite_url) as sched:
        assert sched.run(aw_recover(3)) == "recovered: bad sample 3"
        with pytest.raises(ValueError, match="bad sample 4"):
            sched.run(aw_no_recover(4))
        assert sched.last_run is not None and sched.last_run.failed >= 1


def test_many_waiting_tasks_hold_no_threads(sqlite_url: str) -> None:
    n = 200
    _arrived.clear()
    _all_here.clear()
    with Scheduler(db=sqlite_url, max_workers=2) as sched:
        before = sched.run(aw_threads(), cache=False)
        assert sched.run([aw_wait_for_all(i, n) for i in range(n)]) == [i + 1 for i in range(n)]
        assert sched.run(aw_threads(), cache=False) <= before + 3  # the loop thread, at most


def test_awaiting_outside_an_in_process_run_says_how_to_fix_it(
    sqlite_url: str, executor_processes: Executor
) -> None:
    with pytest.raises(LazyflowError, match="can only be awaited inside an `async def` task"):
        asyncio.run(_await_outside())
    with pytest.raises(LazyflowError, match="in-process executor"):
        Scheduler(db=sqlite_url, executor=executor_processes).run(aw_double_inc(1))


async def _await_outside() -> Any:
    return await aw_inc(1)


@task(cache=False)
def aw_slow(seconds: float) -> float:
    import time

    time.sleep(seconds)
    return seconds


@task
async def aw_waits_long() -> float:
    first = await aw_slow(2.0)  # the sibling fails meanwhile
    return first + await aw_slow(30)  # never reached: the run has ended


@task
def aw_boom_after(seconds: float) -> int:
    import time

    time.sleep(seconds)
    raise RuntimeError("sibling failed")


def test_a_failing_sibling_ends_the_run_with_coroutines_waiting(sqlite_url: str) -> None:
    """The run ends with the sibling's error; the suspended coroutine is cancelled, not
    waited for (what it awaits is never evaluated once the run stops)."""
    with Scheduler(db=sqlite_url, max_workers=4) as sched:
        with pytest.raises(RuntimeError, match="sibling failed"):
            sched.run([aw_waits_long(), aw_boom_after(0.3)])
        assert sched.last_run is not None and sched.last_run.seconds < 20
