"""The SQL store: SQLite (embedded default) or PostgreSQL (a team's central cache).

Opening a store applies schema migrations automatically (alembic, serialized by a file
lock on SQLite and an advisory lock on PostgreSQL, so several processes may start at
once). The check costs one query when the schema is current: alembic is imported only when
there is something to upgrade.

Reads happen on the caller's thread (the scheduler batches its cache lookups); writes go
through a `StoreWriter` thread that groups records into few transactions.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import pickle
import threading
import weakref
from collections.abc import Iterator, Sequence
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.exc import DBAPIError, OperationalError, ProgrammingError

from ..errors import StoreError
from . import schema
from .blobs import BlobStore

log = logging.getLogger("lazyflow.store")

DEFAULT_URL = "sqlite:///.lazyflow/lazyflow.db"
HEAD_REVISION = "0002"
VERSION_TABLE = "lf_alembic_version"
_PG_LOCK_KEY = 0x1A2F10E  # arbitrary, stable: serializes migrations on one database
_CHUNK = 500


def resolve_db_url(db: str | None) -> str:
    """`db` if given, else ``LAZYFLOW_DB``, else the SQLite file under ``.lazyflow/``."""
    return db or os.environ.get("LAZYFLOW_DB") or DEFAULT_URL


def _chunks(items: Sequence[str], size: int = _CHUNK) -> Iterator[Sequence[str]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def redact(url: str) -> str:
    """The URL with any password hidden, for messages and logs."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url


