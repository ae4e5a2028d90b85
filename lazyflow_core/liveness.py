"""Is a "running" execution still running? Heartbeats, hosts and processes.

A run records itself as ``running`` first and its end last, so a run that was killed
(``kill -9``, the OOM killer, a lost machine) stays ``running`` in the store forever.
Readers tell the truth instead: such an execution is shown as ``interrupted`` when

- it ran on this host (the same boot and process namespace, `host_id`) and its process
  is gone, or the pid now belongs to a process started after the execution (reused): an
  answer at once, from the recorded pid;
- otherwise, when its heartbeat stopped: a run's store writer sets ``heartbeat_at`` every
  `HEARTBEAT_SECONDS` from a timer of its own (never per job), so a heartbeat older than
  `STALE_SECONDS` means its process is gone, or hung.

Nothing is written: readers (``lazyflow log``, the ui) compute it, so read-only stores
and commands stay read-only.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import socket
import time

HEARTBEAT_SECONDS = 10.0
"""How often a run's store writer records that the run is alive."""

STALE_SECONDS = 60.0
"""A running execution whose heartbeat is older than this is shown as interrupted."""

_STARTED_SLACK = 2.0  # seconds between a process's start and its execution's start row


@functools.cache
def host_id() -> str:
    """This machine boot and process namespace: processes with the same `host_id` see
    each other's pids (a host name alone does not say that: containers share them)."""
    parts = [socket.gethostname()]
    with contextlib.suppress(OSError), open("/proc/sys/kernel/random/boot_id") as fh:
        parts.append(fh.read().strip())
    with contextlib.suppress(OSError):
        parts.append(str(os.stat("/proc/self/ns/pid").st_ino))
    return hashlib.blake2b("/".join(parts).encode(), digest_size=16).hexdigest()


@functools.cache
def _boot_time() -> float | None:
    try:
        with open("/proc/stat") as fh:
            for line in fh:
                if line.startswith("btime "):
                    return float(line.split()[1])
    except OSError:
        pass
    return None


def _process_state(pid: int) -> tuple[str, float | None] | None:
    """(state letter, start time) of `pid` from /proc (Linux), None without /proc."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return ("X", None)
    except OSError:
        return None
    boot = _boot_time()
    started = None
    if boot is not None:
        started = boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")
    return fields[0], started


def process_running(pid: int, since: float) -> bool:
    """Whether the process `pid` of this host runs and started by `since` (a pid that
    belongs to a newer process was reused: the one that had it is gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # someone else's process: it exists
    except OSError:
        return False
    state = _process_state(pid)
    if state is None:
        return True  # no /proc: it exists, that is all one can tell
    letter, started = state
    if letter in ("Z", "X"):
        return False  # dead, not reaped yet
    return started is None or started <= since + _STARTED_SLACK


def interrupted(
    status: str,
    started_at: float,
    heartbeat_at: float | None,
    hostname: str | None,
    recorded_host: str | None,
    pid: int | None,
    now: float | None = None,
) -> bool:
    """Whether an execution with these recorded fields is ``running`` but its process is
    gone (see the module docstring). Rows from before heartbeats (no `recorded_host`)
    are judged by host name and pid on a host of that name, else by age."""
    if status != "running":
        return False
    same_host = (
        recorded_host == host_id()
        if recorded_host is not None
        else hostname is not None and hostname == socket.gethostname()
    )
    if same_host and pid:
        return not process_running(pid, started_at)
    last = heartbeat_at if heartbeat_at is not None else started_at
    return (time.time() if now is None else now) - last > STALE_SECONDS
