"""dask.delayed on Dask's threaded scheduler; runs under ``.venv-dask``.

The same work and values as ``wl_plain``: the flat fan-out ``total([inc(i) ...])`` as
one delayed graph, and a chain of dependent calls. Dask has no cache across processes,
so there is no cached re-run. Timed: building the graph and ``compute``.
"""

from __future__ import annotations

import time
from typing import Any

from dask import delayed


def inc(x: int) -> int:
    return x + 1


def total(xs: list[int]) -> int:
    return sum(xs)


def fanout(n: int, scheduler: str = "threads", **_: Any) -> dict[str, Any]:
    """``total([inc(i) for i in range(n)])``, one Dask task per call."""
    t0 = time.perf_counter()
    expr = delayed(total)([delayed(inc)(i) for i in range(n)])
    value = expr.compute(scheduler=scheduler)
    wall = time.perf_counter() - t0
    return {"wall": wall, "calls": n + 1, "value": value}


def chain(depth: int, scheduler: str = "threads", **_: Any) -> dict[str, Any]:
    """``x = inc(x)`` repeated ``depth`` times as one delayed graph."""
    t0 = time.perf_counter()
    x: Any = 0
    for _i in range(depth):
        x = delayed(inc)(x)
    value = x.compute(scheduler=scheduler)
    wall = time.perf_counter() - t0
    return {"wall": wall, "calls": depth, "value": value}
