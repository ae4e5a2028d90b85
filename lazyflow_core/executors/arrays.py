"""The records of remote execution: a job on its way, a submitted array job, a child that
ended; and the small conversions the Batch backends share (resources, chunks of ids).

Kept apart from `remote` so that a backend module reads as what it adds: how to submit,
poll and cancel on its service.
"""

from __future__ import annotations

import math
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from .base import JobOutcome, JobSpec


@dataclass(slots=True, eq=False)
class RemoteJob:
    """A job on its way: its spec, who waits for it, infrastructure failures so far."""

    spec: JobSpec
    futures: list[Future[JobOutcome]]
    failures: int = 0


@dataclass(slots=True, eq=False)
class ArrayJob:
    """One submitted array job (a plain job when it holds one bundle).

    `bundles[i][j]` is job j of bundle i, or None for a position nobody here waits for
    (in an array of an earlier run this executor re-attached to).
    """

    job_id: str
    prefix: str
    bundles: list[list[RemoteJob | None]]
    done: set[int] = field(default_factory=set)
    counts: dict[str, int] = field(default_factory=dict)  # the backend's, last seen

    @property
    def finished(self) -> bool:
        return len(self.done) >= len(self.bundles)


@dataclass(frozen=True, slots=True)
class Finished:
    """Child `index` of an array job ended; `failure` says why, if it failed."""

    index: int
    failure: str | None = None


def chunks(items: list[Any], size: int) -> list[list[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def resources_of(spec: JobSpec) -> dict[str, Any]:
    return spec.task.options.resources


def memory_mib(resources: dict[str, Any]) -> int | None:
    """A task's ``resources`` memory (normalized to bytes by `resources`) in MiB, rounded
    up, as Batch services take it; None if it asks for none."""
    memory = resources.get("memory")
    return math.ceil(memory / 2**20) if memory else None
