"""The SQL store: SQLite (embedded default) or PostgreSQL (a team's central cache).

Opening a store applies schema migrations automatically (alembic, serialized by a file
lock on SQLite and an advisory lock on PostgreSQL, so several processes may start at
once). The check costs one query when the schema is current: alembic is imported only when
there is something to upgrade. On a SQLite file nor is SQLAlchemy: the check, the reads
and the writers use sqlite3 connections (`sqlitefile`), a new file is created from a
checked-in schema script (`ddl`), and the engine is built on first use (to migrate the
store, and for the provenance queries).

Reads happen on the caller's thread (the scheduler batches its cache lookups); writes go
through a `StoreWriter` thread that groups records into few transactions.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import weakref
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from ..codechange import CodeVersion
from ..config import default_db_url, discover, sqlite_file
from ..errors import StoreError
from .blobs import BlobStore
from .pgserver import WRITER_SETTINGS, PgServer, writer_session
from .signing import SigningKeys, resolve_keys
from .sqlitefile import SqliteFile, apply_pragmas, sqlite_read_only_uri
from .values import Unreadable, load_expressions, load_value, read_values

if TYPE_CHECKING:
    from sqlalchemy import Engine
    from sqlalchemy.exc import DBAPIError

    from ..predict import RecordedCall
    from .leases import Leases
    from .writer import ConnectSpec, StoreWriter, WriteTarget

log = logging.getLogger("lazyflow.store")

HEAD_REVISION = "0010"
# the writer process's SQLite page cache, KiB (`_process_connect`)
WRITER_CACHE_KIB = 512 * 1024
# WAL pages the writer process lets accumulate before it checkpoints them into the file
# (SQLite's default: 1,000; 32 MiB with a new store's 32 KiB pages). With random keys a
# commit dirties pages all over its indexes, and past a few hundred thousand calls the
# default checkpointed over and over, copying those pages to the file and syncing it
# each time. At 16,384 (512 MiB of WAL at most; SQLite deletes the file when the last
# connection closes) a page rewritten by several commits is copied once: a 1M-call
# fan-out took 35.6-39.2 s against 49.9-62.1 s (benchmarks/README.md, round four), a
# 100k one 12% less (whole process).
WRITER_WAL_PAGES = 16_384
VERSION_TABLE = "lf_alembic_version"
_PG_LOCK_KEY = 0x1A2F10E  # arbitrary, stable: serializes migrations on one database
CHUNK = 500
T = TypeVar("T")


def resolve_db_url(db: str | None) -> str:
    """`db` if given, else ``LAZYFLOW_DB``, else the project's store found upwards from the
    current directory (a config file's ``db``, or ``.lazyflow/``), else ``.lazyflow/`` here
    (see `lazyflow_core.config`)."""
    return db or default_db_url()


def known_revisions() -> list[str]:
    """The schema revisions this lazyflow has migrations for, oldest first (from the
    migration file names: ``0003_....py``), without importing alembic."""
    versions = os.path.join(os.path.dirname(__file__), "migrations", "versions")
    names = os.listdir(versions) if os.path.isdir(versions) else []
    found = {n[:4] for n in names if n[:4].isdigit() and n.endswith(".py")}
    return sorted(found | {HEAD_REVISION})


def schema_is_newer(revision: str | None) -> bool:
    """Whether a store's schema revision is one a newer lazyflow wrote (unknown here)."""
    return revision is not None and revision not in known_revisions()


def chunks(items: Sequence[T], size: int = CHUNK) -> Iterator[Sequence[T]]:
    """`items` in slices of `size`: one ``IN (...)`` list per query, under every
    database's limit on bound parameters."""
    for i in range(0, len(items), size):
        yield items[i : i + size]


def redact(url: str) -> str:
    """The URL with any password hidden, for messages and logs."""
    if url.partition("://")[0] in ("sqlite", "sqlite+pysqlite") and "@" not in url:
        return url  # no password to hide (and no SQLAlchemy to import for it)
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url


class Store:
    """Provenance and cache store behind a SQLAlchemy engine (on a SQLite file, sqlite3
    connections for a run and an engine built when something needs it: `sqlitefile`)."""

    def __init__(
        self,
        url: str | None = None,
        *,
        blobs: str | None = None,
        blob_threshold: int = 1 << 20,
        signing_key: str | Sequence[str | bytes] | SigningKeys | None = None,
    ) -> None:
        self.url = resolve_db_url(url)
        # Values are signed and verified with these keys (see `signing`); None: values
        # get a checksum only. `Scheduler(signing_key=...)` may set them later.
        self.signing: SigningKeys | None = resolve_keys(signing_key)
        self.blob_threshold = blob_threshold
        # True for a SQLite file this process cannot write: reads work, a run's records
        # are not stored (`StoreWriter` counts them as lost).
        self.read_only = False
        # The engine, once built (a list: what the finalizer below disposes of).
        self._engines: list[Engine] = []
        self._engine_lock = threading.Lock()
        try:
            # A SQLite file: connections through sqlite3, the engine only when needed;
            # a PostgreSQL server through psycopg, the same way (`pgserver`).
            self.file = SqliteFile.of(self.url)
            self.server = PgServer.of(self.url) if self.file is None else None
            if self.file is None and self.server is None:
                self._engines.append(self._make_engine(self.url))
        except Exception as exc:
            raise self._open_error(exc) from exc
        if self.file is not None:
            self.read_only = self.file.read_only
            self.dialect = "sqlite"
        elif self.server is not None:
            self.dialect = "postgresql"
        else:
            self.dialect = self.engine.dialect.name
        blob_root = blobs or os.environ.get("LAZYFLOW_BLOBS")
        if blob_root is None and self.dialect == "sqlite" and self.sqlite_path:
            blob_root = os.path.join(os.path.dirname(self.sqlite_path) or ".", "blobs")
        self.blobs = BlobStore(blob_root) if blob_root else None
        self._schema_ready = False
        # Validation sets found unreadable: written again (over the row) when a run has
        # them again.
        self.damaged_vsets: set[str] = set()
        # Statements sent through the store's own DB-API paths (cache lookups, the
        # writers' batches), which SQLAlchemy's execute events do not see; benchmarks
        # report them.
        self.statements = 0
        self._local = threading.local()
        self._read_conns: list[Any] = []
        # A store dropped without close() still returns its connections (PostgreSQL
        # would otherwise warn about connections deleted while open).
        weakref.finalize(self, _release, self._read_conns, self._engines)

    def _open_error(self, exc: Exception) -> StoreError:
        return StoreError(
            f"cannot open the lazyflow store at {redact(self.url)!r}: {exc}. Check the URL "
            "(e.g. sqlite:///path/lazyflow.db or postgresql+psycopg://user@host/db)."
        )

    # -- engine and schema -------------------------------------------------------------
    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine (built on first use for a SQLite file or a psycopg URL:
        importing SQLAlchemy is most of a small run's start-up, and a run needs no
        engine)."""
        if not self._engines:
            with self._engine_lock:
                if not self._engines:
                    try:
                        self._engines.append(self._make_engine(self.url))
                    except Exception as exc:
                        raise self._open_error(exc) from exc
        return self._engines[0]

    @property
    def sqlite_path(self) -> str | None:
        if self.file is not None:
            return self.file.path
        if self.dialect != "sqlite":
            return None
        database = self.engine.url.database
        return None if not database or database == ":memory:" else os.path.abspath(database)

    def _make_engine(self, url: str) -> Engine:
        from sqlalchemy import create_engine

        if self.file is not None:  # the same connections as the store's own (pragmas too)
            return create_engine(url, creator=self.file.connect)
        if url.startswith("sqlite"):
            return self._sqlite_engine(url)
        return create_engine(url, pool_pre_ping=True, **self._server_engine_options(url))

    def _sqlite_engine(self, url: str) -> Engine:
        """An engine on a SQLite URL that is not a plain file (`SqliteFile.of`): in
        memory, or with options; read-only (see `sqlite_read_only_uri`) when the file
        or its directory cannot be written."""
        from sqlalchemy import create_engine, event
        from sqlalchemy.pool import StaticPool

        engine = create_engine(url, connect_args={"timeout": 60, "check_same_thread": False})
        database = engine.url.database
        uri = None
        if not database or database == ":memory:":
            # An in-memory database lives in its connection: every thread (the scheduler's
            # lookups, the writer thread) must share the one connection, or each would see
            # an empty database of its own.
            engine.dispose()
            engine = create_engine(
                url, connect_args={"check_same_thread": False}, poolclass=StaticPool
            )
        else:
            path = os.path.abspath(database)
            uri = sqlite_read_only_uri(path)
            if uri is None:
                os.makedirs(os.path.dirname(path), exist_ok=True)
            else:
                import sqlite3

                engine.dispose()
                engine = create_engine(
                    url,
                    creator=lambda: sqlite3.connect(
                        uri, uri=True, timeout=60, check_same_thread=False
                    ),
                )
        self.read_only = uri is not None

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            apply_pragmas(dbapi_conn, writable=uri is None)

        return engine

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

    def ensure_schema(self, *, create: bool = True) -> None:
        """Create or upgrade the schema if needed (cheap when already current).

        With ``create=False`` (read-only commands) a database without lazyflow's tables
        is a `StoreError`, not a new empty store.
        """
        if self._schema_ready:
            return
        if self.file is not None and (self._file_is_current() or self._create_file(create)):
            self._schema_ready = True
            return
        if self.server is not None and (
            self._server_is_current() or self._create_on_server(create)
        ):
            self._schema_ready = True
            return
        from sqlalchemy.exc import DBAPIError

        try:
            revision = self.current_revision()
            if revision != HEAD_REVISION:
                self._check_upgradable(revision)
                with self._migration_lock():
                    revision = self.current_revision()
                    if revision is None and not self._has_lazyflow_tables():
                        if not create:
                            raise self._no_store_error()
                        self._create_current()
                    elif revision != HEAD_REVISION:
                        self._upgrade()
        except StoreError:
            raise
        except DBAPIError as exc:
            raise self.database_error(exc) from exc
        self._schema_ready = True

    def _file_is_current(self) -> bool:
        """Whether the SQLite file is at this lazyflow's schema, asked through sqlite3 on
        the thread's read connection (which the cache lookups then use), without
        SQLAlchemy. Anything else (no store yet, an older or newer schema, a damaged
        file) is False: the full check creates, migrates or says what is wrong."""
        import sqlite3

        if self.file is None or not os.path.exists(self.file.path):
            return False  # a new store: no connection to make (and drop) before creating it
        return self._read_revision_is_head(sqlite3.Error, keep=False)

    def _server_is_current(self) -> bool:
        """Whether the PostgreSQL database is at this lazyflow's schema, asked through
        psycopg on the thread's read connection (which the cache lookups then use).
        Anything else (no store yet, another schema) is False: the full check, through
        SQLAlchemy, creates, migrates or says what is wrong. A server that cannot be
        reached is a `StoreError` at once (the full check would only wait for it again)."""
        import psycopg

        try:
            self._read_connection()
        except psycopg.OperationalError as exc:
            raise self._unreachable_error(exc) from exc
        # (an autocommit session holds nothing of the schema: kept for what follows)
        return self._read_revision_is_head(psycopg.Error, keep=True)

    def _create_on_server(self, create: bool) -> bool:
        """Make a new store in a PostgreSQL database through psycopg, under the
        migration lock like every creation and upgrade (the schema's DDL in one round
        trip and one transaction: `_create_current`). True when the database is then at
        this lazyflow's schema: created here, or by another process while this one
        waited for the lock. False when it holds a store at another revision (the full
        check migrates it, through alembic)."""
        import psycopg

        try:
            conn = self._read_connection()
            conn.execute("SELECT pg_advisory_lock(%s)", (_PG_LOCK_KEY,))
            try:
                revision, has_tables = _server_state(conn)
                if revision is None and not has_tables:
                    if not create:
                        raise self._no_store_error()
                    self._create_current()
                    revision = HEAD_REVISION
            finally:
                with contextlib.suppress(psycopg.Error):  # (a lost session frees it too)
                    conn.execute("SELECT pg_advisory_unlock(%s)", (_PG_LOCK_KEY,))
        except psycopg.Error as exc:
            self._drop_read_connection()
            raise self.database_error(exc) from exc
        return revision == HEAD_REVISION

    def _read_revision_is_head(self, error: type[Exception], keep: bool) -> bool:
        """Whether the version row, read on the thread's read connection, is this
        lazyflow's schema (`error`: the driver's, read as "no version row"; `keep`: keep
        the connection when it is not, else drop it)."""
        try:
            cur = self._read_cursor()
            try:
                cur.execute(f"SELECT version_num FROM {VERSION_TABLE}")
                row = cur.fetchone()
            finally:
                cur.close()
        except error:
            row = None
        if row is not None and row[0] == HEAD_REVISION:
            return True
        if not keep:
            self._drop_read_connection()  # the full check may change the schema under it
        return False

    def _create_file(self, create: bool) -> bool:
        """Make a new SQLite store file through sqlite3 alone (`ddl`: no SQLAlchemy, no
        alembic), under the migration lock like every creation and upgrade. True when
        the file is then at this lazyflow's schema: created here, or by another process
        while this one waited for the lock. False when it holds a store at another
        revision, cannot be written or cannot be read: the full check migrates it (or
        says what is wrong)."""
        import sqlite3

        from . import ddl

        if self.read_only:
            return False
        try:
            with self._migration_lock():
                # the thread's read connection, which the cache lookups then use: closing
                # the only connection to a new WAL file would checkpoint it (two fsyncs)
                revision, has_tables = ddl.state(self._read_connection())
                if revision is None and not has_tables:
                    if not create:
                        raise self._no_store_error()
                    self._create_current()
                    revision, _ = ddl.state(self._read_connection())
        except (sqlite3.Error, OSError):  # OSError: the lock file (a read-only directory)
            self._drop_read_connection()
            return False
        return revision == HEAD_REVISION

    def _no_store_error(self) -> StoreError:
        return StoreError(
            f"no lazyflow store at {redact(self.url)!r}: the database has no lazyflow "
            "tables. Run a workflow against it first, or check the URL (--db or LAZYFLOW_DB)."
        )

    def _check_upgradable(self, revision: str | None) -> None:
        """A `StoreError` for a store this lazyflow cannot bring to its schema: written by
        a newer lazyflow, or read-only."""
        if schema_is_newer(revision):
            raise StoreError(
                f"this store was written by a newer lazyflow (schema {revision}); upgrade "
                f"lazyflow (this one knows schemas up to {HEAD_REVISION}; store "
                f"{redact(self.url)})"
            )
        if self.read_only:
            where = "empty" if revision is None else f"at schema {revision}, not {HEAD_REVISION}"
            raise StoreError(
                f"the lazyflow store at {self.sqlite_path} is read-only and {where}: open it "
                "once where it can be written (`lazyflow db upgrade`), or point --db / "
                "LAZYFLOW_DB at a writable store"
            )

    def database_error(self, exc: DBAPIError | Exception) -> StoreError:
        """One-line advice for a database error met while opening the store (raised
        through SQLAlchemy, or by psycopg on a `PgServer`)."""
        orig = getattr(exc, "orig", None)
        reason = orig if orig is not None else exc
        if self.dialect == "sqlite":
            text_ = str(reason).lower()
            path = self.sqlite_path or redact(self.url)
            if "not a database" in text_ or "malformed" in text_ or "corrupt" in text_:
                return StoreError(
                    f"the SQLite file {path} is not a lazyflow store or is damaged "
                    f"({reason}). Check it with `sqlite3 {path} 'PRAGMA integrity_check'`; "
                    "restore it from a backup, or move it away to start a new store."
                )
            return StoreError(
                f"cannot open the SQLite store {path}: {reason}. Check that its directory "
                "exists and that you may read it (and write it, for a run)."
            )
        if self.server is not None and not hasattr(exc, "orig"):
            import psycopg

            if isinstance(exc, psycopg.OperationalError):
                return self._unreachable_error(reason)
        else:
            from sqlalchemy.exc import OperationalError

            if isinstance(exc, OperationalError):  # connection-level: refused, timeout
                return self._unreachable_error(reason)
        return StoreError(  # reached it, but it refused (permissions, ...)
            f"cannot create or check the lazyflow tables at {redact(self.url)!r}: {reason}. "
            "The database user needs to create tables there (on PostgreSQL: CREATE on the "
            "schema in search_path)."
        )

    def _unreachable_error(self, reason: object) -> StoreError:
        return StoreError(
            f"cannot reach the lazyflow store at {redact(self.url)!r}: {reason}. Is the "
            "database running and the URL right? Set it with --db or LAZYFLOW_DB."
        )

    def current_revision(self) -> str | None:
        from sqlalchemy import text
        from sqlalchemy.exc import OperationalError, ProgrammingError

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
            from sqlalchemy import text

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

        Equivalent to running every migration (tests check they agree), without
        importing alembic, which alone costs ~0.4 s: most of a small run's start-up. A
        SQLite file gets the migrations' own DDL from a checked-in script through sqlite3
        (`ddl`), without SQLAlchemy either; other databases get ``create_all``.
        """
        if self.file is not None:
            from . import ddl

            revision = ddl.create(self._read_connection())
            log.info("lazyflow store created at %s (schema %s)", redact(self.url), revision)
            return
        if self.server is not None:  # what create_all runs, in one round trip
            conn = self._read_connection()
            with conn.transaction():
                conn.execute(_postgres_ddl())
            log.info("lazyflow store created at %s (schema %s)", redact(self.url), HEAD_REVISION)
            return
        from sqlalchemy import text

        from . import schema

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
        _release(self._read_conns, self._engines)

    # -- reads used by the scheduler -----------------------------------------------------
    def _read_cursor(self) -> Any:
        """A DBAPI cursor on this thread's own autocommit read connection.

        The scheduler issues many small lookups; checking a pooled connection out and in
        for each one costs more than the query.
        """
        return self._read_connection().cursor()

    def _read_connection(self) -> Any:
        """This thread's own read connection (made on first use)."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            if self.file is not None:
                conn = self.file.connect()
            elif self.server is not None:
                conn = self.server.connect(autocommit=True)
            else:
                conn = self.engine.raw_connection()
                if self.dialect == "postgresql":
                    conn.driver_connection.autocommit = True  # type: ignore[union-attr]
            self._local.conn = conn
            self._read_conns.append(conn)
        return conn

    def _select_in(self, sql: str, keys: Sequence[str]) -> list[tuple[Any, ...]]:
        """Run ``sql`` (with ``{in}`` for the placeholder list) over `keys` in chunks.

        The keys are sorted first: the keys of a run's lookups are random hashes, and a
        chunk of random keys seeks all over the table's B-tree, while sorted chunks walk
        it in order (a 100k-call cache lookup on SQLite: ~4.5 -> ~1.8 µs per key)."""
        mark = "?" if self.dialect == "sqlite" else "%s"
        rows: list[tuple[Any, ...]] = []
        try:
            cur = self._read_cursor()
            for chunk in chunks(sorted(keys)):
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
                # a pooled connection is invalidated (not returned to the pool); sqlite3's
                # own is closed
                getattr(conn, "invalidate", conn.close)()

    def lookup_calls(self, call_hashes: Sequence[str]) -> dict[str, tuple[str, str]]:
        """``{call_hash: (result_hash, validation_hash)}`` for the cached calls."""
        rows = self._select_in(
            "SELECT call_hash, result_hash, validation_hash FROM lf_calls "
            "WHERE call_hash IN ({marks})",
            call_hashes,
        )
        return {call_hash: (result, vset) for call_hash, result, vset in rows}

    def load_expressions(self, call_hashes: Sequence[str]) -> dict[str, Any]:
        """``{call_hash: expression}``: the usable stored returned expressions of these
        calls, checked like every value and unpickled with their tasks resolved by name
        (`lazyflow_core.reductions`)."""
        from ..reductions import loads_expression  # the engine's side: not for read-only tools

        return load_expressions(self, call_hashes, loads_expression)

    def lookup_reductions(self, call_hashes: Sequence[str]) -> dict[str, str]:
        """``{call_hash: value_hash}``: the stored first reduction (returned expression)
        of each of these calls that has one."""
        rows = self._select_in(
            "SELECT call_hash, value_hash FROM lf_reductions WHERE call_hash IN ({marks})",
            call_hashes,
        )
        return {call_hash: value_hash for call_hash, value_hash in rows}

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
        out: dict[str, tuple[list[list[str]], list[list[Any]]]] = {}
        for h, tasks, files in rows:
            try:
                out[h] = _validation_set(tasks, files)
            except (ValueError, TypeError) as exc:  # JSONDecodeError is a ValueError
                # Left out, so the calls cached with it are misses (and run again); the
                # run writes the set again over this row (`damaged_vsets`).
                self.damaged_vsets.add(h)
                log.warning(
                    "lazyflow: validation set %s in the store is unreadable (%s: %s); the "
                    "calls cached with it run again",
                    h[:12],
                    type(exc).__name__,
                    exc,
                )
        return out

    def load_value_data(self, value_hashes: Sequence[str]) -> dict[str, bytes | Unreadable]:
        """Checked pickled bytes per value hash, or why the value cannot be used (a
        missing or unreadable blob, a signature or checksum that does not verify); see
        `values.read_values`. Hashes with no row are left out."""
        return read_values(self, value_hashes)

    def load_value(self, value_hash: str, *, signed_only: bool = False) -> Any:
        """The stored value with this hash (e.g. to read back an orchestrator reference),
        unpickled only if it passes the run's check (with `signed_only`: only if signed
        by one of this store's keys; read-only tools use that).

        Raises `MissingValue` (a `StoreError` and a `KeyError`) if the store has no value
        with that hash, `UnverifiedValue` (a
        `StoreError`) if it has one that cannot or may not be loaded.
        """
        return load_value(self, value_hash, signed_only=signed_only)

    def history(self) -> CallHistory:
        """Questions about past calls, for explaining cache decisions."""
        return CallHistory(self)

    def writer(self, mode: str | None = None) -> StoreWriter:
        """A `StoreWriter` for one run's records (`mode`: see `writer.writer_mode`)."""
        from .writer import StoreWriter

        return StoreWriter(self.write_target(), mode)

    def leases(self, execution_id: str, ttl: float) -> Leases | None:
        """The call leases of one execution, for cross-process dedup (`leases`); None
        where no other process can share the store (in-memory SQLite) or nothing can be
        written (a read-only store)."""
        if self.read_only or (self.dialect == "sqlite" and self.sqlite_path is None):
            return None
        from .leases import Leases

        return Leases(self._own_connection(), self.dialect, execution_id, ttl)

    def _own_connection(self) -> Any:
        """A DB-API connection that is no pool's: closing it ends the session (and frees
        its PostgreSQL advisory locks), and settings made on it reach no one else."""
        if self.file is not None:
            return self.file.connect()
        if self.server is not None:
            return self.server.connect()
        pooled = self.engine.raw_connection()
        pooled.detach()
        return pooled.dbapi_connection

    def write_target(self) -> WriteTarget:
        """What a `StoreWriter` needs of this store (and nothing else of it)."""
        from .writer import WriteTarget

        return WriteTarget(
            dialect=self.dialect,
            connect=self._writer_connection,
            process_connect=self._process_connect(),
            blobs=self.blobs,
            blob_threshold=self.blob_threshold,
            count_statements=self._count_statements,
            signing=self.signing,
            read_only=self.read_only,
            damaged_vsets=self.damaged_vsets,
        )

    def _writer_connection(self) -> Any:
        """A connection for the writer thread: on PostgreSQL a session of its own, set
        as `pgserver.WRITER_SETTINGS` says (not a pool's: the setting must reach no one
        else)."""
        if self.file is not None:
            return self.file.connect()
        if self.server is not None:
            return self.server.writer_connect()
        if self.dialect != "postgresql":
            return self.engine.raw_connection()  # (in-memory SQLite: the one connection)
        return writer_session(self._own_connection())

    def _count_statements(self, n: int) -> None:
        self.statements += n

    def _process_connect(self) -> ConnectSpec | None:
        """How a writer process connects to this store: (DB-API module, args, kwargs,
        dialect, SQLite pragmas), or None for stores it cannot write (in-memory SQLite,
        other drivers)."""
        if self.dialect == "sqlite":
            path = self.sqlite_path
            if path is None or (self.file is None and self.engine.url.query):
                return None
            # The writer process inserts at random (hash) keys into five indexes that
            # grow to ~0.3 GB in a million-call run; once they outgrow the page cache,
            # every insert misses it and reads a page back. 512 MiB (allocated only as
            # pages are read) keeps them in memory to a million calls: 256 MiB did to
            # ~600k, and past that a run waited 0.3-2 ms per call for its writer (at
            # 870k calls with 512 MiB: 0.12-0.18 ms, loaded machine); 64 MiB costs ~30% more
            # writer CPU per job at 300k calls. A process of its own: none of this is
            # in the run's memory (it peaks at ~0.65 GB in a 1M-call run).
            pragmas = [
                "PRAGMA busy_timeout=60000",
                "PRAGMA synchronous=NORMAL",
                f"PRAGMA cache_size=-{WRITER_CACHE_KIB}",
                f"PRAGMA wal_autocheckpoint={WRITER_WAL_PAGES}",
            ]
            return "sqlite3", [path], {"timeout": 60}, "sqlite", pragmas
        settings = list(WRITER_SETTINGS)  # (`batch_write.connect` commits them)
        if self.server is not None:
            return (
                "psycopg",
                list(self.server.args),
                dict(self.server.kwargs),
                "postgresql",
                settings,
            )
        engine = self.engine
        dialect = engine.dialect
        if dialect.name == "postgresql" and dialect.driver in ("psycopg", "psycopg2"):
            args, kwargs = dialect.create_connect_args(engine.url)
            kwargs = {k: v for k, v in kwargs.items() if isinstance(v, (str, int, float, bool))}
            kwargs.setdefault("connect_timeout", 10)
            return dialect.driver, list(args), kwargs, "postgresql", settings
        return None

    def query(self, statement: Any, params: dict[str, Any] | None = None) -> list[Any]:
        """Run a read-only SQLAlchemy statement and return all rows (for provenance)."""
        self.ensure_schema()
        with self.engine.connect() as conn:
            return list(conn.execute(statement, params or {}))


