"""nout, return-tuple hints and ``Task.options``, translated from redun's tests
(test_scheduler.py: test_nout*, test_return_tuple_type; test_tasks.py: test_task_options,
test_task_options_hash, test_tuple_type_length, test_exported_options; test_partial_task.py:
test_partial_options, test_partial_partial_options). Each test names the one it mirrors.
"""

from __future__ import annotations

import pickle
from collections import namedtuple
from typing import Any, NamedTuple

import pytest

from lazyflow_core import Scheduler, TaskDefinitionError, task
from lazyflow_core.task import tuple_length
from lazyflow_core.values import dumps_value


@pytest.fixture
def sched(sqlite_url: str) -> Scheduler:
    return Scheduler(db=sqlite_url)


@task
def process(x: int) -> int:
    return x + 1


def test_nout_makes_a_call_iterable(sched: Scheduler) -> None:
    """redun: test_nout."""

    @task(nout=3)
    def make_list() -> list[int]:
        return [1, 2, 3]

    @task
    def main() -> list[int]:
        return [process(x) for x in make_list()]

    assert sched.run(main()) == [2, 3, 4]
    assert len(make_list()) == 3


def test_a_call_without_nout_is_not_iterable() -> None:
    """redun: test_nout_undefined. The error says how to declare it."""

    @task
    def make_list() -> list[int]:
        return [1, 2, 3]

    with pytest.raises(TypeError, match=r"nout=2"):
        for _ in make_list():
            pass


def test_nout_zero_unpacks_to_nothing(sched: Scheduler) -> None:
    """redun: test_nout_zero."""

    @task(nout=0)
    def make_empty() -> tuple[()]:
        return ()

    @task
    def main() -> list[Any]:
        return list(make_empty())

    assert sched.run(main()) == []


@pytest.mark.parametrize("bad", ["3", -1, 1.5, True])
def test_nout_must_be_a_non_negative_int(bad: Any) -> None:
    """redun: test_nout_bad (a TaskDefinitionError naming the option and the fix)."""
    with pytest.raises(TaskDefinitionError, match=r"nout=.* must be an int >= 0"):

        @task(nout=bad)
        def make_list() -> list[int]:
            return [1, 2, 3]


def test_nout_through_options(sched: Scheduler) -> None:
    """redun: test_nout_options."""

    @task
    def make_list() -> list[int]:
        return [1, 2, 3]

    @task
    def main() -> list[int]:
        return [process(x) for x in make_list.options(nout=3)()]

    assert sched.run(main()) == [2, 3, 4]


def test_a_tuple_return_hint_gives_nout(sched: Scheduler) -> None:
    """redun: test_return_tuple_type (destructuring a call with a tuple hint)."""

    @task
    def make_pair() -> tuple[str, int]:
        return ("Bob", 20)

    @task
    def make_message(name: str, age: int) -> str:
        return f"{name} is {age}"

    @task
    def main() -> str:
        name, age = make_pair()
        return make_message(name, age)

    assert make_pair.options.nout == 2
    assert sched.run(main()) == "Bob is 20"
    name, age = make_pair()  # outside a task too
    assert sched.run([age, name]) == [20, "Bob"]


class User2(NamedTuple):
    name: str
    age: int


def test_tuple_type_length() -> None:
    """redun: test_tuple_type_length."""
    assert tuple_length(tuple[int, int]) == 2
    assert tuple_length(tuple[int, int, int]) == 3
    assert tuple_length(tuple[()]) == 0
    assert tuple_length(tuple) is None
    assert tuple_length(tuple[Any, ...]) is None
    assert tuple_length(list[int]) is None
    assert tuple_length(namedtuple("User", ["name", "age", "friend"])) == 3
    assert tuple_length(User2) == 2


