"""Batched, asynchronous writes to the store.

The scheduler thread only appends tuples to a deque (thread-safe, no lock, no I/O). A
writer thread drains whatever has accumulated, every few milliseconds, into one
transaction per drain with one ``executemany`` per table: group commit. Under load the
batches grow; when idle, a record reaches the database within ~20 ms, so a run killed with
``kill -9`` keeps practically every call that had completed.

Rows of one table are sorted by key inside a transaction so that concurrent writers on
PostgreSQL lock rows in the same order (no deadlocks); transient lock errors are retried.
"""

from __future__ import annotations

import logging
import pickle
import threading
import time
from collections import defaultdict, deque
from typing import Any

from sqlalchemy.exc import DBAPIError

from ..expression import short_repr
from .sql import Store

log = logging.getLogger("lazyflow.store")

_POLL = 0.02
_MAX_ROWS = 20000


def _sql(dialect: str) -> dict[str, str]:
    p = "?" if dialect == "sqlite" else "%s"

    def ph(n: int) -> str:
        return ", ".join([p] * n)

    return {
        "task": "INSERT INTO lf_tasks (hash, name, module, source, created_at, dependencies) "
        f"VALUES ({ph(6)}) "
        "ON CONFLICT (hash) DO NOTHING",
        "call": "INSERT INTO lf_calls (call_hash, task_hash, task_name, result_hash, "
        f"validation_hash, execution_id, job_id, created_at) VALUES ({ph(8)}) "
        "ON CONFLICT (call_hash) DO UPDATE SET result_hash = excluded.result_hash, "
        "validation_hash = excluded.validation_hash, execution_id = excluded.execution_id, "
        "job_id = excluded.job_id, created_at = excluded.created_at",
        "arg": f"INSERT INTO lf_call_args (call_hash, position, name, value_hash) VALUES ({ph(4)}) "
        "ON CONFLICT (call_hash, position) DO UPDATE SET name = excluded.name, "
        "value_hash = excluded.value_hash",
        "child": "INSERT INTO lf_call_children (parent_hash, position, child_hash) "
        f"VALUES ({ph(3)}) ON CONFLICT (parent_hash, position) DO UPDATE SET "
        "child_hash = excluded.child_hash",
        "value": "INSERT INTO lf_values (hash, type_name, size, preview, data, blob, created_at) "
        f"VALUES ({ph(7)}) ON CONFLICT (hash) DO NOTHING",
        "value_replace": "INSERT INTO lf_values (hash, type_name, size, preview, data, blob, "
        f"created_at) VALUES ({ph(7)}) ON CONFLICT (hash) DO UPDATE SET "
        "type_name = excluded.type_name, size = excluded.size, preview = excluded.preview, "
        "data = excluded.data, blob = excluded.blob, created_at = excluded.created_at",
        "vset": f"INSERT INTO lf_validation_sets (hash, tasks, files) VALUES ({ph(3)}) "
        "ON CONFLICT (hash) DO NOTHING",
        "file": "INSERT INTO lf_files (call_hash, role, path, file_hash, created_at) "
        f"VALUES ({ph(5)}) ON CONFLICT (call_hash, role, path) DO UPDATE SET "
        "file_hash = excluded.file_hash, created_at = excluded.created_at",
        "job": "INSERT INTO lf_jobs (id, execution_id, call_hash, task_name, parent_id, status, "
        f"cached, started_at, finished_at, attempts, args_preview, error) VALUES ({ph(12)}) "
        "ON CONFLICT (id) DO NOTHING",
        "execution": "INSERT INTO lf_executions (id, started_at, status, root_task, command, "
        f"hostname, pid, jobs, cached, executed, failed) VALUES ({ph(11)}) "
        "ON CONFLICT (id) DO NOTHING",
        "tag": f"INSERT INTO lf_execution_tags (execution_id, key, value) VALUES ({ph(3)}) "
        "ON CONFLICT (execution_id, key) DO UPDATE SET value = excluded.value",
        "execution_end": f"UPDATE lf_executions SET finished_at = {p}, status = {p}, "
        f"root_call_hash = {p}, result_hash = {p}, jobs = {p}, cached = {p}, executed = {p}, "
        f"failed = {p}, error = {p} WHERE id = {p}",
        "children_reset": f"DELETE FROM lf_call_children WHERE parent_hash = {p}",
    }


# Order matters: a call's value rows land in the same transaction as (or before) the call.
_ORDER = (
    "execution",
    "tag",
    "task",
    "vset",
    "value",
    "value_replace",
    "children_reset",
    "call",
    "arg",
    "child",
    "file",
    "job",
    "execution_end",
)
_SORT_KEY_LEN = {
    "call": 1,
    "arg": 2,
    "child": 2,
    "value": 1,
    "value_replace": 1,
    "task": 1,
    "vset": 1,
    "file": 3,
    "job": 1,
    "tag": 2,
}


