"""The executor contract: results, errors, retries, cancellation, files and caching
behave the same on every executor (`EXECUTORS` in tests/conftest.py)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from lazyflow_core import File, RunCancelled, Scheduler
from lazyflow_core.executors import Executor

from .tasks import Boom, explode, flaky, nap, shout, square, squares, total, write


def test_results_of_a_fan_out_and_of_returned_expressions(
    executor: Executor, sqlite_url: str
) -> None:
    with Scheduler(db=sqlite_url, executor=executor) as sched:
        assert sched.run(total([square(i) for i in range(30)])) == sum(i * i for i in range(30))
        assert sched.run(squares(40)) == sum(i * i for i in range(40))
        summary = sched.last_run  # squares, total and square(30..39): the rest was cached
        assert summary is not None and (summary.executed, summary.cached) == (12, 30)


def test_a_task_exception_keeps_its_type_and_names_the_task(
    executor: Executor, sqlite_url: str
) -> None:
    with Scheduler(db=sqlite_url, executor=executor) as sched:
        with pytest.raises(Boom, match="bad input 7") as info:
            sched.run(total([square(1), explode(7)]))
        assert any("explode" in note for note in getattr(info.value, "__notes__", ()))
        assert sched.last_run is not None and sched.last_run.failed == 1
        # the call that succeeded stays cached although the run failed
        assert sched.run(square(1)) == 1
        assert sched.last_run.cached == 1


def test_task_retries_rerun_a_failing_call(
    executor: Executor, sqlite_url: str, tmp_path: Path
) -> None:
    state = str(tmp_path / "attempts")
    with Scheduler(db=sqlite_url, executor=executor) as sched:
        assert sched.run(flaky(state)) == "ok after 3"
    assert len(list(Path(state).iterdir())) == 3


def test_files_flow_between_tasks_and_a_changed_file_reruns(
    executor: Executor, sqlite_url: str, tmp_path: Path
) -> None:
    path = str(tmp_path / "out.txt")
    with Scheduler(db=sqlite_url, executor=executor) as sched:
        assert sched.run(shout(write(path, "hello"))) == "HELLO"
        assert sched.run(shout(File(path))) == "HELLO"
        time.sleep(0.01)
        Path(path).write_text("changed!")
        assert sched.run(shout(File(path))) == "CHANGED!"
        assert sched.last_run is not None and sched.last_run.executed == 1


def test_a_second_run_is_served_from_the_cache(executor: Executor, sqlite_url: str) -> None:
    with Scheduler(db=sqlite_url, executor=executor) as sched:
        expr = total([square(i) for i in range(20)])
        first = sched.run(expr)
        again = sched.run(total([square(i) for i in range(20)]))
        assert first == again
        summary = sched.last_run
        assert summary is not None and summary.executed == 0 and summary.cached >= 1
        sched.run(total([square(i) for i in range(20)]), cache=False)
        assert sched.last_run is not None and sched.last_run.executed == 21


def test_cancel_stops_the_run_and_the_jobs_not_started(
    executor: Executor, sqlite_url: str, tmp_path: Path
) -> None:
    if executor.name == "inline":
        pytest.skip("the inline executor runs every job inside submit: nothing to cancel")
    state = str(tmp_path / "naps")
    sched = Scheduler(db=sqlite_url, executor=executor)
    try:
        sched.run(square(0))  # workers up, so that cancelling is what the test times
        threading.Timer(0.5, sched.cancel).start()
        with pytest.raises(RunCancelled):
            sched.run([nap(1.0 + i / 100, state) for i in range(8)])
        assert sched.last_run is not None and sched.last_run.status == "cancelled"
        time.sleep(2.0)  # long enough for queued naps to start, had they not been cancelled
        started = list(Path(state).iterdir()) if Path(state).exists() else []
        assert len(started) < 8  # none at all when the cancel came before the first
    finally:
        sched.close(cancel=True)
