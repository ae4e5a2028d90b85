"""joblib.Memory; runs under ``.venv-joblib``.

joblib caches a function's results on disk by its code and arguments; it has no graph
and no executor, so the fan-out and the chain are plain calls of the cached functions,
one after the other. The cache lives in the case's work directory: the cached re-run is
a fresh process over the directory its cold run filled. ``executed`` counts the calls
whose body ran (0 in a cached re-run). Timed: creating the ``Memory`` and the calls.
"""

from __future__ import annotations

import os
import time
from typing import Any

from joblib import Memory

EXECUTED: list[int] = []


def inc(x: int) -> int:
    EXECUTED.append(1)
    return x + 1


def total(xs: list[int]) -> int:
    EXECUTED.append(1)
    return sum(xs)


def _memory(workdir: str) -> Memory:
    return Memory(os.path.join(workdir, "joblib-cache"), verbose=0)


def fanout(n: int, workdir: str, **_: Any) -> dict[str, Any]:
    """``total([inc(i) for i in range(n)])`` through ``Memory.cache``, cold or cached."""
    t0 = time.perf_counter()
    memory = _memory(workdir)
    cinc, ctotal = memory.cache(inc), memory.cache(total)
    value = ctotal([cinc(i) for i in range(n)])
    wall = time.perf_counter() - t0
    return {"wall": wall, "calls": n + 1, "value": value, "executed": len(EXECUTED)}


def chain(depth: int, workdir: str, **_: Any) -> dict[str, Any]:
    """``x = inc(x)`` repeated ``depth`` times, each call cached."""
    t0 = time.perf_counter()
    cinc = _memory(workdir).cache(inc)
    x = 0
    for _i in range(depth):
        x = cinc(x)
    wall = time.perf_counter() - t0
    return {"wall": wall, "calls": depth, "value": x, "executed": len(EXECUTED)}
