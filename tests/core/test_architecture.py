"""Dependencies point one way; the store schema and its migrations agree."""

from __future__ import annotations

import ast
import os
from pathlib import Path

import pytest

CORE = Path(__file__).resolve().parents[2] / "lazyflow_core"

# module -> lazyflow_core modules it must not import (directly)
FORBIDDEN = {
    "hashing": {
        "values",
        "codehash",
        "files",
        "expression",
        "task",
        "evaluator",
        "scheduler",
        "store",
        "executors",
        "cli",
    },
    "values": {
        "codehash",
        "files",
        "expression",
        "task",
        "frames",
        "evaluator",
        "scheduler",
        "store",
        "executors",
        "cli",
    },
    "codehash": {"files", "expression", "task", "evaluator", "scheduler", "store", "executors"},
    "files": {"expression", "task", "evaluator", "scheduler", "store", "executors"},
    "expression": {"task", "evaluator", "scheduler", "store", "executors"},
    "task": {"evaluator", "scheduler", "store", "executors"},
    "frames": {"evaluator", "scheduler", "store", "executors", "cli"},
    "recording": {"evaluator", "scheduler", "store", "cli"},
    "records": {"frames", "evaluator", "scheduler", "store", "executors", "cli", "task"},
    "explain": {"scheduler", "store", "executors", "cli"},
    "evaluator": {"scheduler", "store", "cli"},
    "executors": {"evaluator", "scheduler", "store", "cli"},
    "store": {"evaluator", "scheduler", "executors", "cli"},
    "lazy": {"hashing", "files", "expression", "task", "evaluator", "scheduler", "store"},
    "preview": {"hashing", "files", "expression", "task", "evaluator", "scheduler"}
    | {"store", "executors", "config", "cli"},
    # which distribution provides a module: the standard library's importlib only
    "distributions": {"hashing", "values", "codehash", "files", "expression", "task"}
    | {"evaluator", "scheduler", "store", "executors", "config", "cli"},
    # the config file is read by the store and the scheduler: it imports neither
    "config": {"hashing", "files", "expression", "task", "evaluator", "scheduler"}
    | {"store", "executors", "provenance", "cli"},
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):  # imports only for type checking do not count
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            node.body = []
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                found.add(module.split(".")[0] if module else "")
                if not module:
                    found.update(a.name for a in node.names)
            elif module.startswith("lazyflow_core."):
                found.add(module.split(".")[1])
            else:
                found.add(module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    return found


def _files(name: str) -> list[Path]:
    target = CORE / name
    return sorted(target.rglob("*.py")) if target.is_dir() else [CORE / f"{name}.py"]


@pytest.mark.parametrize("module", sorted(FORBIDDEN))
def test_dependencies_point_one_way(module: str) -> None:
    for path in _files(module):
        bad = _imports(path) & FORBIDDEN[module]
        assert not bad, f"{path.relative_to(CORE)} imports {sorted(bad)}"


def test_the_store_writer_does_not_import_the_store() -> None:
    """The writer gets a `WriteTarget` from the store: no sql <-> writer cycle."""
    for name in ("writer", "batch_write", "statements"):
        imported = _imports(CORE / "store" / f"{name}.py")
        assert "sql" not in imported, f"store/{name}.py imports store.sql"


def test_core_never_imports_the_adapters() -> None:
    for path in CORE.rglob("*.py"):
        for name in _imports(path):
            assert not name.startswith(
                ("airflow", "prefect", "lazyflow_airflow", "lazyflow_prefect")
            ), f"{path} imports {name}"


def test_head_revision_constant_matches_alembic() -> None:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from lazyflow_core.store.sql import HEAD_REVISION

    cfg = Config()
    cfg.set_main_option("script_location", os.fspath(CORE / "store" / "migrations"))
    assert ScriptDirectory.from_config(cfg).get_current_head() == HEAD_REVISION


def test_migrations_create_exactly_the_declared_schema(sqlite_url: str) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from lazyflow_core.store import Store
    from lazyflow_core.store.schema import metadata

    store = Store(sqlite_url)
    store._upgrade()  # the migrations themselves (a new store is created from metadata)
    from lazyflow_core.store.sql import HEAD_REVISION

    assert store.current_revision() == HEAD_REVISION
    with store.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"version_table": "lf_alembic_version"})
        diff = compare_metadata(context, metadata)
    ours = [d for d in diff if not (d[0] == "remove_table" and d[1].name == "lf_alembic_version")]
    assert ours == []


