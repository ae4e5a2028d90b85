"""The Dask executor on real SLURM: dask-jobqueue's SLURMCluster submits the Dask
workers as SLURM jobs (sbatch) to the one-node test cluster of slurm.py."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from lazyflow_core import ExecutorError, Scheduler
from lazyflow_core.executors import DaskExecutor

from . import tasks

pytestmark = [pytest.mark.slurm, pytest.mark.dask]


def _jobs() -> list[str]:
    out = subprocess.run(["squeue", "-h", "-o", "%i %j %T"], capture_output=True, text=True)
    return out.stdout.split("\n")[:-1]


def test_calls_run_in_dask_workers_that_are_slurm_jobs(
    slurm: Path, sqlite_url: str, tmp_path: Path
) -> None:
    """A cluster the executor starts itself from a class name (as a config file says it),
    its workers submitted with sbatch, cancelled (scancel) when the executor shuts down."""
    executor = DaskExecutor(
        cluster="dask_jobqueue.SLURMCluster",
        scale=1,
        cores=1,
        processes=1,
        memory="1GiB",
        walltime="00:10:00",
        python=sys.executable,
        job_name="lazyflow-test",
        log_directory=str(tmp_path / "logs"),
        local_directory=str(tmp_path / "workers"),
        scheduler_options={"host": "127.0.0.1", "dashboard_address": ":0"},
    )
    with executor, Scheduler(db=sqlite_url, executor=executor) as sched:
        results = sched.run([tasks.where(i) for i in range(10)])
        assert [x for x, _ in results] == list(range(10))
        job_ids = {job for _, job in results}
        assert len(job_ids) == 1 and None not in job_ids  # ran inside a SLURM job
        (job_id,) = job_ids
        assert any(line.startswith(f"{job_id} lazyflow-test RUNNING") for line in _jobs())
        assert sched.run(tasks.where(3)) == (3, job_id)
        assert sched.last_run is not None and sched.last_run.cached == 1
    assert not any(line.startswith(f"{job_id} ") and "RUNNING" in line for line in _jobs())


def test_a_refused_sbatch_fails_the_run_with_the_batch_systems_message(
    slurm: Path, sqlite_url: str, tmp_path: Path
) -> None:
    """A partition SLURM does not have: sbatch refuses the worker's job, and instead of
    waiting for a worker that never comes, the run fails with an ExecutorError that
    carries sbatch's own message and says what to fix; nothing is left in the queue."""
    executor = DaskExecutor(
        cluster="dask_jobqueue.SLURMCluster",
        scale=1,
        queue="no-such-partition",
        cores=1,
        processes=1,
        memory="1GiB",
        walltime="00:10:00",
        python=sys.executable,
        job_name="lazyflow-refused",
        log_directory=str(tmp_path / "logs"),
        scheduler_options={"host": "127.0.0.1", "dashboard_address": ":0"},
    )
    with (
        executor,
        Scheduler(db=sqlite_url, executor=executor) as sched,
        pytest.raises(ExecutorError) as info,
    ):
        sched.run(tasks.where(1))
    message = str(info.value)
    assert "could not submit its worker" in message
    assert "invalid partition" in message.lower() and "queue/partition" in message
    assert not any(" lazyflow-refused " in f" {line} " for line in _jobs())
