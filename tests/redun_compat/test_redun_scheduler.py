"""redun's scheduler tests (redun/tests/test_scheduler.py), translated to lazyflow's API.

Each test names the redun test it mirrors and keeps its semantics; the code is lazyflow's.
The nout and return-tuple tests are in test_tasks.py. Not translated, because lazyflow has
no such feature: test_scheduler_backend (redun's Config/backend objects; lazyflow takes a
store URL), test_reduce and test_scheduler_task (scheduler_task and promises),
test_cse_scopes/test_cse_no_validity (CacheScope and check_valid options: lazyflow has one
scope, the store, plus in-run merging), test_job_options/test_job_status/test_log_*
(redun's Job objects and console log), test_dryrun* (lazyflow's `explain`, tested in
tests/core/test_explain.py), test_traceback_* (redun's Traceback), test_extend_run,
test_federated_task, test_thread*, test_settrace/sys_monitoring detection, test_default_root
(redun's implicit root_task; lazyflow records top-level calls as roots without one).

Side effects are recorded through ``record = calls.append``: a task's hash covers the
values its closure holds, computed for each run, so a task that appended to ``calls``
itself would change its hash with every call it records (a bound method hashes as code).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import text

from lazyflow_core import ExecutorError, Scheduler, catch, cond, task


@pytest.fixture
def scheduler(sqlite_url: str) -> Scheduler:
    return Scheduler(db=sqlite_url, executor="threads")


def executed(scheduler: Scheduler) -> int:
    assert scheduler.last_run is not None
    return scheduler.last_run.executed


def test_simple(scheduler: Scheduler) -> None:
    """redun: test_simple."""

    @task
    def workflow() -> str:
        return "ok"

    assert scheduler.run(workflow()) == "ok"


def test_call(scheduler: Scheduler) -> None:
    """redun: test_call: a subtask call is evaluated."""

    @task
    def task1(x: str) -> str:
        return f"hello {x}"

    @task
    def workflow() -> Any:
        return task1("world")

    assert scheduler.run(workflow()) == "hello world"


def test_task_args(scheduler: Scheduler) -> None:
    """redun: test_task_args: a result is an argument of another call."""

    @task
    def task1() -> str:
        return "world"

    @task
    def task2(x: str) -> str:
        return f"hello {x}"

    @task
    def workflow() -> Any:
        return task2(task1())

    assert scheduler.run(workflow()) == "hello world"


def test_call_deep(scheduler: Scheduler) -> None:
    """redun: test_call_deep: variadic arguments holding results."""

    @task
    def task1(a: str) -> str:
        return f"task1({a})"

    @task
    def combine(*values: str) -> str:
        return ",".join(values)

    @task
    def task2(a_list: list[str]) -> Any:
        return combine(*[task1(a) for a in a_list])

    @task
    def workflow() -> Any:
        return task2(["alice", "bob", "claire"])

    assert scheduler.run(workflow()) == "task1(alice),task1(bob),task1(claire)"


def test_scheduler_incremental(scheduler: Scheduler) -> None:
    """redun: test_scheduler_incremental: only the task whose hash changed runs; a
    reverted edit is fully cached."""
    calls: list[str] = []
    record = calls.append

    @task
    def run_bwa(reads: str) -> str:
        record("run_bwa")
        return f"align({reads})"

    @task
    def run_gatk(align: str) -> str:
        record("run_gatk")
        return f"calls({align})"

    @task
    def workflow() -> Any:
        record("workflow")
        return run_gatk(run_bwa("my reads"))

    assert scheduler.run(workflow()) == "calls(align(my reads))"
    assert calls == ["workflow", "run_bwa", "run_gatk"]
    calls.clear()
    assert scheduler.run(workflow()) == "calls(align(my reads))"
    assert calls == []

    @task  # a code change to run_gatk
    def run_gatk(align: str) -> str:  # noqa: F811 (redefined, as a notebook cell)
        record("run_gatk")
        return f"calls2({align})"

    calls.clear()
    assert scheduler.run(workflow()) == "calls2(align(my reads))"
    assert calls == ["run_gatk"]

    @task  # reverted
    def run_gatk(align: str) -> str:  # noqa: F811 (redefined, as a notebook cell)
        record("run_gatk")
        return f"calls({align})"

    calls.clear()
    assert scheduler.run(workflow()) == "calls(align(my reads))"
    assert calls == []


def test_scheduler_multiple_calls(scheduler: Scheduler) -> None:
    """redun: test_scheduler_multiple_calls."""

    @task
    def task1(arg: str) -> str:
        return f"hello {arg}"

    @task
    def task2() -> Any:
        return [task1("alice"), task1("bob")]

    assert scheduler.run(task2()) == ["hello alice", "hello bob"]


def test_scheduler_recursive(scheduler: Scheduler) -> None:
    """redun: test_scheduler_recursive: each fib(n) runs once over four runs."""
    calls: list[int] = []
    record = calls.append

    @task
    def add(a: int, b: int) -> int:
        return a + b

    @task
    def fib(n: int) -> Any:
        record(n)
        if n <= 0:
            return 0
        if n <= 2:
            return 1
        return add(fib(n - 1), fib(n - 2))

    assert scheduler.run(fib(1)) == 1
    assert scheduler.run(fib(2)) == 1
    assert scheduler.run(fib(3)) == 2
    assert scheduler.run(fib(5)) == 5
    assert len(calls) == 5


def test_destructure(scheduler: Scheduler) -> None:
    """redun: test_destructure: indexing a lazy result."""

    @task
    def task1() -> dict[str, int]:
        return {"output1": 10, "output2": 20}

    @task
    def task2(x: int) -> int:
        return x + 1

    @task
    def workflow() -> Any:
        outputs = task1()
        return [task2(outputs["output1"]), task2(outputs["output2"])]

    assert scheduler.run(workflow()) == [11, 21]


def test_nest_args(scheduler: Scheduler) -> None:
    """redun: test_nest_args: a list of results as one argument."""

    @task
    def task1() -> dict[str, int]:
        return {"output1": 10, "output2": 20}

    @task
    def task2(x: int) -> int:
        return x + 1

    @task
    def sum_task(xs: list[int]) -> int:
        return sum(xs)

    @task
    def workflow() -> Any:
        outputs = task1()
        return sum_task([task2(outputs["output1"]), task2(outputs["output2"])])

    assert scheduler.run(workflow()) == 32


def test_nested_results(scheduler: Scheduler) -> None:
    """redun: test_nested_results."""

    @task
    def task1() -> int:
        return 10

    @task
    def task2() -> Any:
        return [task1()]

    assert scheduler.run(task2()) == [10]


@dataclass
class Node:
    value: Any
    next_: Node | None


def test_nested_results2(scheduler: Scheduler) -> None:
    """redun: test_nested_results2: expressions inside dataclasses are evaluated."""

    @task
    def to_str(x: int) -> str:
        return str(x)

    def linked(y: list[int]) -> Node | None:
        if not y:
            return None
        return Node(value=to_str(y[0]), next_=linked(y[1:]))

    assert scheduler.run(linked([1])) == Node("1", None)
    assert scheduler.run(linked([1, 2])) == Node("1", Node("2", None))


def test_higher_order(scheduler: Scheduler) -> None:
    """redun: test_higher_order: tasks as arguments and results."""

    @task
    def double(x: int) -> int:
        return 2 * x

    @task
    def apply(func: Any, x: int) -> Any:
        return func(x)

    @task
    def pick() -> Any:
        return double

    @task
    def workflow() -> Any:
        return apply(pick(), 5)

    assert scheduler.run(apply(double, 3)) == 6
    assert scheduler.run(workflow()) == 10


def test_default_args(scheduler: Scheduler) -> None:
    """redun: test_default_args: a changed default is seen (the task is redefined)."""
    default = 10

    @task
    def add(a: int, b: int = default) -> int:
        return a + b

    assert scheduler.run(add(1, 2)) == 3
    assert scheduler.run(add(1)) == 11

    default = 20

    @task
    def add(a: int, b: int = default) -> int:  # the same code, another default
        return a + b

    assert scheduler.run(add(1)) == 21


def test_novel_kwargs(scheduler: Scheduler) -> None:
    """redun: test_novel_kwargs."""

    @task
    def task1(**kwargs: Any) -> dict[str, Any]:
        return kwargs

    assert scheduler.run(task1(a=1, b=2)) == {"a": 1, "b": 2}


def test_no_cache_task(scheduler: Scheduler) -> None:
    """redun: test_no_cache_task (cache_scope=NONE is lazyflow's cache=False)."""
    calls: list[str] = []
    record = calls.append

    @task(cache=False)
    def task1() -> int:
        record("task1")
        return 10

    scheduler.run(task1())
    assert calls == ["task1"]
    scheduler.run(task1())
    assert calls == ["task1", "task1"]


def test_no_cache(scheduler: Scheduler) -> None:
    """redun: test_no_cache: caching off for one run."""
    calls: list[str] = []
    record = calls.append

    @task
    def task1() -> int:
        record("task1")
        return 10

    scheduler.run(task1())
    assert calls == ["task1"]
    scheduler.run(task1(), cache=False)
    assert calls == ["task1", "task1"]


def test_bad_executor(scheduler: Scheduler) -> None:
    """redun: test_bad_executor: an unknown executor fails the run, and the job is still
    recorded."""

    @task(executor="unknown")
    def task1() -> int:
        return 10

    with pytest.raises(ExecutorError):
        scheduler.run(task1())
    rows = scheduler.store.query(
        text("SELECT status FROM lf_jobs WHERE task_name = :n"), {"n": task1.name}
    )
    assert [tuple(r) for r in rows] == [("failed",)]


def test_cond(scheduler: Scheduler) -> None:
    """redun: test_cond: a lazy if; the branch not taken never runs. (redun's cond takes
    elif pairs; lazyflow's nests.)"""

    @task
    def id_(x: Any) -> Any:
        return x

    @task
    def boom() -> None:
        raise ValueError()

    assert scheduler.run(cond(id_(True), id_(1), id_(2))) == 1
    assert scheduler.run(cond(id_(False), id_(1), id_(2))) == 2
    assert scheduler.run(cond(id_(False), boom(), id_(2))) == 2
    assert scheduler.run(cond(id_(False), id_(1), cond(id_(True), id_(2), id_(3)))) == 2


def test_catch(scheduler: Scheduler) -> None:
    """redun: test_catch."""

    @task
    def faulty() -> float:
        return 1 / 0

    @task
    def recover(error: Exception) -> float:
        return 1.0

    @task
    def task1() -> Any:
        return catch(faulty(), ZeroDivisionError, recover)

    @task
    def task2() -> Any:
        return faulty()

    @task
    def task3() -> Any:
        return catch(faulty(), (ZeroDivisionError, ValueError), recover)

    with pytest.raises(ZeroDivisionError):
        scheduler.run(faulty())
    with pytest.raises(ZeroDivisionError):
        scheduler.run(task2())
    assert scheduler.run(task1()) == 1.0
    assert scheduler.run(task3()) == 1.0


def test_multi_catch(scheduler: Scheduler) -> None:
    """redun: test_multi_catch: the first matching handler is used."""

    @task
    def faulty() -> float:
        return 1 / 0

    @task
    def faulty2() -> int:
        return {"a": 1}["b"]

    @task
    def recover1(error: Exception) -> str:
        return "hello"

    @task
    def recover2(error: Exception) -> float:
        return 1.0

    @task
    def task1() -> Any:
        return catch(faulty(), KeyError, recover1, ZeroDivisionError, recover2)

    @task
    def task2() -> Any:
        return catch(faulty2(), KeyError, recover1, ZeroDivisionError, recover2)

    assert scheduler.run(task1()) == 1.0
    assert scheduler.run(task2()) == "hello"


def test_catch_reraise(scheduler: Scheduler) -> None:
    """redun: test_catch_reraise."""

    @task
    def faulty() -> float:
        return 1 / 0

    @task
    def recover(error: Exception) -> float:
        raise ValueError(f"Reraised exception {error}.")

    @task
    def task1() -> Any:
        return catch(faulty(), ZeroDivisionError, recover)

    with pytest.raises(ValueError):
        scheduler.run(task1())


def test_catch_cache(scheduler: Scheduler) -> None:
    """redun: test_catch_cache: a recovered catch is cached (also at the top level);
    failures and re-raised catches are not; cache=False on the run or the task re-runs."""
    calls: list[str] = []
    record = calls.append

    @task
    def faulty() -> float:
        record("faulty")
        return 1 / 0

    @task
    def recover(error: Exception) -> float:
        return 1.0

    @task
    def reraise(error: Exception) -> float:
        raise error

    for _ in range(2):
        with pytest.raises(ZeroDivisionError):
            scheduler.run(faulty())
    assert calls == ["faulty", "faulty"]  # failures are not cached

    calls.clear()
    assert scheduler.run(catch(faulty(), ZeroDivisionError, recover)) == 1.0
    assert calls == ["faulty"]
    assert scheduler.run(catch(faulty(), ZeroDivisionError, recover)) == 1.0
    assert calls == ["faulty"]  # the recovered catch is cached

    assert scheduler.run(catch(faulty(), ZeroDivisionError, recover), cache=False) == 1.0
    assert calls == ["faulty", "faulty"]
    uncached = faulty.options(cache=False)
    assert scheduler.run(catch(uncached(), ZeroDivisionError, recover)) == 1.0
    assert calls == ["faulty", "faulty", "faulty"]

    calls.clear()
    for n in (1, 2):
        with pytest.raises(ZeroDivisionError):
            scheduler.run(catch(faulty(), ZeroDivisionError, reraise))
        assert calls == ["faulty"] * n  # a re-raised catch is not cached


def test_catch_task_react(scheduler: Scheduler) -> None:
    """redun: test_catch_task_react: a cached catch reacts to edits of the task it
    evaluates and of its handler."""
    calls: list[str] = []
    record = calls.append

    @task
    def safe() -> float:
        record("safe")
        return 1 / 1

    @task
    def faulty() -> float:
        record("faulty")
        return 1 / 0

    @task
    def recover(error: Exception) -> float:
        record("recover")
        return 1.0

    for _ in range(2):
        assert scheduler.run(catch(safe(), ZeroDivisionError, recover)) == 1
    assert calls == ["safe"]

    @task
    def safe() -> float:
        record("safe2")
        return 2 / 1

    assert scheduler.run(catch(safe(), ZeroDivisionError, recover)) == 2
    assert calls == ["safe", "safe2"]

    calls.clear()
    for _ in range(2):
        assert scheduler.run(catch(faulty(), ZeroDivisionError, recover)) == 1.0
    assert calls == ["faulty", "recover"]

    @task
    def recover(error: Exception) -> float:
        record("recover2")
        return 2.0

    assert scheduler.run(catch(faulty(), ZeroDivisionError, recover)) == 2.0
    assert calls == ["faulty", "recover", "faulty", "recover2"]


def test_catch_deep_task_react(scheduler: Scheduler) -> None:
    """redun: test_catch_deep_task_react: an edit deep below the caught expression."""
    calls: list[str] = []
    record = calls.append

    @task
    def deep(denom: int) -> float:
        record("deep")
        return 1 / denom

    @task
    def safe() -> Any:
        record("safe")
        return deep(1)

    @task
    def recover(error: Exception) -> float:
        return 1.0

    for _ in range(2):
        assert scheduler.run(catch(safe(), ZeroDivisionError, recover)) == 1
    assert calls == ["safe", "deep"]

    @task
    def deep(denom: int) -> float:  # noqa: F811 (redefined, as a notebook cell)
        record("deep2")
        return 2 / denom

    assert scheduler.run(catch(safe(), ZeroDivisionError, recover)) == 2
    assert calls[-1] == "deep2"


def test_catch_deep_recover_react(scheduler: Scheduler) -> None:
    """redun: test_catch_deep_recover_react: an edit deep below the handler."""
    calls: list[str] = []
    record = calls.append

    @task
    def deep() -> int:
        record("deep")
        return 1

    @task
    def faulty() -> float:
        record("faulty")
        return 1 / 0

    @task
    def recover(error: Exception) -> Any:
        record("recover")
        return deep()

    for _ in range(2):
        assert scheduler.run(catch(faulty(), ZeroDivisionError, recover)) == 1
    assert calls == ["faulty", "recover", "deep"]

    @task
    def deep() -> int:  # noqa: F811 (redefined, as a notebook cell)
        record("deep2")
        return 2

    assert scheduler.run(catch(faulty(), ZeroDivisionError, recover)) == 2
    assert calls[-1] == "deep2"


def test_variadic_args(scheduler: Scheduler) -> None:
    """redun: test_variadic_args: variadic arguments are part of the call's hash."""
    calls: list[tuple[int, ...]] = []
    record = calls.append

    @task
    def task1(x: int, y: int, *rest: int) -> int:
        record((x, y, *rest))
        return x

    assert scheduler.run(task1(10, 11, 12)) == 10
    assert scheduler.run(task1(10, 11, 12, 13, 14)) == 10
    assert calls == [(10, 11, 12), (10, 11, 12, 13, 14)]


def test_default_args_expression(scheduler: Scheduler) -> None:
    """redun: test_default_args_expression: defaults that are (or hold) expressions."""

    @task
    def add(a: int, b: int) -> int:
        return a + b

    @task
    def main(x: int = add(1, 2)) -> int:
        assert isinstance(x, int)
        return x

    assert scheduler.run(main()) == 3
    assert scheduler.run(main(4)) == 4

    @task
    def main2(x: list[int] = [add(1, 2)]) -> list[int]:  # noqa: B006
        assert x == [3]
        return x

    assert scheduler.run(main2()) == [3]


def test_default_args_parent_job(scheduler: Scheduler) -> None:
    """redun: test_default_args_parent_job: a default's call is a sibling of the call
    it is an argument of (both top-level calls of the run)."""

    @task
    def get_offset() -> int:
        return 10

    @task
    def add(a: int, b: int, offset: int = get_offset()) -> int:
        return a + b + offset

    assert scheduler.run(add(1, 2)) == 13
    rows = scheduler.store.query(text("SELECT task_name, parent_id FROM lf_jobs"))
    parents = {name.rsplit(".", 1)[-1]: parent for name, parent in rows}
    assert parents == {"get_offset": None, "add": None}
