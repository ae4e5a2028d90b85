"""The store writer: the in-process thread, the writer process, and falling back from one
to the other. Everything runs on real databases: every implementation of `STORES` (a
SQLite file, in-memory SQLite, PostgreSQL). An in-memory database has no writer process
(another process cannot open it): ``process`` mode falls back to the thread there."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable

import pytest
from sqlalchemy import text

from lazyflow_core import Scheduler, task
from lazyflow_core.errors import StoreError
from lazyflow_core.records import CallRecord, TagRecord
from lazyflow_core.store import Store, batch_write
from lazyflow_core.store.sql import WRITER_WAL_PAGES
from lazyflow_core.store.writer import BUSY_RECORDS, EXPECT_RECORDS, START_RECORDS, StoreWriter
from tests.faults.harness import slow_writer_start

from .workflows import dangling_calls


@task
def double(x: int) -> int:
    return 2 * x


@task
def add_all(xs: list[int]) -> int:
    return sum(xs)


def _count(store: Store, table: str) -> int:
    return int(store.query(text(f"SELECT COUNT(*) FROM {table}"))[0][0])


def _reopened(url: str, store: Store) -> Store | str:
    """The store as a new run would open it: by its URL, except an in-memory database,
    which exists only in the `Store` that holds it."""
    return store if url == "sqlite://" else url


@pytest.mark.parametrize("mode", ["thread", "process"])
def test_every_record_is_stored_and_reused(
    store_url: str, mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LAZYFLOW_WRITER", mode)
    scheduler = Scheduler(db=store_url)
    assert scheduler.run(add_all([double(i) for i in range(300)])) == 2 * sum(range(300))
    store = scheduler.store
    assert _count(store, "lf_calls") == 301
    assert _count(store, "lf_jobs") == 301
    assert _count(store, "lf_call_args") == 301
    assert dangling_calls(store) == 0
    status = store.query(text("SELECT status, jobs FROM lf_executions"))
    assert [tuple(r) for r in status] == [("done", 301)]
    assert store.statements > 0  # the writers' statements are counted too
    # A new process-like start: a fresh scheduler on the same store reuses everything.
    again = Scheduler(db=_reopened(store_url, store))
    assert again.run(add_all([double(i) for i in range(300)])) == 2 * sum(range(300))
    assert again.last_run.executed == 0
    assert (again.last_run.jobs, again.last_run.cached) == (301, 301)


@task
def listed(xs: list[str]) -> list[str]:
    return list(xs)


@task
def shout(s: str) -> str:
    return s.upper() + "\t\\N\n"


@pytest.mark.parametrize("mode", ["thread", "process"])
def test_awkward_text_and_bytes_round_trip(
    store_url: str, mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tabs, newlines, backslashes, NUL-free unicode and NULLs survive the bulk paths
    (PostgreSQL batches of 100+ rows go through COPY)."""
    monkeypatch.setenv("LAZYFLOW_WRITER", mode)
    words = [f"w{i}\t\\N \u00e9\n'\"" for i in range(150)]
    expected = [w.upper() + "\t\\N\n" for w in words]
    first = Scheduler(db=store_url)
    assert first.run(listed([shout(w) for w in words])) == expected
    again = Scheduler(db=_reopened(store_url, first.store))
    assert again.run(listed([shout(w) for w in words])) == expected
    assert again.last_run.executed == 0
    previews = {r[0] for r in again.store.query(text("SELECT preview FROM lf_values"))}
    assert repr(expected[0]) in previews


def _tags(writer: StoreWriter, start: int, n: int) -> None:
    for i in range(start, start + n):
        writer.put(TagRecord("e" * 32, f"k{i}", str(i)))


@pytest.fixture
def store(sqlite_url: str) -> Store:
    store = Store(sqlite_url)
    store.ensure_schema()
    return store


def test_auto_mode_starts_the_process_only_for_busy_runs(store: Store) -> None:
    writer = store.writer(mode="auto")
    for i in range(5):  # a slow run: a few records now and then
        _tags(writer, 10 * i, 10)
        time.sleep(0.05)
    writer.flush()
    assert writer._process is None  # never busy: no process started
    # A busy run: records arrive faster than a poll's worth; the process starts, and
    # once it is up the batches go to it.
    start = 1000
    for _ in range(200):
        _tags(writer, start, 2 * BUSY_RECORDS)
        start += 2 * BUSY_RECORDS
        if writer.uses_process:
            break
        time.sleep(0.02)
    assert writer.uses_process
    writer.close()
    assert writer.errors == []
    assert _count(store, "lf_execution_tags") == 50 + start - 1000


def test_expecting_a_big_wave_starts_the_process_before_its_records(store: Store) -> None:
    """A run about to look up a big wave says so: the process starts with no record
    queued yet, so it is up when the wave's records come; a small wave starts nothing."""
    writer = store.writer(mode="auto")
    writer.expect(EXPECT_RECORDS - 1)
    time.sleep(0.1)
    assert writer._process is None
    writer.expect(EXPECT_RECORDS)
    deadline = time.monotonic() + 30
    while writer._process is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert writer._process is not None  # started, and no record was ever queued
    start = 0
    while not writer.uses_process and time.monotonic() < deadline:
        _tags(writer, start, 10)  # a trickle, never busy: the hint started the process
        start += 10
        time.sleep(0.05)
    assert writer.uses_process
    writer.close()
    assert writer.errors == []
    assert _count(store, "lf_execution_tags") == start


def test_thread_mode_ignores_the_hint(store: Store) -> None:
    writer = store.writer(mode="thread")
    writer.expect(10 * EXPECT_RECORDS)
    _tags(writer, 0, 10)
    writer.flush()
    assert writer._process is None
    writer.close()
    assert _count(store, "lf_execution_tags") == 10


