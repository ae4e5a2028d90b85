"""Scheduler behaviour: depth, fan-out, parallelism, dedup, retries, errors, executors."""

from __future__ import annotations

import os
import threading
import time
import traceback
from pathlib import Path

import pytest
from sqlalchemy import text

from lazyflow_core import (
    ExecutorError,
    HashingError,
    Scheduler,
    TaskResultError,
    task,
)
from lazyflow_core.executors import Executor, ThreadExecutor

from .tasks import fan_out, inc, total


@task
def chain(n: int):
    x = 0
    for _ in range(n):
        x = inc(x)
    return x


@task
def countdown(n: int):
    if n == 0:
        return 0
    return countdown(n - 1) + 1


def test_chain_of_100k_dependent_calls(sqlite_url: str) -> None:
    sched = Scheduler(db=sqlite_url)
    assert sched.run(chain(100_000)) == 100_000
    assert sched.last_run is not None and sched.last_run.executed == 100_001


def test_top_level_chain_without_parent_task(sqlite_url: str) -> None:
    x = 0
    for _ in range(20_000):
        x = inc(x)
    assert Scheduler(db=sqlite_url).run(x) == 20_000


def test_recursion_10k_deep(sqlite_url: str) -> None:
    sched = Scheduler(db=sqlite_url)
    assert sched.run(countdown(10_000)) == 10_000
    assert sched.last_run is not None and sched.last_run.executed == 10_001


def test_depth_fan_out_and_cached_rerun_on_every_executor(
    sqlite_url: str, executor: Executor
) -> None:
    """The scheduler's contract, small: a fan-out, reuse, dependent calls, recursion."""
    sched = Scheduler(db=sqlite_url, executor=executor)
    assert sched.run(fan_out(300)) == sum(range(1, 301))
    assert sched.last_run is not None and sched.last_run.executed == 302
    assert sched.run(fan_out(300)) == sum(range(1, 301))
    assert sched.last_run is not None
    assert (sched.last_run.jobs, sched.last_run.cached, sched.last_run.executed) == (1, 1, 0)
    assert sched.run(chain(200)) == 200  # inc(0) ... inc(199) are the fan-out's
    assert sched.last_run is not None
    assert (sched.last_run.executed, sched.last_run.cached) == (1, 200)
    assert sched.run(countdown(100)) == 100
    assert sched.last_run is not None and sched.last_run.executed == 101


def test_fan_out_of_10k_calls_and_cached_rerun(sqlite_url: str) -> None:
    sched = Scheduler(db=sqlite_url)
    assert sched.run(fan_out(10_000)) == sum(range(1, 10_001))
    summary = sched.last_run
    assert summary is not None and summary.executed == 10_002 and summary.failed == 0
    assert sched.run(fan_out(10_000)) == sum(range(1, 10_001))
    assert sched.last_run is not None
    assert (sched.last_run.jobs, sched.last_run.cached, sched.last_run.executed) == (1, 1, 0)


def test_last_run_summary_fields(sqlite_url: str, executor: Executor) -> None:
    sched = Scheduler(db=sqlite_url, executor=executor)
    sched.run(fan_out(3))
    s = sched.last_run
    assert s is not None
    assert len(s.execution_id) == 32 and s.status == "done" and s.seconds > 0
    assert (s.jobs, s.cached, s.executed, s.failed) == (5, 0, 5, 0)
    assert s.by_task[inc.name].executed == 3
    assert s.to_dict()["executed"] == 5


BARRIER = threading.Barrier(4)


@task
def meet(i: int) -> int:
    BARRIER.wait(timeout=30)  # only returns if all four calls run at the same time
    return i


def test_independent_calls_run_in_parallel(sqlite_url: str) -> None:
    BARRIER.reset()
    sched = Scheduler(db=sqlite_url, max_workers=4)
    assert sched.run([meet(i) for i in range(4)], cache=False) == [0, 1, 2, 3]


COUNTER = {"n": 0}
COUNTER_LOCK = threading.Lock()


@task
def counted(x: int) -> int:
    with COUNTER_LOCK:
        COUNTER["n"] += 1
    time.sleep(0.2)
    return x * 2