class Store:
    """Provenance and cache store behind a SQLAlchemy engine."""

    def __init__(
        self,
        url: str | None = None,
        *,
        blobs: str | None = None,
        blob_threshold: int = 1 << 20,
    ) -> None:
        self.url = resolve_db_url(url)
        self.blob_threshold = blob_threshold
        try:
            self.engine: Engine = self._make_engine(self.url)
        except Exception as exc:
            raise StoreError(
                f"cannot open the lazyflow store at {redact(self.url)!r}: {exc}. Check the URL "
                "(e.g. sqlite:///path/lazyflow.db or postgresql+psycopg://user@host/db)."
            ) from exc
        self.dialect = self.engine.dialect.name
        blob_root = blobs or os.environ.get("LAZYFLOW_BLOBS")
        if blob_root is None and self.dialect == "sqlite" and self.sqlite_path:
            blob_root = os.path.join(os.path.dirname(self.sqlite_path) or ".", "blobs")
        self.blobs = BlobStore(blob_root) if blob_root else None
        self._schema_ready = False
        # Statements sent through the store's own DB-API paths (cache lookups, the
        # writers' batches), which SQLAlchemy's execute events do not see; benchmarks
        # report them.
        self.statements = 0
        self._local = threading.local()
        self._read_conns: list[Any] = []
        # A store dropped without close() still returns its connections (PostgreSQL
        # would otherwise warn about connections deleted while open).
        weakref.finalize(self, _release, self._read_conns, self.engine)

    # -- engine and schema -------------------------------------------------------------
    @property
    def sqlite_path(self) -> str | None:
        if self.dialect != "sqlite":
            return None
        database = self.engine.url.database
        return None if not database or database == ":memory:" else os.path.abspath(database)

    def _make_engine(self, url: str) -> Engine:
        if url.startswith("sqlite"):
            engine = create_engine(url, connect_args={"timeout": 60, "check_same_thread": False})
            database = engine.url.database
            if database and database != ":memory:":
                os.makedirs(os.path.dirname(os.path.abspath(database)), exist_ok=True)

            @event.listens_for(engine, "connect")
            def _pragmas(dbapi_conn: Any, _record: Any) -> None:
                cur = dbapi_conn.cursor()
                cur.execute("PRAGMA busy_timeout=60000")
                cur.execute("PRAGMA journal_mode=WAL")
                cur.execute("PRAGMA synchronous=NORMAL")
                cur.execute("PRAGMA cache_size=-65536")  # 64 MiB: big runs insert millions
                cur.execute("PRAGMA temp_store=MEMORY")
                cur.close()

            return engine
        return create_engine(url, pool_pre_ping=True, **self._server_engine_options(url))

    @staticmethod
    def _server_engine_options(url: str) -> dict[str, Any]:
        """`create_engine` options for a server database (PostgreSQL), by driver.

        ``use_native_hstore=False`` (psycopg 3 and psycopg2): by default SQLAlchemy's first
        connection looks up the ``hstore`` type in the server's catalog, so it can register
        an adapter for it. No lazyflow column is an HSTORE, so that is one catalog query (a
        round trip, ~1 ms on localhost and the most expensive of the dialect's first-connect
        queries) that every process opening the store paid for nothing. Other drivers
        (pg8000, ...) do not take the option and keep their defaults.
        """
        if not url.startswith("postgresql"):
            return {}
        options: dict[str, Any] = {"connect_args": {"connect_timeout": 10}}
        with contextlib.suppress(Exception):  # a bad URL is create_engine's to report
            from sqlalchemy.engine import make_url

            if make_url(url).get_driver_name() in ("psycopg", "psycopg2"):
                options["use_native_hstore"] = False
        return options

    def ensure_schema(self) -> None:
        """Create or upgrade the schema if needed (cheap when already current)."""
        if self._schema_ready:
            return
        try:
            if self.current_revision() != HEAD_REVISION:
                with self._migration_lock():
                    revision = self.current_revision()
                    if revision is None and not self._has_lazyflow_tables():
                        self._create_current()
                    elif revision != HEAD_REVISION:
                        self._upgrade()
        except StoreError:
            raise
        except OperationalError as exc:  # connection-level: refused, timeout, bad file
            raise StoreError(
                f"cannot reach the lazyflow store at {redact(self.url)!r}: "
                f"{exc.orig if hasattr(exc, 'orig') else exc}. Is the database running and "
                "the URL right? Set it with --db or LAZYFLOW_DB."
            ) from exc
        except DBAPIError as exc:  # reached it, but it refused (permissions, ...)
            raise StoreError(
                f"cannot create or check the lazyflow tables at {redact(self.url)!r}: "
                f"{exc.orig if hasattr(exc, 'orig') else exc}. The database user needs to "
                "create tables there (on PostgreSQL: CREATE on the schema in search_path)."
            ) from exc
        self._schema_ready = True

    def current_revision(self) -> str | None:
        with self.engine.connect() as conn:
            try:
                return conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar()
            except (OperationalError, ProgrammingError):
                return None

    @contextlib.contextmanager
    def _migration_lock(self) -> Iterator[None]:
        path = self.sqlite_path
        if path:
            import fcntl

            with open(path + ".migrate.lock", "w") as fh:
                fcntl.flock(fh, fcntl.LOCK_EX)
                try:
                    yield
                finally:
                    fcntl.flock(fh, fcntl.LOCK_UN)
        elif self.dialect == "postgresql":
            with self.engine.connect() as conn:
                conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _PG_LOCK_KEY})
                conn.commit()
                try:
                    yield
                finally:
                    conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _PG_LOCK_KEY})
                    conn.commit()
        else:
            yield

    def _has_lazyflow_tables(self) -> bool:
        from sqlalchemy import inspect

        with self.engine.connect() as conn:
            return any(name.startswith("lf_") for name in inspect(conn).get_table_names())

    def _create_current(self) -> None:
        """A new store: create the current schema and stamp its revision.

        Equivalent to running every migration (a test checks they agree), without
        importing alembic, which alone costs ~0.4 s: most of a small run's start-up.
        """
        with self.engine.begin() as conn:
            schema.metadata.create_all(conn)
            conn.execute(
                text(
                    f"CREATE TABLE {VERSION_TABLE} (version_num VARCHAR(32) NOT NULL, "
                    f"CONSTRAINT {VERSION_TABLE}_pkc PRIMARY KEY (version_num))"
                )
            )
            conn.execute(
                text(f"INSERT INTO {VERSION_TABLE} (version_num) VALUES (:v)"), {"v": HEAD_REVISION}
            )
        log.info("lazyflow store created at %s (schema %s)", redact(self.url), HEAD_REVISION)

    def _upgrade(self, revision: str = "head") -> None:
        from alembic import command
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option(
            "script_location", os.path.join(os.path.dirname(__file__), "migrations")
        )
        cfg.set_main_option("version_table", VERSION_TABLE)
        with self.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)
        log.info("lazyflow store at %s upgraded to %s", redact(self.url), revision)

    def close(self) -> None:
        _release(self._read_conns, self.engine)

    # -- reads used by the scheduler -----------------------------------------------------
    def _read_cursor(self) -> Any:
        """A DBAPI cursor on this thread's own autocommit read connection.

        The scheduler issues many small lookups; checking a pooled connection out and in
        for each one costs more than the query.
        """
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self.engine.raw_connection()
            if self.dialect == "postgresql":
                conn.driver_connection.autocommit = True  # type: ignore[union-attr]
            self._local.conn = conn
            self._read_conns.append(conn)
        return conn.cursor()

    def _select_in(self, sql: str, keys: Sequence[str]) -> list[tuple[Any, ...]]:
        """Run ``sql`` (with ``{in}`` for the placeholder list) over `keys` in chunks."""
        mark = "?" if self.dialect == "sqlite" else "%s"
        rows: list[tuple[Any, ...]] = []
        try:
            cur = self._read_cursor()
            for chunk in _chunks(keys):
                cur.execute(sql.format(marks=", ".join([mark] * len(chunk))), tuple(chunk))
                self.statements += 1
                rows.extend(cur.fetchall())
            cur.close()
        except Exception:
            self._drop_read_connection()
            raise
        return rows

    def _drop_read_connection(self) -> None:
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            with contextlib.suppress(ValueError):
                self._read_conns.remove(conn)
            with contextlib.suppress(Exception):
                conn.invalidate()

    def lookup_calls(self, call_hashes: Sequence[str]) -> dict[str, tuple[str, str]]:
        """``{call_hash: (result_hash, validation_hash)}`` for the cached calls."""
        rows = self._select_in(
            "SELECT call_hash, result_hash, validation_hash FROM lf_calls "
            "WHERE call_hash IN ({marks})",
            call_hashes,
        )
        return {call_hash: (result, vset) for call_hash, result, vset in rows}

    def tasks_with_calls(self, task_hashes: Sequence[str]) -> set[str]:
        """Which of these task versions have ever recorded a call (else lookups are futile).

        A task version is written to ``lf_tasks`` with the first call it records, so its
        primary key answers this without an index on ``lf_calls.task_hash``.
        """
        rows = self._select_in("SELECT hash FROM lf_tasks WHERE hash IN ({marks})", task_hashes)
        return {r[0] for r in rows}

    def load_validation_sets(
        self, hashes: Sequence[str]
    ) -> dict[str, tuple[list[list[str]], list[list[Any]]]]:
        """``{hash: (tasks, files)}``: tasks are [name, hash]; files [path, content, hash]."""
        # Through the thread's read connection, like the lookups: a pooled connection
        # here would be a second physical connection on PostgreSQL during a run.
        rows = self._select_in(
            "SELECT hash, tasks, files FROM lf_validation_sets WHERE hash IN ({marks})", hashes
        )
        return {h: (json.loads(tasks), json.loads(files)) for h, tasks, files in rows}

    def load_value_data(self, value_hashes: Sequence[str]) -> dict[str, bytes | None]:
        """Pickled bytes per value hash; None for a row whose blob is missing."""
        out: dict[str, bytes | None] = {}
        rows = self._select_in(
            "SELECT hash, data, blob FROM lf_values WHERE hash IN ({marks})", value_hashes
        )
        for h, data, blob in rows:
            if data is not None:
                out[h] = bytes(data)
            elif blob and self.blobs is not None:
                out[h] = self.blobs.get(blob)
            else:
                out[h] = None
        return out

    def load_value(self, value_hash: str) -> Any:
        """The stored value with this hash (e.g. to read back an orchestrator reference).

        Raises KeyError if the store has no readable value with that hash.
        """
        self.ensure_schema()
        data = self.load_value_data([value_hash]).get(value_hash)
        if data is None:
            raise KeyError(f"no readable value {value_hash!r} in {redact(self.url)}")
        return pickle.loads(data)

    def history(self) -> CallHistory:
        """Questions about past calls, for explaining cache decisions."""
        return CallHistory(self)

    def writer(self) -> Any:
        from .writer import StoreWriter

        return StoreWriter(self)

    def query(self, statement: Any, params: dict[str, Any] | None = None) -> list[Any]:
        """Run a read-only SQLAlchemy statement and return all rows (for provenance)."""
        self.ensure_schema()
        with self.engine.connect() as conn:
            return list(conn.execute(statement, params or {}))


