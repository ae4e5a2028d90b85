"""A shared store no one can abuse through the CLI: gc never deletes outside the blob root,
and stores that are newer, damaged or read-only get one clear line (planted pickles:
`test_planted_pickles`)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import text

from lazyflow_core.store import Store
from lazyflow_core.store.sql import VERSION_TABLE

from ..readonly import read_only
from .conftest import LAZYFLOW, Cli, one, prepare


def test_gc_never_deletes_outside_the_blob_root(cli: Cli, flows: Path, sqlite_url: str) -> None:
    """A value row planted with blob key ``../../victim`` is deleted; the file is not."""
    assert cli("db", "upgrade", "--db", sqlite_url).code == 0
    blobs = Path(sqlite_url.removeprefix("sqlite:///")).parent / "blobs"
    blobs.mkdir()
    victim = flows.parent / "victim.txt"
    victim.write_text("precious")
    key = os.path.relpath(victim, blobs)
    store = Store(sqlite_url)
    with store.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO lf_values (hash, type_name, size, preview, blob, created_at) "
                "VALUES (:h, 'bytes', 10, 'x', :b, :t)"
            ),
            {"h": "ee" * 20, "b": key, "t": time.time() - 86400},
        )
    store.close()
    done = cli("gc", "--db", sqlite_url, "--min-age", "0", "--delete")
    assert done.code == 0, done.err
    assert "deleted 1 value and 0 blobs" in done.out
    assert f"left 1 blob alone whose key is not a digest key or leads outside {blobs}" in done.err
    assert victim.read_text() == "precious"


def test_a_store_from_a_newer_lazyflow_is_one_line_everywhere(
    cli: Cli, flows: Path, sqlite_url: str
) -> None:
    prepare(flows, sqlite_url, ("square", 2))
    store = Store(sqlite_url)
    with store.engine.begin() as conn:
        conn.execute(text(f"UPDATE {VERSION_TABLE} SET version_num = '9999'"))
    store.close()
    line = "this store was written by a newer lazyflow (schema 9999); upgrade lazyflow"
    for command in (("run", "flows.py", "square", "--x", "2"), ("log",)):
        out = cli(*command, "--db", sqlite_url)
        assert out.code == 1 and line in out.err, out.err
        assert len(out.err.strip().splitlines()) == 1 and "Traceback" not in out.err
    info = cli("db", "info", "--db", sqlite_url)
    assert info.code == 0, info.err
    assert "written by a newer lazyflow: upgrade lazyflow" in info.out
    assert "behind" not in info.out


def test_db_info_warns_about_a_shared_store_without_a_signing_key(cli: Cli, pg_url: str) -> None:
    Store(pg_url).ensure_schema()
    bare = cli("db", "info", "--db", pg_url)
    assert bare.code == 0, bare.err
    assert "warning: this shared store is used without a signing key" in bare.err
    assert "execute code of their choosing" in bare.err
    keyed = cli("db", "info", "--db", pg_url, env={"LAZYFLOW_SIGNING_KEY": "k" * 32})
    assert "warning" not in keyed.err and "values signed with key" in keyed.out


def test_read_only_commands_work_on_a_read_only_store(
    cli: Cli, flows: Path, tmp_path: Path
) -> None:
    store_dir = tmp_path / "published"
    url = f"sqlite:///{store_dir / 'lazyflow.db'}"
    prepare(flows, url, ("main", 3), ("main", 4))
    first = one(url, "SELECT id FROM lf_executions ORDER BY started_at")
    result = one(url, f"SELECT result_hash FROM lf_executions WHERE id = '{first}'")
    commands: list[tuple[str, ...]] = [
        ("log",),
        ("log", "-"),
        ("lineage", result),
        ("diff", "-"),
        ("viz", "-"),
        ("explain", "flows.py", "main", "--n", "3"),
        ("gc",),
        ("db", "info"),
    ]
    with read_only(store_dir) as prefix:
        for command in commands:
            proc = subprocess.run(
                [*prefix, LAZYFLOW, *command, "--db", url],
                cwd=flows,
                capture_output=True,
                text=True,
                env={**os.environ, "COLUMNS": "200"},
            )
            assert proc.returncode == 0, (command, proc.stderr)
            if command[0] == "db":
                assert "up to date (read-only)" in proc.stdout
            if command[0] == "lineage":
                assert "values[2] = 4" in proc.stdout  # container parts, decoded as data
            if command[0] == "explain":
                assert "0 calls would run, 1 cached" in proc.stdout, proc.stdout
        browse = subprocess.run(  # the browser's API, over the read-only file
            [*prefix, sys.executable, "-c", UI_READER, url],
            cwd=flows,
            capture_output=True,
            text=True,
        )
        assert browse.returncode == 0 and browse.stdout.strip() == "2", browse.stderr


UI_READER = """
import sys
from fastapi.testclient import TestClient
from lazyflow_core.ui.app import create_app
with TestClient(create_app(sys.argv[1])) as client:
    got = client.get("/api/executions")
    assert got.status_code == 200, got.text
    print(len(got.json()))
