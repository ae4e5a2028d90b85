"""The scratch layout shared by the Batch executors and their worker.

Everything a remote job needs or produces goes through the scratch location (an fsspec
URL: ``s3://``, ``gs://``, or a local directory / ``memory://`` in tests), never
through a Batch API, which only carries the job's scratch prefix::

    {scratch}/code/{sha256}.zip          the user's code (`codepackage`), shared by runs
    {scratch}/runs/{key}/index           call hashes of each bundle (for re-attaching)
    {scratch}/runs/{key}/in/{i}          bundle i: lazyflow version, code URL, the jobs
    {scratch}/runs/{key}/out/{i}/{j}-{k} outcomes of jobs j..k-1 of bundle i, as they finish
    {scratch}/runs/{key}/out/{i}/all     every outcome of bundle i, once all are done

One array job runs the bundles of one ``runs/{key}``; its child i (``AWS_BATCH_JOB_
ARRAY_INDEX``, ``BATCH_TASK_INDEX``) runs bundle i. Outcomes are written as the jobs
finish: one file per job when jobs are long, or one per group of jobs that finished
within the worker's `WRITE_EVERY` when they are tiny (a request per tiny job would cost
far more than the job). They survive a container killed half-way: only the jobs without
one run again. The ``all`` file lets the scheduler read a finished bundle in one
request. Outcomes larger than `INLINE_OUTCOME_BYTES` are left out of ``all`` (read from
their own file), so that big values are written once.

Files are pickles of plain built-in values (dicts, lists, bytes), so that the worker can
read a bundle's header before it has the user's code on its path.
"""

from __future__ import annotations

import pickle
from collections.abc import Sequence
from typing import Any

from .wire import Wire

INLINE_OUTCOME_BYTES = 1 << 20
"""Outcomes up to this size are repeated in a bundle's ``all`` file."""

INDEX_ENV = ("AWS_BATCH_JOB_ARRAY_INDEX", "BATCH_TASK_INDEX")
"""Environment variables that give a worker its bundle index, per backend."""


def bundle_path(prefix: str, index: int) -> str:
    return f"{prefix}/in/{index}"


def outcome_dir(prefix: str, index: int) -> str:
    return f"{prefix}/out/{index}"


def chunk_path(prefix: str, index: int, start: int, stop: int) -> str:
    """The file of the outcomes of jobs `start` to `stop` - 1 of bundle `index`."""
    return f"{prefix}/out/{index}/{start}-{stop}"


def chunk_range(path: str) -> range | None:
    """The jobs whose outcomes a file of `outcome_dir` holds (None: not a chunk)."""
    start, _, stop = path.rsplit("/", 1)[-1].partition("-")
    if not (start.isdigit() and stop.isdigit()):
        return None
    return range(int(start), int(stop))


def all_path(prefix: str, index: int) -> str:
    return f"{prefix}/out/{index}/all"


def index_path(prefix: str) -> str:
    return f"{prefix}/index"


def dump(obj: Any) -> bytes:
    return pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)


def bundle_file(version: str, code: str | None, jobs: int, parts: bytes) -> bytes:
    """A bundle's input: the header the worker checks, then its jobs (`wire.pack`'s parts,
    pickled again so that the header reads without the user's code)."""
    return dump({"lazyflow": version, "code": code, "jobs": jobs, "parts": parts})


def all_file(wires: list[Wire]) -> bytes:
    """The outcomes of a whole bundle; big ones as None (read from their own file)."""
    return dump([w if len(w[3] or b"") <= INLINE_OUTCOME_BYTES else None for w in wires])


def write(fs: Any, files: dict[str, bytes]) -> None:
    """Write `files` (path -> content) in one call; object stores send them concurrently.
    A local directory gets the parent directories it needs (object stores have none)."""
    if not files:
        return
    protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    if protocol in ("file", "local"):
        for parent in {path.rsplit("/", 1)[0] for path in files}:
            fs.makedirs(parent, exist_ok=True)
    if len(files) == 1:
        ((path, data),) = files.items()
        fs.pipe_file(path, data)
    else:
        fs.pipe(files)


def read_outcomes(
    fs: Any, bundles: list[tuple[str, int, bool, Sequence[object | None]]]
) -> list[dict[int, Wire]]:
    """The outcomes on scratch of bundles that ended, as `{job: wire}` per bundle.

    Each bundle is `(prefix, index, succeeded, jobs)`; a None in `jobs` is a position
    nobody waits for. A bundle that succeeded is read from its ``all`` file (one request
    for all bundles, concurrent on object stores); the chunk files are listed and read
    only for the bundles that have no ``all`` file (their container died) or whose
    ``all`` left big outcomes out.
    """
    alls = [all_path(prefix, i) for prefix, i, ok, _ in bundles if ok]
    got = fs.cat(alls, on_error="omit") if alls else {}
    found: list[dict[int, Wire]] = []
    partial = []
    for n, (prefix, index, _, jobs) in enumerate(bundles):
        wires: dict[int, Wire] = {}
        blob = got.get(all_path(prefix, index))
        if blob is not None:
            wires = {j: w for j, w in enumerate(pickle.loads(blob)) if w is not None}
        found.append(wires)
        if any(job is not None and j not in wires for j, job in enumerate(jobs)):
            partial.append(n)
    chunks: dict[str, tuple[int, range]] = {}
    for n in partial:
        prefix, index = bundles[n][:2]
        try:
            listed = fs.ls(outcome_dir(prefix, index), detail=False)
        except FileNotFoundError:
            continue
        for path in listed:
            jobs_range = chunk_range(path)
            if jobs_range is not None:
                chunks[fs._strip_protocol(path)] = (n, jobs_range)
    for path, blob in (fs.cat(list(chunks), on_error="omit") if chunks else {}).items():
        n, jobs_range = chunks[fs._strip_protocol(path)]
        for j, wire in zip(jobs_range, pickle.loads(blob), strict=False):
            found[n].setdefault(j, wire)
    return found
