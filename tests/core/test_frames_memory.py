"""What a run keeps per call: small frames, pointers cleared, shared placeholders untouched.

A million-call run keeps every frame until it ends, so the evaluator keeps a frame on its
expression (``Expression._lf_frame``) instead of in a dict, shares empty containers
between frames, and drops what only running and recording a call needed once it is
recorded. These tests pin the behaviour that makes that safe: pointers never outlive a
run (nor leak into pickles), concurrent runs over the same expressions do not share
them, and the store writer's backlog stays bounded even when one round runs thousands of
tiny calls on the scheduler thread.
"""

from __future__ import annotations

import copy
import gc
import pickle
import sys
import threading
import time
from typing import Any

import pytest

from lazyflow_core import Scheduler, catch, task
from lazyflow_core import dispatch as dispatch_module
from lazyflow_core import evaluator as evaluator_module
from lazyflow_core import frames as frames_module
from lazyflow_core.frames import CallFrame

from .tasks import inc, total


@task
def slow_inc(x: int) -> int:
    time.sleep(0.01)
    return x + 1


@task
def boom(x: int) -> int:
    raise ValueError(f"boom {x}")


@task
def fallback(exc: BaseException) -> int:
    return -1


@task
def nested_run(db: str, n: int) -> int:
    # A run inside a task: the inner evaluator must not take the outer one's pointers.
    inner = [inc(i) for i in range(n)]
    return int(Scheduler(db=db).run(total(inner)))


def _placeholders_empty() -> None:
    for name in ("NO_CHILDREN", "NO_WAITERS", "NO_ITEMS", "NO_DIGESTS", "NO_KWARGS"):
        assert not getattr(frames_module, name), f"shared placeholder {name} was filled"


def test_call_frame_is_small() -> None:
    """A frame per call, kept until the run ends: 208 bytes (it was 240)."""
    frame = CallFrame(inc(1), None, 1)
    assert sys.getsizeof(frame) <= 208


def test_pointers_are_cleared_after_a_run(sqlite_url: str) -> None:
    xs = [inc(i) for i in range(20)]
    expr = total([*xs, inc(3)])  # an identical call, deduplicated
    sched = Scheduler(db=sqlite_url)
    assert sched.run(expr) == sum(range(1, 21)) + 4
    for e in [*xs, expr]:
        assert e._lf_frame is None
    _placeholders_empty()
    # The same expression objects evaluate again in a later run (from the cache).
    assert sched.run(expr) == sum(range(1, 21)) + 4
    assert sched.run(expr, cache=False) == sum(range(1, 21)) + 4
    assert sched.last_run is not None and sched.last_run.executed == 21  # inc(3) once


def test_pointers_are_cleared_after_a_failed_run(sqlite_url: str) -> None:
    bad = boom(1)
    expr = total([inc(1), bad, catch(boom(2), ValueError, fallback)])
    with pytest.raises(ValueError, match="boom 1"):
        Scheduler(db=sqlite_url).run(expr)
    assert bad._lf_frame is None and expr._lf_frame is None
    _placeholders_empty()
    # The lock is free again: a later run keeps frames on expressions again.
    assert evaluator_module._frame_pointers.acquire(blocking=False)
    evaluator_module._frame_pointers.release()


def _live_frames() -> int:
    return sum(type(o) is CallFrame for o in gc.get_objects())


@pytest.mark.parametrize("fails", [False, True])
def test_a_runs_frames_are_freed_without_the_collector(sqlite_url: str, fails: bool) -> None:
    """A run's frames refer to each other, and the evaluator to itself: once the run is
    recorded, `Evaluator.release` cuts that, so they are freed as the run returns, not
    by a full collection walking them all (300 of them here; without it, all stay).
    Collection is back on afterwards, as it was before; a caller that had it off keeps
    it off."""
    sched = Scheduler(db=sqlite_url)
    gc.collect()
    before = _live_frames()
    gc.disable()
    try:
        expr = total([inc(i) for i in range(300)] + ([boom(1)] if fails else []))
        if fails:
            with pytest.raises(ValueError, match="boom 1") as raised:
                sched.run(expr)
            del raised  # (its traceback holds the frames it went through)
        else:
            assert sched.run(expr) == sum(range(1, 301))
        del expr
        # No cycle left for the collector; but a failure's traceback holds the frames
        # it went through, and one of them the failed call (whose error it is).
        assert _live_frames() - before <= (1 if fails else 0)
        assert not gc.isenabled()  # it was off before the run: still off
    finally:
        gc.enable()
    assert sched.run(total([inc(1)])) == 2
    assert gc.isenabled()  # on before the run: on after it
    assert [d.action for d in sched.explain(total([inc(1)]))] == ["cached", "cached"]
    assert gc.isenabled()  # a dry run pauses and resumes it the same way


