"""Dask executor: calls run on a Dask cluster (a LocalCluster, SLURM, Kubernetes, ...).

``DaskExecutor(target=None, **cluster_kwargs)`` runs on a `distributed.LocalCluster` of
its own (built from `cluster_kwargs`, closed when the executor shuts down), or on what `target`
names: a scheduler address, a `distributed.Client`, or a cluster object such as
dask-jobqueue's `SLURMCluster`. ``cluster="dask_jobqueue.SLURMCluster"`` builds that
class from `cluster_kwargs` instead of a LocalCluster (what a config file can say).

How a job travels:

- `submit` only buffers (scheduler thread); `flush` hands the buffer to a sender thread,
  which cuts it into bundles sized by the measured run time of their tasks (`bundling`,
  as the process pool does: ~`BUNDLE_SECONDS` of work per Dask task, at least two per
  worker thread), pickles each bundle as wire parts and submits one Dask task per
  bundle. A task not timed yet sends one call alone per worker thread and holds the rest
  until one comes back (`_probe`): a bundle's results return together, so a bundle of
  untimed slow calls would hold finished results a crash would lose. A Dask task
  costs about a millisecond of scheduler time and a round trip;
  a tiny call costs microseconds, so twenty tiny calls go as a handful of Dask tasks.
- On the worker, `_run_bundle` runs each call with `run_job`, the function every
  executor uses: the result is hashed and pickled for the store there.
- The Dask future's done callback (a Dask callback thread, never the scheduler thread)
  gathers the wires straight from the worker (``direct``: results do not pass through
  the Dask scheduler), unpacks them and resolves the jobs' futures. Parts larger than
  `SCATTER_BYTES` are scattered to a worker first, so large arguments do not travel
  inside the task graph through the Dask scheduler either.
- A result larger than `SCATTER_BYTES` stays on its worker too (`dask_held`, within
  `hold_bytes`): a later call that takes it refers to that copy, which Dask moves worker
  to worker, instead of it being pickled and sent out again from this process.

Failures: a user's exception is an outcome like any other (never retried here). A
bundle whose worker was lost (`KilledWorker`, a closed connection) is resubmitted, each
call alone so that one crashing call cannot take the others down again, up to
`infrastructure_retries` times per call; then the call fails with an `ExecutorError`
naming its task. ``@task(retries=)`` is a separate budget, spent after this one.

Code: tasks pickle by reference when their module imports, by value (cloudpickle) when
defined in ``__main__`` or a notebook. The user's own modules (not the standard
library, site-packages or lazyflow) are zipped into a content-addressed code package
(`codepackage`) and registered as a worker plugin, which extracts it on every worker,
present and future, and puts it first on ``sys.path`` without importing anything.
"""

from __future__ import annotations

import ast
import contextlib
import importlib
import logging
import os
import queue
import socket
import sys
import threading
import time
import uuid
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from distributed.diagnostics.plugin import WorkerPlugin

from ..errors import ExecutorError, RunCancelled
from . import codepackage
from .base import Executor, JobOutcome, JobSpec
from .bundling import RunTimes, cut
from .dask_held import HeldCopyLost, HeldResults, Ref, resolver
from .wire import Part, Wire, dumps, iter_wires, outcome, pack

log = logging.getLogger("lazyflow.executors.dask")

BUNDLE_SECONDS = 0.05
"""Measured run time of the calls sent to Dask as one task."""

UNMEASURED_PER_BUNDLE = 32
"""An untimed call counts as 1/this of a bundle's work while submissions are buffered
(the first calls of an untimed task go alone, the rest wait for their timing: `_probe`)."""

MAX_BUNDLE_JOBS = 1024
"""Most calls in one Dask task, however short."""

SCATTER_BYTES = 1_000_000
"""Bundles whose pickled calls are larger go to a worker by scatter, not in the graph."""

WORKERS_REFRESH_SECONDS = 1.0
"""How stale the executor's view of the cluster's workers may be."""

CODE_CHECK_SECONDS = 1.0
"""While busy, how often the user's source files are checked for edits (always when a
new round of work starts after the executor was idle)."""

