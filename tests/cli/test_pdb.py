"""``lazyflow run --pdb``: the debugger at a failed task's frame, driven through stdin."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from .conftest import LAZYFLOW


def _debug(flows: Path, url: str, commands: str, *options: str) -> subprocess.CompletedProcess[str]:
    args = ["run", "flows.py", "divide", "--a", "7", "--b", "0", "--pdb", "--db", url, *options]
    return subprocess.run(
        [LAZYFLOW, *args],
        cwd=flows,
        input=commands,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def test_pdb_stops_in_the_failed_tasks_frame(flows: Path, sqlite_url: str) -> None:
    done = _debug(flows, sqlite_url, "p a * 100 + b\nup\np a\nq\n")
    assert done.returncode == 1, done.stderr
    assert "ZeroDivisionError" in done.stderr  # reported first, as without --pdb
    out = done.stdout
    # stopped where it raised (the helper), its locals are there; `up` is the task's frame
    assert "flows.py(" in out and ")helper()" in out
    assert "(Pdb) 700" in out
    assert ")divide()" in out and "(Pdb) 7" in out


def test_pdb_with_a_process_executor_says_how_to_debug(flows: Path, sqlite_url: str) -> None:
    done = _debug(flows, sqlite_url, "q\n", "--executor", "processes")
    assert done.returncode == 1
    assert "(Pdb)" not in done.stdout
    assert "failed in another process" in done.stderr
    assert "--executor threads --pdb" in done.stderr


def test_without_a_failure_pdb_changes_nothing(flows: Path, sqlite_url: str) -> None:
    done = subprocess.run(
        [
            LAZYFLOW,
            "run",
            "flows.py",
            "divide",
            "--a",
            "6",
            "--b",
            "2",
            "--pdb",
            "-q",
            "--db",
            sqlite_url,
        ],
        cwd=flows,
        capture_output=True,
        text=True,
        timeout=120,
        input="",
    )
    assert (done.returncode, done.stdout.strip()) == (0, "3.0"), done.stderr
