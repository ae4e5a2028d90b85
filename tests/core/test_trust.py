"""The caching rules of DESIGN.md "Trust" (issue 11): the cache is never wrong.

Each test is a case a user meets in one process (a notebook, a long-lived script): a task
redefined, a constant edited, a ``cache=False`` call below a cached parent, an expression
as a default argument, a ``catch`` at the top of a run. docs/caching.md states the rules.
"""

from __future__ import annotations

import gc
import importlib
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from sqlalchemy import text

from lazyflow_core import (
    Dir,
    ExecutorError,
    File,
    MissingFileError,
    Scheduler,
    TaskDefinitionError,
    catch,
    hash_value,
    task,
)
from lazyflow_core.executors import Executor
from lazyflow_core.task import Task, get_task

from .user_code import SCALED_MODULE


def ran(sched: Scheduler) -> dict[str, int]:
    """``{task name: calls executed}`` of the scheduler's last run."""
    assert sched.last_run is not None
    return {name: c.executed for name, c in sched.last_run.by_task.items() if c.executed}


# -- rule: last definition wins ------------------------------------------------------


def _define_step(factor: int) -> Task:
    """A notebook cell defining ``step``: each call defines it again (same name)."""

    @task(namespace="trust_redefine", name="step")
    def step(x: int) -> int:
        return x * factor

    return step


def _define_fan(cell: list[Task]) -> Task:
    """A parent calling whatever ``step`` is bound to now (`cell`): its code is unchanged."""

    @task(namespace="trust_redefine")
    def fan(n: int) -> list[Any]:
        return [cell[0](i) for i in range(n)]

    return fan


def test_a_redefined_task_replaces_the_old_one(sqlite_url: str, executor: Executor) -> None:
    sched = Scheduler(db=sqlite_url, executor=executor)
    cell = [_define_step(10)]
    fan = _define_fan(cell)
    old = cell[0]
    assert sched.run(fan(3)) == [0, 10, 20]
    new = _define_step(100)  # the old object is still alive
    cell[0] = new
    assert get_task(new.name) is new
    # the cached parent is validated against the new definition: the step calls run
    # again (fan's body does not: its stored returned expression is evaluated again)
    assert sched.run(fan(3)) == [0, 100, 200]
    assert ran(sched) == {new.name: 3}
    # the old object is gone: the name is still cached
    del old
    gc.collect()
    assert sched.run(fan(3)) == [0, 100, 200]
    assert ran(sched) == {}
    sched.close()


def test_a_task_pickled_by_value_does_not_resurrect_old_code() -> None:
    import cloudpickle as pickle  # as values are stored

    old = _define_step(10)
    data = pickle.dumps(old)  # a local task: pickled by value (its code goes along)
    name = old.name
    del old
    gc.collect()
    restored = pickle.loads(data)  # an old result holding the task, loaded again
    assert restored.func(1) == 10
    assert get_task(name) is None  # loading it did not make the old code the definition
    new = _define_step(100)
    assert get_task(name) is new
    assert pickle.loads(data) is new  # the live definition, once there is one


# -- rule: code hashes are computed per run ------------------------------------------


@pytest.fixture
def user_module(tmp_path: Path) -> Iterator[Callable[[str], ModuleType]]:
    """Writes and imports a module of the user's own code (not in site-packages)."""
    names: list[str] = []
    sys.path.insert(0, str(tmp_path))

    def make(source: str) -> ModuleType:
        name = f"trust_user_{len(names)}_{id(tmp_path):x}"
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))
        names.append(name)
        return importlib.import_module(name)

    yield make
    sys.path.remove(str(tmp_path))
    for name in names:
        sys.modules.pop(name, None)


def test_an_edited_constant_is_seen_in_the_same_process(
    sqlite_url: str, user_module: Callable[[str], ModuleType]
) -> None:
    mod = user_module(SCALED_MODULE)
    sched = Scheduler(db=sqlite_url, executor="threads")
    assert sched.run(mod.total(3)) == [0, 2, 4]
    mod.FACTOR = 4  # a notebook cell: FACTOR = 4
    assert sched.run(mod.total(3)) == [0, 4, 8]
    assert ran(sched)[mod.scaled.name] == 3
    assert sched.run(mod.total(3)) == [0, 4, 8]
    assert ran(sched) == {}


def test_an_edited_helper_is_seen_in_the_same_process(
    sqlite_url: str, user_module: Callable[[str], ModuleType]
) -> None:
    mod = user_module(SCALED_MODULE)
    sched = Scheduler(db=sqlite_url, executor="threads")
    assert sched.run(mod.scaled(3)) == 6
    mod.scale = lambda x: x + 1  # the helper redefined in place
    assert sched.run(mod.scaled(3)) == 4


