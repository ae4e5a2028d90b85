"""lazyflow: workflows as lazy Python expressions.

A ``@task`` call returns an expression; a `Scheduler` evaluates it, running independent
calls in parallel, caching every call by the hash of its code and arguments, and recording
the provenance of every value.
"""

from typing import TYPE_CHECKING

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
from .expression import Expression, catch, cond, flat_map, map_, seq
from .files import Dir, File, glob_files
from .functional import compose, const, delay, flatten, force, starmap, zip_
from .hashing import hash_value, register_hasher
from .lazy import lazy_attributes
from .staging import StagingDir, StagingFile
from .tagging import apply_tags

# Imported here, not lazily: the name `task` is also the submodule `lazyflow_core.task`,
# which, imported first by anything else, would shadow the decorator.
from .task import PartialTask, Task, task

if TYPE_CHECKING:
    from .events import Decision, JobEvent, Reason, RunSummary, TaskCounts
    from .executors.spark import spark_session
    from .scheduler import Scheduler, run
    from .scripting import ScriptError, script
    from .workflow import load_task

# The scheduler, its executors and the event types load on first use: commands that only
# read the store (``lazyflow log``, ``--help``) start without them (multiprocessing,
# the evaluator...); so does `script` (subprocess and temporary directories).
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


__getattr__ = lazy_attributes(__name__, _LAZY, globals())


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
