"""The process executor: results, errors, crashes and cancellation across the process boundary.

Tasks are module-level here so the spawned workers import them by reference, as they
would a user's workflow module.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import BrokenExecutor, CancelledError, Future
from pathlib import Path
from typing import Any

import pytest

from lazyflow_core import LazyflowError, RunCancelled, Scheduler, catch, task
from lazyflow_core.errors import ExecutorError, RemoteTraceback, SerializationError, WorkerLost
from lazyflow_core.executors import JobOutcome, JobSpec, ProcessExecutor
from lazyflow_core.executors.base import Sink
from lazyflow_core.executors.bundling import RunTimes

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
        pytest.raises(SerializationError, match=r"returns_lock.*cannot be sent back") as info,
    ):
        sched.run(returns_lock())
    assert isinstance(info.value, LazyflowError) and isinstance(info.value, TypeError)


def test_unpicklable_argument_fails_only_its_own_job(sqlite_url: str) -> None:
    with Scheduler(db=sqlite_url, executor="processes", max_workers=1) as sched:
        with pytest.raises(SerializationError, match="lock"):
            sched.run([echo_anything(threading.Lock())] + [echo_anything(i) for i in range(5)])
        summary = sched.last_run
        assert summary is not None and summary.failed == 1 and summary.executed == 5
        assert sched.run([echo_anything(i) for i in range(5)]) == [1] * 5


def test_closures_travel_by_value(sqlite_url: str) -> None:
    k = 10
    with Scheduler(db=sqlite_url, executor="processes", max_workers=1) as sched:
        assert sched.run(apply(lambda x: x + k, 1)) == 11


def test_worker_crash_fails_the_job_and_a_new_worker_serves_later_jobs(sqlite_url: str) -> None:
    with Scheduler(db=sqlite_url, executor="processes", max_workers=2) as sched:
        with pytest.raises(WorkerLost, match=r"running task '.*crash' exited with code 3") as info:
            sched.run(crash(3))
        assert isinstance(info.value, BrokenExecutor)  # as the standard library's pools say
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


def _children() -> set[int]:
    """Process ids of this process's live children (Linux: /proc/self/task/*/children)."""
    pids: set[int] = set()
    for path in Path("/proc/self/task").glob("*/children"):
        with contextlib.suppress(OSError):
            pids.update(int(pid) for pid in path.read_text().split())
    return {pid for pid in pids if Path(f"/proc/{pid}").exists()}


def test_shutdown_without_jobs_spawns_nothing() -> None:
    """An executor that never got a job starts no process and no thread, and shutting it
    down (twice, both ways) is a no-op; one that ran a job did start a worker (so the
    probe can see one), and its shutdown stops it."""
    before = _children()
    executor = ProcessExecutor(max_workers=2)
    executor.shutdown()
    executor.shutdown(cancel=True)
    assert not _children() - before and executor._workers == 0 and not executor._threads
    used = ProcessExecutor(max_workers=1)
    try:
        future = used.submit(JobSpec("j0", inc, (1,), {}))
        used.flush()
        assert future.result(timeout=60).value == 2
        assert _children() - before, "a worker process ran the job"
    finally:
        used.shutdown()
    assert not _children() - before


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