_LOST = ("KilledWorker", "CommClosedError", "FutureCancelledError")


SUBMIT_CHECK_SECONDS = 60.0
"""How long `DaskExecutor` waits for a job-queue cluster to submit its workers (``scale=``)
before checking that the batch system accepted them."""


async def _started(worker: Any) -> Any:
    """Start a cluster's worker object (in the cluster's event loop); raises its error."""
    return await worker


DASK_FIX = (
    "restart the Dask workers (Client.restart()) or start a new DaskExecutor after "
    "changing it; an edited module file reaches the workers by itself."
)


HOLD_BYTES = 512 * 2**20
"""Default budget of large results kept on the cluster for later calls (`dask_held`)."""


def _run_bundle(parts: list[Part], refs: list[Ref] | None = None) -> list[Wire]:
    """Worker side: run a bundle's calls, in order, one wire per call. `refs` are the
    held results its parts refer to, resolved by Dask (`dask_held`)."""
    if not refs:
        return list(iter_wires(parts, DASK_FIX))
    return list(iter_wires(parts, DASK_FIX, resolver(refs)))


class _CodePlugin(WorkerPlugin):
    """Worker plugin that installs a code package on every worker, also later ones.

    It extracts the zip under the worker's local directory (once per digest) and puts
    it first on ``sys.path``. Modules of the package already imported by the worker
    (from an older package) are forgotten, so the next job imports the code as it is
    now rather than running the version the worker saw first.

    A worker in the scheduler's own process (``LocalCluster(processes=False)``) is left
    alone: it runs the code the scheduler has, and forgetting the scheduler's modules
    would make later unpickling import them again (new classes: an exception raised
    as ``mod.Boom`` would no longer be the ``Boom`` the caller catches).
    """

    idempotent = True

    def __init__(self, digest: str, data: bytes, roots: tuple[str, ...]) -> None:
        self.digest = digest
        self.data = data
        self.roots = roots
        self.name = f"lazyflow-code-{digest[:16]}"
        self.origin = (os.getpid(), socket.gethostname())

    def setup(self, worker: Any) -> None:
        if (os.getpid(), socket.gethostname()) == self.origin:
            return  # the scheduler's own process: its code is the code
        import io
        import zipfile

        base = os.path.join(worker.local_directory, "lazyflow-code")
        target = os.path.join(base, self.digest)
        if not os.path.isdir(target):
            os.makedirs(base, exist_ok=True)
            partial = f"{target}.{uuid.uuid4().hex[:8]}"
            with zipfile.ZipFile(io.BytesIO(self.data)) as zf:
                zf.extractall(partial)
            with contextlib.suppress(OSError):  # another worker here got there first
                os.rename(partial, target)
        sys.path[:] = [p for p in sys.path if os.path.dirname(p) != base]
        sys.path.insert(0, target)
        for name in list(sys.modules):
            if name.split(".", 1)[0] in self.roots:
                del sys.modules[name]
        importlib.invalidate_caches()


@dataclass(slots=True)
class _Bundle:
    """Calls sent as one Dask task, and the futures their outcomes resolve."""

    specs: list[JobSpec]
    futures: list[Future[JobOutcome]]
    resources: dict[str, float]
    lost: int = 0  # times this bundle's calls were lost with their worker
    errors: list[str] = field(default_factory=list)
    send_values: bool = False  # refer to no held result (one it referred to was lost)
    held: list[Any] = field(default_factory=list)  # held Dask futures it refers to


def _resources(spec: JobSpec) -> dict[str, float]:
    return {k: float(v) for k, v in getattr(spec.task.options, "resources", {}).items()}


def _is_lost(exc: BaseException) -> bool:
    """Whether `exc` says the worker (or the connection to it) went away."""
    return type(exc).__name__ in _LOST or isinstance(exc, OSError | TimeoutError)


def _guarded(source: str) -> bool:
    """Whether module `source` has a top-level ``if __name__ == "__main__":``."""
    for node in ast.parse(source).body:
        test = node.test if isinstance(node, ast.If) else None
        if isinstance(test, ast.Compare) and len(test.comparators) == 1:
            names = {
                n.id if isinstance(n, ast.Name) else getattr(n, "value", None)
                for n in (test.left, test.comparators[0])
            }
            if names == {"__name__", "__main__"}:
                return True
    return False


