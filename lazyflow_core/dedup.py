"""Cross-process in-flight dedup: a run's side of ``Scheduler(dedup="store")``.

Within one run, identical calls are computed once (the evaluator aliases them). Across
runs sharing a store (parallel orchestrator tasks, several workers, laptops on one team
cache), `StoreDedup` makes every call that must run wait for a lease first
(`store.leases`: a row per call, expired when its holder dies):

- calls that must run are held here (`hold`) instead of going to the dispatcher; when
  the evaluator has nothing else to do before dispatching, `settle` leases them all in
  one transaction. The calls leased go to the dispatcher; the calls whose result was
  stored meanwhile go back to the cache lookups; the others wait (`waiting`);
- a job that ends (done or failed) queues its lease's release with the store writer,
  after its result (`LeaseReleaseRecord`), at the next `settle`: a waiter that sees the
  lease gone finds the result;
- waiting calls are polled with backoff (`wait`, `poll`: from `MIN_POLL` to `MAX_POLL`
  seconds while nothing changes); a call whose lease ended or expired goes back to the
  cache lookups: it is reused (a ``cached`` job) if its holder stored it, and leased
  and computed here if not (the holder failed, or died first).

A holder that fails releases its lease like one that succeeds: failures are not
cached, so the next waiter computes the call again (and may succeed). `NoDedup` is the
null object for runs with dedup off: the evaluator's hooks then cost an attribute test.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Protocol

from .dispatch import Dispatcher
from .events import Reason
from .frames import PENDING, CallFrame
from .lookups import CacheLookups
from .recording import Writer
from .records import LeaseReleaseRecord

LEASE_SECONDS = 60.0
"""The default lease `ttl`: a holder whose heartbeat stopped this long ago is taken over
(`store.leases`)."""
MIN_POLL = 0.01
"""Seconds before the first look at leases others hold (and after any change)."""
MAX_POLL = 0.5
"""The longest wait between two looks, while nothing changes."""

LEASED_REASONS = frozenset(
    {Reason.NOT_CACHED, Reason.CHILD_CHANGED, Reason.FILE_CHANGED, Reason.VALUE_UNREADABLE}
)
"""Why a call runs when another run may be computing it too (not: caching is off)."""


class LeaseTable(Protocol):
    """What a run needs of the store's leases (`store.leases.Leases` implements it)."""

    def take(self, calls: Sequence[tuple[str, bool]]) -> tuple[set[str], set[str]]:
        """Lease what no live run holds: ``(taken, stored)`` (see `Leases.take`)."""
        ...

    def free(self, call_hashes: Sequence[str]) -> set[str]:
        """Which of these calls no live run holds a lease on any more."""
        ...


class NoDedup:
    """Dedup off (the default): calls run without leases."""

    pending: list[tuple[CallFrame, bool]] = []  # never filled: shared, empty
    ended: list[str] = []
    waiting: list[CallFrame] = []

    def hold(self, frame: CallFrame, reason: Reason) -> bool:
        return False

    def job_ended(self, frame: CallFrame) -> None:
        pass

    def settle(self) -> None:
        pass

    def wait(self) -> None:
        pass


NO_DEDUP = NoDedup()


class StoreDedup:
    """One run's leases on the calls it computes, and its waits on others' (module doc)."""

    def __init__(
        self,
        leases: LeaseTable,
        dispatcher: Dispatcher,
        lookups: CacheLookups,
        writer: Writer,
    ) -> None:
        self.leases = leases
        self.dispatcher = dispatcher
        self.lookups = lookups
        self.writer = writer
        self.pending: list[tuple[CallFrame, bool]] = []  # (frame, check for a result)
        self.ended: list[str] = []  # leases of ended jobs, released at the next settle
        self.waiting: list[CallFrame] = []  # calls leased by other runs
        self.held: set[str] = set()
        self.delay = MIN_POLL
        self.next_poll = 0.0
        self.taken = 0  # calls leased (and computed) here
        self.waited = 0  # calls found leased by another run

    def hold(self, frame: CallFrame, reason: Reason) -> bool:
        """`frame` must run (`reason`): True if it waits for a lease first."""
        if reason not in LEASED_REASONS:
            return False
        # NOT_CACHED: the lookup found no result, so one stored by now was just computed
        self.pending.append((frame, reason is Reason.NOT_CACHED))
        return True

    def job_ended(self, frame: CallFrame) -> None:
        """A job ended (done or failed): its lease, if it has one, goes at the next
        settle, after the records its end queued."""
        if frame.call_hash in self.held:
            self.ended.append(frame.call_hash)

    def settle(self) -> None:
        """Release the leases of ended jobs; lease the held calls (one transaction)."""
        if self.ended:
            put = self.writer.put
            for ended in self.ended:
                self.held.discard(ended)
                put(LeaseReleaseRecord(ended))
            self.ended = []
        if self.pending:
            frames = [(f, check) for f, check in self.pending if f.state == PENDING]
            self.pending = []
            taken, stored = self.leases.take([(f.call_hash, c) for f, c in frames])  # type: ignore[misc]
            for frame, _ in frames:
                call_hash = frame.call_hash
                if call_hash in taken:
                    self.held.add(call_hash)
                    self.dispatcher.put(frame)
                elif call_hash in stored:
                    self.look_up_again(frame)
                else:
                    if not self.waiting:
                        self.delay = MIN_POLL
                        self.next_poll = time.monotonic() + MIN_POLL
                    self.waiting.append(frame)
                    self.waited += 1
            self.taken += len(taken)
        if self.waiting and time.monotonic() >= self.next_poll:
            self.poll()

    def wait(self) -> None:
        """Nothing to dispatch, calls wait for other runs: wait for a job of this run to
        finish or for the next poll, whichever comes first."""
        timeout = self.next_poll - time.monotonic()
        if timeout > 0:
            self.dispatcher.wait(timeout)
        if time.monotonic() >= self.next_poll:
            self.poll()

    def poll(self) -> None:
        """Look at the leases the waiting calls wait for: calls no live run holds any
        more are looked up again (reused if stored, else leased here)."""
        frames = [f for f in self.waiting if f.state == PENDING]
        free = self.leases.free([f.call_hash for f in frames]) if frames else set()  # type: ignore[misc]
        self.waiting = [f for f in frames if f.call_hash not in free]
        for frame in frames:
            if frame.call_hash in free:
                self.look_up_again(frame)
        self.delay = MIN_POLL if free else min(self.delay * 2, MAX_POLL)
        self.next_poll = time.monotonic() + self.delay

    def look_up_again(self, frame: CallFrame) -> None:
        """Back to the cache lookups: another run may have stored the call."""
        self.lookups.task_has_calls[frame.task.hash] = True  # it may have its first call now
        self.lookups.waiting.append(frame)


Dedup = NoDedup | StoreDedup
"""What the evaluator holds: `NO_DEDUP`, or a run's `StoreDedup`."""
