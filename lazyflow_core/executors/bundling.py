"""Bundling: how many calls share one message, worker or container.

A tiny call costs far less than what carries it (a message to a process-pool worker, a
container on AWS Batch), so executors send calls in bundles sized by the *measured* run
time of their task: a task measured at microseconds goes hundreds of calls to a bundle,
one measured at minutes goes alone, and work spreads evenly over the workers. Every
executor that bundles (the process pool, the Batch executors) keeps a `RunTimes` and cuts
its queue with `cut`, so they agree on what "measured" means; only the scale differs (10
ms of work per process-pool message, a minute per Batch container).

Caching is unaffected by bundling: every call of a bundle is still its own job, with its
own outcome and its own record.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence


class RunTimes:
    """Measured run time per task name: `(calls, seconds)`, updated as outcomes come in.

    The one per-task timing record of lazyflow: the executors that bundle keep one, and
    the scheduler keeps one per run to decide which calls run on its own thread
    (`lazyflow_core.dispatch`); all key it by `Task.name` and feed it a job's
    `JobOutcome.started` / `finished`.

    `cost` is the expected run time of one call: its task's mean, never below `floor`
    (so that a bundle never grows past what `floor` allows), or `unmeasured` for a task
    not seen to finish yet. Not locked: a stale figure only changes how calls are
    bundled, so callers that share one across threads may read it without a lock.
    """

    __slots__ = ("_seen", "floor", "unmeasured")

    def __init__(self, unmeasured: float, floor: float) -> None:
        self.unmeasured = unmeasured
        self.floor = floor
        self._seen: dict[str, tuple[int, float]] = {}

    def record(self, name: str, started: float, finished: float) -> None:
        """One call of task `name` ran from `started` to `finished` (time.time())."""
        if not finished:
            return  # no timing (the job failed before it ran)
        count, seconds = self._seen.get(name, (0, 0.0))
        self._seen[name] = (count + 1, seconds + finished - started)

    def mean(self, name: str, at_least: int = 1) -> float | None:
        """Mean measured run time of task `name`, or None until `at_least` of its calls
        have been measured."""
        seen = self._seen.get(name)
        return None if seen is None or seen[0] < at_least else seen[1] / seen[0]

    def cost(self, name: str) -> float:
        """Expected run time of one call of task `name`, for bundling."""
        mean = self.mean(name)
        return self.unmeasured if mean is None else max(mean, self.floor)


def cut(costs: Sequence[float], target: float, max_jobs: int) -> Iterator[tuple[int, int]]:
    """Slices `(start, stop)` of consecutive calls holding about `target` seconds each.

    A bundle closes once its calls add up to `target` (a hair under, so that float
    rounding does not spill a call into the next bundle), or holds `max_jobs` calls, or
    the calls run out. A call longer than `target` goes alone.
    """
    target *= 0.999
    start, total = 0, 0.0
    last = len(costs) - 1
    for i, cost in enumerate(costs):
        total += cost
        if total >= target or i + 1 - start >= max_jobs or i == last:
            yield start, i + 1
            start, total = i + 1, 0.0
