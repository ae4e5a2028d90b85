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
    "codehash": {"files", "expression", "task", "evaluator", "scheduler", "store", "executors"},
    "files": {"expression", "task", "evaluator", "scheduler", "store", "executors"},
    "expression": {"task", "evaluator", "scheduler", "store", "executors"},
    "task": {"evaluator", "scheduler", "store", "executors"},
    "frames": {"evaluator", "scheduler", "store", "executors", "cli"},
    "recording": {"evaluator", "scheduler", "store", "cli"},
    "explain": {"scheduler", "store", "executors", "cli"},
    "evaluator": {"scheduler", "store", "cli"},
    "executors": {"evaluator", "scheduler", "store", "cli"},
    "store": {"evaluator", "scheduler", "executors", "cli"},
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