def _check_main_guard() -> None:
    """Refuse to start a LocalCluster of worker processes from a script without an
    ``if __name__ == "__main__":`` guard, with the fix, before anything starts.

    Dask starts its worker processes with ``multiprocessing``'s spawn, which re-runs the
    main script in each worker (as ``__mp_main__``): unguarded, the script's workflow
    runs again there and starts a cluster of its own, which multiprocessing refuses,
    and the run dies with some 240 lines of tracebacks from both processes ("Nanny failed
    to start"). A main module without a file (a notebook, ``python -c``) is not re-run.
    """
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    if not isinstance(path, str) or not path.endswith(".py"):
        return
    try:
        with open(path, encoding="utf-8") as fh:
            source = fh.read()
        guarded = _guarded(source)
    except (OSError, SyntaxError, ValueError):
        return
    if not guarded:
        raise ExecutorError(
            f"DaskExecutor starts a LocalCluster of worker processes, and Dask starts them "
            f"with multiprocessing's spawn, which runs {os.path.basename(path)} again in "
            "every worker: put the code that runs the workflow under "
            '`if __name__ == "__main__":` in that script. Or use '
            'DaskExecutor(processes=False) (workers in this process) or executor="processes" '
            "(lazyflow's own pool needs no guard)."
        )


def _load_class(path: str) -> type:
    module, _, name = path.rpartition(".")
    try:
        cls: type = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError) as exc:
        raise ExecutorError(
            f"DaskExecutor(cluster={path!r}): cannot import it ({exc}). Name a cluster class "
            'as "module.Class", e.g. "dask_jobqueue.SLURMCluster" (pip install dask-jobqueue).'
        ) from None
    return cls


