"""lazyflow: workflows as lazy Python expressions.

A ``@task`` call returns an expression; a `Scheduler` evaluates it, running independent
calls in parallel, caching every call by the hash of its code and arguments, and recording
the provenance of every value.
"""

from .errors import (
    ExecutorError,
    HashingError,
    LazyflowError,
    RunCancelled,
    StoreError,
    TaskCallError,
    TaskDefinitionError,
    TaskResultError,
    WorkflowImportError,
)
from .events import Decision, JobEvent, Reason, RunSummary, TaskCounts
from .expression import Expression, catch, cond, flat_map, map_, seq
from .files import Dir, File
from .hashing import hash_value, register_hasher
from .scheduler import Scheduler, run
from .task import PartialTask, Task, task
from .workflow import load_task

__version__ = "0.1.0"

__all__ = [
    "Decision",
    "Dir",
    "ExecutorError",
    "Expression",
    "File",
    "HashingError",
    "JobEvent",
    "LazyflowError",
    "PartialTask",
    "Reason",
    "RunCancelled",
    "RunSummary",
    "Scheduler",
    "StoreError",
    "Task",
    "TaskCallError",
    "TaskCounts",
    "TaskDefinitionError",
    "TaskResultError",
    "WorkflowImportError",
    "__version__",
    "catch",
    "cond",
    "flat_map",
    "hash_value",
    "load_task",
    "map_",
    "register_hasher",
    "run",
    "seq",
    "task",
]
