"""``lazyflow repl``: a Python prompt over the store, driven through stdin."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.planted import evil, plant_value

from .conftest import LAZYFLOW, Cli

POINTS = """
from dataclasses import dataclass

from lazyflow_core import task


@dataclass
class Point:
    x: int
    y: int


@task
def point(x: int) -> Point:
    return Point(x, x + 1)
"""


def _repl(
    cwd: Path, url: str, lines: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [LAZYFLOW, "repl", "--db", url],
        cwd=cwd,
        input=lines,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


def test_executions_jobs_and_values_as_objects(cli: Cli, flows: Path, sqlite_url: str) -> None:
    assert cli("run", "flows.py", "main", "--n", "3", "--db", sqlite_url).code == 0
    assert cli("run", "flows.py", "fails", "--db", sqlite_url).code == 1
    done = _repl(
        flows,
        sqlite_url,
        "len(executions)\n"
        "e = executions[1]\n"
        "print(e.status, e.root_task, e.result)\n"
        "sorted(j.task_name for j in e.jobs)\n"
        "sq = [j for j in e.jobs if j.task_name == 'flows.square']\n"
        "sorted((j.args['x'].value, j.result) for j in sq)\n"
        "print(sq[0].parent.task_name, sq[0].execution.id == e.id)\n"
        "f = executions(status='failed')[0]\n"
        "print([j.error_type for j in f.jobs if j.status == 'failed'][:1])\n",
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert ">>> 2\n" in out
    assert "done flows.main 5" in out
    assert "['flows.main', 'flows.square', 'flows.square', 'flows.square', 'flows.total']" in out
    assert "[(0, 0), (1, 1), (2, 4)]" in out
    assert "flows.main True" in out
    assert "['builtins.ZeroDivisionError']" in out
    assert "lazyflow repl on sqlite:///" in done.stderr  # the banner


def test_objects_are_unpickled_only_when_signed(cli: Cli, flows: Path, sqlite_url: str) -> None:
    (flows / "points.py").write_text(POINTS)
    key = {"LAZYFLOW_SIGNING_KEY": "k" * 32}
    assert cli("run", "points.py", "point", "--x", "2", "--db", sqlite_url, env=key).code == 0
    read = "executions[0].result\n"
    signed = _repl(flows, sqlite_url, read, env=key)
    assert "Point(x=2, y=3)" in signed.stdout, signed.stderr
    # without the key the object is refused (plain data would be decoded), its preview shown
    unsigned = _repl(flows, sqlite_url, read + "executions[0].root.args['x'].value\n")
    assert "Point(x=2" not in unsigned.stdout
    assert "cannot be loaded" in unsigned.stderr and "LAZYFLOW_SIGNING_KEY" in unsigned.stderr
    assert ">>> 2\n" in unsigned.stdout
    # a planted pickle (seal kept, bytes replaced) never runs, with or without the key
    marker = flows / "pwned"
    plant_value(sqlite_url, evil(marker))
    for env in (key, None):
        _repl(flows, sqlite_url, read + "executions[0].root.args['x'].value\n", env=env)
        assert not marker.exists()
