"""``lazyflow log`` and ``viz`` show each execution as it happened (DESIGN.md "Trust"):
a later ``--no-cache`` run or a retry never changes what an older execution shows, and
a failed job shows its traceback."""

from __future__ import annotations

import textwrap
from pathlib import Path

from .conftest import Cli

DRAW = textwrap.dedent(
    """
    import os
    from lazyflow_core import task


    @task
    def draw() -> str:
        return os.urandom(6).hex()


    @task
    def drawn() -> list:
        return [draw()]


    @task
    def flaky(flag: str = "ready") -> str:
        if not os.path.exists(flag):
            raise RuntimeError("the flag is not there yet")
        return "flag-found"


    @task
    def waits() -> list:
        return [flaky()]
    """
)


def _ids(cli: Cli, db: str) -> list[str]:
    return [e["id"] for e in cli("log", "--json", "--db", db).json()]  # type: ignore[union-attr]


def _job_of(cli: Cli, db: str, execution: str, call: str) -> str:
    line = next(x for x in cli("log", execution, "--db", db).out.splitlines() if call in x)
    return line.split("job ")[1].split()[0]


def test_an_old_execution_shows_its_own_results(cli: Cli, flows: Path, sqlite_url: str) -> None:
    (flows / "draw.py").write_text(DRAW)
    first = cli("run", "draw.py", "drawn", "--db", sqlite_url)
    assert first.code == 0, first.err
    again = cli("run", "draw.py", "drawn", "--no-cache", "--db", sqlite_url)
    assert again.last_line != first.last_line
    old = _ids(cli, sqlite_url)[1]
    drawn_value = first.last_line.strip("[]'\"")  # the hex string the first run drew
    tree = cli("log", old, "--db", sqlite_url).out
    assert "draw()  done" in tree
    assert tree.count(drawn_value) >= 2, tree  # header result, and the draw() call
    job = cli("log", "--job", _job_of(cli, sqlite_url, old, "draw()"), "--db", sqlite_url)
    assert job.code == 0, job.err
    assert drawn_value in job.out.split("\nresult\n")[1]
    dot = cli("viz", old, "--db", sqlite_url).out
    assert drawn_value in dot and again.last_line.strip("[]'\"") not in dot


def test_a_retry_leaves_the_failed_job_failed_with_its_traceback(
    cli: Cli, flows: Path, sqlite_url: str
) -> None:
    (flows / "draw.py").write_text(DRAW)
    assert cli("run", "draw.py", "waits", "--db", sqlite_url).code != 0
    (flows / "ready").write_text("")
    assert cli("run", "draw.py", "waits", "--db", sqlite_url).code == 0  # the retry
    failed = _ids(cli, sqlite_url)[1]
    tree = cli("log", failed, "--db", sqlite_url).out
    assert "flag-found" not in tree
    job = cli("log", "--job", _job_of(cli, sqlite_url, failed, "flaky()"), "--db", sqlite_url)
    assert job.code == 0, job.err
    out, source = job.out.split("\nsource of ")
    assert "status     failed" in out and "\nresult\n" not in out and "flag-found" not in out
    assert "exception  builtins.RuntimeError" in out
    assert "\ntraceback\n" in out and 'raise RuntimeError("the flag is not there yet")' in out
    assert "def flaky(" in source  # the failed job's own code
    dot = cli("viz", failed, "--db", sqlite_url).out
    assert "flag-found" not in dot and "in flaky" in dot
