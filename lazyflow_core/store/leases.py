"""Leases on calls in flight: one computation per call across runs sharing a store.

With ``Scheduler(dedup="store")`` a run takes a lease (an ``lf_leases`` row) on every
call it is about to compute, and other runs that need the call wait for its result
instead of computing it too (`lazyflow_core.dedup` is the run's side). Leases are taken
in batches: one short transaction per wave of calls that must run, serialized across
processes (SQLite: ``BEGIN IMMEDIATE``; PostgreSQL: a transaction-level advisory lock),
so checking who holds a call and inserting the run's own rows cannot race.

A lease ends when its holder's store writer commits the call's result (or its failure:
the next waiter then computes it), in the same transaction or after it
(`records.LeaseReleaseRecord`), so a waiter that sees the lease gone finds the result.
It *expires*, so nothing waits forever, when its holder is gone:

- the holder's execution is no longer ``running`` (it ended without releasing it);
- on PostgreSQL, the holder's session advisory lock is free: every run holding leases
  keeps one for as long as its connection lives, and the server drops it when the
  process dies (``kill -9``, a lost machine), at once;
- on the same host (`liveness.host_id`), the holder's process is gone;
- otherwise, the holder's heartbeat (its execution's ``heartbeat_at``, written by its
  store writer every third of the lease's `ttl`) is older than `ttl` seconds: a hung or
  unreachable holder. Clocks of the hosts sharing a store should agree to well within
  `ttl`.

A lease that expired while its holder was merely slow means the call may be computed
twice (the results are equal, and both are recorded); it never means a lost result.
"""

from __future__ import annotations

import contextlib
import hashlib
import time
from collections.abc import Iterable, Sequence
from typing import Any

from .. import liveness

_PG_LEASE_LOCK = 0x1A2F10F  # serializes lease transactions on one database
_CHUNK = 500

_JOINED = (
    "SELECT l.call_hash, l.execution_id, l.acquired_at, l.ttl, e.status, e.started_at, "
    "e.heartbeat_at, e.host_id, e.pid FROM lf_leases l LEFT JOIN lf_executions e "
    "ON e.id = l.execution_id WHERE l.call_hash IN ({marks})"
)


def holder_key(execution_id: str) -> int:
    """The PostgreSQL advisory lock key (a signed 64-bit int) of an execution's leases."""
    digest = hashlib.blake2b(b"lazyflow-lease:" + execution_id.encode(), digest_size=8)
    return int.from_bytes(digest.digest(), "big", signed=True)


