"""Executors named in the config file, built when a job first needs them.

A project's ``lazyflow.toml`` may define executors that need optional packages, a cluster
or cloud credentials (``[executors.batch] type = "aws_batch"``). Every `Scheduler` made in
the project knows their names, so ``@task(executor="batch")`` works, but constructing one
(importing boto3, connecting to a Dask scheduler) waits until a job is submitted to it: a
run that never uses it pays nothing and needs none of its packages.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any, cast

from .base import Executor, Inline, JobOutcome, JobSpec, ReportsStart

if TYPE_CHECKING:
    from ..config import ExecutorConfig


class ConfiguredExecutor(Executor):
    """Stands for the executor `spec` describes; builds it on first use, then delegates."""

    def __init__(self, spec: ExecutorConfig) -> None:
        self.spec = spec
        self.name = spec.name
        self._real: Executor | None = None

    @property
    def real(self) -> Executor:
        """The executor itself (built now if it was not yet)."""
        if self._real is None:
            self._real = self.spec.create()
        return self._real

    @property
    def inline(self) -> Inline:  # type: ignore[override]  # read-only here: it is the real one's
        """The real executor's capability (asked when its first job is dispatched)."""
        return self.real.inline

    @property
    def reports_start(self) -> bool:  # type: ignore[override]  # the real one's
        return self.real.reports_start

    @property
    def posts_outcomes(self) -> bool:  # type: ignore[override]  # the real one's
        return self.real.posts_outcomes

    def start(self) -> None:
        self.real.start()

    def submit(
        self, spec: JobSpec, on_start: Callable[[], None] | None = None
    ) -> Future[JobOutcome]:
        if on_start is None:
            return self.real.submit(spec)
        return cast(ReportsStart, self.real).submit(spec, on_start=on_start)

    def flush(self) -> None:
        if self._real is not None:
            self._real.flush()

    def shutdown(self, *, cancel: bool = False) -> None:
        if self._real is not None:
            self._real.shutdown(cancel=cancel)

    def __getattr__(self, attr: str) -> Any:
        # anything else an executor offers (its own options, ...) is the real executor's
        if attr.startswith("_") or attr in ("spec", "name"):
            raise AttributeError(attr)
        return getattr(self.real, attr)

    def __repr__(self) -> str:
        state = "built" if self._real is not None else "not built yet"
        return f"<executor {self.name!r} ({self.spec.type}, from {self.spec.source}; {state})>"