def test_the_writer_process_checkpoints_its_wal_rarely(store: Store) -> None:
    """The writer process's connection (set up as `batch_write` sets it up in the
    process) checkpoints every `WRITER_WAL_PAGES` pages, not SQLite's 1,000: past a few
    hundred thousand calls that default checkpointed after nearly every commit."""
    writer = store.writer(mode="thread")
    spec = writer.target.process_connect
    writer.close()
    assert spec is not None
    module, args, kwargs, _dialect, pragmas = spec
    conn = batch_write.connect(module, args, kwargs, pragmas)
    try:
        assert conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == WRITER_WAL_PAGES
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        conn.close()


def test_the_writer_process_folds_its_wal_into_the_file_as_it_ends(store: Store) -> None:
    """The writer process lets its WAL grow (`WRITER_WAL_PAGES`); as it ends it copies
    the log into the file and empties it, though the store's own connections are still
    open (SQLite folds the log only when the last connection closes)."""
    path = store.sqlite_path
    assert path is not None
    writer = store.writer(mode="process")
    _tags(writer, 0, 500)
    writer.flush()
    process = writer._process
    assert process is not None and writer.uses_process
    assert os.path.getsize(f"{path}-wal") > 0  # committed, in the log
    writer.close()
    assert process.proc.wait(timeout=60) == 0
    assert os.path.getsize(f"{path}-wal") == 0  # folded into the file, emptied
    assert _count(store, "lf_execution_tags") == 500  # and read back from the file


def test_killed_writer_process_falls_back_to_the_thread(store: Store) -> None:
    writer = store.writer(mode="process")
    _tags(writer, 0, 50)
    writer.flush()
    assert writer.uses_process
    process = writer._process
    assert process is not None
    process.proc.send_signal(signal.SIGKILL)
    process.proc.wait()
    _tags(writer, 50, 50)
    writer.close()
    # What it had committed stays; what came after was written in-process; it is reported.
    assert _count(store, "lf_execution_tags") == 100
    assert any("writer process" in str(e) for e in writer.errors)


@pytest.mark.parametrize("mode", ["thread", "process"])
def test_database_errors_are_reported(store_url: str, mode: str) -> None:
    store = Store(store_url)
    store.ensure_schema()
    writer = store.writer(mode=mode)
    writer.put(TagRecord("x" * 32, "ok", "1"))
    writer.flush()
    bad = CallRecord("c" * 40, None, "t", "r" * 40, "v" * 40, "e", "j", 0.0)  # type: ignore[arg-type]
    writer.put(bad)  # task_hash is NOT NULL
    writer.close()
    assert writer.errors and "null" in str(writer.errors[0]).lower()
    assert _count(store, "lf_execution_tags") == 1


def test_unknown_writer_mode_is_a_clear_error(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LAZYFLOW_WRITER", "fast")
    with pytest.raises(StoreError, match=r"LAZYFLOW_WRITER='fast'.*auto, thread, process"):
        Scheduler(db=sqlite_url).run(double(1))


def test_the_writer_process_commits_by_the_age_of_its_oldest_record() -> None:
    """A transaction is committed COMMIT_AGE after its oldest record was put (by the
    run's clock, never later than its arrival says), so a kill of the writer process
    loses no more than the run's own crash bound; commits stay MIN_COMMIT_GAP apart."""
    from lazyflow_core.store.batch_write import COMMIT_AGE, MIN_COMMIT_GAP, commit_deadline

    assert COMMIT_AGE <= 0.4
    assert commit_deadline(10.0, 10.3, 0.0) == pytest.approx(10.0 + COMMIT_AGE)
    # a parent clock ahead of ours is not trusted past the batch's arrival
    assert commit_deadline(99.0, 10.3, 0.0) == pytest.approx(10.3 + COMMIT_AGE)
    # a writer behind (the batch is due already) does not commit per batch
    assert commit_deadline(1.0, 10.3, 10.25) == pytest.approx(10.25 + MIN_COMMIT_GAP)


def test_a_killed_writer_process_loses_nothing_it_had_not_committed(store: Store) -> None:
    """The writer thread keeps what it sent until the process says it committed it; if
    the process dies, the thread writes that itself: nothing is lost, nothing doubled."""
    writer = store.writer(mode="process")
    _tags(writer, 0, 50)
    writer.flush()  # the process is up
    process = writer._process
    assert process is not None and writer.uses_process
    _tags(writer, 50, 300)
    assert _wait(lambda: writer.backlog == 0 and not writer._holding)  # all sent
    process.proc.send_signal(signal.SIGKILL)  # before its commit (COMMIT_AGE)
    process.proc.wait()
    _tags(writer, 350, 50)
    writer.close()
    assert writer.lost == 0
    assert _count(store, "lf_execution_tags") == 400
    assert any("uncommitted records were written in-process" in str(e) for e in writer.errors)


def test_records_are_safe_while_the_writer_process_starts(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Until the process is up (slowed to 1.5 s here, as on a loaded machine), the
    writer thread commits what comes in short transactions; it used to hold the records
    for the process, and a kill then lost them all."""
    for name, value in slow_writer_start(1.5).items():
        monkeypatch.setenv(name, value)
    writer = store.writer(mode="process")
    _tags(writer, 0, 3 * START_RECORDS)
    assert _wait(lambda: _count(store, "lf_execution_tags") == 3 * START_RECORDS, 1.2)
    assert writer._process is not None and not writer.uses_process  # still starting
    _tags(writer, 3 * START_RECORDS, 100)
    writer.close()  # (mode "process": the last records wait for it, and go through it)
    assert writer.errors == [] and writer.lost == 0
    assert _count(store, "lf_execution_tags") == 3 * START_RECORDS + 100


def _wait(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.002)
    return True
