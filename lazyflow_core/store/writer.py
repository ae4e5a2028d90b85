"""Batched, asynchronous writes to the store.

The scheduler thread only appends records (`lazyflow_core.records`, typed tuples) to a
deque (thread-safe, no lock, no I/O). A writer thread drains whatever has accumulated,
every few milliseconds, turns it into database rows (pickling values, formatting argument
previews: work kept off the scheduler thread) and writes it as one transaction with one
``executemany`` per table: group commit. The statements come from the records and the
schema (`statements.write_plan`). The writer writes to a `WriteTarget` (how to connect,
where blobs go), not to a `Store`: the store makes the target, the writer knows nothing
else about it. Under load the batches grow; when idle, a record reaches the database within
~20 ms, so a run killed with ``kill -9`` keeps practically every call that had completed.

When a run produces records fast (the scheduler thread is busy), the writer hands the
database work to a *writer process* (`batch_write`): a thread cannot insert rows in
parallel with a busy scheduler thread, because the GIL turns every inserted row into a
wait (see `batch_write`). While the process starts (~30 ms; up to a second on a loaded
machine), this thread keeps writing, in short transactions, and hands over once the
process is up; runs that never get busy never start it. A run that is about to look up a
big wave of calls says so (`expect`), and the process starts then, before the wave's
records arrive. ``LAZYFLOW_WRITER=thread`` keeps all writes in the thread;
``LAZYFLOW_WRITER=process`` starts the process with the first record (and waits for it at
the first flush).
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .. import liveness
from ..errors import StoreError
from ..expression import short_repr
from ..records import (
    KIND_OF,
    HeartbeatRecord,
    JobRecord,
    PendingValue,
    Record,
    ValidationSetRecord,
    preview,
)
from ..values import dumps_value
from . import batch_write
from .batch_write import CHECKSUM_HERE, Batch
from .blobs import BlobStore
from .signing import SigningKeys, seal
from .statements import Plan, write_plan

log = logging.getLogger("lazyflow.store")

_POLL = 0.02
_MAX_ROWS = 50_000
# A drain of at least this many records (in one _POLL) means the scheduler thread is busy
# producing them: writing them from this thread now would mostly wait for the GIL (see
# `batch_write`). In auto mode the writer process is started then; runs that never get
# busy never start it.
#
# Records are safe once committed, or once in the process's pipe (it commits what it
# received even if this process dies). Until the process is up (~30 ms; 0.1-0.8 s on a
# loaded machine) this thread writes what comes in transactions of at most
# START_RECORDS records (~10-20 ms each when it has the GIL; when it competes with the
# scheduler thread for it, the run's backpressure on `lag` makes the scheduler wait), so
# a crash then loses no more than at any other time. The hand-over is sequential: the
# thread's last transaction is committed before the first batch goes to the process, so
# the two never hold write locks at once (SQLite) nor lock rows against each other
# (PostgreSQL), and no record goes both ways. Holding the records for the process
# instead (before issue 13) lost up to the whole start-up, ~0.8 s, at a kill; writing
# them in one transaction lost more (12k records, over a second under the GIL).
BUSY_RECORDS = 250
START_RECORDS = 1_000
START_SECONDS = 2.0  # a process not up by then is not waited for: full-size transactions
COST_RECORDS = 20_000
# `expect`ing at least this many records starts the writer process (auto mode) before
# they come: it is up (~60-90 ms) by the time they are being written. Smaller runs end
# before it would be up; measured on 2 cores, whole process: 2k calls neutral, 5k calls
# -12% wall, 10k -15% (without it the process started only once records flowed).
EXPECT_RECORDS = 4_000
_MODES = ("auto", "thread", "process")
_MAX_ERRORS = 20  # errors kept (the count of lost records covers the rest)


def writer_mode() -> str:
    """``LAZYFLOW_WRITER``: auto (default), thread or process."""
    mode = os.environ.get("LAZYFLOW_WRITER", "auto").strip().lower() or "auto"
    if mode not in _MODES:
        raise StoreError(
            f"LAZYFLOW_WRITER={mode!r} is not a writer mode: use one of {', '.join(_MODES)}"
        )
    return mode


ConnectSpec = tuple[str, list[Any], dict[str, Any], str, list[str]]
"""How a writer process connects: (DB-API module, args, kwargs, dialect, SQLite pragmas)."""


@dataclass(frozen=True)
class WriteTarget:
    """Where a `StoreWriter` writes: what it needs of a store, and nothing more.

    `connect` opens a DB-API connection for the writer thread; `process_connect` says how
    a writer process would connect (None: it cannot, e.g. an in-memory SQLite database);
    values larger than `blob_threshold` bytes go to `blobs` when there is one;
    `count_statements` is told how many statements each write ran (benchmarks report it).
    """

    dialect: str
    connect: Callable[[], Any]
    process_connect: ConnectSpec | None
    blobs: BlobStore | None
    blob_threshold: int
    count_statements: Callable[[int], None]
    # values are sealed with these keys (None: a checksum); see `signing`
    signing: SigningKeys | None = None
    # a store this process cannot write: records are counted as lost, not attempted
    read_only: bool = False
    # validation sets the store found unreadable: written over, not skipped
    damaged_vsets: set[str] = field(default_factory=set)


class _Flush:
    """A marker in the queue: `StoreWriter.flush` waits for `done`."""

    __slots__ = ("done",)

    def __init__(self) -> None:
        self.done = threading.Event()


class StoreWriter:
    """A background thread that writes records in batches. Use `put`, then `close`."""

    def __init__(self, target: WriteTarget, mode: str | None = None) -> None:
        self.target = target
        self.mode = mode or writer_mode()
        self._queue: deque[Record | PendingValue | _Flush] = deque()
        # Queue one record (cheap; called on the scheduler thread for every record, so
        # the deque's own append, not a method around it). A `PendingValue` is pickled
        # by the writer thread unless it carries its bytes.
        self.put: Callable[[Record | PendingValue], None] = self._queue.append
        self._plan = write_plan(target.dialect)
        # the kinds this thread may COPY straight into their tables (`batch_write`)
        self._direct = batch_write.direct_kinds(target.dialect, self._plan)
        self._stop = False
        self._wake = threading.Event()  # flush and close do not wait out an idle poll
        self.errors: list[BaseException] = []
        # Records that could not be stored (a failed write loses its batch; a failed
        # blob write only its value). The run reports the count (`Scheduler.run`).
        self.lost = 0
        self._conn: Any = None  # DB-API connection for the writes made in this thread
        self._process: WriterProcess | None = None
        self._process_failed = False
        self._process_started = 0.0  # monotonic time the writer process was started
        self._handed = False  # batches have gone to the writer process
        self._expected = False  # a big wave of records is coming (`expect`)
        # Monotonic time before which every queued record is safe: committed, or in the
        # writer process's pipe (it commits what it received even if this process dies).
        self._safe_at = time.monotonic()
        self._holding = False  # records drained from the queue, not written yet
        self._cost = 0.0  # seconds per record this thread took to store, lately
        # set at the hand-over to the writer process: a send costs nothing like a write
        self._cost_reset = False
        self._beating: str | None = None  # the execution whose heartbeat this writes
        self._next_beat = 0.0  # monotonic time of the next heartbeat
        self._beat_every = liveness.HEARTBEAT_SECONDS
        self._thread = threading.Thread(target=self._loop, name="lazyflow-writer", daemon=True)
        self._thread.start()

    def beat(self, execution_id: str, every: float | None = None) -> None:
        """Record that `execution_id` is alive, now and every `every` seconds (None:
        `HEARTBEAT_SECONDS`; shorter for short dedup leases) until `close` (a timer of
        the writer thread: nothing per job)."""
        self._beating = execution_id
        self._beat_every = liveness.HEARTBEAT_SECONDS if every is None else every
        self._next_beat = 0.0
        self._wake.set()

    def _heartbeat(self) -> None:
        """Queue the heartbeat if it is due (writer thread, once per loop)."""
        execution_id = self._beating
        if execution_id is None or self._stop:
            return
        now = time.monotonic()
        if now >= self._next_beat:
            self._next_beat = now + self._beat_every
            self._queue.append(HeartbeatRecord(time.time(), liveness.host_id(), execution_id))

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

    @property
    def lag(self) -> float:
        """How long the records queued now will have waited once they are safe in the
        store, in seconds (0: none is waiting): how long the oldest unsafe record has
        waited, plus the time the queue behind it takes to store at the measured rate.
        A crash of this process loses what is not safe: records are safe once
        committed, or once in the writer process's pipe (it commits what it received
        when this process dies)."""
        queued = len(self._queue)
        if not queued and not self._holding:
            return 0.0
        return max(0.0, time.monotonic() - self._safe_at) + queued * self._cost

    def wait_lag(self, seconds: float) -> None:
        """Block until `lag` is under `seconds` (keeps the crash bound of a busy run)."""
        while self.lag > seconds and self._thread.is_alive():
            time.sleep(0.005)

    def expect(self, records: int) -> None:
        """About `records` records are coming: at `EXPECT_RECORDS` or more, the writer
        thread starts the writer process now (auto mode), so it is up when they do."""
        if records >= EXPECT_RECORDS and self._process is None and not self._expected:
            self._expected = True
            self._wake.set()

    def flush(self) -> None:
        """Block until everything queued so far is committed."""
        marker = _Flush()
        self._queue.append(marker)
        self._wake.set()
        while not marker.done.wait(0.5):
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
            self._conn = self.target.connect()
        held: dict[type, list[Any]] = defaultdict(list)
        try:
            while True:
                self._heartbeat()
                if self._expected:
                    self._expected = False
                    self._start_process()
                now = time.monotonic()
                if not self._queue:
                    if self._stop:
                        return
                    self._safe_at = now  # all put before `now` is safe
                    self._wake.wait(_POLL)
                    self._wake.clear()
                    continue
                self._holding = True
                limit = START_RECORDS if self._process_coming() else _MAX_ROWS
                n, flush = self._drain(held, limit)
                emptied = flush is not None or not self._queue
                if self.mode == "process" or n >= BUSY_RECORDS:
                    self._start_process()
                if flush is not None and self.mode == "process":
                    self._ready_process(block=True)  # the last records go through it
                started, oldest = time.monotonic(), self._safe_at
                self._write_held(held, n, oldest)
                # once written, all put before `now` is safe if the drain took it all
                self._safe(now if emptied else oldest)
                self._measure(n, time.monotonic() - started)
                if flush is not None:
                    self._sync()
                    flush.done.set()  # (after errors, too: they are in `errors`)
                elif self.uses_process and n < BUSY_RECORDS:
                    time.sleep(_POLL / 4)  # let records gather: fewer, bigger messages
        finally:
            self._shutdown()

    def _measure(self, records: int, seconds: float) -> None:
        """Fold a write's time per record into `_cost`: a moving average over the last
        ~`COST_RECORDS` records (a send to the writer process is quick until its pipe
        fills, then it waits for the process: only an average says how fast it goes)."""
        if records and self._cost_reset:  # the first send to the writer process
            self._cost, self._cost_reset = seconds / records, False
        elif records:
            weight = records / (records + COST_RECORDS)
            self._cost += weight * (seconds / records - self._cost)

    def _safe(self, safe_at: float) -> None:
        """The held records are written: records put before `safe_at` are safe."""
        self._safe_at = max(self._safe_at, safe_at)
        self._holding = False

    def _drain(self, held: dict[type, list[Any]], limit: int) -> tuple[int, _Flush | None]:
        """Move queued records into `held` by type, up to `limit` or a flush marker
        (returned: everything before it must be committed before it is released)."""
        queue = self._queue
        n = 0
        while queue and n < limit:
            record = queue.popleft()
            cls = type(record)
            if cls is _Flush:
                return n, record  # type: ignore[return-value]
            held[cls].append(record)
            n += 1
        return n, None

    def _process_coming(self) -> bool:
        """The writer process was started, is not up yet, and may still come up (see
        `START_SECONDS`): this thread writes in short transactions meanwhile."""
        if self._process is None or self._ready_process() is not None:
            return False
        # (_ready_process drops a process that failed to start)
        starting = time.monotonic() - self._process_started < START_SECONDS
        return self._process is not None and starting

    def _write_held(self, held: dict[type, list[Any]], n: int, oldest: float) -> None:
        """Write the held records (emptying `held`), all put at or after `oldest`
        (monotonic time: the writer process commits them in time by it)."""
        if n:
            records = {cls: rows for cls, rows in held.items() if rows}
            held.clear()
            if self.target.read_only:  # nothing can be written: count, do not try
                self.lost += n
                return
            try:
                batch = self._rows(records)
            except BaseException as exc:
                self._failed(exc, n)
                return
            try:
                self._write(batch, oldest)
            except BaseException as exc:
                self._failed(exc, sum(len(rows) for rows in batch.values()))

    def _failed(self, exc: BaseException, records: int) -> None:
        """`records` were not stored because of `exc`. The first failure is logged now;
        the run reports the total at its end (a full disk fails every batch)."""
        if not self.errors:
            log.error("lazyflow store write failed: %s", exc)
        else:
            log.debug("lazyflow store write failed: %s", exc)
        self.lost += records
        if len(self.errors) < _MAX_ERRORS:
            self.errors.append(exc)

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

    def _rows(self, records: dict[type, list[Any]]) -> Batch:
        """Records as database rows, plain tuples by kind name (what ``marshal`` sends):
        what needs the Python objects (pickling values, formatting previews) happens here."""
        batch: Batch = {}
        for cls, rows in records.items():
            if cls is PendingValue:
                batch.update(self._value_rows(rows))
            elif cls is ValidationSetRecord and self.target.damaged_vsets:
                damaged = self.target.damaged_vsets
                batch["vset"] = [tuple(r) for r in rows if r.hash not in damaged]
                batch["vset_replace"] = [tuple(r) for r in rows if r.hash in damaged]
                damaged.difference_update(r.hash for r in rows)
            elif cls is JobRecord:  # fields as in JobRecord, the preview formatted
                batch["job"] = [(*r[:10], preview(r[10]), *r[11:]) for r in rows]
            else:
                batch[KIND_OF[cls].name] = list(map(tuple, rows))
        return batch

    def _value_rows(self, pending: list[PendingValue]) -> Batch:
        """`ValueRecord` (or, for `replace`, `ValueReplaceRecord`) rows of the values:
        pickled here if need be, sealed (`signing.seal`: an HMAC with the store's key, else
        a checksum, which `batch_write` computes for values kept in the row), large ones
        written to blobs. A value whose blob cannot be written
        is lost alone, not with the batch."""
        out: Batch = {"value": [], "value_replace": []}
        now = time.time()
        seen: set[tuple[str, bool]] = set()
        for value_hash, value, data, replace in pending:
            if (value_hash, replace) in seen:
                continue
            seen.add((value_hash, replace))
            try:
                row = self._value_row(value_hash, value, data, replace, now)
            except Exception as exc:
                self._failed(StoreError(f"value {value_hash[:12]} not stored: {exc}"), 1)
                continue
            out["value_replace" if replace else "value"].append(row)
        return {kind: rows for kind, rows in out.items() if rows}

    def _value_row(
        self, value_hash: str, value: Any, data: bytes | None, replace: bool, now: float
    ) -> tuple[Any, ...]:
        if data is None:
            try:
                data = dumps_value(value)  # cloudpickle fallback, as for results
            except Exception:
                data = None  # recorded without bytes: a later run cannot reuse it
        sealed: str | bool | None = None
        blob = None
        blobs = self.target.blobs
        if data is not None and blobs is not None and len(data) > self.target.blob_threshold:
            sealed = seal(self.target.signing, value_hash, data)
            blob = blobs.put(value_hash, data, replace=replace)  # replace: it was damaged
            data = None
        elif data is not None:  # signed here (the key stays in this process), else
            # checksummed by whoever writes the batch: the writer process, when busy
            signing = self.target.signing
            sealed = CHECKSUM_HERE if signing is None else signing.seal(value_hash, data)
        size = len(data) if data is not None else None
        return (
            value_hash,
            type(value).__qualname__[:255],
            size,
            short_repr(value, 200),
            data,
            blob,
            now,
            sealed,
        )

    def _write(self, batch: Batch, oldest: float) -> None:
        process = self._ready_process()
        if process is not None:
            try:
                if not self._handed:  # the hand-over: the thread has committed its last
                    self._handed = self._cost_reset = True
                process.send(batch, oldest)
            except OSError as exc:
                self._process_stopped(process, exc)  # (this batch is among its pending)
            return
        self._write_here(batch)

    def _write_here(self, batch: Batch) -> None:
        """Write `batch` in one transaction of this thread's connection."""
        if self._conn is None:
            self._conn = self.target.connect()
        self.target.count_statements(
            batch_write.apply_batch(
                self._conn, self.target.dialect, self._plan, batch, self._direct
            )
        )

    def _process_stopped(self, process: WriterProcess, exc: BaseException) -> None:
        """The writer process died (killed, out of memory): write here, from now on and
        first what it had not said it committed (kept for this: nothing is lost while
        this process lives; a batch it did commit is written again, which its keys
        make a no-op)."""
        self._process_failed = True
        self._process = None
        with contextlib.suppress(Exception):
            process.collect()  # what it committed before it died, said in its last words
        self.errors.extend(StoreError(e) for e in process.close())
        pending = [batch for _, batch in process.pending]
        records = sum(len(rows) for batch in pending for rows in batch.values())
        log.warning(
            "lazyflow: the writer process stopped (%s); writing in-process, starting with "
            "the %d records it had not committed",
            exc,
            records,
        )
        self.errors.append(
            StoreError(
                f"the lazyflow writer process stopped ({exc}); its {records} uncommitted "
                "records were written in-process"
            )
        )
        for batch in pending:
            try:
                self._write_here(batch)
            except BaseException as failure:
                self._failed(failure, sum(len(rows) for rows in batch.values()))

    def _start_process(self) -> None:
        """Start the writer process (once; it connects while records keep coming)."""
        if self._process is not None or self._process_failed or self.mode == "thread":
            return
        self._process_started = time.monotonic()
        try:
            self._process = WriterProcess.start(self.target, self._plan)
        except Exception as exc:
            log.info("lazyflow: writing in-process (no writer process: %s)", exc)
        if self._process is None:
            self._process_failed = True

    def _ready_process(self, block: bool = False) -> WriterProcess | None:
        """The writer process if it is up (`block`: wait for it to be)."""
        process = self._process
        if process is None:
            return None
        if not process.ready:
            failure = process.poll_ready(block=block)
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
            errors, statements, lost = process.sync()
        except Exception as exc:
            self._process_stopped(process, exc)
            return
        self.target.count_statements(statements)
        self.errors.extend(StoreError(e) for e in errors[: max(0, _MAX_ERRORS - len(self.errors))])
        self.lost += lost


