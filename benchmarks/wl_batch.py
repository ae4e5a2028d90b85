"""Tasks of the Batch executor benchmark (`benchmarks.batch`): the fan-out of issue 7,
with the tiny calls on the executor named "batch". Module-level, so that the Batch
worker imports them from the code package the executor ships."""

from __future__ import annotations

from lazyflow_core import task


@task(executor="batch")
def inc(x: int) -> int:
    return x + 1


@task
def total(xs: list[int]) -> int:
    return sum(xs)


@task
def main(n: int):  # type: ignore[no-untyped-def]
    return total([inc(i) for i in range(n)])
