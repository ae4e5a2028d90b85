"""Tasks of the executor contract suite: module-level, so that worker processes and
Dask workers import them by reference. State that must survive a worker (how many
attempts ran) lives in files under a directory the test passes in."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from lazyflow_core import File, task


class Boom(ValueError):
    """A user exception: it must come back with its own type and message."""


@task
def square(x: int) -> int:
    return x * x


@task
def total(xs: list[int]) -> int:
    return sum(xs)


@task
def squares(n: int):  # type: ignore[no-untyped-def]
    """A task returning expressions: the scheduler evaluates the fan-out it builds."""
    return total([square(i) for i in range(n)])


@task
def explode(x: int) -> int:
    raise Boom(f"bad input {x}")


def _attempt(state: str) -> int:
    """Count this attempt in `state` (a directory shared with the test); returns it."""
    os.makedirs(state, exist_ok=True)
    n = len(os.listdir(state)) + 1
    Path(state, f"{n}-{os.getpid()}").touch()
    return n


@task(retries=2)
def flaky(state: str) -> str:
    """Fails on its first two attempts (in whatever process runs it)."""
    n = _attempt(state)
    if n < 3:
        raise Boom(f"attempt {n}")
    return f"ok after {n}"


@task
def write(path: str, text: str) -> File:
    Path(path).write_text(text)
    return File(path)


@task
def shout(f: File) -> str:
    return Path(f.path).read_text().upper()


@task
def nap(seconds: float, state: str) -> float:
    _attempt(state)
    time.sleep(seconds)
    return seconds


@task
def die_once(state: str) -> str:
    """Kills the process running it on its first attempt (a lost worker)."""
    if _attempt(state) == 1:
        os.kill(os.getpid(), signal.SIGKILL)
    return "survived"


@task
def die(state: str) -> str:
    """Kills the process running it, every time."""
    _attempt(state)
    os.kill(os.getpid(), signal.SIGKILL)
    return "unreachable"


@task
def pid(x: int) -> int:
    return os.getpid() + 0 * x


@task(resources={"gpus": 1})
def on_gpu(x: int) -> int:
    return os.getpid() + 0 * x


@task(resources={"gpus": 4})
def on_four_gpus(x: int) -> int:
    return x


@task
def where(x: int) -> tuple[int, str | None]:
    """The call's argument and the SLURM job it ran in (None outside SLURM)."""
    return x, os.environ.get("SLURM_JOB_ID")