def _server_state(conn: Any) -> tuple[str | None, bool]:
    """A PostgreSQL database's schema revision (None without a version row) and whether
    the schema its tables are made in (the first of ``search_path``) holds any lazyflow
    table, on an autocommit psycopg connection."""
    (version_table,) = conn.execute("SELECT to_regclass(%s)", (VERSION_TABLE,)).fetchone()
    if version_table is not None:
        row = conn.execute(f"SELECT version_num FROM {VERSION_TABLE}").fetchone()
        return (row[0] if row else None), True
    row = conn.execute(
        "SELECT 1 FROM pg_tables WHERE schemaname = current_schema() "
        "AND tablename LIKE 'lf\\_%' LIMIT 1"
    ).fetchone()
    return None, row is not None


def _postgres_ddl() -> str:
    """The statements ``metadata.create_all`` runs on a new PostgreSQL store, and the
    version table and row, as one script (SQLAlchemy's own compiler writes them)."""
    from sqlalchemy.dialects import postgresql
    from sqlalchemy.schema import CreateIndex, CreateTable

    from . import schema

    dialect = postgresql.dialect()
    statements = []
    for table in schema.metadata.sorted_tables:
        statements.append(str(CreateTable(table).compile(dialect=dialect)).strip())
        for index in sorted(table.indexes, key=lambda i: str(i.name)):
            statements.append(str(CreateIndex(index).compile(dialect=dialect)).strip())
    statements.append(
        f"CREATE TABLE {VERSION_TABLE} (version_num VARCHAR(32) NOT NULL, "
        f"CONSTRAINT {VERSION_TABLE}_pkc PRIMARY KEY (version_num))"
    )
    statements.append(f"INSERT INTO {VERSION_TABLE} (version_num) VALUES ('{HEAD_REVISION}')")
    return ";\n".join(statements) + ";"


