"""A SQLite store file opened with the standard library's sqlite3, without SQLAlchemy.

Importing SQLAlchemy costs ~0.3-0.4 s of CPU, more than a whole cached run of a small
workflow. A run on a SQLite file needs none of it when the schema is current: its cache
lookups, the writer thread, the writer process and the dedup leases all use plain
DB-API connections already. So for a plain SQLite file URL (``sqlite:///path``, no
query string) `Store` opens those connections here, checks the schema revision with one
SELECT, and builds its SQLAlchemy engine only when something needs it: creating or
migrating the store (alembic), and the provenance queries of ``log``, ``lineage`` and the
browser. The engine's connections get the same pragmas (`PRAGMAS`), so both kinds of
connection behave the same. In-memory databases and URLs with options (``?mode=ro``)
keep the engine for everything.
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass
from urllib.parse import quote

from ..config import sqlite_file

# Every connection to a store file: wait for locks rather than fail, 32 KiB pages for a
# new file (set before WAL mode, which fixes it; an existing file keeps its page size),
# WAL (several processes at once), fsync at checkpoints only, 64 MiB of page cache (big
# runs insert millions of rows), temporary tables in memory. A read-only file cannot
# change its journal mode or synchronous setting: `WRITABLE_ONLY` are skipped there.
#
# The page size: a run inserts at random (hash) keys into five B-trees, and each commit
# rewrites every page it touched. With 32 KiB pages instead of SQLite's 4 KiB the trees
# are shallower and the writer process spends less per job, less so as they grow
# (benchmarks/README.md, "Cold fan-out, round three"). An empty store takes ~1 MiB.
PAGE_SIZE = 32768
PRAGMAS = (
    "PRAGMA busy_timeout=60000",
    f"PRAGMA page_size={PAGE_SIZE}",
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",
    "PRAGMA cache_size=-65536",
    "PRAGMA temp_store=MEMORY",
)
WRITABLE_ONLY = frozenset(
    {f"PRAGMA page_size={PAGE_SIZE}", "PRAGMA journal_mode=WAL", "PRAGMA synchronous=NORMAL"}
)
_DRIVERS = ("sqlite", "sqlite+pysqlite")


def pragmas(writable: bool) -> list[str]:
    """The pragmas a connection to a store file runs first (`PRAGMAS`)."""
    return [p for p in PRAGMAS if writable or p not in WRITABLE_ONLY]


def apply_pragmas(conn: sqlite3.Connection, writable: bool) -> None:
    cur = conn.cursor()
    for pragma in pragmas(writable):
        cur.execute(pragma)
    cur.close()


def sqlite_read_only_uri(path: str) -> str | None:
    """The URI to open an existing SQLite file read-only, or None if it can be written.

    A store in WAL mode needs its ``-shm`` index beside it. When the file cannot be
    written but its directory can, ``mode=ro`` creates the index. When neither can (a
    read-only mount, a published cache), the file is opened ``immutable``, which reads
    the database file alone: right when no ``-wal`` file holds commits still to be
    copied into it (after the last writer closed cleanly, it holds none).
    """
    if not os.path.exists(path):
        return None
    directory = os.path.dirname(path) or "."
    if os.access(path, os.W_OK) and os.access(directory, os.W_OK):
        return None
    uri = f"file:{quote(path)}?mode=ro"
    wal = path + "-wal"
    has_wal = os.path.exists(wal) and os.path.getsize(wal) > 0
    if not os.access(directory, os.W_OK) and not has_wal and not os.path.exists(path + "-shm"):
        uri += "&immutable=1"
    return uri


@dataclass(frozen=True)
class SqliteFile:
    """A store file and how to connect to it: `uri` is set when the file is read-only."""

    path: str
    uri: str | None

    @classmethod
    def of(cls, url: str) -> SqliteFile | None:
        """The file of a plain SQLite file URL, or None for anything else (another
        database, ``:memory:``, a query string, a %-escaped path: SQLAlchemy decodes
        those, and `Store` leaves them to it). Makes the file's directory when the file
        is to be created."""
        scheme = url.partition("://")[0]
        path = sqlite_file(url)
        if path is None or scheme not in _DRIVERS or "?" in url or "%" in path:
            return None
        uri = sqlite_read_only_uri(path)
        if uri is None:
            os.makedirs(os.path.dirname(path), exist_ok=True)
        return cls(path, uri)

    @property
    def read_only(self) -> bool:
        return self.uri is not None

    def connect(self) -> sqlite3.Connection:
        """A new connection with the store's pragmas, usable from any thread (each
        connection is used by one thread at a time: the store's reads keep one per
        thread, the writer and the leases one each)."""
        if self.uri is not None:
            conn = sqlite3.connect(self.uri, uri=True, timeout=60, check_same_thread=False)
        else:
            conn = sqlite3.connect(self.path, timeout=60, check_same_thread=False)
        try:
            apply_pragmas(conn, writable=self.uri is None)
        except BaseException:
            conn.close()
            raise
        return conn
