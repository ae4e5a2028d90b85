"""The lazyflow error hierarchy.

Every error that lazyflow raises itself is a `LazyflowError`. Messages follow one rule:
say what failed, on which task and argument, show the bad value with ``!r``, and say how
to fix it. Exceptions raised by user tasks are never wrapped: they are re-raised with their
original type (see `evaluator`).
"""

from __future__ import annotations

from concurrent.futures import BrokenExecutor


class LazyflowError(Exception):
    """Base class of every error lazyflow raises itself."""


class TaskDefinitionError(LazyflowError):
    """A `@task` decorator was used with invalid options."""


class TaskCallError(LazyflowError, TypeError):
    """A task was called with arguments that do not match its signature."""


class HashingError(LazyflowError, TypeError):
    """A value cannot be hashed, so a call using it cannot be cached."""


class ValueNestingError(LazyflowError, ValueError):
    """A value is nested too deeply (or contains itself) to be searched for expressions."""


class LazyExpressionError(LazyflowError, TypeError):
    """A lazy expression was used as the value it stands for before it ran (its truth
    value, iterating it, its length). Still a TypeError, as Python would raise."""


class FileOperationError(LazyflowError, OSError):
    """A File or Dir operation cannot be done as asked (e.g. removing a directory that
    is not empty). Still an OSError, for code that catches those."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""  # not OSError's "[Errno None] ..."


class MissingFileError(LazyflowError, FileNotFoundError):
    """A task read a File or Dir argument that does not exist (it was absent when the
    call was made). Still a FileNotFoundError, for code that catches those; ``filename``
    is the path."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""  # not OSError's "[Errno None] ..."


class TaskResultError(LazyflowError):
    """A task returned something the scheduler cannot handle."""


class CycleError(TaskResultError):
    """Calls wait for each other's results (a call's result depends on the same call)."""


class ExecutorError(LazyflowError):
    """An executor is unknown or misconfigured."""


class SerializationError(LazyflowError, TypeError):
    """A job's argument or result cannot be pickled to cross a process boundary."""


class WorkerLost(ExecutorError, BrokenExecutor):
    """The worker process running a job died (a crash, ``os._exit``, the OOM killer).

    Also a `concurrent.futures.BrokenExecutor`, as the standard library's pools report it.
    The job fails (and is retried if its task has ``retries``); the jobs the worker had
    not started run on another worker.
    """


class WorkflowImportError(LazyflowError):
    """A workflow reference (``module:task`` or ``file.py:task``) cannot be loaded."""


class ConfigError(LazyflowError):
    """The configuration file (``lazyflow.toml`` / ``[tool.lazyflow]``) is invalid."""


class StoreError(LazyflowError):
    """The store cannot be opened or used."""


class IntegrationError(LazyflowError):
    """An orchestrator adapter (the Airflow provider, the Prefect collection) was used in
    a way it cannot serve: the message names the argument and the fix."""


class IntegrationValueError(IntegrationError, ValueError):
    """An adapter argument has the right type but an unusable value."""


class IntegrationTypeError(IntegrationError, TypeError):
    """An adapter argument (or the workflow it wraps) has a type the adapter cannot use."""


class RunCancelled(LazyflowError):
    """The run was cancelled with `Scheduler.cancel()`."""


class Terminated(SystemExit):
    """The run received SIGTERM (see `lazyflow_core.sigterm`).

    By the time this propagates out of `Scheduler.run`, the run was cancelled, its
    workers stopped and its records written (the execution is recorded as
    ``cancelled``). A `SystemExit` with status 128 + the signal number (143): uncaught,
    the program ends as the signal would have ended it, after its ``finally`` blocks.
    Not a `LazyflowError`: like Ctrl+C's `KeyboardInterrupt`, it is not an error, and
    ``except Exception`` does not swallow it.
    """

    def __init__(self, signum: int = 15) -> None:
        super().__init__(128 + signum)
        self.signum = signum

    def __str__(self) -> str:
        import signal

        try:
            name = signal.Signals(self.signum).name
        except ValueError:
            name = f"signal {self.signum}"
        return f"terminated by {name}"


class RemoteTraceback(Exception):
    """The traceback of an exception raised in another process (shown as the cause).

    Not a LazyflowError: it only carries text, chained to the task's own exception.
    """

    def __init__(self, tb: str) -> None:
        super().__init__(tb)
        self.tb = tb

    def __str__(self) -> str:
        return f'\n"""\n{self.tb}"""'
