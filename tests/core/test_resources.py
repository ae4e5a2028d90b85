"""``@task(resources=...)``: validated at definition, normalized, never part of the hash."""

from __future__ import annotations

import pytest

from lazyflow_core import LazyflowError, Scheduler, task
from lazyflow_core.errors import TaskDefinitionError
from lazyflow_core.resources import parse_memory


def _double(x: int) -> int:
    return 2 * x


def test_resources_are_normalized_and_zero_amounts_dropped() -> None:
    t = task(resources={"vcpus": 2, "memory": "4GiB", "gpus": 0})(_double)
    assert t.options.resources == {"vcpus": 2, "memory": 4 * 1024**3}
    half = task(resources={"vcpus": 0.5, "memory": 512_000_000, "gpus": 1})(_double)
    assert half.options.resources == {"vcpus": 0.5, "memory": 512_000_000, "gpus": 1}
    assert task(_double).options.resources == {}


@pytest.mark.parametrize(
    ("text", "expected"),
    [("512MB", 512 * 10**6), ("4 GiB", 4 * 2**30), ("1.5gb", 1_500_000_000), ("10", 10)],
)
def test_memory_units(text: str, expected: int) -> None:
    assert parse_memory(text) == expected


def test_resources_do_not_change_the_task_hash() -> None:
    """resources= says where a call runs, not what it computes: the cache survives it."""
    plain = task(name="res_hash")(_double)
    big = task(name="res_hash", resources={"vcpus": 8, "memory": "64GiB"})(_double)
    assert plain.hash == big.hash


def test_resources_do_not_invalidate_cached_calls(sqlite_url: str) -> None:
    plain = task(name="res_cached")(_double)
    with Scheduler(db=sqlite_url) as sched:
        assert sched.run(plain(3)) == 6
    big = task(name="res_cached", resources={"memory": "1GiB"})(_double)
    with Scheduler(db=sqlite_url) as sched:
        assert sched.run(big(3)) == 6
        assert sched.last_run is not None and sched.last_run.cached == 1


@pytest.mark.parametrize(
    ("resources", "message"),
    [
        ({"cpus": 2}, "unknown resource(s) ['cpus']"),
        ({"vcpus": -1}, "must be a number >= 0"),
        ({"vcpus": "two"}, "must be a number"),
        ({"gpus": 1.5}, "whole number of GPUs"),
        ({"gpus": True}, "must be a number"),
        ({"memory": "4 gigs"}, "is not an amount of memory"),
        ({"memory": -5}, "negative"),
        ({"memory": [4]}, "is not an amount of memory"),
        (["vcpus"], "must be a dict"),
    ],
)
def test_bad_resources_are_clear_errors_naming_the_task(resources: object, message: str) -> None:
    with pytest.raises(TaskDefinitionError) as info:
        task(resources=resources)(_double)
    assert message in str(info.value)
    assert "_double" in str(info.value)
    assert isinstance(info.value, LazyflowError)
