"""A new SQLite store file is created from the checked-in schema script (store/ddl.py)
through sqlite3 alone, and is the store alembic's migrations make."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lazyflow_core import Scheduler
from lazyflow_core.store import Store, ddl
from lazyflow_core.store.sql import HEAD_REVISION, VERSION_TABLE

from .tasks import fan_out

STALE = (
    f"{ddl.SCRIPT.name} is out of date with the migrations: regenerate it with "
    f"`{ddl.REGENERATE}` and commit it"
)
PRAGMAS = ("user_version", "application_id", "auto_vacuum", "encoding", "page_size")


def _schema(path: Path) -> dict[str, object]:
    """What a store file's schema is: ``sqlite_master`` in order, the version row and the
    database-wide settings."""
    conn = sqlite3.connect(path)
    try:
        return {
            "master": ddl.master(conn),
            "version": conn.execute(f"SELECT * FROM {VERSION_TABLE}").fetchall(),
            "pragmas": {p: conn.execute(f"PRAGMA {p}").fetchone() for p in PRAGMAS},
        }
    finally:
        conn.close()


def _by_alembic(path: Path) -> Path:
    store = Store(f"sqlite:///{path}")
    store._upgrade()  # every migration, as an old store gets them
    store.close()
    return path


def _by_script(path: Path) -> Path:
    store = Store(f"sqlite:///{path}")
    store.ensure_schema()
    assert store._engines == []  # created through sqlite3: no SQLAlchemy engine
    store.close()
    return path


def test_the_script_creates_exactly_what_the_migrations_create(tmp_path: Path) -> None:
    migrated = _schema(_by_alembic(tmp_path / "alembic.db"))
    created = _schema(_by_script(tmp_path / "script.db"))
    assert created == migrated, STALE
    assert migrated["version"] == [(HEAD_REVISION,)], STALE


def test_the_generator_writes_the_checked_in_script() -> None:
    """`python -m lazyflow_core.store.ddl --write` would change nothing."""
    assert ddl.generate() == ddl.SCRIPT.read_text(), STALE
    assert ddl.main(["--check"]) == 0


def test_a_script_older_than_the_migrations_makes_a_store_they_bring_to_head(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A migration added without regenerating the script: the new store is stamped with
    the script's revision, and opening it migrates it the rest of the way."""
    old = tmp_path / "old.sql"
    old.write_text(ddl.generate("0009"))
    monkeypatch.setattr(ddl, "SCRIPT", old)
    store = Store(f"sqlite:///{tmp_path / 'lazyflow.db'}")
    store.ensure_schema()
    assert store.current_revision() == HEAD_REVISION
    store.close()
    assert _schema(tmp_path / "lazyflow.db") == _schema(_by_alembic(tmp_path / "alembic.db"))


def test_a_failing_script_leaves_no_tables(tmp_path: Path) -> None:
    """The script runs in one transaction: a statement that fails undoes the others."""
    conn = sqlite3.connect(tmp_path / "x.db")
    conn.execute("CREATE TABLE lf_values (hash TEXT)")  # the script's CREATE fails on it
    try:
        ddl.create(conn)
    except sqlite3.OperationalError as exc:
        assert "lf_values already exists" in str(exc)
    else:
        raise AssertionError("the script ran over an existing lf_values table")
    assert [name for _t, name, _tb, _s in ddl.master(conn)] == ["lf_values"]
    assert not conn.in_transaction
    conn.close()


ROOT = Path(__file__).resolve().parents[2]
RUN = """
import json, sqlite3, sys
from lazyflow_core import Scheduler
from tests.core.tasks import fan_out

with Scheduler(db=sys.argv[1]) as sched:
    value = sched.run(fan_out(5))
    executed = sched.last_run.executed
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("sqlalchemy", "alembic"))
conn = sqlite3.connect(sys.argv[2])
version = conn.execute("SELECT version_num FROM lf_alembic_version").fetchall()
print(json.dumps({"value": value, "executed": executed, "heavy": heavy, "version": version}))
"""


def test_a_first_run_on_a_new_store_imports_neither_sqlalchemy_nor_alembic(
    tmp_path: Path,
) -> None:
    path = tmp_path / "new" / "lazyflow.db"
    proc = subprocess.run(
        [sys.executable, "-c", RUN, f"sqlite:///{path}", str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.splitlines()[-1])
    assert out == {"value": 15, "executed": 7, "heavy": [], "version": [[HEAD_REVISION]]}


CLI = "import sys; from lazyflow_core.cli import main; sys.exit(main(sys.argv[1:]))"


def _cli(*args: str, cwd: Path) -> str:
    proc = subprocess.run(
        [sys.executable, "-c", CLI, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_a_store_made_from_the_script_is_used_and_migrated_normally(tmp_path: Path) -> None:
    """Runs, ``log`` and ``lineage`` read it; alembic takes it down a revision and back
    up like a migrated store, and its cache is still served."""
    from alembic import command
    from alembic.config import Config

    path = _by_script(tmp_path / "lazyflow.db")
    url = f"sqlite:///{path}"
    with Scheduler(db=url) as sched:
        assert sched.run(fan_out(4)) == 10
        assert sched.last_run is not None and sched.last_run.executed == 6
    (execution,) = json.loads(_cli("log", "--json", "--db", url, cwd=tmp_path))
    assert execution["status"] == "done" and execution["jobs"] == 6
    assert "jobs       6: 6 executed" in _cli("log", execution["id"], "--db", url, cwd=tmp_path)
    lineage = _cli("lineage", execution["result_hash"], "--db", url, cwd=tmp_path)
    assert "total([1, 2, 3, 4])" in lineage and "inc(3)" in lineage

    store = Store(url)
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(ddl.__file__).parent / "migrations"))
    cfg.set_main_option("version_table", VERSION_TABLE)
    with store.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0009")
    store.close()
    assert _schema(path)["version"] == [("0009",)]
    with Scheduler(db=url) as sched:  # opening it migrates it to the head (alembic)
        assert sched.run(fan_out(4)) == 10
        assert sched.last_run is not None and sched.last_run.cached == 1
    assert _schema(path) == _schema(_by_alembic(tmp_path / "alembic.db"))


CREATE = """
import os, sys, time
from lazyflow_core import Scheduler
from tests.core.tasks import inc

while not os.path.exists(sys.argv[2]):
    time.sleep(0.001)
with Scheduler(db=sys.argv[1]) as sched:
    print(sched.run(inc(int(sys.argv[3]))))
"""


def test_processes_creating_one_new_store_at_once_all_run(tmp_path: Path) -> None:
    """The migration lock serializes creation: one process creates the store, the others
    find it created, and every run is recorded in it."""
    path = tmp_path / "store" / "lazyflow.db"
    go = tmp_path / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CREATE, f"sqlite:///{path}", str(go), str(i)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(4)
    ]
    time.sleep(0.5)  # let them import and wait for the signal
    go.touch()
    outs = [p.communicate(timeout=120) for p in procs]
    for p, (_out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err
    assert sorted(int(out.strip()) for out, _ in outs) == [1, 2, 3, 4]
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT count(*) FROM lf_executions").fetchone() == (4,)
    conn.close()
    assert _schema(path) == _schema(_by_alembic(tmp_path / "alembic.db"))
