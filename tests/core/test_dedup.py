"""Cross-process in-flight dedup (``Scheduler(dedup="store")``), with real processes.

Each workflow process runs the script below on one store (a SQLite file, PostgreSQL).
Every execution of ``work(i)`` appends the process id to the file ``marks/i``, so the
tests count who computed what. The processes start their runs together (they wait for
the file ``go``), so without leases they would all compute every call.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lazyflow_core import Scheduler, task
from lazyflow_core.errors import ConfigError
from lazyflow_core.store import open_store
from lazyflow_core.store.leases import holder_key

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")

SCRIPT = """
import json, os, sys, time
from pathlib import Path
from lazyflow_core import Scheduler, task

HERE = Path(sys.argv[1])

@task
def work(i: int) -> int:
    # read at call time: module constants would be part of the task's hash
    with open(HERE / "marks" / str(i), "a") as fh:
        fh.write(f"{os.getpid()}\\n")
    time.sleep(float(os.environ.get("WORK_SECONDS", "0.002")))
    if os.environ.get("FAIL_AT") == str(i):
        raise ValueError(f"work({i}) failed")
    return 2 * i

@task
def total(xs: list[int]) -> int:
    return sum(xs)

lease = float(os.environ.get("LEASE_SECONDS", "60"))
with Scheduler(db=sys.argv[2], dedup="store", lease_seconds=lease, max_workers=4) as sched:
    sched.store  # opened (and migrated) before the start
    while not (HERE / "go").exists():
        time.sleep(0.005)
    try:
        value = sched.run(total([work(i) for i in range(int(sys.argv[3]))]))
    finally:
        s = sched.last_run
        print(json.dumps({"executed": s.executed, "cached": s.cached, "failed": s.failed}))
    print(value)
"""


@pytest.fixture
def flow(tmp_path: Path) -> Iterator[Path]:
    (tmp_path / "marks").mkdir()
    (tmp_path / "flow.py").write_text(textwrap.dedent(SCRIPT))
    yield tmp_path


def start(here: Path, db: str, n: int, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(here / "flow.py"), str(here), db, str(n)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **env},
    )


def finish(proc: subprocess.Popen[str]) -> tuple[dict[str, int], int]:
    """A run's counts and result (it must have succeeded)."""
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    counts, value = out.strip().splitlines()[-2:]
    return json.loads(counts), int(value)


def marks(here: Path) -> dict[int, list[int]]:
    """``{i: [pid of each process that computed work(i)]}``."""
    return {
        int(p.name): [int(line) for line in p.read_text().split()]
        for p in (here / "marks").iterdir()
    }


def wait_for(condition: object, what: str, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


def test_concurrent_runs_compute_each_call_exactly_once(flow: Path, db_url: str) -> None:
    n = 1000
    procs = [start(flow, db_url, n) for _ in range(4)]
    time.sleep(0.5)  # (they wait for "go" once their store is open)
    (flow / "go").touch()
    results = [finish(p) for p in procs]
    assert {value for _, value in results} == {n * (n - 1)}
    computed = marks(flow)
    assert sorted(computed) == list(range(n))
    assert {i: len(pids) for i, pids in computed.items() if len(pids) != 1} == {}
    # every call of every run was executed once in all, else reused as a cached job
    assert sum(c["executed"] for c, _ in results) == n + 1  # the calls and one total
    assert sum(c["executed"] + c["cached"] for c, _ in results) == 4 * (n + 1)
    store = open_store(db_url)
    try:
        assert leases_left(store) == 0
    finally:
        store.close()


def leases_left(store: Any) -> int:
    with store.engine.connect() as conn:
        return int(conn.exec_driver_sql("SELECT count(*) FROM lf_leases").scalar() or 0)


def _holder_then_waiters(
    flow: Path, db_url: str, n: int, **env: str
) -> tuple[subprocess.Popen[str], list[subprocess.Popen[str]]]:
    """A holder whose first calls are running, and two runs waiting for its leases."""
    (flow / "go").touch()
    holder = start(flow, db_url, n, WORK_SECONDS="600", **env)
    wait_for(lambda: len(list((flow / "marks").iterdir())) >= 4, "the holder's calls started")
    waiters = [
        start(flow, db_url, n, LEASE_SECONDS=env.get("LEASE_SECONDS", "60")) for _ in range(2)
    ]
    time.sleep(1.5)  # they start and find the calls leased
    assert all(w.poll() is None for w in waiters)
    assert len(list((flow / "marks").iterdir())) == 4  # nobody computed the others
    return holder, waiters


def _check_takeover(
    flow: Path, holder: subprocess.Popen[str], waiters: list[subprocess.Popen[str]], n: int
) -> None:
    results = [finish(w) for w in waiters]
    assert {value for _, value in results} == {n * (n - 1)}
    by_waiters = {i: [pid for pid in pids if pid != holder.pid] for i, pids in marks(flow).items()}
    assert sorted(by_waiters) == list(range(n))
    assert {i: len(pids) for i, pids in by_waiters.items() if len(pids) != 1} == {}


def test_waiters_take_over_from_a_holder_killed_with_sigkill(flow: Path, db_url: str) -> None:
    n = 20
    holder, waiters = _holder_then_waiters(flow, db_url, n)
    holder.send_signal(signal.SIGKILL)
    holder.communicate(timeout=60)
    _check_takeover(flow, holder, waiters, n)


def test_waiters_take_over_from_a_hung_holder_once_its_lease_expires(
    flow: Path, db_url: str
) -> None:
    """A holder that is alive but stopped (SIGSTOP): only its heartbeat tells."""
    n = 20
    holder, waiters = _holder_then_waiters(flow, db_url, n, LEASE_SECONDS="2")
    holder.send_signal(signal.SIGSTOP)
    try:
        _check_takeover(flow, holder, waiters, n)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.communicate(timeout=60)


def test_when_the_holder_fails_the_next_waiter_computes_the_call(flow: Path, db_url: str) -> None:
    (flow / "go").touch()
    n = 10
    holder = start(flow, db_url, n, WORK_SECONDS="2", FAIL_AT="0")
    wait_for(lambda: (flow / "marks" / "0").exists(), "the holder's calls started")
    waiter = start(flow, db_url, n)
    _, err = holder.communicate(timeout=120)
    assert holder.returncode != 0 and "work(0) failed" in err
    counts, value = finish(waiter)
    assert value == n * (n - 1)
    assert counts["failed"] == 0
    assert marks(flow)[0] == [holder.pid, waiter.pid]  # computed again by the waiter


@task
def double(x: int) -> int:
    return 2 * x


def test_dedup_store_runs_like_a_plain_run_and_leaves_no_lease(store_url: str) -> None:
    with Scheduler(db=store_url, dedup="store") as sched:
        assert sched.run([double(i) for i in range(50)]) == [2 * i for i in range(50)]
        assert sched.last_run is not None and sched.last_run.executed == 50
        assert sched.run([double(i) for i in range(50)]) == [2 * i for i in range(50)]
        assert sched.last_run.cached == 50
        assert leases_left(sched.store) == 0
        if sched.store.dialect == "postgresql":  # the run's session lock went with it
            key = holder_key(sched.last_run.execution_id)
            other = open_store(store_url)  # another session
            try:
                with other.engine.connect() as conn:
                    assert conn.exec_driver_sql(f"SELECT pg_try_advisory_lock({key})").scalar()
                    conn.exec_driver_sql(f"SELECT pg_advisory_unlock({key})")
            finally:
                other.close()


def test_the_config_file_turns_dedup_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "lazyflow.toml").write_text('dedup = "store"\n')
    monkeypatch.chdir(tmp_path)
    assert Scheduler().dedup == "store"
    assert Scheduler(dedup="run").dedup == "run"
    with pytest.raises(ConfigError, match='use "store"'):
        Scheduler(dedup="always")
    with pytest.raises(ConfigError, match="positive number of seconds"):
        Scheduler(dedup="store", lease_seconds=0)


