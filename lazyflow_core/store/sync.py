"""Copying executions between stores: ``lazyflow push|pull|export|import``.

An execution is copied with everything its record refers to, so that the target can
answer the same questions (log, lineage, diff, explain) and serve the same cache hits:
its tags, its jobs and their entity tags, the calls of its jobs and, recursively, their
child calls and the calls that produced their arguments (the Merkle graph below them),
those calls' arguments, files, reductions and validation sets, the task versions, and
the values (results, arguments, returned expressions) with their blobs.

Values are copied as the stored bytes and their seal (``lf_values.signature``), never
unpickled: a value keeps the signature it had, so a value that did not verify in the
source (unsigned, planted, damaged) does not verify in the target either. A store that
signs with a key reads only values signed with one of its keys: stores that share values
should share the key (``LAZYFLOW_SIGNING_KEY``).

Copying is idempotent: rows are only added, never overwritten (``ON CONFLICT DO NOTHING``
by primary key), and a call the target already has keeps the target's record (its
arguments, children and files go with it). Executions are written last, so an
interrupted copy shows no execution whose records are missing; copying again finishes
it. Executions still running are left out.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Table, select

from . import schema
from .sql import Store

_CHUNK = 400


@dataclass
class CopyReport:
    """What a copy added to the target, by table (rows), and what it left out."""

    executions: list[str] = field(default_factory=list)  # ids copied (new or not)
    added: dict[str, int] = field(default_factory=dict)
    blobs: int = 0
    bytes: int = 0
    skipped_running: list[str] = field(default_factory=list)
    missing_blobs: int = 0

    @property
    def nothing_added(self) -> bool:
        return not any(self.added.values()) and not self.blobs


def copy_executions(
    source: Store, target: Store, ids: Sequence[str] | None = None, *, inline: bool = False
) -> CopyReport:
    """Copy executions `ids` (all finished ones when None) from `source` to `target`.

    With `inline`, values kept in blobs are written into the target's rows instead of its
    blob store (an export file is then one self-contained SQLite file).
    """
    target.ensure_schema()
    report = CopyReport()
    e = schema.executions
    rows = _fetch_all(source, e) if ids is None else _fetch(source, e, e.c.id, ids)
    report.skipped_running = [r["id"] for r in rows if r["status"] == "running"]
    executions = [r for r in rows if r["status"] != "running"]
    report.executions = [r["id"] for r in executions]
    records = _records(source, target, executions)
    _copy_values(source, target, _value_hashes(records), inline, report)
    for table in _WRITE_ORDER:
        report.added[table.name] = _insert_missing(target, table, records.get(table.name, []))
    return report


# Tables in the order they are written: what refers to a row comes after it, and the
# executions last (an interrupted copy shows no execution whose records are missing).
_WRITE_ORDER = (
    schema.tasks,
    schema.validation_sets,
    schema.calls,
    schema.call_args,
    schema.call_children,
    schema.files,
    schema.reductions,
    schema.jobs,
    schema.entity_tags,
    schema.execution_tags,
    schema.executions,
)

# Where value hashes are: (table, column) of the records copied.
_VALUE_COLUMNS = (
    ("lf_calls", "result_hash"),
    ("lf_call_args", "value_hash"),
    ("lf_reductions", "value_hash"),
    ("lf_jobs", "result_hash"),
    ("lf_executions", "result_hash"),
)


def _records(
    source: Store, target: Store, executions: list[dict[str, Any]]
) -> dict[str, list[dict[str, Any]]]:
    """The rows of `source` the executions' records need, by table name (values apart);
    calls the target has already are left out, with their arguments, children, files."""
    eids = [r["id"] for r in executions]
    jobs = _fetch(source, schema.jobs, schema.jobs.c.execution_id, eids)
    starts = {j["call_hash"] for j in jobs} | {r["root_call_hash"] for r in executions}
    graph = _call_graph(source, {h for h in starts if h})
    new = {k[0] for k in _missing_keys(target, schema.calls, graph.call_rows)}
    calls = [c for c in graph.call_rows if c["call_hash"] in new]
    tasks = {c["task_hash"] for c in calls} | {j["task_hash"] for j in jobs if j["task_hash"]}
    t, v, f, r = schema.tasks, schema.validation_sets, schema.files, schema.reductions
    et, tg = schema.execution_tags, schema.entity_tags
    return {
        "lf_executions": executions,
        "lf_execution_tags": _fetch(source, et, et.c.execution_id, eids),
        "lf_jobs": jobs,
        "lf_tags": _fetch(source, tg, tg.c.execution_id, eids),
        "lf_calls": calls,
        "lf_call_args": [a for a in graph.arg_rows if a["call_hash"] in new],
        "lf_call_children": [c for c in graph.child_rows if c["parent_hash"] in new],
        "lf_files": _fetch(source, f, f.c.call_hash, new),
        "lf_reductions": _fetch(source, r, r.c.call_hash, new),
        "lf_validation_sets": _fetch(source, v, v.c.hash, {c["validation_hash"] for c in calls}),
        "lf_tasks": _fetch(source, t, t.c.hash, tasks),
    }


def _value_hashes(records: dict[str, list[dict[str, Any]]]) -> list[str]:
    """Every value the records name: results, arguments, returned expressions, and the
    values that carry tags."""
    found = {row[column] for table, column in _VALUE_COLUMNS for row in records[table]}
    found |= {t["entity_id"] for t in records["lf_tags"] if t["entity_kind"] == "value"}
    return sorted(h for h in found if h)


@dataclass
class _Graph:
    calls: set[str] = field(default_factory=set)
    call_rows: list[dict[str, Any]] = field(default_factory=list)
    arg_rows: list[dict[str, Any]] = field(default_factory=list)
    child_rows: list[dict[str, Any]] = field(default_factory=list)


def _call_graph(source: Store, starts: set[str]) -> _Graph:
    """The calls reachable from `starts` through child calls and argument producers."""
    graph = _Graph()
    frontier = sorted(starts)
    while frontier:
        graph.calls.update(frontier)
        graph.call_rows += _fetch(source, schema.calls, schema.calls.c.call_hash, frontier)
        args = _fetch(source, schema.call_args, schema.call_args.c.call_hash, frontier)
        children = _fetch(
            source, schema.call_children, schema.call_children.c.parent_hash, frontier
        )
        graph.arg_rows += args
        graph.child_rows += children
        reached = {a["producer"] for a in args if a["producer"]} | {
            c["child_hash"] for c in children
        }
        frontier = sorted(reached - graph.calls)
    return graph


def _copy_values(
    source: Store, target: Store, hashes: list[str], inline: bool, report: CopyReport
) -> None:
    """Copy the value rows the target lacks, as bytes and seal; blobs go to the target's
    blob store (or inline into the row, with `inline` or without a blob store)."""
    v = schema.values
    missing = sorted(k[0] for k in _missing_keys(target, v, [{"hash": h} for h in hashes]))
    added = 0
    for i in range(0, len(missing), _CHUNK):
        rows = _fetch(source, v, v.c.hash, missing[i : i + _CHUNK])
        for row in rows:
            _move_blob(source, target, row, inline, report)
            report.bytes += len(row["data"] or b"")
        added += _insert_missing(target, v, rows, checked=True)
    report.added[v.name] = added


def _move_blob(
    source: Store, target: Store, row: dict[str, Any], inline: bool, report: CopyReport
) -> None:
    key = row["blob"]
    if not key or row["data"] is not None:
        return
    raw = source.blobs.get(key) if source.blobs is not None else None
    if raw is None:
        report.missing_blobs += 1  # unreadable in the source: as unreadable in the target
        return
    if inline or target.blobs is None:
        row["data"], row["blob"] = raw, None
    else:
        row["blob"] = target.blobs.put(row["hash"], raw)
        report.blobs += 1
        report.bytes += len(raw)


def _fetch_all(store: Store, table: Table) -> list[dict[str, Any]]:
    with store.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(select(table))]


def _fetch(store: Store, table: Table, column: Any, keys: Iterable[Any]) -> list[dict[str, Any]]:
    """Rows of `table` whose `column` is one of `keys` (in chunks of IN lists)."""
    keys = sorted(set(keys))
    out: list[dict[str, Any]] = []
    with store.engine.connect() as conn:
        for i in range(0, len(keys), _CHUNK):
            statement = select(table).where(column.in_(keys[i : i + _CHUNK]))
            out += [dict(r._mapping) for r in conn.execute(statement)]
    return out


def _key(table: Table, row: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(row[c.name] for c in table.primary_key.columns)


def _missing_keys(target: Store, table: Table, rows: list[dict[str, Any]]) -> set[tuple[Any, ...]]:
    """The primary keys of `rows` that `target` does not have."""
    columns = list(table.primary_key.columns)
    wanted = {_key(table, r) for r in rows}
    firsts = sorted({k[0] for k in wanted})
    found: set[tuple[Any, ...]] = set()
    with target.engine.connect() as conn:
        for i in range(0, len(firsts), _CHUNK):
            statement = select(*columns).where(columns[0].in_(firsts[i : i + _CHUNK]))
            found.update(tuple(r) for r in conn.execute(statement))
    return wanted - found


def _insert_missing(
    target: Store, table: Table, rows: list[dict[str, Any]], *, checked: bool = False
) -> int:
    """Insert the `rows` the target lacks (never overwriting one); returns how many.
    `checked`: the rows are known to be missing already."""
    if not rows:
        return 0
    if not checked:
        missing = _missing_keys(target, table, rows)
        rows = [r for r in rows if _key(table, r) in missing]
    unique = list({_key(table, r): r for r in rows}.values())
    if not unique:
        return 0
    insert = _insert(target)
    with target.engine.begin() as conn:
        for i in range(0, len(unique), _CHUNK):
            conn.execute(insert(table).on_conflict_do_nothing(), unique[i : i + _CHUNK])
    return len(unique)


def _insert(store: Store) -> Any:
    if store.dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert

        return insert
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert
