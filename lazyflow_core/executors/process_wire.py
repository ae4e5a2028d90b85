"""What travels between the process executor and its workers, and how.

Messages are framed (an 8-byte big-endian length, then the payload) on two pipes per
worker. To the worker: a hello (``marshal``: ``sys.path``, modules to preload), then
batches of jobs. From the worker: a ready message, then **one outcome per job, written as
soon as the job finishes**, so a run killed mid-batch keeps every outcome its workers had
sent, and a worker that dies leaves no finished job unreported: the first job without an
outcome is the one it was running.

Jobs are pickled by `wire.fast_dumps` (the C pickler where the worker can load its
output, cloudpickle otherwise: lambdas, closures, tasks and classes of a script run as
``__main__``). A batch is ``(tasks, [(task index, args, kwargs), ...])``: plain tuples,
no per-job objects. An outcome is a `wire.Wire`, the format the Batch executors share.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Sequence
from typing import Any

from ..errors import SerializationError
from ..expression import short_repr
from .base import JobSpec
from .wire import dumps, fast_dumps

HEADER = struct.Struct(">Q")

# -- framing ------------------------------------------------------------------------------


def frame(payload: bytes) -> bytes:
    return HEADER.pack(len(payload)) + payload


def write_all(fd: int, data: bytes | memoryview) -> None:
    """Write `data` whole (blocks while the pipe is full: backpressure)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


class FrameReader:
    """Reads framed messages from a pipe as they arrive."""

    __slots__ = ("buf", "fd")

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.buf = bytearray()

    def read(self) -> list[bytes] | None:
        """The next complete messages (at least one; blocks until then), or None at
        end of input once every complete message has been returned."""
        buf = self.buf
        while True:
            out: list[bytes] = []
            start = 0
            while len(buf) - start >= HEADER.size:
                (size,) = HEADER.unpack_from(buf, start)
                end = start + HEADER.size + size
                if end > len(buf):
                    break
                out.append(bytes(buf[start + HEADER.size : end]))
                start = end
            if start:
                del buf[:start]
            if out:
                return out
            missing = HEADER.size if len(buf) < HEADER.size else HEADER.unpack_from(buf)[0]
            chunk = os.read(self.fd, max(1 << 16, missing + HEADER.size - len(buf)))
            if not chunk:
                return None
            buf += chunk


# -- jobs ------------------------------------------------------------------------------


Job = tuple[int, tuple[Any, ...], dict[str, Any]]
"""A job on the wire: (index of its task in the batch, args, kwargs)."""


def batch_payload(specs: Sequence[JobSpec]) -> bytes:
    """The pickled batch ``(tasks, jobs)``; raises if any job does not pickle.

    Each task goes with its code hash as this run computed it (``(task, hash)``): a
    worker that imported the task's module before it was edited and reloaded here would
    otherwise run the old code under the new hash (`process_worker.current_task`).
    """
    tasks: list[tuple[Any, str]] = []
    index: dict[int, int] = {}
    jobs: list[Job] = []
    for spec in specs:
        i = index.get(id(spec.task))
        if i is None:
            i = index[id(spec.task)] = len(tasks)
            tasks.append((spec.task, spec.task.hash))
        jobs.append((i, spec.args, spec.kwargs))
    return fast_dumps((tasks, jobs))


def unsendable(spec: JobSpec, exc: BaseException) -> SerializationError:
    """The error of a job whose arguments cannot be pickled: names the argument."""
    where, value = "its task", spec.task
    named = [(f"argument {i}", a) for i, a in enumerate(spec.args)]
    named += [(f"argument {k!r}", v) for k, v in spec.kwargs.items()]
    for name, arg in named:
        try:
            dumps(arg)
        except Exception as arg_exc:
            where, value, exc = name, arg, arg_exc
            break
    return SerializationError(
        f"task {spec.task.name!r}: {where} ({short_repr(value, 80)}) cannot be sent to a "
        f"worker process: {type(exc).__name__}: {exc}. Pass a picklable value (or create "
        'it inside the task), or run this task with executor="threads".'
    )