def _holder_row(store: Any, execution_id: str, heartbeat_at: float) -> None:
    """An execution running on another machine (its pids mean nothing here)."""
    from lazyflow_core.store import schema

    with store.engine.begin() as conn:
        conn.execute(
            schema.executions.insert().values(
                id=execution_id,
                started_at=heartbeat_at,
                status="running",
                hostname="elsewhere",
                host_id="another-host-id",
                pid=1,
                heartbeat_at=heartbeat_at,
            )
        )


def test_a_lease_of_another_host_expires_when_its_heartbeat_is_older_than_its_ttl(
    sqlite_url: str,
) -> None:
    store = open_store(sqlite_url)
    store.ensure_schema()
    holder = store.leases("a" * 32, ttl=5.0)
    waiter = store.leases("b" * 32, ttl=5.0)
    assert holder is not None and waiter is not None
    try:
        _holder_row(store, "a" * 32, time.time())
        assert holder.take([("c1", True), ("c2", False)]) == ({"c1", "c2"}, set())
        assert waiter.take([("c1", True), ("c3", True)]) == ({"c3"}, set())  # c1 is held
        assert waiter.free(["c1", "c2", "gone"]) == {"gone"}
        with store.engine.begin() as conn:  # the holder's heartbeat (and its leases) 6 s old
            old = (time.time() - 6.0,)
            conn.exec_driver_sql(
                "UPDATE lf_executions SET heartbeat_at = ?, started_at = ?", old * 2
            )
            conn.exec_driver_sql("UPDATE lf_leases SET acquired_at = ?", old)
        assert waiter.free(["c1", "c2"]) == {"c1", "c2"}
        assert waiter.take([("c1", True)]) == ({"c1"}, set())  # taken over
    finally:
        holder.close()
        waiter.close()
        store.close()


def test_on_postgres_a_lease_expires_when_its_holders_session_is_gone(pg_url: str) -> None:
    """Another host's holder whose heartbeat is fresh, but whose connection is closed
    (its process or machine died): its advisory lock is free, so the lease is too."""
    store = open_store(pg_url)
    store.ensure_schema()
    holder = store.leases("a" * 32, ttl=600.0)
    waiter = store.leases("b" * 32, ttl=600.0)
    assert holder is not None and waiter is not None
    try:
        _holder_row(store, "a" * 32, time.time())
        assert holder.take([("c1", True)]) == ({"c1"}, set())
        assert waiter.free(["c1"]) == set()
        holder._conn.close()  # the session ends without releasing anything
        wait_for(lambda: waiter.free(["c1"]) == {"c1"}, "the dead holder's lease expired", 30)
        assert waiter.take([("c1", True)]) == ({"c1"}, set())
    finally:
        holder.close()
        waiter.close()
        store.close()
