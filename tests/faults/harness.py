"""Kill a run of `workflow` at a chosen moment and read what it lost (fault-injection).

`kill_run` starts ``workflow.py`` in a subprocess (a process group of its own), waits
until `after` calls have completed plus `delay` seconds, snapshots the run's descendant
processes (its workers, the Dask cluster's processes, the store's writer process), sends
`signum` and waits for the run to end. `rerun` runs the same workflow again on the same
store with the threads executor: the calls it executes are the ones the killed run did
not keep. `Outcome.lost` pairs each such call that had completed before the kill with
how long before it completed: the crash bound, measured.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

WORKFLOW = Path(__file__).with_name("workflow.py")
ROOT = Path(__file__).resolve().parents[2]


def read_log(path: Path) -> list[tuple[int, int, float]]:
    """``(call, pid, completed at)`` per completed call, from a workflow's log."""
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) == 3:
            out.append((int(parts[0]), int(parts[1]), float(parts[2])))
    return out


def alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def descendants(root: int) -> set[int]:
    """Every live process below `root` (Linux: from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found: set[int] = set()
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def wait_until(condition, timeout: float) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return bool(condition())


@dataclass
class Outcome:
    """What a killed run left behind."""

    returncode: int
    stderr: str
    killed_at: float  # time.time() just before the signal
    completed: list[tuple[int, int, float]]  # (call, pid, time) logged by the killed run
    helpers: set[int]  # the run's descendant processes at the kill
    survivors: set[int] = field(default_factory=set)  # helpers still alive afterwards
    rerun: list[tuple[int, int, float]] = field(default_factory=list)
    rerun_stdout: str = ""

    @property
    def lost(self) -> list[tuple[int, float]]:
        """Calls completed before the kill that the re-run executed again: (call, how
        many seconds before the kill it completed)."""
        again = {i for i, _, _ in self.rerun}
        before = [(i, self.killed_at - t) for i, _, t in self.completed if t <= self.killed_at]
        return sorted(((i, age) for i, age in before if i in again), key=lambda pair: -pair[1])


def _env(log: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {**os.environ, "LAZYFLOW_FAULTS_LOG": str(log)}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    for name, value in (extra or {}).items():
        env[name] = value if name != "PYTHONPATH" else f"{value}{os.pathsep}{env[name]}"
    return env


def slow_writer_start(seconds: float) -> dict[str, str]:
    """Environment under which the store's writer process takes `seconds` longer to
    start (``slow_start/sitecustomize.py``), as on a loaded machine."""
    return {
        "PYTHONPATH": str(Path(__file__).with_name("slow_start")),
        "LAZYFLOW_TESTS_WRITER_START_DELAY": str(seconds),
    }


def writer_process(run: int) -> int | None:
    """The pid of the run's store writer process, if it has one."""
    for pid in descendants(run):
        with contextlib.suppress(OSError):
            if b"batch_write.py" in Path(f"/proc/{pid}/cmdline").read_bytes():
                return pid
    return None


def kill_run(
    tmp: Path,
    db: str,
    executor: str,
    n: int,
    seconds: float,
    signum: int,
    after: int,
    delay: float,
    linger: float = 20.0,
    group: bool = False,
    env: dict[str, str] | None = None,
    target: str = "run",
) -> Outcome:
    """Run the workflow, kill it with `signum` once `after` calls completed and `delay`
    seconds passed (`group`: signal its whole process group, as a shell or a service
    manager does; `target` "writer": kill only the run's store writer process, and let
    the run go on to its end); returns the outcome (survivors checked for up to `linger`
    s). `env` adds to the run's environment."""
    log = tmp / "killed.log"
    proc = subprocess.Popen(
        [sys.executable, str(WORKFLOW), db, executor, str(n), str(seconds)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(log, env),
        cwd=tmp,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while len(read_log(log)) < after:
            if proc.poll() is not None or time.monotonic() > deadline:
                _, err = proc.communicate()
                raise AssertionError(f"the run ended before {after} calls: {proc.returncode} {err}")
            time.sleep(0.005)
        time.sleep(delay)
        helpers = descendants(proc.pid)
        writer = writer_process(proc.pid) if target == "writer" else None
        if target == "writer" and writer is None:
            raise AssertionError(f"the run has no writer process to kill: {helpers}")
        killed_at = time.time()
        if writer is not None:
            os.kill(writer, signum)
        elif group:
            os.killpg(proc.pid, signum)
        else:
            proc.send_signal(signum)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    outcome = Outcome(proc.returncode, err, killed_at, read_log(log), helpers)
    wait_until(lambda: not any(alive(pid) for pid in helpers), linger)
    outcome.survivors = {pid for pid in helpers if alive(pid)}
    for pid in outcome.survivors:  # leave nothing behind, whatever the test says
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    return outcome


def rerun(tmp: Path, db: str, n: int, seconds: float, outcome: Outcome) -> None:
    """Run the workflow to the end on the same store (threads); record what it executed."""
    log = tmp / "rerun.log"
    done = subprocess.run(
        [sys.executable, str(WORKFLOW), db, "threads", str(n), str(seconds)],
        capture_output=True,
        text=True,
        env=_env(log),
        cwd=tmp,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    outcome.rerun = read_log(log)
    outcome.rerun_stdout = done.stdout
