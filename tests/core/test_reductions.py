"""Stored first reductions: expressions pickled with their tasks named, decoded safely."""

from __future__ import annotations

import io
import pickle
from typing import Any

import pytest

from lazyflow_core import Scheduler, task
from lazyflow_core.expression import CallExpression
from lazyflow_core.reductions import (
    ExpressionUnusable,
    _pickler_class,
    dumps_expression,
    loads_expression,
)
from lazyflow_core.store.values import safe_expression
from lazyflow_core.task import Task


@task(name="reductions_test_add")
def add(a: int, b: int) -> int:
    return a + b


class Planted:
    """A pickle that calls a function when it is loaded."""

    def __reduce__(self) -> object:
        return (print, ("planted code ran",))


def test_tasks_are_stored_by_name_and_loaded_as_the_live_definition() -> None:
    data = dumps_expression([add(1, 2), add.options(retries=2)(3, 4)])
    assert b"reductions_test_add" in data and b"return a + b" not in data
    first, variant = loads_expression(data)
    assert isinstance(first, CallExpression) and first.task is add and first.args == (1, 2)
    assert variant.task is not add and variant.task.options.retries == 2
    assert variant.task.func is add.func
    # a dry run decodes calls and data without unpickling code
    decoded = safe_expression(data)
    assert decoded[0].task is add and decoded[1].kwargs == {}


def test_expressions_stored_with_persistent_ids_still_load() -> None:
    """Stores written before tasks were pickled through the dispatch table (and the
    cloudpickle fallback today) name tasks by persistent id: both decoders read them."""
    buf = io.BytesIO()
    _pickler_class(pickle.Pickler)(buf, protocol=5).dump([add(1, 2), add.options(retries=2)(3, 4)])
    for decode in (loads_expression, safe_expression):
        first, variant = decode(buf.getvalue())
        assert first.task is add and first.args == (1, 2)
        assert variant.task.options.retries == 2 and variant.task.func is add.func


def test_a_task_named_many_times_is_written_once() -> None:
    one = dumps_expression([add(1, 2)])
    many = dumps_expression([add(i, i) for i in range(1000)])
    name = b"reductions_test_add"
    assert many.count(name) == one.count(name) and len(many) < len(one) + 1000 * 24
    assert all(call.task is add for call in loads_expression(many))


def test_an_expression_naming_a_task_not_loaded_cannot_be_used() -> None:
    data = dumps_expression(add(1, 2)).replace(b"reductions_test_add", b"reductions_test_zzz")
    with pytest.raises(ExpressionUnusable, match="reductions_test_zzz is not loaded"):
        loads_expression(data)


def test_the_safe_decoder_refuses_anything_that_would_run_code(
    capsys: pytest.CaptureFixture[str],
) -> None:
    data = dumps_expression(add(Planted(), 2))  # type: ignore[arg-type]
    with pytest.raises(pickle.UnpicklingError, match="not plain data"):
        safe_expression(data)
    assert "planted code ran" not in capsys.readouterr().out


# -- in runs: the parent's body does not run again -------------------------------------


def define_child(factor: int) -> Task:
    @task(name="reductions_test_child")
    def child(x: int) -> int:
        return x * factor

    return child


child = define_child(10)


@task(name="reductions_test_parent")
def parent(n: int) -> list[Any]:
    return [child(i) for i in range(n)]


@task(name="reductions_test_volatile", cache=False)
def volatile(x: int) -> int:
    return x + 1


@task(name="reductions_test_stable")
def stable(x: int) -> list[Any]:
    return [volatile(x), add(x, 1)]


def executed(sched: Scheduler) -> dict[str, int]:
    assert sched.last_run is not None
    return {
        n.rsplit("_", 1)[-1]: c.executed for n, c in sched.last_run.by_task.items() if c.executed
    }


@pytest.mark.parametrize("executor_name", ["inline", "threads"])
def test_a_changed_child_runs_without_its_parents_body(sqlite_url: str, executor_name: str) -> None:
    """Redefined in this process (worker processes would import the module's own
    definition; test_cache.py edits workflow files for every executor)."""
    global child
    sched = Scheduler(db=sqlite_url, executor=executor_name)
    try:
        assert sched.run(parent(3)) == [0, 10, 20]
        assert executed(sched) == {"parent": 1, "child": 3}
        child = define_child(100)  # redefined, as a notebook cell run again
        assert sched.run(parent(3)) == [0, 100, 200]
        assert executed(sched) == {"child": 3}  # parent: its stored expression
        child = define_child(10)  # reverted: fully cached
        assert sched.run(parent(3)) == [0, 10, 20]
        assert executed(sched) == {}
    finally:
        child = define_child(10)
        sched.close()


def test_a_cache_false_child_runs_again_without_its_parents_body(sqlite_url: str) -> None:
    sched = Scheduler(db=sqlite_url, executor="threads")
    assert sched.run(stable(1)) == [2, 2]
    assert executed(sched) == {"stable": 1, "volatile": 1, "add": 1}
    assert sched.run(stable(1)) == [2, 2]
    assert executed(sched) == {"volatile": 1}
    sched.close()


def test_gc_keeps_the_stored_expressions(sqlite_url: str) -> None:
    import time

    from lazyflow_core.cli.db import find_garbage
    from lazyflow_core.hashing import hash_struct

    sched = Scheduler(db=sqlite_url, executor="threads")
    sched.run(stable(5))
    store = sched.store
    [(call_hash,)] = store._select_in(
        "SELECT call_hash FROM lf_calls WHERE task_name IN ({marks})", [stable.name]
    )
    value_hash = store.lookup_reductions([call_hash])[call_hash]
    assert value_hash == hash_struct("Reduction", call_hash)
    garbage = find_garbage(store, time.time() + 3600)
    assert value_hash not in {h for h, _, _ in garbage.values}
    sched.close()


class Registered:
    """A type whose reducer is registered with copyreg after lazyflow was imported."""

    def __init__(self, n: int) -> None:
        self.n = n


def _reduce_registered(obj: Registered) -> tuple[Any, ...]:
    return (Registered, (obj.n * 10,))  # marks that this reducer, not the default, ran


def test_reducers_registered_with_copyreg_later_are_used() -> None:
    """Stored expressions and worker results are pickled with lazyflow's own dispatch
    table; a ``copyreg.pickle`` registration made after import still applies."""
    import copyreg

    from lazyflow_core.executors.wire import fast_dumps

    copyreg.pickle(Registered, _reduce_registered)
    try:
        (call,) = loads_expression(dumps_expression([add(Registered(1), 2)]))
        assert call.args[0].n == 10
        assert pickle.loads(fast_dumps(Registered(2))).n == 20
    finally:
        del copyreg.dispatch_table[Registered]
