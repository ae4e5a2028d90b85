"""Helpers to drive real workflow files through subprocesses, as a user edits and re-runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

WORKFLOW = '''
import json, os, sys
from lazyflow_core import task, Scheduler, File

HERE = os.path.dirname(os.path.abspath(__file__))

def note(s):
    with open(os.path.join(HERE, "ran.log"), "a") as fh:
        fh.write(s + "\\n")

SCALE = 10

def helper(x):
    return x * SCALE

@task
def step(x):
    """Scale one item."""
    note(f"step {x}")
    return helper(x)

@task
def combine(xs):
    note("combine")
    return sum(xs)

@task
def main(n):
    note("main")
    return combine([step(i) for i in range(n)])

if __name__ == "__main__":
    sched = Scheduler(db=sys.argv[1], executor=os.environ.get("LAZYFLOW_TEST_EXECUTOR", "threads"))
    result = sched.run(main(int(sys.argv[2]) if len(sys.argv) > 2 else 3))
    s = sched.last_run
    print(json.dumps({"result": result, "executed": s.executed, "cached": s.cached}))
'''


class Workflow:
    """A workflow file in a temp dir that tests edit and re-run in fresh interpreters.

    The file's scheduler uses the executor named by ``LAZYFLOW_TEST_EXECUTOR``, which
    `run` sets to `executor`.
    """

    def __init__(
        self,
        directory: Path,
        db_url: str,
        source: str = WORKFLOW,
        name: str = "wf.py",
        executor: str = "threads",
    ):
        self.dir = directory
        self.db_url = db_url
        self.executor = executor
        self.path = directory / name
        self.write(source)

    def write(self, source: str) -> None:
        self.path.write_text(textwrap.dedent(source))
        # Same-second edits must still look different to stat-based checks.
        st = self.path.stat()
        os.utime(self.path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))

    def edit(self, old: str, new: str) -> None:
        text = self.path.read_text()
        assert old in text, f"{old!r} not in workflow"
        self.write(text.replace(old, new))

    def run(self, *args: str, check: bool = True) -> dict:
        log = self.dir / "ran.log"
        if log.exists():
            log.unlink()
        proc = subprocess.run(
            [sys.executable, str(self.path), self.db_url, *args],
            capture_output=True,
            text=True,
            cwd=self.dir,
            timeout=300,
            env={**os.environ, "LAZYFLOW_TEST_EXECUTOR": self.executor},
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"workflow failed:\n{proc.stdout}\n{proc.stderr}")
        out = json.loads(proc.stdout.strip().splitlines()[-1]) if proc.returncode == 0 else {}
        out["ran"] = sorted(log.read_text().split("\n")[:-1]) if log.exists() else []
        out["stderr"] = proc.stderr
        return out


def dangling_calls(store: Any) -> int:
    """Calls whose result value row is missing (a writer must never leave any)."""
    from sqlalchemy import text

    return int(
        store.query(
            text(
                "SELECT COUNT(*) FROM lf_calls c LEFT JOIN lf_values v "
                "ON v.hash = c.result_hash WHERE v.hash IS NULL"
            )
        )[0][0]
    )
