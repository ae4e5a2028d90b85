"""A PostgreSQL store reached through psycopg directly, without SQLAlchemy.

What `sqlitefile` is for SQLite files, this is for PostgreSQL: a run on a store whose
schema is current needs no SQLAlchemy. Importing it with its PostgreSQL dialect costs
~0.2-0.3 s of CPU, and the dialect's first connection asks the server several questions
(version, isolation level, encoding, ...) before the first lookup. For a
``postgresql+psycopg://`` URL `Store` connects here, with the arguments SQLAlchemy's
dialect would pass (`PgServer.of` parses the URL the way SQLAlchemy does; a test checks
that they agree), checks the schema revision with one SELECT on the connection the cache
lookups then use, and builds its engine only to create or migrate the schema and for
the provenance queries. Other drivers (psycopg2, pg8000) and URLs whose hosts or ports
are in the query string keep the engine for everything.

The store writers' sessions (`WRITER_SETTINGS`, the writer thread's and the writer
process's) commit with ``synchronous_commit = off``: a commit returns once the server
has it, before its WAL reaches the disk (~0.2 ms instead of an fsync, 0.5-3 ms here and
more on a busy disk). What that changes, and what not (docs/store.md, "What a crash
loses"): a record committed this way is seen by every other session at once and
survives the run's crash, a kill of the writer process and any client's; only a crash
of the PostgreSQL server or its machine within ~0.6 s of the commit (three times the
server's ``wal_writer_delay``) can lose it, and then with every later commit, never part
of a transaction, and never while a later commit of another session is kept. That is the
guarantee SQLite stores have (WAL with ``synchronous=NORMAL``). The setting is the
writer's own session's: every other session (leases, a user's own) commits as the
server is configured.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote

WRITER_SETTINGS = ("SET synchronous_commit = off",)
CONNECT_TIMEOUT = 10  # seconds, unless the URL says otherwise

# SQLAlchemy's URL pattern (sqlalchemy.engine.url._parse_url), for the same parts
_URL = re.compile(
    r"""
        (?P<name>[\w\+]+)://
        (?:
            (?P<username>[^:/]*)
            (?::(?P<password>[^@]*))?
        @)?
        (?:
            (?:
                \[(?P<ipv6host>[^/\?]+)\] |
                (?P<ipv4host>[^/:\?]+)
            )?
            (?::(?P<port>[^/\?]*))?
        )?
        (?:/(?P<database>[^\?]*))?
        (?:\?(?P<query>.*))?
    """,
    re.X,
)


@dataclass(frozen=True)
class PgServer:
    """A PostgreSQL database and how psycopg connects to it: `args` and `kwargs` as
    SQLAlchemy's psycopg dialect would pass them (`connect_timeout` added)."""

    args: tuple[str, ...]
    kwargs: dict[str, Any] = field(hash=False)

    @classmethod
    def of(cls, url: str) -> PgServer | None:
        """The server of a ``postgresql+psycopg://`` URL, or None for anything else
        (another database or driver, a URL SQLAlchemy would parse otherwise or not at
        all, several hosts: `Store` leaves those to SQLAlchemy)."""
        match = _URL.match(url)
        if match is None or match["name"] != "postgresql+psycopg":
            return None
        query = parse_qsl(match["query"]) if match["query"] is not None else []
        keys = [key for key, _ in query]
        if len(set(keys)) != len(keys) or "host" in keys or "port" in keys:
            return None  # lists and multi-host forms: SQLAlchemy's own rules
        kwargs: dict[str, Any] = {}
        for part, name in (
            ("ipv4host", "host"),
            ("ipv6host", "host"),
            ("database", "dbname"),
            ("username", "user"),
            ("password", "password"),
            ("port", "port"),
        ):
            value = match[part]
            if not value:
                continue
            if part == "port":
                if not value.isdigit():
                    return None
                kwargs[name] = int(value)
            else:
                kwargs[name] = (
                    unquote(value) if part in ("database", "username", "password") else value
                )
        kwargs.update(query)
        args: tuple[str, ...] = () if kwargs else ("",)
        kwargs.setdefault("connect_timeout", CONNECT_TIMEOUT)
        return cls(args, kwargs)

    def connect(self, *, autocommit: bool = False) -> Any:
        """A new psycopg connection (imported here: only PostgreSQL stores need it)."""
        import psycopg

        return psycopg.connect(*self.args, autocommit=autocommit, **self.kwargs)

    def writer_connect(self) -> Any:
        """A connection for a store writer's session (`WRITER_SETTINGS`)."""
        return writer_session(self.connect())


def writer_session(conn: Any) -> Any:
    """`conn` (psycopg or psycopg2, not autocommit) made a store writer's session
    (closed if that fails). Committed at once: a SET made in a transaction that is
    rolled back is undone."""
    from .batch_write import session  # the writer process's own set-up (stdlib only)

    return session(conn, WRITER_SETTINGS)
