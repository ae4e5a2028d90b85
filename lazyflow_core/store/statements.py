"""The SQL that writes each record kind, derived from the record types and the tables.

`lazyflow_core.records` says what each record holds (its fields are column names) and
how it is written; `columns` says what the tables are (columns, primary keys: the
schema as plain data, checked against `schema` by a test, so building the plan needs no
SQLAlchemy). The write plan built here joins the two, so no statement spells out a
column list by hand and a record that disagrees with its table fails on the first
write (and in a test), not with a database error in the middle of a run.

A plan is a tuple of ``(kind, sql, key_length)`` in write order: plain strings and ints,
so it travels to the writer process (which cannot import SQLAlchemy) in its ``open``
message. ``key_length`` is the number of leading fields that form the row's key (0 for
updates and deletes): `batch_write` sorts and deduplicates rows by it.
"""

from __future__ import annotations

import functools

from ..errors import StoreError
from ..records import KINDS, Kind
from .columns import TABLES, TableColumns

Plan = tuple[tuple[str, str, int], ...]


@functools.cache
def write_plan(dialect: str) -> Plan:
    """The statements of every record kind, in write order, for `dialect`."""
    mark = "?" if dialect == "sqlite" else "%s"
    return tuple(_statement(kind, mark) for kind in KINDS)


def _statement(kind: Kind, mark: str) -> tuple[str, str, int]:
    table = TABLES.get(kind.table)
    if table is None:
        raise StoreError(
            f"internal error: record {kind.record.__name__} is written to {kind.table}, "
            "which is not in store/columns.py TABLES"
        )
    fields = list(kind.record._fields)
    key = list(table.key)
    _check(kind, table, fields, key)
    placeholders = ", ".join([mark] * len(fields))
    if kind.write == "update":
        n = len(key)
        sets = ", ".join(f"{f} = {mark}" for f in fields[:-n])
        where = " AND ".join(f"{f} = {mark}" for f in fields[-n:])
        return kind.name, f"UPDATE {kind.table} SET {sets} WHERE {where}", 0
    if kind.write == "delete":
        where = " AND ".join(f"{f} = {mark}" for f in fields)
        return kind.name, f"DELETE FROM {kind.table} WHERE {where}", 0
    insert = f"INSERT INTO {kind.table} ({', '.join(fields)}) VALUES ({placeholders}) "
    conflict = f"ON CONFLICT ({', '.join(key)}) "
    if kind.write == "insert":
        return kind.name, insert + conflict + "DO NOTHING", len(key)
    updates = ", ".join(f"{f} = excluded.{f}" for f in fields if f not in key)
    return kind.name, insert + conflict + f"DO UPDATE SET {updates}", len(key)


def _check(kind: Kind, table: TableColumns, fields: list[str], key: list[str]) -> None:
    """A record type must fit its table: that is what makes the statements right."""
    name = kind.record.__name__
    unknown = [f for f in fields if f not in table.columns]
    problem = ""
    if unknown:
        problem = f"fields {unknown} are not columns of {kind.table}"
    elif kind.write in ("insert", "upsert"):
        required = [c for c in table.required if c not in fields]
        if fields[: len(key)] != key:
            problem = f"its first fields must be the key {key}"
        elif required:
            problem = f"it lacks the NOT NULL columns {required}"
    elif kind.write == "update":
        if fields[-len(key) :] != key:
            problem = f"its last fields must be the key {key}"
    elif kind.write == "delete":
        if fields != key[: len(fields)]:
            problem = f"its fields must be a prefix of the key {key}"
    else:
        problem = f"unknown write {kind.write!r}"
    if problem:
        raise StoreError(f"internal error: record {name} does not fit {kind.table}: {problem}")
