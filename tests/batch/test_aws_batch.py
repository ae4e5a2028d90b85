"""AWSBatchExecutor against moto's Batch and S3 servers, with real boto3/s3fs clients and
jobs run as host subprocesses of the real worker (see moto_batch.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from lazyflow_core import ExecutorError, RunCancelled, Scheduler
from lazyflow_core.executors import AWSBatchExecutor

from . import workflows as wf
from .moto_batch import MotoBatch
from .waiting import in_thread, wait_for

FAST = {"linger": 0.1, "poll_seconds": 0.2}


def executor(aws: MotoBatch, **options: Any) -> AWSBatchExecutor:
    return AWSBatchExecutor(
        queue=aws.queue, job_definition=aws.job_definition, scratch=aws.scratch, **FAST, **options
    )


def new_jobs(aws: MotoBatch, before: list[dict[str, Any]]) -> list[dict[str, Any]]:
    seen = {j["jobId"] for j in before}
    return [j for j in aws.lazyflow_jobs() if j["jobId"] not in seen]


def test_a_fan_out_runs_as_one_array_job(aws: MotoBatch, sqlite_url: str) -> None:
    """20 calls submitted together go as one array job of 2 bundles (not 20 containers);
    each call is still its own job in the store, and a second run is served from it."""
    before = aws.lazyflow_jobs()
    ex = executor(aws)
    calls: list[tuple[str, dict[str, Any]]] = []
    ex.client().meta.events.register(
        "provide-client-params.batch.*",
        lambda params, model, **_: calls.append((model.name, dict(params))),
    )
    with ex, Scheduler(db=sqlite_url, executors={"batch": ex}) as sched:
        assert sched.run(wf.fan_out(20)) == sum(range(1, 21))
        # Monitoring cost: describe_jobs on the parent once per poll, list_jobs only
        # when a status count changed (at most once per child and final status).
        names = [name for name, _ in calls]
        assert names.count("SubmitJob") == 1
        describes = [p for name, p in calls if name == "DescribeJobs"]
        assert describes and all(p["jobs"] == ex.submitted for p in describes)
        lists = [p for name, p in calls if name == "ListJobs" and "arrayJobId" in p]
        assert 1 <= len(lists) <= 2 and all(p["arrayJobId"] == ex.submitted[0] for p in lists)
        # (one more ListJobs before the first submission: jobs of earlier runs to re-attach)
        assert len([n for n in names if n == "ListJobs"]) == len(lists) + 1
        assert sched.last_run is not None and sched.last_run.executed == 22
        jobs = new_jobs(aws, before)
        assert len(jobs) == 1 and len(ex.submitted) == 1
        children = aws.children(jobs[0]["jobId"])
        assert sorted(c["status"] for c in children) == ["SUCCEEDED", "SUCCEEDED"]
        assert sched.run(wf.fan_out(20)) == sum(range(1, 21))
        assert sched.last_run.executed == 0 and len(new_jobs(aws, before)) == 1


def test_many_unmeasured_calls_wait_for_a_probe_bundle(aws: MotoBatch, sqlite_url: str) -> None:
    """150 calls of a task never measured: one bundle of 10 goes first; once it has
    measured the task as tiny, the other 140 go as one bundle (not 14 containers)."""
    ex = executor(aws)
    with ex, Scheduler(db=sqlite_url, executors={"batch": ex}) as sched:
        assert sched.run(wf.fan_out(150)) == sum(range(1, 151))
    batch = aws.client("batch")
    jobs = batch.describe_jobs(jobs=ex.submitted)["jobs"]
    assert [j.get("arrayProperties", {}).get("size", 1) for j in jobs] == [1, 1]
    assert ex.runtimes.mean(wf.inc.name) is not None


def test_a_task_error_comes_back_as_data_and_is_not_resubmitted(
    aws: MotoBatch, sqlite_url: str
) -> None:
    """The task's exception is re-raised with its type and message; its container exited
    0 and the executor did not submit it again."""
    ex = executor(aws)
    with ex, Scheduler(db=sqlite_url, executors={"batch": ex}) as sched:
        with pytest.raises(ValueError, match="boom 3") as info:
            sched.run(wf.boom(3))
        assert "boom" in str(info.value.__cause__)  # the remote traceback
    assert len(ex.submitted) == 1
    (job,) = aws.client("batch").describe_jobs(jobs=ex.submitted)["jobs"]
    assert job["status"] == "SUCCEEDED"


def test_a_submission_the_service_refuses_fails_its_jobs_with_the_fix(
    aws: MotoBatch, sqlite_url: str
) -> None:
    """A queue that does not exist: the call fails with an ExecutorError naming the
    task, the service's answer and what to check, instead of hanging."""
    ex = AWSBatchExecutor("no-such-queue", aws.job_definition, aws.scratch, **FAST)
    with (
        ex,
        Scheduler(db=sqlite_url, executors={"batch": ex}) as sched,
        pytest.raises(ExecutorError) as info,
    ):
        sched.run(wf.inc(1))
    message = str(info.value)
    assert "inc" in message and "no-such-queue" in message and "queue" in message
    assert ex.submitted == []