def _validation_set(tasks: str, files: str) -> tuple[list[list[str]], list[list[Any]]]:
    """A stored validation set, checked: tasks ``[[name, hash], ...]``, files
    ``[[path, content, hash], ...]``; ValueError or TypeError when it is not that."""
    t, f = json.loads(tasks), json.loads(files)
    if not isinstance(t, list) or not all(
        isinstance(x, list) and len(x) == 2 and all(isinstance(y, str) for y in x) for x in t
    ):
        raise ValueError(f"tasks are not [[name, hash], ...]: {tasks[:80]!r}")
    if not isinstance(f, list) or not all(
        isinstance(x, list) and len(x) == 3 and isinstance(x[0], str) for x in f
    ):
        raise ValueError(f"files are not [[path, content, hash], ...]: {files[:80]!r}")
    return t, f


def _release(conns: list[Any], engines: list[Engine]) -> None:
    for conn in conns:
        with contextlib.suppress(Exception):
            conn.close()
    conns.clear()
    for engine in engines:
        engine.dispose()


def existing_store_url(db: str | None = None) -> str:
    """The URL of the store `db` names (None: found as `resolve_db_url` says), checked
    without opening it: a SQLite file that does not exist is a `StoreError`."""
    if db is None and not os.environ.get("LAZYFLOW_DB"):
        project = discover()
        if not project.found:
            raise StoreError(
                f"no lazyflow store found: neither {os.getcwd()} nor a directory above it "
                "holds .lazyflow/lazyflow.db or a lazyflow.toml. Run a workflow here first "
                "(lazyflow run), or point --db / LAZYFLOW_DB at a store."
            )
        db = project.db_url
    url = resolve_db_url(db)
    path = sqlite_file(url)
    if path is not None and not os.path.exists(path):
        raise StoreError(
            f"no lazyflow store at {path} (the file does not exist). Run a workflow first, "
            "or point --db / LAZYFLOW_DB at an existing store."
        )
    return url


