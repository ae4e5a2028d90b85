"""Executors: thread and process pools here; distributed backends plug in the same way."""

from .base import Executor, JobOutcome, JobSpec, run_job
from .processes import ProcessExecutor
from .threads import ThreadExecutor

__all__ = ["Executor", "JobOutcome", "JobSpec", "ProcessExecutor", "ThreadExecutor", "run_job"]