class WriterProcess:
    """The parent's handle on a `batch_write` writer process (used by one writer thread)."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc = proc
        assert proc.stdin is not None and proc.stdout is not None
        self.stdin = proc.stdin.fileno()
        self.reader = batch_write.Reader(proc.stdout.fileno())
        self.ready = False
        self.unacknowledged = False
        self.sent = 0  # rows sent since the last acknowledged sync
        self._token = 0
        # Batches sent that the process has not said it committed, numbered from 1 in
        # the order sent (it numbers them the same way): if it dies, the writer thread
        # writes them itself.
        self.pending: deque[tuple[int, Batch]] = deque()
        self._batches = 0

    @classmethod
    def start(cls, target: WriteTarget, plan: Plan) -> WriterProcess | None:
        """Start a writer process for `target`, or None where it cannot write to it."""
        spec = target.process_connect
        if spec is None or not sys.executable or sys.platform == "win32":
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
        batch_write.send(self.stdin, ("open", *spec, plan))
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

    def send(self, batch: Batch, oldest: float) -> None:
        """Send `batch`, whose records were all put at or after `oldest` (monotonic)."""
        self.collect()
        self.unacknowledged = True  # batches sent since the last acknowledged sync
        self.sent += sum(len(rows) for rows in batch.values())
        self._batches += 1
        self.pending.append((self._batches, batch))
        batch_write.send(self.stdin, ("batch", batch, oldest))

    def collect(self) -> None:
        """Read what the process said without waiting: which batches it committed (it
        says so after every commit; reading before every send keeps its pipe from
        filling up)."""
        while self.reader.ready():
            message = self.reader.read()
            if message is None:
                return
            self._committed(message)

    def _committed(self, message: Any) -> None:
        if message[0] == "committed":
            pending = self.pending
            while pending and pending[0][0] <= message[1]:
                pending.popleft()

    def sync(self) -> tuple[list[str], int, int]:
        """Errors, statement count and rows lost (failed writes) of everything sent
        since the last sync, once it is committed."""
        self._token += 1
        batch_write.send(self.stdin, ("sync", self._token))
        while True:
            message = self.reader.read()
            if message is None:
                raise OSError(f"writer process exited with code {self.proc.wait()}")
            self._committed(message)
            if message[0] == "ack" and message[1] == self._token:
                self.unacknowledged = False  # everything sent is committed
                self.sent = 0
                self.pending.clear()
                return list(message[2]), int(message[3]), int(message[4])

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
