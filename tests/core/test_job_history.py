"""Records are history (DESIGN.md "Trust"): a job keeps the result, code and error it
had, whatever later runs of the same call do; a failed job keeps its traceback."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lazyflow_core import Scheduler, task
from lazyflow_core.events import JobEvent
from lazyflow_core.executors import Executor
from lazyflow_core.hashing import value_digest
from lazyflow_core.provenance import CallNode, Provenance


@task
def draw() -> str:
    return os.urandom(8).hex()  # a different result each time it runs


@task
def drawn() -> list[str]:
    return [draw()]


@task
def flaky(path: str) -> str:
    if not os.path.exists(path):
        raise RuntimeError(f"{path} is not there yet")
    return "ok"


@task
def wraps(path: str) -> list[str]:
    return [flaky(path)]


def _nodes(prov: Provenance, execution_id: str) -> dict[str, CallNode]:
    out: dict[str, CallNode] = {}
    todo = prov.call_tree(execution_id)
    while todo:
        node = todo.pop()
        out[node.task_name.rsplit(".", 1)[-1]] = node
        todo.extend(node.children)
    return out


def test_a_later_no_cache_run_does_not_rewrite_an_older_execution(store_url: str) -> None:
    with Scheduler(db=store_url) as sched:
        first = sched.run(drawn())
        assert sched.last_run is not None
        first_id = sched.last_run.execution_id
        second = sched.run(drawn(), cache=False)
        assert second != first
        prov = Provenance(sched.store)
        old = _nodes(prov, first_id)
        assert old["draw"].result is not None
        assert old["draw"].result.hash == value_digest(first[0]).hex()
        assert old["drawn"].result is not None
        assert old["drawn"].result.hash == value_digest(first).hex()
        job = old["draw"].job
        assert job is not None
        assert prov.job(job.id).result_hash == value_digest(first[0]).hex()
        assert prov.job(job.id).task_hash == draw.hash


def test_a_retry_that_succeeds_leaves_the_failed_attempt_failed(
    store_url: str, tmp_path: Path
) -> None:
    flag = str(tmp_path / "ready")
    with Scheduler(db=store_url) as sched:
        with pytest.raises(RuntimeError, match="not there yet"):
            sched.run(wraps(flag))
        assert sched.last_run is not None
        failed_id = sched.last_run.execution_id
        Path(flag).write_text("")
        assert sched.run(wraps(flag)) == ["ok"]  # the orchestrator's retry
        prov = Provenance(sched.store)
        old = _nodes(prov, failed_id)
        node = old["flaky"]
        assert node.status == "failed"
        assert node.result is None  # not the retry's "ok"
        assert node.task_hash == flaky.hash
        assert node.job is not None
        assert node.job.error_type == "builtins.RuntimeError"
        assert node.job.traceback is not None
        assert 'raise RuntimeError(f"{path} is not there yet")' in node.job.traceback
        # The parent failed because of it: its type is kept, the traceback is the child's.
        parent = old["wraps"]
        assert parent.status == "failed" and parent.result is None
        assert parent.job is not None and parent.job.error_type == "builtins.RuntimeError"
        assert parent.job.traceback is None
        # The failed job's task version is recorded, so its page shows the code.
        version = prov.task(flaky.hash)
        assert version is not None and "not there yet" in (version.source or "")


def test_a_failed_job_keeps_its_traceback_on_every_executor(
    executor: Executor, sqlite_url: str, tmp_path: Path
) -> None:
    events: list[JobEvent] = []
    with Scheduler(db=sqlite_url, executor=executor, listeners=[events.append]) as sched:
        with pytest.raises(RuntimeError):
            sched.run(flaky(str(tmp_path / "never")))
        assert sched.last_run is not None
        eid = sched.last_run.execution_id
    with Provenance(sqlite_url) as prov:
        (job,) = prov.jobs(eid)
    assert job.status == "failed" and job.error_type == "builtins.RuntimeError"
    assert job.traceback is not None and "in flaky" in job.traceback
    assert "RuntimeError:" in job.traceback.splitlines()[-1] or "RuntimeError" in job.traceback
    (failed,) = [e for e in events if e.kind == "failed"]
    assert failed.traceback == job.traceback