@pytest.mark.parametrize("executor", ["inline", "threads"], indirect=True)
def test_identical_in_flight_calls_run_once(sqlite_url: str, executor: Executor) -> None:
    COUNTER["n"] = 0
    sched = Scheduler(db=sqlite_url, executor=executor)
    # Distinct expression objects, same call: one execution.
    out = sched.run([counted(7), counted(7), total([counted(7), counted(7)])], cache=False)
    assert out == [14, 14, 28]
    assert COUNTER["n"] == 1


@task
def fails_on(x: int, bad: int) -> int:
    if x == bad:
        raise KeyError(f"item {x} is bad")
    return x


def test_failure_in_one_branch_keeps_the_others(sqlite_url: str, executor: Executor) -> None:
    sched = Scheduler(db=sqlite_url, executor=executor)
    with pytest.raises(KeyError, match="item 3 is bad"):
        sched.run(total([fails_on(i, 3) for i in range(6)]))
    first = sched.last_run
    assert first is not None and first.status == "failed" and first.failed == 1
    # The calls that succeeded were recorded: only the failed one runs again.
    with pytest.raises(KeyError):
        sched.run(total([fails_on(i, 3) for i in range(6)]))
    again = sched.last_run
    assert again is not None
    assert again.executed == 0 and again.failed == 1
    assert again.cached == first.executed


def test_exception_keeps_type_message_and_names_the_task(
    sqlite_url: str, executor: Executor
) -> None:
    sched = Scheduler(db=sqlite_url, executor=executor)
    with pytest.raises(KeyError) as info:
        sched.run(fails_on(5, 5))
    text = "".join(traceback.format_exception(info.value))
    assert "item 5 is bad" in text
    assert "fails_on(5, 5)" in text and "test_scheduler.fails_on" in text
    assert "raise KeyError" in text  # the task's own frame is in the traceback


ATTEMPTS: dict[str, int] = {}


@task(retries=2)
def flaky(key: str, fail_times: int) -> str:
    ATTEMPTS[key] = ATTEMPTS.get(key, 0) + 1
    if ATTEMPTS[key] <= fail_times:
        raise ConnectionError(f"attempt {ATTEMPTS[key]}")
    return f"ok after {ATTEMPTS[key]}"


@pytest.mark.parametrize("executor", ["inline", "threads"], indirect=True)
def test_retries(sqlite_url: str, executor: Executor) -> None:
    ATTEMPTS.clear()
    sched = Scheduler(db=sqlite_url, executor=executor)
    assert sched.run(flaky("a", 2)) == "ok after 3"
    with pytest.raises(ConnectionError, match="attempt 3"):
        sched.run(flaky("b", 5))
    assert ATTEMPTS["b"] == 3


@task(executor="gpu")
def on_gpu(x: int) -> int:
    return x


def test_unknown_executor_is_a_clear_error(sqlite_url: str) -> None:
    with pytest.raises(ExecutorError, match=r"on_gpu.*'gpu'.*Scheduler\(executors="):
        Scheduler(db=sqlite_url).run(on_gpu(1))
    with pytest.raises(ExecutorError, match="unknown executor"):
        Scheduler(db=sqlite_url, executor="nope")
    assert Scheduler(db=sqlite_url, executors={"gpu": ThreadExecutor(1)}).run(on_gpu(3)) == 3


@task
def pid() -> int:
    return os.getpid()


@task(executor="processes")
def pid_in_process(x: int) -> tuple[int, int]:
    return os.getpid(), x + 1


@task
def make_lambda_result(n: int):
    return [inc(i) for i in range(n)]


def test_processes_executor_runs_tasks_in_other_processes(sqlite_url: str) -> None:
    with Scheduler(db=sqlite_url, executor="processes", max_workers=2) as sched:
        child = sched.run(pid())
        assert child != os.getpid()
        # Tasks returning expressions work across the process boundary too.
        assert sched.run(make_lambda_result(3)) == [1, 2, 3]


def test_per_task_executor_selection(sqlite_url: str) -> None:
    with Scheduler(db=sqlite_url) as sched:
        (child, value), here = sched.run([pid_in_process(1), pid()])
        assert value == 2 and child != os.getpid() and here == os.getpid()


@task
def takes_anything(x):
    return 1


def test_unhashable_argument_names_task_and_path(sqlite_url: str, executor: Executor) -> None:
    with pytest.raises(HashingError, match=r"takes_anything.*argument x\[1\]\['k'\]"):
        Scheduler(db=sqlite_url, executor=executor).run(
            takes_anything([1, {"k": threading.Lock()}])
        )


