"""lazyflow workflows used by the Prefect adapter tests.

Every executed call leaves one file in ``marker_dir`` (``<label>.<random>``), so a test
counts executions across threads, processes and Prefect retries with `executions`.
A file ``fail-once-<x>`` in ``marker_dir`` makes ``square(x)`` fail once (it deletes the
file first), which is how tests inject a failure that a retry recovers from.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

from lazyflow_core import File, task
from lazyflow_prefect import lazyflow_flow


def _record(marker_dir: str, label: str) -> None:
    Path(marker_dir, f"{label}.{uuid.uuid4().hex}").touch()


def executions(marker_dir: str | Path, label: str) -> int:
    """How many times the call labelled `label` has executed."""
    return len(list(Path(marker_dir).glob(f"{label}.*")))


@task
def square(x: int, marker_dir: str) -> int:
    _record(marker_dir, f"square-{x}")
    flag = Path(marker_dir, f"fail-once-{x}")
    if flag.exists():
        flag.unlink()
        raise RuntimeError(f"injected failure for x={x}")
    return x * x


@task
def total(values: list[int], marker_dir: str) -> int:
    _record(marker_dir, "total")
    return sum(values)


@task
def fanout(n: int, marker_dir: str) -> int:
    """Sum of squares below n.

    Args:
        n: how many squares to add up.
        marker_dir: where each executed call leaves a file.
    """
    _record(marker_dir, "fanout")
    return total([square(i, marker_dir) for i in range(n)], marker_dir)


def expected_jobs(n: int) -> int:
    """Calls in one uncached run of fanout(n): fanout, n squares, total."""
    return n + 2


@task
def nap(i: int, seconds: float, marker_dir: str, previous: int | None = None) -> int:
    time.sleep(seconds)
    _record(marker_dir, f"nap-{i}")
    return i


@task
def naps(n: int, seconds: float, marker_dir: str) -> int | None:
    """A chain of n naps, each waiting for the previous one."""
    last = None
    for i in range(n):
        last = nap(i, seconds, marker_dir, last)
    return last


@task
def report_line(day: str, region: str, scale: int, marker_dir: str) -> str:
    """One line of a daily report: a workflow with several positional parameters."""
    _record(marker_dir, f"report-{day}-{region}")
    return f"{day}/{region}:{scale}"


@task
def count_lines(path: File, shards: int) -> str:
    """Lines of a text file, split into shards (File and int parameters from a form).

    Args:
        path: the text file to count.
        shards: how many shards to report.
    """
    lines = Path(path.path).read_text().count("\n")
    return f"{lines} lines in {shards} shards"


# A deployable flow: Prefect finds it by the entrypoint "tests/prefect/workflows.py:fanout_flow"
# (the store comes from LAZYFLOW_DB when it runs).
fanout_flow = lazyflow_flow(fanout)


@task
def write_part(out_dir: str, i: int) -> File:
    path = Path(out_dir, f"part-{i}.txt")
    path.write_text(f"part {i}\n")
    return File(path)


@task
def write_parts(out_dir: str, n: int) -> dict[str, list[File]]:
    """Files as the workflow's result (nested in a dict): Prefect assets of the run."""
    return {"parts": [write_part(out_dir, i) for i in range(n)]}
