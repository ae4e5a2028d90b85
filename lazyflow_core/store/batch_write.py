"""Writing batches of records to the store's database, and the writer process.

A *batch* maps a record kind ("call", "arg", "job", ...) to a list of row tuples ready for
the database (values already pickled, previews already formatted). `apply_batch` writes
one batch in one transaction on a plain DB-API connection (``sqlite3``, ``psycopg`` or
``psycopg2``), with one ``executemany`` per kind, following a *plan*: the statement of
each kind, in write order, which the parent derives from `lazyflow_core.records` and the
schema (`lazyflow_core.store.statements`) and sends along.

Why a separate process can do it: on SQLite every ``executemany`` row releases and
re-acquires the GIL around ``sqlite3_step``. A writer *thread* running next to a busy
scheduler thread then waits for the GIL on every row (a "convoy": measured at ~1.3 ms
per row instead of ~10 µs), so the two never run in parallel and the run pays for both.
The writer process (``python batch_write.py``, started by `StoreWriter` once a run is
big enough) receives batches on its stdin, executes each as it arrives and commits them
together (`Transaction`), on the second core, by `COMMIT_AGE` after its oldest record
was put (`commit_deadline`): what a kill of the process itself loses stays within the
run's own crash bound.
This module therefore imports only the standard library (start-up ~30 ms; it is run as a
script, without importing the lazyflow package) and holds no state the parent needs.

Wire format, both directions: an 8-byte big-endian length, then ``m`` and a marshal
(or ``p`` and a pickle).
Parent to child: ``("open", module, args, kwargs, dialect, pragmas, plan)`` first, then
``("batch", batch, oldest)`` (`oldest`: the monotonic time at or after which all its
records were put) and ``("sync", token)``. Child to parent: ``("ready", None)`` once
connected (or ``("failed", message)``), ``("committed", n)`` after each commit (the
first n batches are committed: the parent keeps the batches it sent until then, and
writes them itself if this process dies), and ``("ack", token, errors, statements, lost)``
after every batch sent before the sync is committed. End of input (the parent closed the pipe,
or was killed) makes the child commit what it has received and exit, so a ``kill -9`` of a
run loses nothing that reached the pipe.
"""

from __future__ import annotations

import binascii
import contextlib
import functools
import hashlib
import importlib
import marshal
import operator
import os
import pickle
import re
import select
import signal
import struct
import sys
import time
from typing import Any

Batch = dict[str, list[tuple[Any, ...]]]

_HEADER = struct.Struct(">Q")
# The writer process commits what it has written once its oldest record was put
# COMMIT_AGE seconds ago (and at every sync and at end of input), up to
# MAX_TRANSACTION_ROWS rows per transaction. A record is then committed within about
# COMMIT_AGE plus the commit's own time of being put, whatever happens to the run: a
# kill of the whole process group (a container stopped with SIGKILL) loses no more than
# a kill of the run alone (docs/store.md, "What a crash loses"). With random (hash) keys
# every commit rewrites each B-tree page it touched, so fewer, bigger transactions cost
# less per row once the tables outgrow a few MiB: this is the interval's price
# (benchmarks/README.md, "Commit age"). Before issue 13 the interval was 0.5 s from the
# batch's arrival, stretched to 2 s once commits took over 0.125 s: a kill of the
# process lost up to ~2.2 s. Commits are at least MIN_COMMIT_GAP apart, so that a
# writer that fell behind (every batch already due when it arrives) does not commit
# per batch and fall further behind.
COMMIT_AGE = 0.4
MIN_COMMIT_GAP = 0.1
MAX_TRANSACTION_ROWS = 200_000


def commit_deadline(oldest: float, arrived: float, last_commit: float) -> float:
    """When a transaction whose oldest record was put at `oldest` must be committed
    (monotonic times; `arrived`: when its batch came, which bounds a parent's clock that
    would be ahead; `last_commit`: when the previous commit ended)."""
    return max(min(oldest, arrived) + COMMIT_AGE, last_commit + MIN_COMMIT_GAP)


Plan = tuple[tuple[str, str, int], ...]
"""``(kind, sql, key_length)`` per record kind, in write order (`store.statements`, built
by the parent from the record types and the schema: this module cannot import them)."""


