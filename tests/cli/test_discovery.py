"""The store and the config file are found upwards; read-only commands create nothing."""

from __future__ import annotations

from pathlib import Path

from .conftest import Cli

NO_DB: dict[str, str | None] = {"LAZYFLOW_DB": None}


def test_log_in_a_subdirectory_finds_the_projects_store(cli: Cli, flows: Path) -> None:
    assert cli("run", "flows.py", "main", "--n", "3", "-q", env=NO_DB).code == 0
    assert (flows / ".lazyflow" / "lazyflow.db").exists()
    sub = flows / "src" / "deep"
    sub.mkdir(parents=True)
    result = cli("log", "--json", cwd=sub, env=NO_DB)
    assert result.code == 0, result.err
    assert [e["root_task"] for e in result.json()] == ["flows.main"]  # type: ignore[index]
    assert not (sub / ".lazyflow").exists() and not (flows / "src" / ".lazyflow").exists()
    # a run there records into the same store
    (sub / "other.py").write_text((flows / "flows.py").read_text())
    assert cli("run", "other.py", "main", "--n", "2", "-q", cwd=sub, env=NO_DB).code == 0
    assert len(cli("log", "--json", env=NO_DB).json()) == 2  # type: ignore[arg-type]
    assert not (sub / ".lazyflow").exists()


def test_read_only_commands_never_create_a_store(cli: Cli, flows: Path) -> None:
    for args in (("log",), ("log", "-"), ("lineage", "x.txt"), ("db", "info"), ("gc",)):
        result = cli(*args, env=NO_DB)
        assert result.code == 1, (args, result.out, result.err)
        assert "no lazyflow store found" in result.err, result.err
        assert "or a directory above it" in result.err
    missing = flows / "nowhere" / "lf.db"
    result = cli("log", "--db", f"sqlite:///{missing}")
    assert result.code == 1 and f"no lazyflow store at {missing}" in result.err
    assert sorted(p.name for p in flows.iterdir()) == ["flows.py"]


def test_read_only_commands_never_create_tables_in_an_empty_database(cli: Cli, pg_url: str) -> None:
    result = cli("log", "--db", pg_url)
    assert result.code == 1 and "has no lazyflow tables" in result.err, result.err
    info = cli("db", "info", "--db", pg_url)
    assert info.code == 0 and "empty: created on first use" in info.out, info.err
    assert cli("log", "--db", pg_url).code == 1  # still nothing there


def test_run_with_an_executor_named_in_lazyflow_toml(cli: Cli, flows: Path) -> None:
    (flows / "lazyflow.toml").write_text(
        'db = "sqlite:///state/lazyflow.db"\n\n[executors.batch]\ntype = "processes"\n'
        "max_workers = 1\n"
    )
    result = cli("run", "flows.py", "main", "--n", "3", "--executor", "batch", env=NO_DB)
    assert result.code == 0, result.err
    assert result.last_line == "5"
    assert (flows / "state" / "lazyflow.db").exists()
    bad = cli("run", "flows.py", "main", "--executor", "gpu", env=NO_DB)
    assert bad.code == 1
    assert "unknown executor" in bad.err and "batch" in bad.err
    (flows / "lazyflow.toml").write_text('[executors.batch]\nqueue = "q"\n')
    broken = cli("log", env=NO_DB)
    assert broken.code == 1
    assert f"{flows / 'lazyflow.toml'}: [executors.batch] has no type" in broken.err
