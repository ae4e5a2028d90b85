"""Whole-process start-up figures of issue 18, each the median of ``repeat`` fresh
processes timed from outside (after one unmeasured warm-up), except ``first_run``,
which a fresh process times inside itself.

- ``command``: ``lazyflow --help``, ``lazyflow log`` over a store of one execution,
  a fully cached ``lazyflow run`` of the demo (``examples/demo.py main --n 200``), or
  ``python -c pass`` (the interpreter alone: the floor of every whole-process figure).
- ``first_run``: in a fresh process that has imported ``lazyflow_core`` and defined a
  task, the time from creating the ``Scheduler`` over an existing store to the first
  job's body starting (``wall``; ``run_seconds`` is the whole run).

This module imports nothing of lazyflow: every figure is a process of its own.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
DEMO = REPO / "examples" / "demo.py"
COMMANDS = {
    "help": ["--help"],
    "log": ["log"],
    "cached_demo": ["run", "demo.py", "main", "--n", "200"],
}

FIRST_RUN = """
import json, sys, time
from lazyflow_core import Scheduler, task

started = []


@task
def probe(x: int) -> int:
    started.append(time.perf_counter())
    return x + 1


t0 = time.perf_counter()
scheduler = Scheduler(db=sys.argv[1])
value = scheduler.run(probe(int(sys.argv[2])))
run_seconds = time.perf_counter() - t0
scheduler.close()
print(json.dumps({"first_job": started[0] - t0, "run_seconds": run_seconds, "value": value}))
"""


def _lazyflow() -> list[str]:
    script = Path(sys.executable).parent / "lazyflow"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "lazyflow_core.cli"]


def _timed(cmd: list[str], cwd: str) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr[-500:]}")
    return seconds


def command(name: str, workdir: str, repeat: int = 3, **_: Any) -> dict[str, Any]:
    """Median wall time of a whole ``lazyflow`` command (or bare ``python``)."""
    if name == "python":
        cmd = [sys.executable, "-c", "pass"]
    else:
        cmd = _lazyflow() + COMMANDS[name]
        if not os.path.exists(os.path.join(workdir, "demo.py")):
            shutil.copy(DEMO, workdir)
            _timed(_lazyflow() + COMMANDS["cached_demo"], workdir)  # the store, cold
    _timed(cmd, workdir)  # warm-up: page cache, .pyc files
    runs = [_timed(cmd, workdir) for _ in range(repeat)]
    return {"wall": statistics.median(runs), "runs": runs, "value": len(runs)}


def first_run(workdir: str, repeat: int = 3, **_: Any) -> dict[str, Any]:
    """Median time from ``Scheduler(db=...)`` to the first job, in fresh processes."""
    script = os.path.join(workdir, "first_run.py")
    with open(script, "w") as fh:
        fh.write(FIRST_RUN)
    db = f"sqlite:///{os.path.join(workdir, 'lazyflow.db')}"
    out = []
    for k in range(repeat + 1):  # the first creates the store (and is not counted)
        proc = subprocess.run(
            [sys.executable, script, db, str(k)], cwd=workdir, capture_output=True, text=True
        )
        if proc.returncode != 0:
            raise RuntimeError(f"first_run.py failed: {proc.stderr[-500:]}")
        out.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    runs = [o["first_job"] for o in out[1:]]
    return {
        "wall": statistics.median(runs),
        "runs": runs,
        "run_seconds": statistics.median(o["run_seconds"] for o in out[1:]),
        "value": len(runs),
    }
