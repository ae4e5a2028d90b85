"""redun's expression tests (redun/tests/test_expression.py), translated to lazyflow's API.

Not translated: redun's exact hash strings and ``__getstate__`` layouts (lazyflow's
hashes are its own; what matters, that equal expressions hash alike and pickle round
trip, is tested here), ``SimpleExpression("bad_func")`` (lazyflow's operations hold the
function itself, not a name), ``is_valid`` (no task registry check on expressions) and
the repr of redun's scheduler tasks and slices.
"""

from __future__ import annotations

import pickle
from typing import Any

import cloudpickle
import pytest

from lazyflow_core import Scheduler, task
from lazyflow_core.expression import CallExpression, Expression
from lazyflow_core.functional import expression_hash, identity


@pytest.fixture
def scheduler(sqlite_url: str) -> Scheduler:
    return Scheduler(db=sqlite_url, executor="threads")


class Inner:
    def __init__(self, a: int) -> None:
        self.a = a


def test_value_expression(scheduler: Scheduler) -> None:
    """redun: test_value_expression: a plain value evaluates to itself."""
    assert scheduler.run(10) == 10
    assert scheduler.run(identity(10)) == 10


def test_simple_expression(scheduler: Scheduler) -> None:
    """redun: test_simple_expression: getitem on a lazy value; errors propagate; a
    pickled operation evaluates the same."""
    expr = identity(["a", "b", "c"])[1]
    assert scheduler.run(expr) == "b"
    with pytest.raises(IndexError):
        scheduler.run(identity(["a", "b", "c"])[5])
    assert scheduler.run(pickle.loads(pickle.dumps(expr))) == "b"
    assert expression_hash(identity(["a", "b", "c"])[1]) == expression_hash(expr)


def test_lazy_operators(scheduler: Scheduler) -> None:
    """redun: test_lazy_operators: operators on expressions are lazy operations."""
    id_ = identity

    @task
    def get_task() -> Any:
        return identity

    expressions = [
        (id_(0) == id_(0), True),
        (id_(1) != id_(0), True),
        (id_(2) < id_(3), True),
        (id_(2) <= id_(3), True),
        (id_(3) > id_(2), True),
        (id_(3) >= id_(2), True),
        (id_(1) + id_(2), 3),
        (id_(1) + 2, 3),
        (1 + id_(2), 3),
        (id_("a") + id_("b"), "ab"),
        (id_("a") + "b", "ab"),
        ("a" + id_("b"), "ab"),
        (id_(4) - id_(3), 1),
        (id_(4) - 3, 1),
        (4 - id_(3), 1),
        (id_(4) * id_(3), 12),
        (id_(4) * 3, 12),
        (4 * id_(3), 12),
        (id_(12) / id_(3), 4),
        (id_(12) / 3, 4),
        (12 / id_(3), 4),
        (id_(True) & id_(False), False),
        (id_(True) & id_(True), True),
        (id_(True) & True, True),
        (True & id_(True), True),
        (id_(False) | id_(False), False),
        (id_(True) | id_(False), True),
        (id_(True) | True, True),
        (True | id_(True), True),
        (get_task()(7), 7),
        (id_(Inner(7)).a, 7),
        (id_(["a", "b", "c"])[1], "b"),
    ]
    for expr, expected in expressions:
        assert isinstance(expr, Expression)
        assert scheduler.run(expr) == expected, expr


def test_task_expression(scheduler: Scheduler) -> None:
    """redun: test_task_expression: a call keeps its task and arguments, runs, raises,
    hashes by its task and arguments, and survives pickling."""

    @task
    def task1(x: int, y: int = 1) -> int:
        return x + y

    expr = task1(10)
    assert isinstance(expr, CallExpression)
    assert expr.task is task1 and expr.args == (10,) and expr.kwargs == {}
    assert scheduler.run(expr) == 11
    expr = task1(10, y=3)
    assert expr.kwargs == {"y": 3}
    assert scheduler.run(expr) == 13

    @task
    def buggy() -> None:
        raise ValueError("bugs")

    with pytest.raises(ValueError):
        scheduler.run(buggy())

    assert expression_hash(task1(10)) == expression_hash(task1(10))
    assert expression_hash(task1(10)) != expression_hash(task1(11))
    assert expression_hash(task1(10)) != expression_hash(task1.options(cache=False)(10))
    again = pickle.loads(cloudpickle.dumps(task1(10)))  # a local task: by value
    assert again.task is task1  # the live definition
    assert scheduler.run(again) == 11


def test_ban_bool_coerce() -> None:
    """redun: test_ban_bool_coerce: an expression is not a bool (a common bug)."""

    @task
    def ten() -> int:
        return 10

    with pytest.raises(TypeError):
        if ten():
            pass


def test_ban_iter() -> None:
    """redun: test_ban_iter: a call without nout cannot be iterated."""

    @task
    def task1() -> list[int]:
        return [1, 2, 3]

    expr = task1()
    with pytest.raises(TypeError):
        for _ in expr:
            pass
    with pytest.raises(TypeError):
        iter(expr)


def test_repr() -> None:
    """redun: test_repr: calls show as they were written."""

    @task
    def add(a: Any, b: Any) -> Any:
        return a + b

    assert "add(1, 2)" in repr(add(1, 2))
    assert "add(1, b=2)" in repr(add(1, b=2))
    assert "add(a=True, b='2')" in repr(add(a=True, b="2"))
    assert "add([1, 2, 3], [4])" in repr(add([1, 2, 3], [4]))