def test_frame_pointers_are_not_pickled_or_copied() -> None:
    expr = total([inc(1), inc(2)])
    expr._lf_frame = lambda: None  # type: ignore[assignment]  # unpicklable on purpose
    for clone in (pickle.loads(pickle.dumps(expr)), copy.copy(expr), copy.deepcopy(expr)):
        assert clone._lf_frame is None
        assert clone.task is total and len(clone.args[0]) == 2


def test_concurrent_runs_of_the_same_expressions(tmp_path: Any) -> None:
    """Two threads evaluate one expression object at once; each gets its own frames."""
    expr = total([slow_inc(i) for i in range(30)])
    results: dict[int, Any] = {}

    def run(k: int) -> None:
        try:
            results[k] = Scheduler(db=f"sqlite:///{tmp_path}/db{k}.db").run(expr)
        except BaseException as exc:  # reported below
            results[k] = exc

    threads = [threading.Thread(target=run, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == {0: sum(range(1, 31)), 1: sum(range(1, 31))}
    assert expr._lf_frame is None
    _placeholders_empty()


def test_a_run_inside_a_task(tmp_path: Any, sqlite_url: str) -> None:
    inner_db = f"sqlite:///{tmp_path}/inner.db"
    expr = total([nested_run(inner_db, 10), inc(1)])
    assert Scheduler(db=sqlite_url).run(expr) == sum(range(1, 11)) + 2


@pytest.mark.parametrize("where", ["inline", "pool"])
def test_writer_backlog_stays_bounded_when_calls_run_inline(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    """Thousands of tiny calls run in one round on the scheduler thread, or complete in
    bursts from the thread pool; the store writer's queue (memory) must not grow with them."""
    from lazyflow_core.store.writer import StoreWriter

    monkeypatch.setenv("LAZYFLOW_WRITER", "thread")
    if where == "pool":  # no call is measured small enough to run inline
        monkeypatch.setattr(dispatch_module, "INLINE_SECONDS", 0.0)
    monkeypatch.setattr(evaluator_module, "WRITER_BACKLOG", 50)
    monkeypatch.setattr(evaluator_module, "BACKLOG_CHECK_EVERY", 4)
    seen = {"max": 0, "waits": 0}
    init, wait_below = StoreWriter.__init__, StoreWriter.wait_below

    def counting_init(self: StoreWriter, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        put = self.put  # the queue's append: an attribute of each writer

        def counting_put(record: Any) -> None:
            put(record)
            seen["max"] = max(seen["max"], self.backlog)

        self.put = counting_put

    def counting_wait(self: StoreWriter, records: int) -> None:
        seen["waits"] += 1
        wait_below(self, records)

    monkeypatch.setattr(StoreWriter, "__init__", counting_init)
    monkeypatch.setattr(StoreWriter, "wait_below", counting_wait)
    n = 3000
    sched = Scheduler(db=sqlite_url)
    assert sched.run(total([inc(i) for i in range(n)])) == n * (n + 1) // 2
    assert seen["waits"] > 0
    # 50 queued, plus what 4 calls add between two looks (~8 records each), plus the
    # records of the probe calls that ran in the pool before the verdict (16 x ~8).
    assert seen["max"] < 300, seen


@pytest.mark.parametrize("where", ["inline", "pool", "cached"])
def test_a_fan_out_is_hashed_and_run_in_waves(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    """A fan-out's calls are all ready at once; only a wave of them (`WAVE_CALLS`) is
    hashed and holds its arguments and digests before it is looked up and run, not the
    whole fan-out (~0.2 KB per call of a million-call run's peak memory)."""
    n, wave = 3000, 100
    if where == "pool":
        monkeypatch.setattr(dispatch_module, "INLINE_SECONDS", 0.0)
    if where == "cached":
        assert Scheduler(db=sqlite_url).run(total([inc(i) for i in range(n)])) == n * (n + 1) // 2
    monkeypatch.setattr(evaluator_module, "WAVE_CALLS", wave)
    seen = {"max": 0, "hashed": 0}
    call_known = evaluator_module.Evaluator.call_known

    def counting(self: Any, frame: CallFrame, *args: Any, **kwargs: Any) -> None:
        seen["hashed"] += 1
        seen["max"] = max(seen["max"], seen["hashed"] - self.ended)  # hashed, not ended
        call_known(self, frame, *args, **kwargs)

    monkeypatch.setattr(evaluator_module.Evaluator, "call_known", counting)
    sched = Scheduler(db=sqlite_url)
    assert sched.run(total([inc(i) for i in range(n)])) == n * (n + 1) // 2
    assert sched.last_run.cached == (n + 1 if where == "cached" else 0)
    # two waves (the first waits for its task's timing verdict while the second is
    # hashed), and in a pool the calls out there (`dispatch.MAX_INFLIGHT` at most)
    limit = 2 * wave + 2 + (dispatch_module.MAX_INFLIGHT if where == "pool" else 0)
    assert seen["max"] <= limit, seen
