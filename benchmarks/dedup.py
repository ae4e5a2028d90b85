"""Cost of cross-process dedup: a cold fan-out with ``dedup="store"`` against without.

``python -m benchmarks.dedup [N ...]`` (default 1000 10000) runs, for each N and each
store (a SQLite file; PostgreSQL when it answers, in a fresh schema), a cold
``total([inc(i) for i in range(N)])`` in a fresh process with dedup off and on, three
times each, and prints the best wall time and the per-job overhead (wall / jobs). Wall
time is the `Scheduler` and its store opened, plus the run; imports are not timed. With
dedup on, the run also takes its leases (one transaction per wave: one here) and its
store writer deletes them as the results are stored.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

from benchmarks import pg

CHILD = """
import json, sys, time
from lazyflow_core import Scheduler, task
import lazyflow_core.store

@task
def inc(x: int) -> int:
    return x + 1

@task
def total(xs: list[int]) -> int:
    return sum(xs)

db, n, dedup = sys.argv[1], int(sys.argv[2]), sys.argv[3]
t0 = time.perf_counter()
with Scheduler(db=db, dedup=dedup) as sched:
    assert sched.run(total([inc(i) for i in range(n)])) == n * (n + 1) // 2
    wall = time.perf_counter() - t0
    assert sched.last_run.executed == n + 1
print(json.dumps({"wall": wall, "jobs": n + 1}))
"""


def _case(workdir: Path, db: str, n: int, dedup: str) -> float:
    script = workdir / "child.py"
    script.write_text(CHILD)
    out = subprocess.run(
        [sys.executable, str(script), db, str(n), dedup],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return float(json.loads(out.strip().splitlines()[-1])["wall"])


def _stores(workdir: Path) -> list[tuple[str, object]]:
    stores: list[tuple[str, object]] = [
        ("sqlite", lambda: f"sqlite:///{workdir}/{uuid.uuid4().hex}.db")
    ]
    if pg.check() is None:
        import psycopg

        def fresh() -> str:
            schema = pg.PREFIX + "dedup_" + uuid.uuid4().hex[:8]
            with psycopg.connect(pg.dsn(), autocommit=True) as conn:
                conn.execute(f'CREATE SCHEMA "{schema}"')
            created.append(schema)
            return pg.sqlalchemy_url(schema)

        stores.append(("postgres", fresh))
    return stores


created: list[str] = []


def main(sizes: list[int]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        try:
            for name, fresh in _stores(workdir):
                for n in sizes:
                    best = {}
                    for dedup in ("run", "store"):
                        best[dedup] = min(_case(workdir, fresh(), n, dedup) for _ in range(3))  # type: ignore[operator]
                    off, on = best["run"], best["store"]
                    print(
                        f"{name:8} n={n:>6}  off {off:6.3f} s ({off / (n + 1) * 1e6:5.1f} µs/job)"
                        f"  on {on:6.3f} s ({on / (n + 1) * 1e6:5.1f} µs/job)  ratio {on / off:.2f}"
                    )
        finally:
            if created:
                import psycopg

                with psycopg.connect(pg.dsn(), autocommit=True) as conn:
                    for schema in created:
                        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [1000, 10000])
