"""Tasks for the Batch executor tests. They run in worker subprocesses that import this
module from the code package the executor ships (the tests directory is not on their
path), so shipping code is exercised by every test."""

from __future__ import annotations

import os
import time

from lazyflow_core import task


@task(executor="batch")
def inc(x: int) -> int:
    return x + 1


@task
def total(xs: list[int]) -> int:
    return sum(xs)


@task
def fan_out(n: int) -> int:
    return total([inc(i) for i in range(n)])


@task(executor="batch")
def boom(x: int) -> int:
    raise ValueError(f"boom {x}")


@task(executor="batch")
def pid_of(x: int) -> tuple[int, int]:
    return x, os.getpid()


def _wait_for(path: str, seconds: float = 60.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if os.path.exists(path):
            return True
        time.sleep(0.05)
    return False


@task(executor="batch")
def hangs_once(markers: str, x: int) -> int:
    """For x == 0, the first attempt writes `started-0` (its pid) and hangs. Every
    attempt leaves a `ran-X-PID` file."""
    open(os.path.join(markers, f"ran-{x}-{os.getpid()}"), "w").close()
    started = os.path.join(markers, f"started-{x}")
    if x == 0 and not os.path.exists(started):
        print(f"attempt 1 of hangs_once({x}) hangs", flush=True)
        with open(started + ".tmp", "w") as fh:
            fh.write(str(os.getpid()))
        os.rename(started + ".tmp", started)
        time.sleep(120)
    return x * 10


@task(executor="batch")
def waits_for_go(markers: str, x: int) -> int:
    """Writes `started-X` (its pid) and returns once `go` exists."""
    with open(os.path.join(markers, f"started-{x}.tmp"), "w") as fh:
        fh.write(str(os.getpid()))
    os.rename(os.path.join(markers, f"started-{x}.tmp"), os.path.join(markers, f"started-{x}"))
    if not _wait_for(os.path.join(markers, "go"), 120):
        raise TimeoutError("no go")
    return x + 100


@task(executor="batch")
def with_resources(x: int) -> int:
    return x


@task
def pids(n: int) -> list[tuple[int, int]]:
    return [pid_of(i) for i in range(n)]  # type: ignore[misc]


@task(executor="batch")
def big(n: int) -> bytes:
    return b"x" * n
