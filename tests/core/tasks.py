"""Small tasks several core test modules run (a module of its own, so that process-pool
workers can import them)."""

from __future__ import annotations

from lazyflow_core import task


@task
def inc(x: int) -> int:
    return x + 1


@task
def total(xs: list[int]) -> int:
    return sum(xs)


@task
def fan_out(n: int):  # type: ignore[no-untyped-def]
    """``total([inc(i) for i in range(n)])``: the fan-out the benchmarks time."""
    return total([inc(i) for i in range(n)])
