"""``lazyflow run`` stopped by SIGTERM or SIGKILL, and what ``lazyflow log`` says then."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from .conftest import LAZYFLOW, Cli

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")

SLOW = textwrap.dedent(
    """
    import os, time
    from lazyflow_core import task

    @task
    def step(i: int) -> int:
        if i >= 2:
            time.sleep(60)
        open(f"done-{i}", "w").close()
        return i

    @task
    def main(n: int = 4) -> list:
        return [step(i) for i in range(n)]
    """
)


def start(flows: Path, url: str) -> subprocess.Popen[str]:
    (flows / "slow.py").write_text(SLOW)
    proc = subprocess.Popen(
        [LAZYFLOW, "run", "slow.py", "main", "--db", url, "--executor", "processes"],
        cwd=flows,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while len(list(flows.glob("done-*"))) < 2:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    time.sleep(0.3)
    return proc


def test_sigterm_stops_lazyflow_run_and_log_says_cancelled(
    cli: Cli, flows: Path, sqlite_url: str
) -> None:
    proc = start(flows, sqlite_url)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143
    assert "lazyflow: terminated by SIGTERM" in err and "Traceback" not in err
    assert "cancelled: 2 jobs, 2 executed" in err
    (execution,) = json.loads(cli("log", "--json", "--db", sqlite_url).out)
    assert execution["status"] == "cancelled"


def test_log_shows_a_killed_run_as_interrupted(cli: Cli, flows: Path, db_url: str) -> None:
    proc = start(flows, db_url)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    listing = cli("log", "--db", db_url)
    assert listing.code == 0 and "interrupted" in listing.out
    found = json.loads(cli("log", "--json", "--status", "interrupted", "--db", db_url).out)
    assert [e["status"] for e in found] == ["interrupted"]
    assert json.loads(cli("log", "--json", "--status", "running", "--db", db_url).out) == []
