"""lazyflow: workflows as lazy Python expressions.

A ``@task`` call returns an expression; a `Scheduler` evaluates it, running independent
calls in parallel, caching every call by the hash of its code and arguments, and recording
the provenance of every value.
"""

import importlib
import sys
from types import ModuleType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .errors import (
        ConfigError,
        CycleError,
        ExecutorError,
        FileOperationError,
        HashingError,
        LazyExpressionError,
        LazyflowError,
        MissingFileError,
        RunCancelled,
        SerializationError,
        StoreError,
        TaskCallError,
        TaskDefinitionError,
        TaskResultError,
        ValueNestingError,
        WorkerLost,
        WorkflowImportError,
    )
    from .events import Decision, JobEvent, Reason, RunSummary, TaskCounts
    from .executors.spark import spark_session
    from .expression import Expression, catch, cond, flat_map, map_, seq
    from .files import Dir, File, glob_files
    from .functional import compose, const, delay, flatten, force, starmap, zip_
    from .hashing import hash_value, register_hasher
    from .scheduler import Scheduler, run
    from .scripting import ScriptError, script
    from .staging import StagingDir, StagingFile
    from .tagging import apply_tags
    from .task import PartialTask, Task, task
    from .workflow import load_task

# Nothing is imported with the package itself: ``lazyflow --help`` and ``lazyflow log``
# (whose modules live in `lazyflow_core.cli`, so Python runs this file first) need none of
# the task layer, which is most of what importing lazyflow costs (~60 ms of CPU). The
# first public name asked for loads all of `_CORE` at once, as an eager import did (its
# modules register hashers and containers that hashing relies on); the scheduler, its
# executors, the event types and `script` load only when their own names are asked for.
_CORE = {
    "errors": (
        "ConfigError",
        "CycleError",
        "ExecutorError",
        "FileOperationError",
        "HashingError",
        "LazyExpressionError",
        "LazyflowError",
        "MissingFileError",
        "RunCancelled",
        "SerializationError",
        "StoreError",
        "TaskCallError",
        "TaskDefinitionError",
        "TaskResultError",
        "ValueNestingError",
        "WorkerLost",
        "WorkflowImportError",
    ),
    "expression": ("Expression", "catch", "cond", "flat_map", "map_", "seq"),
    "files": ("Dir", "File", "glob_files"),
    "functional": ("compose", "const", "delay", "flatten", "force", "starmap", "zip_"),
    "hashing": ("hash_value", "register_hasher"),
    "staging": ("StagingDir", "StagingFile"),
    "tagging": ("apply_tags",),
    "task": ("PartialTask", "Task", "task"),
}
_LAZY = {
    "Decision": "events",
    "JobEvent": "events",
    "Reason": "events",
    "RunSummary": "events",
    "TaskCounts": "events",
    "Scheduler": "scheduler",
    "run": "scheduler",
    "load_task": "workflow",
    "ScriptError": "scripting",
    "script": "scripting",
    "spark_session": "executors.spark",
    "decision_totals": "events",
}
_MODULE_OF = {name: module for module, names in _CORE.items() for name in names} | _LAZY


_core_loaded = False


def _load_core() -> None:
    global _core_loaded
    namespace = globals()
    for module, names in _CORE.items():
        loaded = importlib.import_module(f"{__name__}.{module}")
        for name in names:
            namespace[name] = getattr(loaded, name)
    _core_loaded = True


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if not _core_loaded:  # the first public name: the core, as one import did
        _load_core()
    if name not in globals():
        globals()[name] = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    return globals()[name]


class _Package(ModuleType):
    """The package's module type. Importing the submodule `lazyflow_core.task` sets the
    package's attribute ``task`` to that module; the name is the decorator, so the
    submodule is not bound here (it stays in ``sys.modules``, where imports find it)."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "task" and isinstance(value, ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "CycleError",
    "Decision",
    "Dir",
    "ExecutorError",
    "Expression",
    "File",
    "FileOperationError",
    "HashingError",
    "JobEvent",
    "LazyExpressionError",
    "LazyflowError",
    "MissingFileError",
    "PartialTask",
    "Reason",
    "RunCancelled",
    "RunSummary",
    "Scheduler",
    "ScriptError",
    "SerializationError",
    "StagingDir",
    "StagingFile",
    "StoreError",
    "Task",
    "TaskCallError",
    "TaskCounts",
    "TaskDefinitionError",
    "TaskResultError",
    "ValueNestingError",
    "WorkerLost",
    "WorkflowImportError",
    "__version__",
    "apply_tags",
    "catch",
    "compose",
    "cond",
    "const",
    "decision_totals",
    "delay",
    "flat_map",
    "flatten",
    "force",
    "glob_files",
    "hash_value",
    "load_task",
    "map_",
    "register_hasher",
    "run",
    "script",
    "seq",
    "spark_session",
    "starmap",
    "task",
    "zip_",
]
