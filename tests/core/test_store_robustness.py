"""The store under stress: concurrent writers, kill -9, corrupt rows and missing blobs."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import text

from lazyflow_core import Scheduler, task
from lazyflow_core.store import Store

from .workflows import Workflow, dangling_calls

OVERLAP = """
import json, sys
from lazyflow_core import task, Scheduler

@task
def square(x):
    return x * x

@task
def total(xs):
    return sum(xs)

if __name__ == "__main__":
    lo, hi = int(sys.argv[2]), int(sys.argv[3])
    s = Scheduler(db=sys.argv[1], max_workers=8)
    print(json.dumps({"result": s.run(total([square(i) for i in range(lo, hi)])),
                      "executed": s.last_run.executed}))
"""


def test_two_processes_share_one_store(tmp_path: Path, db_url: str) -> None:
    """Overlapping workflows in two processes at once both succeed; the store is consistent."""
    path = tmp_path / "overlap.py"
    path.write_text(OVERLAP)
    procs = [
        subprocess.Popen(
            [sys.executable, str(path), db_url, lo, hi], stdout=subprocess.PIPE, text=True
        )
        for lo, hi in (("0", "3000"), ("1000", "4000"))
    ]
    outs = [json.loads(p.communicate(timeout=300)[0].strip().splitlines()[-1]) for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    assert outs[0]["result"] == sum(i * i for i in range(3000))
    assert outs[1]["result"] == sum(i * i for i in range(1000, 4000))
    store = Store(db_url)
    n_calls = store.query(text("SELECT COUNT(*) FROM lf_calls"))[0][0]
    assert n_calls == 4000 + 2  # every distinct square once, plus the two totals
    assert dangling_calls(store) == 0
    # A third run over the union is fully cached.
    proc = subprocess.run(
        [sys.executable, str(path), db_url, "0", "4000"], capture_output=True, text=True
    )
    assert json.loads(proc.stdout.strip().splitlines()[-1])["executed"] == 1  # the new total


CHAIN = """
import json, os, sys, time
from lazyflow_core import task, Scheduler

HERE = os.path.dirname(os.path.abspath(__file__))

@task
def slow_inc(x):
    time.sleep(0.3)
    with open(os.path.join(HERE, "ran.log"), "a") as fh:
        fh.write(f"{x}\\n")
    return x + 1

@task
def main(n):
    x = 0
    for _ in range(n):
        x = slow_inc(x)
    return x

if __name__ == "__main__":
    s = Scheduler(db=sys.argv[1])
    print(json.dumps({"result": s.run(main(12)), "executed": s.last_run.executed}))
"""


@pytest.mark.parametrize("writer", ["thread", "process"])
def test_kill_9_keeps_completed_calls(tmp_path: Path, db_url: str, writer: str) -> None:
    """Whether the store writer is a thread of the killed process or a writer process
    (which sees the end of its input and commits what it received), completed calls stay."""
    path = tmp_path / "chain.py"
    path.write_text(CHAIN)
    log = tmp_path / "ran.log"
    env = {**os.environ, "LAZYFLOW_WRITER": writer}
    proc = subprocess.Popen([sys.executable, str(path), db_url], stdout=subprocess.DEVNULL, env=env)
    deadline = time.time() + 120
    while time.time() < deadline:
        if log.exists() and len(log.read_text().split()) >= 5:
            break
        time.sleep(0.05)
    time.sleep(0.5)  # completed calls reach the store within the writer's flush interval
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = len(log.read_text().split())
    assert 5 <= done_before < 12
    # A writer process outlives the kill by the moment it takes to commit what it had
    # received: wait for the completed calls to be there (not for anything else).
    store = Store(db_url)
    deadline = time.time() + 30
    while time.time() < deadline:
        stored = store.query(
            text("SELECT COUNT(*) FROM lf_calls WHERE task_name LIKE '%slow_inc'")
        )[0][0]
        if stored >= done_before:
            break
        time.sleep(0.05)
    store.close()
    log.unlink()
    out = subprocess.run([sys.executable, str(path), db_url], capture_output=True, text=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["result"] == 12
    rerun = [int(x) for x in log.read_text().split()]
    # Only calls that had not completed run again (plus main, which had not finished).
    assert rerun == list(range(done_before, 12)), (done_before, rerun)
    assert result["executed"] == len(rerun) + 1


@task
def make_payload(n: int) -> list[int]:
    return list(range(n))


def _corrupt(store: Store, task_name: str, data: bytes) -> str:
    row = store.query(
        text("SELECT result_hash FROM lf_calls WHERE task_name = :n"), {"n": task_name}
    )[0]
    with store.engine.begin() as conn:
        conn.execute(
            text("UPDATE lf_values SET data = :d WHERE hash = :h"), {"d": data, "h": row[0]}
        )
    return str(row[0])


def test_corrupt_value_is_a_cache_miss_and_is_repaired(
    store_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    sched = Scheduler(db=store_url)
    assert sched.run(make_payload(5)) == [0, 1, 2, 3, 4]
    _corrupt(sched.store, make_payload.name, b"\x80\x05garbage")
    with caplog.at_level(logging.WARNING, logger="lazyflow"):
        assert sched.run(make_payload(5)) == [0, 1, 2, 3, 4]
    assert sched.last_run is not None and sched.last_run.executed == 1
    assert "cannot be loaded" in caplog.text and make_payload.name in caplog.text
    sched.run(make_payload(5))
    assert sched.last_run is not None and sched.last_run.cached == 1  # row was replaced


def test_missing_blob_is_a_cache_miss(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'db.sqlite'}", blob_threshold=100)
    sched = Scheduler(db=store)
    assert len(sched.run(make_payload(1000))) == 1000
    blobs = list((tmp_path / "blobs").rglob("*"))
    files = [b for b in blobs if b.is_file()]
    assert files, "large value should be stored as a blob"
    for f in files:
        f.unlink()
    assert len(sched.run(make_payload(1000))) == 1000
    assert sched.last_run is not None and sched.last_run.executed == 1


CLASSY = """
import json, sys
from lazyflow_core import task, Scheduler

class Point:
    def __init__(self, x):
        self.x = x

@task(version="1")
def make(x):
    return Point(x)

@task(version="1")
def get_x(p):
    return p.x

if __name__ == "__main__":
    s = Scheduler(db=sys.argv[1])
    print(json.dumps({"result": s.run(get_x(make(3))), "executed": s.last_run.executed}))
"""


def test_value_whose_class_is_gone_is_recomputed(tmp_path: Path, db_url: str) -> None:
    """Pinned versions keep the call hash; the stored Point cannot be unpickled any more."""
    wf = Workflow(tmp_path, db_url, CLASSY)
    assert wf.run()["result"] == 3
    wf.edit("class Point:", "class Point2:")
    wf.edit("return Point(x)", "return Point2(x)")
    out = wf.run()
    assert out["result"] == 3
    assert "cannot be loaded" in out["stderr"]


def test_default_store_is_created_under_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LAZYFLOW_DB")
    monkeypatch.chdir(tmp_path)
    from lazyflow_core import run

    assert run(make_payload(2)) == [0, 1]
    assert (tmp_path / ".lazyflow" / "lazyflow.db").exists()
    store = Store(f"sqlite:///{tmp_path / '.lazyflow' / 'lazyflow.db'}")
    mode = store.query(text("PRAGMA journal_mode"))[0][0]
    assert mode == "wal"
