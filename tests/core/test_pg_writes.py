"""Bulk writes on PostgreSQL (`store.batch_write`): COPY straight into the tables while
nothing stored is in the way, the ON CONFLICT path once something is, and transactions
of several batches (the writer process's) that write each row once. On the real server
of `tests/conftest.py`."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from lazyflow_core.records import CallRecord, ValueRecord
from lazyflow_core.store import Store, batch_write
from lazyflow_core.store.batch_write import COPY_MIN_ROWS, Transaction, apply_batch, direct_kinds
from lazyflow_core.store.statements import write_plan

PLAN = write_plan("postgresql")
N = 2 * COPY_MIN_ROWS  # enough rows per kind for COPY


@pytest.fixture
def conn(pg_url: str) -> Iterator[Any]:
    """A psycopg connection to a new store's schema (not autocommit, as the writers')."""
    store = Store(pg_url)
    store.ensure_schema()
    connection = store._own_connection()
    try:
        yield connection
    finally:
        connection.close()
        store.close()


def _calls(start: int, stop: int, result: str) -> list[tuple[Any, ...]]:
    return [
        tuple(CallRecord(f"c{i:039d}", "t" * 40, "m.f", result * 40, "v" * 40, "e", f"j{i}", 1.0))
        for i in range(start, stop)
    ]


def _values(start: int, stop: int, preview: str) -> list[tuple[Any, ...]]:
    return [
        tuple(ValueRecord(f"h{i:039d}", "int", 1, preview, b"x", None, 1.0, None))
        for i in range(start, stop)
    ]


def _rows(conn: Any, sql: str) -> list[tuple[Any, ...]]:
    cur = conn.cursor()
    cur.execute(sql)
    rows = cur.fetchall()
    cur.close()
    return list(rows)


def test_new_rows_are_copied_straight_into_their_tables(conn: Any) -> None:
    tx = Transaction(conn, "postgresql", PLAN)
    tx.add({"call": _calls(0, N, "a"), "value": _values(0, N, "1")})
    tx.commit()
    assert tx.errors == [] and tx.lost == 0
    assert tx.statements == 2  # one COPY per kind, no temporary tables
    assert {"call", "value", "job"} <= (tx.direct or set())
    assert _rows(conn, "SELECT COUNT(*) FROM lf_calls") == [(N,)]
    assert _rows(conn, "SELECT COUNT(*) FROM lf_values") == [(N,)]


def test_stored_keys_keep_each_statements_on_conflict_rule(conn: Any) -> None:
    """A COPY that meets stored keys fails whole; the batch is written again through
    ON CONFLICT: calls are updated (DO UPDATE), values kept (DO NOTHING), nothing is
    lost, and those kinds are not copied straight in any more."""
    first = Transaction(conn, "postgresql", PLAN)
    first.add({"call": _calls(0, N, "a"), "value": _values(0, N, "old")})
    first.commit()
    tx = Transaction(conn, "postgresql", PLAN)  # a later run's writer: knows nothing yet
    half = N // 2
    tx.add({"call": _calls(half, N + half, "b"), "value": _values(half, N + half, "new")})
    tx.add({"call": _calls(N + half, 2 * N, "b")})  # after the conflict, in the same tx
    tx.commit()
    assert tx.errors == [] and tx.lost == 0
    assert tx.direct is not None and "call" not in tx.direct and "value" not in tx.direct
    assert "job" in tx.direct
    results = dict(_rows(conn, "SELECT result_hash, COUNT(*) FROM lf_calls GROUP BY 1"))
    assert results == {"a" * 40: half, "b" * 40: 2 * N - half}
    previews = dict(_rows(conn, "SELECT preview, COUNT(*) FROM lf_values GROUP BY 1"))
    assert previews == {"old": N, "new": half}


def test_apply_batch_writes_a_batch_that_meets_stored_keys(conn: Any) -> None:
    direct = direct_kinds("postgresql", PLAN)
    assert direct is not None and direct_kinds("sqlite", write_plan("sqlite")) is None
    apply_batch(conn, "postgresql", PLAN, {"value": _values(0, N, "old")}, direct)
    apply_batch(conn, "postgresql", PLAN, {"value": _values(0, 2 * N, "new")}, direct)
    assert "value" not in direct
    previews = dict(_rows(conn, "SELECT preview, COUNT(*) FROM lf_values GROUP BY 1"))
    assert previews == {"old": N, "new": N}


@pytest.mark.parametrize("straight", [True, False])
def test_a_transaction_of_several_batches_writes_each_row_once(conn: Any, straight: bool) -> None:
    """The writer process runs many batches per transaction. Through the temporary
    table, each batch's INSERT ... SELECT used to insert again the rows of every batch
    before it (the table emptied only at commit): upserts updated them all again."""
    tx = Transaction(conn, "postgresql", PLAN)
    if not straight:
        tx.direct = set()
    for i in range(3):
        tx.add({"call": _calls(i * N, (i + 1) * N, "a")})
    inserted, updated = _rows(
        conn,
        "SELECT n_tup_ins, n_tup_upd FROM pg_stat_xact_user_tables WHERE relname = 'lf_calls' "
        "AND schemaname = current_schema()",
    )[0]
    tx.commit()
    assert (inserted, updated) == (3 * N, 0)
    assert _rows(conn, "SELECT COUNT(*) FROM lf_calls") == [(3 * N,)]


def _synchronous_commit(conn: Any) -> str:
    return str(_rows(conn, "SHOW synchronous_commit")[0][0])


def test_only_the_writers_sessions_commit_without_waiting_for_the_disk(pg_url: str) -> None:
    """The writer thread's and the writer process's sessions set synchronous_commit off
    (docs/store.md, "What a crash loses"), also after a rolled-back transaction; the
    lookups' and the leases' sessions keep the server's setting."""
    store = Store(pg_url)
    store.ensure_schema()
    server_default = _synchronous_commit(store._read_connection())
    assert server_default != "off"
    target = store.write_target()
    spec = target.process_connect
    assert spec is not None
    module, args, kwargs, _dialect, settings = spec
    for writer in (target.connect(), batch_write.connect(module, args, kwargs, settings)):
        assert _synchronous_commit(writer) == "off"
        writer.rollback()
        assert _synchronous_commit(writer) == "off"
        writer.close()
    leases = store.leases("e" * 32, ttl=30.0)
    assert leases is not None
    assert _synchronous_commit(leases._conn) == server_default
    leases.close()
    store.close()


def test_a_small_batch_goes_in_one_pipeline_and_fails_whole(conn: Any) -> None:
    """Without rows to COPY, a batch's statements and its commit are pipelined (one
    round trip); a bad row still fails the whole batch, and the connection goes on."""
    import psycopg

    good = {"call": _calls(0, 3, "a"), "value": _values(0, 3, "1")}
    assert batch_write._pipelined(conn, "postgresql", good)
    apply_batch(conn, "postgresql", PLAN, good)
    bad = {
        "call": _calls(3, 5, "a"),
        "value": [(*_values(5, 6, "1")[0][:1], None, *_values(5, 6, "1")[0][2:])],
    }
    with pytest.raises(psycopg.errors.NotNullViolation):
        apply_batch(conn, "postgresql", PLAN, bad)
    assert _rows(conn, "SELECT COUNT(*) FROM lf_calls") == [(3,)]
    conn.commit()
    assert _rows(conn, "SELECT COUNT(*) FROM lf_values") == [(3,)]