"""


LIMITED = """
import os, resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG)
resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[1]), int(sys.argv[1])))
os.execv(sys.argv[2], sys.argv[2:])
"""


def test_a_run_whose_records_cannot_be_stored_says_so_and_strict_store_fails_it(
    cli: Cli, flows: Path, sqlite_url: str
) -> None:
    """A full disk (files limited to a little more than the store is now, RLIMIT_FSIZE):
    the run's result is printed, a warning gives the count lost; --strict-store exits 1."""
    prepare(flows, sqlite_url, ("square", 2))
    size = Path(sqlite_url.removeprefix("sqlite:///")).stat().st_size
    script = flows / "limited.py"
    script.write_text(LIMITED)
    base = [sys.executable, str(script), str(size + 20_000), LAZYFLOW, "run", "flows.py"]
    args = ["main", "--n", "2000", "--db", sqlite_url, "--progress", "none"]
    env = {**os.environ, "COLUMNS": "200"}
    full = subprocess.run([*base, *args], cwd=flows, capture_output=True, text=True, env=env)
    assert full.returncode == 0, full.stderr
    assert full.stdout.strip().splitlines()[-1] == str(sum(i * i for i in range(2000)))
    assert re.search(r"\d+ records of execution \w+ could not be stored", full.stderr)
    strict = subprocess.run(
        [*base, *args, "--strict-store", "--no-cache"],
        cwd=flows,
        capture_output=True,
        text=True,
        env=env,
    )
    assert strict.returncode == 1 and "could not be stored" in strict.stderr


def test_a_run_on_a_read_only_store_says_so(cli: Cli, flows: Path, tmp_path: Path) -> None:
    store_dir = tmp_path / "published"
    url = f"sqlite:///{store_dir / 'lazyflow.db'}"
    prepare(flows, url, ("main", 3))
    env = {**os.environ, "COLUMNS": "200"}
    with read_only(store_dir) as prefix:
        run = [*prefix, LAZYFLOW, "run", "flows.py", "main", "--db", url, "--progress", "none"]
        cached = subprocess.run(
            [*run, "--n", "3"], cwd=flows, capture_output=True, text=True, env=env
        )
        new = subprocess.run([*run, "--n", "4"], cwd=flows, capture_output=True, text=True, env=env)
        strict = subprocess.run(
            [*run, "--n", "4", "--strict-store"], cwd=flows, capture_output=True, text=True, env=env
        )
    assert cached.returncode == 0 and "all served from the cache" in cached.stderr, cached.stderr
    assert "is read-only: cached results are used" in cached.stderr
    assert new.returncode == 0 and new.stdout.strip().endswith("14"), new.stderr
    assert "could not be stored (the store is read-only)" in new.stderr
    assert strict.returncode == 1 and "is read-only" in strict.stderr
