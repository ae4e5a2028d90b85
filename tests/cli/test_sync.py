"""``lazyflow push|pull|export|import``: executions and their values between stores."""

from __future__ import annotations

from pathlib import Path

from tests.planted import evil, plant_value

from .conftest import Cli, one

BIG = """
from lazyflow_core import task


@task
def big(n: int) -> str:
    return "x" * n
"""


def _ids(cli: Cli, url: str) -> list[str]:
    return [str(e["id"]) for e in cli("log", "--json", "--db", url).json()]  # type: ignore[attr-defined]


def test_push_to_postgres_and_pull_back(
    cli: Cli, flows: Path, sqlite_url: str, pg_url: str
) -> None:
    for args in (("main", "--n", "4"), ("report", "--n", "3")):
        assert cli("run", "flows.py", *args, "--db", sqlite_url).code == 0
    pushed = cli("push", pg_url, "--db", sqlite_url)
    assert pushed.code == 0, pushed.err
    assert pushed.out.startswith("pushed 2 executions")
    assert _ids(cli, pg_url) == _ids(cli, sqlite_url)
    # idempotent: nothing is added the second time, row for row
    counts = {
        t: one(pg_url, f"SELECT count(*) FROM {t}") for t in ("lf_values", "lf_calls", "lf_jobs")
    }
    again = cli("push", pg_url, "--db", sqlite_url)
    assert again.code == 0 and again.out.startswith("nothing to push"), again.out
    assert counts == {t: one(pg_url, f"SELECT count(*) FROM {t}") for t in counts}
    # the target serves the cache: the same runs there execute nothing
    for args in (("main", "--n", "4"), ("report", "--n", "3")):
        rerun = cli("run", "flows.py", *args, "--db", pg_url)
        assert rerun.code == 0 and "all served from the cache" in rerun.err, rerun.err
    # and lineage works in it, through the input file and the calls below report()
    lineage = cli("lineage", "report.txt", "--db", pg_url)
    assert lineage.code == 0, lineage.err
    assert "write('w0 w1 w2', 'raw.txt')  flows.write" in lineage.out
    assert "inside report(n=3)" in lineage.out
    # pull back into a fresh store: the cached runs made in PostgreSQL come too
    fresh = f"sqlite:///{flows / 'fresh.db'}"
    pulled = cli("pull", pg_url, "--db", fresh)
    assert pulled.code == 0 and pulled.out.startswith("pulled 4 executions"), pulled.out
    assert _ids(cli, fresh) == _ids(cli, pg_url)
    assert (
        "all served from the cache" in cli("run", "flows.py", "main", "--n", "4", "--db", fresh).err
    )


def test_export_and_import_one_execution_with_a_blob(cli: Cli, flows: Path, tmp_path: Path) -> None:
    (flows / "big.py").write_text(BIG)
    home = f"sqlite:///{flows / 'home.db'}"
    assert cli("run", "big.py", "big", "--n", "2000000", "-q", "--db", home).code == 0
    assert cli("run", "flows.py", "main", "--n", "2", "--db", home).code == 0
    assert list((flows / "blobs").rglob("*")), "the large value should be in a blob"
    big_run = _ids(cli, home)[1]
    archive = tmp_path / "out" / "runs.lfx"
    archive.parent.mkdir()
    exported = cli("export", str(archive), big_run[:6], "--db", home)
    assert exported.code == 0 and exported.out.startswith("exported 1 execution"), exported.err
    assert cli("export", str(archive), big_run, "--db", home).out.startswith("nothing to export")
    assert not (archive.parent / "blobs").exists()  # self-contained: values in the file
    # import elsewhere: one execution, the big value cached
    other = tmp_path / "other"
    other.mkdir()
    (other / "big.py").write_text(BIG)
    there = f"sqlite:///{other / 'there.db'}"
    imported = cli("import", str(archive), "--db", there, cwd=other)
    assert imported.code == 0 and imported.out.startswith("imported 1 execution"), imported.err
    assert _ids(cli, there) == [big_run]
    rerun = cli("run", "big.py", "big", "--n", "2000000", "-q", "--db", there, cwd=other)
    assert rerun.code == 0 and len(rerun.last_line) == 2_000_002
    assert cli("log", "--json", "-", "--db", there, cwd=other).json()["execution"]["executed"] == 0  # type: ignore[index]
    missing = cli("import", str(tmp_path / "nope.lfx"), "--db", there)
    assert missing.code == 1 and "no archive at" in missing.err


def test_a_planted_value_is_copied_as_it_is_and_stays_unusable(
    cli: Cli, flows: Path, sqlite_url: str, pg_url: str
) -> None:
    key = {"LAZYFLOW_SIGNING_KEY": "k" * 32}
    assert cli("run", "flows.py", "main", "--n", "3", "--db", sqlite_url, env=key).code == 0
    marker = flows / "pwned"
    plant_value(sqlite_url, evil(marker))  # every value: bytes replaced, seals kept
    assert cli("push", pg_url, "--db", sqlite_url, env=key).code == 0
    sql = "SELECT signature FROM lf_values ORDER BY hash"
    assert one(pg_url, sql) == one(sqlite_url, sql) and one(pg_url, sql).startswith("s1:")
    assert not marker.exists()  # copying never unpickles
    # in the target the seal does not verify: a cache miss, the pickle never runs
    rerun = cli("run", "flows.py", "main", "--n", "3", "-q", "--db", pg_url, env=key)
    assert rerun.code == 0 and rerun.last_line == "5", rerun.err
    assert not marker.exists()
    assert "all served from the cache" not in rerun.err


def test_push_and_pull_a_remote_named_in_the_config(cli: Cli, flows: Path, pg_url: str) -> None:
    (flows / "lazyflow.toml").write_text(
        f'[remotes]\nteam = "{pg_url}"\nbackup = "sqlite:///b.db"\n'
    )
    assert cli("run", "flows.py", "main", "--n", "2").code == 0  # the project's own store
    pushed = cli("push", "team")
    assert pushed.code == 0 and pushed.out.startswith("pushed 1 execution"), pushed.err
    assert cli("push", "backup").code == 0
    assert len(_ids(cli, f"sqlite:///{flows / 'b.db'}")) == 1  # relative to the file
    assert cli("pull", "team").out.startswith("nothing to pull")
    unknown = cli("push", "tema")
    assert unknown.code == 2
    assert "remotes: backup, team" in unknown.err
    (flows / "lazyflow.toml").write_text('[remotes]\nteam = "postgresql+psycopg://u:secret@h/db"\n')
    refused = cli("push", "team")
    assert refused.code == 1 and "password" in refused.err and "secret" not in refused.err
