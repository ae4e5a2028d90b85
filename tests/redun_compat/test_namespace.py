"""Module-level namespaces, translated from redun's tests/test_namespace.py.

This module sets ``lazyflow_namespace`` (redun: ``redun_namespace``), so every task it
defines after that line is named ``acme.<name>`` unless its decorator says otherwise.
"""

from __future__ import annotations

from lazyflow_core import Scheduler, task

lazyflow_namespace = "acme"


def test_namespace_comes_from_the_module() -> None:
    """redun: test_namespace."""

    @task
    def task1() -> int:
        return 10

    assert task1.options.namespace == "acme" and task1.name == "acme.task1"


def test_the_decorator_overrides_the_module_namespace() -> None:
    """redun: test_namespace_task_override."""

    @task(namespace="ns")
    def task1() -> int:
        return 10

    @task(name="good_task2", namespace="name.space2")
    def good_task() -> None:
        pass

    assert task1.name == "ns.task1" and good_task.name == "name.space2.good_task2"


def test_namespaced_tasks_run_and_are_recorded_under_their_names(sqlite_url: str) -> None:
    """redun: test_no_namespace (the run side): the store knows the task by its full name."""

    @task
    def task2() -> int:
        return 10

    sched = Scheduler(db=sqlite_url)
    assert sched.run(task2()) == 10
    assert sched.last_run is not None and list(sched.last_run.by_task) == ["acme.task2"]
