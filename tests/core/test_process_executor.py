"""The process executor: results, errors, crashes and cancellation across the process boundary.

Tasks are module-level here so the spawned workers import them by reference, as they
would a user's workflow module.
"""

from __future__ import annotations

import os
import pickle
import sys
import threading
import time
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import pytest

from lazyflow_core import RunCancelled, Scheduler, task
from lazyflow_core.errors import RemoteTraceback
from lazyflow_core.executors import JobOutcome, JobSpec, ProcessExecutor

from .tasks import fan_out, inc


@task
def where(x: int) -> tuple[int, int]:
    return os.getpid(), x


class TaskFailure(Exception):
    pass


@task
def fails(x: int) -> int:
    if x == 3:
        raise TaskFailure(f"bad input {x}")
    return x


class NeedsTwoArgs(Exception):
    """Pickles, but cannot be rebuilt from ``self.args`` (a classic unpickling trap)."""

    def __init__(self, a: str, b: str) -> None:
        super().__init__(f"{a}/{b}")


@task
def raises_unrebuildable() -> None:
    raise NeedsTwoArgs("x", "y")


class Unpicklable(Exception):
    def __reduce__(self):  # type: ignore[no-untyped-def]
        raise TypeError("no pickling for you")


@task
def raises_unpicklable() -> None:
    raise Unpicklable("kept as text")


