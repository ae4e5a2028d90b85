"""Workflows the browser tests record (a module of its own: the stores record its tasks'
names and sources)."""

from __future__ import annotations

import os
import threading

from lazyflow_core import File, task


@task
def square(x: int) -> int:
    return x * x


@task
def total(values: list[int]) -> int:
    return sum(values)


@task
def main(n: int = 5) -> int:
    """Sum of squares, one call per square."""
    return total([square(i) for i in range(n)])


@task
def write(text: str, path: str) -> File:
    with open(path, "w") as fh:
        fh.write(text)
    return File(path)


@task
def upper(src: File, path: str) -> File:
    with open(src.path) as fh, open(path, "w") as out:
        out.write(fh.read().upper())
    return File(path)


@task
def report(folder: str) -> File:
    raw = write("w0 w1 w2", os.path.join(folder, "raw.txt"))
    return upper(raw, os.path.join(folder, "report.txt"))


@task
def divide(a: int, b: int) -> float:
    return a / b


@task
def fails(n: int = 2) -> list[float]:
    return [divide(i, 1) for i in range(n)] + [divide(1, 0)]


GATE = threading.Event()
"""Released by a test: `waits` blocks on it (a run that stays running meanwhile)."""


@task(cache=False)
def wait_for_gate(i: int) -> int:
    if i > 0:
        GATE.wait(60)
    return i


@task(cache=False)
def waits(n: int) -> int:
    return total([wait_for_gate(i) for i in range(n)])
