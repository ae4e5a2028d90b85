"""AWS Batch and S3 on moto's server, with containers run as host subprocesses.

moto implements the Batch API (queues, job definitions, array jobs, statuses,
``describe_jobs``/``list_jobs``/``terminate_job``) and CloudWatch Logs, and runs a job's
container with Docker, which this machine does not have. `run_on_host` replaces that
runner: it runs the job's command (with parameters substituted, as moto does) as a
subprocess of this process, in an empty temporary directory, with only the job's
environment (job definition + overrides) plus what an image would set (``PATH`` to the
interpreter that has lazyflow installed, ``HOME``) and ``AWS_BATCH_JOB_ARRAY_INDEX``,
which moto does not set. So the worker finds the user's code only through the code
package the executor shipped, and S3 only through the job's own environment.

Two behaviours of AWS that moto lacks are added, as documented by AWS: terminating an
array's parent terminates its children, and a terminated container's job is FAILED with
the termination reason. The output of the subprocess goes to CloudWatch Logs
(``/aws/batch/job``), as moto does with a container's.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

log = logging.getLogger("tests.moto_batch")

REGION = "us-east-1"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


def image_environment() -> dict[str, str]:
    """What the worker image would set: lazyflow's interpreter first on PATH."""
    return {
        "PATH": f"{os.path.dirname(sys.executable)}:/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
    }


def run_on_host(self: Any) -> None:
    """Replaces `moto.batch.models.Job.run`: the job's container as a host subprocess."""
    workdir = tempfile.mkdtemp(prefix="moto-batch-")
    try:
        for _ in range(4):  # SUBMITTED -> PENDING -> RUNNABLE -> STARTING -> RUNNING
            self.advance()
            _ = self.status
            if self.stop:
                self.job_stopped_reason = self.job_stopped_reason or "cancelled"
                self._mark_stopped(success=False)
                return
        self.job_started_at = datetime.now()
        self._start_attempt()
        command = self._add_parameters_to_command(self._get_container_property("command", []))
        env = {e["name"]: e["value"] for e in self._get_container_property("environment", [])}
        env.update(image_environment())
        env["HOME"] = env["TMPDIR"] = workdir  # a container's own /tmp
        index = (self.array_properties or {}).get("index")
        if index is not None:
            env["AWS_BATCH_JOB_ARRAY_INDEX"] = str(index)
        output = os.path.join(workdir, ".output")
        with open(output, "wb") as out:
            proc = subprocess.Popen(
                command, cwd=workdir, env=env, stdout=out, stderr=subprocess.STDOUT
            )
            while proc.poll() is None and not self.stop:
                time.sleep(0.05)
            if proc.poll() is None:
                proc.kill()  # terminate_job: the container is killed
            proc.wait()
        with open(output, "rb") as fh:
            lines = fh.read().decode(errors="replace").splitlines()
        now = int(time.time() * 1000)
        self.log_stream_name = self._stream_name
        self._log_backend.ensure_log_group(self._log_group)
        self._log_backend.ensure_log_stream(self._log_group, self.log_stream_name)
        if lines:
            events = [{"timestamp": now, "message": line} for line in lines]
            self._log_backend.put_log_events(self._log_group, self.log_stream_name, events)
        self.exit_code = proc.returncode
        if not self.stop and proc.returncode != 0:
            self.job_stopped_reason = "Essential container in task exited"
        self._mark_stopped(success=not self.stop and proc.returncode == 0)
    except Exception:
        log.exception("fake Batch container of %s failed", self.job_id)
        self._mark_stopped(success=False)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _terminate_with_children(original: Any) -> Any:
    def terminate_job(self: Any, job_id: str, reason: str) -> None:
        original(self, job_id, reason)
        job = self.get_job_by_id(job_id)
        for child in getattr(job, "_child_jobs", None) or []:
            child.terminate(reason)

    return terminate_job


@dataclass
class MotoBatch:
    """The server's endpoint and the Batch resources created on it."""

    endpoint: str
    queue: str
    job_definition: str
    bucket: str
    scratch: str

    def client(self, service: str) -> Any:
        import boto3

        return boto3.client(
            service,
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    @property
    def environment(self) -> dict[str, str]:
        """What the scheduler's process needs to reach the server (tests set it)."""
        return {**CREDENTIALS, "AWS_DEFAULT_REGION": REGION, "AWS_ENDPOINT_URL": self.endpoint}

    def lazyflow_jobs(self) -> list[dict[str, Any]]:
        """Every job lazyflow submitted to the queue (array parents and plain jobs)."""
        batch = self.client("batch")
        jobs = batch.list_jobs(
            jobQueue=self.queue, filters=[{"name": "JOB_NAME", "values": ["lazyflow-*"]}]
        )["jobSummaryList"]
        return [j for j in jobs if ":" not in j["jobId"]]

    def children(self, job_id: str) -> list[dict[str, Any]]:
        batch = self.client("batch")
        return [
            j
            for status in ("RUNNING", "SUCCEEDED", "FAILED", "STARTING", "RUNNABLE")
            for j in batch.list_jobs(arrayJobId=job_id, jobStatus=status)["jobSummaryList"]
        ]


@contextlib.contextmanager
def moto_batch_server() -> Iterator[MotoBatch]:
    """Start moto's server on a free port with a queue, a job definition and a bucket."""
    import pytest
    from moto.batch import models
    from moto.server import ThreadedMotoServer

    patch = pytest.MonkeyPatch()
    patch.setattr(models.Job, "run", run_on_host)
    patch.setattr(
        models.BatchBackend,
        "terminate_job",
        _terminate_with_children(models.BatchBackend.terminate_job),
    )
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    suffix = os.urandom(4).hex()
    try:
        moto = MotoBatch(endpoint, f"lf-q-{suffix}", f"lf-jd-{suffix}", f"lf-batch-{suffix}", "")
        moto.scratch = f"s3://{moto.bucket}/lazyflow"
        iam = moto.client("iam")
        role = iam.create_role(RoleName=f"lf-batch-{suffix}", AssumeRolePolicyDocument="{}")
        batch = moto.client("batch")
        env = batch.create_compute_environment(
            computeEnvironmentName=f"lf-ce-{suffix}",
            type="UNMANAGED",
            state="ENABLED",
            serviceRole=role["Role"]["Arn"],
        )
        batch.create_job_queue(
            jobQueueName=moto.queue,
            state="ENABLED",
            priority=1,
            computeEnvironmentOrder=[
                {"order": 1, "computeEnvironment": env["computeEnvironmentArn"]}
            ],
        )
        batch.register_job_definition(
            jobDefinitionName=moto.job_definition,
            type="container",
            containerProperties={
                "image": "lazyflow-worker:test",
                "command": ["true"],
                "resourceRequirements": [
                    {"type": "VCPU", "value": "1"},
                    {"type": "MEMORY", "value": "512"},
                ],
                # What the job role and the image give a real container: credentials and
                # (here) the endpoint of the S3 API.
                "environment": [{"name": k, "value": v} for k, v in moto.environment.items()],
            },
        )
        moto.client("s3").create_bucket(Bucket=moto.bucket)
        yield moto
    finally:
        server.stop()
        patch.undo()
