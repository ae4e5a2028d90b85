"""The SQL that writes each record kind, derived from the record types and the schema.

`lazyflow_core.records` says what each record holds (its fields are column names) and
how it is written; `schema` says what the tables are (columns, primary keys). The write
plan built here joins the two, so no statement spells out a column list by hand and a
record that disagrees with its table fails on the first write (and in a test), not
with a database error in the middle of a run.

A plan is a tuple of ``(kind, sql, key_length)`` in write order: plain strings and ints,
so it travels to the writer process (which cannot import SQLAlchemy) in its ``open``
message. ``key_length`` is the number of leading fields that form the row's key (0 for
updates and deletes): `batch_write` sorts and deduplicates rows by it.
"""

from __future__ import annotations

import functools

from sqlalchemy import Table

from ..errors import StoreError
from ..records import KINDS, Kind
from . import schema

Plan = tuple[tuple[str, str, int], ...]


@functools.cache
def write_plan(dialect: str) -> Plan:
    """The statements of every record kind, in write order, for `dialect`."""
    mark = "?" if dialect == "sqlite" else "%s"
    return tuple(_statement(kind, mark) for kind in KINDS)


def _statement(kind: Kind, mark: str) -> tuple[str, str, int]:
    table = schema.metadata.tables[kind.table]
    fields = list(kind.record._fields)
    key = [c.name for c in table.primary_key.columns]
    _check(kind, table, fields, key)
    placeholders = ", ".join([mark] * len(fields))
    if kind.write == "update":
        n = len(key)
        sets = ", ".join(f"{f} = {mark}" for f in fields[:-n])
        where = " AND ".join(f"{f} = {mark}" for f in fields[-n:])
        return kind.name, f"UPDATE {table.name} SET {sets} WHERE {where}", 0
    if kind.write == "delete":
        where = " AND ".join(f"{f} = {mark}" for f in fields)
        return kind.name, f"DELETE FROM {table.name} WHERE {where}", 0
    insert = f"INSERT INTO {table.name} ({', '.join(fields)}) VALUES ({placeholders}) "
    conflict = f"ON CONFLICT ({', '.join(key)}) "
    if kind.write == "insert":
        return kind.name, insert + conflict + "DO NOTHING", len(key)
    updates = ", ".join(f"{f} = excluded.{f}" for f in fields if f not in key)
    return kind.name, insert + conflict + f"DO UPDATE SET {updates}", len(key)


def _check(kind: Kind, table: Table, fields: list[str], key: list[str]) -> None:
    """A record type must fit its table: that is what makes the statements right."""
    name = kind.record.__name__
    unknown = [f for f in fields if f not in table.columns]
    problem = ""
    if unknown:
        problem = f"fields {unknown} are not columns of {table.name}"
    elif kind.write in ("insert", "upsert"):
        required = [
            c.name
            for c in table.columns
            if not c.nullable and c.default is None and c.name not in fields
        ]
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
        raise StoreError(f"internal error: record {name} does not fit {table.name}: {problem}")
