"""A real one-node SLURM cluster on this machine, for the tests (Debian's slurmctld,
slurmd and munge; `.ci/apt-packages` lists them).

It is a machine-wide singleton: every pytest process (xdist workers, two checkouts
running their suites at once) shares one, under a lock (`LOCK`). The first user writes a
minimal ``slurm.conf`` (``proctrack/linuxproc``, ``task/none``, this host as the only
node, ports chosen free) under `STATE`, starts ``munged --force`` as user munge when no
munge daemon answers, then slurmctld and slurmd; later users find it answering and
reuse it. Users are counted in `STATE`/users; the last one to leave cancels what is
left in the queue and stops the daemons it started, so a machine is left as it was
(a user that died leaves them running, idle, ready for the next run).

``python -m tests.executors.slurm start|stop|status`` does the same by hand.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

STATE = Path(os.environ.get("LAZYFLOW_TEST_SLURM_DIR", "/tmp/lazyflow-slurm"))
LOCK = STATE.with_suffix(".lock")
CONF = STATE / "slurm.conf"
DAEMONS = ("slurmctld", "slurmd", "munged")
START_SECONDS = 60
MUNGE_PID = "/run/munge/munged.pid"


class SlurmUnavailable(RuntimeError):
    """The SLURM test cluster cannot start here (the message says why)."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run(*cmd: str, timeout: float = 20, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SLURM_CONF": str(CONF)}
    return subprocess.run(
        cmd, capture_output=True, text=True, timeout=timeout, env=env, check=check
    )


def _write_conf() -> None:
    host = socket.gethostname().split(".")[0]
    cpus = os.cpu_count() or 1
    memory_mb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20
    for sub in ("state", "spool", "log"):
        (STATE / sub).mkdir(parents=True, exist_ok=True)
    CONF.write_text(
        f"""# written by tests/executors/slurm.py: a one-node cluster for the test suite
ClusterName=lazyflowtest
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={_free_port()}
SlurmdPort={_free_port()}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
MpiDefault=none
ReturnToService=2
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
StateSaveLocation={STATE}/state
SlurmdSpoolDir={STATE}/spool
SlurmctldPidFile={STATE}/slurmctld.pid
SlurmdPidFile={STATE}/slurmd.pid
SlurmctldLogFile={STATE}/log/slurmctld.log
SlurmdLogFile={STATE}/log/slurmd.log
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
MinJobAge=10
KillWait=5
Waittime=0
NodeName={host} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={memory_mb * 9 // 10} State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
"""
    )


def _munge_answers() -> bool:
    if not shutil.which("munge"):
        return False
    try:
        cred = subprocess.run(["munge", "-n"], capture_output=True, timeout=5)
        if cred.returncode:
            return False
        back = subprocess.run(["unmunge"], input=cred.stdout, capture_output=True, timeout=5)
        return back.returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def _start_munge() -> None:
    if _munge_answers():
        return
    if os.geteuid() != 0:
        raise SlurmUnavailable("munged is not running and starting it needs root")
    if not Path("/etc/munge/munge.key").exists():
        subprocess.run(["runuser", "-u", "munge", "--", "mungekey", "--create"], check=True)
    for path in ("/run/munge", "/var/log/munge", "/var/lib/munge"):
        os.makedirs(path, exist_ok=True)
        shutil.chown(path, "munge", "munge")
    subprocess.run(["runuser", "-u", "munge", "--", "munged", "--force"], check=True, timeout=20)
    _wait(_munge_answers, "munged did not answer")
    with contextlib.suppress(OSError):  # so that the last user stops this daemon only
        pid = Path(MUNGE_PID).read_text().strip()
        (STATE / "started-munged").write_text(pid)


def _alive(name: str) -> bool:
    pid = _pid(name)
    if pid is None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _slurm_answers() -> bool:
    # (asking a controller that is not there costs sinfo its ~10 s message timeout)
    if not CONF.exists() or not (_alive("slurmctld") and _alive("slurmd")):
        return False
    try:
        out = _run("sinfo", "-h", "-o", "%T", timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return False
    states = out.stdout.split()
    usable = ("idle", "mixed", "allocated")
    return out.returncode == 0 and bool(states) and all(s.rstrip("*~#") in usable for s in states)


def _wait(ok: object, message: str) -> None:
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if ok():  # type: ignore[operator]
            return
        time.sleep(0.25)
    raise SlurmUnavailable(f"{message} within {START_SECONDS} s; see {STATE}/log")


def _start_slurm() -> None:
    missing = [d for d in ("slurmctld", "slurmd", "sbatch", "munged") if not shutil.which(d)]
    if missing:
        raise SlurmUnavailable(
            f"{', '.join(missing)} not installed: run .ci/system-deps (Debian packages "
            "slurmctld slurmd slurm-client munge)"
        )
    STATE.mkdir(parents=True, exist_ok=True)
    _start_munge()
    if _slurm_answers():
        return
    _stop_slurm()
    _write_conf()
    for daemon in ("slurmctld", "slurmd"):
        result = _run(
            daemon, "-f", str(CONF), *(["-c"] if daemon == "slurmctld" else []), check=False
        )
        if result.returncode:
            raise SlurmUnavailable(f"{daemon} failed to start: {result.stderr.strip()}")

    def resumed() -> bool:
        out = _run("sinfo", "-h", "-o", "%T", check=False).stdout.split()
        if any(s.startswith(("down", "drain")) for s in out):
            host = socket.gethostname().split(".")[0]
            _run("scontrol", "update", f"nodename={host}", "state=resume", check=False)
        return _slurm_answers()

    _wait(resumed, "the SLURM node did not become idle")


def _pid(name: str) -> int | None:
    try:
        return int((STATE / f"{name}.pid").read_text().strip())
    except (OSError, ValueError):
        return None


def _stop_slurm() -> None:
    if CONF.exists() and _alive("slurmctld"):
        with contextlib.suppress(Exception):
            _run("scancel", "--full", "-u", os.environ.get("USER", "root"), check=False)
    for name in ("slurmd", "slurmctld"):
        pid = _pid(name)
        if pid is None:
            continue
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)
        (STATE / f"{name}.pid").unlink(missing_ok=True)


def _stop_munge() -> None:
    marker = STATE / "started-munged"
    if marker.exists():
        pid = marker.read_text().strip()
        if pid.isdigit():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGTERM)
        marker.unlink()


@contextlib.contextmanager
def _locked() -> Iterator[None]:
    LOCK.parent.mkdir(parents=True, exist_ok=True)
    with open(LOCK, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _users(delta: int) -> int:
    path = STATE / "users"
    try:
        count = int(path.read_text())
    except (OSError, ValueError):
        count = 0
    count = max(0, count + delta)
    path.write_text(str(count))
    return count


@contextlib.contextmanager
def slurm_cluster() -> Iterator[Path]:
    """Use the machine's SLURM test cluster (starting it if needed); yields slurm.conf.

    Raises `SlurmUnavailable` when it cannot start.
    """
    with _locked():
        _start_slurm()
        _users(+1)
    try:
        yield CONF
    finally:
        with _locked():
            if _users(-1) == 0:
                _stop_slurm()
                _stop_munge()


def main(argv: list[str]) -> int:
    command = argv[1] if len(argv) > 1 else "status"
    with _locked():
        if command == "start":
            _start_slurm()
        elif command == "stop":
            _stop_slurm()
            _stop_munge()
            (STATE / "users").unlink(missing_ok=True)
        print("running" if _slurm_answers() else "stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
