"""PostgreSQL against SQLite, two lazyflow trees alternating: the 10k fan-out cold and cached.

``python -m benchmarks.pg_ab ROUNDS before=TREE after=TREE [--n 10000] [--db postgres,sqlite]``

Each TREE is a lazyflow checkout (e.g. ``git archive REV | tar -x -C /tmp/before``),
put first on ``sys.path`` of a fresh process per case. Per round and tree, per store, a
cold run (a fresh SQLite file, or a fresh PostgreSQL schema on ``LAZYFLOW_BENCH_PG``)
and then a cached one over it, as ``benchmarks.wl_lazyflow.fanout`` times them: imports
(``lazyflow_core``, its store module, psycopg and its SQLAlchemy dialect) before the
clock; timed: ``Scheduler(db=...)``, the store's opening and ``run(main(n))``. Reported:
wall, start-up (store open), after evaluation (writer drain), the scheduler thread's CPU
(``time.thread_time`` around ``run``), the process's CPU, and for PostgreSQL the
server's (the postmaster's reaped backends and its writer processes, from ``/proc``:
other clients of the same server count too, so run it on a server of its own), as
minimum / median over the rounds. The README section "PostgreSQL, round two" used it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
WORK = Path("/tmp/lazyflow-pg-ab")


def server_cpu() -> float:
    """CPU seconds of the local PostgreSQL server: ended backends, background writers."""
    try:
        pids = sorted(
            int(p)
            for p in subprocess.run(
                ["pgrep", "postgres"], capture_output=True, text=True
            ).stdout.split()
        )
    except OSError:
        return 0.0
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            if pid == pids[0]:  # the postmaster: its own and its reaped children's
                total += sum(int(f) for f in fields[11:15])
            elif any(
                w in Path(f"/proc/{pid}/cmdline").read_text() for w in ("writer", "checkpointer")
            ):
                total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def case(tree: str, db: str, run: str, n: int, workdir: str) -> dict[str, float]:
    """One case, in this (fresh) process, with `tree`'s lazyflow first on the path: the
    workload and stores of `benchmarks.wl_lazyflow` (imported before the clock)."""
    sys.path.insert(0, tree)
    from benchmarks import wl_lazyflow
    from lazyflow_core import Scheduler

    wl_lazyflow.preload_driver(db)
    os.makedirs(workdir, exist_ok=True)
    url = wl_lazyflow.db_url(workdir, db, fresh=run == "cold")
    if db != "postgres" and run == "cold":
        for suffix in ("-wal", "-shm", ""):
            with contextlib.suppress(FileNotFoundError):
                os.remove(os.path.join(workdir, "lazyflow.db") + suffix)
    expr = wl_lazyflow.main(n)
    server0, process0, t0 = server_cpu(), time.process_time(), time.perf_counter()
    scheduler = Scheduler(db=url)
    scheduler.store  # noqa: B018  (opens the store)
    opened = time.perf_counter() - t0
    thread0 = time.thread_time()
    value = scheduler.run(expr)
    thread = time.thread_time() - thread0
    wall, process = time.perf_counter() - t0, time.process_time() - process0
    summary = scheduler.last_run
    assert value == sum(range(1, n + 1)), value
    assert summary.executed == (n + 2 if run == "cold" else 0), summary
    scheduler.close()
    time.sleep(0.3)  # the backends end and are reaped
    return {
        "wall": wall,
        "startup": opened,
        "after": wall - opened - summary.seconds,
        "thread_cpu": thread,
        "process_cpu": process,
        "server_cpu": server_cpu() - server0 if db == "postgres" else 0.0,
    }


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--case":
        tree, db, run, n, workdir = sys.argv[2:7]
        print(json.dumps(case(tree, db, run, int(n), workdir)))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rounds", type=int)
    parser.add_argument("trees", nargs="+", help="LABEL=PATH")
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--db", default="postgres,sqlite")
    args = parser.parse_args()
    trees = [t.split("=", 1) for t in args.trees]
    results: dict[tuple[str, str, str], list[dict[str, float]]] = {}
    for _round in range(args.rounds):
        for label, tree in trees:
            for db in args.db.split(","):
                for run in ("cold", "cached"):
                    out = subprocess.run(
                        [
                            sys.executable,
                            "-m",
                            "benchmarks.pg_ab",
                            "--case",
                            tree,
                            db,
                            run,
                            str(args.n),
                            str(WORK / f"{label}-{db}"),
                        ],
                        capture_output=True,
                        text=True,
                        cwd=HERE.parent,
                        check=True,
                    )
                    row = json.loads(out.stdout.strip().splitlines()[-1])
                    results.setdefault((db, run, label), []).append(row)
    from benchmarks import pg

    pg.drop_schemas(WORK)  # the PostgreSQL stores made above
    keys = ("wall", "startup", "after", "thread_cpu", "process_cpu", "server_cpu")
    print("| case | tree | " + " | ".join(f"{k}, ms" for k in keys) + " |")
    print("| --- | --- |" + " --- |" * len(keys))
    for (db, run, label), rows in sorted(results.items()):
        cells = []
        for key in keys:
            values = [r[key] * 1000 for r in rows]
            cells.append(f"{min(values):.0f} / {statistics.median(values):.0f}")
        print(f"| {db} {run} | {label} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
