"""Damaged caches: every unreadable record is a miss with a warning and is replaced on
the next write; a failed write loses only its own record, and the run says how many."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import pytest
from sqlalchemy import text

from lazyflow_core import Scheduler, StoreError, hash_value, task
from lazyflow_core.store import Store
from lazyflow_core.store.blobs import key_for


@task
def blob_of(n: int) -> bytes:
    return bytes(range(256)) * n


@task
def pair(n: int) -> list[bytes]:
    return [blob_of(n), blob_of(n + 1)]


def _store(tmp_path: Path) -> Store:
    return Store(f"sqlite:///{tmp_path / 'lazyflow.db'}", blob_threshold=100)


def _blob_path(tmp_path: Path, value: bytes) -> Path:
    return tmp_path / "blobs" / key_for(hash_value(value))


def test_a_corrupt_blob_is_a_miss_and_is_replaced(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Before, the writer kept the existing (damaged) file: a warning on every run."""
    sched = Scheduler(db=_store(tmp_path))
    expected = bytes(range(256)) * 4
    assert sched.run(blob_of(4)) == expected
    path = _blob_path(tmp_path, expected)
    path.write_bytes(b"\x80\x05 not the pickle it was")
    with caplog.at_level(logging.WARNING, logger="lazyflow"):
        assert sched.run(blob_of(4)) == expected
    assert "blob_of(4)" in caplog.text and "checksum" in caplog.text
    assert sched.last_run is not None and sched.last_run.executed == 1
    assert sched.run(blob_of(4)) == expected
    assert sched.last_run is not None and sched.last_run.cached == 1
    sched.close()


def test_a_blob_that_cannot_be_read_is_a_miss_not_a_crash(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    sched = Scheduler(db=_store(tmp_path))
    expected = bytes(range(256)) * 4
    sched.run(blob_of(4))
    path = _blob_path(tmp_path, expected)
    path.unlink()
    (path / "in-the-way").mkdir(parents=True)  # IsADirectoryError when read
    with caplog.at_level(logging.WARNING, logger="lazyflow"):
        assert sched.run(blob_of(4)) == expected
    assert "its blob cannot be read" in caplog.text
    assert sched.last_run is not None and sched.last_run.executed == 1
    sched.close()


def test_a_planted_blob_key_is_never_opened(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A value row whose blob key leads out of the blob root is a miss: the file is not read."""
    sched = Scheduler(db=_store(tmp_path))
    sched.run(blob_of(4))
    outside = tmp_path / "secret.pickle"
    outside.write_bytes(b"not for lazyflow")
    with sched.store.engine.begin() as conn:
        conn.execute(text("UPDATE lf_values SET blob = '../secret.pickle' WHERE blob IS NOT NULL"))
    with caplog.at_level(logging.WARNING, logger="lazyflow"):
        sched.run(blob_of(4))
    assert "is not a digest key" in caplog.text
    assert sched.last_run is not None and sched.last_run.executed == 1
    sched.close()


def test_a_corrupt_validation_set_is_a_miss_and_is_replaced(
    db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Before, every run failed with a bare JSONDecodeError (SQLite and PostgreSQL)."""
    sched = Scheduler(db=db_url)
    assert len(sched.run(pair(1))) == 2
    with sched.store.engine.begin() as conn:
        conn.execute(text("UPDATE lf_validation_sets SET tasks = '[[\"oops'"))
    with caplog.at_level(logging.WARNING, logger="lazyflow"):
        assert len(sched.run(pair(1))) == 2
    assert "validation set" in caplog.text and "unreadable" in caplog.text
    assert sched.last_run is not None and sched.last_run.executed == 3
    sched.run(pair(1))
    assert sched.last_run is not None and sched.last_run.cached == 1
    sched.close()


def test_a_failed_blob_write_loses_only_its_own_record(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Before, the whole batch of unrelated records was dropped and a .tmp file left."""
    sched = Scheduler(db=_store(tmp_path))
    blocked = _blob_path(tmp_path, bytes(range(256)) * 2)
    (blocked / "in-the-way").mkdir(parents=True)  # the blob cannot be renamed into place
    with caplog.at_level(logging.WARNING, logger="lazyflow"):
        assert len(sched.run(pair(1))) == 2
    summary = sched.last_run
    assert summary is not None and summary.records_lost == 1
    assert "1 record of execution" in caplog.text and "could not be stored" in caplog.text
    assert not [p for p in (tmp_path / "blobs").rglob("*.tmp")]
    store = sched.store
    calls = store.query(text("SELECT COUNT(*) FROM lf_calls"))[0][0]
    jobs = store.query(text("SELECT COUNT(*) FROM lf_jobs"))[0][0]
    assert (calls, jobs) == (3, 3)  # everything else of the batch was stored
    shutil.rmtree(blocked)
    sched.run(pair(1))  # the rest of the batch was stored: the whole call is a hit
    assert sched.last_run is not None and sched.last_run.cached == 1
    with caplog.at_level(logging.WARNING, logger="lazyflow"):
        sched.run(blob_of(2))  # the lost value: a miss, run and stored again
    assert sched.last_run is not None and sched.last_run.executed == 1
    assert "its value row is missing" in caplog.text
    sched.run(blob_of(2))
    assert sched.last_run is not None and sched.last_run.cached == 1
    sched.close()


def test_strict_store_fails_a_run_whose_records_were_lost(tmp_path: Path) -> None:
    sched = Scheduler(db=_store(tmp_path), strict_store=True)
    os.makedirs(_blob_path(tmp_path, bytes(range(256)) * 3) / "in-the-way")
    with pytest.raises(StoreError, match=r"1 record of execution \w+ could not be stored"):
        sched.run(blob_of(3))
    assert sched.last_run is not None and sched.last_run.status == "done"
    sched.close()


def test_one_damaged_value_among_many_hits_is_the_only_miss(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A flat re-run over more calls than one lookup query takes (keys are sorted and
    chunked): every call is found, and the one whose value row was overwritten with
    another value's bytes fails its checksum and runs again, alone."""
    import sqlite3

    from tests.core.tasks import inc, total

    n = 1200  # more than `sql.CHUNK` keys per query
    path = tmp_path / "lazyflow.db"
    sched = Scheduler(db=f"sqlite:///{path}")
    assert sched.run(total([inc(i) for i in range(n)])) == n * (n + 1) // 2
    sched.close()
    damaged = hash_value(701)  # the result of inc(700)
    with sqlite3.connect(path) as conn:
        (other,) = conn.execute("SELECT data FROM lf_values WHERE hash = ?", [hash_value(5)])
        conn.execute("UPDATE lf_values SET data = ? WHERE hash = ?", [other[0], damaged])
    sched = Scheduler(db=f"sqlite:///{path}")
    with caplog.at_level(logging.WARNING, logger="lazyflow"):
        assert sched.run(total([inc(i) for i in range(n)])) == n * (n + 1) // 2
    summary = sched.last_run
    assert summary is not None
    assert (summary.cached, summary.executed) == (n - 1 + 1, 1)  # total is reused too
    assert "inc(700)" in caplog.text and "checksum" in caplog.text
    sched.close()
