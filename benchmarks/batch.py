"""Per-job overhead of the executors at 1k and 10k tiny calls, Batch executors included.

``python -m benchmarks.batch [--sizes 1000,10000] [--executors threads,...] [--readme]``

Each case runs in a fresh process: ``main(n)`` = ``total([inc(i) for i in range(n)])``
with ``inc`` on the executor under test (``threads``, ``processes``, ``aws_batch`` or
``gcp_batch``), a new SQLite store, cold cache. Overhead per call = (wall - the same
sum in plain Python) / (n + 2). The Batch executors run against the test set-ups of
tests/batch (moto's Batch and S3 server, the fake Cloud Batch API and the GCS emulator,
all in the case's process; containers are host subprocesses of the real worker), with
``poll_seconds=0.2`` and ``linger=0.1``: the figures are lazyflow's own cost per job
(bundling, scratch I/O, worker start-up, outcome files, polling), not a cloud's latency,
which adds a container's scheduling and start (tens of seconds) per array.

``--readme`` rewrites the section between the BATCH markers of benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from typing import Any

from benchmarks.machine import REPO, describe, one_line

MARKER = "BATCH-RESULT "
BEGIN = "<!-- BEGIN BATCH RESULTS: written by `python -m benchmarks.batch --readme` -->"
END = "<!-- END BATCH RESULTS -->"
FAST = {"poll_seconds": 0.2, "linger": 0.1}


@contextlib.contextmanager
def _executor(name: str) -> Iterator[Any]:
    """The executor under test, with the servers it needs running in this process."""
    if name in ("threads", "processes"):
        yield name
        return
    sys.path.insert(0, str(REPO))
    if name == "aws_batch":
        from lazyflow_core.executors import AWSBatchExecutor
        from tests.batch.moto_batch import moto_batch_server

        with moto_batch_server() as aws:
            os.environ.update(aws.environment)
            with AWSBatchExecutor(aws.queue, aws.job_definition, aws.scratch, **FAST) as ex:
                yield ex  # shut down (its monitor stopped) before the servers stop
    elif name == "gcp_batch":
        from tests.batch.gcp_fake import gcp_batch_server

        with gcp_batch_server() as gcp:
            os.environ.update(gcp.environment)
            with gcp.executor(**FAST) as ex:
                yield ex
    else:
        raise SystemExit(f"unknown executor {name!r}")


def run_case(name: str, n: int, workdir: str) -> dict[str, Any]:
    """One case, in this process: the timed run and what it submitted."""
    from benchmarks import wl_batch
    from lazyflow_core import Scheduler

    t = time.perf_counter()
    plain = sum(i + 1 for i in range(n))
    plain_wall = time.perf_counter() - t
    with _executor(name) as executor:
        db = f"sqlite:///{os.path.join(workdir, 'bench.db')}"
        t0 = time.perf_counter()
        scheduler = Scheduler(db=db, executors={"batch": executor})
        value = scheduler.run(wl_batch.main(n))
        wall = time.perf_counter() - t0
        summary = scheduler.last_run
        scheduler.close()
        arrays = len(getattr(executor, "submitted", []))
    if value != plain:
        raise SystemExit(f"{name} N={n}: wrong result {value!r}, expected {plain!r}")
    calls = n + 2
    return {
        "executor": name,
        "n": n,
        "wall": wall,
        "calls": calls,
        "overhead_us": (wall - plain_wall) / calls * 1e6,
        "executed": summary.executed if summary else None,
        "arrays": arrays,
    }


def _child(name: str, n: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="lf-bench-batch-") as workdir:
        proc = subprocess.run(
            [sys.executable, "-m", "benchmarks.batch", "--case", name, str(n), workdir],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=1800,
        )
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(MARKER):
            return dict(json.loads(line[len(MARKER) :]))
    return {"executor": name, "n": n, "error": proc.stderr[-2000:] or f"exit {proc.returncode}"}


def markdown(results: list[dict[str, Any]], info: dict[str, Any]) -> str:
    rows = [
        "| executor | calls | wall | overhead per call | arrays submitted |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        if "error" in r:
            rows.append(f"| {r['executor']} | {r['n']} | error | {r['error'][:80]!r} | |")
            continue
        arrays = r["arrays"] if r["executor"].endswith("_batch") else "—"
        rows.append(
            f"| {r['executor']} | {r['calls']:,} | {r['wall']:.2f} s | "
            f"{r['overhead_us']:,.0f} µs | {arrays} |"
        )
    return "\n".join([one_line(info), "", *rows, ""])


def write_readme(text: str) -> None:
    path = REPO / "benchmarks" / "README.md"
    readme = path.read_text()
    start, end = readme.index(BEGIN) + len(BEGIN), readme.index(END)
    path.write_text(readme[:start] + "\n" + text + readme[end:])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.batch", description=__doc__)
    parser.add_argument("--sizes", default="1000,10000")
    parser.add_argument("--executors", default="threads,processes,aws_batch,gcp_batch")
    parser.add_argument("--readme", action="store_true", help="rewrite benchmarks/README.md")
    parser.add_argument("--case", nargs=3, metavar=("EXECUTOR", "N", "WORKDIR"), help="internal")
    args = parser.parse_args(argv)
    if args.case:
        name, n, workdir = args.case
        print(MARKER + json.dumps(run_case(name, int(n), workdir)), flush=True)
        return 0
    results = []
    for n in (int(x) for x in args.sizes.split(",")):
        for name in args.executors.split(","):
            result = _child(name, n)
            print(json.dumps(result), flush=True)
            results.append(result)
    text = markdown(results, describe())
    print(text)
    if args.readme:
        write_readme(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
