"""Every error lazyflow raises itself is a `LazyflowError` (issue 13, item 11).

A user's ``except LazyflowError`` catches what lazyflow reports, and each error names the
task or value and the fix. The subclasses keep the builtin type too (a `TypeError` for
a misused lazy expression, an `OSError` for a refused file operation), for code that
catches those. A scan of the source keeps it so: a new ``raise ValueError(...)`` fails
here unless it is one of the few internal raises below, each caught before it leaves
lazyflow (or a protocol's own exception, like ``__getattr__``'s `AttributeError`).
"""

from __future__ import annotations

import ast
import builtins
from pathlib import Path

import pytest

from lazyflow_core import (
    Dir,
    FileOperationError,
    LazyExpressionError,
    LazyflowError,
    MissingFileError,
    Scheduler,
    StoreError,
    task,
)
from lazyflow_core.store.signing import MissingValue

ROOT = Path(__file__).resolve().parents[2]
# the engine and the orchestrator adapters, which raise lazyflow's errors too
PACKAGES = [ROOT / "lazyflow_core", ROOT / "lazyflow_airflow", ROOT / "lazyflow_prefect"]

INTERNAL = {
    # module and protocol __getattr__: Python's contract is AttributeError
    ("*", "AttributeError"),
    # the repl's executions list is a sequence: Python's contract is IndexError (for loops,
    # slicing and `executions[-1]` rely on it)
    ("cli/repl.py", "IndexError"),
    # parse_memory: _amount turns it into a TaskDefinitionError naming the task
    ("resources.py", "ValueError"),
    # a click type's converter: click reports it as a usage error of the option
    ("cli/params.py", "ValueError"),
    # a damaged validation-set row: read as damage (a miss with a warning), not raised
    ("store/sql.py", "ValueError"),
    # the writer process stopped: caught by the writer thread, counted as lost records
    ("store/writer.py", "OSError"),
    # the pipe to a worker closed: caught by the feeder (the worker's thread fails its jobs)
    ("executors/processes.py", "BrokenPipeError"),
    # unreachable (a kind the walk does not produce)
    ("values.py", "AssertionError"),
}

BUILTIN_ERRORS = {
    name
    for name, value in vars(builtins).items()
    if isinstance(value, type) and issubclass(value, BaseException)
}


def _raised_builtins(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Raise) and node.exc is not None:
            exc = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
            if isinstance(exc, ast.Name) and exc.id in BUILTIN_ERRORS:
                found.append((node.lineno, exc.id))
    return found


def test_lazyflow_raises_only_lazyflow_errors() -> None:
    stray = []
    for package in PACKAGES:
        for path in sorted(package.rglob("*.py")):
            rel = path.relative_to(package).as_posix()
            if package.name != "lazyflow_core":
                rel = f"{package.name}/{rel}"
            for line, name in _raised_builtins(path):
                if (rel, name) not in INTERNAL and ("*", name) not in INTERNAL:
                    stray.append(f"{rel}:{line}: raise {name}")
    assert not stray, "raise a LazyflowError subclass instead:\n" + "\n".join(stray)


@task
def inc(x: int) -> int:
    return x + 1


@pytest.mark.parametrize("use", [bool, list, len], ids=["bool", "iter", "len"])
def test_a_lazy_expression_used_as_a_value(use) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(LazyExpressionError) as info:
        use(inc(1))
    assert isinstance(info.value, LazyflowError) and isinstance(info.value, TypeError)
    assert "lazy expression" in str(info.value)


def test_file_operations_refused_or_missing(tmp_path: Path) -> None:
    with pytest.raises(MissingFileError, match=r"does not exist.*mkdir"):
        Dir(str(tmp_path / "absent")).files()
    d = Dir("memory://lazyflow-errors/full")  # through fsspec (a local one is os.rmdir's)
    d.file("x").touch()
    with pytest.raises(FileOperationError, match=r"not empty.*recursive=True") as info:
        d.rmdir()
    assert isinstance(info.value, OSError) and str(info.value).startswith("directory not empty")


def test_a_missing_value_is_a_store_error_naming_the_fix(tmp_path: Path) -> None:
    with Scheduler(db=f"sqlite:///{tmp_path / 'lazyflow.db'}") as sched:
        with pytest.raises(StoreError, match=r"no value 'f00d' in this store: check the hash"):
            sched.store.load_value("f00d")
        with pytest.raises(KeyError) as info:  # a mapping-style lookup, as documented
            sched.store.load_value("f00d")
    assert isinstance(info.value, MissingValue)
    assert str(info.value).startswith("no value 'f00d'")  # not KeyError's repr of it