def _lock_order(plan: Plan, batch: Batch) -> None:
    """Sort rows by key (keeping the last record per key) so that concurrent writers on a
    server database lock rows in the same order and cannot deadlock. SQLite has one
    writer at a time and needs none of this."""
    for kind, _sql, keylen in plan:
        rows = batch.get(kind)
        if keylen and rows and len(rows) > 1:
            unique = list({r[:keylen]: r for r in rows}.values())
            unique.sort(key=lambda r, k=keylen: tuple(str(x) for x in r[:k]))  # type: ignore[misc]
            batch[kind] = unique


_first = operator.itemgetter(0)


def _transient(exc: BaseException) -> bool:
    message = str(exc).lower()
    return "locked" in message or "deadlock" in message or "busy" in message


# On PostgreSQL (psycopg 3), a kind with at least this many rows in a batch is sent with
# COPY: measured 2.3x faster than executemany for a 10k-call batch, with a tenth of the
# client CPU. Straight into its table while that kind has met no stored key on this
# connection (`direct`): a cold run's calls, arguments, jobs and values are new, and the
# server then does a sixth of the work of the way below (measured: 0.18 s of server CPU
# for a 10k fan-out's 50k rows, against 0.31-0.45 s). A COPY that meets a stored key
# fails whole (unique violation) and changes nothing: the batch is written again, that
# kind from then on through a temporary table and one INSERT ... SELECT with the
# statement's ON CONFLICT clause, which is what keeps DO NOTHING / DO UPDATE.
COPY_MIN_ROWS = 100
_UNIQUE_VIOLATION = "23505"
_INSERT = re.compile(r"INSERT INTO (\w+) \(([^)]*)\) VALUES \([^)]*\) (ON CONFLICT .*)", re.S)


class DirectConflict(Exception):
    """A COPY straight into a table met a row already stored: write the batch again
    (the kind is no longer copied straight in)."""


def direct_kinds(dialect: str, plan: Plan) -> set[str] | None:
    """The kinds a new connection may COPY straight into their tables (None: no COPY)."""
    return {kind for kind, _sql, keylen in plan if keylen} if dialect == "postgresql" else None


@functools.cache
def _copy_statements(kind: str, insert: str) -> tuple[str, str, str, str, str]:
    """The COPY straight into the table, and the temporary table, COPY, INSERT ... SELECT
    and emptying statements for a kind (built once)."""
    match = _INSERT.match(insert)
    assert match is not None, insert
    table, columns, conflict = match.groups()
    temp = f"lf_tmp_{kind}"
    return (
        f"COPY {table} ({columns}) FROM STDIN",
        f"CREATE TEMP TABLE IF NOT EXISTS {temp} (LIKE {table}) ON COMMIT DELETE ROWS",
        f"COPY {temp} ({columns}) FROM STDIN",
        f"INSERT INTO {table} ({columns}) SELECT {columns} FROM {temp} {conflict}",
        # Emptied at once, not at commit: the writer process runs several batches in
        # one transaction, and each INSERT ... SELECT would write again all the rows of
        # the batches before it (measured: 3-4x the server CPU of a 10k fan-out).
        f"TRUNCATE {temp}",
    )


def _copy_insert(
    cur: Any, kind: str, insert: str, rows: list[tuple[Any, ...]], direct: set[str] | None
) -> int:
    """Insert `rows` with the semantics of the `insert` statement (its ON CONFLICT clause)
    through ``COPY``: straight into the table if `kind` is in `direct`, else into a
    temporary table and from there. Returns the statements run."""
    straight, create, copy_sql, insert_select, empty = _copy_statements(kind, insert)
    if direct is not None and kind in direct:
        try:
            with cur.copy(straight) as copy:
                for row in rows:
                    copy.write_row(row)
        except Exception as exc:
            if getattr(exc, "sqlstate", None) != _UNIQUE_VIOLATION:
                raise
            direct.discard(kind)
            raise DirectConflict(kind) from exc
        return 1
    cur.execute(create)
    with cur.copy(copy_sql) as copy:
        for row in rows:
            copy.write_row(row)
    cur.execute(insert_select)
    cur.execute(empty)
    return 4


# -- value checksums --------------------------------------------------------------------
# The ``c1:`` seal of a value stored without a signing key (`lazyflow_core.store.signing`
# reads and explains seals; the checksum is computed here, where the writer process can
# too). A value row's seal column may hold `CHECKSUM_HERE` instead: the checksum of its
# bytes is then computed by whoever writes the batch (`_prepare`), so that on a busy run
# the writer process pays for it on the second core, not the writer thread in the GIL.
CHECKSUM = "c1"
SEAL_DOMAIN = b"lazyflow value\x00"
CHECKSUM_HERE = True
ONE_SHOT = 1 << 16  # above this size, the bytes are hashed in place, not concatenated
_SEALED = hashlib.sha256(SEAL_DOMAIN)  # copied: cheaper than a new SHA-256 per value
_URLSAFE = bytes.maketrans(b"+/", b"-_")
_VALUE_KINDS = ("value", "value_replace")
_SEAL = 7  # the seal's column in a value row (`records.ValueRecord`), the last one
_DATA = 4  # and the bytes'