def test_new_store_is_created_at_head_and_upgrades_cleanly(db_url: str) -> None:
    from sqlalchemy import inspect

    from lazyflow_core.store import Store
    from lazyflow_core.store.sql import HEAD_REVISION

    fresh = Store(db_url)
    fresh.ensure_schema()
    assert fresh.current_revision() == HEAD_REVISION
    with fresh.engine.connect() as conn:
        created = set(inspect(conn).get_table_names())
    assert {"lf_calls", "lf_values", "lf_jobs", "lf_alembic_version"} <= created
    fresh._upgrade()  # alembic agrees the schema is current: nothing to do, no error
    assert fresh.current_revision() == HEAD_REVISION
    fresh.close()


def test_an_older_store_is_upgraded_automatically(db_url: str) -> None:
    """A store at the first revision is migrated on first use and keeps working."""
    from sqlalchemy import inspect

    from lazyflow_core import Scheduler, task
    from lazyflow_core.store import Store
    from lazyflow_core.store.sql import HEAD_REVISION

    old = Store(db_url)
    old._upgrade("0001")
    with old.engine.connect() as conn:
        columns = {c["name"] for c in inspect(conn).get_columns("lf_tasks")}
    assert "dependencies" not in columns
    old.close()

    @task(version="1")
    def double(x: int) -> int:
        return 2 * x

    sched = Scheduler(db=db_url)
    assert sched.run(double(21)) == 42
    assert sched.store.current_revision() == HEAD_REVISION
    assert sched.run(double(21)) == 42
    assert sched.last_run is not None and sched.last_run.cached == 1
    sched.close()


def _without_rowid(store: object, table: str) -> bool:
    from sqlalchemy import text

    with store.engine.connect() as conn:  # type: ignore[attr-defined]
        sql = conn.execute(
            text("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = :t"), {"t": table}
        ).scalar_one()
    return "WITHOUT ROWID" in sql


def test_migration_0010_rebuilds_the_call_tables_keeping_their_rows(sqlite_url: str) -> None:
    """0010 turns lf_calls and lf_call_args into rowid tables (random-key inserts touch
    only their narrow key index); a store written before it keeps every row, its
    indexes and its cache hits, and the downgrade restores the old layout."""
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import text

    from lazyflow_core import Scheduler, task
    from lazyflow_core.store import Store

    @task(version="1")
    def add_rowid_test(x: int, y: int) -> int:
        return x + y

    tables = ("lf_calls", "lf_call_args")
    old = Store(sqlite_url)
    old._upgrade("0009")
    assert all(_without_rowid(old, t) for t in tables)
    old.close()
    sched = Scheduler(db=sqlite_url)
    cfg = Config()
    cfg.set_main_option("script_location", os.fspath(CORE / "store" / "migrations"))
    cfg.set_main_option("version_table", "lf_alembic_version")
    with sched.store.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0009")
    assert all(_without_rowid(sched.store, t) for t in tables)
    assert sched.run([add_rowid_test(i, 1) for i in range(20)]) == list(range(1, 21))
    dump = "SELECT * FROM {} ORDER BY 1, 2"
    with sched.store.engine.connect() as conn:
        before = {t: conn.execute(text(dump.format(t))).all() for t in tables}
    sched.close()

    sched = Scheduler(db=sqlite_url)  # opening migrates it to head
    sched.store.ensure_schema()
    assert not any(_without_rowid(sched.store, t) for t in tables)
    with sched.store.engine.connect() as conn:
        after = {t: conn.execute(text(dump.format(t))).all() for t in tables}
        indexes = {
            name
            for (name,) in conn.execute(
                text("SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL")
            )
        }
    assert after == before and len(before["lf_call_args"]) == 40
    assert {"ix_lf_calls_result_hash", "ix_lf_call_args_value_hash"} <= indexes
    assert sched.run([add_rowid_test(i, 1) for i in range(20)]) == list(range(1, 21))
    assert sched.last_run is not None and sched.last_run.cached == 20
    with sched.store.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0009")
    assert all(_without_rowid(sched.store, t) for t in tables)
    sched.close()


PACKAGE_PROBE = """
import sys
import lazyflow_core
print(sorted(m for m in sys.modules if m.startswith("lazyflow_core.")))
import lazyflow_core.task as module  # the submodule first, as an internal import would
from lazyflow_core import Task, task, hash_value
print(callable(task) and not isinstance(task, type(sys)), module is task)
@task
def f(x: int) -> int:
    return x
print(isinstance(f, Task), len(hash_value(f.func)) > 0)  # codehash's hasher is in
"""


def test_the_package_loads_its_modules_on_first_use_and_task_stays_the_decorator() -> None:
    """``import lazyflow_core`` imports no submodule; the first public name loads the
    task layer at once (with the hashers it registers), and ``task`` is the decorator
    even when the submodule ``lazyflow_core.task`` was imported first."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", PACKAGE_PROBE], capture_output=True, text=True)
    assert out.stdout.splitlines() == ["[]", "True True", "True True"], out.stderr
