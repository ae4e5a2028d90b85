"""Tasks and lazy expressions: calling builds expressions; nothing runs until a scheduler."""

from __future__ import annotations

import dataclasses
from collections import namedtuple

import pytest

from lazyflow_core import (
    Expression,
    Scheduler,
    TaskCallError,
    TaskDefinitionError,
    catch,
    cond,
    flat_map,
    map_,
    seq,
    task,
)
from lazyflow_core.executors import Executor

CALLS: list[str] = []


@task
def inc(x: int) -> int:
    return x + 1


@task(version="2", cache=True, retries=0, executor="default", name=None, namespace=None)
def total(xs: list[int]) -> int:
    return sum(xs)


@task
def main(n: int):
    return total([inc(i) for i in range(n)])


@task
def add(a, b=10):
    return a + b


@task
def record(label: str) -> str:
    CALLS.append(label)
    return label


@task
def make_dict() -> dict:
    return {"a": 1, "b": [1, 2, 3], "s": "hello"}


class Box:
    def __init__(self, v: int) -> None:
        self.v = v

    def double(self) -> int:
        return self.v * 2


@task
def make_box(v: int) -> Box:
    return Box(v)


@pytest.fixture
def sched(sqlite_url: str, executor: Executor) -> Scheduler:
    """A scheduler on each executor of the contract suite (`EXECUTORS`)."""
    return Scheduler(db=sqlite_url, executor=executor)


def test_design_contract_example(sqlite_url: str) -> None:
    """The example in DESIGN.md runs as written."""
    assert Scheduler(db=sqlite_url).run(main(10)) == 55
    from lazyflow_core import run

    assert run(main(10)) == 55


def test_calling_a_task_returns_an_expression_and_runs_nothing() -> None:
    CALLS.clear()
    expr = record("x")
    assert isinstance(expr, Expression)
    assert CALLS == []
    assert record.func("y") == "y"


def test_bool_of_expression_points_to_cond() -> None:
    with pytest.raises(TypeError, match="cond"):
        bool(inc(1))
    with pytest.raises(TypeError, match="cond"):
        if inc(1):
            pass


def test_iterating_an_expression_is_an_error() -> None:
    with pytest.raises(TypeError, match="map_"):
        list(inc(1))


