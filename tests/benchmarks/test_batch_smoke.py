"""Smoke run of ``python -m benchmarks.batch`` at a tiny size, so it cannot rot: every
executor's case runs as the benchmark runs it (a fresh process, the Batch executors on
the test set-ups of tests/batch) and its result is checked; times are never asserted."""

from __future__ import annotations

import pytest

from benchmarks import batch

N = 12


@pytest.mark.parametrize("name", ["threads", "processes", "aws_batch", "gcp_batch"])
def test_every_executor_case_runs_and_is_right(name: str) -> None:
    result = batch._child(name, N)
    assert "error" not in result, result.get("error")
    # run_case checks the sum itself (a wrong one is an error above)
    assert result["executor"] == name and result["calls"] == N + 2
    assert result["executed"] == N + 2  # a new store: every call ran
    if name.endswith("_batch"):
        assert result["arrays"] >= 1  # the incs went as array job(s)
    info = {"nproc": 2, "cpu": "cpu", "mem_gib": 1, "python": "3", "commit": "c", "date": "d"}
    table = batch.markdown([result], info)
    assert f"| {name} | {N + 2:,} |" in table
