"""Helper processes die with the process that started them (`executors.lifeline`).

Each test starts a real parent process, lets it start a helper, kills the parent with
SIGKILL (no chance to clean up) and checks that the helper is gone soon after.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")

ROOT = Path(__file__).resolve().parents[2]


def alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie waiting for its new parent to reap it does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def wait_until(condition, timeout: float = 20.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return bool(condition())


def start_parent(tmp_path: Path, body: str) -> tuple[subprocess.Popen[bytes], int]:
    """Run `body` in a parent process that writes its helper's pid to helper.pid."""
    script = tmp_path / "parent.py"
    script.write_text(textwrap.dedent(body))
    parent = subprocess.Popen(
        [sys.executable, str(script), str(tmp_path)], cwd=ROOT, env={**os.environ}
    )
    pid_file = tmp_path / "helper.pid"
    assert wait_until(lambda: pid_file.exists() and pid_file.read_text().endswith("\n"), 60)
    return parent, int(pid_file.read_text())


def kill_and_check(parent: subprocess.Popen[bytes], helper: int) -> None:
    assert alive(helper)
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    assert wait_until(lambda: not alive(helper)), f"helper {helper} outlived its parent"


HELPER = """
import os, sys, time
from lazyflow_core.executors.lifeline import die_with_parent
{call}
with open(os.path.join(sys.argv[1], "helper.pid"), "w") as fh:
    fh.write(f"{{os.getpid()}}\\n")
time.sleep(120)
"""


def _parent_with_python_helper(call: str, pass_fd: bool) -> str:
    helper = HELPER.format(call=call)
    return f"""
    import os, subprocess, sys, time
    from lazyflow_core.executors.lifeline import lifeline_fd
    fd = lifeline_fd()
    subprocess.Popen([sys.executable, "-c", {helper!r}, sys.argv[1], str(fd), str(os.getpid())],
                     pass_fds=(fd,) if {pass_fd} else ())
    time.sleep(120)
    """


def test_a_helper_dies_with_its_parent_by_the_parent_death_signal(tmp_path: Path) -> None:
    call = "die_with_parent(int(sys.argv[3]))"
    parent, helper = start_parent(tmp_path, _parent_with_python_helper(call, pass_fd=False))
    kill_and_check(parent, helper)


def test_a_helper_dies_with_its_parent_by_the_lifeline_pipe(tmp_path: Path) -> None:
    """The portable mechanism alone: the helper watches a process that is not its parent
    (so no parent-death signal is set) and the lifeline pipe, which the kill closes."""
    call = f"die_with_parent({os.getpid()}, fd=int(sys.argv[2]))"
    parent, helper = start_parent(tmp_path, _parent_with_python_helper(call, pass_fd=True))
    kill_and_check(parent, helper)


def test_a_helper_watching_another_process_dies_when_it_ends(tmp_path: Path) -> None:
    """Without a pipe, the watchdog polls the process it was told to watch."""
    watched = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        call = f"die_with_parent({watched.pid}, poll=0.1)"
        parent, helper = start_parent(tmp_path, _parent_with_python_helper(call, pass_fd=False))
        watched.kill()
        watched.wait()
        assert wait_until(lambda: not alive(helper)), "helper outlived the process it watched"
        parent.kill()
        parent.wait()
    finally:
        watched.kill()


def test_any_command_can_be_tied_to_its_parent(tmp_path: Path) -> None:
    body = """
    import os, subprocess, sys, time
    from lazyflow_core.executors.lifeline import tied_command
    proc = subprocess.Popen(tied_command(["sleep", "120"]))
    with open(os.path.join(sys.argv[1], "helper.pid"), "w") as fh:
        fh.write(f"{proc.pid}\\n")
    time.sleep(120)
    """
    parent, helper = start_parent(tmp_path, body)
    assert wait_until(lambda: Path(f"/proc/{helper}/cmdline").read_bytes().startswith(b"sleep"))
    kill_and_check(parent, helper)


def test_the_process_executor_workers_die_with_a_killed_run(tmp_path: Path) -> None:
    """``kill -9`` of a run leaves no process-executor worker running its jobs."""
    body = """
    import os, sys, time
    from lazyflow_core import Scheduler, task

    @task(cache=False)
    def report(i, directory):
        with open(os.path.join(directory, f"worker-{i}.pid"), "w") as fh:
            fh.write(f"{os.getpid()}\\n")
        time.sleep(120)

    directory = sys.argv[1]
    sched = Scheduler(db=f"sqlite:///{directory}/s.db", executor="processes", max_workers=2)
    futures = [report(i, directory) for i in range(2)]
    with open(os.path.join(directory, "helper.pid"), "w") as fh:
        fh.write(f"{os.getpid()}\\n")
    sched.run(futures)
    """
    parent, _ = start_parent(tmp_path, body)
    files = [tmp_path / f"worker-{i}.pid" for i in range(2)]
    assert wait_until(lambda: all(f.exists() and f.read_text().endswith("\n") for f in files), 60)
    workers = [int(f.read_text()) for f in files]
    assert len(set(workers)) == 2
    parent.kill()
    parent.wait()
    assert wait_until(lambda: not any(alive(pid) for pid in workers)), "a worker outlived its run"