def b64(raw: bytes) -> str:
    """URL-safe base64 without padding (``base64.urlsafe_b64encode``'s alphabet, in one
    C call: this runs for every stored value)."""
    return binascii.b2a_base64(raw, newline=False).translate(_URLSAFE).rstrip(b"=").decode()


def checksum_digest(value_hash: str, data: bytes) -> bytes:
    """The first 16 bytes of SHA-256 over ``lazyflow value``, the value hash and `data`."""
    h = _SEALED.copy()
    if len(data) <= ONE_SHOT:
        h.update(value_hash.encode("ascii") + b"\x00" + data)
    else:
        h.update(value_hash.encode("ascii") + b"\x00")
        h.update(data)
    return h.digest()[:16]


def checksum(value_hash: str, data: bytes) -> str:
    """The ``c1:`` seal of a value stored without a key."""
    return f"{CHECKSUM}:{b64(checksum_digest(value_hash, data))}"


def _seal_values(batch: Batch) -> None:
    """Put the checksum in each value row whose seal is `CHECKSUM_HERE`."""
    for kind in _VALUE_KINDS:
        rows = batch.get(kind)
        if rows:
            batch[kind] = [
                (*r[:_SEAL], checksum(r[0], r[_DATA])) if r[_SEAL] is CHECKSUM_HERE else r
                for r in rows
            ]


def _prepare(dialect: str, plan: Plan, batch: Batch) -> None:
    _seal_values(batch)
    if dialect != "sqlite":
        _lock_order(plan, batch)
        return
    # Inserting in key order walks each B-tree once instead of jumping between random
    # pages: ~25% less CPU per row on big batches. The sort is stable, so the last
    # record of a key still wins.
    for kind, _sql, keylen in plan:
        rows = batch.get(kind)
        if keylen and rows and len(rows) > 1:
            rows.sort(key=_first)


def _execute(
    conn: Any, dialect: str, plan: Plan, batch: Batch, direct: set[str] | None = None
) -> int:
    """Run `batch`'s statements in the open transaction; the number of statements.
    `direct`: the kinds that may be copied straight into their tables (`_copy_insert`)."""
    executed = 0
    cur = conn.cursor()
    copy = dialect == "postgresql" and hasattr(cur, "copy")  # psycopg 3
    for kind, sql, keylen in plan:
        rows = batch.get(kind)
        if not rows:
            continue
        if copy and len(rows) >= COPY_MIN_ROWS and keylen:
            executed += _copy_insert(cur, kind, sql, rows, direct)
        else:
            cur.executemany(sql, rows)
            executed += 1
    cur.close()
    return executed


def _pipelined(conn: Any, dialect: str, batch: Batch) -> bool:
    """Whether `batch` goes in one round trip: on PostgreSQL (psycopg 3) a batch with
    nothing to COPY (COPY cannot be pipelined) sends its statements and the commit
    together. Each round trip of the writer thread costs it the GIL back, which next to
    a busy scheduler thread waits for the scheduler's switch interval (~5 ms): a small
    batch of three statements took 0.8-1.5 ms alone and 50-70 ms beside a busy thread
    here, pipelined 0.3-0.45 ms and 3 ms."""
    return (
        dialect == "postgresql"
        and hasattr(conn, "pipeline")
        and all(len(rows) < COPY_MIN_ROWS for rows in batch.values())
    )


def apply_batch(
    conn: Any, dialect: str, plan: Plan, batch: Batch, direct: set[str] | None = None
) -> int:
    """Write `batch` in one transaction on the DB-API connection `conn`.

    Transient lock errors (SQLite busy, PostgreSQL deadlock) are retried with backoff,
    a `DirectConflict` at once (`direct`: see `_copy_insert`); other errors propagate
    after a rollback. Returns the number of statements executed.
    """
    _prepare(dialect, plan, batch)
    attempt = 0
    while True:
        try:
            if _pipelined(conn, dialect, batch):
                with conn.pipeline():
                    executed = _execute(conn, dialect, plan, batch, direct)
                    conn.commit()
            else:
                executed = _execute(conn, dialect, plan, batch, direct)
                conn.commit()
            return executed
        except Exception as exc:
            with contextlib.suppress(Exception):
                conn.rollback()
            if isinstance(exc, DirectConflict):
                continue  # that kind left `direct`: this ends
            if not _transient(exc) or attempt == 11:
                raise
            time.sleep(min(2.0, 0.05 * 2**attempt))
            attempt += 1


