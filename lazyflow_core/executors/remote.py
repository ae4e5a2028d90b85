"""What the Batch executors share: bundles on scratch, array jobs, monitoring, retries.

A `RemoteExecutor` turns `submit`ted jobs into array jobs on a batch service; a backend
(`AWSBatchExecutor`, `GCPBatchExecutor`) only supplies how to submit, poll and cancel
one. How a job travels:

1. `submit` buffers the job and returns its future. A monitor thread (one per executor)
   sends the buffer once no job has come for `linger` seconds (jobs that trickle in, as
   a parent's results arrive, share an array), at most ten lingers after the first.
2. Sending cuts the jobs into bundles by measured run time (`bundling`, as the process
   pool does, at the scale of a container: `bundle_seconds` of work each; jobs of a task
   not measured yet go `unmeasured_per_bundle` to a bundle), writes each bundle to
   scratch (`scratch`: the jobs cloudpickled, with the lazyflow version and the code
   package, `codepackage`), and submits *one* array job per group of jobs with the same
   `resources=` whose child i runs bundle i (``python -m lazyflow_core.worker PREFIX``).
   Arguments, however big, travel through scratch; the batch API gets the prefix.
   Of many jobs (`PROBE_ABOVE`) of a task not measured yet, one bundle goes first and
   the others wait until it has measured the task (or `probe_seconds`), so that a first
   fan-out of tiny calls does not take a container per ten calls.
3. Every `poll_seconds` the thread asks the backend which children finished (a few API
   calls per poll, whatever the number of jobs: see the backends), reads their outcome
   files (one per bundle; the files written as its jobs finished when a container died
   half-way) and resolves the futures. Caching stays per call: every job of a bundle
   has its own outcome.

Failures:

- a task that raises is an outcome like any other (the worker exits 0): the scheduler
  applies ``@task(retries=)``; the executor never retries it;
- a job left without an outcome (its container was preempted, killed, ran out of memory,
  or the worker could not start) is an *infrastructure* failure: it is resubmitted, in
  a new array, up to `infra_retries` times, a budget separate from ``retries=``; then it
  fails with an `ExecutorError` that carries the backend's reason (and the log's tail).

Restarts: the call hashes of each array's bundles are on scratch (``index``) and the
array's name starts with ``lazyflow-``. A new executor asks its backend, before its
first submission, for such jobs still running, and a job whose call hash is in one of
them waits for that job's outcome instead of being submitted again (also within one
process: a call already in flight gets the same outcome).
"""

from __future__ import annotations

import hashlib
import logging
import math
import pickle
import re
import threading
import time
import uuid
from abc import abstractmethod
from concurrent.futures import Future
from typing import Any

from .. import __version__
from ..errors import ExecutorError
from . import scratch
from .arrays import ArrayJob, Finished, RemoteJob, chunks, resources_of
from .base import Executor, JobOutcome, JobSpec
from .bundling import RunTimes, cut
from .codepackage import CodeShipper
from .wire import outcome, pack

log = logging.getLogger("lazyflow.executors")

BUNDLE_SECONDS = 60.0
"""Measured work per container: a minute amortises a container's start-up."""

UNMEASURED_PER_BUNDLE = 10
"""Jobs per bundle for a task that has not been seen to finish yet."""

MAX_BUNDLE_JOBS = 2000
"""Most jobs in one bundle, however short."""

PROBE_ABOVE = 100
"""More jobs than this of a task not measured yet: send one bundle first (a probe), and
the others once it is measured, or after `probe_seconds`."""

KEEP_SPENT = 200
"""Scratch directories of ended arrays kept until shutdown, at most."""

MAX_POLL_FAILURES = 20
"""Polls failing in a row (throttling, network) before the jobs in flight are failed."""


class RemoteExecutor(Executor):
    """Common half of the Batch executors (see the module docstring).

    `scratch` is an fsspec URL the scheduler and the workers can both read and write;
    `environment` is set in every container (on top of the image's and the job
    definition's); `python` is the interpreter in the image.
    """

    name = "remote"
    backend = "a batch service"

    def __init__(
        self,
        scratch: str,
        *,
        environment: dict[str, str] | None = None,
        python: str = "python",
        bundle_seconds: float = BUNDLE_SECONDS,
        unmeasured_per_bundle: int = UNMEASURED_PER_BUNDLE,
        max_bundle_jobs: int = MAX_BUNDLE_JOBS,
        max_array_size: int = 10_000,
        linger: float = 1.0,
        poll_seconds: float = 5.0,
        infra_retries: int = 3,
        probe_seconds: float = 120.0,
        keep_scratch: bool = False,
        storage_options: dict[str, Any] | None = None,
    ) -> None:
        if not isinstance(scratch, str) or not scratch.strip("/"):
            raise ExecutorError(
                f"{type(self).__name__}(scratch={scratch!r}): scratch must be an fsspec URL "
                "that the scheduler and the containers can both use, e.g. "
                "'s3://bucket/lazyflow' or 'gs://bucket/lazyflow'."
            )
        self.scratch = scratch.rstrip("/")
        self.environment = {str(k): str(v) for k, v in (environment or {}).items()}
        self.python = python
        self.bundle_seconds = float(bundle_seconds)
        self.max_bundle_jobs = int(max_bundle_jobs)
        self.max_array_size = int(max_array_size)
        self.linger = float(linger)
        self.poll_seconds = float(poll_seconds)
        self.infra_retries = int(infra_retries)
        self.unmeasured_per_bundle = max(1, int(unmeasured_per_bundle))
        self.probe_seconds = float(probe_seconds)
        self.keep_scratch = bool(keep_scratch)
        self.storage_options = dict(storage_options or {})
        self.runtimes = RunTimes(
            self.bundle_seconds / self.unmeasured_per_bundle,
            self.bundle_seconds / max(1, self.max_bundle_jobs),
        )
        self.submitted: list[str] = []  # job ids of the arrays this executor submitted
        self.attached: list[str] = []  # job ids of earlier runs' arrays it waits for
        self._fs: Any = None
        self._root = ""
        self._shipper: CodeShipper | None = None
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stop = False
        self._buffer: list[RemoteJob] = []
        self._first_buffered = 0.0
        self._last_submit = 0.0
        self._arrays: list[ArrayJob] = []
        # Jobs of unmeasured tasks waiting for their task's probe; when each probe went.
        self._held: dict[str, list[RemoteJob]] = {}
        self._probes: dict[str, float] = {}
        self._inflight: dict[str, RemoteJob] = {}  # call hash -> its job in flight
        self._attach: dict[str, tuple[ArrayJob, int, int]] | None = None
        # Job ids of the arrays submitted here, and the prefixes of those that ended:
        # removed at shutdown (or beyond KEEP_SPENT), not at once, so that a scheduler
        # that re-attached to one of them still finds its outcomes.
        self._own: set[str] = set()
        self._spent: list[str] = []

    # -- backend hooks -----------------------------------------------------------------
    @abstractmethod
    def _submit(self, name: str, prefix_url: str, size: int, resources: dict[str, Any]) -> str:
        """Submit an array of `size` children (a plain job if 1) running the worker on
        `prefix_url`; return the backend's job id."""

    @abstractmethod
    def _poll(self, arrays: list[ArrayJob]) -> list[tuple[ArrayJob, list[Finished]]]:
        """Children of `arrays` that ended since the last poll (update `counts`)."""

    @abstractmethod
    def _cancel(self, arrays: list[ArrayJob], reason: str) -> None:
        """Stop `arrays` and their running children."""

    def _running(self) -> list[tuple[str, str]]:
        """`(job id, scratch prefix URL)` of lazyflow jobs of earlier runs still running."""
        return []

    # -- the scheduler's side ----------------------------------------------------------
    def command(self, prefix_url: str) -> list[str]:
        """The container's command: the worker, on one array job's scratch prefix."""
        return [self.python, "-m", "lazyflow_core.worker", prefix_url]

    def start(self) -> None:
        with self._cond:
            self._start_locked()

    def _start_locked(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        if self._fs is None:
            import fsspec

            self._fs, self._root = fsspec.core.url_to_fs(self.scratch, **self.storage_options)
            self._root = self._root.rstrip("/")
            self._shipper = CodeShipper(self._fs, self.scratch)
        self._stop = False
        self._attach = None  # look for jobs of earlier runs again
        self._thread = threading.Thread(
            target=self._monitor, name=f"lazyflow-{self.name}", daemon=True
        )
        self._thread.start()

    def submit(self, spec: JobSpec) -> Future[JobOutcome]:
        future: Future[JobOutcome] = Future()
        with self._cond:
            self._start_locked()
            now = time.monotonic()
            if not self._buffer:
                self._first_buffered = now
            self._last_submit = now
            self._buffer.append(RemoteJob(spec, [future]))
        return future

    def flush(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def shutdown(self, *, cancel: bool = False) -> None:
        with self._cond:
            thread = self._thread
            if thread is None:
                return
            if not cancel:
                self._last_submit = self._first_buffered = 0.0  # send what is buffered now
                self._cond.notify_all()
                while (self._buffer or self._arrays or self._held) and thread.is_alive():
                    self._cond.wait(1.0)
            self._stop = True
            self._cond.notify_all()
            left, self._buffer = self._buffer, []
            left += [job for jobs in self._held.values() for job in jobs]
            self._held.clear()
            arrays, self._arrays = self._arrays, []
            self._inflight.clear()
            self._thread = None
        thread.join(timeout=60)
        with self._cond:
            spent, self._spent = self._spent, []
        self._remove(spent)
        if arrays:
            try:
                self._cancel(arrays, "lazyflow: the run was cancelled")
            except Exception as exc:
                log.warning("lazyflow: could not cancel %s jobs: %s", self.backend, exc)
        error = ExecutorError(f"the job was cancelled: {self.name} executor shut down")
        for job in left + [j for a in arrays for b in a.bundles for j in b if j is not None]:
            self._resolve(job, JobOutcome(error=error))

    # -- the monitor thread ------------------------------------------------------------
    def _monitor(self) -> None:
        """The monitor thread; should it ever fail, no job is left waiting forever."""
        try:
            self._loop()
        except BaseException as exc:
            log.exception("lazyflow: the %s executor's monitor thread failed", self.name)
            with self._cond:
                left, self._buffer = self._buffer, []
                left += [job for jobs in self._held.values() for job in jobs]
                self._held.clear()
                self._thread = None
            self._fail_all(f"its monitor thread failed ({type(exc).__name__}: {exc})", left)

    def _loop(self) -> None:
        next_poll = 0.0
        failures = 0
        while True:
            with self._cond:
                while True:
                    if self._stop:
                        return
                    now = time.monotonic()
                    send_at = self._send_at()
                    poll_at = next_poll if self._arrays else math.inf
                    wake = min(send_at, poll_at)
                    if wake <= now:
                        break
                    self._cond.wait(None if wake == math.inf else wake - now)
                jobs: list[RemoteJob] = []
                if send_at <= now:
                    self._release_probed(now)
                    jobs, self._buffer = self._buffer, []
            if jobs:
                try:
                    self._send(jobs)
                except Exception as exc:  # submitting failed before any array went out
                    self._fail_submit([list(jobs)], exc)
            if time.monotonic() >= next_poll and self._arrays:
                try:
                    self._poll_once()
                    failures = 0
                except Exception as exc:
                    failures += 1
                    log.warning("lazyflow: polling %s failed (%s): %s", self.backend, failures, exc)
                    if failures >= MAX_POLL_FAILURES:
                        self._fail_all(f"{self.backend} could not be polled: {exc}")
                next_poll = time.monotonic() + self.poll_seconds

    def _send_at(self) -> float:
        at = math.inf
        if self._buffer:
            at = min(self._last_submit + self.linger, self._first_buffered + 10 * self.linger)
        for name in self._held:
            at = min(at, self._probes.get(name, 0.0) + self.probe_seconds)
        return at

    def _release_probed(self, now: float) -> None:
        """Held jobs whose task is measured now, or whose probe is old, go to the buffer
        (call with `_cond` held)."""
        for name in list(self._held):
            if self.runtimes.mean(name) is not None or (
                now - self._probes.get(name, 0.0) >= self.probe_seconds
            ):
                self._buffer.extend(self._held.pop(name))

    def _probe(self, group: list[RemoteJob]) -> list[RemoteJob]:
        """The jobs of `group` to send now. Of a task not measured yet, with more than
        `PROBE_ABOVE` jobs, one bundle goes first and the others wait until it measured
        the task (so that 10,000 tiny calls do not go 10 to a container) or for
        `probe_seconds` (so that long calls are not held for long)."""
        now = time.monotonic()
        unmeasured: dict[str, list[RemoteJob]] = {}
        out = []
        for job in group:
            name = job.spec.task.name
            if job.failures or self.runtimes.mean(name) is not None:
                out.append(job)
            else:
                unmeasured.setdefault(name, []).append(job)
        with self._cond:
            for name, jobs in unmeasured.items():
                probed = self._probes.get(name)
                if probed is not None and now - probed >= self.probe_seconds:
                    out += jobs  # its probe gave no measure in time: send them as they are
                elif probed is not None:
                    self._held.setdefault(name, []).extend(jobs)
                elif len(jobs) > PROBE_ABOVE:
                    self._probes[name] = now
                    out += jobs[: self.unmeasured_per_bundle]
                    self._held.setdefault(name, []).extend(jobs[self.unmeasured_per_bundle :])
                    log.info(
                        "lazyflow: %s: %d calls of %s, not measured yet: one bundle first",
                        self.name,
                        len(jobs),
                        name,
                    )
                else:
                    out += jobs
        return out

    def _send(self, jobs: list[RemoteJob]) -> None:
        """Bundle `jobs` and submit one array per group of equal `resources=`."""
        if self._attach is None:
            self._attach = self._scan()
        jobs = self._reattach(jobs)
        groups: dict[str, list[RemoteJob]] = {}
        for job in jobs:
            groups.setdefault(repr(sorted(resources_of(job.spec).items())), []).append(job)
        for group in groups.values():
            group = self._probe(group)
            if not group:
                continue
            costs = [self.runtimes.cost(job.spec.task.name) for job in group]
            slices = list(cut(costs, self.bundle_seconds, self.max_bundle_jobs))
            for part in chunks(slices, self.max_array_size):
                bundles: list[list[RemoteJob | None]] = [list(group[a:b]) for a, b in part]
                try:
                    self._submit_array(bundles, resources_of(group[0].spec))
                except Exception as exc:
                    self._fail_submit(bundles, exc)

    def _submit_array(
        self, bundles: list[list[RemoteJob | None]], resources: dict[str, Any]
    ) -> None:
        assert self._shipper is not None  # for mypy: start() set it
        key = f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:12]}"
        prefix = f"{self._root}/runs/{key}"
        code = self._shipper.url()
        files = {}
        for i, bundle in enumerate(bundles):
            specs = [job.spec for job in bundle if job is not None]
            parts = scratch.dump(pack(specs))
            files[scratch.bundle_path(prefix, i)] = scratch.bundle_file(
                __version__, code, len(specs), parts
            )
        hashes = [[job.spec.call_hash if job else None for job in b] for b in bundles]
        files[scratch.index_path(prefix)] = scratch.dump(hashes)
        scratch.write(self._fs, files)
        job_id = self._submit(self._job_name(bundles), self._url(prefix), len(bundles), resources)
        array = ArrayJob(job_id, prefix, bundles)
        with self._cond:
            self.submitted.append(job_id)
            self._own.add(job_id)
            if not self._stop:
                self._arrays.append(array)
                for bundle in bundles:
                    for job in bundle:
                        if job is not None and job.spec.call_hash:
                            self._inflight[job.spec.call_hash] = job
                return
        self._cancel([array], "lazyflow: the run was cancelled")  # shut down meanwhile

    def _url(self, path: str) -> str:
        return str(self._fs.unstrip_protocol(path))

    def _job_name(self, bundles: list[list[RemoteJob | None]]) -> str:
        """``lazyflow-{task}-{call hash}`` for one job, ``-{digest}-x{jobs}`` for more."""
        jobs = [job for bundle in bundles for job in bundle if job is not None]
        task = re.sub(r"[^A-Za-z0-9_-]", "_", jobs[0].spec.task.name.rsplit(".", 1)[-1])[:40]
        if len(jobs) == 1 and jobs[0].spec.call_hash:
            return f"lazyflow-{task}-{jobs[0].spec.call_hash[:40]}"
        ids = "\n".join(job.spec.call_hash or job.spec.job_id for job in jobs)
        return f"lazyflow-{task}-{hashlib.sha256(ids.encode()).hexdigest()[:16]}-x{len(jobs)}"

    def _fail_submit(self, bundles: list[list[RemoteJob | None]], exc: Exception) -> None:
        jobs = [job for bundle in bundles for job in bundle if job is not None]
        tasks = sorted({job.spec.task.name for job in jobs})
        log.warning("lazyflow: submitting %d jobs to %s failed: %s", len(jobs), self.backend, exc)
        error = ExecutorError(
            f"{self.name}: could not submit {len(jobs)} job(s) of task(s) "
            f"{', '.join(map(repr, tasks))} to {self.backend}: {type(exc).__name__}: {exc}. "
            "Check the executor's configuration (queue, job definition or project, region, "
            f"scratch={self.scratch!r}) and the credentials in use."
        )
        for job in jobs:
            self._resolve(job, JobOutcome(error=error))

    def _poll_once(self) -> None:
        with self._cond:
            arrays = list(self._arrays)
        ended: list[tuple[ArrayJob, Finished]] = []
        for array, finished in self._poll(arrays):
            for child in finished:
                if child.index not in array.done and 0 <= child.index < len(array.bundles):
                    array.done.add(child.index)
                    ended.append((array, child))
        if ended:
            self._collect(ended)
        gone = [a for a in arrays if a.finished]
        if gone:
            with self._cond:
                self._arrays = [a for a in self._arrays if not a.finished]
                self._cond.notify_all()
            with self._cond:
                self._spent += [a.prefix for a in gone if a.job_id in self._own]
                old = self._spent[:-KEEP_SPENT] if len(self._spent) > KEEP_SPENT else []
                del self._spent[: len(old)]
            self._remove(old)

    def _remove(self, prefixes: list[str]) -> None:
        """Remove the scratch directories of arrays whose outcomes were read."""
        if self.keep_scratch or not prefixes:
            return
        try:
            self._fs.rm(prefixes, recursive=True)
        except Exception as exc:  # best effort: scratch is scratch
            log.debug("lazyflow: could not remove %s: %s", prefixes, exc)

    def _collect(self, ended: list[tuple[ArrayJob, Finished]]) -> None:
        """Read the outcomes of the bundles that ended and resolve their jobs; a bundle
        whose outcomes cannot be read has its jobs resubmitted."""
        try:
            found = scratch.read_outcomes(
                self._fs,
                [
                    (array.prefix, child.index, child.failure is None, array.bundles[child.index])
                    for array, child in ended
                ],
            )
        except Exception as exc:
            unread = f"its outcomes could not be read from scratch: {type(exc).__name__}: {exc}"
            found = [{} for _ in ended]
            ended = [(array, Finished(child.index, unread)) for array, child in ended]
        for (array, child), wires in zip(ended, found, strict=True):
            for j, job in enumerate(array.bundles[child.index]):
                if job is None:
                    continue
                wire = wires.get(j)
                if wire is not None:
                    self._resolve(job, outcome(wire))
                else:
                    reason = child.failure or "the worker exited without this job's outcome"
                    self._infra_failed(job, reason)

    def _resolve(self, job: RemoteJob, out: JobOutcome) -> None:
        name = job.spec.task.name
        self.runtimes.record(name, out.started, out.finished)
        call_hash = job.spec.call_hash
        with self._cond:
            if name in self._held and self.runtimes.mean(name) is not None:
                self._buffer.extend(self._held.pop(name))  # measured: send the others
                self._last_submit = self._first_buffered = 0.0
                self._cond.notify_all()
            if call_hash and self._inflight.get(call_hash) is job:
                del self._inflight[call_hash]
            futures, job.futures = job.futures, []
        for future in futures:
            if not future.done():
                future.set_result(out)

    def _infra_failed(self, job: RemoteJob, reason: str) -> None:
        job.failures += 1
        task = job.spec.task.name
        if job.failures > self.infra_retries:
            error = ExecutorError(
                f"task {task!r}: its {self.backend} job failed {job.failures} times without "
                f"an outcome (not an exception of the task): {reason}\n"
                f"lazyflow resubmitted it {self.infra_retries} times (infra_retries="
                f"{self.infra_retries}). Check the container's log and its resources "
                "(memory, disk), or raise infra_retries for preemptible capacity."
            )
            self._resolve(job, JobOutcome(error=error))
            return
        log.warning(
            "lazyflow: %s job of task %s failed without an outcome (%s); resubmitting (%d of %d)",
            self.backend,
            task,
            reason.splitlines()[0] if reason else reason,
            job.failures,
            self.infra_retries,
        )
        with self._cond:
            now = time.monotonic()
            if not self._buffer:
                self._first_buffered = now
            self._buffer.append(job)
            self._cond.notify_all()

    def _fail_all(self, reason: str, jobs: list[RemoteJob] | None = None) -> None:
        """Fail the jobs in flight (and `jobs`) with `reason`."""
        with self._cond:
            arrays, self._arrays = self._arrays, []
        error = ExecutorError(f"{self.name}: {reason}")
        for left in jobs or []:
            self._resolve(left, JobOutcome(error=error))
        for array in arrays:
            for bundle in array.bundles:
                for job in bundle:
                    if job is not None:
                        self._resolve(job, JobOutcome(error=error))

    # -- restarts ----------------------------------------------------------------------
    def _scan(self) -> dict[str, tuple[ArrayJob, int, int]]:
        """Call hashes of the jobs of earlier runs still running, and where they are."""
        found: dict[str, tuple[ArrayJob, int, int]] = {}
        try:
            running = self._running()
        except Exception as exc:
            log.warning("lazyflow: could not list running %s jobs: %s", self.backend, exc)
            return found
        for job_id, prefix_url in running:
            prefix = self._fs._strip_protocol(prefix_url).rstrip("/")
            try:
                index = pickle.loads(self._fs.cat_file(scratch.index_path(prefix)))
            except Exception:
                continue  # not ours to read (another scratch), or cleaned up
            array = ArrayJob(job_id, prefix, [[None] * len(b) for b in index])
            for i, hashes in enumerate(index):
                for j, call_hash in enumerate(hashes):
                    if call_hash:
                        found[call_hash] = (array, i, j)
        return found

    def _reattach(self, jobs: list[RemoteJob]) -> list[RemoteJob]:
        """Jobs already in flight wait for that job; returns the others."""
        left = []
        for job in jobs:
            call_hash = job.spec.call_hash
            if not call_hash or job.failures:
                left.append(job)
                continue
            with self._cond:
                running = self._inflight.get(call_hash)
                if running is not None and running.futures:
                    running.futures.extend(job.futures)
                    continue
            hit = self._attach.pop(call_hash, None) if self._attach else None
            if hit is None:
                left.append(job)
                continue
            array, i, j = hit
            array.bundles[i][j] = job
            with self._cond:
                self._inflight[call_hash] = job
                if array not in self._arrays:
                    self._arrays.append(array)
                    self.attached.append(array.job_id)
            log.info(
                "lazyflow: %s re-attached to running %s job %s",
                job.spec.task.name,
                self.backend,
                array.job_id,
            )
        return left