def test_a_reloaded_module_is_what_long_lived_process_workers_run(
    sqlite_url: str, tmp_path: Path, user_module: Callable[[str], ModuleType]
) -> None:
    """Workers imported the module before the edit; they must not run the old code
    under the new code hash (they reload it when the hashes disagree)."""
    from lazyflow_core.executors import ProcessExecutor

    mod = user_module(SCALED_MODULE)
    with ProcessExecutor(2) as pool:
        sched = Scheduler(db=sqlite_url, executor=pool)
        assert sched.run(mod.total(3)) == [0, 2, 4]
        path = Path(mod.__file__ or "")
        path.write_text(path.read_text().replace("FACTOR = 2", "FACTOR = 5"))
        importlib.invalidate_caches()
        mod = importlib.reload(mod)
        assert sched.run(mod.total(3)) == [0, 5, 10]  # the old workers, the new code
        assert ran(sched)[mod.scaled.name] == 3


def test_state_changed_in_the_scheduler_only_fails_instead_of_a_wrong_result(
    sqlite_url: str, user_module: Callable[[str], ModuleType]
) -> None:
    from lazyflow_core.executors import ProcessExecutor

    mod = user_module(SCALED_MODULE)
    mod.FACTOR = 4  # set in this process only: a worker importing the module has 2
    with ProcessExecutor(2) as pool:
        sched = Scheduler(db=sqlite_url, executor=pool)
        with pytest.raises(ExecutorError, match="differs from the scheduler's"):
            sched.run(mod.total(3))


# -- rule: cache=False runs every time -----------------------------------------------


@task(cache=False)
def volatile(x: int) -> int:
    return x + 1


@task
def stable_parent(n: int) -> list[Any]:
    return [volatile(0) for _ in range(n)] + [volatile(1)]


def test_cache_false_runs_every_time_under_a_cached_parent(
    sqlite_url: str, executor: Executor
) -> None:
    sched = Scheduler(db=sqlite_url, executor=executor)
    for _ in range(2):
        assert sched.run(stable_parent(3)) == [1, 1, 1, 2]
        # identical calls in one run are merged: volatile(0) once, volatile(1) once
        assert ran(sched)[volatile.name] == 2
    sched.close()


def test_identical_uncached_calls_in_one_run_are_merged(sqlite_url: str) -> None:
    sched = Scheduler(db=sqlite_url, executor="threads")
    assert sched.run([volatile(5), volatile(5), volatile(6)]) == [6, 6, 7]
    assert ran(sched) == {volatile.name: 2}


# -- rule: default arguments are arguments -------------------------------------------


@task
def add(a: int, b: int) -> int:
    return a + b


@task
def with_lazy_default(x: int, offset: int = add(1, 2)) -> str:
    return f"{x}+{offset}"  # the value, not an expression


def test_an_expression_as_default_argument_is_evaluated(sqlite_url: str) -> None:
    sched = Scheduler(db=sqlite_url, executor="threads")
    assert sched.run(with_lazy_default(10)) == "10+3"
    assert sched.run(with_lazy_default(10, offset=add(0, 1))) == "10+1"
    assert sched.run(with_lazy_default(10, 3)) == "10+3"
    assert ran(sched) == {}  # the default is hashed as its value: the same call as before


# -- rule: catch is cached wherever it is --------------------------------------------


class Flaky(Exception):
    pass


@task
def fails(x: int) -> int:
    raise Flaky(f"no {x}")


@task
def recover(exc: Exception) -> int:
    return -1


@task
def guarded(x: int) -> Any:
    return catch(fails(x), Flaky, recover)


def test_a_top_level_catch_is_cached(sqlite_url: str, executor: Executor) -> None:
    sched = Scheduler(db=sqlite_url, executor=executor)
    assert sched.run(catch(fails(1), Flaky, recover)) == -1
    counts = ran(sched)
    assert (counts[fails.name], counts[recover.name]) == (1, 1)
    assert sched.run(catch(fails(1), Flaky, recover)) == -1
    assert ran(sched) == {}
    # as inside a task
    assert sched.run(guarded(1)) == -1
    assert sched.run(guarded(1)) == -1
    assert ran(sched) == {}
    sched.close()


@task
def positional_default(a: int = add(2, 2), /, b: int = 1) -> list[int]:
    return [type(a).__name__, a, b]  # type: ignore[list-item]


