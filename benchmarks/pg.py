"""PostgreSQL for the ``postgres`` scenario: one fresh schema per store, dropped afterwards.

The server is ``LAZYFLOW_BENCH_PG`` (default ``postgresql://postgres@127.0.0.1:5432/test``).
Each store gets its own schema (``lfbench_<hash of its work directory>``) selected with
``search_path`` in the connection URL, so a benchmark never touches other tables.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/test"
PREFIX = "lfbench_"


def dsn() -> str:
    return os.environ.get("LAZYFLOW_BENCH_PG", DEFAULT_DSN)


def schema_for(workdir: str | Path) -> str:
    digest = hashlib.sha1(str(Path(workdir).resolve()).encode()).hexdigest()[:12]
    return PREFIX + digest


def sqlalchemy_url(schema: str) -> str:
    base = dsn().replace("postgresql://", "postgresql+psycopg://", 1)
    sep = "&" if "?" in base else "?"
    return f"{base}{sep}options=-csearch_path%3D{schema}"


def check() -> str | None:
    """None if the server answers, else why not."""
    try:
        import psycopg
    except ImportError as exc:
        return f"psycopg not installed ({exc})"
    try:
        with psycopg.connect(dsn(), connect_timeout=5) as conn:
            conn.execute("select 1")
    except Exception as exc:  # any connection problem means "unavailable"
        return f"cannot connect to {dsn()}: {exc}".strip()
    return None


def reset_schema(schema: str) -> None:
    """Drop and re-create ``schema`` (a cold store)."""
    import psycopg

    with psycopg.connect(dsn(), autocommit=True) as conn:
        conn.execute(f'drop schema if exists "{schema}" cascade')
        conn.execute(f'create schema "{schema}"')


def drop_schemas(root: Path) -> None:
    """Drop the schemas of every store under the benchmark work directory ``root``."""
    if not root.is_dir() or check() is not None:
        return
    import psycopg

    names = [schema_for(p) for p in root.iterdir() if p.is_dir()]
    with psycopg.connect(dsn(), autocommit=True) as conn:
        for name in names:
            conn.execute(f'drop schema if exists "{name}" cascade')
