"""SIGTERM is handled like Ctrl+C: the run is cancelled, its workers stopped, its records
written, and the program ends with status 143 unless it handles the signal itself.

Each test runs a real workflow script in a subprocess, signals it while its jobs run,
and reads the store afterwards as `lazyflow log` would (`Provenance`).
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from lazyflow_core.provenance import Provenance

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")

SCRIPT = """
import os, signal, sys, time
from lazyflow_core import Scheduler, task

directory, db, executor = sys.argv[1], sys.argv[2], sys.argv[3]

@task
def step(i):
    if i >= 3:
        time.sleep(60 if executor == "processes" else 4)  # running when the signal comes
    with open(os.path.join(directory, f"done-{i}-{os.getpid()}"), "w"):
        pass
    return i

{setup}
with Scheduler(db=db, executor=executor, max_workers=4) as sched:
    {call}
"""


def start(tmp_path: Path, db: str, executor: str, setup: str = "", call: str = "") -> Any:
    script = tmp_path / "wf.py"
    call = call or "print(sched.run([step(i) for i in range(5)]))"
    script.write_text(textwrap.dedent(SCRIPT.replace("{setup}", setup).replace("{call}", call)))
    proc = subprocess.Popen(
        [sys.executable, str(script), str(tmp_path), db, executor],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while len(list(tmp_path.glob("done-*"))) < 3:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the first jobs did not finish"
        time.sleep(0.05)
    time.sleep(0.3)  # the long jobs have started
    return proc


def workers(tmp_path: Path, parent: int) -> set[int]:
    return {int(p.name.rsplit("-", 1)[1]) for p in tmp_path.glob("done-*")} - {parent}


def gone(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


@pytest.mark.parametrize("executor", ["threads", "processes"])
def test_sigterm_cancels_the_run_stops_its_workers_and_records_it(
    tmp_path: Path, sqlite_url: str, executor: str
) -> None:
    proc = start(tmp_path, sqlite_url, executor)
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, err
    if executor == "processes":
        assert time.monotonic() - t0 < 30  # its workers were stopped: not after 60 s
    assert "Traceback" not in err and out == ""
    with Provenance(sqlite_url) as prov:
        (execution,) = prov.executions()
        assert execution.status == "cancelled"
        assert execution.error == "Terminated: terminated by SIGTERM"
        report = prov.run_report(execution.id)
        assert len(report.executed) == 3  # what finished before the signal is kept
    for pid in workers(tmp_path, proc.pid):
        assert gone(pid), f"worker {pid} outlived the run"


def test_sigterm_keeps_a_handler_the_program_installed(tmp_path: Path, sqlite_url: str) -> None:
    """An orchestrator's (or the program's) own handler still runs, after the run is
    cancelled, and its exception unwinds the run."""
    setup = """
class Stop(Exception):
    pass

def handler(signum, frame):
    raise Stop()

signal.signal(signal.SIGTERM, handler)
"""
    call = """try:
        sched.run([step(i) for i in range(5)])
    except Stop:
        print("handled:", sched.last_run.status)"""
    proc = start(tmp_path, sqlite_url, "threads", setup=setup, call=call)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert out.strip() == "handled: cancelled"
    with Provenance(sqlite_url) as prov:
        assert [e.status for e in prov.executions()] == ["cancelled"]
