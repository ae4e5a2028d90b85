"""Job events and the end of a job: the exact sequence listeners see, the reason of every
cache decision (in real runs, not only in ``explain``), retries, merged calls, caught
failures and cycles. The job records and the run summary agree with the events."""

from __future__ import annotations

import threading
from collections import defaultdict
from typing import Any

import pytest
from sqlalchemy import text

from lazyflow_core import CycleError, JobEvent, Reason, Scheduler, catch, cond, task
from lazyflow_core.executors import Executor

from .tasks import fan_out, inc, total


def _short(events: list[JobEvent]) -> list[tuple[str, str]]:
    return [(e.kind, e.task_name.rsplit(".", 1)[-1]) for e in events]


def test_listeners_receive_job_events(sqlite_url: str) -> None:
    """On the inline executor the order is fixed: every transition, in order."""
    events: list[JobEvent] = []
    sched = Scheduler(db=sqlite_url, executor="inline", listeners=[events.append])
    assert sched.run(fan_out(2)) == 3
    assert _short(events) == [
        ("pending", "fan_out"),
        ("started", "fan_out"),
        ("pending", "inc"),
        ("pending", "inc"),
        ("started", "inc"),
        ("done", "inc"),
        ("started", "inc"),
        ("done", "inc"),
        ("pending", "total"),
        ("started", "total"),
        ("done", "total"),
        ("done", "fan_out"),
    ]
    started = [e for e in events if e.kind == "started"]
    assert {e.reason for e in started} == {Reason.NOT_CACHED}
    assert [e.args_preview for e in events if e.kind == "done"] == [
        "inc(0)",
        "inc(1)",
        "total([1, 2])",
        "fan_out(2)",
    ]
    assert len({e.job_id for e in events}) == 4 and {e.execution_id for e in events} == {
        sched.last_run.execution_id  # type: ignore[union-attr]
    }
    events.clear()
    assert sched.run(fan_out(2)) == 3
    assert _short(events) == [("pending", "fan_out"), ("cached", "fan_out")]
    assert events[-1].reason == Reason.CACHED == "cached"


def _per_job(events: list[JobEvent]) -> dict[str, list[str]]:
    jobs: dict[str, list[str]] = defaultdict(list)
    for e in events:
        jobs[e.job_id].append(e.kind)
    return jobs


def test_every_job_sees_its_transitions_in_order_on_every_executor(
    sqlite_url: str, executor: Executor
) -> None:
    events: list[JobEvent] = []
    sched = Scheduler(db=sqlite_url, executor=executor, listeners=[events.append])
    assert sched.run(fan_out(20)) == sum(range(1, 21))
    allowed = (["pending", "started", "done"], ["pending", "queued", "started", "done"])
    for kinds in _per_job(events).values():
        assert kinds in allowed, kinds
    assert sum(e.kind == "done" for e in events) == 22 == sched.last_run.executed  # type: ignore[union-attr]


ATTEMPTS: dict[str, int] = {}
LOCK = threading.Lock()


@task(retries=2)
def flaky(key: str) -> str:
    with LOCK:
        ATTEMPTS[key] = ATTEMPTS.get(key, 0) + 1
        n = ATTEMPTS[key]
    if n < 3:
        raise ConnectionError(f"attempt {n}")
    return f"ok after {n}"


@pytest.mark.parametrize("executor", ["inline", "threads"], indirect=True)  # ATTEMPTS: here
def test_retries_are_events_and_the_job_records_its_attempts(
    sqlite_url: str, executor: Executor
) -> None:
    ATTEMPTS.clear()
    events: list[JobEvent] = []
    sched = Scheduler(db=sqlite_url, executor=executor, listeners=[events.append])
    assert sched.run(flaky("k")) == "ok after 3"
    kinds = [e.kind for e in events]
    assert kinds in (
        ["pending", "started", "retry", "retry", "done"],
        ["pending", "queued", "started", "retry", "retry", "done"],
    )
    assert [e.error for e in events if e.kind == "retry"] == [
        "ConnectionError: attempt 1",
        "ConnectionError: attempt 2",
    ]
    rows = sched.store.query(text("SELECT status, attempts FROM lf_jobs"))
    assert [tuple(r) for r in rows] == [("done", 3)]


@task
def slow_double(x: int) -> int:
    return 2 * x