class Transaction:
    """Batches written as they arrive, committed together (the writer process's side).

    Executing each batch on arrival keeps the database work in step with the run; one
    commit per interval keeps transactions big. If anything fails, the open
    transaction is rolled back and its batches are written again one transaction each
    (`apply_batch`, with retries), so a bad batch loses only itself (its rows are
    counted in `lost`, which the parent reports).
    """

    def __init__(self, conn: Any, dialect: str, plan: Plan) -> None:
        self.conn, self.dialect, self.plan = conn, dialect, plan
        self.direct = direct_kinds(dialect, plan)
        self.batches: list[Batch] = []
        self.statements = 0
        self.errors: list[str] = []
        self.lost = 0

    def add(self, batch: Batch) -> None:
        _prepare(self.dialect, self.plan, batch)
        self.batches.append(batch)
        try:
            self.statements += _execute(self.conn, self.dialect, self.plan, batch, self.direct)
        except Exception:
            self._redo()

    def commit(self) -> None:
        if not self.batches:
            return
        try:
            self.conn.commit()
        except Exception:
            self._redo()
        self.batches = []

    def _redo(self) -> None:
        with contextlib.suppress(Exception):
            self.conn.rollback()
        for batch in self.batches:
            try:
                self.statements += apply_batch(
                    self.conn, self.dialect, self.plan, batch, self.direct
                )
            except Exception as exc:
                if len(self.errors) < 20:  # a full disk fails them all: the count says it
                    self.errors.append(f"{type(exc).__name__}: {exc}")
                self.lost += sum(len(rows) for rows in batch.values())
        self.batches = []


def connect(module: str, args: list[Any], kwargs: dict[str, Any], pragmas: list[str]) -> Any:
    """A DB-API connection from the parts the parent's store would use, with its session
    settings (SQLite pragmas; PostgreSQL ``SET`` statements, committed at once: a SET in
    a transaction that is rolled back is undone)."""
    dbapi = importlib.import_module(module)
    return session(dbapi.connect(*args, **kwargs), pragmas)


def session(conn: Any, statements: list[str] | tuple[str, ...]) -> Any:
    """`conn` after its session `statements` (pragmas, ``SET``), committed at once: a SET
    made in a transaction that is rolled back is undone. Closed if they fail."""
    if not statements:
        return conn
    try:
        cur = conn.cursor()
        for statement in statements:
            cur.execute(statement)
        cur.close()
        conn.commit()
    except BaseException:
        conn.close()
        raise
    return conn


# -- wire format ---------------------------------------------------------------------------
def send(fd: int, message: Any) -> None:
    """Write one framed message to `fd` (blocks while the pipe is full: backpressure).

    Rows hold only str, bytes, numbers, bools and None, which ``marshal`` encodes ~8x
    faster than pickle (both ends run the same interpreter); anything else is pickled.
    """
    try:
        payload = b"m" + marshal.dumps(message)
    except ValueError:
        payload = b"p" + pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    view = memoryview(_HEADER.pack(len(payload)) + payload)
    while view:
        written = os.write(fd, view)
        view = view[written:]


class Reader:
    """Reads framed messages from a pipe, and says whether one is already available."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.buf = bytearray()
        self.eof = False

    def _complete(self) -> bool:
        if len(self.buf) < _HEADER.size:
            return False
        (size,) = _HEADER.unpack_from(self.buf)
        return len(self.buf) >= _HEADER.size + size

    def _fill(self) -> None:
        chunk = os.read(self.fd, 1 << 20)
        if chunk:
            self.buf += chunk
        else:
            self.eof = True

    def wait(self, timeout: float | None) -> bool:
        """Whether a whole message (or end of input) arrives within `timeout` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._complete() and not self.eof:
            if deadline is not None:
                remaining = max(0.0, deadline - time.monotonic())
                if not select.select([self.fd], [], [], remaining)[0]:
                    return False
            self._fill()
        return True

    def ready(self) -> bool:
        """A whole message can be read without blocking."""
        return self.wait(0) and self._complete()

    def read(self) -> Any:
        """The next message (blocks until it arrives); None at end of input."""
        while not self._complete():
            if self.eof:
                return None
            self._fill()
        (size,) = _HEADER.unpack_from(self.buf)
        end = _HEADER.size + size
        payload = memoryview(self.buf)[_HEADER.size + 1 : end]
        kind = self.buf[_HEADER.size]
        message = marshal.loads(payload) if kind == ord("m") else pickle.loads(payload)
        payload.release()
        del self.buf[:end]
        return message


