"""Child processes that die with the process that started them.

A run killed with ``kill -9`` (or by the OOM killer, or a container runtime) cannot stop
its helper processes itself, so a helper must notice on its own that its parent is gone
and exit: a worker that outlives its run keeps executing jobs, with their side effects,
for no one. Two mechanisms, used together by `die_with_parent`:

- **parent-death signal** (Linux, ``prctl(PR_SET_PDEATHSIG)`` through ctypes): the kernel
  sends the child SIGKILL the moment its parent exits, however it exits, even while the
  child is stuck in C code holding the GIL. The "parent" is the *thread* that started the
  child: start helpers from a thread that lives as long as they should (the process
  executor starts each worker from the thread that then reads its results);
- **a watchdog thread** (portable): it blocks reading a pipe whose write end only the
  parent holds (`lifeline_fd`, or a protocol pipe the helper already reads): the kernel
  closes it when the parent dies, the read returns end-of-file, and the thread ends the
  process. Without a pipe it polls whether the parent still exists.

Parent side, for any helper process (``subprocess.Popen``)::

    fd = lifeline_fd()
    proc = subprocess.Popen([sys.executable, "helper.py", str(os.getpid()), str(fd)],
                            pass_fds=(fd,))

and in the helper, first thing: ``die_with_parent(int(sys.argv[1]), fd=int(sys.argv[2]))``.
A command that is not Python code of ours gets the parent-death signal (Linux only) by
being started through this module: ``Popen(tied_command(["dask", "scheduler"]))``.

This module imports only the standard library: helpers import it before anything else.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>

_lock = threading.Lock()
_pipe: tuple[int, int] | None = None  # (read end, write end) of this process's lifeline


def set_parent_death_signal(signum: int = signal.SIGKILL) -> bool:
    """Ask the kernel to send `signum` to this process when its parent exits (Linux).

    Returns whether it could (False on other systems, or without a C library). The
    setting survives ``exec``, so a wrapper can set it and then run another program.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.prctl(PR_SET_PDEATHSIG, int(signum), 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


def _alive(pid: int, parent: bool) -> bool:
    if parent:
        return os.getppid() == pid  # re-parented (to init or a subreaper): the parent died
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


def _watch_fd(fd: int, code: int) -> None:
    with contextlib.suppress(OSError):
        while os.read(fd, 4096):
            pass  # the parent never writes; read until end-of-file
    os._exit(code)


def _watch_pid(pid: int, parent: bool, poll: float, code: int) -> None:
    while _alive(pid, parent):
        time.sleep(poll)
    os._exit(code)


def die_with_parent(
    parent_pid: int | None = None,
    *,
    fd: int | None = None,
    poll: float = 1.0,
    exit_code: int = 1,
) -> None:
    """In a child process: end this process as soon as `parent_pid` is gone.

    `parent_pid` defaults to the current parent. When it is the parent, the kernel's
    parent-death signal (SIGKILL) is requested; either way a daemon thread watches: it
    reads `fd` (the read end of a `lifeline_fd` pipe) until end-of-file, or, without
    one, checks every `poll` seconds whether the process still exists, and then calls
    ``os._exit(exit_code)``. If the parent is already gone when this is called, the
    process exits at once.
    """
    pid = os.getppid() if parent_pid is None else parent_pid
    parent = pid == os.getppid()
    if parent:
        set_parent_death_signal(signal.SIGKILL)
    if not _alive(pid, parent):  # it died before the signal was set up
        os._exit(exit_code)
    if fd is not None:
        target, args = _watch_fd, (fd, exit_code)
    else:
        target, args = _watch_pid, (pid, parent, poll, exit_code)  # type: ignore[assignment]
    threading.Thread(target=target, args=args, name="lazyflow-lifeline", daemon=True).start()


def _close_after_fork() -> None:
    """In a forked child: drop the parent's lifeline, whose write end it inherited
    (holding it would keep the parent's helpers alive after the parent's death)."""
    global _pipe
    if _pipe is not None:
        for end in _pipe:
            with contextlib.suppress(OSError):
                os.close(end)
        _pipe = None


def lifeline_fd() -> int:
    """The read end of this process's lifeline pipe, to pass to children (``pass_fds``).

    The write end stays open in this process, is never written and is not inherited:
    when this process ends, however it ends, every child reading the read end gets
    end-of-file. One pipe serves every child.
    """
    global _pipe
    with _lock:
        if _pipe is None:
            read, write = os.pipe()
            os.set_inheritable(read, False)  # pass_fds makes it inheritable per child
            _pipe = (read, write)
            if hasattr(os, "register_at_fork"):
                os.register_at_fork(after_in_child=_close_after_fork)
        return _pipe[0]


def tied_command(argv: list[str]) -> list[str]:
    """`argv` run so that it gets SIGKILL when this process ends (Linux; elsewhere it
    runs as given). Start the result from a long-lived thread (see the module doc)."""
    if not sys.platform.startswith("linux") or not sys.executable:
        return list(argv)
    # run by path: the wrapper needs only the standard library, not the lazyflow package
    return [sys.executable, os.path.abspath(__file__), str(os.getpid()), "--", *argv]


def _exec_tied(args: list[str]) -> int:
    """``python lifeline.py PID -- COMMAND...``: set the
    parent-death signal, check the parent is still `PID`, then become COMMAND."""
    if len(args) < 3 or args[1] != "--":
        print("usage: python lifeline.py PID -- COMMAND...", file=sys.stderr)
        return 2
    set_parent_death_signal(signal.SIGKILL)
    if os.getppid() != int(args[0]):
        return 1  # the parent died before the signal was set up
    os.execvp(args[2], args[2:])
    return 1  # not reached


if __name__ == "__main__":
    sys.exit(_exec_tied(sys.argv[1:]))
