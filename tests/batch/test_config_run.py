"""`lazyflow run wf.py main --executor batch` with the executor named in lazyflow.toml."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from .moto_batch import MotoBatch

WORKFLOW = """
from lazyflow_core import task

@task
def double(x: int) -> int:
    return 2 * x

@task
def main(n: int) -> int:
    return double(n) + 1
"""


def test_the_cli_runs_on_aws_batch_from_a_config_file(aws: MotoBatch, tmp_path: Path) -> None:
    """Plain TOML values build the executor; the workflow file's tasks reach the worker
    in the code package (the file is its own top-level module there)."""
    (tmp_path / "wf.py").write_text(WORKFLOW)
    (tmp_path / "lazyflow.toml").write_text(
        f"""
[executors.batch]
type = "aws_batch"
queue = "{aws.queue}"
job_definition = "{aws.job_definition}"
scratch = "{aws.scratch}/cli"
region = "us-east-1"
linger = 0.1
poll_seconds = 0.2
infra_retries = 1
"""
    )
    before = {j["jobId"] for j in aws.lazyflow_jobs()}
    env = {k: v for k, v in os.environ.items() if k != "LAZYFLOW_DB"}
    env["LAZYFLOW_CEILING_DIRECTORIES"] = str(tmp_path.parent)
    lazyflow = Path(sys.executable).with_name("lazyflow")
    proc = subprocess.run(
        [str(lazyflow), "run", "wf.py", "main", "--n", "20", "--executor", "batch"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().splitlines()[-1] == "41"
    names = sorted(j["jobName"] for j in aws.lazyflow_jobs() if j["jobId"] not in before)
    assert len(names) == 2 and names[0].startswith("lazyflow-double-")
    assert names[1].startswith("lazyflow-main-")
    assert (tmp_path / ".lazyflow" / "lazyflow.db").exists()  # the project's store