class Leases:
    """The leases of one execution on one store, on a connection of their own.

    `take` leases calls (a batch per transaction), `free` says which leases of other
    runs have ended or expired, `close` drops every lease left (and, on PostgreSQL, the
    connection whose advisory lock says this run is alive).
    """

    def __init__(self, conn: Any, dialect: str, execution_id: str, ttl: float) -> None:
        self.dialect = dialect
        self.execution_id = execution_id
        self.ttl = ttl
        self.mark = "?" if dialect == "sqlite" else "%s"
        self.statements = 0
        # A DB-API connection of their own, no pool's (`Store._own_connection`): closing
        # it must end the session (and free its advisory lock), and the autocommit mode
        # set here must not reach other users of the pool.
        self._conn: Any = conn
        if dialect == "sqlite":
            self._conn.isolation_level = None  # BEGIN IMMEDIATE by hand
        elif dialect == "postgresql":
            self._execute("SELECT pg_advisory_lock(%s)", (holder_key(execution_id),))
            self._conn.commit()

    @property
    def beat_every(self) -> float:
        """How often the holder's store writer must beat: three beats per `ttl`."""
        return min(liveness.HEARTBEAT_SECONDS, self.ttl / 3)

    # -- taking leases -----------------------------------------------------------------
    def take(self, calls: Sequence[tuple[str, bool]]) -> tuple[set[str], set[str]]:
        """Lease the calls no live run holds; ``(taken, stored)``. `calls` are
        ``(call_hash, check)``: with `check`, a call whose result is stored by now (the
        caller's lookup found none) is in `stored`, not taken. The others are held by
        other runs."""
        hashes = [h for h, _ in calls]
        checked = [h for h, check in calls if check]
        with self._transaction():
            leased = {row[0]: row for row in self._select(_JOINED, hashes)}
            stored = {
                row[0]
                for row in self._select(
                    "SELECT call_hash FROM lf_calls WHERE call_hash IN ({marks})", checked
                )
            }
            expired = self._expired(leased.values())
            taken = {h for h in hashes if h not in stored and (h not in leased or h in expired)}
            if expired:
                self._executemany(
                    f"DELETE FROM lf_leases WHERE call_hash = {self.mark}",
                    [(h,) for h in sorted(expired)],
                )
            if taken:
                now = time.time()
                marks = ", ".join([self.mark] * 4)
                self._executemany(
                    f"INSERT INTO lf_leases (call_hash, execution_id, acquired_at, ttl) "
                    f"VALUES ({marks})",
                    [(h, self.execution_id, now, self.ttl) for h in sorted(taken)],
                )
        return taken, stored

    def free(self, call_hashes: Sequence[str]) -> set[str]:
        """Which of these calls no live run holds a lease on any more (released, or
        expired: see the module docstring)."""
        with self._transaction(lock=False):
            leased = {row[0]: row for row in self._select(_JOINED, call_hashes)}
            expired = self._expired(leased.values())
        return {h for h in call_hashes if h not in leased or h in expired}

    def close(self) -> None:
        """Drop this run's leases left (calls it never finished) and the connection."""
        with contextlib.suppress(Exception), self._transaction(lock=False):
            self._execute(
                f"DELETE FROM lf_leases WHERE execution_id = {self.mark}",
                (self.execution_id,),
            )
        with contextlib.suppress(Exception):
            self._conn.close()  # on PostgreSQL this also frees the run's advisory lock

    # -- expiry ------------------------------------------------------------------------
    def _expired(self, rows: Iterable[tuple[Any, ...]]) -> set[str]:
        """The call hashes of these lease rows (`_JOINED`) whose holder is gone."""
        now = time.time()
        here = liveness.host_id()
        out: set[str] = set()
        gone: dict[str, bool] = {}
        for call_hash, holder, acquired, ttl, status, started, beat, host, pid in rows:
            if holder == self.execution_id:
                continue
            dead = gone.get(holder)
            if dead is None:
                if status is not None and status != "running":
                    dead = True
                elif host == here and pid:
                    dead = not liveness.process_running(pid, started or acquired)
                else:
                    dead = self._unlocked(holder)
                if not dead:
                    last = max(t for t in (beat, started, acquired) if t is not None)
                    dead = now - last > ttl
                gone[holder] = dead
            if dead:
                out.add(call_hash)
        return out

    def _unlocked(self, holder: str) -> bool:
        """PostgreSQL: whether the holder's advisory lock is free (its session is gone)."""
        if self.dialect != "postgresql":
            return False
        key = holder_key(holder)
        cur = self._execute("SELECT pg_try_advisory_lock(%s)", (key,))
        free = bool(cur.fetchone()[0])
        if free:
            self._execute("SELECT pg_advisory_unlock(%s)", (key,))
        return free

    # -- SQL ---------------------------------------------------------------------------
    @contextlib.contextmanager
    def _transaction(self, lock: bool = True) -> Any:
        """One transaction; with `lock`, serialized with every other run's lease taking."""
        if self.dialect == "sqlite":
            self._execute("BEGIN IMMEDIATE" if lock else "BEGIN")
        elif lock and self.dialect == "postgresql":
            self._execute("SELECT pg_advisory_xact_lock(%s)", (_PG_LEASE_LOCK,))
        try:
            yield
        except BaseException:
            if self.dialect == "sqlite":
                with contextlib.suppress(Exception):
                    self._execute("ROLLBACK")
            else:
                with contextlib.suppress(Exception):
                    self._conn.rollback()
            raise
        if self.dialect == "sqlite":
            self._execute("COMMIT")
        else:
            self._conn.commit()

    def _execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        cur = self._conn.cursor()
        cur.execute(sql, tuple(params))
        self.statements += 1
        return cur

    def _executemany(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        cur = self._conn.cursor()
        cur.executemany(sql, rows)
        self.statements += 1
        cur.close()

    def _select(self, sql: str, keys: Sequence[str]) -> list[tuple[Any, ...]]:
        rows: list[tuple[Any, ...]] = []
        for i in range(0, len(keys), _CHUNK):
            chunk = keys[i : i + _CHUNK]
            cur = self._execute(sql.format(marks=", ".join([self.mark] * len(chunk))), chunk)
            rows.extend(cur.fetchall())
            cur.close()
        return rows
