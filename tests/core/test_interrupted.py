"""A run killed outright is shown as "interrupted" once its process is gone.

On this host the recorded pid tells at once; elsewhere the heartbeat its store writer
keeps (`lazyflow_core.liveness`). The killed runs are real workflow scripts in subprocesses.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lazyflow_core import liveness
from lazyflow_core.provenance import Provenance

from .test_termination import start

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")


def test_a_run_killed_outright_is_shown_as_interrupted(tmp_path: Path, db_url: str) -> None:
    proc = start(tmp_path, db_url, "processes")
    with Provenance(db_url) as prov:
        (execution,) = prov.executions()
        assert execution.status == "running" and execution.heartbeat_at is not None
        assert prov.executions(status="interrupted") == []
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    with Provenance(db_url) as prov:
        (execution,) = prov.executions()
        assert execution.status == "interrupted"
        assert [e.id for e in prov.executions(status="interrupted")] == [execution.id]
        assert prov.executions(status="running") == []
        assert len(prov.run_report(execution.id).executed) == 3


def test_a_run_on_another_host_is_interrupted_once_its_heartbeat_stops() -> None:
    """Another machine's pids mean nothing here: only its heartbeat tells."""
    now = time.time()
    args = ("running", now - 3600, "some-other-host", "another-host-id", os.getpid())
    assert not liveness.interrupted(args[0], args[1], now - 5, *args[2:], now=now)
    stale = now - liveness.STALE_SECONDS - 1
    assert liveness.interrupted(args[0], args[1], stale, *args[2:], now=now)
    assert not liveness.interrupted("done", args[1], stale, *args[2:], now=now)


def test_on_this_host_a_gone_or_reused_pid_means_interrupted() -> None:
    now = time.time()
    here = liveness.host_id()
    me = os.getpid()
    # this process started before "its" execution: it runs it (heartbeat or not)
    assert not liveness.interrupted("running", now, now - 600, "h", here, me, now=now)
    # this pid belongs to a process started after that execution: the pid was reused
    assert liveness.interrupted("running", now - 10**6, now, "h", here, me, now=now)
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert liveness.interrupted("running", now - 60, now, "h", here, child.pid, now=now)
