"""A process executor worker: runs the jobs its parent sends, one outcome back per job.

Started by `ProcessExecutor` as ``python -c BOOTSTRAP IN_FD OUT_FD PARENT_PID`` (see
`BOOTSTRAP`): a fresh interpreter that does not import the parent's ``__main__``, so a
plain script needs no ``if __name__ == "__main__":`` guard (``multiprocessing``'s spawn
re-runs the script in every worker, and without the guard each worker would start
workers of its own). The bootstrap reads a hello message (the parent's ``sys.path``, the
modules to preload) before importing lazyflow, so the worker imports what the parent
would.

Threads: the main thread runs jobs in order; a reader thread takes batches off the pipe
as they arrive (the parent never blocks on a full pipe while a batch runs). End of input
on that pipe means the parent is done with this worker, or dead: either way the worker
exits at once, so it never outlives its run; on Linux the kernel's parent-death signal
also kills it if the parent dies while a job holds the GIL (`lifeline`). Ctrl-C is
ignored here: it reaches the whole process group, and the parent decides what stops.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import pickle
import queue
import signal
import sys
import threading
import time
import traceback
from typing import Any

from . import lifeline
from .process_wire import FrameReader, frame, write_all
from .stalecode import current_task
from .wire import call_to_wire, error_wire

BOOTSTRAP = """\
import marshal, os, struct, sys
fd = int(sys.argv[1])
def read(n):
    data = b""
    while len(data) < n:
        chunk = os.read(fd, n - len(data))
        if not chunk:
            os._exit(0)
        data += chunk
    return data
hello = marshal.loads(read(struct.unpack(">Q", read(8))[0]))
sys.path[:] = hello["path"]
from lazyflow_core.executors.process_worker import main
main(hello, fd, int(sys.argv[2]), int(sys.argv[3]))
"""
"""What ``python -c`` runs: read the hello (stdlib only), set ``sys.path``, start."""


def preload(modules: tuple[str, ...]) -> None:
    """Import the modules of the first jobs' tasks before taking any job.

    A worker would import them anyway with its first job (to unpickle the task), but it
    would hold that job, and the jobs batched with it, while it imports; importing first,
    it tells the parent it is ready only once it can run them at once. A module that
    fails to import is left for its jobs to report.
    """
    for name in modules:
        with contextlib.suppress(Exception):
            importlib.import_module(name)


def _read_batches(reader: FrameReader, batches: queue.SimpleQueue[bytes]) -> None:
    """Reader thread: queue every batch as it arrives; exit the process at end of input."""
    try:
        while (messages := reader.read()) is not None:
            for message in messages:
                batches.put(message)
    finally:
        for stream in (sys.stdout, sys.stderr):  # what the tasks printed
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(0)  # the parent closed the pipe, or died


PROCESS_FIX = "start a new ProcessExecutor after changing it, or use executor='threads'."


def run_batch(payload: bytes, out_fd: int) -> None:
    """Run one batch's jobs in order, writing each outcome as soon as it is known."""
    count = int.from_bytes(payload[:4], "big")
    try:
        sent, jobs = pickle.loads(memoryview(payload)[4:])
        tasks = [current_task(task, digest, PROCESS_FIX) for task, digest in sent]
    except Exception as exc:  # e.g. a task's module does not import in this worker
        tb = "".join(traceback.format_exception(exc))
        message = frame(pickle.dumps(error_wire(exc, tb), protocol=pickle.HIGHEST_PROTOCOL))
        write_all(out_fd, message * count)
        return
    dumps, highest = pickle.dumps, pickle.HIGHEST_PROTOCOL
    for index, args, kwargs in jobs:
        wire = call_to_wire(tasks[index], args, kwargs)
        try:
            data = dumps(wire, protocol=highest)
        except Exception as exc:  # e.g. a file path that is not a str
            data = dumps(error_wire(exc, None, wire[7], wire[8]), protocol=highest)
        write_all(out_fd, frame(data))


def main(hello: dict[str, Any], in_fd: int, out_fd: int, parent_pid: int) -> None:
    """The worker's life: preload, say ready, run batches until the parent is gone."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    lifeline.set_parent_death_signal()
    if os.getppid() != parent_pid:
        os._exit(0)  # the parent died while this interpreter started
    preload(tuple(hello.get("preload", ())))
    write_all(out_fd, frame(pickle.dumps((os.getpid(), time.time()))))
    batches: queue.SimpleQueue[bytes] = queue.SimpleQueue()
    threading.Thread(
        target=_read_batches,
        args=(FrameReader(in_fd), batches),
        name="lazyflow-worker-reader",
        daemon=True,
    ).start()
    while True:
        run_batch(batches.get(), out_fd)
