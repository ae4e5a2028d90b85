"""The store writer: the in-process thread, the writer process, and falling back from one
to the other. Everything runs on real databases (SQLite files and PostgreSQL)."""

from __future__ import annotations

import signal
import time

import pytest
from sqlalchemy import text

from lazyflow_core import Scheduler, task
from lazyflow_core.errors import StoreError
from lazyflow_core.store import Store
from lazyflow_core.store.writer import BUSY_RECORDS, StoreWriter

from .workflows import dangling_calls


@task
def double(x: int) -> int:
    return 2 * x


@task
def add_all(xs: list[int]) -> int:
    return sum(xs)


def _count(store: Store, table: str) -> int:
    return int(store.query(text(f"SELECT COUNT(*) FROM {table}"))[0][0])


@pytest.mark.parametrize("mode", ["thread", "process"])
def test_every_record_is_stored_and_reused(
    db_url: str, mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LAZYFLOW_WRITER", mode)
    scheduler = Scheduler(db=db_url)
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
    again = Scheduler(db=db_url)
    assert again.run(add_all([double(i) for i in range(300)])) == 2 * sum(range(300))
    assert again.last_run.executed == 0


@task
def listed(xs: list[str]) -> list[str]:
    return list(xs)


@task
def shout(s: str) -> str:
    return s.upper() + "\t\\N\n"


@pytest.mark.parametrize("mode", ["thread", "process"])
def test_awkward_text_and_bytes_round_trip(
    db_url: str, mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tabs, newlines, backslashes, NUL-free unicode and NULLs survive the bulk paths
    (PostgreSQL batches of 100+ rows go through COPY)."""
    monkeypatch.setenv("LAZYFLOW_WRITER", mode)
    words = [f"w{i}\t\\N \u00e9\n'\"" for i in range(150)]
    expected = [w.upper() + "\t\\N\n" for w in words]
    assert Scheduler(db=db_url).run(listed([shout(w) for w in words])) == expected
    again = Scheduler(db=db_url)
    assert again.run(listed([shout(w) for w in words])) == expected
    assert again.last_run.executed == 0
    previews = {r[0] for r in again.store.query(text("SELECT preview FROM lf_values"))}
    assert repr(expected[0]) in previews


def _tags(writer: StoreWriter, start: int, n: int) -> None:
    for i in range(start, start + n):
        writer.put("tag", ("e" * 32, f"k{i}", str(i)))


@pytest.fixture
def store(sqlite_url: str) -> Store:
    store = Store(sqlite_url)
    store.ensure_schema()
    return store


def test_auto_mode_starts_the_process_only_for_busy_runs(store: Store) -> None:
    writer = StoreWriter(store, mode="auto")
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


def test_killed_writer_process_falls_back_to_the_thread(store: Store) -> None:
    writer = StoreWriter(store, mode="process")
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
def test_database_errors_are_reported(db_url: str, mode: str) -> None:
    store = Store(db_url)
    store.ensure_schema()
    writer = StoreWriter(store, mode=mode)
    writer.put("tag", ("x" * 32, "ok", "1"))
    writer.flush()
    writer.put("call", ("c" * 40, None, "t", "r" * 40, "v" * 40, None, None, 0.0))  # NOT NULL
    writer.close()
    assert writer.errors and "null" in str(writer.errors[0]).lower()
    assert _count(store, "lf_execution_tags") == 1


def test_unknown_writer_mode_is_a_clear_error(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LAZYFLOW_WRITER", "fast")
    with pytest.raises(StoreError, match=r"LAZYFLOW_WRITER='fast'.*auto, thread, process"):
        Scheduler(db=sqlite_url).run(double(1))
