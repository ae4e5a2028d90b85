"""Open a store for the browser without ever writing to it.

`Provenance(db)` creates a missing schema or upgrades an old one: right for a run, wrong
for a viewer pointed at a team's database. Here the schema must already be current (one
read), every statement the engine sends is checked to be a read before it goes out, and
on PostgreSQL the sessions themselves are read-only, so a write could not commit even if
one slipped past the check. Container arguments are read only when they hold nothing
but built-in values (`Provenance` decodes them as plain data, `store.values.plain_data`):
no stored pickle can run code here.
"""

from __future__ import annotations

import os
from typing import Any

from sqlalchemy import event

from ..errors import StoreError
from ..provenance import Provenance
from ..store.sql import HEAD_REVISION, Store, redact, resolve_db_url, schema_is_newer

_READS = ("SELECT", "WITH", "PRAGMA", "SHOW", "EXPLAIN", "SET", "BEGIN", "ROLLBACK")


class ReadOnlyViolation(StoreError):
    """A statement that could change the store reached the browser's engine."""


def open_read_only(db: str | None) -> Provenance:
    """A `Provenance` over an existing, current store that refuses every write."""
    url = resolve_db_url(db)
    if url.startswith("sqlite"):
        from sqlalchemy.engine import make_url

        database = make_url(url).database
        if not database or database == ":memory:" or not os.path.exists(database):
            raise StoreError(
                f"no lazyflow store at {database or url} (the file does not exist). Run a "
                "workflow first, or point --db / LAZYFLOW_DB at an existing store."
            )
    store = Store(url)
    revision = store.current_revision()
    if revision is None:
        store.close()
        raise StoreError(
            f"{redact(url)} holds no lazyflow store (no schema version found). Point --db "
            "at the database your runs use; `lazyflow ui` never creates one."
        )
    if schema_is_newer(revision):
        store.close()
        raise StoreError(
            f"this store was written by a newer lazyflow (schema {revision}); upgrade "
            f"lazyflow (this one reads schemas up to {HEAD_REVISION}; store {redact(url)})"
        )
    if revision != HEAD_REVISION:
        store.close()
        raise StoreError(
            f"the store at {redact(url)} has schema {revision}, this lazyflow reads "
            f"{HEAD_REVISION}. `lazyflow ui` never changes a store: run `lazyflow db upgrade "
            "--db URL` (or any run) with this lazyflow first, or use the matching version."
        )
    guard(store)
    return Provenance(store)


def guard(store: Store) -> None:
    """Refuse non-read statements on `store`'s engine; read-only sessions on PostgreSQL."""
    engine = store.engine

    @event.listens_for(engine, "before_cursor_execute")
    def _only_reads(
        conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool
    ) -> None:
        head = statement.lstrip().split(None, 1)[0].upper() if statement.strip() else ""
        if head not in _READS:
            raise ReadOnlyViolation(
                f"lazyflow ui is read-only and refused to send {head or 'an empty'} statement "
                f"to {redact(store.url)}: {statement[:80]!r}. This is a bug; please report it."
            )

    if store.dialect == "postgresql":

        @event.listens_for(engine, "connect")
        def _read_only_session(dbapi_conn: Any, _record: Any) -> None:
            autocommit = dbapi_conn.autocommit
            dbapi_conn.autocommit = True
            with dbapi_conn.cursor() as cur:
                cur.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
            dbapi_conn.autocommit = autocommit

        engine.dispose()  # connections made before the hook are not reused