def test_a_run_starts_its_pool_before_the_root_call_is_sent(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worker imports while the run sets up (store, execution record, root lookup),
    preloading the root task's module; the root call then finds the pool started."""
    executor = ProcessExecutor(max_workers=2)
    seen: list[tuple[bool, tuple[str, ...]]] = []
    real_post = executor.post

    def post(spec: JobSpec, token: Any, sink: Sink) -> None:
        seen.append((executor._started, executor._preload))
        real_post(spec, token, sink)

    monkeypatch.setattr(executor, "post", post)
    with Scheduler(db=sqlite_url, executor=executor) as sched:
        assert sched.run(fan_out(3)) == 6
    assert seen[0] == (True, (fan_out.func.__module__,))


def test_a_pool_shut_down_while_its_worker_starts_stops_it_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A pool warmed for a run that needed no job (its root call was cached): the worker
    still starting is stopped, not waited for; one whose process is only being created
    as the pool shuts down stops as soon as it exists. Nothing is left running."""
    before = _children()
    executor = ProcessExecutor(max_workers=1)
    executor.warm((inc,))
    workers, threads = list(executor._pool), list(executor._threads)
    executor.shutdown()
    assert not any(t.is_alive() for t in threads)
    assert [w.proc.returncode for w in workers if w.proc] == [-signal.SIGTERM]

    late = ProcessExecutor(max_workers=1)
    gate = threading.Event()
    real_popen = late._popen

    def slow_popen(args: list[str], fds: tuple[int, int]) -> subprocess.Popen[bytes]:
        gate.wait(30)  # the process is created only once the pool has shut down
        return real_popen(args, fds)

    monkeypatch.setattr(late, "_popen", slow_popen)
    late.warm((inc,))
    workers, threads = list(late._pool), list(late._threads)
    threading.Timer(0.2, gate.set).start()
    late.shutdown()
    for thread in threads:
        thread.join(10)
    assert not any(t.is_alive() for t in threads)
    assert [w.proc.returncode for w in workers if w.proc] == [-signal.SIGTERM]
    assert not _children() - before


def test_batches_follow_measured_run_times(monkeypatch: pytest.MonkeyPatch) -> None:
    """Unmeasured tasks go `MAX_BATCH` to a message at most; tiny ones by the hundred;
    slow ones alone; and every worker gets work when there is little."""
    from lazyflow_core.executors import processes

    executor = ProcessExecutor(max_workers=2)
    sent: list[int] = []
    monkeypatch.setattr(executor, "_started", True)
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

    def measured(seconds: float) -> RunTimes:
        times = RunTimes(executor._runtime.unmeasured, executor._runtime.floor)
        times.record(inc.name, 1.0, 1.0 + seconds)
        return times

    monkeypatch.setattr(executor, "_runtime", measured(20e-6))
    assert batches(1000) == [250] * 4
    assert len(batches(100_000)) <= 250
    monkeypatch.setattr(executor, "_runtime", measured(0.5))
    assert batches(10) == [1] * 10


def test_workers_that_cannot_start_leave_the_pool_with_those_that_did(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    popen = ProcessExecutor._popen
    calls = []

    def popen_once(self: ProcessExecutor, args: list[str], fds: tuple[int, int]) -> Any:
        calls.append(args)
        if len(calls) > 1:
            raise OSError("no more processes")
        return popen(self, args, fds)

    monkeypatch.setattr(ProcessExecutor, "_popen", popen_once)
    executor = ProcessExecutor(max_workers=3)
    with Scheduler(db=sqlite_url, executor=executor) as sched:
        assert sched.run([inc(i) for i in range(6)]) == [1, 2, 3, 4, 5, 6]
        assert executor._workers == 1 and not executor._growable


def test_no_worker_at_all_fails_the_jobs_with_the_reason(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker that dies as it starts (here: an interpreter that exits at once) is not a
    crash of a job: with no worker left, the jobs fail, saying why."""

    def dies_at_once(self: ProcessExecutor, args: list[str], fds: tuple[int, int]) -> Any:
        return subprocess.Popen([sys.executable, "-c", "import os; os._exit(7)"])

    monkeypatch.setattr(ProcessExecutor, "_popen", dies_at_once)
    with (
        Scheduler(db=sqlite_url, executor="processes", max_workers=2) as sched,
        pytest.raises(ExecutorError, match="start a worker process: it exited with code 7"),
    ):
        sched.run([inc(i) for i in range(3)])


@task
def crash_on(x: int, bad: int) -> int:
    if x == bad:
        os._exit(9)
    return x


@task
def lost(exc: BaseException) -> str:
    return f"lost: {type(exc).__name__}"


def test_a_dead_worker_fails_only_the_job_it_was_running(sqlite_url: str) -> None:
    """The jobs queued behind the crash in the same worker (one batch) run elsewhere."""
    calls = [catch(crash_on(i, 3), WorkerLost, lost) for i in range(8)]
    with Scheduler(db=sqlite_url, executor="processes", max_workers=1) as sched:
        assert sched.run(calls) == [0, 1, 2, "lost: WorkerLost", 4, 5, 6, 7]


@task(cache=False)
def nap(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


def test_each_outcome_comes_back_as_its_job_finishes() -> None:
    """Not when its batch is done: a run killed mid-batch keeps the finished jobs."""
    executor = ProcessExecutor(max_workers=1)
    futures: list[Future[JobOutcome]] = [Future() for _ in range(3)]
    specs = [JobSpec(f"j{i}", nap, (s,), {}) for i, s in enumerate((0.0, 0.0, 60.0))]
    try:
        executor.start()
        executor._send(specs, futures)  # one message, one batch
        assert futures[1].result(timeout=60).value == 0.0
        assert futures[0].done() and not futures[2].done()
    finally:
        executor.shutdown(cancel=True)
    assert isinstance(futures[2].result(timeout=10).error, CancelledError)


def test_posted_jobs_reach_their_sink_once_each_in_lists() -> None:
    """`post`: every job's outcome reaches the sink exactly once with its token, in
    lists (no future per job); a cancelled job fails once, not again when its worker
    reports."""
    executor = ProcessExecutor(max_workers=1)
    lists: list[list[tuple[Any, JobOutcome]]] = []
    arrived = threading.Event()

    def sink(items: list[tuple[Any, JobOutcome]]) -> None:
        lists.append(items)
        if sum(len(x) for x in lists) >= 40:
            arrived.set()

    try:
        for i in range(40):
            executor.post(JobSpec(f"j{i}", inc, (i,), {}), ("token", i), sink)
        executor.post(JobSpec("slow", nap, (60.0,), {}), ("token", "slow"), sink)
        executor.flush()
        assert arrived.wait(60)
    finally:
        executor.shutdown(cancel=True)
    got = [pair for items in lists for pair in items]
    assert sorted(str(token) for token, _ in got) == sorted(
        str(("token", i)) for i in [*range(40), "slow"]
    )
    values = {token[1]: out for token, out in got}
    assert all(values[i].value == i + 1 for i in range(40))
    assert isinstance(values["slow"].error, CancelledError)


def test_batches_queued_while_the_workers_are_busy_leave_as_one_message(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Small batches (a trickle of submissions, one flush each) that pile up while the
    worker is busy are merged into one message when it has room, results in order."""
    from lazyflow_core.executors import processes

    writes: list[int] = []
    real_write = processes._Worker.write

    def counting_write(self: Any, data: bytes) -> None:
        writes.append(len(data))
        real_write(self, data)

    monkeypatch.setattr(processes._Worker, "write", counting_write)
    executor = ProcessExecutor(max_workers=1)
    first: list[Future[JobOutcome]] = [Future()]
    busy: list[Future[JobOutcome]] = [Future()]
    futures: list[Future[JobOutcome]] = [Future() for _ in range(20)]
    try:
        executor.start()
        executor._send([JobSpec("first", where, (-1,), {})], first)
        assert first[0].result(timeout=60).value[1] == -1  # `where` is measured now
        executor._send([JobSpec("busy", nap, (0.5,), {})], busy)  # unmeasured: no room
        for i, fut in enumerate(futures):
            executor._send([JobSpec(f"j{i}", where, (i,), {})], [fut])
        assert [f.result(timeout=60).value[1] for f in futures] == list(range(20))
        assert busy[0].result(timeout=60).value == 0.5
    finally:
        executor.shutdown()
    # the hello, the first job, the busy job, the 20 others together; one message per
    # batch would be 23
    assert len(writes) == 4


def test_unpicklable_argument_error_names_the_task_and_argument(sqlite_url: str) -> None:
    with (
        Scheduler(db=sqlite_url, executor="processes", max_workers=1) as sched,
        pytest.raises(SerializationError, match=r"task '.*echo_anything': argument 0 \(<unlocked"),
    ):
        sched.run(echo_anything(threading.Lock()))


def test_workers_ignore_ctrl_c_and_the_run_stops_them(sqlite_url: str) -> None:
    """Ctrl-C reaches the whole process group: the workers leave it to the run."""
    with Scheduler(db=sqlite_url, executor="processes", max_workers=1) as sched:
        pid, _ = sched.run(where(1))
        os.kill(pid, signal.SIGINT)
        time.sleep(0.5)
        assert sched.run(where(2))[0] == pid  # the same worker, still serving
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # closing the scheduler stopped its own pool


SCRIPT_WITHOUT_GUARD = """
import sys
from lazyflow_core import Scheduler, task

print("module body ran", flush=True)

@task
def square(x):
    return x * x

with Scheduler(db=sys.argv[1], executor="processes", max_workers=2) as sched:
    print(sched.run([square(i) for i in range(4)]))
"""


def test_a_plain_script_needs_no_main_guard(tmp_path: Path, sqlite_url: str) -> None:
    """Workers never re-run the script (multiprocessing's spawn would, without the guard,
    and fail with a 40-line RuntimeError); nothing leaks at exit (no semaphores)."""
    script = tmp_path / "plain.py"
    script.write_text(SCRIPT_WITHOUT_GUARD)
    done = subprocess.run(
        [sys.executable, str(script), sqlite_url], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["module body ran", "[0, 1, 4, 9]"]
    assert done.stderr == ""


def test_close_leaves_an_executor_passed_in_running_and_stops_its_own(
    sqlite_url: str, tmp_path: Path
) -> None:
    """An Executor object is its creator's: a scheduler's close keeps its warm worker
    for the next scheduler (same process serves both); one built from a name
    ("processes") is the scheduler's, and close stops its worker."""
    before = _children()
    with ProcessExecutor(max_workers=1) as mine:
        with Scheduler(db=sqlite_url, executor=mine) as first:
            pid, _ = first.run(where(1))
        assert pid in _children()  # still running after the scheduler closed
        other_db = f"sqlite:///{tmp_path / 'other.db'}"
        with Scheduler(db=other_db, executor=mine) as second:
            assert second.run(where(2)) == (pid, 2)
    assert pid not in _children()  # the end of its `with` stopped it
    named = Scheduler(db=sqlite_url, executor="processes", max_workers=1)
    own_pid, _ = named.run(where(3))
    assert own_pid in _children()
    named.close()
    assert own_pid not in _children() and not _children() - before
