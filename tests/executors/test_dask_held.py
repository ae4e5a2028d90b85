"""Large results stay on the Dask cluster for the next call that takes them (`dask_held`),
on a real LocalCluster with worker processes."""

from __future__ import annotations

import os
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from lazyflow_core import Scheduler, task
from lazyflow_core.executors import DaskExecutor
from lazyflow_core.executors.dask_held import HeldCopyLost, resolver
from lazyflow_core.executors.wire import Wire

pytestmark = pytest.mark.dask

SIZE = 3_000_000  # over SCATTER_BYTES

# One entry per Big pickled in the test's own process. Kept outside this module's
# globals: module state a task reaches is part of its code hash, and the workers' differ.
PICKLED_HERE: list[int] = sys.__dict__.setdefault("_lazyflow_test_big_pickled", [])
os.environ["LAZYFLOW_TEST_PICKLER_PID"] = str(os.getpid())


class Big:
    """A large value that notes when it is pickled in the test's process."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def __reduce__(self) -> tuple[Any, ...]:
        if os.environ.get("LAZYFLOW_TEST_PICKLER_PID") == str(os.getpid()):
            sys.__dict__.setdefault("_lazyflow_test_big_pickled", []).append(1)
        return (Big, (self.data,))


@task
def make(seed: int) -> Big:
    return Big(bytes([seed % 256]) * SIZE)


@task
def grow(b: Big) -> Big:
    return Big(b.data[1:] + b.data[:1] + b"+")


@task
def size(b: Big) -> int:
    return len(b.data)


@pytest.fixture
def dep_keys(dask_cluster: Any) -> Iterator[dict[str, list[str]]]:
    """For each of lazyflow's Dask tasks as it starts: the keys it depends on."""
    from distributed.diagnostics.plugin import SchedulerPlugin

    scheduler = dask_cluster.scheduler
    seen: dict[str, list[str]] = {}

    class Deps(SchedulerPlugin):
        name = f"lazyflow-test-deps-{uuid.uuid4().hex}"

        def transition(self, key: Any, start: str, finish: str, *a: Any, **k: Any) -> None:
            if finish == "processing" and str(key).startswith("lazyflow_"):
                seen[str(key)] = [str(d.key) for d in scheduler.tasks[key].dependencies]

    plugin = Deps()
    scheduler.add_plugin(plugin)
    try:
        yield seen
    finally:
        scheduler.remove_plugin(name=plugin.name)


def _deps_of(seen: dict[str, list[str]], name: str) -> list[str]:
    found = [deps for key, deps in seen.items() if f"_{name}-" in key]
    assert len(found) == 1, seen
    return found[0]


def test_a_large_result_is_not_sent_again_to_the_call_that_takes_it(
    dask_cluster: Any, dep_keys: dict[str, list[str]], sqlite_url: str
) -> None:
    """make -> grow -> size: each large value comes back here once (for the store) and
    is never pickled here again; each consumer's Dask task depends on the producer's
    bundle on the cluster, not on data scattered from here. The cache serves run two."""
    PICKLED_HERE.clear()
    expected = len(bytes([7]) * SIZE) + 1
    with (
        DaskExecutor(dask_cluster.scheduler_address) as ex,
        Scheduler(db=sqlite_url, executor=ex) as s,
    ):
        assert s.run(size(grow(make(7)))) == expected
        assert PICKLED_HERE == []
        assert any("_make-" in k for k in _deps_of(dep_keys, "grow")), dep_keys
        assert any("_grow-" in k for k in _deps_of(dep_keys, "size")), dep_keys
        assert s.run(size(grow(make(7)))) == expected
        summary = s.last_run
        assert summary is not None and summary.executed == 0 and summary.cached >= 1


def test_the_value_is_sent_when_the_held_copy_was_released(
    dask_cluster: Any, dep_keys: dict[str, list[str]], sqlite_url: str
) -> None:
    """A value held on the cluster is referred to by identity, also when passed to a
    later run; once its copy is cancelled on the cluster (as when its worker is lost)
    it is sent from here again (scattered: it is large), and the result is right."""
    from distributed import Client

    with (
        DaskExecutor(dask_cluster.scheduler_address) as ex,
        Scheduler(db=sqlite_url, executor=ex) as s,
        Client(dask_cluster, set_as_default=False) as c,
    ):
        big = s.run(make(3))
        assert s.run(size(big)) == SIZE
        assert any("_make-" in k for k in _deps_of(dep_keys, "size")), dep_keys
        held = [b.future for b in ex._held_results._bundles.values()]
        assert held
        c.cancel(held, force=True)
        deadline = time.monotonic() + 30
        while any(f.status == "finished" for f in held) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert s.run(grow(big), cache=False).data == big.data[1:] + big.data[:1] + b"+"
        deps = _deps_of(dep_keys, "grow")
        assert deps and not any(k.startswith("lazyflow_") for k in deps), dep_keys


def test_no_budget_holds_nothing(dask_cluster: Any, sqlite_url: str) -> None:
    PICKLED_HERE.clear()
    with (
        DaskExecutor(dask_cluster.scheduler_address, hold_bytes=0) as ex,
        Scheduler(db=sqlite_url, executor=ex) as s,
    ):
        assert s.run(size(grow(make(5)))) == SIZE + 1
        assert len(ex._held_results) == 0 and len(PICKLED_HERE) >= 1


def test_a_held_copy_that_is_not_the_recorded_one_is_refused_on_the_worker() -> None:
    """A copy Dask recomputed after its worker was lost, whose digest differs from the
    recorded one, raises HeldCopyLost (the executor then sends the value itself)."""
    import pickle

    from lazyflow_core.executors.dask_held import HeldResults

    class Fut:
        key = "k"
        status = "finished"

    value = [b"x" * 1000]
    data = pickle.dumps(value)
    wire: Wire = (None, None, b"recorded", data, None, False, [], 0.0, 0.0)
    held = HeldResults(budget=1 << 20, threshold=1)
    held.hold(Fut(), [wire], [value])
    dump, refs = held.dumper()
    blob = dump(("args", value))
    assert len(refs) == 1 and len(blob) < len(data)
    same = [((wire,), 0, b"recorded")]
    assert resolver(same)(blob) == ("args", value)
    recomputed: Wire = (None, None, b"other", data, None, False, [], 0.0, 0.0)
    with pytest.raises(HeldCopyLost):
        resolver([((recomputed,), 0, b"recorded")])(blob)