class DaskExecutor(Executor):
    """Runs jobs on a Dask cluster, in bundles of calls (see the module docstring).

    `target`: None (a cluster of its own: a `LocalCluster`, or the class named by
    `cluster`, built from `cluster_kwargs`; `scale`/`adapt` size it), an address such as
    ``"tcp://host:8786"``, a `distributed.Client`, or a cluster object. A Client or
    cluster passed in is left running at shutdown; what the executor started, it closes.
    `infrastructure_retries`: how often a call whose worker was lost is resubmitted.
    `direct`: gather results (and scatter large bundles) straight from/to workers, off
    the Dask scheduler; set False when this machine cannot reach the workers.
    `hold_bytes`: how many bytes of large results the cluster keeps for later calls
    that take them (`dask_held`; oldest released first; 0: none). Those values are also
    kept alive in this process while held.
    """

    name = "dask"

    def __init__(
        self,
        target: Any = None,
        *,
        cluster: str | None = None,
        scale: int | None = None,
        adapt: dict[str, Any] | None = None,
        infrastructure_retries: int = 2,
        direct: bool = True,
        hold_bytes: int = HOLD_BYTES,
        **cluster_kwargs: Any,
    ) -> None:
        own = {"cluster": cluster, "scale": scale, "adapt": adapt}
        if target is not None and (cluster_kwargs or any(v is not None for v in own.values())):
            given = sorted([*cluster_kwargs, *(k for k, v in own.items() if v is not None)])
            raise ExecutorError(
                f"DaskExecutor(target={target!r}, {', '.join(given)}=...): cluster options "
                "apply only to a cluster the executor starts itself (target=None). Configure "
                "the cluster you pass as target where you create it."
            )
        if not isinstance(infrastructure_retries, int) or infrastructure_retries < 0:
            raise ExecutorError(
                f"DaskExecutor(infrastructure_retries={infrastructure_retries!r}) must be an "
                "int >= 0."
            )
        self.target = target
        self.cluster_class = cluster
        # Imported here, on the caller's thread: some cluster modules (dask-jobqueue)
        # install signal handlers as they import, which only the main thread may do.
        self._cluster_cls = _load_class(cluster) if cluster else None
        self.scale = scale
        self.adapt = adapt
        self.cluster_kwargs = cluster_kwargs
        self.infrastructure_retries = infrastructure_retries
        self.direct = direct
        self._held_results = HeldResults(hold_bytes, SCATTER_BYTES)
        self._client: Any = None
        self._own_client = False
        self._cluster: Any = None  # a cluster this executor started
        self._lock = threading.Lock()
        self._buffer: list[tuple[JobSpec, Future[JobOutcome]]] = []
        self._buffered = 0.0
        self._times = RunTimes(
            BUNDLE_SECONDS / UNMEASURED_PER_BUNDLE, BUNDLE_SECONDS / MAX_BUNDLE_JOBS
        )
        self._queue: queue.SimpleQueue[
            list[_Bundle] | list[tuple[JobSpec, Future[JobOutcome]]] | None
        ]
        self._queue = queue.SimpleQueue()
        self._sender: threading.Thread | None = None
        self._live: dict[str, tuple[Any, _Bundle]] = {}  # Dask key -> (Dask future, bundle)
        # Jobs of a task not timed yet, held until its first calls (sent alone) come back
        # (`_probe`): task name -> jobs, and how many went alone; guarded by `_lock`.
        self._held: dict[str, list[tuple[JobSpec, Future[JobOutcome]]]] = {}
        self._probes: dict[str, int] = {}
        self._closing = False
        self._threads = 1  # worker threads in the cluster, last seen
        self._workers: dict[str, Any] = {}  # address -> scheduler_info()["workers"] entry
        self._workers_seen = 0.0
        self._code_checked = 0.0
        self._code_signature: Any = None
        self._code_plugins: set[str] = set()

    # -- connecting --------------------------------------------------------------------
    @property
    def client(self) -> Any:
        """The `distributed.Client` (connecting or starting the cluster if needed)."""
        self.start()
        return self._client

    def start(self) -> None:
        """Connect to the target, or start the executor's own cluster (blocking)."""
        with self._lock:
            if self._client is not None:
                return
            self._closing = False
            self._client = self._connect()

    def _connect(self) -> Any:
        from distributed import Client

        target = self.target
        if isinstance(target, Client):
            self._own_client = False
            return target
        self._own_client = True
        if target is None:
            cls = self._cluster_cls
            if cls is None:
                from distributed import LocalCluster

                if self.cluster_kwargs.get("processes", True):
                    _check_main_guard()
                kwargs = {"dashboard_address": ":0", **self.cluster_kwargs}
                self._cluster = LocalCluster(**kwargs)
            else:
                self._cluster = cls(**self.cluster_kwargs)
            if self.scale is not None:
                self._cluster.scale(self.scale)
                self._check_submitted(self._cluster)
            if self.adapt is not None:
                self._cluster.adapt(**self.adapt)
            target = self._cluster
        try:
            return Client(target, set_as_default=False, direct_to_workers=self.direct)
        except (OSError, TimeoutError) as exc:
            raise ExecutorError(
                f"DaskExecutor: cannot connect to the Dask scheduler at {target!r} "
                f"({type(exc).__name__}: {exc}). Start it (`dask scheduler`) or fix the "
                "address passed as target."
            ) from exc

    def _check_submitted(self, cluster: Any) -> None:
        """Raise an `ExecutorError` when the cluster could not submit its workers.

        A job-queue cluster (dask-jobqueue) submits each worker as a batch job in the
        background; when ``sbatch`` (``qsub``...) refuses it (a wrong partition, account or
        memory request) the error is only logged and no worker ever joins, so the run would
        wait for ever. A worker object the cluster kept but that never started is such a
        refusal: submitting it once more (which succeeds if the refusal was passing) gives
        the batch system's own message, which the error carries.
        """
        if not hasattr(cluster, "worker_spec") or not hasattr(cluster, "sync"):
            return
        from distributed.core import Status

        deadline = time.monotonic() + SUBMIT_CHECK_SECONDS
        while set(cluster.worker_spec) - set(cluster.workers) and time.monotonic() < deadline:
            time.sleep(0.05)  # the cluster is still submitting (it adds them all at once)
        for name, worker in list(cluster.workers.items()):
            if getattr(worker, "status", None) != Status.created:
                continue
            try:
                cluster.sync(_started, worker)
            except Exception as exc:  # the batch system said why
                for refused, w in list(cluster.workers.items()):
                    if w.status == Status.created:  # never started: nothing to stop, and
                        w.status = Status.failed  # SpecCluster.close checks each worker
                        del cluster.workers[refused]  # it made is closed or failed
                        cluster.worker_spec.pop(refused, None)
                with contextlib.suppress(Exception):
                    cluster.close()
                self._cluster = None
                raise ExecutorError(
                    f"DaskExecutor(cluster={self.cluster_class!r}): the cluster could not "
                    f"submit its worker {name!r}, so no call can run: {exc}".rstrip()
                    + "\nFix the cluster options the batch system refused (queue/partition, "
                    "account, memory, walltime, job_extra_directives) and run again."
                ) from exc

    # -- scheduler thread ----------------------------------------------------------------
    def submit(self, spec: JobSpec) -> Future[JobOutcome]:
        """Buffer the job; a long stream is handed to the sender as it builds up."""
        fut: Future[JobOutcome] = Future()
        self._buffer.append((spec, fut))
        self._buffered += self._times.cost(spec.task.name)
        if self._buffered >= 2 * BUNDLE_SECONDS * self._threads:
            self.flush()
        return fut

    def flush(self) -> None:
        """Hand the buffered jobs to the sender thread (which bundles and submits them)."""
        if not self._buffer:
            return
        jobs, self._buffer = self._buffer, []
        self._buffered = 0.0
        if self._sender is None or not self._sender.is_alive():
            self._sender = threading.Thread(
                target=self._send_loop, name="lazyflow-dask-sender", daemon=True
            )
            self._sender.start()
        self._queue.put(jobs)

    # -- sender thread -------------------------------------------------------------------
    def _send_loop(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            try:
                self.start()
                if item and isinstance(item[0], _Bundle):
                    for bundle in item:  # resubmitted after a lost worker
                        self._submit_bundle(bundle)
                else:
                    self._send_jobs(item)  # type: ignore[arg-type]
            except BaseException as exc:  # never leave a job without an outcome
                self._fail_all(item, exc)

    def _fail_all(self, item: list[Any], exc: BaseException) -> None:
        """Fail every job of `item` (one error each: the evaluator adds notes to it)."""
        for entry in item:
            specs, futures = (
                (entry.specs, entry.futures)
                if isinstance(entry, _Bundle)
                else ([entry[0]], [entry[1]])
            )
            for spec, fut in zip(specs, futures, strict=True):
                if fut.done():
                    continue
                if isinstance(exc, ExecutorError | RunCancelled):
                    error: BaseException = type(exc)(*exc.args)
                else:
                    error = ExecutorError(
                        f"task {spec.task.name!r}: the Dask executor could not submit job "
                        f"{spec.job_id} ({type(exc).__name__}: {exc})."
                    )
                error.__cause__ = exc
                fut.set_result(JobOutcome(error=error))

    def _probe(self, jobs: list[tuple[JobSpec, Future[JobOutcome]]]) -> tuple[list[Any], list[Any]]:
        """Split `jobs` into those to bundle and those to send alone; of a task not timed
        yet, one call per worker thread goes alone and the rest are held until one of
        those comes back (`_release`), timed.

        A bundle's results come back together, when its last call ends: a bundle of
        untimed calls that each take seconds would keep a minute of finished results in
        a worker, lost if the run dies (docs/store.md states the bound). Timed calls
        are bundled by their measured run time, ~`BUNDLE_SECONDS` of work a bundle."""
        bundled: list[tuple[JobSpec, Future[JobOutcome]]] = []
        alone: list[tuple[JobSpec, Future[JobOutcome]]] = []
        with self._lock:
            for job in jobs:
                name = job[0].task.name
                if self._times.mean(name) is not None:
                    bundled.append(job)
                    continue
                sent = self._probes.get(name, 0)
                if sent < self._threads:
                    self._probes[name] = sent + 1
                    alone.append(job)
                else:
                    self._held.setdefault(name, []).append(job)
        return bundled, alone

    def _release(self, bundle: _Bundle) -> None:
        """A bundle ended: send the jobs held for its tasks' timing (`_probe`). Ended
        timed, they are bundled; ended untimed (its worker was lost), the next of them go
        alone again."""
        with self._lock:
            jobs = []
            for name in {spec.task.name for spec in bundle.specs}:
                jobs += self._held.pop(name, [])
                self._probes.pop(name, None)
        if jobs:
            self._queue.put(jobs)

    def _send_jobs(self, jobs: list[tuple[JobSpec, Future[JobOutcome]]]) -> None:
        idle = not self._live
        self._refresh_workers()
        self._ship_code(force=idle)
        jobs, alone = self._probe(jobs)
        groups: dict[tuple[tuple[str, float], ...], list[tuple[JobSpec, Future[JobOutcome]]]] = {}
        for job in jobs:
            groups.setdefault(tuple(sorted(_resources(job[0]).items())), []).append(job)
        for spec, fut in alone:
            resources = _resources(spec)
            if not self._refused(spec, fut, resources):
                self._submit_bundle(_Bundle([spec], [fut], resources))
        for key, group in groups.items():
            resources = dict(key)
            if self._unmet(group[0][0].task.name, resources):
                for spec, fut in group:
                    self._refused(spec, fut, resources)
                continue
            costs = [self._times.cost(spec.task.name) for spec, _ in group]
            target = min(BUNDLE_SECONDS, sum(costs) / (2 * self._threads))
            for start, stop in cut(costs, target, MAX_BUNDLE_JOBS):
                part = group[start:stop]
                self._submit_bundle(_Bundle([s for s, _ in part], [f for _, f in part], resources))

    def _refused(self, spec: JobSpec, fut: Future[JobOutcome], resources: dict[str, float]) -> bool:
        """Fail the job if no worker offers its `resources`; whether it did."""
        unmet = self._unmet(spec.task.name, resources)
        if unmet:
            fut.set_result(JobOutcome(error=ExecutorError(unmet)))
        return unmet is not None

    def _submit_bundle(self, bundle: _Bundle) -> None:
        client = self._client
        dump, refs = (dumps, []) if bundle.send_values else self._held_results.dumper()
        parts = pack(bundle.specs, dump)
        bundle.held = [ref[0] for ref in refs]
        arg: Any = parts
        if sum(len(p[1]) for p in parts if isinstance(p, tuple)) > SCATTER_BYTES:
            arg = client.scatter([parts], direct=self.direct, hash=False)[0]
        first = bundle.specs[0].task
        key = f"lazyflow_{first.short_name}-{uuid.uuid4().hex}"
        dfut = client.submit(
            _run_bundle,
            arg,
            *([refs] if refs else []),
            key=key,
            pure=False,
            resources=bundle.resources or None,
            retries=0,
        )
        with self._lock:
            self._live[key] = (dfut, bundle)
        dfut.add_done_callback(lambda f, b=bundle: self._done(f, b))

    def _refresh_workers(self) -> None:
        now = time.monotonic()
        if now - self._workers_seen < WORKERS_REFRESH_SECONDS:
            return
        workers = self._client.scheduler_info(n_workers=-1).get("workers", {})
        self._workers = dict(workers)
        self._threads = max(1, sum(int(w.get("nthreads", 1)) for w in workers.values()))
        self._workers_seen = now

    def _unmet(self, task_name: str, resources: dict[str, float]) -> str | None:
        """Why no connected worker can run calls needing `resources` (None: some can, or
        no worker is connected yet, so Dask holds them until one that can joins)."""
        if not resources or not self._workers:
            return None
        offers = [w.get("resources") or {} for w in self._workers.values()]
        if any(all(o.get(k, 0) >= v for k, v in resources.items()) for o in offers):
            return None
        wanted = ",".join(f"{k}={v:g}" for k, v in resources.items())
        return (
            f"task {task_name!r} asks for resources {resources!r} but no worker of the "
            f"Dask cluster offers them (workers offer {offers!r}). Start workers that do: "
            f'`dask worker ADDRESS --resources "{wanted}"`, LocalCluster(resources={{...}}) '
            f'or SLURMCluster(worker_extra_args=["--resources", "{wanted}"]); or change '
            "@task(resources=...)."
        )

    def _ship_code(self, force: bool) -> None:
        """Register the current code package as a worker plugin, if it changed."""
        now = time.monotonic()
        if not force and now - self._code_checked < CODE_CHECK_SECONDS:
            return
        self._code_checked = now
        roots = codepackage.user_roots()
        sig = codepackage.signature(roots)
        if sig == self._code_signature:
            return
        package = codepackage.build(roots)
        if package is not None:
            plugin = _CodePlugin(package.digest, package.data, package.roots)
            if plugin.name not in self._code_plugins:
                self._client.register_plugin(plugin, name=plugin.name)
                for old in self._code_plugins:  # the scheduler keeps only the current code
                    with contextlib.suppress(Exception):
                        self._client.unregister_worker_plugin(old)
                self._code_plugins = {plugin.name}
                log.info(
                    "lazyflow: code package %s (%d KiB: %s) sent to the Dask workers",
                    package.digest[:12],
                    len(package.data) // 1024,
                    ", ".join(package.roots),
                )
        self._code_signature = sig

    # -- Dask callback thread ------------------------------------------------------------
    def _done(self, dfut: Any, bundle: _Bundle) -> None:
        """A bundle's Dask task ended: resolve its jobs, or resubmit them if lost."""
        with self._lock:
            self._live.pop(dfut.key, None)
            closing = self._closing
        try:
            if closing and dfut.status != "finished":
                self._resolve(bundle, RunCancelled("the run was cancelled"))
                return
            if dfut.status == "finished":
                try:
                    wires = self._client.gather(dfut, direct=self.direct)
                except Exception as exc:  # the worker holding the result went away
                    self._failed(bundle, exc, lost=_is_lost(exc))
                    return
                self._finished(dfut, bundle, wires)
                return
            if dfut.status == "error":
                error = dfut.exception()
                self._failed(bundle, error, lost=_is_lost(error))
            else:  # cancelled by someone else: the scheduler restarted, or a client did
                self._failed(bundle, RuntimeError(f"Dask task {dfut.key} {dfut.status}"))
        except BaseException as exc:  # never leave a job without an outcome: runs would hang
            self._resolve(bundle, exc)
        finally:
            self._release(bundle)  # (after its run times are recorded)

    def _finished(self, dfut: Any, bundle: _Bundle, wires: list[Wire]) -> None:
        """Resolve the jobs of a finished bundle; keep its large results on the cluster;
        send again, with their values, the calls whose held input was lost."""
        outs = [outcome(wire) for wire in wires]
        self._held_results.hold(dfut, wires, [out.value for out in outs])
        again = _Bundle([], [], bundle.resources, bundle.lost, list(bundle.errors), True)
        for out, spec, fut in zip(outs, bundle.specs, bundle.futures, strict=True):
            if isinstance(out.error, HeldCopyLost):
                again.specs.append(spec)
                again.futures.append(fut)
                continue
            self._times.record(spec.task.name, out.started, out.finished)
            fut.set_result(out)
        if again.specs:
            self._held_results.forget(bundle.held)
            log.info("lazyflow: %s; sending its value again", again.specs[0].task.name)
            if self._closing:
                self._resolve(again, RunCancelled("the executor was shut down"))
            else:
                self._queue.put([again])

    def _failed(self, bundle: _Bundle, exc: BaseException, lost: bool = True) -> None:
        """The bundle's Dask task failed with `exc`: resubmit its calls if the worker
        was `lost` (within the budget), else fail them with an `ExecutorError`."""
        if not lost:
            self._resolve(bundle, self._error(bundle, exc, lost=False))
            return
        bundle.lost += 1
        bundle.errors.append(f"{type(exc).__name__}: {exc}")
        if self._closing:  # no sender to resubmit through any more
            self._resolve(bundle, RunCancelled("the executor was shut down"))
            return
        if bundle.lost > self.infrastructure_retries:
            for spec, fut in zip(bundle.specs, bundle.futures, strict=True):
                fut.set_result(JobOutcome(error=self._error(bundle, exc, lost=True, spec=spec)))
            return
        names = sorted({spec.task.name for spec in bundle.specs})
        log.warning(
            "lazyflow: a Dask worker running %d call(s) of %s was lost (%s); resubmitting "
            "(%d of %d)",
            len(bundle.specs),
            ", ".join(names),
            bundle.errors[-1],
            bundle.lost,
            self.infrastructure_retries,
        )
        self._held_results.forget([f for f in bundle.held if f.status != "finished"])
        alone = [
            _Bundle([spec], [fut], bundle.resources, bundle.lost, list(bundle.errors))
            for spec, fut in zip(bundle.specs, bundle.futures, strict=True)
        ]
        self._queue.put(alone)

    def _error(
        self, bundle: _Bundle, exc: BaseException, *, lost: bool, spec: JobSpec | None = None
    ) -> ExecutorError:
        spec = spec or bundle.specs[0]
        name = spec.task.name
        if lost:
            error = ExecutorError(
                f"task {name!r} (job {spec.job_id}) did not finish: its Dask worker was lost "
                f"{bundle.lost} time(s) (last: {bundle.errors[-1]}). A worker dies when a "
                "call runs out of memory, crashes in native code, or its machine goes away; "
                f"it was resubmitted {self.infrastructure_retries} time(s) "
                "(DaskExecutor(infrastructure_retries=...)). See the worker logs; give the "
                'task a worker with more memory (@task(resources={"memory": ...})).'
            )
        else:
            error = ExecutorError(
                f"task {name!r}: Dask could not run the bundle of job {spec.job_id} "
                f"({type(exc).__name__}: {exc}). Check that the workers have lazyflow and the "
                "libraries the task needs installed, at the versions used here."
            )
        error.__cause__ = exc
        return error

    def _resolve(self, bundle: _Bundle, exc: BaseException) -> None:
        self._fail_all([bundle], exc)

    # -- shutting down ---------------------------------------------------------------
    def shutdown(self, *, cancel: bool = False) -> None:
        """Wait for (or with `cancel`, cancel) the Dask tasks in flight, then disconnect;
        a cluster or client the executor started is closed."""
        if cancel:
            dropped, self._buffer = self._buffer, []
            for _, fut in dropped:
                fut.set_result(JobOutcome(error=RunCancelled("the run was cancelled")))
        else:
            self.flush()
        self._buffered = 0.0
        sender = self._sender
        if sender is not None:
            if cancel:
                with self._lock:
                    self._closing = True
            self._queue.put(None)
            sender.join()
            self._sender = None
        self._fail_held()
        with self._lock:
            self._closing = True
            live = [dfut for dfut, _ in self._live.values()]
            client = self._client
        if client is not None and live:
            if cancel:
                with contextlib.suppress(Exception):
                    client.cancel(live, force=True)
            else:
                from distributed import wait

                with contextlib.suppress(Exception):
                    wait(live)
        self._fail_held()
        self._close(client)

    def _fail_held(self) -> None:
        """At shutdown: fail the jobs still held or queued (no sender will send them)."""
        with self._lock:
            items: list[list[Any]] = list(self._held.values())
            self._held.clear()
            self._probes.clear()
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item:
                items.append(item)
        for item in items:
            self._fail_all(item, RunCancelled("the executor was shut down"))

    def _close(self, client: Any) -> None:
        with self._lock:
            self._client = None
            cluster, self._cluster = self._cluster, None
            self._live = {}
            self._held_results.release()
            self._code_plugins = set()
            self._code_signature = None
            self._workers, self._workers_seen = {}, 0.0
        if client is not None and self._own_client:
            with contextlib.suppress(Exception):
                client.close()
        if cluster is not None:
            with contextlib.suppress(Exception):
                cluster.close()

    def __repr__(self) -> str:
        return f"DaskExecutor({self.target!r})"
