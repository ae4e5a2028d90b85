"""Batched, asynchronous writes to the store.

The scheduler thread only appends tuples to a deque (thread-safe, no lock, no I/O). A
writer thread drains whatever has accumulated, every few milliseconds, turns it into
database rows (pickling values, formatting argument previews: work kept off the scheduler
thread) and writes it as one transaction with one ``executemany`` per table: group
commit. Under load the batches grow; when idle, a record reaches the database within
~20 ms, so a run killed with ``kill -9`` keeps practically every call that had completed.

When a run produces records fast (the scheduler thread is busy), the writer hands the
database work to a *writer process* (`batch_write`): a thread cannot insert rows in
parallel with a busy scheduler thread, because the GIL turns every inserted row into a
wait (see `batch_write`). Records are held while the process starts (~30 ms); runs that
never get busy never start it. ``LAZYFLOW_WRITER=thread`` keeps all writes in the thread;
``LAZYFLOW_WRITER=process`` uses the process from the first record.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import subprocess
import sys
import threading
import time
from collections import defaultdict, deque
from typing import Any

from ..errors import StoreError
from ..expression import short_repr
from . import batch_write
from .batch_write import Batch
from .sql import Store

log = logging.getLogger("lazyflow.store")

_POLL = 0.02
_MAX_ROWS = 50_000
# A drain of at least this many records (in one _POLL) means the scheduler thread is busy
# producing them: writing them from this thread now would mostly wait for the GIL (see
# `batch_write`). In auto mode the writer process is started then, and records are held
# (up to HOLD_SECONDS) until it is ready, or until the run pauses or ends, when this thread
# writes them at full speed. Runs that never get busy never start the process.
BUSY_RECORDS = 250
HOLD_SECONDS = 1.0
_MODES = ("auto", "thread", "process")


def writer_mode() -> str:
    """``LAZYFLOW_WRITER``: auto (default), thread or process."""
    mode = os.environ.get("LAZYFLOW_WRITER", "auto").strip().lower() or "auto"
    if mode not in _MODES:
        raise StoreError(
            f"LAZYFLOW_WRITER={mode!r} is not a writer mode: use one of {', '.join(_MODES)}"
        )
    return mode


class StoreWriter:
    """A background thread that writes records in batches. Use `put`, then `close`."""

    def __init__(self, store: Store, mode: str | None = None) -> None:
        self.store = store
        self.mode = mode or writer_mode()
        self._queue: deque[tuple[str, tuple[Any, ...]]] = deque()
        self._sql = batch_write.statements(store.dialect)
        self._stop = False
        self._wake = threading.Event()  # flush and close do not wait out an idle poll
        self.errors: list[BaseException] = []
        self._conn: Any = None  # DB-API connection for the writes made in this thread
        self._process: WriterProcess | None = None
        self._process_failed = False
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

    @property
    def uses_process(self) -> bool:
        """Whether batches currently go to the writer process."""
        return self._process is not None and self._process.ready

    def wait_below(self, records: int) -> None:
        """Block until the backlog is under `records` (backpressure for huge runs)."""
        while len(self._queue) > records and self._thread.is_alive():
            time.sleep(0.005)

    def flush(self) -> None:
        """Block until everything queued so far is committed."""
        done = threading.Event()
        self._queue.append(("flush", (done,)))
        self._wake.set()
        while not done.wait(0.5):
            if not self._thread.is_alive():
                break

    def close(self) -> None:
        self.flush()
        self._stop = True
        self._wake.set()
        self._thread.join(timeout=60)

    # -- writer thread -------------------------------------------------------------------
    def _loop(self) -> None:
        with contextlib.suppress(Exception):  # connect while the run starts; else on use
            self._conn = self.store.engine.raw_connection()
        held: Batch = defaultdict(list)
        held_n = 0
        held_since = 0.0
        try:
            while True:
                if not self._queue:
                    if held_n:  # nothing new for a poll: the run paused; write now
                        held_n = self._write_held(held, held_n)
                    elif self._stop:
                        return
                    else:
                        self._wake.wait(_POLL)
                        self._wake.clear()
                    continue
                waiters: list[threading.Event] = []
                n = 0
                if not held_n:
                    held_since = time.monotonic()
                while self._queue and n < _MAX_ROWS:
                    kind, row = self._queue.popleft()
                    if kind == "flush":
                        waiters.append(row[0])
                        break
                    held[kind].append(row)
                    n += 1
                held_n += n
                busy = n >= BUSY_RECORDS and not waiters
                if busy and self.mode == "auto":
                    self._start_process()
                process = self._ready_process()
                if (
                    busy
                    and process is None
                    and self._process is not None
                    and time.monotonic() - held_since < HOLD_SECONDS
                ):
                    time.sleep(_POLL)  # hold them until the writer process is up
                    continue
                held_n = self._write_held(held, held_n)
                try:
                    if waiters:
                        self._sync()
                except BaseException as exc:
                    log.error("lazyflow store write failed: %s", exc)
                    self.errors.append(exc)
                for w in waiters:
                    w.set()
                if process is not None and n < BUSY_RECORDS and not waiters:
                    time.sleep(_POLL / 4)  # let records gather: fewer, bigger messages
        finally:
            self._shutdown()

    def _write_held(self, held: Batch, n: int) -> int:
        """Write the held records (emptying `held`); returns the new held count, 0."""
        if n:
            batch = {kind: rows for kind, rows in held.items() if rows}
            held.clear()
            try:
                self._write(self._rows(batch))
            except BaseException as exc:
                log.error("lazyflow store write failed: %s", exc)
                self.errors.append(exc)
        return 0

    def _shutdown(self) -> None:
        if self._process is not None:
            # After a sync with nothing sent since, everything is committed: no need to
            # wait for the process to exit (~30 ms at the end of every big run).
            wait = self._process.unacknowledged
            self.errors.extend(StoreError(e) for e in self._process.close(wait=wait))
            self._process = None
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None

    def _rows(self, batch: Batch) -> Batch:
        """Records as database rows: what needs the Python objects happens here."""
        if "job" in batch:
            batch["job"] = [(*r[:10], str(r[10]), r[11]) for r in batch["job"]]
        if "value" in batch:
            batch["value"] = self._value_rows(batch["value"])
        if "value_replace" in batch:
            batch["value_replace"] = self._value_rows(batch["value_replace"])
        return batch

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

    def _write(self, batch: Batch) -> None:
        process = self._ready_process()
        if process is not None:
            try:
                process.send(batch)
                return
            except OSError as exc:  # the process died: what it had not committed is lost
                self._process_failed = True
                self._process = None
                self.errors.extend(StoreError(e) for e in process.close())
                self.errors.append(
                    StoreError(f"the lazyflow writer process stopped ({exc}); writing in-process")
                )
        if self._conn is None:
            self._conn = self.store.engine.raw_connection()
        self.store.statements += batch_write.apply_batch(
            self._conn, self.store.dialect, self._sql, batch
        )

    def _start_process(self) -> None:
        """Start the writer process (once; it connects while records keep coming)."""
        if self._process is not None or self._process_failed or self.mode == "thread":
            return
        try:
            self._process = WriterProcess.start(self.store)
        except Exception as exc:
            log.info("lazyflow: writing in-process (no writer process: %s)", exc)
        if self._process is None:
            self._process_failed = True

    def _ready_process(self) -> WriterProcess | None:
        """The writer process if it is up (mode ``process``: started, waited for)."""
        if self.mode == "process":
            self._start_process()
        process = self._process
        if process is None:
            return None
        if not process.ready:
            failure = process.poll_ready(block=self.mode == "process")
            if failure is not None:
                self._process_failed = True
                self._process = None
                process.close()
                log.warning("lazyflow: the writer process could not start: %s", failure)
                return None
        return process if process.ready else None

    def _sync(self) -> None:
        """Wait until the writer process has committed everything sent to it."""
        process = self._process
        if process is None or not process.unacknowledged:
            return
        try:
            errors, statements = process.sync()
        except OSError as exc:
            self._process_failed = True
            self._process = None
            self.errors.extend(StoreError(e) for e in process.close())
            self.errors.append(StoreError(f"the lazyflow writer process stopped: {exc}"))
            return
        self.store.statements += statements
        self.errors.extend(StoreError(e) for e in errors)


class WriterProcess:
    """The parent's handle on a `batch_write` writer process (used by one writer thread)."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc = proc
        assert proc.stdin is not None and proc.stdout is not None
        self.stdin = proc.stdin.fileno()
        self.reader = batch_write.Reader(proc.stdout.fileno())
        self.ready = False
        self.unacknowledged = False
        self._token = 0

    @classmethod
    def start(cls, store: Store) -> WriterProcess | None:
        """Start a writer process for `store`, or None where it cannot write to it."""
        target = connect_spec(store)
        if target is None or not sys.executable or sys.platform == "win32":
            return None
        proc = subprocess.Popen(
            [sys.executable, batch_write.__file__],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            close_fds=True,
        )
        self = cls(proc)
        with contextlib.suppress(OSError, AttributeError):
            import fcntl

            # A 1 MiB pipe (Linux; the default is 64 KiB) holds a few thousand records.
            fcntl.fcntl(self.stdin, fcntl.F_SETPIPE_SZ, 1 << 20)
        batch_write.send(self.stdin, ("open", *target))
        return self

    def poll_ready(self, block: bool) -> str | None:
        """Check for (or wait for) the process's hello; the failure message if it could
        not connect."""
        if not block and not self.reader.ready():
            return None
        message = self.reader.read()
        if message is None:
            return f"exited with code {self.proc.wait()}"
        if message[0] == "failed":
            return str(message[1])
        self.ready = True
        return None

    def send(self, batch: Batch) -> None:
        self.unacknowledged = True  # batches sent since the last acknowledged sync
        batch_write.send(self.stdin, ("batch", batch))

    def sync(self) -> tuple[list[str], int]:
        """Errors and statement count of everything committed since the last sync."""
        self._token += 1
        batch_write.send(self.stdin, ("sync", self._token))
        while True:
            message = self.reader.read()
            if message is None:
                raise OSError(f"writer process exited with code {self.proc.wait()}")
            if message[0] == "ack" and message[1] == self._token:
                self.unacknowledged = False  # everything sent is committed
                return list(message[2]), int(message[3])

    def close(self, wait: bool = True) -> list[str]:
        """End input: the process commits what it has and exits. With `wait`, wait for
        that and return its errors; without (everything sent was acknowledged), let it
        finish on its own and reap it in the background."""
        errors: list[str] = []
        assert self.proc.stdin is not None and self.proc.stdout is not None
        with contextlib.suppress(OSError):
            self.proc.stdin.close()
        if not wait:
            self.proc.stdout.close()
            threading.Thread(
                target=self.proc.wait, name="lazyflow-writer-reaper", daemon=True
            ).start()
            return errors
        try:
            code = self.proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
            errors.append("the lazyflow writer process did not finish within 120 s; killed")
        if code:
            errors.append(f"the lazyflow writer process exited with code {code}")
        self.proc.stdout.close()
        return errors


def connect_spec(store: Store) -> tuple[str, list[Any], dict[str, Any], str, list[str]] | None:
    """How a writer process connects to `store`: (DB-API module, args, kwargs, dialect,
    SQLite pragmas), or None for stores it cannot write (in-memory SQLite, other drivers)."""
    engine = store.engine
    dialect = engine.dialect
    if dialect.name == "sqlite":
        path = store.sqlite_path
        if path is None or engine.url.query:
            return None
        return (
            "sqlite3",
            [path],
            {"timeout": 60},
            "sqlite",
            ["PRAGMA busy_timeout=60000", "PRAGMA synchronous=NORMAL", "PRAGMA cache_size=-65536"],
        )
    if dialect.name == "postgresql" and dialect.driver in ("psycopg", "psycopg2"):
        args, kwargs = dialect.create_connect_args(engine.url)
        kwargs = {k: v for k, v in kwargs.items() if isinstance(v, (str, int, float, bool))}
        kwargs.setdefault("connect_timeout", 10)
        return dialect.driver, list(args), kwargs, "postgresql", []
    return None
