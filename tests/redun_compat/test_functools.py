"""Functional helpers, translated from redun's tests/test_functools.py.

Each test names the redun test it mirrors. Where redun checks its own job tree (a
``compose_apply`` job per element), lazyflow checks what it does instead: the helpers
cost no job, and only the user's tasks appear in the record.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from lazyflow_core import (
    LazyflowError,
    Scheduler,
    compose,
    const,
    delay,
    flatten,
    force,
    hash_value,
    map_,
    seq,
    starmap,
    task,
    zip_,
)
from lazyflow_core.functional import Delayed


@pytest.fixture
def sched(sqlite_url: str) -> Scheduler:
    return Scheduler(db=sqlite_url)


@task
def inc(x: int) -> int:
    return x + 1


@task
def double(x: int) -> int:
    return 2 * x


@task
def add(a: int, b: int) -> int:
    return a + b


def test_compose(sched: Scheduler) -> None:
    """redun: test_compose."""
    assert sched.run(compose(double, inc)(1)) == 4
    assert sched.run(compose(inc, double, inc)(1)) == 5
    assert sched.run(compose(add.partial(10), double)(1)) == 12
    with pytest.raises(LazyflowError, match="not callable"):
        compose(inc, 3)  # type: ignore[arg-type]


def test_a_composition_is_a_value_tasks_can_take(sched: Scheduler) -> None:
    """redun: test_map (``map_`` over a composition); a composition is hashed by its
    tasks, so a task given one is cached like any other call."""

    @task
    def apply_all(fn: Any, xs: list[int]) -> Any:
        return [fn(x) for x in xs]

    assert sched.run(map_(compose(inc, double), [1, 2, 3])) == [3, 5, 7]
    assert sched.run(apply_all(compose(inc, double), [1, 2])) == [3, 5]
    assert sched.run(apply_all(compose(inc, double), [1, 2])) == [3, 5]
    assert sched.last_run is not None and sched.last_run.by_task[apply_all.name].cached == 1
    assert hash_value(compose(inc, double)) == hash_value(compose(inc, double))
    assert hash_value(compose(inc, double)) != hash_value(compose(double, inc))
    assert sorted(sched.last_run.by_task) == sorted([apply_all.name])


def test_delay_holds_an_expression_until_forced(sched: Scheduler) -> None:
    """redun: test_delay."""
    calls: list[str] = []

    @task(cache=False)
    def task1() -> int:
        calls.append("task1")
        return 10

    @task
    def main(x: Any) -> Any:
        return x

    expr = delay(task1())
    held = sched.run(main(expr))
    assert isinstance(held, Delayed) and calls == []
    assert sched.run(main(force(expr))) == 10
    assert calls == ["task1"]


def test_a_delayed_expression_is_forced_inside_the_task_that_gets_it(sched: Scheduler) -> None:
    """The task decides: it returns the forced expression only on the branch that needs it."""
    calls: list[int] = []

    @task
    def expensive(n: int) -> int:
        calls.append(n)
        return n * 100

    @task
    def maybe(use: bool, fallback: Delayed) -> Any:
        return force(fallback) if use else 0

    assert sched.run(maybe(False, delay(expensive(1)))) == 0 and calls == []
    assert sched.run(maybe(True, delay(expensive(1)))) == 100 and calls == [1]
    assert sched.run(force(maybe(True, delay(expensive(2))))) == 200  # force of a lazy value


def test_a_delayed_expression_hashes_by_what_it_would_compute() -> None:
    assert hash_value(delay(inc(1))) == hash_value(delay(inc(1)))
    assert hash_value(delay(inc(1))) != hash_value(delay(inc(2)))
    assert hash_value(delay(inc(1))) != hash_value(delay(double(1)))
    assert hash_value(delay(inc(inc(1)))) != hash_value(delay(inc(inc(2))))
    assert hash_value(delay(inc(1) + 1)) != hash_value(delay(inc(1) + 2))


def test_seq(sched: Scheduler) -> None:
    """redun: test_seq (lazyflow's seq is in the core)."""
    calls: list[int] = []

    @task
    def subtask(name: int, interval: float) -> int:
        time.sleep(interval)
        calls.append(name)
        return name

    expr = seq([subtask(1, 0.2), subtask(2, 0.1), subtask(3, 0.01), subtask(4, 0.01)])
    assert sched.run(expr) == [1, 2, 3, 4] and calls == [1, 2, 3, 4]
    assert sched.run(seq([])) == [] and sched.run(seq([10])) == [10]


def test_const(sched: Scheduler) -> None:
    """redun: test_const. The second argument is evaluated (it runs), its value dropped."""
    calls: list[int] = []

    @task
    def side_effect(x: int) -> int:
        calls.append(x)
        return x

    assert sched.run(const(1, 2)) == 1 and sched.run(const(2, 1)) == 2
    assert sched.run(const(inc(1), side_effect(7))) == 2 and calls == [7]


def test_starmap(sched: Scheduler) -> None:
    """redun: test_starmap."""
    kwargs = [{"a": 1, "b": 2}, {"a": 3, "b": 4}]
    assert sched.run(starmap(add, kwargs)) == [3, 7]

    @task
    def get_kwargs() -> list[dict[str, int]]:
        return kwargs

    assert sched.run(starmap(add, get_kwargs())) == [3, 7]

    @task
    def swap(a: int, b: int) -> dict[str, int]:
        return {"a": b, "b": a}

    @task
    def main() -> Any:
        return starmap(add, starmap(swap, kwargs))

    assert sched.run(main()) == [3, 7]
    with pytest.raises(LazyflowError, match=r"item \[0\] is 5"):
        sched.run(starmap(add, [5]))


def test_flatten(sched: Scheduler) -> None:
    """redun: test_flatten."""

    @task
    def split(text: str) -> list[str]:
        return text.split()

    texts = ["hello world", "not invented here"]
    words = ["hello", "world", "not", "invented", "here"]
    assert sched.run(flatten(map_(split, texts))) == words
    assert sched.run(flatten([[1], [], [2, 3]])) == [1, 2, 3]


def test_zip(sched: Scheduler) -> None:
    """redun: test_zip."""

    @task
    def range_(a: int, b: int) -> list[int]:
        return list(range(a, b))

    assert sched.run(zip_(range_(0, 5), range_(1, 6))) == [(0, 1), (1, 2), (2, 3), (3, 4), (4, 5)]
    assert sched.run(zip_([1, 2, 3], range_(0, 2))) == [(1, 0), (2, 1)]


def test_helpers_cost_no_job(sched: Scheduler) -> None:
    """Only the user's tasks are jobs: the helpers run on the scheduler thread."""
    sched.run(flatten(zip_(map_(inc, [1, 2]), starmap(add, [{"a": 1, "b": 1}]))))
    assert sched.last_run is not None and sched.last_run.jobs == 3
