"""``lazyflow db info|upgrade`` and ``lazyflow gc``."""

from __future__ import annotations

from pathlib import Path

from lazyflow_core.store.sql import HEAD_REVISION

from .conftest import Cli, Store

NOISE = """
import os
from lazyflow_core import task

@task
def noise(n: int) -> bytes:
    return os.urandom(n)
"""


def test_db_info(store: Store) -> None:
    result = store.cli("db", "info")
    assert result.code == 0, result.err
    out = result.out
    assert f"schema    revision {HEAD_REVISION}, head {HEAD_REVISION}: up to date" in out
    assert "lf_executions" in out and "lf_calls" in out
    counts = {
        parts[0]: int(parts[1])
        for parts in (line.split() for line in out.splitlines())
        if len(parts) == 2 and parts[0].startswith("lf_")
    }
    assert counts["lf_executions"] == 5
    listing = store.cli("log", "--json").json()
    assert counts["lf_execution_tags"] == sum(len(e["tags"]) for e in listing)  # type: ignore[union-attr,index]


def test_db_upgrade_creates_then_reports_current(cli: Cli, sqlite_url: str) -> None:
    first = cli("db", "upgrade", "--db", sqlite_url)
    assert first.code == 0, first.err
    assert f"upgraded from revision (empty) to {HEAD_REVISION}" in first.out
    second = cli("db", "upgrade", "--db", sqlite_url)
    assert f"is at revision {HEAD_REVISION} (head): nothing to do" in second.out
    info = cli("db", "info", "--db", sqlite_url)
    assert "lf_values                    0" in info.out


def test_db_errors(cli: Cli, tmp_path: Path) -> None:
    missing = cli("db", "info", "--db", f"sqlite:///{tmp_path / 'none.db'}")
    assert missing.code == 1 and "no lazyflow store at" in missing.err
    down = cli("db", "upgrade", "--db", "postgresql+psycopg://postgres@127.0.0.1:1/x")
    assert down.code == 1 and "cannot reach the lazyflow store" in down.err


def test_gc_dry_run_then_delete(cli: Cli, flows: Path, db_url: str) -> None:
    (flows / "noise.py").write_text(NOISE)
    env = {"LAZYFLOW_BLOBS": str(flows / "blobs")}  # values over 1 MB go to blobs
    run = ("run", "noise.py", "noise", "--n", "1500000", "--db", db_url)
    for _ in range(2):  # a re-run replaces the call's result: the first one is unreferenced
        result = cli(*run, "--no-cache", "-q", env=env)
        assert result.code == 0, result.err
    young = cli("gc", "--db", db_url, env=env)  # --min-age 1h protects values just written
    assert "0 unreferenced values" in young.out
    dry = cli("gc", "--db", db_url, "--min-age", "0", env=env)
    assert dry.code == 0, dry.err
    assert "1 unreferenced value (0 B in the database, 1 with a blob)" in dry.out
    assert "dry run, nothing deleted" in dry.out
    assert len(list((flows / "blobs").glob("*/*"))) == 2
    done = cli("gc", "--db", db_url, "--min-age", "0", "--delete", env=env)
    assert "deleted 1 value and 1 blob" in done.out
    assert len(list((flows / "blobs").glob("*/*"))) == 1
    again = cli(*run, env=env)  # the current result still loads from the cache
    assert "0 executed, 1 cached" in again.err


def test_gc_removes_orphan_blob_files(cli: Cli, flows: Path, sqlite_url: str) -> None:
    assert cli("db", "upgrade", "--db", sqlite_url).code == 0
    blobs = Path(sqlite_url.removeprefix("sqlite:///")).parent / "blobs"
    orphan = blobs / "ab" / ("cdef" * 9 + "01")
    orphan.parent.mkdir(parents=True)
    orphan.write_bytes(b"x")
    dry = cli("gc", "--db", sqlite_url, "--min-age", "0")
    assert "1 orphan blob" in dry.out and orphan.exists()
    stranger = blobs / "ab" / "notes.txt"  # not named like a blob: not lazyflow's
    stranger.write_text("x")
    cli("gc", "--db", sqlite_url, "--min-age", "0", "--delete")
    assert not orphan.exists() and stranger.exists()
