"""GCPBatchExecutor against a local fake of the Batch v1 REST API (request bodies parsed
by the real batch_v1 types) and the GCS emulator, with the real REST client and gcsfs;
tasks run as host subprocesses of the real worker (see gcp_fake.py)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from lazyflow_core import ExecutorError, RunCancelled, Scheduler

from . import workflows as wf
from .gcp_fake import GCPBatch
from .waiting import in_thread, wait_for

FAST = {"linger": 0.1, "poll_seconds": 0.2}


def test_a_fan_out_runs_as_one_batch_job_of_array_tasks(gcp: GCPBatch, sqlite_url: str) -> None:
    """20 calls go as one Batch job of 2 tasks (BATCH_TASK_INDEX picks the bundle); a
    task error comes back as data; a second run is served from the cache."""
    ex = gcp.executor(**FAST)
    with ex, Scheduler(db=sqlite_url, executors={"batch": ex}) as sched:
        assert sched.run(wf.fan_out(20)) == sum(range(1, 21))
        assert len(ex.submitted) == 1
        (job,) = [gcp.service.jobs[name] for name in ex.submitted]
        assert [t.state for t in job.tasks] == ["SUCCEEDED", "SUCCEEDED"]
        with pytest.raises(ValueError, match="boom 2"):
            sched.run(wf.boom(2))
        assert gcp.service.jobs[ex.submitted[1]].state == "SUCCEEDED"  # exit 0
        assert sched.run(wf.fan_out(20)) == sum(range(1, 21))
        assert sched.last_run is not None and sched.last_run.executed == 0
        assert len(ex.submitted) == 2


def test_a_preempted_task_exit_code_50001_is_resubmitted(
    gcp: GCPBatch, sqlite_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ex = gcp.executor(unmeasured_per_bundle=1, **FAST)
    with ex, Scheduler(db=sqlite_url, executors={"batch": ex}) as sched:
        thread, result = in_thread(sched.run, [wf.hangs_once(str(tmp_path), i) for i in (0, 1)])
        wait_for(tmp_path / "started-0")
        gcp.service.preempt(ex.submitted[0], 0)
        thread.join(60)
    assert result == {"value": [0, 10]}
    assert len(ex.submitted) == 2
    assert any("exit code 50001" in r.getMessage() for r in caplog.records)
    assert len(gcp.service.jobs[ex.submitted[1]].tasks) == 1  # only the preempted job


def test_cancel_cancels_the_batch_job(gcp: GCPBatch, sqlite_url: str, tmp_path: Path) -> None:
    ex = gcp.executor(**FAST)
    sched = Scheduler(db=sqlite_url, executors={"batch": ex})
    thread, result = in_thread(sched.run, wf.waits_for_go(str(tmp_path), 1))
    wait_for(tmp_path / "started-1")
    sched.cancel()
    thread.join(30)
    assert isinstance(result.get("error"), RunCancelled)
    job = gcp.service.jobs[ex.submitted[0]]
    deadline = time.monotonic() + 20
    while job.state != "CANCELLED":
        assert time.monotonic() < deadline, job.state
        time.sleep(0.1)
    assert job.tasks[0].proc is not None and job.tasks[0].proc.poll() is not None
    sched.close()
    ex.shutdown()


def test_resources_shape_the_task_and_unknown_fields_are_rejected(gcp: GCPBatch) -> None:
    """vcpus and memory become the task's computeResource (checked by the fake with the
    real batch_v1 types); a body with a field the API lacks is a 400, as it would be."""
    sized = wf.inc.options(resources={"vcpus": 2, "memory": "1GiB"})  # not a redefinition
    ex = gcp.executor(spot=True, machine_type="e2-standard-4")
    job = ex.job("gs://b/p", 3, sized.options.resources)
    body = json.loads(type(job).to_json(job))
    group = body["taskGroups"][0]
    assert group["taskCount"] == "3"
    assert group["taskSpec"]["computeResource"]["cpuMilli"] == "2000"
    assert group["taskSpec"]["computeResource"]["memoryMib"] == "1024"
    assert group["taskSpec"]["maxRetryCount"] == 0  # lazyflow retries, per job
    policy = body["allocationPolicy"]["instances"][0]["policy"]
    assert policy["machineType"] == "e2-standard-4" and policy["provisioningModel"] == 2  # SPOT
    status, payload = gcp.service.create(
        "projects/p/locations/l", "lazyflow-bad", json.dumps({**body, "notAField": 1})
    )
    assert status == 400 and payload["error"]["status"] == "INVALID_ARGUMENT"
    with pytest.raises(ExecutorError, match="gpu_type"):
        ex.job("gs://b/p", 1, {"gpus": 1})


def test_another_scheduler_reattaches_to_a_running_job_of_the_same_call(
    gcp: GCPBatch, sqlite_url: str, tmp_path: Path
) -> None:
    """A second scheduler (a new executor, another store) running the same call while
    the first one's Batch job runs waits for that job: it submits nothing."""
    first, second = gcp.executor(**FAST), gcp.executor(**FAST)
    other_db = f"sqlite:///{tmp_path / 'other.db'}"
    with (
        first,
        second,
        Scheduler(db=sqlite_url, executors={"batch": first}) as a,
        Scheduler(db=other_db, executors={"batch": second}) as b,
    ):
        ta, ra = in_thread(a.run, wf.waits_for_go(str(tmp_path), 3))
        wait_for(tmp_path / "started-3")
        tb, rb = in_thread(b.run, wf.waits_for_go(str(tmp_path), 3))
        deadline = time.monotonic() + 60
        while not second.attached:
            assert time.monotonic() < deadline and tb.is_alive(), rb
            time.sleep(0.05)
        (tmp_path / "go").touch()
        ta.join(60)
        tb.join(60)
    assert ra == rb == {"value": 103}
    assert second.submitted == [] and second.attached == first.submitted