def test_string_hints_and_forward_references() -> None:
    """``from __future__ import annotations`` hints (strings) are read too; a hint that
    cannot be evaluated yet leaves the task without nout instead of failing."""

    def pair() -> tuple[int, str]: ...

    def later() -> Undefined: ...  # type: ignore[name-defined]  # noqa: F821

    assert task(pair).options.nout == 2
    assert task(later).options.nout is None


def test_task_options_override_for_one_call_site() -> None:
    """redun: test_task_options. Overrides accumulate; the task itself is unchanged."""

    @task(executor="batch")
    def task1() -> int:
        return 10

    task2 = task1.options(executor="threads")
    assert task1.options.executor == "batch" and task2.options.executor == "threads"
    task3 = task2.options(retries=2, resources={"memory": "4GiB"})
    assert (task3.options.executor, task3.options.retries) == ("threads", 2)
    assert task3.options.resources == {"memory": 4 * 2**30}
    assert task3().task is task3 and task1().task is task1
    with pytest.raises(TaskDefinitionError, match="unknown option"):
        task1.options(memory=4)
    with pytest.raises(TaskDefinitionError, match="retries"):
        task1.options(retries="many")


def test_options_that_change_what_runs_change_the_hash() -> None:
    """redun: test_task_options_hash. lazyflow hashes only the options that change the
    computation (version, name, namespace, hash_includes): moving a call to another
    executor, or giving it more memory or retries, keeps its cache."""

    @task
    def task1(x: int) -> int:
        return x + 1

    assert task1.options(executor="processes", retries=3).hash == task1.hash
    assert task1.options(resources={"vcpus": 4}).hash == task1.hash
    assert task1.options(version="2").hash != task1.hash
    assert task1.options(hash_includes=["data-v2"]).hash != task1.hash
    renamed = task1.options(name="task1_renamed")
    assert renamed.name.endswith("task1_renamed") and renamed.hash != task1.hash


def test_a_call_with_other_options_reuses_the_cache(sched: Scheduler) -> None:
    calls: list[int] = []
    record = calls.append  # a bound method: its code is hashed, not the list it fills

    @task
    def work(x: int) -> int:
        record(x)
        return x * 2

    assert sched.run(work(2)) == 4
    assert sched.run(work.options(executor="processes", retries=1)(2)) == 4
    assert calls == [2] and sched.last_run is not None and sched.last_run.cached == 1


def test_options_cache_false_reruns_only_that_call(sched: Scheduler) -> None:
    """redun: test_exported_options (its first part: ``options(cache=False)``)."""
    calls: list[str] = []
    # A task's hash covers the values its closure holds, computed each run: appending to
    # `calls` itself would change it. A bound method is hashed by its code.
    record = calls.append

    @task
    def task1(x: int) -> int:
        record("task1")
        return x

    @task
    def task2(x: int) -> Any:
        record("task2")
        return task1(x)

    assert sched.run(task2(10)) == 10
    assert sched.run(task2(10)) == 10
    assert calls == ["task2", "task1"]
    calls.clear()
    assert sched.run(task2.options(cache=False)(10)) == 10
    assert calls == ["task2"]


def test_options_on_partial_tasks(sched: Scheduler) -> None:
    """redun: test_partial_options, test_partial_partial_options."""

    @task
    def add3(a: int, b: int, c: int) -> int:
        return a + b + c

    part = add3.partial(1).partial(2).options(executor="processes", retries=1)
    expr = part(3)
    assert (expr.task.options.executor, expr.task.options.retries) == ("processes", 1)
    assert part.args == (1, 2) and sched.run(expr) == 6
    again = pickle.loads(dumps_value(add3.partial(1).options(retries=2)))
    assert again.task.options.retries == 2 and sched.run(again(2, 3)) == 6


def test_options_travel_with_a_pickled_task() -> None:
    """A derived task pickled (to a worker, into a stored value) keeps its options, and
    the task it was derived from stays the registered one."""
    derived = process.options(retries=4)
    assert pickle.loads(dumps_value(derived)).options.retries == 4
    assert pickle.loads(dumps_value(process)) is process