def open_existing_store(db: str | Store | None = None) -> Store:
    """The store `db` names, only if it exists: for read-only commands, which must never
    create one (not even an empty ``.lazyflow/`` directory, or tables in a database)."""
    store = db if isinstance(db, Store) else open_store(existing_store_url(db))
    store.ensure_schema(create=False)
    return store


def open_store(
    db: str | Store | None = None,
    *,
    signing_key: str | Sequence[str | bytes] | SigningKeys | None = None,
) -> Store:
    """A `Store` for `db` (URL, existing store, or None for the default), signing with
    `signing_key` when given (else the key `signing.resolve_keys` finds)."""
    if isinstance(db, Store):
        if signing_key is not None:
            db.signing = resolve_keys(signing_key)
        return db
    if db is not None and not isinstance(db, str):
        raise StoreError(
            f"db={db!r} is not a database URL or Store; pass e.g. 'sqlite:///work.db' or "
            "'postgresql+psycopg://user@host/db'."
        )
    return Store(db, signing_key=signing_key)


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

    def task_version(self, task_hash: str) -> CodeVersion | None:
        """The recorded code of a task version: source, dependencies and their sources."""
        rows = self.store._select_in(
            "SELECT name, source, dependencies, dependency_sources FROM lf_tasks "
            "WHERE hash IN ({marks})",
            [task_hash],
        )
        return CodeVersion.stored(*rows[0]) if rows else None

    def called_tasks(self, call_hash: str) -> list[tuple[str, str]]:
        """``[(task name, hash)]`` of the validation set of a stored call: the tasks its
        cached result depends on, as they were when it was computed."""
        rows = self.store._select_in(
            "SELECT v.tasks FROM lf_calls c JOIN lf_validation_sets v "
            "ON v.hash = c.validation_hash WHERE c.call_hash IN ({marks})",
            [call_hash],
        )
        return [(n, h) for n, h in json.loads(rows[0][0])] if rows else []

    def value_preview(self, value_hash: str) -> str | None:
        rows = self.store._select_in(
            "SELECT preview FROM lf_values WHERE hash IN ({marks})", [value_hash]
        )
        return rows[0][0] if rows else None

    def latest_call(self, task_name: str) -> str | None:
        """The most recently recorded call of the task of this name (any version)."""
        rows = self.store._select_in(
            "SELECT call_hash, created_at FROM lf_calls WHERE task_name IN ({marks}) "
            "ORDER BY created_at DESC LIMIT 1",
            [task_name],
        )
        return rows[0][0] if rows else None

    def call_preview(self, call_hash: str) -> str | None:
        """``task(args...)`` of the job that recorded the call."""
        rows = self.store._select_in(
            "SELECT j.args_preview FROM lf_calls c JOIN lf_jobs j ON j.id = c.job_id "
            "WHERE c.call_hash IN ({marks})",
            [call_hash],
        )
        return rows[0][0] if rows else None

    def recorded_children(self, call_hashes: Sequence[str]) -> dict[str, list[RecordedCall]]:
        """``{parent: [child, ...]}``: the recorded calls each of these calls made, in order."""
        rows = self.store._select_in(
            "SELECT cc.parent_hash, cc.position, c.call_hash, c.task_name, c.task_hash, "
            "c.validation_hash, j.args_preview FROM lf_call_children cc "
            "JOIN lf_calls c ON c.call_hash = cc.child_hash "
            "LEFT JOIN lf_jobs j ON j.id = c.job_id WHERE cc.parent_hash IN ({marks})",
            call_hashes,
        )
        from ..predict import RecordedCall  # the rows become these, at run time

        out: dict[str, list[RecordedCall]] = {}
        for parent, _pos, *child in sorted(rows, key=lambda r: (r[0], r[1])):
            out.setdefault(parent, []).append(RecordedCall(*child))
        return out

    def validation_sets(
        self, hashes: Sequence[str]
    ) -> dict[str, tuple[list[list[str]], list[list[Any]]]]:
        return self.store.load_validation_sets(hashes)