# -- the writer process --------------------------------------------------------------------
def _reply(fd: int, message: Any) -> None:
    """Send to the parent; if it has stopped listening (it closed the pipe because it
    needs nothing more, or it was killed), there is no one to tell: carry on."""
    with contextlib.suppress(BrokenPipeError):
        send(fd, message)


def serve(reader: Reader, out_fd: int) -> None:
    """The writer process's loop: open the database, then write batches until end of input."""
    opening = reader.read()
    if opening is None:
        return
    _, module, args, kwargs, dialect, pragmas, plan = opening
    try:
        conn = connect(module, args, kwargs, pragmas)
    except Exception as exc:
        _reply(out_fd, ("failed", f"{type(exc).__name__}: {exc}"))
        return
    _reply(out_fd, ("ready", None))
    tx = Transaction(conn, dialect, tuple(tuple(p) for p in plan))
    rows = 0
    deadline = 0.0  # when the open transaction is due (monotonic; the parent's clock)
    last_commit = 0.0
    batches = 0  # received, numbered from 1 as the parent numbers them

    def commit() -> None:
        nonlocal rows, last_commit
        if rows:
            tx.commit()
            # the parent keeps what it sent until told: it writes it itself if we die
            _reply(out_fd, ("committed", batches))
        rows = 0
        last_commit = time.monotonic()

    while True:
        timeout = None if not rows else max(0.0, deadline - time.monotonic())
        if not reader.wait(timeout):
            commit()  # nothing new before the oldest pending record is due
            continue
        message = reader.read()
        if message is None:  # end of input: the run is over (or the parent was killed)
            commit()
            break
        if message[0] == "batch":
            # time.monotonic is the system's CLOCK_MONOTONIC: the parent's times compare
            due = commit_deadline(message[2], time.monotonic(), last_commit)
            deadline = due if not rows else min(deadline, due)
            rows += sum(len(r) for r in message[1].values()) or 1
            batches += 1
            tx.add(message[1])
            if rows >= MAX_TRANSACTION_ROWS or time.monotonic() >= deadline:
                commit()
        else:  # sync: commit now and report
            commit()
            _reply(out_fd, ("ack", message[1], tx.errors, tx.statements, tx.lost))
            tx.errors, tx.statements, tx.lost = [], 0, 0
    if dialect == "sqlite":
        fold_wal(conn)
    conn.close()
    if tx.errors:
        print("lazyflow writer process: " + "; ".join(tx.errors), file=sys.stderr)


def fold_wal(conn: Any) -> None:
    """Copy the WAL into the database file and empty it as the writer process ends,
    after its last commit: the run no longer waits for it then.

    This process lets its WAL grow to `sql.WRITER_WAL_PAGES` pages (512 MiB with 32 KiB
    pages) before checkpointing. Left there (a run's process that exits without closing
    its store is not the last connection to close), the next process to open the store
    reads it back to rebuild its index, and that run's first commit over SQLite's
    default 1,000 pages checkpoints all of it (the full suite measured a cached re-run of
    one call after a 100k-call run at 0.21 s instead of ~0.015 s). After a 100k-call run
    this takes ~0.25 s (6,880 pages), so a run started within that time shares the
    machine with it. The copy is PASSIVE (nobody waits for it); the emptying, TRUNCATE
    with nothing left to copy, gives up at once if another connection is writing or
    reading an older snapshot (the log is then reused from its start by the next commit,
    not grown)."""
    with contextlib.suppress(Exception):
        conn.execute("PRAGMA busy_timeout=0")
        conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()


def main() -> int:
    # Ctrl-C reaches the whole process group, and so does SIGTERM from a shell, `timeout`
    # or a service manager: the parent handles both and still flushes through this
    # process, which ends when its input does (also when the parent is killed).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    serve(Reader(sys.stdin.fileno()), sys.stdout.fileno())
    return 0


if __name__ == "__main__":
    sys.exit(main())
