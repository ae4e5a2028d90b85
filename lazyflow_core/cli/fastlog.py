"""``lazyflow log`` without SQLAlchemy: the list of executions read through sqlite3.

Listing executions is the command people type most, and importing SQLAlchemy takes longer
than the whole listing (~0.2 s of CPU on a 2-core machine, against ~10 ms for the query).
For a SQLite store whose schema is the one this lazyflow writes, the list is read with the
standard library's sqlite3, read-only. Anything else returns None and the command takes
the full path through `lazyflow_core.provenance`, which migrates an old store or says
what is wrong: PostgreSQL, a store to upgrade or written by a newer lazyflow, any error.

The SELECT is `Queries.executions` (provenance/queries.py) written as SQL: the same
filters (root task or any task that ran, by full or short name; every tag; status; start
time), the same order (newest first, then id). The CLI tests run every filter against
both paths (SQLite here, PostgreSQL through SQLAlchemy) with the same expectations.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import fields
from typing import Any

from ..config import sqlite_file
from ..provenance.records import Execution

# Selected after COLUMNS: whether a "running" execution's process is gone (liveness).
LIVENESS = ("heartbeat_at", "host_id")
# The lf_executions columns an `Execution` is made of, in its field order (its tags come
# from lf_execution_tags; heartbeat_at is read with LIVENESS).
COLUMNS = tuple(f.name for f in fields(Execution) if f.name not in ("tags", *LIVENESS))


def _like(name: str) -> str:
    """A LIKE pattern for names ending in ``.name`` (``%`` and ``_`` taken literally)."""
    escaped = name.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return "%." + escaped


def executions_sql(
    *,
    task: str | None = None,
    tags: Mapping[str, str] | None = None,
    status: str | None = None,
    since: float | None = None,
    limit: int | None = None,
) -> tuple[str, list[Any]]:
    """The SELECT of the execution list, and its parameters (``?`` placeholders)."""
    where: list[str] = []
    params: list[Any] = []
    if task:
        name = "({0} = ? OR {0} LIKE ? ESCAPE '\\')"
        where.append(
            f"({name.format('e.root_task')} OR EXISTS (SELECT 1 FROM lf_jobs j "
            f"WHERE j.execution_id = e.id AND {name.format('j.task_name')}))"
        )
        params += [task, _like(task), task, _like(task)]
    for key, value in (tags or {}).items():
        where.append(
            "(EXISTS (SELECT 1 FROM lf_execution_tags t WHERE t.execution_id = e.id "
            "AND t.key = ? AND t.value = ?) OR EXISTS (SELECT 1 FROM lf_tags v "
            "WHERE v.execution_id = e.id AND v.key = ? AND v.value = ?))"
        )
        params += [key, value, key, value]
    if status:
        where.append("e.status = ?")
        params.append(status)
    if since is not None:
        where.append("e.started_at >= ?")
        params.append(since)
    sql = f"SELECT {', '.join('e.' + c for c in COLUMNS + LIVENESS)} FROM lf_executions e"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY e.started_at DESC, e.id"
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    return sql, params


def _head_revision() -> str:
    """The newest schema revision this lazyflow has a migration for (file names
    ``NNNN_*.py``, as `store.sql.known_revisions` reads them), without importing it."""
    versions = os.path.join(
        os.path.dirname(os.path.dirname(__file__)), "store", "migrations", "versions"
    )
    names = os.listdir(versions) if os.path.isdir(versions) else []
    found = sorted(n[:4] for n in names if n[:4].isdigit() and n.endswith(".py"))
    return found[-1] if found else ""


def list_executions(db_url: str, **filters: Any) -> list[Execution] | None:
    """The executions `filters` select, or None when this path does not apply."""
    path = sqlite_file(db_url)
    if path is None or not os.path.isfile(path) or "?" in db_url:
        return None
    if filters.get("status") in ("running", "interrupted"):
        return None  # told apart by liveness, after the SELECT: the Queries path does it
    import sqlite3
    from urllib.parse import quote

    try:
        conn = sqlite3.connect(f"file:{quote(path)}?mode=ro", uri=True, timeout=10)
    except sqlite3.Error:
        return None
    try:
        revision = conn.execute("SELECT version_num FROM lf_alembic_version").fetchone()
        if revision is None or revision[0] != _head_revision():
            return None
        sql, params = executions_sql(**filters)
        rows = conn.execute(sql, params).fetchall()
        tags: dict[str, dict[str, str]] = {}
        ids = [r[0] for r in rows]
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            marks = ", ".join("?" * len(chunk))
            for eid, key, value in conn.execute(
                "SELECT execution_id, key, value FROM lf_execution_tags "
                f"WHERE execution_id IN ({marks}) ORDER BY key",
                chunk,
            ):
                tags.setdefault(eid, {})[key] = value
    except sqlite3.Error:
        return None
    finally:
        conn.close()
    return [_row(r, tags.get(r[0], {})) for r in rows]


def _row(r: tuple[Any, ...], tags: dict[str, str]) -> Execution:
    values = dict(zip(COLUMNS + LIVENESS, r, strict=True))
    for count in ("jobs", "cached", "executed", "failed"):
        values[count] = values[count] or 0
    host_id = values.pop("host_id")
    if values["status"] == "running":  # (liveness, with socket and hashlib, only then)
        from ..liveness import interrupted

        if interrupted(
            values["status"],
            values["started_at"],
            values["heartbeat_at"],
            values["hostname"],
            host_id,
            values["pid"],
        ):
            values["status"] = "interrupted"  # its process is gone (as Queries._status says)
    return Execution(**values, tags=tags)
