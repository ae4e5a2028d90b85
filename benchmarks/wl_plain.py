"""The floor: each workload as plain Python function calls, nothing cached or recorded.

The lazyflow and redun workloads compute exactly these values; the per-job overhead of a
system is ``(its wall time - this wall time) / jobs``. Standard library only.
"""

from __future__ import annotations

import hashlib
import os
import time
from typing import Any

from benchmarks import data


def inc(x: int) -> int:
    return x + 1


def total(xs: list[int]) -> int:
    return sum(xs)


def main_(n: int) -> int:
    return total([inc(i) for i in range(n)])


def fanout(n: int, flat: bool = False, **_: Any) -> dict[str, Any]:
    """``main(n) = total([inc(i) for i in range(n)])`` as plain calls."""
    t0 = time.perf_counter()
    value = total([inc(i) for i in range(n)]) if flat else main_(n)
    wall = time.perf_counter() - t0
    return {"wall": wall, "calls": n + (1 if flat else 2), "value": value}


def chain(depth: int, **_: Any) -> dict[str, Any]:
    """``x = inc(x)`` repeated ``depth`` times."""
    t0 = time.perf_counter()
    x = 0
    for _i in range(depth):
        x = inc(x)
    wall = time.perf_counter() - t0
    return {"wall": wall, "calls": depth, "value": x}


def hash_bytes(size: int, **_: Any) -> dict[str, Any]:
    """hashlib.sha256 over a ``size``-byte value: the stdlib floor for content hashing."""
    value = data.make_bytes(size)
    t0 = time.perf_counter()
    digest = hashlib.sha256(value).hexdigest()
    wall = time.perf_counter() - t0
    return {"wall": wall, "bytes": size, "value": digest[:16]}


def hash_blake2b(size: int, **_: Any) -> dict[str, Any]:
    """hashlib.blake2b over a ``size``-byte value (another stdlib floor)."""
    value = data.make_bytes(size)
    t0 = time.perf_counter()
    digest = hashlib.blake2b(value).hexdigest()
    wall = time.perf_counter() - t0
    return {"wall": wall, "bytes": size, "value": digest[:16]}


def hash_file(size: int, workdir: str, **_: Any) -> dict[str, Any]:
    """hashlib.file_digest(sha256) over a ``size``-byte file already in the page cache."""
    path = data.make_file(workdir, size)
    t0 = time.perf_counter()
    with open(path, "rb") as fh:
        digest = hashlib.file_digest(fh, "sha256").hexdigest()
    wall = time.perf_counter() - t0
    return {"wall": wall, "bytes": size, "value": digest[:16]}


def stat_files(count: int, workdir: str, **_: Any) -> dict[str, Any]:
    """One ``os.stat`` per file: the floor for stat-based file hashing."""
    paths = data.make_small_files(workdir, count)
    t0 = time.perf_counter()
    stats = [os.stat(p) for p in paths]
    wall = time.perf_counter() - t0
    return {"wall": wall, "files": count, "value": len(stats)}