@task
def big(n: int) -> bytes:
    return bytes(range(256)) * (n // 256)


@task(cache=False)
def returns_lock() -> threading.Lock:
    return threading.Lock()


@task(cache=False)
def echo_anything(x):  # type: ignore[no-untyped-def]
    return 1


@task(cache=False)
def apply(fn, x: int) -> int:  # type: ignore[no-untyped-def]
    return fn(x)  # type: ignore[no-any-return]


@task
def crash(code: int) -> int:
    os._exit(code)


@task
def sleepy(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


def test_fan_out_in_worker_processes(sqlite_url: str) -> None:
    with Scheduler(db=sqlite_url, executor="processes", max_workers=2) as sched:
        assert sched.run(fan_out(300)) == sum(range(1, 301))
        summary = sched.last_run
        assert summary is not None and summary.executed == 302
        pids = {pid for pid, _ in sched.run([where(i) for i in range(100)])}
        assert os.getpid() not in pids and 1 <= len(pids) <= 2
        # Cached on the second run: nothing is sent to the workers.
        assert sched.run(fan_out(300)) == sum(range(1, 301))
        assert sched.last_run is not None and sched.last_run.executed == 0


def test_failing_task_keeps_type_message_and_remote_traceback(sqlite_url: str) -> None:
    with Scheduler(db=sqlite_url, executor="processes", max_workers=2) as sched:
        with pytest.raises(TaskFailure, match="bad input 3") as info:
            sched.run([fails(i) for i in range(6)])
        assert isinstance(info.value.__cause__, RemoteTraceback)
        assert "raise TaskFailure" in str(info.value.__cause__)
        # The other jobs of the same batch were not affected.
        assert sched.run([fails(i) for i in (0, 1, 2, 4)]) == [0, 1, 2, 4]


def test_errors_that_do_not_pickle_or_unpickle(sqlite_url: str) -> None:
    with Scheduler(db=sqlite_url, executor="processes", max_workers=1) as sched:
        with pytest.raises(RuntimeError, match="Unpicklable: kept as text"):
            sched.run(raises_unpicklable())
        with pytest.raises(TypeError, match="NeedsTwoArgs"):
            sched.run(raises_unrebuildable())
        # The pool survives both.
        assert sched.run(inc(1)) == 2


def test_big_result_round_trips_and_is_cached(sqlite_url: str) -> None:
    n = 48 * 1024 * 1024
    with Scheduler(db=sqlite_url, executor="processes", max_workers=2) as sched:
        value = sched.run(big(n))
        assert len(value) == n and value[:3] == b"\x00\x01\x02" and value[-1] == 255
        assert sched.run(big(n)) == value
        assert sched.last_run is not None and sched.last_run.cached == 1


def test_result_that_cannot_be_sent_back_names_the_task(sqlite_url: str) -> None:
    with (
        Scheduler(db=sqlite_url, executor="processes", max_workers=1) as sched,
        pytest.raises(TypeError, match=r"returns_lock.*cannot be sent back"),
    ):
        sched.run(returns_lock())


def test_unpicklable_argument_fails_only_its_own_job(sqlite_url: str) -> None:
    with Scheduler(db=sqlite_url, executor="processes", max_workers=1) as sched:
        with pytest.raises(TypeError, match="lock"):
            sched.run([echo_anything(threading.Lock())] + [echo_anything(i) for i in range(5)])
        summary = sched.last_run
        assert summary is not None and summary.failed == 1 and summary.executed == 5
        assert sched.run([echo_anything(i) for i in range(5)]) == [1] * 5


def test_closures_travel_by_value(sqlite_url: str) -> None:
    k = 10
    with Scheduler(db=sqlite_url, executor="processes", max_workers=1) as sched:
        assert sched.run(apply(lambda x: x + k, 1)) == 11


def test_worker_crash_fails_the_job_and_a_new_pool_serves_later_jobs(sqlite_url: str) -> None:
    with Scheduler(db=sqlite_url, executor="processes", max_workers=2) as sched:
        with pytest.raises(BrokenProcessPool):
            sched.run(crash(3))
        assert sched.run(inc(41)) == 42


@task(retries=1)
def crash_once(marker: str) -> str:
    if not os.path.exists(marker):
        Path(marker).touch()
        os._exit(5)
    return "second attempt"


def test_a_retry_after_a_worker_crash_runs_in_a_new_pool(sqlite_url: str, tmp_path: Path) -> None:
    with Scheduler(db=sqlite_url, executor="processes", max_workers=1) as sched:
        assert sched.run(crash_once(str(tmp_path / "crashed"))) == "second attempt"


def test_task_module_missing_in_the_worker_fails_its_jobs_not_the_pool(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Scheduler(db=sqlite_url, executor="processes", max_workers=1) as sched:
        assert sched.run(inc(1)) == 2  # the worker starts with today's sys.path
        (tmp_path / "late_module.py").write_text(
            "from lazyflow_core import task\n\n@task\ndef late(x):\n    return x\n"
        )
        monkeypatch.syspath_prepend(str(tmp_path))
        monkeypatch.delitem(sys.modules, "late_module", raising=False)
        import late_module  # type: ignore[import-not-found]

        with pytest.raises(ModuleNotFoundError, match="late_module") as info:
            sched.run(late_module.late(1))
        assert "ModuleNotFoundError" in str(info.value.__cause__)
        assert sched.run(inc(2)) == 3  # the same worker still serves


def test_cancel_terminates_running_workers(sqlite_url: str) -> None:
    sched = Scheduler(db=sqlite_url, executor="processes", max_workers=2)
    threading.Timer(1.5, sched.cancel).start()
    t0 = time.perf_counter()
    with pytest.raises(RunCancelled):
        sched.run([sleepy(30.0 + i) for i in range(4)])
    assert time.perf_counter() - t0 < 15
    assert sched.last_run is not None and sched.last_run.status == "cancelled"
    sched.close(cancel=True)


def test_executor_restarts_after_shutdown(sqlite_url: str) -> None:
    executor = ProcessExecutor(max_workers=1)
    with Scheduler(db=sqlite_url, executor=executor) as sched:
        assert sched.run(inc(1)) == 2
        executor.shutdown()
        assert sched.run(inc(2)) == 3


def test_executor_used_directly() -> None:
    """The executor interface on its own: one future per job, outcomes with hash and data."""
    executor = ProcessExecutor(max_workers=1)
    try:
        futures = [executor.submit(JobSpec(f"j{i}", inc, (i,), {})) for i in range(5)]
        executor.flush()
        outcomes = [f.result(timeout=60) for f in futures]
    finally:
        executor.shutdown()
    assert [o.value for o in outcomes] == [1, 2, 3, 4, 5]
    for o in outcomes:
        assert isinstance(o, JobOutcome) and o.error is None
        assert o.digest is not None and o.data is not None and pickle.loads(o.data) == o.value
        assert 0 < o.started <= o.finished


def test_shutdown_without_jobs_spawns_nothing(tmp_path: Path) -> None:
    executor = ProcessExecutor(max_workers=2)
    executor.shutdown()
    executor.shutdown(cancel=True)


@task
def spread(n: int):
    return [where(i) for i in range(n)]


@task
def slow_where(i: int) -> tuple[int, int]:
    time.sleep(1.0)
    return os.getpid(), i


@task
def slow_spread(n: int):
    return [slow_where(i) for i in range(n)]


def test_tiny_jobs_behind_one_task_stay_on_the_warm_worker(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A second worker would spend more on starting than the jobs need."""
    from lazyflow_core.executors import processes

    monkeypatch.setattr(processes, "GROW_AFTER_SECONDS", 30.0)  # no stalls on a busy CI
    executor = ProcessExecutor(max_workers=2)
    with Scheduler(db=sqlite_url, executor=executor) as sched:
        pids = {pid for pid, _ in sched.run(spread(500))}
        assert len(pids) == 1 and executor._workers == 1


def test_slow_jobs_behind_one_task_get_more_workers(sqlite_url: str) -> None:
    executor = ProcessExecutor(max_workers=2)
    with Scheduler(db=sqlite_url, executor=executor) as sched:
        results = sched.run(slow_spread(6))
        assert sorted(i for _, i in results) == list(range(6))
        assert len({pid for pid, _ in results}) == 2 and executor._workers == 2


def test_jobs_sent_together_start_workers_together(sqlite_url: str) -> None:
    executor = ProcessExecutor(max_workers=3)
    with Scheduler(db=sqlite_url, executor=executor) as sched:
        sched.run([where(i) for i in range(2)])
        assert executor._workers == 2


def test_a_pool_started_ahead_runs_one_worker_until_jobs_come(sqlite_url: str) -> None:
    executor = ProcessExecutor(max_workers=3)
    executor.start()  # e.g. while the store opens
    assert executor._workers == 1
    with Scheduler(db=sqlite_url, executor=executor) as sched:
        sched.run([where(i) for i in range(2)])
        assert executor._workers == 2
        assert 0.05 <= executor._startup < 60  # measured from the first worker


def test_batches_follow_measured_run_times(monkeypatch: pytest.MonkeyPatch) -> None:
    """Unmeasured tasks go `MAX_BATCH` to a message at most; tiny ones by the hundred;
    slow ones alone; and every worker gets work when there is little."""
    from lazyflow_core.executors import processes

    executor = ProcessExecutor(max_workers=2)
    sent: list[int] = []
    monkeypatch.setattr(executor, "_pool", object())
    monkeypatch.setattr(executor, "_send", lambda specs, futures: sent.append(len(specs)))

    def batches(n: int) -> list[int]:
        sent.clear()
        for i in range(n):
            executor.submit(JobSpec(str(i), inc, (i,), {}))
        executor.flush()
        assert sum(sent) == n
        return list(sent)

    assert batches(1) == [1]
    assert batches(4) == [1, 1, 1, 1]
    assert max(batches(1000)) == processes.MAX_BATCH
    executor._runtime[inc.name] = (100, 100 * 20e-6)
    assert batches(1000) == [250] * 4
    assert len(batches(100_000)) <= 250
    executor._runtime[inc.name] = (10, 10 * 0.5)
    assert batches(10) == [1] * 10


def test_a_pool_without_the_internals_starts_workers_on_demand(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a Python whose ProcessPoolExecutor lacks what growing needs, jobs still run."""
    from lazyflow_core.executors import processes

    monkeypatch.setattr(processes, "_POOL_INTERNALS", ("_no_such_attribute",))
    executor = ProcessExecutor(max_workers=2)
    with Scheduler(db=sqlite_url, executor=executor) as sched:
        assert sched.run(fan_out(50)) == sum(range(1, 51))
        assert not executor._growable


def test_workers_that_cannot_start_leave_the_pool_with_those_that_did(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from concurrent.futures import ProcessPoolExecutor

    spawn = ProcessPoolExecutor._spawn_process  # type: ignore[attr-defined]
    calls = []

    def spawn_once(pool: ProcessPoolExecutor) -> None:
        calls.append(pool)
        if len(calls) > 1:
            raise OSError("no more processes")
        spawn(pool)

    monkeypatch.setattr(ProcessPoolExecutor, "_spawn_process", spawn_once)
    executor = ProcessExecutor(max_workers=3)
    with Scheduler(db=sqlite_url, executor=executor) as sched:
        assert sched.run([inc(i) for i in range(6)]) == [1, 2, 3, 4, 5, 6]
        assert executor._workers == 1 and not executor._growable