def test_resources_become_resource_requirements() -> None:
    # options(), not a second @task of the same function: that would be a redefinition of
    # wf.inc (the last definition wins) for every later test in this process
    sized = wf.inc.options(executor="batch", resources={"vcpus": 2, "memory": "1GiB"})
    assert AWSBatchExecutor.resource_requirements(sized.options.resources) == [
        {"type": "VCPU", "value": "2"},
        {"type": "MEMORY", "value": "1024"},
    ]


PREEMPTED = "Host EC2 (instance i-0123456789abcdef0) terminated."


def test_a_preempted_child_is_resubmitted_on_the_infrastructure_budget(
    aws: MotoBatch, sqlite_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Child 0 of a 2-bundle array is terminated with a "Host EC2" reason while its
    second job hangs: its first job's outcome, written as it finished, is kept; only the
    hanging job goes again, in a new job; the run succeeds."""
    ex = executor(aws, unmeasured_per_bundle=2)
    calls = [wf.hangs_once(str(tmp_path), i) for i in (1, 0, 2)]  # bundles [1, 0], [2]
    with ex, Scheduler(db=sqlite_url, executors={"batch": ex}) as sched:
        thread, result = in_thread(sched.run, calls)
        wait_for(tmp_path / "started-0")
        (array,) = ex.submitted
        _wait_for_object(aws, "/out/0/0-1")  # job 1's outcome is on S3
        aws.client("batch").terminate_job(jobId=f"{array}:0", reason=PREEMPTED)
        thread.join(60)
    assert result == {"value": [10, 0, 20]}
    assert len(ex.submitted) == 2  # the array, then the hanging job again
    ran = sorted(p.name.rsplit("-", 1)[0] for p in tmp_path.glob("ran-*"))
    assert ran == ["ran-0", "ran-0", "ran-1", "ran-2"]
    assert any(PREEMPTED in r.getMessage() for r in caplog.records)
    again = aws.client("batch").describe_jobs(jobs=[ex.submitted[1]])["jobs"][0]
    assert again["status"] == "SUCCEEDED" and "arrayProperties" not in again


def _wait_for_object(aws: MotoBatch, suffix: str, seconds: float = 30) -> None:
    s3 = aws.client("s3")
    deadline = time.monotonic() + seconds
    while True:
        listed = s3.list_objects_v2(Bucket=aws.bucket, Prefix="lazyflow/runs/")
        if any(o["Key"].endswith(suffix) for o in listed.get("Contents", [])):
            return
        assert time.monotonic() < deadline, f"no object *{suffix} on S3"
        time.sleep(0.05)


def test_infrastructure_failures_past_the_budget_fail_with_the_reason_and_log(
    aws: MotoBatch, sqlite_url: str, tmp_path: Path
) -> None:
    """With infra_retries=0 the killed job fails: an ExecutorError naming the task, the
    status reason and the tail of the container's CloudWatch log."""
    ex = executor(aws, infra_retries=0)
    with ex, Scheduler(db=sqlite_url, executors={"batch": ex}) as sched:
        thread, result = in_thread(sched.run, wf.hangs_once(str(tmp_path), 0))
        wait_for(tmp_path / "started-0")
        aws.client("batch").terminate_job(jobId=ex.submitted[0], reason=PREEMPTED)
        thread.join(60)
    error = result["error"]
    assert isinstance(error, ExecutorError)
    message = str(error)
    assert "'tests.batch.workflows.hangs_once'" in message or "hangs_once" in message
    assert PREEMPTED in message and "preempted" in message
    assert "attempt 1 of hangs_once(0) hangs" in message  # from the log's tail
    assert len(ex.submitted) == 1


def test_cancel_terminates_the_jobs_in_flight(
    aws: MotoBatch, sqlite_url: str, tmp_path: Path
) -> None:
    """Scheduler.cancel() during a run terminates its Batch job, whose container stops."""
    ex = executor(aws)
    sched = Scheduler(db=sqlite_url, executors={"batch": ex})
    thread, result = in_thread(sched.run, wf.waits_for_go(str(tmp_path), 1))
    wait_for(tmp_path / "started-1")
    pid = int((tmp_path / "started-1").read_text())
    sched.cancel()
    thread.join(30)
    assert isinstance(result.get("error"), RunCancelled)
    deadline = time.monotonic() + 20
    while _alive(pid):
        assert time.monotonic() < deadline, "the container's process was not stopped"
        time.sleep(0.1)
    (job,) = aws.client("batch").describe_jobs(jobs=ex.submitted)["jobs"]
    assert job["status"] == "FAILED" and "cancelled" in job["statusReason"]
    sched.close()
    ex.shutdown()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


FIRST_RUN = """
import sys
sys.path.insert(0, {repo!r})
from lazyflow_core import Scheduler
from lazyflow_core.executors import AWSBatchExecutor
from tests.batch import workflows as wf
ex = AWSBatchExecutor({queue!r}, {jd!r}, {scratch!r}, linger=0.1, poll_seconds=0.2)
Scheduler(db={db!r}, executors={{"batch": ex}}).run(wf.waits_for_go({markers!r}, 7))
"""


def test_a_restarted_run_reattaches_to_the_job_it_left_running(
    aws: MotoBatch, sqlite_url: str, tmp_path: Path
) -> None:
    """A scheduler killed (SIGKILL) while its job runs; the next run of the same call
    finds that job by its name and scratch index and waits for it: nothing is submitted
    again, and the job's outcome is the run's result."""
    markers = tmp_path / "markers"
    markers.mkdir()
    script = tmp_path / "first.py"
    repo = str(Path(__file__).resolve().parents[2])
    script.write_text(
        FIRST_RUN.format(
            repo=repo,
            queue=aws.queue,
            jd=aws.job_definition,
            scratch=aws.scratch,
            db=sqlite_url,
            markers=str(markers),
        )
    )
    first = subprocess.Popen([sys.executable, str(script)], cwd=tmp_path)
    try:
        wait_for(markers / "started-7")
    finally:
        first.kill()
        first.wait()
    pid = int((markers / "started-7").read_text())
    ex = executor(aws)
    with ex, Scheduler(db=sqlite_url, executors={"batch": ex}) as sched:
        thread, result = in_thread(sched.run, wf.waits_for_go(str(markers), 7))
        deadline = time.monotonic() + 30
        while not ex.attached:
            assert time.monotonic() < deadline and thread.is_alive(), result
            time.sleep(0.05)
        (markers / "go").touch()
        thread.join(60)
    assert result == {"value": 107}
    assert ex.submitted == []
    assert int((markers / "started-7").read_text()) == pid  # the same process finished