@task(cache=False)
def uncached_anything(x):
    return 2


@pytest.mark.parametrize("executor", ["inline", "threads"], indirect=True)
def test_cache_false_task_accepts_unhashable_arguments(sqlite_url: str, executor: Executor) -> None:
    assert Scheduler(db=sqlite_url, executor=executor).run(uncached_anything(threading.Lock())) == 2


@task
def returns_generator():
    return (i for i in range(3))


@pytest.mark.parametrize("executor", ["inline", "threads"], indirect=True)
def test_unpicklable_result_is_not_cached_but_returned(sqlite_url: str, executor: Executor) -> None:
    sched = Scheduler(db=sqlite_url, executor=executor)
    gen = sched.run(returns_generator())
    assert list(gen) == [0, 1, 2]
    assert sched.last_run is not None and sched.last_run.executed == 1
    # Not cached: no call row, and the next run executes it again.
    calls = sched.store.query(text("SELECT COUNT(*) FROM lf_calls"))[0][0]
    jobs = sched.store.query(text("SELECT status FROM lf_jobs"))
    assert calls == 0 and [tuple(j) for j in jobs] == [("done",)]
    assert list(sched.run(returns_generator())) == [0, 1, 2]
    assert sched.last_run is not None
    assert (sched.last_run.executed, sched.last_run.cached) == (1, 0)


@task(limits={"db": 1})
def exclusive(i: int, log: str) -> int:
    with open(log, "a") as fh:
        fh.write(f"start {i}\n")
    time.sleep(0.05)
    with open(log, "a") as fh:
        fh.write(f"end {i}\n")
    return i


def test_limits_serialize_tasks(sqlite_url: str, tmp_path: Path, executor: Executor) -> None:
    log = str(tmp_path / "log.txt")
    assert Scheduler(db=sqlite_url, executor=executor, limits={"db": 1}).run(
        [exclusive(i, log) for i in range(4)]
    ) == [0, 1, 2, 3]
    lines = Path(log).read_text().split()
    events = list(zip(lines[::2], lines[1::2], strict=True))
    for a, b in zip(events[::2], events[1::2], strict=True):
        assert a[0] == "start" and b[0] == "end" and a[1] == b[1]


@task
def slow(i: int) -> int:
    time.sleep(10)
    return i


@pytest.mark.parametrize("executor", ["threads", "processes"], indirect=True)
def test_cancel_stops_a_run(sqlite_url: str, executor: Executor) -> None:
    from lazyflow_core import RunCancelled

    sched = Scheduler(db=sqlite_url, executor=executor)
    threading.Timer(0.5, sched.cancel).start()
    t0 = time.perf_counter()
    with pytest.raises(RunCancelled):
        sched.run([slow(i) for i in range(2)])
    # Well under the calls' 10 s: the run did not wait for them (slack for a loaded machine).
    assert time.perf_counter() - t0 < 8
    assert sched.last_run is not None and sched.last_run.status == "cancelled"


class Holder:
    def __init__(self, inner) -> None:
        self.inner = inner


@task
def hides_an_expression():
    return Holder(inc(1))


def test_expression_hidden_in_an_object_is_a_clear_error(
    sqlite_url: str, executor: Executor
) -> None:
    with pytest.raises(TaskResultError, match=r"hides_an_expression.*Holder.*'inner'"):
        Scheduler(db=sqlite_url, executor=executor).run(hides_an_expression())


@task
async def fetch(x: int) -> int:
    import asyncio

    await asyncio.sleep(0)
    return x * 3


def test_async_tasks(sqlite_url: str, executor: Executor) -> None:
    assert Scheduler(db=sqlite_url, executor=executor).run([fetch(1), fetch(2)]) == [3, 6]


@task
def thread_of(i: int) -> tuple[int, int]:
    return i, threading.get_ident()


def test_inline_executor_runs_every_job_on_the_calling_thread_in_order(sqlite_url: str) -> None:
    sched = Scheduler(db=sqlite_url, executor="inline")
    out = sched.run([thread_of(i) for i in range(20)], cache=False)
    assert out == [(i, threading.get_ident()) for i in range(20)]
    events: list[str] = []
    ordered = Scheduler(
        db=sqlite_url, executor="inline", listeners=[lambda e: events.append(e.kind)]
    )
    ordered.run(fan_out(3))
    assert "queued" not in events  # nothing waits in a pool: a job starts when dispatched
