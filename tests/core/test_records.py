"""Typed records: every record kind fits its table, and the statements come from both."""

from __future__ import annotations

from typing import NamedTuple

import pytest

from lazyflow_core.errors import StoreError
from lazyflow_core.records import KINDS, Kind, preview
from lazyflow_core.store import schema
from lazyflow_core.store.columns import TABLES, TableColumns
from lazyflow_core.store.statements import _statement, write_plan


def test_the_checked_in_columns_are_the_schemas() -> None:
    """`columns.TABLES` (what the write plan is built from, without SQLAlchemy) says
    what `schema.py` says: every table, its columns in order, its key, its required
    columns."""
    expected = {
        name: TableColumns(
            columns=tuple(c.name for c in table.columns),
            key=tuple(c.name for c in table.primary_key.columns),
            required=tuple(c.name for c in table.columns if not c.nullable and c.default is None),
        )
        for name, table in schema.metadata.tables.items()
    }
    assert expected == TABLES, f"update store/columns.py TABLES to: {expected!r}"


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
def test_every_record_kind_has_a_statement_in_write_order(dialect: str) -> None:
    plan = write_plan(dialect)
    assert [kind for kind, _sql, _keylen in plan] == [k.name for k in KINDS]
    mark = "?" if dialect == "sqlite" else "%s"
    for (_name, sql, keylen), kind in zip(plan, KINDS, strict=True):
        table = schema.metadata.tables[kind.table]
        assert sql.count(mark) == len(kind.record._fields), sql
        assert table.name in sql
        key = [c.name for c in table.primary_key.columns]
        assert keylen == (len(key) if kind.write in ("insert", "upsert") else 0)


def test_record_fields_are_columns_of_their_table() -> None:
    for kind in KINDS:
        columns = set(schema.metadata.tables[kind.table].columns.keys())
        assert set(kind.record._fields) <= columns, kind.record.__name__


def test_insert_keeps_rows_and_upsert_replaces_them() -> None:
    by_name = {k.name: sql for k, (_n, sql, _l) in zip(KINDS, write_plan("sqlite"), strict=True)}
    assert by_name["job"].endswith("ON CONFLICT (id) DO NOTHING")  # jobs are history
    assert "DO UPDATE SET" in by_name["call"]
    assert "result_hash = excluded.result_hash" in by_name["call"]
    assert by_name["execution_end"].endswith("WHERE id = ?")
    assert by_name["children_reset"] == "DELETE FROM lf_call_children WHERE parent_hash = ?"


class _Wrong(NamedTuple):
    name: str  # lf_tasks' key is "hash": it must come first
    hash: str


class _Unknown(NamedTuple):
    hash: str
    colour: str


class _Missing(NamedTuple):
    hash: str  # lf_tasks.name is NOT NULL


@pytest.mark.parametrize(
    ("record", "message"),
    [
        (_Wrong, r"first fields must be the key \['hash'\]"),
        (_Unknown, r"\['colour'\] are not columns of lf_tasks"),
        (_Missing, r"lacks the NOT NULL columns \['name'\]"),
    ],
)
def test_a_record_that_does_not_fit_its_table_is_refused(record: type, message: str) -> None:
    with pytest.raises(StoreError, match=message):
        _statement(Kind(record, "bad", "lf_tasks", "insert"), "?")  # type: ignore[arg-type]


def test_job_previews_are_formatted_from_call_parts() -> None:
    assert preview(("inc", (1,), {"b": "x"})) == "inc(1, b='x')"
    assert preview("already text") == "already text"
