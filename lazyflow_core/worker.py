"""The remote worker: ``python -m lazyflow_core.worker PREFIX`` runs one bundle of jobs.

This is the command of every Batch container (AWS Batch, GCP Batch). It needs no
database and no credentials beyond the scratch location's: the scheduler is the only
writer of the store, and everything travels through scratch (`executors.scratch`):

1. the bundle index comes from the backend's environment (``AWS_BATCH_JOB_ARRAY_INDEX``,
   ``BATCH_TASK_INDEX``; 0 for a job that is not an array);
2. the bundle's header is read and its lazyflow version checked against this one: a
   mismatch fails every job of the bundle with an error that says how to fix the image;
3. the user's code package is extracted (once per digest) and put on ``sys.path``;
4. each job runs with the same worker-side function as the local executors
   (`wire.iter_wires` -> `run_job`: the result is hashed and pickled here), and its
   outcome is written as soon as it is done, by a writer thread that puts the outcomes
   finished during its previous write in one file (a long job gets a file of its own,
   tiny jobs do not wait on object-store latency), then all of them to one ``all`` file.

Exit status: 0 when every outcome was written, *also when tasks raised* (a task's
exception is data for the scheduler, which decides about retries); non-zero only when
the worker itself could not do its work (scratch unreachable, a corrupt bundle), which
the executor treats as an infrastructure failure and retries on its own budget.

It imports neither SQLAlchemy nor the store (a test checks): containers start faster,
and the image needs no database driver.
"""

from __future__ import annotations

import argparse
import logging
import os
import pickle
import queue
import sys
import threading
import time
from typing import Any

from . import __version__
from .errors import ExecutorError
from .executors import scratch
from .executors.codepackage import install
from .executors.wire import Wire, error_wire, iter_wires

log = logging.getLogger("lazyflow.worker")

WRITE_EVERY = 0.2
"""Seconds the writer thread waits for more outcomes to put in the same file."""


class VersionMismatch(ExecutorError):
    """The worker's lazyflow is not the scheduler's."""


BATCH_FIX = (
    "save the module's file after changing it (jobs run the code package built from the "
    "files), or install the scheduler's library versions in the worker image."
)


def bundle_index(environ: dict[str, str] | os._Environ[str] = os.environ) -> int:
    for name in scratch.INDEX_ENV:
        value = environ.get(name)
        if value:
            return int(value)
    return 0


class OutcomeWriter:
    """Writes outcomes to scratch from a thread as they come in: what finished while the
    previous write was under way (or within `WRITE_EVERY`) goes in one file."""

    def __init__(self, fs: Any, prefix: str, index: int) -> None:
        self.fs = fs
        self.prefix = prefix
        self.index = index
        self.wires: list[Wire] = []
        self._queue: queue.Queue[Wire | None] = queue.Queue()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="lazyflow-outcomes", daemon=True)
        self._thread.start()

    def put(self, wire: Wire) -> None:
        self.wires.append(wire)
        self._queue.put(wire)

    def _run(self) -> None:
        written = 0
        done = False
        while not done:
            item = self._queue.get()
            chunk: list[Wire] = []
            deadline = time.monotonic() + WRITE_EVERY
            while item is not None:
                chunk.append(item)
                try:
                    item = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
            done = item is None
            if not chunk:
                continue
            path = scratch.chunk_path(self.prefix, self.index, written, written + len(chunk))
            try:
                scratch.write(self.fs, {path: scratch.dump(chunk)})
            except BaseException as exc:
                self._error = exc
                return
            written += len(chunk)

    def close(self) -> None:
        """Wait for every outcome file, then write the bundle's ``all`` file."""
        self._queue.put(None)
        self._thread.join()
        if self._error is not None:
            raise self._error
        all_file = scratch.all_file(self.wires)
        scratch.write(self.fs, {scratch.all_path(self.prefix, self.index): all_file})


def run_bundle(prefix_url: str, index: int) -> tuple[int, int]:
    """Run bundle `index` of `prefix_url`; returns (jobs, failed jobs)."""
    import fsspec

    fs, prefix = fsspec.core.url_to_fs(prefix_url)
    prefix = prefix.rstrip("/")
    header = pickle.loads(fs.cat_file(scratch.bundle_path(prefix, index)))
    writer = OutcomeWriter(fs, prefix, index)
    failed = 0
    for wire in _wires(fs, header):
        failed += wire[0] is not None
        writer.put(wire)
    writer.close()
    return len(writer.wires), failed


def _wires(fs: Any, header: dict[str, Any]) -> Any:
    """The outcomes of a bundle's jobs, as each is done."""
    count = header["jobs"]
    if header["lazyflow"] != __version__:
        exc = VersionMismatch(
            f"the worker image has lazyflow {__version__}, the scheduler that sent these "
            f"jobs has lazyflow {header['lazyflow']}: results could differ, so the jobs "
            f"did not run. Install lazyflow=={header['lazyflow']} in the worker image (or "
            "run the scheduler with the image's version)."
        )
        return (error_wire(exc) for _ in range(count))
    try:
        if header["code"]:
            install(fs, header["code"])
        parts = pickle.loads(header["parts"])
    except Exception as exc:  # the jobs cannot even be read: each fails with the reason
        import traceback

        tb = "".join(traceback.format_exception(exc))
        return (error_wire(exc, tb) for _ in range(count))
    return iter_wires(parts, BATCH_FIX)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m lazyflow_core.worker",
        description="Run one bundle of lazyflow jobs from a scratch location.",
    )
    parser.add_argument("prefix", help="the array job's scratch prefix (fsspec URL)")
    parser.add_argument("--index", type=int, default=None, help="bundle index (default: env)")
    args = parser.parse_args(argv)
    index = bundle_index() if args.index is None else args.index
    started = time.time()
    jobs, failed = run_bundle(args.prefix, index)
    print(
        f"lazyflow worker {__version__}: bundle {index} of {args.prefix}: {jobs} jobs, "
        f"{failed} raised, {time.time() - started:.2f} s",
        file=sys.stderr,
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
