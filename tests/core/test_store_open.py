"""Opening a store: cheap when the schema is current, serialized when it is not."""

from __future__ import annotations

import contextlib
import json
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import inspect, text

from lazyflow_core import StoreError
from lazyflow_core.store import Store
from lazyflow_core.store.pgserver import PgServer
from lazyflow_core.store.sql import HEAD_REVISION, VERSION_TABLE
from lazyflow_core.store.sqlitefile import PAGE_SIZE, SqliteFile


def _at_once(n: int, fn: Callable[[], Any]) -> list[BaseException]:
    """Run `fn` in `n` threads released together; the exceptions they raised."""
    barrier = threading.Barrier(n)
    errors: list[BaseException] = []

    def go() -> None:
        try:
            barrier.wait(timeout=30)
            fn()
        except BaseException as exc:  # collected and reported by the test
            errors.append(exc)

    threads = [threading.Thread(target=go) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    return errors


def _open_and_close(url: str) -> None:
    store = Store(url)
    try:
        store.ensure_schema()
    finally:
        store.close()


def test_opening_a_current_store_is_one_connection_and_one_query(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The schema check is one statement, and cache lookups reuse its connection: the
    driver's own (sqlite3, psycopg), with no SQLAlchemy engine built."""
    _open_and_close(db_url)
    store = Store(db_url)
    connects: list[int] = []
    statements: list[str] = []
    if store.file is not None:
        connect = SqliteFile.connect

        def traced(self: SqliteFile) -> sqlite3.Connection:
            conn = connect(self)  # (its pragmas run before the trace starts)
            connects.append(1)
            conn.set_trace_callback(statements.append)
            return conn

        monkeypatch.setattr(SqliteFile, "connect", traced)
    else:
        import psycopg

        class Traced(psycopg.Cursor[Any]):
            def execute(self, query: Any, *args: Any, **kwargs: Any) -> Any:
                statements.append(str(query))
                return super().execute(query, *args, **kwargs)

        connect_pg = PgServer.connect

        def traced_pg(self: PgServer, *, autocommit: bool = False) -> Any:
            conn = connect_pg(self, autocommit=autocommit)
            connects.append(1)
            conn.cursor_factory = Traced
            return conn

        monkeypatch.setattr(PgServer, "connect", traced_pg)
    store.ensure_schema()
    assert store.lookup_calls(["0" * 64]) == {}
    assert store.tasks_with_calls(["0" * 64]) == set()
    assert statements[:1] == [f"SELECT version_num FROM {VERSION_TABLE}"]
    assert len(connects) == 1
    assert store._engines == []  # the engine is built only to create or migrate
    assert [s.split(" FROM ")[1].split()[0] for s in statements[1:]] == ["lf_calls", "lf_tasks"]
    store.close()


def test_postgres_urls_connect_as_sqlalchemy_would() -> None:
    """`PgServer.of` passes psycopg what SQLAlchemy's psycopg dialect passes (its own
    adapter map aside), and leaves the URLs it does not parse to SQLAlchemy."""
    from sqlalchemy import create_engine

    urls = [
        "postgresql+psycopg://postgres@127.0.0.1:5432/test",
        "postgresql+psycopg://u:p%40ss%3Aw@db.example/lf%20db?sslmode=require",
        "postgresql+psycopg://u@[::1]:6543/d?options=-csearch_path%3Dlf&application_name=x",
        "postgresql+psycopg:///test",
        "postgresql+psycopg://",
        "postgresql+psycopg://u:@h/d",
    ]
    for url in urls:
        server = PgServer.of(url)
        assert server is not None, url
        engine = create_engine(url)
        args, kwargs = engine.dialect.create_connect_args(engine.url)
        kwargs.pop("context", None)
        kwargs.setdefault("connect_timeout", 10)
        assert (list(server.args), server.kwargs) == (args, kwargs), url
        engine.dispose()
    for url in [
        "postgresql://u@h/d",  # psycopg2, SQLAlchemy's default driver
        "postgresql+psycopg2://u@h/d",
        "postgresql+psycopg://u@h/d?host=a&host=b",
        "postgresql+psycopg://u@/d?host=a,b&port=1,2",
        "sqlite:///x.db",
    ]:
        assert PgServer.of(url) is None, url


def test_postgres_first_connect_skips_the_hstore_lookup(pg_url: str) -> None:
    """No lazyflow column is an HSTORE: SQLAlchemy need not look the type up per process."""
    store = Store(pg_url)
    assert store.engine.dialect.use_native_hstore is False  # type: ignore[attr-defined]
    store.ensure_schema()
    store.close()


def test_a_new_postgres_store_is_made_through_psycopg_as_declared(pg_url: str) -> None:
    """A new PostgreSQL store gets the tables and indexes `schema.metadata` declares
    (alembic finds nothing to change) without an engine; read-only opening of an empty
    database still refuses to create it."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from lazyflow_core.store.schema import metadata

    reader = Store(pg_url)
    with pytest.raises(StoreError, match="has no lazyflow tables"):
        reader.ensure_schema(create=False)
    reader.close()
    store = Store(pg_url)
    store.ensure_schema()
    assert store._engines == []
    assert store.lookup_calls(["0" * 40]) == {}  # the connection that made it
    assert store.current_revision() == HEAD_REVISION
    with store.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
        diff = compare_metadata(context, metadata)
    assert [d for d in diff if not (d[0] == "remove_table" and d[1].name == VERSION_TABLE)] == []
    store.close()


def test_concurrent_first_opens_create_the_store_once(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    created: list[int] = []
    create = Store._create_current

    def counting_create(self: Store) -> None:
        created.append(1)
        create(self)

    monkeypatch.setattr(Store, "_create_current", counting_create)
    assert _at_once(4, lambda: _open_and_close(db_url)) == []
    assert created == [1]
    store = Store(db_url)
    assert store.query(text(f"SELECT version_num FROM {VERSION_TABLE}")) == [(HEAD_REVISION,)]
    store.close()


def test_concurrent_opens_of_an_old_store_upgrade_it_once(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The migration lock serializes upgrades; who waited finds the schema current."""
    old = Store(db_url)
    old._upgrade("0001")
    old.close()
    upgrades: list[int] = []
    upgrade = Store._upgrade

    def counting_upgrade(self: Store, revision: str = "head") -> None:
        upgrades.append(1)
        upgrade(self, revision)

    monkeypatch.setattr(Store, "_upgrade", counting_upgrade)
    assert _at_once(3, lambda: _open_and_close(db_url)) == []
    assert upgrades == [1]
    store = Store(db_url)
    assert store.current_revision() == HEAD_REVISION
    with store.engine.connect() as conn:
        assert "dependencies" in {c["name"] for c in inspect(conn).get_columns("lf_tasks")}
        # 0009: the covering index replaced the plain one
        jobs_indexes = {i["name"] for i in inspect(conn).get_indexes("lf_jobs")}
        assert jobs_indexes == {"ix_lf_jobs_execution_groups"}
    store.close()


def test_unreachable_server_is_a_store_error() -> None:
    pytest.importorskip("psycopg")
    store = Store("postgresql+psycopg://postgres@127.0.0.1:1/nothing")
    with pytest.raises(StoreError, match="cannot reach the lazyflow store"):
        store.ensure_schema()
    store.close()


def test_reachable_database_that_refuses_is_not_called_unreachable(pg_url: str) -> None:
    """A user without CREATE on the schema gets a message about permissions, not about
    the server being down."""
    import psycopg

    with psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=test") as conn:
        conn.autocommit = True
        # made by an earlier run or a parallel worker, maybe
        with contextlib.suppress(psycopg.errors.DuplicateObject, psycopg.errors.UniqueViolation):
            conn.execute("CREATE ROLE lf_test_nocreate LOGIN")
    store = Store(pg_url.replace("postgres@", "lf_test_nocreate@", 1))
    with pytest.raises(StoreError, match="cannot create or check the lazyflow tables") as info:
        store.ensure_schema()
    assert "cannot reach" not in str(info.value)
    assert "schema" in str(info.value)  # PostgreSQL's own reason is kept
    store.close()


def test_a_store_written_by_a_newer_lazyflow_says_so_in_one_line(sqlite_url: str) -> None:
    """Not alembic's "can't locate revision" traceback: a StoreError saying what to do."""
    from lazyflow_core import Scheduler

    from .tasks import inc

    _open_and_close(sqlite_url)
    store = Store(sqlite_url)
    with store.engine.begin() as conn:
        conn.execute(text(f"UPDATE {VERSION_TABLE} SET version_num = '9999'"))
    store.close()
    expected = r"this store was written by a newer lazyflow \(schema 9999\); upgrade lazyflow"
    with pytest.raises(StoreError, match=expected):
        Store(sqlite_url).ensure_schema()
    with Scheduler(db=sqlite_url) as sched, pytest.raises(StoreError, match=expected) as info:
        sched.run(inc(1))
    assert "\n" not in str(info.value)


def test_a_damaged_sqlite_file_gets_sqlite_advice(tmp_path: Path) -> None:
    path = tmp_path / "lazyflow.db"
    path.write_bytes(b"this is not a database, just some text " * 100)
    with pytest.raises(StoreError) as info:
        Store(f"sqlite:///{path}").ensure_schema()
    message = str(info.value)
    assert f"the SQLite file {path} is not a lazyflow store or is damaged" in message
    assert "PRAGMA integrity_check" in message and "PostgreSQL" not in message


READER = """
import json, sys
from lazyflow_core.store import Store
from lazyflow_core.provenance import Provenance
store = Store(sys.argv[1])
store.ensure_schema()
with Provenance(store) as prov:
    calls = [e.id for e in prov.executions()]
print(json.dumps({"read_only": store.read_only, "executions": len(calls)}))
"""


@pytest.mark.parametrize("what", ["file", "directory"])
def test_a_read_only_sqlite_store_can_be_read(tmp_path: Path, what: str) -> None:
    """A store on a read-only file, or in a read-only directory (its -shm index cannot
    be made there), opens read-only and answers queries."""
    from lazyflow_core import Scheduler

    from ..readonly import read_only
    from .tasks import fan_out

    store_dir = tmp_path / "store"
    url = f"sqlite:///{store_dir / 'lazyflow.db'}"
    with Scheduler(db=url) as sched:
        assert sched.run(fan_out(3)) == 6
    script = tmp_path / "reader.py"
    script.write_text(READER)
    target = store_dir / "lazyflow.db" if what == "file" else store_dir
    with read_only(target) as prefix:
        proc = subprocess.run(
            [*prefix, sys.executable, str(script), url], capture_output=True, text=True
        )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"read_only": True, "executions": 1}


def test_migrations_form_one_chain_ending_at_head_revision() -> None:
    """Each migration file NNNN_*.py is revision NNNN revising the one before it, no number
    twice, the last one HEAD_REVISION: branches developed in parallel that took the same
    number would otherwise give alembic two heads (it refuses to upgrade)."""
    import re

    import lazyflow_core.store.migrations as migrations

    versions = Path(migrations.__file__).parent / "versions"
    files = sorted(p for p in versions.glob("[0-9][0-9][0-9][0-9]_*.py"))
    numbers = [p.name[:4] for p in files]
    assert len(numbers) == len(set(numbers)), f"a migration number is used twice: {numbers}"
    previous = None
    for path, number in zip(files, numbers, strict=True):
        source = path.read_text()
        revision = re.search(r'^revision = "(\w+)"', source, re.M)
        down = re.search(r"^down_revision = (.+)$", source, re.M)
        assert revision and revision.group(1) == number, path.name
        assert down and down.group(1).strip("\"'") == (previous or "None"), path.name
        previous = number
    assert previous == HEAD_REVISION


def _page_size(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute("PRAGMA page_size").fetchone()[0])
    finally:
        conn.close()


def test_a_new_store_file_has_big_pages_and_an_old_one_keeps_its_own(tmp_path: Path) -> None:
    """New files get `PAGE_SIZE` pages (cheaper random inserts); a store made with
    SQLite's default 4 KiB pages opens, is written and read as before, unconverted."""
    from lazyflow_core import Scheduler

    from .tasks import fan_out

    new, old = tmp_path / "new.db", tmp_path / "old.db"
    conn = sqlite3.connect(old)
    conn.execute("PRAGMA page_size=4096")
    conn.execute("PRAGMA journal_mode=WAL")  # fixes the page size, as an old store's is
    conn.close()
    for path in (new, old):
        for cold in (True, False):
            sched = Scheduler(db=f"sqlite:///{path}")
            assert sched.run(fan_out(3)) == 1 + 2 + 3
            assert sched.last_run is not None and (sched.last_run.executed > 0) == cold
            sched.close()
    assert _page_size(new) == PAGE_SIZE != 4096
    assert _page_size(old) == 4096


def test_a_new_store_where_no_file_can_be_made_is_a_store_error_with_advice() -> None:
    """The new-store path takes the migration lock (a file beside the store) before
    anything else; where that file cannot be made (here /proc, which even root cannot
    write), the error is the StoreError saying what to check, not an OSError."""
    with pytest.raises(StoreError, match="Check that its directory exists"):
        Store("sqlite:////proc/lazyflow-test-store.db").ensure_schema()
