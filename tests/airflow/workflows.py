"""lazyflow workflows that the Airflow tests run (loaded by path, as a DAG would).

Every task that does work appends one line to ``<counter_dir>/<name>.log``, so a test
counts how often a call really executed (cached calls leave no line).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

from lazyflow_core import File, task


def _count(counter_dir: str, name: str) -> None:
    with open(os.path.join(counter_dir, f"{name}.log"), "a") as fh:
        fh.write("x\n")


@task
def square(x: int, counter_dir: str) -> int:
    _count(counter_dir, "square")
    return x * x


@task
def add_all(xs: list[int], counter_dir: str) -> int:
    _count(counter_dir, "add_all")
    return sum(xs)


@task
def greet(day: str, total: int) -> dict[str, object]:
    return {"day": day, "total": total}


@task
def sum_of_squares(n: int, counter_dir: str) -> int:
    """sum(i*i for i < n), one call per square."""
    return add_all([square(i, counter_dir) for i in range(n)], counter_dir)


@task
def report(day: str, n: int, counter_dir: str) -> dict[str, object]:
    return greet(day, sum_of_squares(n, counter_dir))


@task
def flaky(counter_dir: str) -> str:
    """Fails while ``<counter_dir>/fail_once`` exists (and removes it): one injected failure."""
    _count(counter_dir, "flaky")
    marker = os.path.join(counter_dir, "fail_once")
    if os.path.exists(marker):
        os.remove(marker)
        raise RuntimeError("injected failure")
    return "ok"


@task
def pair(total: int, status: str) -> list[object]:
    return [total, status]


@task
def with_flaky_step(n: int, counter_dir: str) -> list[object]:
    return pair(sum_of_squares(n, counter_dir), flaky(counter_dir))


@dataclass(frozen=True)
class Stats:
    n: int
    total: int


@task
def stats(n: int, counter_dir: str) -> Stats:
    """A result that is not plain JSON: pushed to XCom as a reference."""
    return make_stats(n, sum_of_squares(n, counter_dir))


@task
def make_stats(n: int, total: int) -> Stats:
    return Stats(n, total)


@task
def copy_upper(src: File, out_dir: str) -> File:
    """Reads a File, writes a File: lineage input and output."""
    out = File(os.path.join(out_dir, "upper.txt"))
    return out.write(src.read().upper())


@task
def sleepy(seconds: float, pid_file: str) -> str:
    """Writes its pid, then sleeps: the kill test checks that it is gone afterwards."""
    with open(pid_file, "w") as fh:
        fh.write(str(os.getpid()))
    time.sleep(seconds)
    return "woke up"


@task
def double(total: int) -> int:
    return total * 2


@task
def explode(counter_dir: str) -> int:
    _count(counter_dir, "explode")
    raise ValueError("exploded on purpose")


@task
def squares_then_fail(n: int, counter_dir: str) -> int:
    """n squares, then a call that fails: many job events before the failure."""
    return add_all([square(i, counter_dir) for i in range(n)] + [explode(counter_dir)], counter_dir)


@task
def head_lines(src: File, n: int, shout: bool = False) -> list[str]:
    """The first n lines of a file (typed parameters that templates render as strings)."""
    lines = src.read().splitlines()[:n]
    return [line.upper() for line in lines] if shout else lines


@task
def count_chars(src: File, out_dir: str) -> File:
    out = File(os.path.join(out_dir, "count.txt"))
    return out.write(str(len(src.read())))


@task
def upper_then_count(src: File, out_dir: str) -> File:
    """in.txt -> upper.txt (intermediate) -> count.txt (the result)."""
    return count_chars(copy_upper(src, out_dir), out_dir)


@task
def nap(i: int, seconds: float, counter_dir: str, previous: int | None = None) -> int:
    time.sleep(seconds)
    _count(counter_dir, f"nap-{i}")
    return i


@task
def naps(n: int, seconds: float, counter_dir: str) -> int | None:
    """A chain of n naps, each waiting for the previous one (for timeout tests)."""
    last = None
    for i in range(n):
        last = nap(i, seconds, counter_dir, last)
    return last
