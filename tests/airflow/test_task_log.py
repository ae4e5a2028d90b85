"""What a LazyFlowOperator writes to the task log: job lines, failures, the summary."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest


def _lines(capfd: pytest.CaptureFixture[str]) -> list[str]:
    out, err = capfd.readouterr()
    return (out + err).splitlines()


def test_failures_are_logged_at_error_and_never_dropped_for_the_cap(
    run_dag: Any, counter_dir: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """max_job_lines=5 and 14 calls: pending lines are DEBUG, the cap says so once, and
    the failure is an ERROR line however many lines came before it."""
    dr = run_dag("lf_many_jobs", db=f"sqlite:///{tmp_path}/lf.db", counter_dir=counter_dir)

    assert run_dag.states(dr)["lf"] == ("failed", 1)
    lines = _lines(capfd)
    jobs = [line for line in lines if "lazyflow job " in line]
    assert not [line for line in jobs if "lazyflow job pending" in line], "pending is DEBUG"
    info = [line for line in jobs if "[info" in line]
    assert len(info) == 5, info
    assert any("more than 5 job lines" in line for line in lines)
    failed = [line for line in jobs if "lazyflow job failed  explode(" in line]
    assert failed and all("[error" in line for line in failed), failed
    assert "ValueError: exploded on purpose" in failed[0]
    # The job's traceback follows its line (issue 11, item 7).
    after = lines[lines.index(failed[0]) + 1 :]
    assert any('raise ValueError("exploded on purpose")' in line for line in after[:40])


def test_summary_table_sums_job_seconds_and_shows_wall_time_apart(
    run_dag: Any, counter_dir: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """The TOTAL row adds up the job seconds of the rows above it; wall time is its own line."""
    run_dag("lf_counted", db=f"sqlite:///{tmp_path}/lf.db", counter_dir=counter_dir)

    lines = _lines(capfd)
    start = next(
        i for i, line in enumerate(lines) if line.startswith("task ") and "job seconds" in line
    )
    table = lines[start : start + 10]
    total = next(line for line in table if line.startswith("TOTAL"))
    rows = table[2 : table.index(total) - 1]
    assert [r.split()[0] for r in rows] == [
        "workflows.add_all",
        "workflows.square",
        "workflows.sum_of_squares",
    ]
    seconds = [float(r.split()[-1]) for r in [*rows, total]]
    assert seconds[-1] == pytest.approx(sum(seconds[:-1]), abs=0.011)
    assert any(re.match(r"wall time \d+\.\d\ds", line) for line in lines), lines[start:]