class StoreWriter:
    """A background thread that writes records in batches. Use `put`, then `close`."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._queue: deque[tuple[str, tuple[Any, ...]]] = deque()
        self._sql = _sql(store.dialect)
        self._stop = False
        self._idle = threading.Event()
        self._idle.set()
        self.errors: list[BaseException] = []
        self._thread = threading.Thread(target=self._loop, name="lazyflow-writer", daemon=True)
        self._thread.start()

    def put(self, kind: str, row: tuple[Any, ...]) -> None:
        """Queue one record (cheap; called on the scheduler thread)."""
        self._queue.append((kind, row))

    def put_value(
        self, value_hash: str, value: Any, data: bytes | None, replace: bool = False
    ) -> None:
        """Queue a value; if `data` is None the writer thread pickles `value` itself."""
        self._queue.append(("value_replace" if replace else "value", (value_hash, value, data)))

    @property
    def backlog(self) -> int:
        """Records queued and not yet written."""
        return len(self._queue)

    def wait_below(self, records: int) -> None:
        """Block until the backlog is under `records` (backpressure for huge runs)."""
        while len(self._queue) > records and self._thread.is_alive():
            time.sleep(0.005)

    def flush(self) -> None:
        """Block until everything queued so far is committed."""
        done = threading.Event()
        self._queue.append(("flush", (done,)))
        while not done.wait(0.5):
            if not self._thread.is_alive():
                break

    def close(self) -> None:
        self.flush()
        self._stop = True
        self._thread.join(timeout=30)

    # -- writer thread -------------------------------------------------------------------
    def _loop(self) -> None:
        while True:
            if not self._queue:
                if self._stop:
                    return
                time.sleep(_POLL)
                continue
            batch: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
            waiters: list[threading.Event] = []
            n = 0
            while self._queue and n < _MAX_ROWS:
                kind, row = self._queue.popleft()
                if kind == "flush":
                    waiters.append(row[0])
                    break
                batch[kind].append(row)
                n += 1
            try:
                if batch:
                    self._write(batch)
            except BaseException as exc:
                log.error("lazyflow store write failed: %s", exc)
                self.errors.append(exc)
            for w in waiters:
                w.set()

    def _value_rows(self, rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        out = []
        now = time.time()
        blobs = self.store.blobs
        seen: set[str] = set()
        for value_hash, value, data in rows:
            if value_hash in seen:
                continue
            seen.add(value_hash)
            if data is None:
                try:
                    data = pickle.dumps(value, protocol=5)
                except Exception:
                    data = None
            blob = None
            if data is not None and blobs is not None and len(data) > self.store.blob_threshold:
                blob = blobs.put(value_hash, data)
                data = None
            size = len(data) if data is not None else None
            out.append(
                (
                    value_hash,
                    type(value).__qualname__[:255],
                    size,
                    short_repr(value, 200),
                    data,
                    blob,
                    now,
                )
            )
        return out

    def _write(self, batch: dict[str, list[tuple[Any, ...]]]) -> None:
        if "job" in batch:
            batch["job"] = [(*r[:10], str(r[10]), r[11]) for r in batch["job"]]
        if "value" in batch:
            batch["value"] = self._value_rows(batch["value"])
        if "value_replace" in batch:
            batch["value_replace"] = self._value_rows(batch["value_replace"])
        for kind, keylen in _SORT_KEY_LEN.items() if self.store.dialect != "sqlite" else ():
            # SQLite has one writer at a time; other databases lock rows, so concurrent
            # writers must take them in one order.
            rows = batch.get(kind)
            if rows and len(rows) > 1:
                # keep the last record per key (e.g. a call recorded twice in one batch)
                rows = list({r[:keylen]: r for r in rows}.values())
                rows.sort(key=lambda r, k=keylen: tuple(str(x) for x in r[:k]))  # type: ignore[misc]
                batch[kind] = rows
        for attempt in range(12):
            try:
                with self.store.engine.begin() as conn:
                    for kind in _ORDER:
                        rows = batch.get(kind)
                        if rows:
                            conn.exec_driver_sql(self._sql[kind], rows)
                return
            except DBAPIError as exc:
                message = str(exc.orig).lower()
                transient = "locked" in message or "deadlock" in message or "busy" in message
                if not transient or attempt == 11:
                    raise
                time.sleep(min(2.0, 0.05 * 2**attempt))
