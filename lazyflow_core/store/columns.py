"""The store's tables as plain data: column names, primary key, columns an insert must give.

`statements.write_plan` builds every INSERT, UPDATE and DELETE a run writes from this and
from the record types. It is checked in rather than read from `schema.metadata` because
`schema` is SQLAlchemy, and importing SQLAlchemy (~0.3-0.4 s of CPU) is most of what a
small run costs: a run on a SQLite store at the current schema needs no SQLAlchemy at all
(`store.sql`). `schema` stays the one definition of the tables (migrations and
``create_all`` use it; a new SQLite file gets the migrations' DDL from `ddl`);
`tests/core/test_records.py` checks that this table says the same as `schema` column for
column, so a schema change that forgets it fails there.
"""

from __future__ import annotations

from typing import NamedTuple


class TableColumns(NamedTuple):
    """One table: its columns in order, its primary key, and the columns an INSERT must
    set (NOT NULL without a default)."""

    columns: tuple[str, ...]
    key: tuple[str, ...]
    required: tuple[str, ...]


TABLES: dict[str, TableColumns] = {
    "lf_executions": TableColumns(
        columns=(
            "id",
            "started_at",
            "finished_at",
            "status",
            "root_task",
            "root_call_hash",
            "result_hash",
            "command",
            "hostname",
            "pid",
            "jobs",
            "cached",
            "executed",
            "failed",
            "error",
            "heartbeat_at",
            "host_id",
        ),
        key=("id",),
        required=("id", "started_at", "status"),
    ),
    "lf_execution_tags": TableColumns(
        columns=("execution_id", "key", "value"),
        key=("execution_id", "key"),
        required=("execution_id", "key", "value"),
    ),
    "lf_tags": TableColumns(
        columns=("entity_kind", "entity_id", "key", "execution_id", "value", "created_at"),
        key=("entity_kind", "entity_id", "key", "execution_id"),
        required=("entity_kind", "entity_id", "key", "execution_id", "value"),
    ),
    "lf_tasks": TableColumns(
        columns=(
            "hash",
            "name",
            "module",
            "source",
            "created_at",
            "dependencies",
            "dependency_sources",
        ),
        key=("hash",),
        required=("hash", "name"),
    ),
    "lf_calls": TableColumns(
        columns=(
            "call_hash",
            "task_hash",
            "task_name",
            "result_hash",
            "validation_hash",
            "execution_id",
            "job_id",
            "created_at",
        ),
        key=("call_hash",),
        required=("call_hash", "task_hash", "task_name", "result_hash", "validation_hash"),
    ),
    "lf_call_args": TableColumns(
        columns=("call_hash", "position", "name", "value_hash", "producer"),
        key=("call_hash", "position"),
        required=("call_hash", "position", "name", "value_hash"),
    ),
    "lf_call_children": TableColumns(
        columns=("parent_hash", "position", "child_hash"),
        key=("parent_hash", "position"),
        required=("parent_hash", "position", "child_hash"),
    ),
    "lf_values": TableColumns(
        columns=(
            "hash",
            "type_name",
            "size",
            "preview",
            "data",
            "blob",
            "created_at",
            "signature",
        ),
        key=("hash",),
        required=("hash", "type_name"),
    ),
    "lf_validation_sets": TableColumns(
        columns=("hash", "tasks", "files"),
        key=("hash",),
        required=("hash", "tasks", "files"),
    ),
    "lf_reductions": TableColumns(
        columns=("call_hash", "value_hash", "execution_id", "created_at"),
        key=("call_hash",),
        required=("call_hash", "value_hash"),
    ),
    "lf_files": TableColumns(
        columns=("call_hash", "role", "path", "file_hash", "created_at"),
        key=("call_hash", "role", "path"),
        required=("call_hash", "role", "path"),
    ),
    "lf_jobs": TableColumns(
        columns=(
            "id",
            "execution_id",
            "call_hash",
            "task_name",
            "parent_id",
            "status",
            "cached",
            "started_at",
            "finished_at",
            "attempts",
            "args_preview",
            "error",
            "result_hash",
            "task_hash",
            "error_type",
            "traceback",
        ),
        key=("id",),
        required=("id", "execution_id", "task_name", "status", "cached"),
    ),
    "lf_leases": TableColumns(
        columns=("call_hash", "execution_id", "acquired_at", "ttl"),
        key=("call_hash",),
        required=("call_hash", "execution_id", "acquired_at", "ttl"),
    ),
}