def _release(conns: list[Any], engine: Engine) -> None:
    for conn in conns:
        with contextlib.suppress(Exception):
            conn.close()
    conns.clear()
    engine.dispose()


def open_store(db: str | Store | None = None) -> Store:
    """A `Store` for `db` (URL, existing store, or None for the default)."""
    if isinstance(db, Store):
        return db
    if db is not None and not isinstance(db, str):
        raise StoreError(
            f"db={db!r} is not a database URL or Store; pass e.g. 'sqlite:///work.db' or "
            "'postgresql+psycopg://user@host/db'."
        )
    return Store(db)


class CallHistory:
    """Read-only questions the dry run (``explain``) asks about past calls of a task."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def latest_task_hash(self, task_name: str) -> str | None:
        rows = self.store._select_in(
            "SELECT task_hash, created_at FROM lf_calls WHERE task_name IN ({marks}) "
            "ORDER BY created_at DESC LIMIT 1",
            [task_name],
        )
        return rows[0][0] if rows else None

    def task_source(self, task_hash: str) -> str | None:
        rows = self.store._select_in(
            "SELECT source FROM lf_tasks WHERE hash IN ({marks})", [task_hash]
        )
        return rows[0][0] if rows else None

    def task_dependencies(self, task_hash: str) -> dict[str, str]:
        """``{global name: hash}`` recorded for a task version ({} if unknown)."""
        rows = self.store._select_in(
            "SELECT dependencies FROM lf_tasks WHERE hash IN ({marks})", [task_hash]
        )
        return json.loads(rows[0][0]) if rows and rows[0][0] else {}

    def latest_call_args(self, task_hash: str) -> dict[str, str]:
        """``{arg name: value hash}`` of the most recent call of this task version."""
        rows = self.store._select_in(
            "SELECT call_hash, created_at FROM lf_calls WHERE task_hash IN ({marks}) "
            "ORDER BY created_at DESC LIMIT 1",
            [task_hash],
        )
        if not rows:
            return {}
        args = self.store._select_in(
            "SELECT name, value_hash FROM lf_call_args WHERE call_hash IN ({marks})", [rows[0][0]]
        )
        return dict(args)

    def value_preview(self, value_hash: str) -> str | None:
        rows = self.store._select_in(
            "SELECT preview FROM lf_values WHERE hash IN ({marks})", [value_hash]
        )
        return rows[0][0] if rows else None