def test_identical_calls_in_flight_are_merged(sqlite_url: str) -> None:
    events: list[JobEvent] = []
    sched = Scheduler(db=sqlite_url, executor="inline", listeners=[events.append])
    assert sched.run(total([slow_double(3), slow_double(3), slow_double(4)])) == 20
    merged = [e for e in events if e.kind == "merged"]
    assert [e.args_preview for e in merged] == ["slow_double(3)"]
    done = {e.call_hash for e in events if e.kind == "done"}
    assert merged[0].call_hash in done  # it took the result of the call that ran
    assert sched.last_run is not None and sched.last_run.executed == 3  # a merged call is no job


@task
def boom(x: int) -> int:
    raise ValueError(f"boom {x}")


@task
def fallback(exc: BaseException) -> int:
    return -1


@task
def calls_boom(x: int):  # type: ignore[no-untyped-def]
    return boom(x)


def test_a_caught_failure_is_not_counted_as_failed(sqlite_url: str) -> None:
    events: list[JobEvent] = []
    sched = Scheduler(db=sqlite_url, executor="inline", listeners=[events.append])
    assert sched.run(total([inc(1), catch(calls_boom(7), ValueError, fallback)])) == 1
    s = sched.last_run
    assert s is not None
    # boom(7) raised and calls_boom(7) failed with it; the catch handled both (a catch
    # outside any task is a call of its own, lazyflow.catch, so that it is cached)
    assert (s.failed, s.caught, s.executed, s.jobs) == (0, 2, 6, 6)
    assert s.to_dict()["jobs"] == 6 and s.to_dict()["caught"] == 2
    assert [(e.kind, e.args_preview) for e in events if e.kind in ("failed", "caught")] == [
        ("caught", "boom(7)"),
        ("caught", "calls_boom(7)"),
    ]
    rows = dict(
        tuple(r)  # type: ignore[misc]
        for r in sched.store.query(text("SELECT args_preview, status FROM lf_jobs"))
    )
    assert rows["boom(7)"] == "failed" and rows["calls_boom(7)"] == "failed"  # records: history


def test_an_uncaught_failure_is_failed(sqlite_url: str) -> None:
    events: list[JobEvent] = []
    sched = Scheduler(db=sqlite_url, executor="inline", listeners=[events.append])
    with pytest.raises(ValueError, match="boom 7"):
        sched.run(total([inc(1), calls_boom(7)]))
    s = sched.last_run
    assert s is not None and (s.failed, s.caught, s.executed) == (2, 0, 1)
    assert [(e.kind, e.error) for e in events if e.kind == "failed"] == [
        ("failed", "ValueError: boom 7"),
        ("failed", "a call it made failed: ValueError: boom 7"),
    ]


@task(cache=False)
def uncached(x: int) -> int:
    return x


def test_real_runs_give_the_reason_of_every_cache_decision(sqlite_url: str) -> None:
    events: list[JobEvent] = []
    sched = Scheduler(db=sqlite_url, executor="inline", listeners=[events.append])

    def reasons(expr: Any, **kwargs: Any) -> list[tuple[str, str | None]]:
        events.clear()
        sched.run(expr, **kwargs)
        return [(e.args_preview, e.reason) for e in events if e.kind in ("started", "cached")]

    assert reasons(inc(1)) == [("inc(1)", Reason.NOT_CACHED)]
    assert reasons(inc(1)) == [("inc(1)", Reason.CACHED)]
    assert reasons(inc(2)) == [("inc(2)", Reason.NOT_CACHED)]
    assert reasons(inc(1), cache=False) == [("inc(1)", Reason.CACHE_DISABLED)]
    assert reasons(uncached(1)) == [("uncached(1)", Reason.CACHE_DISABLED)]


@task
def loop(n: int):  # type: ignore[no-untyped-def]
    return loop(n)


@task
def ping(n: int):  # type: ignore[no-untyped-def]
    return [pong(n)]


@task
def pong(n: int):  # type: ignore[no-untyped-def]
    return cond(True, ping(n), 0)


def test_a_cycle_is_an_error_that_names_its_calls(sqlite_url: str) -> None:
    sched = Scheduler(db=sqlite_url, executor="inline")
    with pytest.raises(
        CycleError, match=r"wait for each other's results.*: loop\(1\) -> loop\(1\)"
    ):
        sched.run(loop(1))
    with pytest.raises(CycleError, match=r": ping\(2\) -> pong\(2\) -> ping\(2\)\."):
        sched.run(ping(2))
    assert sched.last_run is not None and sched.last_run.status == "failed"
    assert sched.run(inc(1)) == 2  # the scheduler is fine afterwards
