"""Drive the real ``lazyflow`` executable in subprocesses, as a user would.

`cli` runs one command and returns its exit status, stdout and stderr. `flows` is a
directory holding a small workflow file (FLOWS below). `store` is a store prepared once
per test process and per backend (SQLite file, PostgreSQL schema) by real ``lazyflow run``
commands, which the read-only commands (log, lineage, diff, viz, db info) query.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

LAZYFLOW = str(Path(sys.executable).with_name("lazyflow"))

FLOWS = textwrap.dedent(
    '''
    """Workflows for the CLI tests."""
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
        with open(src.path) as fh:
            text = fh.read()
        with open(path, "w") as fh:
            fh.write(text.upper())
        return File(path)


    @task
    def report(n: int = 3, out: str = "report.txt") -> File:
        return upper(write(" ".join(f"w{i}" for i in range(n)), "raw.txt"), out)


    def helper(a, b):
        return a / b


    @task
    def divide(a: int, b: int) -> float:
        return helper(a, b)


    @task
    def fails(n: int = 2) -> list:
        return [divide(i, 1) for i in range(n)] + [divide(1, 0)]


    @task
    def echo(n: int, ratio: float = 0.5, name: str = "x", loud: bool = False,
             words: list[str] = [], opts: dict = {}, src: File | None = None,
             max_items: int = 3) -> dict:
        return {"n": n, "ratio": ratio, "name": name, "loud": loud, "words": words,
                "opts": opts, "src": None if src is None else src.path,
                "max_items": max_items}


    @task
    def odd() -> set:
        return {1, 2}
    '''
)


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def last_line(self) -> str:
        lines = self.out.strip().splitlines()
        return lines[-1] if lines else ""

    def json(self) -> object:
        return json.loads(self.out)


def _run(args: tuple[str, ...], cwd: Path, env: dict[str, str | None] | None = None) -> Result:
    """Run lazyflow; `env` adds variables (None removes one)."""
    merged = {**os.environ, "COLUMNS": "200", **(env or {})}
    full_env = {k: v for k, v in merged.items() if v is not None}
    proc = subprocess.run(
        [LAZYFLOW, *args], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=120
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


Cli = Callable[..., Result]


@pytest.fixture
def flows(tmp_path: Path) -> Path:
    """A directory with flows.py in it (the tests' working directory)."""
    (tmp_path / "flows.py").write_text(FLOWS)
    return tmp_path


@pytest.fixture
def cli(flows: Path) -> Cli:
    """``cli("log", "--db", url)`` runs lazyflow in the flows directory."""

    def run(
        *args: str, cwd: Path | None = None, env: dict[str, str | None] | None = None
    ) -> Result:
        return _run(args, cwd or flows, env)

    return run


@dataclass
class Store:
    """A store prepared by real runs; ids of its executions by name."""

    url: str
    dir: Path
    ids: dict[str, str]

    def cli(self, *args: str) -> Result:
        return _run((*args, "--db", self.url), self.dir)


def _prepare(url: str, directory: Path) -> Store:
    (directory / "flows.py").write_text(FLOWS)
    runs = {
        "first": ("run", "flows.py", "main", "--n", "4", "--tag", "env=test", "--tag", "who=ci"),
        "again": ("run", "flows.py", "main", "--n", "4"),
        "more": ("run", "flows.py", "main", "--n", "5", "--tag", "env=prod"),
        "report": ("run", "flows.py", "report", "--n", "3"),
        "failed": ("run", "flows.py", "fails"),
    }
    for name, args in runs.items():
        result = _run((*args, "--db", url, "--progress", "none"), directory)
        assert result.code == (1 if name == "failed" else 0), result.err
    listing = _run(("log", "--json", "--db", url), directory).json()
    newest_first = [e["id"] for e in listing]  # type: ignore[union-attr]
    ids = dict(zip(reversed(list(runs)), newest_first, strict=True))
    return Store(url, directory, ids)


@pytest.fixture(scope="session", params=["sqlite", "postgres"])
def store(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Store]:
    """A store with five executions: main(4) twice (the second cached), main(5), a file
    workflow and a failing one. Read-only tests share it (once per test process)."""
    directory = tmp_path_factory.mktemp(f"store-{request.param}")
    if request.param == "sqlite":
        url = f"sqlite:///{directory / 'lazyflow.db'}"
    else:
        url = request.getfixturevalue("pg_url_factory")()
    yield _prepare(url, directory)


def prepare(flows: Path, url: str, *calls: tuple[str, int], signing_key: str | None = None) -> None:
    """Runs of flows.py tasks in this process (as `lazyflow run` makes them, without
    paying for a process each): ``("main", 3)`` is ``main(3)``."""
    from lazyflow_core import Scheduler, load_task

    cwd = os.getcwd()
    os.chdir(flows)
    try:
        with Scheduler(db=url, signing_key=signing_key) as sched:
            for name, arg in calls:
                sched.run(load_task(f"flows.py:{name}")(arg))
    finally:
        os.chdir(cwd)


def one(url: str, sql: str) -> str:
    """The first column of the first row `sql` selects from the store at `url`."""
    from sqlalchemy import text

    from lazyflow_core.store import Store

    store = Store(url)
    try:
        return str(store.query(text(sql))[0][0])
    finally:
        store.close()
