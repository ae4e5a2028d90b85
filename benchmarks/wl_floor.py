"""The measured floor of a durable cache (issue 18): per job, a bare call, a dict insert,
a small BLAKE3 hash and one SQLite row, with nothing else around it.

``mode="write"`` is the floor of a cold job: hash the call's key, call, keep the result
in a dict, and write one row (digest, value) to a SQLite file, all rows in one
transaction (``executemany``). ``mode="read"`` is the floor of a cache hit over the
file the write left: hash, one ``SELECT`` by digest (indexed before the clock starts),
dict insert, no call. Where lazyflow misses a per-job target, the report puts it beside
this figure: what any engine that hashes, calls and records each job must pay here.
"""

from __future__ import annotations

import os
import sqlite3
import time
from typing import Any


def inc(x: int) -> int:
    return x + 1


def floor(n: int, workdir: str, mode: str = "write", **_: Any) -> dict[str, Any]:
    """``n`` jobs at the floor; ``value`` is the sum of the results."""
    from blake3 import blake3

    path = os.path.join(workdir, "floor.db")
    if mode == "write" and os.path.exists(path):
        os.remove(path)
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE IF NOT EXISTS calls (id INTEGER PRIMARY KEY, digest BLOB, value)")
    if mode == "read":
        con.execute("CREATE INDEX IF NOT EXISTS calls_digest ON calls (digest)")
        con.commit()
    results: dict[bytes, int] = {}
    t0 = time.perf_counter()
    if mode == "write":
        rows = []
        for i in range(n):
            digest = blake3(b"inc:%d" % i).digest(20)
            value = inc(i)
            results[digest] = value
            rows.append((digest, value))
        con.executemany("INSERT INTO calls (digest, value) VALUES (?, ?)", rows)
        con.commit()
    else:
        select = "SELECT value FROM calls WHERE digest = ?"
        for i in range(n):
            digest = blake3(b"inc:%d" % i).digest(20)
            results[digest] = con.execute(select, (digest,)).fetchone()[0]
    wall = time.perf_counter() - t0
    con.close()
    return {"wall": wall, "calls": n, "value": sum(results.values())}