def test_a_positional_only_expression_default_is_evaluated(sqlite_url: str) -> None:
    sched = Scheduler(db=sqlite_url, executor="inline")
    assert sched.run(positional_default()) == ["int", 4, 1]
    assert sched.run(positional_default(b=2)) == ["int", 4, 2]


# -- smaller rules (issue 11, item 13) -----------------------------------------------


@task
def read_text(f: File) -> str:
    return f.read()


@task
def write_text(f: File, text: str) -> File:
    return f.write(text)


@pytest.mark.parametrize(
    "executor", ["inline", "threads", "processes", "dask"], indirect=True
)  # executors that share this machine's files
def test_a_file_that_does_not_exist_yet_hashes_as_absent(
    sqlite_url: str, tmp_path: Path, executor: Executor
) -> None:
    missing = File(str(tmp_path / "later.txt"))
    assert hash_value(missing) != hash_value(File(str(tmp_path / "other.txt")))
    sched = Scheduler(db=sqlite_url, executor=executor)
    # an output path given before it exists: the call hashes and runs
    assert sched.run(write_text(missing, "made")).read() == "made"
    with pytest.raises(MissingFileError) as err:
        sched.run(read_text(File(str(tmp_path / "never.txt"))))
    message = str(err.value)
    assert read_text.name in message and "argument f" in message and "never.txt" in message
    assert isinstance(err.value, FileNotFoundError)  # still one, for code that catches it
    sched.close()


def _helper_v1(x: int) -> int:
    return x + 1


def test_a_plain_function_argument_hashes_by_its_code(
    user_module: Callable[[str], ModuleType],
) -> None:
    source = "def helper(x):\n    return x + 1\n"
    first = user_module(source).helper
    same = user_module(source).helper  # another module, the same code
    edited = user_module(source.replace("x + 1", "x + 2")).helper
    assert hash_value(first) == hash_value(same)
    assert hash_value(edited) != hash_value(first)
    assert hash_value(_helper_v1) != hash_value(first)


def test_hash_includes_order_does_not_matter() -> None:
    def body(x: int) -> int:
        return x

    one = task(hash_includes=["schema-v2", 3])(body).hash
    assert task(hash_includes=[3, "schema-v2"])(body).hash == one
    assert task(hash_includes=["schema-v3", 3])(body).hash != one


@pytest.mark.parametrize(
    "options",
    [{"name": "1bad task"}, {"name": "a.b"}, {"namespace": "bad ns"}, {"namespace": "bio..qc"}],
)
def test_task_names_and_namespaces_are_validated(options: dict[str, str]) -> None:
    def body() -> None:
        pass

    with pytest.raises(TaskDefinitionError, match="not a valid"):
        task(**options)(body)
    assert task(name="good_name", namespace="bio.qc")(body).name == "bio.qc.good_name"


@task(executor="no_such_executor")
def misplaced(x: int) -> int:
    return x


def test_an_unknown_executor_leaves_a_failed_job_in_the_record(sqlite_url: str) -> None:
    sched = Scheduler(db=sqlite_url, executor="threads")
    with pytest.raises(ExecutorError, match="no_such_executor"):
        sched.run(misplaced(1))
    assert sched.last_run is not None and sched.last_run.failed == 1
    rows = sched.store.query(
        text("SELECT status FROM lf_jobs WHERE task_name = :n"), {"n": misplaced.name}
    )
    assert [tuple(r) for r in rows] == [("failed",)]


def test_a_memory_dir_lists_files_equal_to_files_of_their_paths() -> None:
    File("memory://trust-b/x.txt").write("x")
    File("memory://trust-b/sub/y.txt").write("y")
    assert sorted(Dir("memory://trust-b").files(), key=lambda f: f.path) == [
        File("memory://trust-b/sub/y.txt"),
        File("memory://trust-b/x.txt"),
    ]


def _define_divide(denominator: int) -> Task:
    @task(namespace="trust_catch", name="divide")
    def divide() -> float:
        return 10 / denominator

    return divide


def test_a_cached_catch_reacts_to_an_edit_of_the_call_that_failed(
    sqlite_url: str, executor: Executor
) -> None:
    """The call a catch handled is part of the cached result: editing it re-runs it."""
    cell = [_define_divide(0)]

    @task(namespace="trust_catch")
    def guarded_divide() -> Any:
        return catch(cell[0](), ZeroDivisionError, recover)

    sched = Scheduler(db=sqlite_url, executor=executor)
    assert sched.run(guarded_divide()) == -1
    assert sched.run(guarded_divide()) == -1 and ran(sched) == {}
    cell[0] = _define_divide(5)  # fixed
    assert sched.run(guarded_divide()) == 2.0
    sched.close()