def test_operators_are_lazy(sched: Scheduler) -> None:
    x = inc(1)  # 2
    exprs = [x + 1, 1 + x, x - 1, x * 3, x / 4, x // 2, x % 2, x**3, -x, ~x, x & 3, x | 1]
    assert sched.run(exprs) == [3, 3, 1, 6, 0.5, 1, 0, 8, -2, -3, 2, 3]
    assert sched.run([x == 2, x != 2, x < 3, x <= 1, x > 1, x >= 3]) == [
        True,
        False,
        True,
        False,
        True,
        False,
    ]


def test_item_attribute_and_method_access(sched: Scheduler) -> None:
    d = make_dict()
    assert sched.run(d["b"][1]) == 2
    assert sched.run(d["s"].upper()) == "HELLO"
    assert sched.run(make_box(21).v) == 21
    assert sched.run(make_box(21).double()) == 42


def test_containers_of_expressions_are_evaluated(sched: Scheduler) -> None:
    Pair = namedtuple("Pair", "a b")

    @dataclasses.dataclass
    class DC:
        x: int
        y: list

    value = {
        "list": [inc(1), inc(2)],
        "tuple": (inc(3),),
        "set": {inc(4)},
        "nt": Pair(inc(5), 0),
        "dc": DC(inc(6), [inc(7)]),
    }
    out = sched.run(value)
    assert out["list"] == [2, 3]
    assert out["tuple"] == (4,)
    assert out["set"] == {5}
    assert out["nt"] == Pair(6, 0)
    assert out["dc"] == DC(7, [8])


@task
def returns_containers(n: int):
    return {"xs": [inc(i) for i in range(n)], "pair": (inc(0), "lit")}


def test_task_returning_containers_of_expressions(sched: Scheduler) -> None:
    assert sched.run(returns_containers(3)) == {"xs": [1, 2, 3], "pair": (1, "lit")}


@task
def apply_twice(f, x):
    return f(f(x))


def test_tasks_are_first_class(sched: Scheduler) -> None:
    assert sched.run(apply_twice(inc, 1)) == 3


def test_partial_application(sched: Scheduler) -> None:
    add5 = add.partial(b=5)
    assert sched.run(add5(1)) == 6
    assert sched.run(map_(add.partial(b=100), [1, 2])) == [101, 102]
    assert sched.run(apply_twice(add.partial(b=1), 0)) == 2


@task
def fib(n: int):
    if n < 2:
        return n
    return fib(n - 1) + fib(n - 2)


def test_recursive_task(sched: Scheduler) -> None:
    assert sched.run(fib(20)) == 6765
    # fib(k) for each k runs once: identical calls are deduplicated.
    assert sched.last_run is not None and sched.last_run.executed == 21


@task
def is_even(x: int) -> bool:
    return x % 2 == 0


@task
def boom(msg: str) -> int:
    raise ValueError(msg)


def test_cond_evaluates_only_the_chosen_branch(sched: Scheduler) -> None:
    assert sched.run(cond(is_even(2), inc(1), boom("not taken"))) == 2
    assert sched.run(cond(is_even(3), boom("not taken"), inc(10))) == 11


@pytest.mark.parametrize("executor", ["inline", "threads"], indirect=True)  # CALLS: this process
def test_seq_runs_in_order(sched: Scheduler) -> None:
    CALLS.clear()
    out = sched.run(seq([record("a"), record("b"), record("c")]), cache=False)
    assert out == ["a", "b", "c"]
    assert CALLS == ["a", "b", "c"]


@task
def fallback(exc: Exception) -> str:
    return f"recovered from {type(exc).__name__}: {exc}"


def test_catch_recovers_lazily(sched: Scheduler) -> None:
    assert sched.run(catch(boom("bad"), ValueError, fallback)) == "recovered from ValueError: bad"
    assert sched.run(catch(inc(1), ValueError, fallback)) == 2
    with pytest.raises(ValueError):
        sched.run(catch(boom("bad"), KeyError, fallback))


@task
def upto(n: int) -> list[int]:
    return list(range(n))


@task
def pair(x: int) -> list[int]:
    return [x, x]


def test_map_and_flat_map(sched: Scheduler) -> None:
    assert sched.run(map_(inc, upto(4))) == [1, 2, 3, 4]
    assert sched.run(flat_map(pair, upto(3))) == [0, 0, 1, 1, 2, 2]


def test_wrong_number_of_arguments_names_the_task() -> None:
    with pytest.raises(TaskCallError, match=r"inc.*signature is inc\(x: int\)"):
        inc(1, 2)
    with pytest.raises(TaskCallError, match="add"):
        add(c=1)
    with pytest.raises(TaskCallError):
        inc()


def test_invalid_task_options() -> None:
    with pytest.raises(TaskDefinitionError, match="retries"):
        task(retries=-1)(lambda: 1)
    with pytest.raises(TaskDefinitionError, match="unknown option"):
        task(colour="red")(lambda: 1)


def test_keyword_and_positional_calls_share_a_cache_entry(sched: Scheduler) -> None:
    assert sched.run(add(1)) == 11
    assert sched.run(add(a=1, b=10)) == 11
    assert sched.last_run is not None and sched.last_run.cached == 1


def test_task_names() -> None:
    assert inc.name == "tests.core.test_expressions.inc" or inc.name.endswith(
        "test_expressions.inc"
    )
    named = task(namespace="acme", name="thing")(lambda: 1)
    assert named.name == "acme.thing"
    assert inc.func(1) == 2
