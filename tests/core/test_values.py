"""The one container walker: expressions, files and code are found under one policy.

`collect`/`substitute`/`contains_expression` (expressions), `iter_files` (files) and the
code hasher used to disagree: dict keys were searched by one and not another, the depth
cut-off was 50 for files, 200 for expressions and none (RecursionError) for `collect`.
"""

from __future__ import annotations

import dataclasses
import pickle
from collections import OrderedDict, defaultdict, namedtuple
from pathlib import Path
from typing import Any

import pytest

from lazyflow_core import Dir, File, Scheduler, ValueNestingError, hash_value, task
from lazyflow_core.expression import collect, contains_expression, substitute
from lazyflow_core.files import iter_files
from lazyflow_core.values import MAX_DEPTH, Walk, dumps_value, is_instance_of

Pair = namedtuple("Pair", "left right")


@dataclasses.dataclass
class Box:
    item: Any
    label: str = "box"


@dataclasses.dataclass(frozen=True)
class FrozenBox:
    item: Any


@task
def inc(x: int) -> int:
    return x + 1


def nested(depth: int, leaf: Any) -> Any:
    value = leaf
    for _ in range(depth):
        value = [value]
    return value


SHAPES = {
    "list": lambda x: [1, x],
    "tuple": lambda x: (1, x),
    "set": lambda x: {1, x},
    "frozenset": lambda x: frozenset({1, x}),
    "dict value": lambda x: {"k": x},
    "dict key": lambda x: {x: "v"},
    "OrderedDict": lambda x: OrderedDict(k=x),
    "defaultdict": lambda x: defaultdict(list, k=x),
    "namedtuple": lambda x: Pair(1, x),
    "dataclass": lambda x: Box(x),
    "frozen dataclass": lambda x: FrozenBox(x),
    "deep": lambda x: nested(300, x),
}


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_every_use_sees_the_same_containers(shape: str) -> None:
    """Expressions and files are found in the same places, dict keys included."""
    expr = inc(1)
    held = SHAPES[shape](expr)
    assert contains_expression(held)
    found: list[Any] = []
    collect(held, found)
    assert [id(x) for x in found] == [id(expr)]

    f = File("data.csv")
    assert iter_files(SHAPES[shape](f)) == [f]


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_substitute_rebuilds_each_container_kind(shape: str) -> None:
    expr = inc(1)
    held = SHAPES[shape](expr)
    frames = {id(expr): _Done(2)}
    out = substitute(held, frames)
    assert type(out) is type(held)
    assert out == SHAPES[shape](2)
    assert not contains_expression(out)
    if shape == "defaultdict":
        assert out.default_factory is list


class _Done:
    def __init__(self, value: Any) -> None:
        self.value = value


def test_substitute_keeps_containers_without_expressions() -> None:
    """Nothing to replace: the very same object, not a copy (a million argument tuples)."""
    for value in [(1, 2), [1, [2, 3]], {"a": (1,)}, Box([1]), Pair(1, 2), {1, 2}]:
        assert substitute(value, {}) is value


def test_values_nested_past_the_limit_raise_a_clear_error() -> None:
    """Deep values are searched to MAX_DEPTH without RecursionError, then refused."""
    expr = inc(1)
    assert contains_expression(nested(MAX_DEPTH - 10, expr))
    with pytest.raises(ValueNestingError, match="nested more than"):
        contains_expression(nested(MAX_DEPTH + 10, expr))
    with pytest.raises(ValueNestingError):
        iter_files(nested(MAX_DEPTH + 10, 1))


def test_a_value_containing_itself_is_refused_not_a_recursion_error() -> None:
    loop: list[Any] = [1]
    loop.append(loop)
    with pytest.raises(ValueNestingError, match="contains itself"):
        collect((loop,), [])
    with pytest.raises(ValueNestingError):
        substitute((loop, inc(1)), {})


def test_plain_objects_are_leaves() -> None:
    """A plain object's attributes are not searched (see `finish_outcome`'s error)."""

    class Holder:
        def __init__(self, x: Any) -> None:
            self.x = x

    assert not contains_expression(Holder(inc(1)))
    assert iter_files(Holder(File("a"))) == []
    assert not contains_expression(Box)  # a dataclass *class* is not a container


def test_order_is_depth_first_left_to_right() -> None:
    a, b, c, d = inc(1), inc(2), inc(3), inc(4)
    found: list[Any] = []
    collect(((a, [b, {"k": c}]), {"x": d}), found)
    assert [id(x) for x in found] == [id(x) for x in (a, b, c, d)]


def test_a_new_walk_finds_its_own_targets() -> None:
    assert Walk(is_instance_of(bytes)).found([b"a", ("b", b"c")]) == [b"a", b"c"]
    found = Walk(is_instance_of(Path)).found({"p": [Path("/x")], Path("/k"): 1})
    assert found == [Path("/x"), Path("/k")]  # keys and values, in insertion order


def test_dumps_value_falls_back_to_cloudpickle() -> None:
    def make() -> Any:
        class Local:
            def __init__(self) -> None:
                self.v = 3

        return Local()

    data = dumps_value(make())
    assert pickle.loads(data).v == 3


def test_a_file_held_as_a_dict_key_is_validated(tmp_path: Path, sqlite_url: str) -> None:
    """A cached result holding a File as a dict key re-runs when that file changes."""
    out = tmp_path / "out.txt"

    @task
    def produce(path: str) -> dict[File, str]:
        return {File(path).write("made"): "output"}

    sched = Scheduler(db=sqlite_url)
    sched.run(produce(str(out)))
    sched.run(produce(str(out)))
    assert sched.last_run is not None and sched.last_run.cached == 1
    out.write_text("edited by hand, longer")
    sched.run(produce(str(out)))
    assert sched.last_run.executed == 1
    assert out.read_text() == "made"


def test_dir_is_a_leaf(tmp_path: Path) -> None:
    d = Dir(tmp_path)
    assert iter_files([d, (d,)]) == [d, d]


@task
def add(a: int, b: int) -> int:
    return a + b


@task
def bind_later() -> Any:
    return add.partial(inc(1))  # a partial task holding a lazy argument


@task
def call_with(p: Any, b: int) -> Any:
    return p(b)


def test_a_returned_partial_task_has_its_lazy_arguments_evaluated(sqlite_url: str) -> None:
    sched = Scheduler(db=sqlite_url)
    p = sched.run(bind_later())
    assert p.task is add and p.args == (2,)
    assert sched.run(call_with(bind_later(), 10)) == 12
    assert sched.run(bind_later()).args == (2,)  # cached, with the evaluated argument
    assert sched.last_run is not None and sched.last_run.cached == 1


def _local_settings() -> Any:
    @dataclasses.dataclass
    class Settings:  # defined in a function: plain pickle cannot store it, cloudpickle can
        n: int

    return Settings(3)


@task
def doubled(s: Any) -> int:
    return s.n * 2


@task
def passed_through(s: Any) -> Any:
    return s


def test_an_argument_of_a_local_class_is_stored_like_a_result(sqlite_url: str) -> None:
    """Argument values are pickled with the cloudpickle fallback, as results are."""
    settings = _local_settings()
    sched = Scheduler(db=sqlite_url)
    assert sched.run(doubled(settings)) == 6
    digest = hash_value(settings)
    data = sched.store.load_value_data([digest])[digest]
    assert data is not None and pickle.loads(data).n == 3
    # A later call returning that same value reuses the stored row: it must be readable.
    assert sched.run(passed_through(_local_settings())).n == 3
    assert sched.run(passed_through(_local_settings())).n == 3
    assert sched.last_run is not None and sched.last_run.cached == 1
