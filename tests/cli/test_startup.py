"""Commands start fast: nothing heavy is imported that the command does not use.

The timings themselves are in benchmarks/README.md (start-up); these tests check the
imports that decide them, which do not depend on how busy the machine is.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from lazyflow_core import Scheduler, task

HEAVY = (
    "sqlalchemy",
    "rich",
    "fsspec",
    "multiprocessing",
    "alembic",
    "lazyflow_core.scheduler",
    "asyncio",
    "importlib.metadata",
    "difflib",
)

PROBE = """
import sys
from lazyflow_core.cli import main
code = main({args!r})
print("MODULES", " ".join(m for m in {heavy!r} if m in sys.modules))
"""


def _loaded(args: list[str], cwd: Path) -> set[str]:
    code = PROBE.format(args=args, heavy=HEAVY)
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=60
    ).stdout
    line = next(x for x in out.splitlines() if x.startswith("MODULES"))
    return set(line.split()[1:])


def test_importing_lazyflow_core_loads_nothing_heavy() -> None:
    code = f"import sys, lazyflow_core; print([m for m in {HEAVY!r} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "[]", out.stderr


def test_help_imports_no_store_rich_or_scheduler(tmp_path: Path) -> None:
    assert _loaded(["--help"], tmp_path) == set()


@task(version="1")
def one() -> int:
    return 1


@pytest.fixture
def sqlite_store(sqlite_url: str) -> str:
    with Scheduler(db=sqlite_url) as sched:
        sched.run(one(), tags={"k": "v"})
    return sqlite_url


def test_log_list_on_sqlite_imports_nothing_heavy(tmp_path: Path, sqlite_store: str) -> None:
    """The list is read with sqlite3 (cli/fastlog.py), not through SQLAlchemy."""
    assert _loaded(["log", "--db", sqlite_store, "--tag", "k=v"], tmp_path) == set()


def test_log_of_one_execution_imports_neither_rich_nor_the_scheduler(
    tmp_path: Path, sqlite_store: str
) -> None:
    loaded = _loaded(["log", "-", "--db", sqlite_store], tmp_path)
    assert not loaded & {"rich", "multiprocessing", "alembic", "lazyflow_core.scheduler"}


DEMO = Path(__file__).resolve().parents[2] / "examples" / "demo.py"


def test_a_cached_run_on_sqlite_imports_no_sqlalchemy(tmp_path: Path) -> None:
    """A run on a SQLite store at the current schema checks the schema, looks up and
    records through sqlite3 (store/sqlitefile.py), and the first run creates the store
    from a schema script through sqlite3 too (store/ddl.py): SQLAlchemy and alembic are
    for migrating a store and for the provenance queries."""
    db = f"sqlite:///{tmp_path / 'lazyflow.db'}"
    args = ["run", str(DEMO), "main", "--n", "20", "--db", db]
    assert not _loaded(args, tmp_path) & {"sqlalchemy", "alembic"}  # creates the store
    # served from the cache; progress is plain (stderr is no terminal here): no rich
    assert not _loaded(args, tmp_path) & {"sqlalchemy", "alembic", "rich"}
    assert not _loaded([*args[:-3], "--n", "21", *args[-2:]], tmp_path) & {"sqlalchemy"}


LOADED = """
import sys
from lazyflow_core.cli import main
main({args!r})
print("MODULES", " ".join(m for m in sys.modules if m.startswith("lazyflow_core")))
"""


def _lazyflow_modules(args: list[str], cwd: Path) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", LOADED.format(args=args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    return set(next(x for x in out.splitlines() if x.startswith("MODULES")).split()[1:])


def test_help_and_the_log_list_import_no_task_layer(tmp_path: Path, sqlite_store: str) -> None:
    """`lazyflow_core` imports its modules on first use: printing help loads the CLI's
    own module alone, and the list of executions none of the task layer."""
    assert _lazyflow_modules(["--help"], tmp_path) == {"lazyflow_core", "lazyflow_core.cli"}
    loaded = _lazyflow_modules(["log", "--db", sqlite_store], tmp_path)
    assert "lazyflow_core.cli.fastlog" in loaded
    task_layer = {"lazyflow_core.task", "lazyflow_core.expression", "lazyflow_core.hashing"}
    assert not loaded & task_layer, sorted(loaded)
