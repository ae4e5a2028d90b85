"""The lazyflow error hierarchy.

Every error that lazyflow raises itself is a `LazyflowError`. Messages follow one rule:
say what failed, on which task and argument, show the bad value with ``!r``, and say how
to fix it. Exceptions raised by user tasks are never wrapped: they are re-raised with their
original type (see `evaluator`).
"""

from __future__ import annotations


class LazyflowError(Exception):
    """Base class of every error lazyflow raises itself."""


class TaskDefinitionError(LazyflowError):
    """A `@task` decorator was used with invalid options."""


class TaskCallError(LazyflowError, TypeError):
    """A task was called with arguments that do not match its signature."""


class HashingError(LazyflowError, TypeError):
    """A value cannot be hashed, so a call using it cannot be cached."""


class TaskResultError(LazyflowError):
    """A task returned something the scheduler cannot handle."""


class ExecutorError(LazyflowError):
    """An executor is unknown or misconfigured."""


class WorkflowImportError(LazyflowError):
    """A workflow reference (``module:task`` or ``file.py:task``) cannot be loaded."""


class StoreError(LazyflowError):
    """The store cannot be opened or used."""


class RunCancelled(LazyflowError):
    """The run was cancelled with `Scheduler.cancel()`."""


class RemoteTraceback(Exception):
    """The traceback of an exception raised in another process (shown as the cause).

    Not a LazyflowError: it only carries text, chained to the task's own exception.
    """

    def __init__(self, tb: str) -> None:
        super().__init__(tb)
        self.tb = tb

    def __str__(self) -> str:
        return f'\n"""\n{self.tb}"""'
