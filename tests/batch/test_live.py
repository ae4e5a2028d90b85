"""Opt-in tests on the real AWS Batch and Google Cloud Batch services.

Skipped unless their variables are set (see docs/executors.md, "What the tests prove"):
they cost money, need an account with the set-up that page describes, and an image with
this checkout's lazyflow version. Nothing else in the suite needs a cloud account."""

from __future__ import annotations

import os

import pytest

from lazyflow_core import Scheduler

from . import workflows as wf

AWS = ("LAZYFLOW_LIVE_AWS_QUEUE", "LAZYFLOW_LIVE_AWS_JOB_DEFINITION", "LAZYFLOW_LIVE_AWS_SCRATCH")
GCP = (
    "LAZYFLOW_LIVE_GCP_PROJECT",
    "LAZYFLOW_LIVE_GCP_REGION",
    "LAZYFLOW_LIVE_GCP_IMAGE",
    "LAZYFLOW_LIVE_GCP_SCRATCH",
)


def _settings(names: tuple[str, ...]) -> list[str]:
    missing = [n for n in names if not os.environ.get(n)]
    if missing:
        pytest.skip(f"live Batch test: set {', '.join(missing)} to run it")
    return [os.environ[n] for n in names]


def test_live_aws_batch_fan_out(sqlite_url: str) -> None:
    from lazyflow_core.executors import AWSBatchExecutor

    queue, job_definition, scratch = _settings(AWS)
    ex = AWSBatchExecutor(queue, job_definition, scratch, poll_seconds=10)
    with Scheduler(db=sqlite_url, executors={"batch": ex}) as sched:
        assert sched.run(wf.fan_out(20)) == sum(range(1, 21))
        with pytest.raises(ValueError, match="boom 1"):
            sched.run(wf.boom(1))
    assert len(ex.submitted) == 2


def test_live_gcp_batch_fan_out(sqlite_url: str) -> None:
    from lazyflow_core.executors import GCPBatchExecutor

    project, region, image, scratch = _settings(GCP)
    ex = GCPBatchExecutor(project, region, image, scratch, poll_seconds=10)
    with Scheduler(db=sqlite_url, executors={"batch": ex}) as sched:
        assert sched.run(wf.fan_out(20)) == sum(range(1, 21))
        with pytest.raises(ValueError, match="boom 1"):
            sched.run(wf.boom(1))
    assert len(ex.submitted) == 2
